namespace Qsvit.Backends.Cuda.Native;

/// <summary>cublasStatus_t.</summary>
public enum CublasStatus
{
    Success = 0,
    NotInitialized = 1,
    AllocFailed = 3,
    InvalidValue = 7,
    ArchMismatch = 8,
    MappingError = 11,
    ExecutionFailed = 13,
    InternalError = 14,
    NotSupported = 15,
    LicenseError = 16,
}

/// <summary>cublasMath_t values that qsvit uses. TF32 is never the default: fp32 means fp32, as with PyTorch's TF32 off.</summary>
public enum CublasMathMode
{
    /// <summary>CUBLAS_DEFAULT_MATH: fp32 GEMMs in fp32; tensor cores only where inputs are already reduced precision.</summary>
    Default = 0,
    /// <summary>CUBLAS_PEDANTIC_MATH: the prescribed compute type everywhere, no reduced-precision shortcuts.</summary>
    Pedantic = 2,
    /// <summary>CUBLAS_TF32_TENSOR_OP_MATH: fp32 GEMMs on TF32 tensor cores (10-bit mantissa inputs). Opt-in only.</summary>
    Tf32 = 3,
}

/// <summary>cudaDataType_t values that the GEMMs here accept.</summary>
public enum CudaDataType
{
    R32F = 0,
    R16F = 2,
    R8I = 3,
    R32I = 10,
    R16BF = 14,
}

/// <summary>cublasComputeType_t.</summary>
public enum CublasComputeType
{
    F16 = 64,
    F16Pedantic = 65,
    F32 = 68,
    F32Pedantic = 69,
    I32 = 72,
    I32Pedantic = 73,
    F32FastF16 = 74,
    F32FastBF16 = 75,
    F32FastTF32 = 77,
}

/// <summary>A cuBLAS call that returned an error status: names the function, the status and what it usually means.</summary>
public sealed class CublasException : QsvitException
{
    public CublasException(string function, CublasStatus status, string? libraryText = null)
        : base(CublasStatusText.Message(function, status, libraryText))
    {
        Function = function;
        Status = status;
    }

    public string Function { get; }
    public CublasStatus Status { get; }
}

/// <summary>Status code → readable message, independent of the library so it works (and is tested) without a GPU.</summary>
public static class CublasStatusText
{
    public static string Name(CublasStatus status) => status switch
    {
        CublasStatus.Success => "CUBLAS_STATUS_SUCCESS",
        CublasStatus.NotInitialized => "CUBLAS_STATUS_NOT_INITIALIZED",
        CublasStatus.AllocFailed => "CUBLAS_STATUS_ALLOC_FAILED",
        CublasStatus.InvalidValue => "CUBLAS_STATUS_INVALID_VALUE",
        CublasStatus.ArchMismatch => "CUBLAS_STATUS_ARCH_MISMATCH",
        CublasStatus.MappingError => "CUBLAS_STATUS_MAPPING_ERROR",
        CublasStatus.ExecutionFailed => "CUBLAS_STATUS_EXECUTION_FAILED",
        CublasStatus.InternalError => "CUBLAS_STATUS_INTERNAL_ERROR",
        CublasStatus.NotSupported => "CUBLAS_STATUS_NOT_SUPPORTED",
        CublasStatus.LicenseError => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => $"cuBLAS status {(int)status}",
    };

    public static string Meaning(CublasStatus status) => status switch
    {
        CublasStatus.Success => "no error",
        CublasStatus.NotInitialized => "cuBLAS could not initialise: no usable CUDA GPU, or the driver is missing or older than the library",
        CublasStatus.AllocFailed => "cuBLAS could not allocate GPU memory (workspace or handle)",
        CublasStatus.InvalidValue => "an argument was rejected (sizes, leading dimensions, null pointers or an unsupported type combination)",
        CublasStatus.ArchMismatch => "the GPU's architecture lacks a feature this call needs",
        CublasStatus.MappingError => "a GPU memory access failed: a pointer is not device memory of this context",
        CublasStatus.ExecutionFailed => "the GPU kernel failed to launch or run",
        CublasStatus.InternalError => "an internal cuBLAS operation failed (often an earlier asynchronous CUDA error)",
        CublasStatus.NotSupported => "this combination of types, layout, alignment or compute type is not supported",
        CublasStatus.LicenseError => "license check failed",
        _ => "unknown status",
    };

    public static string Message(string function, CublasStatus status, string? libraryText = null)
    {
        var name = Name(status);
        var text = string.IsNullOrWhiteSpace(libraryText) || libraryText == name ? "" : $" [{libraryText}]";
        return $"{function} failed: {name}{text}: {Meaning(status)}.";
    }
}
