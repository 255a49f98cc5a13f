using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using Qsvit.Bench;

// Examples:
//   dotnet run -c Release --project bench/Qsvit.Bench -- --job short --filter '*'
//   dotnet run -c Release --project bench/Qsvit.Bench -- --job short --filter '*Gemm*'
var config = DefaultConfig.Instance.AddColumn(new GflopsColumn());
BenchmarkSwitcher.FromAssembly(typeof(GflopsColumn).Assembly).Run(args, config);
