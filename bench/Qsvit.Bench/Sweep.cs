using System.Diagnostics;
using System.Globalization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// A quick alternative to BenchmarkDotNet for shared or noisy machines: every configuration of a shape is run in
/// interleaved rounds and the fastest run is kept, so a configuration is not penalised for happening to run while
/// another process held the cores. Prints a Markdown table.
///   dotnet run -c Release --project bench/Qsvit.Bench -- sweep [seconds-per-shape] [name-filter]
/// </summary>
internal static class Sweep
{
    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 2.0;
        string filter = args.Length > 2 ? args[2] : "";
        Console.WriteLine($"{Environment.ProcessorCount} logical CPUs, Vector512 {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}; best of interleaved runs over {seconds} s per shape");
        Console.WriteLine();
        Console.WriteLine("| Shape | GFLOP/s, 1 thread | GFLOP/s, 2 threads | best time, 1 thread |");
        Console.WriteLine("|---|---:|---:|---:|");
        var rng = new Random(42);
        foreach (var s in GemmBenchmarks.Shapes)
        {
            if (!s.ToString().Contains(filter, StringComparison.Ordinal)) continue;
            var a = Data.Random(rng, s.M * s.K);
            var b = Data.Random(rng, s.K * s.N);
            var c = new float[s.M * s.N];
            Row($"sgemm {s}", s.Flops, seconds, o => Gemm.Sgemm(s.M, s.N, s.K, a, false, b, false, c, options: o));
        }
        foreach (var s in ConvBenchmarks.Shapes)
        {
            if (!s.ToString().Contains(filter, StringComparison.Ordinal)) continue;
            var g = s.G;
            var x = Data.Spikes(rng, s.Frames * g.InChannels * s.Size * s.Size);
            var w = Data.Random(rng, g.WeightLength);
            var bias = Data.Random(rng, g.OutChannels);
            var y = new float[s.Frames * g.OutChannels * g.OutH(s.Size) * g.OutW(s.Size)];
            Row($"conv {s}", s.Flops, seconds, o => Conv2d.Forward(x, s.Frames, s.Size, s.Size, w, bias, g, y, o));
        }
    }

    /// <summary>
    /// The fastest time in seconds of each of <paramref name="runs"/>, run in turn (after one warm-up each) for at least
    /// three rounds and <paramref name="seconds"/>, so that a run that shared the cores with another process does not count.
    /// </summary>
    public static double[] BestOf(double seconds, params Action[] runs)
    {
        var best = Enumerable.Repeat(double.MaxValue, runs.Length).ToArray();
        foreach (var r in runs) r();
        var total = Stopwatch.StartNew();
        for (int round = 0; round < 3 || (total.Elapsed.TotalSeconds < seconds && round < 500); round++)
            for (int i = 0; i < runs.Length; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                runs[i]();
                best[i] = Math.Min(best[i], Stopwatch.GetElapsedTime(t0).TotalSeconds);
            }
        return best;
    }

    /// <summary>Times <paramref name="run"/> with 1 and 2 threads, interleaved.</summary>
    private static void Row(string name, double flops, double seconds, Action<ComputeOptions> run)
    {
        ComputeOptions[] threads = [new() { Threads = 1 }, new() { Threads = 2 }];
        var best = BestOf(seconds, () => run(threads[0]), () => run(threads[1]));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {flops / best[0] / 1e9:F1} | {flops / best[1] / 1e9:F1} | {best[0] * 1e3:F2} ms |"));
    }
}
