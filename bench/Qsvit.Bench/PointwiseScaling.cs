using System.Globalization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// How a real-valued 1×1 conv on small maps scales with threads, by path: batched im2col (what Auto picks on 4×4 maps),
/// im2col with packed B panels, the in-place per-image GEMM, and one plain GEMM over all columns.
///   dotnet run -c Release --project bench/Qsvit.Bench -- pw-scaling [seconds] [threads,...]
/// </summary>
internal static class PointwiseScaling
{
    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 1.0;
        int[] counts = args.Length > 2 ? args[2].Split(',').Select(int.Parse).ToArray() : [1, 2, 4, 8, 16];
        var rng = new Random(4);
        foreach (var (c, side, frames) in new[] { (128, 4, 128), (192, 4, 128), (512, 14, 4) })
        {
            var g = new ConvGeometry(c, c, 1, 1);
            var x = Data.Random(rng, frames * c * side * side);
            var y = new float[x.Length];
            var w = Data.Random(rng, g.WeightLength);
            using var cw = ConvWeights.Pack(w, g);
            int n = frames * side * side;
            var bt = new float[c * n];
            double flop = 2.0 * c * c * n;
            Console.WriteLine($"1x1 {c}->{c} @{side}x{side} x{frames}: ms (GFLOP/s) by threads");
            Console.WriteLine("| threads | im2col | im2col, B packed | per-image in place | one GEMM |");
            Console.WriteLine("|---:|---:|---:|---:|---:|");
            foreach (int t in counts)
            {
                var best = Sweep.BestOf(seconds,
                    () => Conv2d.Forward(x, frames, side, side, cw, default, y, t, ConvAlgo.Im2Col, null),
                    () => Conv2d.Forward(x, frames, side, side, cw, default, y, t, ConvAlgo.Im2Col, true),
                    () => Conv2d.Forward(x, frames, side, side, cw, default, y, t, ConvAlgo.Direct, null),
                    () => Gemm.Sgemm(c, n, c, w, false, bt, false, y, false, IsaInfo.Best, t));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {t} | {string.Join(" | ", best.Select(s => $"{s * 1e3:F3} ({flop / s / 1e9:F0})"))} |"));
            }
        }
    }
}
