using System.Diagnostics;
using System.Globalization;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// The packed model's real-valued-input layers (codes dequantized per call) against the same layer with resident fp32
/// weights, on the CPU backend, best of interleaved runs.
///   dotnet run -c Release --project bench/Qsvit.Bench -- real [seconds-per-shape] [threads]
/// </summary>
internal static class RealLayerSweep
{
    private static readonly (string Name, ConvGeometry G, int H, int W, int Frames)[] Shapes =
    [
        ("1x1 128->128 @4x4 x128 (CIFAR RepConv pw)", new ConvGeometry(128, 128, 1, 1), 4, 4, 128),
        ("1x1 32->16 @32 x128 (CIFAR pwconv2)", new ConvGeometry(32, 16, 1, 1), 32, 32, 128),
        ("dw 3x3 128 @6x6 x128 (CIFAR RepConv dw)", new ConvGeometry(128, 128, 3, 3, 1, 1, 0, 0, 128), 6, 6, 128),
        ("1x1 512->512 @14x14 x4 (55M RepConv pw)", new ConvGeometry(512, 512, 1, 1), 14, 14, 4),
        ("1x1 640->640 @14x14 x4 (55M RepConv pw)", new ConvGeometry(640, 640, 1, 1), 14, 14, 4),
        ("1x1 128->64 @56x56 x4 (55M pwconv2)", new ConvGeometry(128, 64, 1, 1), 56, 56, 4),
    ];

    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 2.0;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2;
        Console.WriteLine($"{threads} threads; best of interleaved runs over {seconds} s per shape");
        Console.WriteLine("| layer | fp32 ms | packed ms | ratio |");
        Console.WriteLine("|---|---:|---:|---:|");
        var rng = new Random(42);
        using var backend = new CpuBackend(new ComputeOptions { Threads = threads });
        foreach (var (name, g, h, w, frames) in Shapes)
        {
            var values = Data.Random(rng, g.WeightLength);
            var shape = new[] { g.OutChannels, g.InChannels / g.Groups, g.KernelH, g.KernelW };
            var codes = PackedWeight.Quantize("w", values, shape, 8, QuantizerSpec.Paper);
            var affine = new ChannelAffine(Data.Random(rng, g.OutChannels), Data.Random(rng, g.OutChannels));
            using var dense = backend.CreateConv(new ConvLayerSpec(g, new DenseConvWeights(codes.Dequantize()), [], [affine]));
            using var packed = backend.CreateConv(new ConvLayerSpec(g, new PackedConvWeights(codes), [], [affine]));
            var x = backend.Allocate((long)frames * g.InChannels * h * w);
            backend.Upload(Data.Random(rng, frames * g.InChannels * h * w), x);
            var y = backend.Allocate((long)frames * g.OutChannels * g.OutH(h) * g.OutW(w));
            Action[] runs = [() => backend.Conv(dense, x, frames, h, w, y), () => backend.Conv(packed, x, frames, h, w, y)];
            var best = Sweep.BestOf(seconds, runs);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {best[0] * 1e3:F3} | {best[1] * 1e3:F3} | {best[1] / best[0]:F2} |"));
        }
    }
}
