using System.Globalization;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// A fused CPU op against the ops it stands for, in one process (best of interleaved runs): the residual add inside the
/// LIF (<see cref="CpuBackend.AddLif"/> against Add then Lif), at the bundled CIFAR model's residual streams (batch 32 × T = 4).
///   dotnet run -c Release --project bench/Qsvit.Bench -- shared-ops [seconds] [threads]
/// </summary>
internal static class SharedOpsSweep
{
    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 1.0;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2;
        Console.WriteLine($"{threads} threads; best of interleaved runs over {seconds} s per shape");
        Console.WriteLine("| op | shape | fused ms | separate ms | separate / fused |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        using var backend = new CpuBackend(new ComputeOptions { Threads = threads });
        var rng = new Random(3);
        foreach (long n in new long[] { 128L * 64 * 16, 128L * 16 * 1024, 128L * 128 * 16 })
        {
            var x = backend.Allocate(n); var y = backend.Allocate(n); var s = backend.Allocate(n);
            backend.Upload(Data.Random(rng, (int)n), x);
            backend.Upload(new float[n], y); // adding zeros keeps the stream's values (and the firing) from run to run
            var best = Sweep.BestOf(seconds,
                () => backend.AddLif(x, y, n, s, 4, 1f, null, 0),
                () => { backend.Add(x, y, n); backend.Lif(x, s, n, 4, 1f, null, 0); });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| add + lif | {n / 1024}K floats, T = 4 | {best[0] * 1e3:F3} | {best[1] * 1e3:F3} | {best[1] / best[0]:F2}x |"));
        }
    }
}
