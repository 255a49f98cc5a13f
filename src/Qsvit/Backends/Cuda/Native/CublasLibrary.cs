using System.Runtime.InteropServices;

namespace Qsvit.Backends.Cuda.Native;

/// <summary>The cuBLAS entry points, resolved once per process. <see cref="Error"/> is set when the library is absent.</summary>
internal sealed unsafe class CublasLibrary
{
    public static readonly Lazy<CublasLibrary> Shared = new(() => Load(Cublas.LibraryNames, NativeLibraryResolver.CudaDirectories()));

    public NativeLibraryResolution Resolution { get; }
    public string? Error { get; }

    public readonly delegate* unmanaged<IntPtr*, int> Create;
    public readonly delegate* unmanaged<IntPtr, int> Destroy;
    public readonly delegate* unmanaged<IntPtr, int*, int> GetVersion;
    public readonly delegate* unmanaged<IntPtr, IntPtr, int> SetStream;
    public readonly delegate* unmanaged<IntPtr, int, int> SetMathMode;
    private readonly delegate* unmanaged<int, byte*> _getStatusString;

    // cublasSgemm_v2(handle, transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc)
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, IntPtr, int, float*, IntPtr, int, int> Sgemm;
    // cublasSgemmStridedBatched(..., A, lda, strideA, B, ldb, strideB, *beta, C, ldc, strideC, batchCount)
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, long, IntPtr, int, long, float*, IntPtr, int, long, int, int> SgemmStridedBatched;
    // cublasGemmEx(handle, transa, transb, m, n, k, *alpha, A, Atype, lda, B, Btype, ldb, *beta, C, Ctype, ldc, computeType, algo)
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, IntPtr, int, int, void*, IntPtr, int, int, int, int, int> GemmEx;
    // cublasGemmStridedBatchedEx(..., A, Atype, lda, strideA, B, Btype, ldb, strideB, *beta, C, Ctype, ldc, strideC, batchCount, computeType, algo)
    public readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, long, IntPtr, int, int, long, void*, IntPtr, int, int, long, int, int, int, int> GemmStridedBatchedEx;

    private CublasLibrary(NativeLibraryResolution resolution, string? error)
    {
        Resolution = resolution;
        Error = error;
        if (error is not null) return;
        Create = (delegate* unmanaged<IntPtr*, int>)NativeLibraryResolver.Export(resolution, "cublasCreate_v2");
        Destroy = (delegate* unmanaged<IntPtr, int>)NativeLibraryResolver.Export(resolution, "cublasDestroy_v2");
        GetVersion = (delegate* unmanaged<IntPtr, int*, int>)NativeLibraryResolver.Export(resolution, "cublasGetVersion_v2");
        SetStream = (delegate* unmanaged<IntPtr, IntPtr, int>)NativeLibraryResolver.Export(resolution, "cublasSetStream_v2");
        SetMathMode = (delegate* unmanaged<IntPtr, int, int>)NativeLibraryResolver.Export(resolution, "cublasSetMathMode");
        _getStatusString = (delegate* unmanaged<int, byte*>)NativeLibraryResolver.OptionalExport(resolution, "cublasGetStatusString");
        Sgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, IntPtr, int, float*, IntPtr, int, int>)
            NativeLibraryResolver.Export(resolution, "cublasSgemm_v2");
        SgemmStridedBatched = (delegate* unmanaged<IntPtr, int, int, int, int, int, float*, IntPtr, int, long, IntPtr, int, long, float*, IntPtr, int, long, int, int>)
            NativeLibraryResolver.Export(resolution, "cublasSgemmStridedBatched");
        GemmEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, IntPtr, int, int, void*, IntPtr, int, int, int, int, int>)
            NativeLibraryResolver.Export(resolution, "cublasGemmEx");
        GemmStridedBatchedEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, long, IntPtr, int, int, long, void*, IntPtr, int, int, long, int, int, int, int>)
            NativeLibraryResolver.Export(resolution, "cublasGemmStridedBatchedEx");
    }

    /// <summary>cuBLAS's own text for a status, when the library has cublasGetStatusString.</summary>
    public string? StatusString(CublasStatus status)
        => _getStatusString == null ? null : Marshal.PtrToStringUTF8((IntPtr)_getStatusString((int)status));

    /// <summary>
    /// Loads the first cuBLAS of <paramref name="names"/> that opens. Each directory's cublasLt of the same major version is
    /// loaded first, because libcublas needs it and the directory may not be on the loader's path.
    /// </summary>
    internal static CublasLibrary Load(IReadOnlyList<string> names, IReadOnlyList<string> directories, Func<string, IntPtr>? load = null)
    {
        load ??= path => NativeLibrary.TryLoad(path, out var h) ? h : IntPtr.Zero;
        var resolution = NativeLibraryResolver.Resolve(names, directories, path =>
        {
            var lt = CompanionLt(path);
            if (lt is not null) load(lt);
            return load(path);
        });
        if (!resolution.Found) return new CublasLibrary(resolution, resolution.Describe(string.Join(" or ", names)));
        try
        {
            return new CublasLibrary(resolution, null);
        }
        catch (QsvitException e) // a library without one of the entry points: as unusable as an absent one
        {
            return new CublasLibrary(resolution, e.Message);
        }
    }

    /// <summary>libcublas.so.13 → libcublasLt.so.13 in the same directory; cublas64_13.dll → cublasLt64_13.dll.</summary>
    internal static string? CompanionLt(string path)
    {
        var file = Path.GetFileName(path);
        string? lt = file.StartsWith("libcublas.", StringComparison.Ordinal) ? "libcublasLt." + file["libcublas.".Length..]
            : file.StartsWith("cublas64_", StringComparison.Ordinal) ? "cublasLt64_" + file["cublas64_".Length..]
            : null;
        if (lt is null) return null;
        var dir = Path.GetDirectoryName(path);
        return string.IsNullOrEmpty(dir) ? lt : Path.Combine(dir, lt);
    }
}
