using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Qsvit.Backends.Cuda.Native;

/// <summary>
/// A cuBLAS handle and the GEMMs qsvit needs, row-major (see <see cref="RowMajorGemm"/>), on raw device pointers (an ILGPU
/// buffer's <c>NativePtr</c>, for instance) and an optional CUDA stream. The library is resolved at first use:
/// libcublas.so.13, then .so.12, in the CUDA directories, then by bare name; when none loads, <see cref="TryCreate"/>
/// returns false with the paths it tried, so the caller can fall back to its own kernels.
/// </summary>
/// <remarks>
/// A new handle uses <see cref="CublasMathMode.Default"/> (no TF32): fp32 GEMMs round as fp32, as PyTorch with TF32
/// off. Scalars are host values (cuBLAS's default pointer mode). A handle is not thread-safe: one per stream/thread.
/// Calls are asynchronous on the stream; errors of earlier asynchronous work can surface in a later call. cuBLAS gives
/// bit-identical results from run to run on GPUs of one architecture and SM count with one stream per handle; not across
/// cuBLAS versions, and not equal to qsvit's CPU kernels (another summation order).
/// <code>
/// if (Cublas.TryCreate(out var blas, out var why)) blas.SetStream(((CudaStream)accelerator.DefaultStream).StreamPtr);
/// // weights W [cout, k] times im2col'd frames X [pixels, k] (both K-contiguous): Y [cout, pixels]
/// blas.Sgemm(RowMajorGemm.Dense(cout, pixels, k, transB: true), 1f, w.NativePtr, x.NativePtr, 0f, y.NativePtr);
/// </code>
/// </remarks>
public sealed unsafe class Cublas : IDisposable
{
    private readonly CublasLibrary _lib;
    private IntPtr _handle;

    private Cublas(CublasLibrary lib, IntPtr handle)
    {
        _lib = lib;
        _handle = handle;
    }

    /// <summary>The file that was loaded, e.g. /usr/local/cuda/lib64/libcublas.so.13.</summary>
    public string LibraryPath => _lib.Resolution.Path!;

    /// <summary>cuBLAS's version number (e.g. 130000 for 13.0.0).</summary>
    public int Version
    {
        get
        {
            int v;
            Check("cublasGetVersion_v2", _lib.GetVersion(Handle, &v));
            return v;
        }
    }

    /// <summary>The library names tried, in order (cuBLAS 13 first).</summary>
    public static IReadOnlyList<string> LibraryNames => OperatingSystem.IsWindows()
        ? ["cublas64_13.dll", "cublas64_12.dll"]
        : ["libcublas.so.13", "libcublas.so.12"];

    /// <summary>A handle, or false and why not (library not found, or no usable GPU/driver), without throwing.</summary>
    public static bool TryCreate([NotNullWhen(true)] out Cublas? cublas, out string reason)
    {
        cublas = null;
        var lib = CublasLibrary.Shared.Value;
        if (lib.Error is not null) { reason = lib.Error; return false; }
        IntPtr handle;
        var status = (CublasStatus)lib.Create(&handle);
        if (status != CublasStatus.Success)
        {
            reason = $"{lib.Resolution.Path}: " + CublasStatusText.Message("cublasCreate_v2", status, lib.StatusString(status));
            return false;
        }
        cublas = new Cublas(lib, handle);
        try
        {
            cublas.SetMathMode(CublasMathMode.Default);
        }
        catch
        {
            cublas.Dispose();
            throw;
        }
        reason = "";
        return true;
    }

    /// <summary>A handle, or a <see cref="QsvitException"/> saying what was looked for and what failed.</summary>
    public static Cublas Create()
        => TryCreate(out var cublas, out var reason) ? cublas : throw new QsvitException($"cuBLAS is not usable: {reason}");

    /// <summary>Work is queued on <paramref name="stream"/> (a CUstream; zero is the legacy default stream).</summary>
    public void SetStream(IntPtr stream) => Check("cublasSetStream_v2", _lib.SetStream(Handle, stream));

    public void SetMathMode(CublasMathMode mode)
    {
        if (!Enum.IsDefined(mode)) throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown cuBLAS math mode.");
        Check("cublasSetMathMode", _lib.SetMathMode(Handle, (int)mode));
    }

    /// <summary>C = α·op(A)·op(B) + β·C in fp32, row-major.</summary>
    public void Sgemm(RowMajorGemm shape, float alpha, IntPtr a, IntPtr b, float beta, IntPtr c)
    {
        shape.Validate();
        shape.ValidatePointers(a, b, c);
        if (shape.M == 0 || shape.N == 0) return;
        var g = shape.ToColumnMajor();
        Check("cublasSgemm_v2", _lib.Sgemm(Handle, g.TransA, g.TransB, g.M, g.N, g.K, &alpha, b, g.Lda, a, g.Ldb, &beta, c, g.Ldc));
    }

    /// <summary><paramref name="batchCount"/> fp32 GEMMs; matrix i starts i·stride elements after each base pointer.</summary>
    public void SgemmStridedBatched(RowMajorGemm shape, float alpha, IntPtr a, long strideA, IntPtr b, long strideB, float beta,
        IntPtr c, long strideC, int batchCount)
    {
        shape.Validate();
        shape.ValidateBatch(strideA, strideB, strideC, batchCount);
        shape.ValidatePointers(a, b, c);
        if (shape.M == 0 || shape.N == 0 || batchCount == 0) return;
        var g = shape.ToColumnMajor();
        Check("cublasSgemmStridedBatched", _lib.SgemmStridedBatched(Handle, g.TransA, g.TransB, g.M, g.N, g.K, &alpha,
            b, g.Lda, strideB, a, g.Ldb, strideA, &beta, c, g.Ldc, strideC, batchCount));
    }

    /// <summary>
    /// Mixed-type GEMM (cublasGemmEx), row-major. α and β are converted to the compute type's scalar (int32 for
    /// <see cref="CublasComputeType.I32"/>, where they must be integers; fp16 for F16; else fp32). For the exact integer
    /// path use A, B = <see cref="CudaDataType.R8I"/>, C = <see cref="CudaDataType.R32I"/>, compute I32: every product
    /// and sum is an exact int32 (as long as |sum| &lt; 2³¹).
    /// </summary>
    public void GemmEx(RowMajorGemm shape, double alpha, IntPtr a, CudaDataType aType, IntPtr b, CudaDataType bType,
        double beta, IntPtr c, CudaDataType cType, CublasComputeType compute)
    {
        shape.Validate();
        GemmTypes.Validate(aType, bType, cType, compute);
        shape.ValidatePointers(a, b, c);
        if (aType == CudaDataType.R8I) shape.ValidateInt8(a, b);
        if (shape.M == 0 || shape.N == 0) return;
        var g = shape.ToColumnMajor();
        var (al, be) = GemmScalars.For(compute, alpha, beta);
        Check("cublasGemmEx", _lib.GemmEx(Handle, g.TransA, g.TransB, g.M, g.N, g.K, &al, b, (int)bType, g.Lda,
            a, (int)aType, g.Ldb, &be, c, (int)cType, g.Ldc, (int)compute, DefaultAlgorithm));
    }

    /// <summary>Strided batch of <see cref="GemmEx"/> (cublasGemmStridedBatchedEx); strides in elements.</summary>
    public void GemmStridedBatchedEx(RowMajorGemm shape, double alpha, IntPtr a, CudaDataType aType, long strideA, IntPtr b,
        CudaDataType bType, long strideB, double beta, IntPtr c, CudaDataType cType, long strideC, int batchCount,
        CublasComputeType compute)
    {
        shape.Validate();
        shape.ValidateBatch(strideA, strideB, strideC, batchCount);
        GemmTypes.Validate(aType, bType, cType, compute);
        shape.ValidatePointers(a, b, c);
        if (aType == CudaDataType.R8I) shape.ValidateInt8(a, b, strideA, strideB);
        if (shape.M == 0 || shape.N == 0 || batchCount == 0) return;
        var g = shape.ToColumnMajor();
        var (al, be) = GemmScalars.For(compute, alpha, beta);
        Check("cublasGemmStridedBatchedEx", _lib.GemmStridedBatchedEx(Handle, g.TransA, g.TransB, g.M, g.N, g.K, &al,
            b, (int)bType, g.Lda, strideB, a, (int)aType, g.Ldb, strideA, &be, c, (int)cType, g.Ldc,
            strideC, batchCount, (int)compute, DefaultAlgorithm));
    }

    /// <summary>
    /// Exact int8 × int8 → int32 GEMM: C = op(A)·op(B) (or C += … when <paramref name="accumulate"/>). lda and ldb must be
    /// multiples of 4. Lay both operands K-contiguous (A [m,k], B stored [n,k], <c>TransB</c>): on an H200 that ran
    /// 4096³ at 1,600 TOPS against 127 TOPS with B stored [k,n].
    /// </summary>
    public void GemmInt8(RowMajorGemm shape, IntPtr a, IntPtr b, IntPtr c, bool accumulate = false)
        => GemmEx(shape, 1, a, CudaDataType.R8I, b, CudaDataType.R8I, accumulate ? 1 : 0, c, CudaDataType.R32I, CublasComputeType.I32);

    public void Dispose()
    {
        if (_handle == IntPtr.Zero) return;
        var h = _handle;
        _handle = IntPtr.Zero;
        _lib.Destroy(h); // nothing useful to do with a failure while releasing
    }

    /// <summary>CUBLAS_GEMM_DEFAULT: cuBLAS's heuristic (it uses tensor cores where the types allow).</summary>
    private const int DefaultAlgorithm = -1;

    private IntPtr Handle => _handle != IntPtr.Zero ? _handle : throw new ObjectDisposedException(nameof(Cublas));

    private void Check(string function, int status)
    {
        if (status == 0) return;
        var s = (CublasStatus)status;
        throw new CublasException(function, s, _lib.StatusString(s));
    }
}

/// <summary>Which A/B/C types go with which compute type (cuBLAS's cublasGemmEx table, the rows qsvit uses).</summary>
public static class GemmTypes
{
    public static void Validate(CudaDataType a, CudaDataType b, CudaDataType c, CublasComputeType compute)
    {
        if (!Enum.IsDefined(a) || !Enum.IsDefined(b) || !Enum.IsDefined(c))
            throw new ArgumentOutOfRangeException(nameof(a), $"Unknown CUDA data type among A={a}, B={b}, C={c}.");
        if (a != b) throw new ArgumentException($"A and B must have one type (A={a}, B={b}).", nameof(b));
        bool ok = compute switch
        {
            CublasComputeType.I32 or CublasComputeType.I32Pedantic => a == CudaDataType.R8I && c == CudaDataType.R32I,
            CublasComputeType.F16 or CublasComputeType.F16Pedantic => a == CudaDataType.R16F && c == CudaDataType.R16F,
            CublasComputeType.F32 or CublasComputeType.F32Pedantic => (a, c) is (CudaDataType.R32F, CudaDataType.R32F)
                or (CudaDataType.R16F, CudaDataType.R32F) or (CudaDataType.R16F, CudaDataType.R16F)
                or (CudaDataType.R16BF, CudaDataType.R32F) or (CudaDataType.R16BF, CudaDataType.R16BF)
                or (CudaDataType.R8I, CudaDataType.R32F),
            CublasComputeType.F32FastF16 or CublasComputeType.F32FastBF16 or CublasComputeType.F32FastTF32
                => a == CudaDataType.R32F && c == CudaDataType.R32F,
            _ => throw new ArgumentOutOfRangeException(nameof(compute), compute, "Unknown cuBLAS compute type."),
        };
        if (!ok)
            throw new ArgumentException($"cuBLAS has no GEMM with A/B={a}, C={c} and compute type {compute}.", nameof(compute));
    }
}

/// <summary>α and β in the compute type's scalar type, in the low bytes of a long (cuBLAS reads them through untyped
/// pointers; little-endian hosts only, as every CUDA host is).</summary>
internal static class GemmScalars
{
    public static (long Alpha, long Beta) For(CublasComputeType compute, double alpha, double beta)
    {
        System.Diagnostics.Debug.Assert(BitConverter.IsLittleEndian);
        return compute switch
        {
            CublasComputeType.I32 or CublasComputeType.I32Pedantic => (ToInt(alpha, nameof(alpha)), ToInt(beta, nameof(beta))),
            CublasComputeType.F16 or CublasComputeType.F16Pedantic
                => ((ushort)BitConverter.HalfToInt16Bits((Half)alpha), (ushort)BitConverter.HalfToInt16Bits((Half)beta)),
            _ => ((uint)BitConverter.SingleToInt32Bits((float)alpha), (uint)BitConverter.SingleToInt32Bits((float)beta)),
        };
    }

    private static long ToInt(double value, string name)
    {
        if (value != Math.Floor(value) || value < int.MinValue || value > int.MaxValue)
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be an int32 for an integer compute type.");
        return (uint)(int)value;
    }
}
