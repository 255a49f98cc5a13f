using System.Diagnostics;
using System.Globalization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// The packed model's integer spike convolutions (<see cref="SpikeConv"/>, 8-bit weights) against the fp32 convolution
/// of the same shape, on the bundled CIFAR model's spike-input layers at batch 32 × T = 4 (128 frames), 30 % spikes.
/// Best of interleaved runs, as <see cref="Sweep"/>, so the ratio holds on a loaded machine. Where the best path is the
/// 512-bit VNNI machine code, the 256-bit VNNI tiles run beside it.
///   dotnet run -c Release --project bench/Qsvit.Bench -- spike [seconds-per-shape] [threads] [55M: the 55M preset's layers at batch 1 | chains: only the chained layers]
/// </summary>
internal static class SpikeSweep
{
    private static readonly (string Name, ConvGeometry G, int H, int W)[] Shapes55M =
    [
        ("3x3 64->256 @56", new ConvGeometry(64, 256, 3, 3, 1, 1, 1, 1), 56, 56),
        ("3x3 512->128 @28", new ConvGeometry(512, 128, 3, 3, 1, 1, 1, 1), 28, 28),
        ("3x3 1024->256 @14", new ConvGeometry(1024, 256, 3, 3, 1, 1, 1, 1), 14, 14),
        ("3x3 256->1024 @14", new ConvGeometry(256, 1024, 3, 3, 1, 1, 1, 1), 14, 14),
        ("1x1 512->512 @14", new ConvGeometry(512, 512, 1, 1), 14, 14),
        ("1x1 2048->512 @14", new ConvGeometry(2048, 512, 1, 1), 14, 14),
    ];

    private static readonly (string Name, ConvGeometry G, int H, int W)[] Shapes =
    [
        ("3x3 64->16 @32", new ConvGeometry(64, 16, 3, 3, 1, 1, 1, 1), 32, 32),
        ("3x3 16->64 @32", new ConvGeometry(16, 64, 3, 3, 1, 1, 1, 1), 32, 32),
        ("1x1 16->32 @32", new ConvGeometry(16, 32, 1, 1), 32, 32),
        ("3x3/2 16->32 @32", new ConvGeometry(16, 32, 3, 3, 2, 2, 1, 1), 32, 32),
        ("3x3 128->32 @16", new ConvGeometry(128, 32, 3, 3, 1, 1, 1, 1), 16, 16),
        ("3x3 32->128 @16", new ConvGeometry(32, 128, 3, 3, 1, 1, 1, 1), 16, 16),
        ("3x3 256->64 @8", new ConvGeometry(256, 64, 3, 3, 1, 1, 1, 1), 8, 8),
        ("3x3 64->256 @8", new ConvGeometry(64, 256, 3, 3, 1, 1, 1, 1), 8, 8),
        ("1x1 128->128 @4x4", new ConvGeometry(128, 128, 1, 1), 4, 4),
        ("1x1 512->128 @1x16", new ConvGeometry(512, 128, 1, 1), 1, 16),
        ("1x1 128->512 @1x16", new ConvGeometry(128, 512, 1, 1), 1, 16),
    ];

    // ConvBlock's conv1 → LIF → conv2 and the MLP's fc1 → LIF → fc2 at batch 32 × T = 4: (name, first, second, h, w).
    private static readonly (string Name, ConvGeometry First, ConvGeometry Second, int H, int W)[] Chains =
    [
        ("3x3 16->64->16 @32", new ConvGeometry(16, 64, 3, 3, 1, 1, 1, 1), new ConvGeometry(64, 16, 3, 3, 1, 1, 1, 1), 32, 32),
        ("3x3 32->128->32 @16", new ConvGeometry(32, 128, 3, 3, 1, 1, 1, 1), new ConvGeometry(128, 32, 3, 3, 1, 1, 1, 1), 16, 16),
        ("3x3 64->256->64 @8", new ConvGeometry(64, 256, 3, 3, 1, 1, 1, 1), new ConvGeometry(256, 64, 3, 3, 1, 1, 1, 1), 8, 8),
        ("1x1 128->512->128 @1x16", new ConvGeometry(128, 512, 1, 1), new ConvGeometry(512, 128, 1, 1), 1, 16),
    ];

    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 2.0;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2;
        bool big = args.Length > 3 && args[3] == "55M", chainsOnly = args.Length > 3 && args[3] == "chains";
        int frames = big ? 4 : 128;
        Console.WriteLine($"{threads} threads, {SpikeGemm.Best}; best of interleaved runs over {seconds} s per shape");
        Console.WriteLine();
        bool both = SpikeGemm.Best == IntIsa.Vnni512 && SpikeGemm.IsSupported(IntIsa.Vnni256);
        Console.WriteLine(both ? "| layer | path | fp32 ms | integer ms | speedup | Vnni256 ms | Vnni512 / Vnni256 |" : "| layer | path | fp32 ms | integer ms | speedup |");
        Console.WriteLine(both ? "|---|---|---:|---:|---:|---:|---:|" : "|---|---|---:|---:|---:|");
        var rng = new Random(42);
        var options = new ComputeOptions { Threads = threads };
        foreach (var (name, g, h, w) in big ? Shapes55M : chainsOnly ? [] : Shapes)
        {
            var x = Data.Spikes(rng, frames * g.InChannels * h * w);
            var codes = new int[g.WeightLength];
            for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(-128, 128);
            var weights = codes.Select(c => c * 0.01f).ToArray();
            var bias = Data.Random(rng, g.OutChannels);
            var y = new float[frames * g.OutChannels * g.OutH(h) * g.OutW(w)];
            using var packed = ConvWeights.Pack(weights, g);
            var integer = new SpikeConvWeights(g, IntMatrix.FromValues(codes, g.OutChannels, g.WeightLength / g.OutChannels, g),
                Enumerable.Repeat(0.01f, g.OutChannels).ToArray());
            Action[] runs =
            [
                () => Conv2d.Forward(x, frames, h, w, packed, bias, y, options),
                () => SpikeConv.Forward(x, frames, h, w, integer, bias, y, SpikeGemm.Best, threads),
                .. both ? new Action[] { () => SpikeConv.Forward(x, frames, h, w, integer, bias, y, IntIsa.Vnni256, threads) } : [],
            ];
            var best = Sweep.BestOf(seconds, runs);
            string narrow = both ? string.Create(CultureInfo.InvariantCulture, $" {best[2] * 1e3:F2} | {best[2] / best[1]:F2}x |") : "";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {(SpikeConv.IsDirect(g) ? "direct" : "im2col")} | {best[0] * 1e3:F2} | {best[1] * 1e3:F2} | {best[0] / best[1]:F2}x |{narrow}"));
        }
        if (big) return;
        // The chained layers as the packed CIFAR model runs them (ForwardLifConv: the LIF's spikes go into the second
        // layer's words), ~12 % hidden firing as in the trained model.
        Console.WriteLine();
        Console.WriteLine("| chained layers (integer, T = 4) | ms |");
        Console.WriteLine("|---|---:|");
        foreach (var (name, g1, g2, h, w) in Chains)
        {
            var x = Data.Spikes(rng, frames * g1.InChannels * h * w);
            SpikeConvWeights Layer(ConvGeometry g, float scale)
            {
                var codes = Enumerable.Range(0, g.WeightLength).Select(_ => rng.Next(-128, 128)).ToArray();
                return new SpikeConvWeights(g, IntMatrix.FromValues(codes, g.OutChannels, g.WeightLength / g.OutChannels, g),
                    Enumerable.Repeat(scale, g.OutChannels).ToArray());
            }
            // Scaled so the hidden membrane crosses the threshold about one time in eight.
            var first = Layer(g1, 2.2f / (float)Math.Sqrt(g1.WeightLength / g1.OutChannels * 0.3 * 5500));
            var second = Layer(g2, 0.01f);
            var y = new float[frames * g2.OutChannels * h * w];
            long fired = 0;
            var best = Sweep.BestOf(seconds, [() => fired = SpikeConv.ForwardLifConv(x, frames, h, w, first, [], null, 4, 1f, second, [], null, y,
                SpikeGemm.Best, threads, SpikeAccumulation.Dense)]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} ({100.0 * fired / ((long)frames * g1.OutChannels * h * w):F0} % fired) | {best[0] * 1e3:F2} |"));
        }
    }
}
