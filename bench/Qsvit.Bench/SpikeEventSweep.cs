using System.Globalization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// Event-driven integer sums (<see cref="SpikeEvents"/>) against the dense integer GEMM (<see cref="SpikeGemm"/>) on the
/// chained consumers' shapes (ConvBlock conv2, MLP fc2) at a range of input firing rates: the crossover that
/// <see cref="SpikeEvents.Pays"/> encodes. Both sides run <see cref="SpikeConv.Forward"/> on the same input (the interleave
/// runs once, and both sides read its words, as the chained consumer does). Best of interleaved runs, as <see cref="Sweep"/>.
///   dotnet run -c Release --project bench/Qsvit.Bench -- spike-events [seconds-per-case] [threads] [55M] [rates, e.g. 0.05,0.1]
/// </summary>
internal static class SpikeEventSweep
{
    private static readonly (string Name, ConvGeometry G, int H, int W)[] Cifar =
    [
        ("3x3 64->16 @32", new ConvGeometry(64, 16, 3, 3, 1, 1, 1, 1), 32, 32),
        ("3x3 128->32 @16", new ConvGeometry(128, 32, 3, 3, 1, 1, 1, 1), 16, 16),
        ("3x3 256->64 @8", new ConvGeometry(256, 64, 3, 3, 1, 1, 1, 1), 8, 8),
        ("1x1 512->128 @4x4", new ConvGeometry(512, 128, 1, 1), 4, 4),
    ];

    private static readonly (string Name, ConvGeometry G, int H, int W)[] Big =
    [
        ("3x3 256->64 @56", new ConvGeometry(256, 64, 3, 3, 1, 1, 1, 1), 56, 56),
        ("3x3 512->128 @28", new ConvGeometry(512, 128, 3, 3, 1, 1, 1, 1), 28, 28),
        ("3x3 1024->256 @14", new ConvGeometry(1024, 256, 3, 3, 1, 1, 1, 1), 14, 14),
        ("1x1 2048->512 @14", new ConvGeometry(2048, 512, 1, 1), 14, 14),
    ];

    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 1.0;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2;
        bool big = args.Length > 3 && args[3] == "55M";
        double[] rates = args.Length > 4 ? [.. args[4].Split(',').Select(r => double.Parse(r, CultureInfo.InvariantCulture))] : [0.02, 0.05, 0.1, 0.15, 0.2, 0.3];
        int frames = big ? 4 : 128;
        Console.WriteLine($"{threads} threads, {SpikeGemm.Best} (Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}), {frames} frames; best of interleaved runs over {seconds} s per case");
        Console.WriteLine();
        Console.WriteLine("| layer | firing | dense ms | events ms | events / dense speedup | Pays |");
        Console.WriteLine("|---|---:|---:|---:|---:|---|");
        var rng = new Random(42);
        foreach (var (name, g, h, w) in big ? Big : Cifar)
        {
            var codes = new int[g.WeightLength];
            for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(-128, 128);
            var integer = new SpikeConvWeights(g, IntMatrix.FromValues(codes, g.OutChannels, g.WeightLength / g.OutChannels, g),
                Enumerable.Repeat(0.01f, g.OutChannels).ToArray());
            var bias = Data.Random(rng, g.OutChannels);
            var y = new float[frames * g.OutChannels * h * w];
            var x = new float[frames * g.InChannels * h * w];
            foreach (double rate in rates)
            {
                for (int i = 0; i < x.Length; i++) x[i] = rng.NextDouble() < rate ? 1f : 0f;
                // The interleave once; then both sides read its words, as the chained consumer does.
                SpikeConv.Forward(x, frames, h, w, integer, bias, y, SpikeGemm.Best, threads, null, SpikeAccumulation.Dense);
                var best = Sweep.BestOf(seconds,
                    () => SpikeConv.ForwardOnPreviousWords(x, frames, h, w, integer, bias, y, SpikeGemm.Best, threads, SpikeAccumulation.Dense),
                    () => SpikeConv.ForwardOnPreviousWords(x, frames, h, w, integer, bias, y, SpikeGemm.Best, threads, SpikeAccumulation.Events));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {rate * 100:0.#} % | {best[0] * 1e3:F2} | {best[1] * 1e3:F2} | {best[0] / best[1]:F2}x | {SpikeEvents.Pays(rate, g.OutChannels, SpikeGemm.Best)} |"));
            }
        }
    }
}
