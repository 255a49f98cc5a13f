using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Qsvit.Backends.Cuda.Native;
using Qsvit.Tensors;
using Half = System.Half;

namespace Qsvit.Bench;

/// <summary>
/// <c>cublas [seconds]</c>: on a CUDA machine, checks qsvit's cuBLAS binding against CPU references (fp32 to a
/// tolerance; int8→int32 and the exact f16 path bit for bit, on odd shapes and every transpose), then times GEMMs
/// (square and the SDTv2 layers' im2col shapes) with board power from NVML. Buffers come from ILGPU, as in the backend.
/// </summary>
internal static class CublasBench
{
    public static int Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 0.5;
        using var context = Context.Create(b => b.Cuda());
        using var acc = context.CreateCudaAccelerator(0);
        using var blas = Cublas.Create();
        blas.SetStream(((CudaStream)acc.DefaultStream).StreamPtr);
        Console.WriteLine($"GPU {acc.Name}, {acc.MemorySize / (1 << 20)} MiB; {blas.LibraryPath}, cuBLAS version {blas.Version}; NVML bus id {acc.NVMLPCIBusId}");
        int failures = 0;
        var rng = new Random(11);
        foreach (var (m, n, k) in new[] { (37, 29, 51), (1, 1, 1), (5, 130, 7), (256, 1024, 576) })
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                {
                    failures += CheckSgemm(acc, blas, m, n, k, ta, tb, pad: (m + n) % 3, accumulate: k % 2 == 1, rng);
                    failures += CheckInt8(acc, blas, m, n, k, ta, tb, pad: (m + n) % 3 * 4, accumulate: k % 2 == 1, spikes: n % 2 == 0, rng);
                }
        failures += CheckSgemmBatched(acc, blas, 17, 19, 23, 3, rng);
        failures += CheckInt8Batched(acc, blas, 33, 18, 40, 4, rng);
        failures += CheckHalfExact(acc, blas, 96, 200, 1152, rng);
        Console.WriteLine(failures == 0 ? "all checks passed" : $"{failures} checks FAILED");

        Console.WriteLine("| GEMM (row-major C[m,n] = A[m,k]·op(B)) | m | n | k | layout | TFLOP/s or TOPS | ms/call |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- |");
        Time(acc, blas, "sgemm fp32 (default math, no TF32)", 4096, 4096, 4096, Kind.F32, false, seconds);
        Time(acc, blas, "sgemm TF32 tensor cores (reference only)", 4096, 4096, 4096, Kind.Tf32, false, seconds);
        Time(acc, blas, "int8→int32 GemmEx", 4096, 4096, 4096, Kind.I8, true, seconds);
        Time(acc, blas, "int8→int32 GemmEx", 4096, 4096, 4096, Kind.I8, false, seconds);
        Time(acc, blas, "f16→f32 GemmEx (exact for ≤12-bit codes × spikes)", 4096, 4096, 4096, Kind.F16, true, seconds);
        // SDTv2 layers as GEMMs, weights [Cout, K] times im2col'd frames: CIFAR model at batch 1000 (T·B = 4000 frames),
        // 55M at batch 32 (128 frames).
        foreach (var (label, m, n, k) in new[]
                 {
                     ("cifar 3x3 64-256 @8, B=1000", 256, 4000 * 64, 576), ("cifar 3x3 16-64 @32, B=1000", 64, 4000 * 1024, 144),
                     ("cifar fc1 192-768 @8, B=1000", 768, 4000 * 64, 192), ("55M 3x3 128-512 @56, B=32", 512, 128 * 3136, 1152),
                     ("55M fc1 512-2048 @14, B=32", 2048, 128 * 196, 512),
                 })
            foreach (var kind in new[] { Kind.F32, Kind.I8 })
                Time(acc, blas, $"{label} {kind}", m, n, k, kind, kind == Kind.I8, seconds);

        using (var sampler = GpuPowerSampler.Start(pciBusId: acc.NVMLPCIBusId))
        {
            Time(acc, blas, "sgemm fp32 under NVML sampling", 4096, 4096, 4096, Kind.F32, false, Math.Max(seconds, 2));
            Console.WriteLine($"NVML (by PCI bus id): {sampler.Stop()}");
        }
        Console.WriteLine($"NVML (index 0, idle): {MeasureIdle()}");
        return failures == 0 ? 0 : 1;
    }

    private enum Kind { F32, Tf32, I8, F16 }

    private static PowerMeasurement MeasureIdle()
    {
        using var s = GpuPowerSampler.Start();
        Thread.Sleep(300);
        return s.Stop();
    }

    private static float[] RandomFloats(int n, Random rng)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    private static int CheckSgemm(Accelerator acc, Cublas blas, int m, int n, int k, bool ta, bool tb, int pad, bool accumulate, Random rng)
    {
        var shape = new RowMajorGemm(ta, tb, m, n, k, (ta ? m : k) + pad, (tb ? k : n) + pad, n + pad);
        var a = RandomFloats((ta ? k : m) * shape.Lda, rng);
        var b = RandomFloats((tb ? n : k) * shape.Ldb, rng);
        var c0 = RandomFloats(m * shape.Ldc, rng);
        using var da = acc.Allocate1D(a);
        using var db = acc.Allocate1D(b);
        using var dc = acc.Allocate1D(c0);
        blas.Sgemm(shape, 1, da.NativePtr, db.NativePtr, accumulate ? 1 : 0, dc.NativePtr);
        acc.Synchronize();
        var got = dc.GetAsArray1D();
        var want = (float[])c0.Clone();
        Gemm.Sgemm(m, n, k, a, shape.Lda, ta, b, shape.Ldb, tb, want, shape.Ldc, accumulate);
        double worst = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                worst = Math.Max(worst, Math.Abs(got[i * shape.Ldc + j] - want[i * shape.Ldc + j]));
        for (int i = 0; i < m; i++) // padding columns untouched
            for (int j = n; j < shape.Ldc; j++)
                if (got[i * shape.Ldc + j] != c0[i * shape.Ldc + j]) worst = double.PositiveInfinity;
        double tolerance = 1e-5 * Math.Sqrt(k) * 4;
        return Report($"sgemm {m}x{n}x{k} tA={ta} tB={tb} pad={pad} beta={(accumulate ? 1 : 0)}", worst <= tolerance, $"max |Δ| {worst:G3} (tolerance {tolerance:G2})");
    }

    private static sbyte[] RandomInt8(int n, Random rng, bool spikes)
    {
        var x = new sbyte[n];
        for (int i = 0; i < n; i++) x[i] = spikes ? (sbyte)rng.Next(2) : (sbyte)rng.Next(-128, 128);
        return x;
    }

    private static int[] Int8Reference(int m, int n, int k, sbyte[] a, int lda, bool ta, sbyte[] b, int ldb, bool tb, int[] c, int ldc, bool accumulate)
    {
        var r = (int[])c.Clone();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                int s = 0;
                for (int p = 0; p < k; p++)
                    s += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                r[i * ldc + j] = accumulate ? r[i * ldc + j] + s : s;
            }
        return r;
    }

    private static int CheckInt8(Accelerator acc, Cublas blas, int m, int n, int k, bool ta, bool tb, int pad, bool accumulate, bool spikes, Random rng)
    {
        // cuBLAS's int8 GEMMs need lda, ldb in multiples of 4 (RowMajorGemm.ValidateInt8); ldc is free.
        static int Up4(int x) => (x + 3) & ~3;
        var shape = new RowMajorGemm(ta, tb, m, n, k, Up4((ta ? m : k) + pad), Up4((tb ? k : n) + pad), n + pad);
        var a = RandomInt8((ta ? k : m) * shape.Lda, rng, false);
        var b = RandomInt8((tb ? n : k) * shape.Ldb, rng, spikes);
        var c0 = new int[m * shape.Ldc];
        for (int i = 0; i < c0.Length; i++) c0[i] = rng.Next(-1000, 1000);
        using var da = acc.Allocate1D(a);
        using var db = acc.Allocate1D(b);
        using var dc = acc.Allocate1D(c0);
        string name = $"int8 {m}x{n}x{k} tA={ta} tB={tb} pad={pad} beta={(accumulate ? 1 : 0)} B={(spikes ? "spikes" : "int8")}";
        try
        {
            blas.GemmInt8(shape, da.NativePtr, db.NativePtr, dc.NativePtr, accumulate);
        }
        catch (CublasException e)
        {
            return Report(name, false, e.Message);
        }
        acc.Synchronize();
        var got = dc.GetAsArray1D();
        var want = Int8Reference(m, n, k, a, shape.Lda, ta, b, shape.Ldb, tb, c0, shape.Ldc, accumulate);
        int wrong = got.Where((v, i) => v != want[i]).Count();
        return Report(name, wrong == 0, wrong == 0 ? "bit-identical" : $"{wrong} elements differ");
    }

    private static int CheckSgemmBatched(Accelerator acc, Cublas blas, int m, int n, int k, int batch, Random rng)
    {
        var shape = RowMajorGemm.Dense(m, n, k, transB: true);
        var a = RandomFloats(batch * m * k, rng);
        var b = RandomFloats(k * n, rng); // stride 0: one B for every batch entry
        using var da = acc.Allocate1D(a);
        using var db = acc.Allocate1D(b);
        using var dc = acc.Allocate1D<float>(batch * m * n);
        blas.SgemmStridedBatched(shape, 1, da.NativePtr, m * k, db.NativePtr, 0, 0, dc.NativePtr, m * n, batch);
        acc.Synchronize();
        var got = dc.GetAsArray1D();
        double worst = 0;
        for (int e = 0; e < batch; e++)
        {
            var want = new float[m * n];
            Gemm.Sgemm(m, n, k, a.AsSpan(e * m * k, m * k), false, b, true, want);
            for (int i = 0; i < want.Length; i++) worst = Math.Max(worst, Math.Abs(got[e * m * n + i] - want[i]));
        }
        return Report($"sgemm strided batch {batch} x {m}x{n}x{k} (B broadcast)", worst <= 1e-4, $"max |Δ| {worst:G3}");
    }

    private static int CheckInt8Batched(Accelerator acc, Cublas blas, int m, int n, int k, int batch, Random rng)
    {
        var shape = RowMajorGemm.Dense(m, n, k, transB: true);
        var a = RandomInt8(batch * m * k, rng, false);
        var b = RandomInt8(batch * n * k, rng, true);
        using var da = acc.Allocate1D(a);
        using var db = acc.Allocate1D(b);
        using var dc = acc.Allocate1D<int>(batch * m * n);
        string name = $"int8 strided batch {batch} x {m}x{n}x{k}";
        try
        {
            blas.GemmStridedBatchedEx(shape, 1, da.NativePtr, CudaDataType.R8I, m * k, db.NativePtr, CudaDataType.R8I, n * k, 0,
                dc.NativePtr, CudaDataType.R32I, m * n, batch, CublasComputeType.I32);
        }
        catch (CublasException e)
        {
            return Report(name, false, e.Message);
        }
        acc.Synchronize();
        var got = dc.GetAsArray1D();
        int wrong = 0;
        for (int e = 0; e < batch; e++)
        {
            var want = Int8Reference(m, n, k, a[(e * m * k)..((e + 1) * m * k)], k, false, b[(e * n * k)..((e + 1) * n * k)], k, true, new int[m * n], n, false);
            for (int i = 0; i < want.Length; i++) if (got[e * m * n + i] != want[i]) wrong++;
        }
        return Report(name, wrong == 0, wrong == 0 ? "bit-identical" : $"{wrong} elements differ");
    }

    /// <summary>12-bit codes (|code| ≤ 2047) × spikes in f16 with fp32 accumulation: every partial sum is an integer below 2²⁴, so exact.</summary>
    private static int CheckHalfExact(Accelerator acc, Cublas blas, int m, int n, int k, Random rng)
    {
        var shape = RowMajorGemm.Dense(m, n, k, transB: true);
        var codes = new int[m * k];
        var spikes = new int[n * k];
        for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(-2047, 2048);
        for (int i = 0; i < spikes.Length; i++) spikes[i] = rng.Next(2);
        using var da = acc.Allocate1D(codes.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray());
        using var db = acc.Allocate1D(spikes.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray());
        using var dc = acc.Allocate1D<float>(m * n);
        blas.GemmEx(shape, 1, da.NativePtr, CudaDataType.R16F, db.NativePtr, CudaDataType.R16F, 0, dc.NativePtr, CudaDataType.R32F, CublasComputeType.F32);
        acc.Synchronize();
        var got = dc.GetAsArray1D();
        int wrong = 0;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                long s = 0;
                for (int p = 0; p < k; p++) s += codes[i * k + p] * spikes[j * k + p];
                if (got[i * n + j] != s) wrong++;
            }
        return Report($"f16 12-bit codes x spikes -> f32 {m}x{n}x{k}", wrong == 0, wrong == 0 ? "bit-identical to the integer reference" : $"{wrong} elements differ");
    }

    private static int Report(string name, bool ok, string detail)
    {
        Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {name}: {detail}");
        return ok ? 0 : 1;
    }

    private static void Time(Accelerator acc, Cublas blas, string label, int m, int n, int k, Kind kind, bool transB, double seconds)
    {
        int elem = kind switch { Kind.I8 => 1, Kind.F16 => 2, _ => 4 };
        var shape = RowMajorGemm.Dense(m, n, k, transB: transB);
        using var da = acc.Allocate1D<byte>((long)m * k * elem);
        using var db = acc.Allocate1D<byte>((long)k * n * elem);
        using var dc = acc.Allocate1D<byte>((long)m * n * 4);
        da.MemSetToZero(); db.MemSetToZero();
        blas.SetMathMode(kind == Kind.Tf32 ? CublasMathMode.Tf32 : CublasMathMode.Default);
        void Call()
        {
            switch (kind)
            {
                case Kind.F32 or Kind.Tf32: blas.Sgemm(shape, 1, da.NativePtr, db.NativePtr, 0, dc.NativePtr); break;
                case Kind.I8: blas.GemmInt8(shape, da.NativePtr, db.NativePtr, dc.NativePtr); break;
                default: blas.GemmEx(shape, 1, da.NativePtr, CudaDataType.R16F, db.NativePtr, CudaDataType.R16F, 0, dc.NativePtr, CudaDataType.R32F, CublasComputeType.F32); break;
            }
        }
        try
        {
            Call(); Call();
            acc.Synchronize();
            int calls = 0;
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < seconds || calls < 3)
            {
                for (int i = 0; i < 5; i++) Call();
                calls += 5;
                acc.Synchronize();
            }
            double s = clock.Elapsed.TotalSeconds / calls;
            Console.WriteLine($"| {label} | {m} | {n} | {k} | {(transB ? "A·Bᵀ" : "A·B")} | {2.0 * m * n * k / s / 1e12:F1} | {s * 1e3:F3} |");
        }
        catch (CublasException e)
        {
            Console.WriteLine($"| {label} | {m} | {n} | {k} | {(transB ? "A·Bᵀ" : "A·B")} | {e.Message} | |");
        }
        finally
        {
            blas.SetMathMode(CublasMathMode.Default);
        }
    }
}
