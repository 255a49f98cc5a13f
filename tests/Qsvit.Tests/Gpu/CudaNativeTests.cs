using Qsvit.Backends.Cuda.Native;

namespace Qsvit.Tests.Gpu;

/// <summary>The cuBLAS/NVML bindings without a GPU: resolution, status messages, argument checks, row→column-major mapping.</summary>
public class CudaNativeTests
{
    private static readonly string[] Dirs = ["/opt/cuda-a/lib64", "/opt/cuda-b/lib64"];

    [Fact]
    public void Resolution_tries_every_directory_for_each_name_in_order_then_bare_names()
    {
        var tried = new List<string>();
        var r = NativeLibraryResolver.Resolve(["libx.so.13", "libx.so.12"], Dirs, p => { tried.Add(p); return IntPtr.Zero; });
        Assert.False(r.Found);
        Assert.Equal(new[]
        {
            "/opt/cuda-a/lib64/libx.so.13", "/opt/cuda-b/lib64/libx.so.13", "/opt/cuda-a/lib64/libx.so.12",
            "/opt/cuda-b/lib64/libx.so.12", "libx.so.13", "libx.so.12",
        }, tried);
        Assert.Equal(tried, r.Tried);
        var message = r.Describe("libx");
        Assert.Contains("not found", message);
        Assert.Contains("/opt/cuda-b/lib64/libx.so.12", message);
    }

    [Fact]
    public void Resolution_stops_at_the_first_library_that_loads()
    {
        var r = NativeLibraryResolver.Resolve(["libx.so.13", "libx.so.12"], Dirs,
            p => p == "/opt/cuda-b/lib64/libx.so.12" || p == "libx.so.13" ? 42 : IntPtr.Zero);
        Assert.True(r.Found);
        Assert.Equal("/opt/cuda-b/lib64/libx.so.12", r.Path); // a versioned directory beats the loader's search path
        Assert.Equal(4, r.Tried.Count);
    }

    [Fact]
    public void Cublas_library_absent_gives_a_clear_error_naming_what_was_looked_for()
    {
        var loaded = new List<string>();
        var lib = CublasLibrary.Load(Cublas.LibraryNames, ["/nonexistent/cuda/lib64"], p => { loaded.Add(p); return IntPtr.Zero; });
        Assert.NotNull(lib.Error);
        Assert.Contains(Cublas.LibraryNames[0], lib.Error);
        Assert.Contains("/nonexistent/cuda/lib64/", lib.Error);
        // libcublas needs its cublasLt, which may not be on the loader's path: the same directory's is loaded first.
        if (!OperatingSystem.IsWindows())
            Assert.Equal("/nonexistent/cuda/lib64/libcublasLt.so.13", loaded[0]);
    }

    [Fact]
    public void Companion_cublasLt_is_named_after_the_cublas_file()
    {
        Assert.Equal("/usr/local/cuda/lib64/libcublasLt.so.13", CublasLibrary.CompanionLt("/usr/local/cuda/lib64/libcublas.so.13"));
        Assert.Equal("libcublasLt.so.12", CublasLibrary.CompanionLt("libcublas.so.12"));
        Assert.Equal("cublasLt64_13.dll", CublasLibrary.CompanionLt("cublas64_13.dll"));
        Assert.Null(CublasLibrary.CompanionLt("libfoo.so"));
    }

    [Fact]
    public void TryCreate_never_throws_and_Create_fails_with_QsvitException_when_unusable()
    {
        // CI has no GPU: either the library is missing or cublasCreate fails; both must come back as a reason.
        if (Cublas.TryCreate(out var blas, out var reason))
        {
            blas.Dispose(); // a GPU machine: nothing to check here
            return;
        }
        Assert.False(string.IsNullOrWhiteSpace(reason));
        var e = Assert.Throws<QsvitException>(() => Cublas.Create());
        Assert.StartsWith("cuBLAS is not usable: ", e.Message);
    }

    [Theory]
    [InlineData(CublasStatus.NotInitialized, "CUBLAS_STATUS_NOT_INITIALIZED", "no usable CUDA GPU")]
    [InlineData(CublasStatus.AllocFailed, "CUBLAS_STATUS_ALLOC_FAILED", "GPU memory")]
    [InlineData(CublasStatus.InvalidValue, "CUBLAS_STATUS_INVALID_VALUE", "argument")]
    [InlineData(CublasStatus.ArchMismatch, "CUBLAS_STATUS_ARCH_MISMATCH", "architecture")]
    [InlineData(CublasStatus.MappingError, "CUBLAS_STATUS_MAPPING_ERROR", "pointer")]
    [InlineData(CublasStatus.ExecutionFailed, "CUBLAS_STATUS_EXECUTION_FAILED", "kernel")]
    [InlineData(CublasStatus.InternalError, "CUBLAS_STATUS_INTERNAL_ERROR", "asynchronous")]
    [InlineData(CublasStatus.NotSupported, "CUBLAS_STATUS_NOT_SUPPORTED", "not supported")]
    [InlineData(CublasStatus.LicenseError, "CUBLAS_STATUS_LICENSE_ERROR", "license")]
    public void Status_codes_become_messages_with_name_and_meaning(CublasStatus status, string name, string meaning)
    {
        var e = new CublasException("cublasGemmEx", status, "the library's own text");
        Assert.IsAssignableFrom<QsvitException>(e);
        Assert.Equal(status, e.Status);
        Assert.StartsWith($"cublasGemmEx failed: {name} [the library's own text]: ", e.Message);
        Assert.Contains(meaning, e.Message);
    }

    [Fact]
    public void Unknown_status_codes_keep_their_number()
    {
        var e = new CublasException("cublasSgemm_v2", (CublasStatus)42);
        Assert.Equal("cublasSgemm_v2 failed: cuBLAS status 42: unknown status.", e.Message);
    }

    [Fact]
    public void Row_major_gemm_maps_to_the_transposed_column_major_call()
    {
        // C[m,n] = A[m,k]·B[k,n] row-major is Cᵀ[n,m] = Bᵀ·Aᵀ column-major: B first, dimensions n, m, k.
        Assert.Equal(new ColumnMajorGemm(0, 0, 5, 3, 7, 5, 7, 5), RowMajorGemm.Dense(3, 5, 7).ToColumnMajor());
        // A stored [k,m] and B stored [n,k], padded rows: the flags swap with the operands, leading dimensions stay.
        var g = new RowMajorGemm(true, true, 3, 5, 7, 4, 8, 6).ToColumnMajor();
        Assert.Equal(new ColumnMajorGemm(1, 1, 5, 3, 7, 8, 4, 6), g);
        Assert.Equal(new ColumnMajorGemm(1, 0, 5, 3, 7, 7, 7, 5), RowMajorGemm.Dense(3, 5, 7, transB: true).ToColumnMajor());
    }

    [Theory]
    [InlineData(false, false, 3, 5, 7, 6, 5, 5, "lda")]   // A is 3×7: lda ≥ 7
    [InlineData(true, false, 3, 5, 7, 2, 5, 5, "lda")]    // A stored 7×3: lda ≥ 3
    [InlineData(false, false, 3, 5, 7, 7, 4, 5, "ldb")]   // B is 7×5: ldb ≥ 5
    [InlineData(false, true, 3, 5, 7, 7, 6, 5, "ldb")]    // B stored 5×7: ldb ≥ 7
    [InlineData(false, false, 3, 5, 7, 7, 5, 4, "ldc")]   // C is 3×5: ldc ≥ 5
    [InlineData(false, false, -1, 5, 7, 7, 5, 5, "m")]
    [InlineData(false, false, 3, -5, 7, 7, 5, 5, "n")]
    [InlineData(false, false, 3, 5, -7, 7, 5, 5, "k")]
    [InlineData(false, false, 3, 0, 0, 0, 1, 1, "lda")]   // leading dimensions are at least 1 even for empty matrices
    public void Bad_shapes_name_the_argument(bool ta, bool tb, int m, int n, int k, int lda, int ldb, int ldc, string name)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RowMajorGemm(ta, tb, m, n, k, lda, ldb, ldc).Validate());
        Assert.Equal(name, e.ParamName);
    }

    [Fact]
    public void Padded_shapes_are_valid()
    {
        new RowMajorGemm(false, true, 3, 5, 7, 9, 8, 6).Validate();
        RowMajorGemm.Dense(0, 0, 0).Validate();
    }

    [Fact]
    public void Null_pointers_are_refused_only_where_data_is_touched()
    {
        var shape = RowMajorGemm.Dense(2, 2, 2);
        Assert.Equal("c", Assert.Throws<ArgumentNullException>(() => shape.ValidatePointers(8, 8, 0)).ParamName);
        Assert.Equal("a", Assert.Throws<ArgumentNullException>(() => shape.ValidatePointers(0, 8, 8)).ParamName);
        Assert.Equal("b", Assert.Throws<ArgumentNullException>(() => shape.ValidatePointers(8, 0, 8)).ParamName);
        RowMajorGemm.Dense(2, 2, 0).ValidatePointers(0, 0, 8); // k = 0: C = β·C reads no A or B
        RowMajorGemm.Dense(0, 2, 2).ValidatePointers(0, 0, 0); // empty product
    }

    [Fact]
    public void Batch_strides_must_keep_outputs_apart()
    {
        var shape = new RowMajorGemm(false, false, 3, 5, 7, 7, 5, 8); // one C spans 2·8 + 5 = 21 elements
        Assert.Equal(21, shape.CSpan);
        shape.ValidateBatch(21, 0, 21, 4); // B broadcast (stride 0) is fine
        shape.ValidateBatch(0, 0, 0, 1);   // one matrix: C's stride is irrelevant
        Assert.Equal("strideC", Assert.Throws<ArgumentOutOfRangeException>(() => shape.ValidateBatch(21, 35, 20, 2)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => shape.ValidateBatch(-1, 35, 21, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => shape.ValidateBatch(21, 35, 21, -1));
    }

    [Fact]
    public void Int8_gemms_need_leading_dimensions_and_strides_in_multiples_of_4()
    {
        RowMajorGemm.Dense(37, 29, 52, transB: true).ValidateInt8(256, 512, 37 * 52, 29 * 52);
        var e = Assert.Throws<ArgumentException>(() => RowMajorGemm.Dense(37, 29, 51, transB: true).ValidateInt8(256, 512));
        Assert.Contains("multiples of 4 (lda = 51, ldb = 51)", e.Message);
        Assert.Throws<ArgumentException>(() => RowMajorGemm.Dense(4, 4, 4).ValidateInt8(256, 512, 6, 0));
        Assert.Throws<ArgumentException>(() => RowMajorGemm.Dense(4, 4, 4).ValidateInt8(257, 512));
    }

    [Theory]
    [InlineData(CudaDataType.R8I, CudaDataType.R32I, CublasComputeType.I32)]
    [InlineData(CudaDataType.R8I, CudaDataType.R32I, CublasComputeType.I32Pedantic)]
    [InlineData(CudaDataType.R16F, CudaDataType.R32F, CublasComputeType.F32)]
    [InlineData(CudaDataType.R32F, CudaDataType.R32F, CublasComputeType.F32Pedantic)]
    [InlineData(CudaDataType.R16BF, CudaDataType.R32F, CublasComputeType.F32)]
    [InlineData(CudaDataType.R16F, CudaDataType.R16F, CublasComputeType.F16)]
    public void Supported_type_combinations_pass(CudaDataType ab, CudaDataType c, CublasComputeType compute)
        => GemmTypes.Validate(ab, ab, c, compute);

    [Theory]
    [InlineData(CudaDataType.R8I, CudaDataType.R32F, CublasComputeType.I32)]   // int32 compute writes int32
    [InlineData(CudaDataType.R16F, CudaDataType.R32I, CublasComputeType.I32)]
    [InlineData(CudaDataType.R32F, CudaDataType.R32F, CublasComputeType.F16)]
    [InlineData(CudaDataType.R16F, CudaDataType.R32F, CublasComputeType.F32FastTF32)]
    public void Unsupported_type_combinations_are_refused_before_any_call(CudaDataType ab, CudaDataType c, CublasComputeType compute)
    {
        var e = Assert.Throws<ArgumentException>(() => GemmTypes.Validate(ab, ab, c, compute));
        Assert.Contains("cuBLAS has no GEMM", e.Message);
    }

    [Fact]
    public void Mixed_operand_types_and_unknown_enums_are_refused()
    {
        Assert.Throws<ArgumentException>(() => GemmTypes.Validate(CudaDataType.R8I, CudaDataType.R16F, CudaDataType.R32I, CublasComputeType.I32));
        Assert.Throws<ArgumentOutOfRangeException>(() => GemmTypes.Validate((CudaDataType)99, (CudaDataType)99, CudaDataType.R32F, CublasComputeType.F32));
        Assert.Throws<ArgumentOutOfRangeException>(() => GemmTypes.Validate(CudaDataType.R32F, CudaDataType.R32F, CudaDataType.R32F, (CublasComputeType)1));
    }

    [Fact]
    public void Scalars_take_the_compute_types_representation()
    {
        Assert.Equal((1L, 0L), GemmScalars.For(CublasComputeType.I32, 1, 0));
        Assert.Equal((0xFFFFFFFFL, 3L), GemmScalars.For(CublasComputeType.I32, -1, 3)); // int32 bits in the low word
        Assert.Equal(((long)BitConverter.SingleToUInt32Bits(0.5f), (long)BitConverter.SingleToUInt32Bits(1f)), GemmScalars.For(CublasComputeType.F32, 0.5, 1));
        Assert.Equal(((long)BitConverter.HalfToUInt16Bits((Half)2), 0L), GemmScalars.For(CublasComputeType.F16, 2, 0));
        Assert.Equal("alpha", Assert.Throws<ArgumentOutOfRangeException>(() => GemmScalars.For(CublasComputeType.I32, 0.5, 0)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => GemmScalars.For(CublasComputeType.I32Pedantic, 1, 3e9));
    }

    [Fact]
    public void Power_sampler_without_NVML_reports_not_measured_and_why()
    {
        var lib = NvmlLibrary.Load(GpuPowerSampler.LibraryNames, ["/nonexistent"], _ => IntPtr.Zero);
        using var sampler = GpuPowerSampler.Start(0, null, null, lib);
        Assert.False(sampler.IsMeasuring);
        var m = sampler.Stop();
        Assert.False(m.Measured);
        Assert.Contains(GpuPowerSampler.LibraryNames[0], m.NotMeasuredReason);
        Assert.StartsWith("power not measured: NVML", m.ToString());
        Assert.True(double.IsNaN(m.JoulesPerImage(100)));
        Assert.Same(m, sampler.Stop());
    }

    [Fact]
    public void Power_sampler_on_a_machine_without_a_GPU_never_throws()
    {
        using var sampler = GpuPowerSampler.Start();
        var m = sampler.Stop();
        Assert.Equal(m.Measured, m.NotMeasuredReason is null);
    }

    [Fact]
    public void Power_samples_integrate_by_the_trapezoid_rule()
    {
        Assert.Equal(0, GpuPowerSampler.Integrate([]));
        Assert.Equal(0, GpuPowerSampler.Integrate([(0.0, 300.0)]));
        // 100 W for 1 s, then a ramp to 300 W over 2 s: 100 + 2·200 = 500 J.
        Assert.Equal(500, GpuPowerSampler.Integrate([(0.0, 100.0), (1.0, 100.0), (3.0, 300.0)]), 9);
    }

    [Fact]
    public void Measured_power_gives_joules_and_images_per_joule()
    {
        var m = new PowerMeasurement("NVML board energy counter", "NVIDIA H200", 2, 600, 300, 350, 100, 1 << 30, null);
        Assert.True(m.Measured);
        Assert.Equal(0.6, m.JoulesPerImage(1000), 12);
        Assert.Equal(1000 / 600.0, m.ImagesPerJoule(1000), 12);
        Assert.StartsWith("300.0 W average (350 W peak), 600.0 J over 2.00 s on NVIDIA H200", m.ToString());
    }

    [Fact]
    public void Power_sampler_arguments_are_checked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GpuPowerSampler.Start(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => GpuPowerSampler.Start(0, null, TimeSpan.Zero));
    }
}
