using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// Multiply-add throughput of one core, register to register (12 independent accumulators, no memory): fp32 FMA at 256 and
/// 512 bits (the fp32 simulation's kernels) against u8 × s8 VNNI vpdpbusd at 256 bits (.NET 10 has no 512-bit VNNI
/// intrinsics; the integer spike path's 512-bit tiles are machine code, <c>Vnni512Kernels</c>) and the AVX-512BW pair
/// vpmaddubsw + vpaddw. The ratio of the integer rate to the fp32 rate bounds what the integer convolutions can gain over
/// the fp32 ones on this CPU; then the integer GEMM itself on each VNNI path.
///   dotnet run -c Release --project bench/Qsvit.Bench -- mac-peak [seconds]
/// </summary>
internal static class MacPeak
{
    private const int Iterations = 1 << 22;

    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 1.0;
        Console.WriteLine("| kernel | multiply-adds per instruction | G multiply-adds/s, one thread |");
        Console.WriteLine("|---|---:|---:|");
        Report("fp32 FMA, 256-bit", 8, seconds, Drive<Fma256Op, Vector256<float>>);
        if (Vector512.IsHardwareAccelerated) Report("fp32 FMA, 512-bit", 16, seconds, Drive<Fma512Op, Vector512<float>>);
        if (AvxVnni.IsSupported) Report("u8 x s8 vpdpbusd (AVX-VNNI), 256-bit", 32, seconds, Drive<Vnni256Op, Vector256<int>>);
        if (Avx512BW.IsSupported) Report("u8 x s8 vpmaddubsw + vpaddw (AVX-512BW), 512-bit, per pair", 64, seconds, Drive<MaddUbs512Op, Vector512<short>>);
        GemmRates(seconds);
    }

    /// <summary>
    /// The integer spike GEMM itself (<see cref="SpikeGemm.Multiply(IntMatrix, int*, long*, int, SpikeGemm.BlockEpilogue, IntIsa, int)"/>,
    /// no interleave, an empty epilogue), one thread, on each supported path: how close its tiles come to the rates above.
    /// </summary>
    private static unsafe void GemmRates(double seconds)
    {
        Console.WriteLine();
        Console.WriteLine("| integer GEMM, one thread (M × K × N) | path | G multiply-adds/s |");
        Console.WriteLine("|---|---|---:|");
        var rng = new Random(3);
        foreach (var (m, k, n) in new[] { (256, 576, 4096), (64, 2304, 4096), (16, 576, 16384) })
        {
            var a = IntMatrix.FromValues(Enumerable.Range(0, m * k).Select(_ => rng.Next(-128, 128)).ToArray(), m, k);
            int groups = a.PaddedCols / 4;
            var words = Enumerable.Range(0, groups * n + SpikeGemm.ColumnAlign).Select(_ => rng.Next() & 0x01010101).ToArray();
            var offsets = Enumerable.Range(0, groups).Select(g => (long)g * n).ToArray();
            foreach (var isa in Enum.GetValues<IntIsa>().Where(i => i is IntIsa.Vnni256 or IntIsa.Vnni512 && SpikeGemm.IsSupported(i)))
            {
                double best = double.MaxValue;
                var clock = Stopwatch.StartNew();
                fixed (int* pb = words)
                fixed (long* po = offsets)
                    do
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        SpikeGemm.Multiply(a, pb, po, n, (_, _, _, _, _) => { }, isa, 1);
                        best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
                    }
                    while (clock.Elapsed.TotalSeconds < seconds);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {m} × {k} × {n} | {isa} | {(double)m * k * n / best / 1e9:F1} |"));
            }
        }
    }

    private static void Report(string name, int macsPerInstruction, double seconds, Func<int, float> kernel)
    {
        kernel(1024);
        double best = double.MaxValue;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            long t0 = Stopwatch.GetTimestamp();
            kernel(Iterations);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        double macs = 12.0 * Iterations * macsPerInstruction;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {macsPerInstruction} | {macs / best / 1e9:F1} |"));
    }

    /// <summary>One multiply-add instruction (or pair) on an accumulator of type TV.</summary>
    private interface IPeakOp<TV> where TV : struct
    {
        static abstract TV Step(TV acc);
        static abstract float Fold(TV acc);
    }

    private readonly struct Fma256Op : IPeakOp<Vector256<float>>
    {
        public static Vector256<float> Step(Vector256<float> a) => Fma.MultiplyAdd(a, Vector256.Create(0.999f), Vector256.Create(1e-7f));
        public static float Fold(Vector256<float> a) => a.GetElement(0);
    }

    private readonly struct Fma512Op : IPeakOp<Vector512<float>>
    {
        public static Vector512<float> Step(Vector512<float> a) => Avx512F.FusedMultiplyAdd(a, Vector512.Create(0.999f), Vector512.Create(1e-7f));
        public static float Fold(Vector512<float> a) => a.GetElement(0);
    }

    private readonly struct Vnni256Op : IPeakOp<Vector256<int>>
    {
        public static Vector256<int> Step(Vector256<int> a) => AvxVnni.MultiplyWideningAndAdd(a, Vector256.Create((byte)1), Vector256.Create((sbyte)3));
        public static float Fold(Vector256<int> a) => a.GetElement(0);
    }

    // Each product reads its own accumulator, so the multiply cannot be hoisted out of the loop.
    private readonly struct MaddUbs512Op : IPeakOp<Vector512<short>>
    {
        public static Vector512<short> Step(Vector512<short> a) => a + Avx512BW.MultiplyAddAdjacent(a.AsByte(), Vector512.Create((sbyte)3));
        public static float Fold(Vector512<short> a) => a.GetElement(0);
    }

    /// <summary>n rounds of 12 independent accumulators (enough to cover the instruction's latency at full throughput).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Drive<T, TV>(int n) where T : struct, IPeakOp<TV> where TV : struct
    {
        TV a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default,
            a8 = default, a9 = default, a10 = default, a11 = default;
        for (int i = 0; i < n; i++)
        {
            a0 = T.Step(a0); a1 = T.Step(a1); a2 = T.Step(a2); a3 = T.Step(a3); a4 = T.Step(a4); a5 = T.Step(a5);
            a6 = T.Step(a6); a7 = T.Step(a7); a8 = T.Step(a8); a9 = T.Step(a9); a10 = T.Step(a10); a11 = T.Step(a11);
        }
        return T.Fold(a0) + T.Fold(a1) + T.Fold(a2) + T.Fold(a3) + T.Fold(a4) + T.Fold(a5)
            + T.Fold(a6) + T.Fold(a7) + T.Fold(a8) + T.Fold(a9) + T.Fold(a10) + T.Fold(a11);
    }
}
