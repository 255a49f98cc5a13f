using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Qsvit.Bench;

// Examples:
//   dotnet run -c Release --project bench/Qsvit.Bench -- --job short --filter '*'
//   dotnet run -c Release --project bench/Qsvit.Bench -- --job short --filter '*Gemm*'
//   dotnet run -c Release --project bench/Qsvit.Bench -- sweep 2      (best-of-N table, robust on a busy machine)
//   dotnet run -c Release --project bench/Qsvit.Bench -- rss run model.safetensors   (peak RSS: load + one forward)
if (args.Length > 0 && args[0] == "rss")
{
    PeakRss.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- onnx-lif 5   (ONNX Runtime: LIF unrolled vs Scan)
if (args.Length > 0 && args[0] == "sweep")
{
    Sweep.Run(args);
    return;
}
if (args.Length > 0 && args[0] == "onnx-lif")
{
    OnnxLifSweep.Run(args);
    return;
}
var config = DefaultConfig.Instance
    .AddColumn(new GflopsColumn(), new GflopsColumn(best: true))
    .WithSummaryStyle(SummaryStyle.Default.WithMaxParameterColumnWidth(40));
BenchmarkSwitcher.FromAssembly(typeof(GflopsColumn).Assembly).Run(args, config);
