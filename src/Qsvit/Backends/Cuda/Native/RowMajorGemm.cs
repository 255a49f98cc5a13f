namespace Qsvit.Backends.Cuda.Native;

/// <summary>
/// A row-major GEMM C[m,n] = α·op(A)·op(B) + β·C as qsvit states it, and the column-major cuBLAS call that computes it.
/// A is m×k (stored k×m when <see cref="TransA"/>) with row stride <see cref="Lda"/>; B is k×n (stored n×k when
/// <see cref="TransB"/>) with row stride <see cref="Ldb"/>; C is m×n with row stride <see cref="Ldc"/>. Strides of
/// batched calls are in elements between consecutive matrices.
/// </summary>
/// <remarks>
/// A row-major matrix is the column-major view of its transpose, so Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B first, the
/// dimensions n, m, k, and the same leading dimensions; no data moves.
/// </remarks>
public readonly record struct RowMajorGemm(bool TransA, bool TransB, int M, int N, int K, int Lda, int Ldb, int Ldc)
{
    /// <summary>Natural (dense) leading dimensions (at least 1, as cuBLAS requires).</summary>
    public static RowMajorGemm Dense(int m, int n, int k, bool transA = false, bool transB = false)
        => new(transA, transB, m, n, k, Math.Max(1, transA ? m : k), Math.Max(1, transB ? k : n), Math.Max(1, n));

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the argument that cannot describe these matrices.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(M, "m");
        ArgumentOutOfRangeException.ThrowIfNegative(N, "n");
        ArgumentOutOfRangeException.ThrowIfNegative(K, "k");
        CheckLd(Lda, TransA ? M : K, "lda", TransA ? "m (A is stored k×m)" : "k (A is stored m×k)");
        CheckLd(Ldb, TransB ? K : N, "ldb", TransB ? "k (B is stored n×k)" : "n (B is stored k×n)");
        CheckLd(Ldc, N, "ldc", "n");
    }

    private static void CheckLd(int ld, int columns, string name, string what)
    {
        if (ld < Math.Max(1, columns))
            throw new ArgumentOutOfRangeException(name, ld, $"{name} = {ld} is less than {what} = {columns} (row-major row stride, at least 1).");
    }

    /// <summary>Elements of C's buffer that one matrix spans ((m-1)·ldc + n); a batch's C stride must be at least this.</summary>
    public long CSpan => M == 0 || N == 0 ? 0 : (long)(M - 1) * Ldc + N;

    /// <summary>Pointers must be non-null wherever the product reads or writes something.</summary>
    public void ValidatePointers(IntPtr a, IntPtr b, IntPtr c)
    {
        if (M == 0 || N == 0) return;
        if (c == IntPtr.Zero) throw new ArgumentNullException(nameof(c), "C is null but the product is not empty.");
        if (K == 0) return;
        if (a == IntPtr.Zero) throw new ArgumentNullException(nameof(a), "A is null but k > 0.");
        if (b == IntPtr.Zero) throw new ArgumentNullException(nameof(b), "B is null but k > 0.");
    }

    /// <summary>Batch arguments: count ≥ 0, strides ≥ 0 (0 broadcasts A or B), C's stride keeps the outputs apart.</summary>
    public void ValidateBatch(long strideA, long strideB, long strideC, int batchCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchCount);
        ArgumentOutOfRangeException.ThrowIfNegative(strideA);
        ArgumentOutOfRangeException.ThrowIfNegative(strideB);
        if (batchCount > 1 && strideC < CSpan)
            throw new ArgumentOutOfRangeException(nameof(strideC), strideC,
                $"strideC = {strideC} would overlap consecutive outputs: one C spans (m-1)·ldc + n = {CSpan} elements.");
    }

    /// <summary>
    /// cuBLAS's int8 GEMMs (measured on cuBLAS 13.1, H200) return NOT_SUPPORTED unless lda and ldb are multiples of 4;
    /// qsvit also keeps batch strides and pointers 4-byte aligned so every matrix starts aligned. Pad K with zeros.
    /// </summary>
    public void ValidateInt8(IntPtr a, IntPtr b, long strideA = 0, long strideB = 0)
    {
        if (Lda % 4 != 0 || Ldb % 4 != 0)
            throw new ArgumentException($"int8 GEMMs need lda and ldb that are multiples of 4 (lda = {Lda}, ldb = {Ldb}): pad K with zeros to a multiple of 4.");
        if (strideA % 4 != 0 || strideB % 4 != 0)
            throw new ArgumentException($"int8 batch strides must be multiples of 4 (strideA = {strideA}, strideB = {strideB}).");
        if (a % 4 != 0 || b % 4 != 0)
            throw new ArgumentException("int8 GEMM operands must be 4-byte aligned device pointers.");
    }

    /// <summary>The column-major cuBLAS arguments (transa, transb, m, n, k, lda, ldb, ldc) with B passed as cuBLAS's A.</summary>
    public ColumnMajorGemm ToColumnMajor() => new(TransB ? 1 : 0, TransA ? 1 : 0, N, M, K, Ldb, Lda, Ldc);
}

/// <summary>The arguments cuBLAS receives (cublasOperation_t 0 = N, 1 = T); its A operand is our B.</summary>
public readonly record struct ColumnMajorGemm(int TransA, int TransB, int M, int N, int K, int Lda, int Ldb, int Ldc);
