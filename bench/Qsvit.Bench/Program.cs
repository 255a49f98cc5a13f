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
//   dotnet run -c Release --project bench/Qsvit.Bench -- cublas 0.5   (GPU: cuBLAS binding checks and GEMM timings)
//   dotnet run -c Release --project bench/Qsvit.Bench -- gpu-check tests/fixtures/parity models/sdtv2-cifar10/sdtv2_cifar10_w32-192_T4.pth data/cifar10/test.bin
//                                                                       (GPU: CUDA backend against the CPU backend, issue 10's parity)
if (args.Length > 0 && args[0] == "cublas")
{
    Environment.Exit(CublasBench.Run(args));
}
if (args.Length > 0 && args[0] == "gpu-check")
{
    Environment.Exit(GpuCheck.Run(args));
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- spike-mma models/sdtv2-cifar10/sdtv2_cifar10_w32-192_T4.pth 2
//                                                                       (GPU: implicit-GEMM int8 convs against im2col + cuBLAS and the CPU)
if (args.Length > 0 && args[0] == "spike-mma-models")
{
    Environment.Exit(SpikeMmaCheck.RunModels(args));
}
if (args.Length > 0 && args[0] == "spike-mma-one")
{
    Environment.Exit(SpikeMmaCheck.RunOne(args));
}
if (args.Length > 0 && args[0] == "spike-mma")
{
    Environment.Exit(SpikeMmaCheck.Run(args));
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- spike-epilogue models/sdtv2-cifar10/sdtv2_cifar10_w32-192_T4.pth /tmp/logits 0.3
//                                                                       (GPU: int8 packing/column/epilogue kernels: bit-identity, logits, layer times)
if (args.Length > 1 && args[0] == "spike-epilogue")
{
    Environment.Exit(EpilogueCheck.Run(args));
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- pointwise models/sdtv2-cifar10/sdtv2_cifar10_w32-192_T4.pth 2
//                                                                       (GPU: fused pointwise int8 convs against packing + cuBLAS and the CPU)
if (args.Length > 0 && args[0] == "pointwise")
{
    Environment.Exit(PointwiseCheck.Run(args));
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- real-pointwise models/sdtv2-cifar10/sdtv2_cifar10_w32-192_T4.pth 2
//                                                                       (GPU: fused real-input 1x1 convs (bf16 mma) against today's bf16 path and the CPU)
if (args.Length > 0 && args[0] == "real-pointwise")
{
    Environment.Exit(RealPointwiseCheck.Run(args));
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- jpeg 2 a.jpg b.jpg   (JPEG decoding: qsvit vs StbImageSharp)
if (args.Length > 1 && args[0] == "jpeg")
{
    JpegBench.Run(args);
    return;
}
if (args.Length > 0 && args[0] == "sweep")
{
    Sweep.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- real 2 2    (packed real-valued-input layers, dequantized per call, against fp32)
if (args.Length > 0 && args[0] == "real")
{
    RealLayerSweep.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- spike 2 2    (integer spike convs against fp32, the CIFAR model's layers)
if (args.Length > 0 && args[0] == "spike")
{
    SpikeSweep.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- shared-ops 1 2   (CPU: fused add + LIF, bordered depthwise, SDSA on spikes against their plain ops; a RepConv by parts; the 7x7 depthwise)
if (args.Length > 0 && args[0] == "shared-ops")
{
    SharedOpsSweep.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- dispatch 1 2,4,8,16   (what one parallel hand-off costs, by threads)
if (args.Length > 0 && args[0] == "dispatch")
{
    DispatchProbe.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- pw-scaling 1 1,2,4,8,16   (a real 1x1 conv on small maps by path and threads)
if (args.Length > 0 && args[0] == "pw-scaling")
{
    PointwiseScaling.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- spike-events 1 2 [55M]   (event-driven integer sums against the dense GEMM by firing rate)
if (args.Length > 0 && args[0] == "spike-events")
{
    SpikeEventSweep.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- packed-ab 30 2 32 cifar-8.safetensors   (packed vs fp32 simulation, best of alternating forwards)
if (args.Length > 0 && args[0] == "packed-ab")
{
    PackedAb.Run(args);
    return;
}
//   dotnet run -c Release --project bench/Qsvit.Bench -- mac-peak 1   (one core's multiply-add rate: fp32 FMA against u8 x s8 VNNI)
if (args.Length > 0 && args[0] == "mac-peak")
{
    MacPeak.Run(args);
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
