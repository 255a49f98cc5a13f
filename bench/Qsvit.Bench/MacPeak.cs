using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Qsvit.Bench;

/// <summary>
/// Multiply-add throughput of one core, register to register (12 independent accumulators, no memory): fp32 FMA at 256 and
/// 512 bits (the fp32 simulation's kernels) against u8 × s8 VNNI vpdpbusd at 256 bits (the integer spike path; .NET 10
/// has no 512-bit VNNI) and the AVX-512BW pair vpmaddubsw + vpaddw. The ratio of the integer rate to the fp32 rate bounds
/// what the integer convolutions can gain over the fp32 ones on this CPU.
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
        Report("fp32 FMA, 256-bit", 8, seconds, Fma256);
        if (Vector512.IsHardwareAccelerated) Report("fp32 FMA, 512-bit", 16, seconds, Fma512);
        if (AvxVnni.IsSupported) Report("u8 x s8 vpdpbusd (AVX-VNNI), 256-bit", 32, seconds, Vnni256);
        if (Avx512BW.IsSupported) Report("u8 x s8 vpmaddubsw + vpaddw (AVX-512BW), 512-bit, per pair", 64, seconds, MaddUbs512);
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

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Fma256(int n)
    {
        var x = Vector256.Create(0.999f);
        var y = Vector256.Create(1e-7f);
        Vector256<float> a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, a8 = x, a9 = x, a10 = x, a11 = x;
        for (int i = 0; i < n; i++)
        {
            a0 = Fma.MultiplyAdd(a0, x, y); a1 = Fma.MultiplyAdd(a1, x, y); a2 = Fma.MultiplyAdd(a2, x, y); a3 = Fma.MultiplyAdd(a3, x, y);
            a4 = Fma.MultiplyAdd(a4, x, y); a5 = Fma.MultiplyAdd(a5, x, y); a6 = Fma.MultiplyAdd(a6, x, y); a7 = Fma.MultiplyAdd(a7, x, y);
            a8 = Fma.MultiplyAdd(a8, x, y); a9 = Fma.MultiplyAdd(a9, x, y); a10 = Fma.MultiplyAdd(a10, x, y); a11 = Fma.MultiplyAdd(a11, x, y);
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).GetElement(0);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Fma512(int n)
    {
        var x = Vector512.Create(0.999f);
        var y = Vector512.Create(1e-7f);
        Vector512<float> a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, a8 = x, a9 = x, a10 = x, a11 = x;
        for (int i = 0; i < n; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, x, y); a1 = Avx512F.FusedMultiplyAdd(a1, x, y); a2 = Avx512F.FusedMultiplyAdd(a2, x, y);
            a3 = Avx512F.FusedMultiplyAdd(a3, x, y); a4 = Avx512F.FusedMultiplyAdd(a4, x, y); a5 = Avx512F.FusedMultiplyAdd(a5, x, y);
            a6 = Avx512F.FusedMultiplyAdd(a6, x, y); a7 = Avx512F.FusedMultiplyAdd(a7, x, y); a8 = Avx512F.FusedMultiplyAdd(a8, x, y);
            a9 = Avx512F.FusedMultiplyAdd(a9, x, y); a10 = Avx512F.FusedMultiplyAdd(a10, x, y); a11 = Avx512F.FusedMultiplyAdd(a11, x, y);
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).GetElement(0);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Vnni256(int n)
    {
        var b = Vector256.Create((byte)1);
        var w = Vector256.Create((sbyte)3);
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default,
            a8 = default, a9 = default, a10 = default, a11 = default;
        for (int i = 0; i < n; i++)
        {
            a0 = AvxVnni.MultiplyWideningAndAdd(a0, b, w); a1 = AvxVnni.MultiplyWideningAndAdd(a1, b, w); a2 = AvxVnni.MultiplyWideningAndAdd(a2, b, w);
            a3 = AvxVnni.MultiplyWideningAndAdd(a3, b, w); a4 = AvxVnni.MultiplyWideningAndAdd(a4, b, w); a5 = AvxVnni.MultiplyWideningAndAdd(a5, b, w);
            a6 = AvxVnni.MultiplyWideningAndAdd(a6, b, w); a7 = AvxVnni.MultiplyWideningAndAdd(a7, b, w); a8 = AvxVnni.MultiplyWideningAndAdd(a8, b, w);
            a9 = AvxVnni.MultiplyWideningAndAdd(a9, b, w); a10 = AvxVnni.MultiplyWideningAndAdd(a10, b, w); a11 = AvxVnni.MultiplyWideningAndAdd(a11, b, w);
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).GetElement(0);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float MaddUbs512(int n)
    {
        var w = Vector512.Create((sbyte)3);
        // Each product reads its own accumulator, so the multiply cannot be hoisted out of the loop.
        Vector512<short> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default,
            a8 = default, a9 = default, a10 = default, a11 = default;
        for (int i = 0; i < n; i++)
        {
            a0 += Avx512BW.MultiplyAddAdjacent(a0.AsByte(), w); a1 += Avx512BW.MultiplyAddAdjacent(a1.AsByte(), w); a2 += Avx512BW.MultiplyAddAdjacent(a2.AsByte(), w);
            a3 += Avx512BW.MultiplyAddAdjacent(a3.AsByte(), w); a4 += Avx512BW.MultiplyAddAdjacent(a4.AsByte(), w); a5 += Avx512BW.MultiplyAddAdjacent(a5.AsByte(), w);
            a6 += Avx512BW.MultiplyAddAdjacent(a6.AsByte(), w); a7 += Avx512BW.MultiplyAddAdjacent(a7.AsByte(), w); a8 += Avx512BW.MultiplyAddAdjacent(a8.AsByte(), w);
            a9 += Avx512BW.MultiplyAddAdjacent(a9.AsByte(), w); a10 += Avx512BW.MultiplyAddAdjacent(a10.AsByte(), w); a11 += Avx512BW.MultiplyAddAdjacent(a11.AsByte(), w);
        }
        return (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).GetElement(0);
    }
}
