using System.Buffers;

namespace Qsvit.Tensors;

/// <summary>Single-precision matrix multiply, row-major, natural leading dimensions.</summary>
public static unsafe class Gemm
{
    /// <summary>Below this many flops per thread a GEMM is not split across threads.</summary>
    internal const double MinFlopsPerThread = 2e6;

    /// <summary>
    /// C[m,n] = op(A)·op(B), or C += op(A)·op(B) when <paramref name="accumulate"/>.
    /// A is [m,k] ([k,m] when <paramref name="transA"/>); B is [k,n] ([n,k] when <paramref name="transB"/>).
    /// </summary>
    public static void Sgemm(int m, int n, int k, ReadOnlySpan<float> a, bool transA, ReadOnlySpan<float> b, bool transB,
        Span<float> c, bool accumulate = false, ComputeOptions? options = null)
        => Sgemm(m, n, k, a, transA, b, transB, c, accumulate, IsaInfo.Best, (options ?? ComputeOptions.Default).Threads);

    /// <summary>
    /// C[a.Rows, n] = A·op(B) (+ rowBias[i] on row i), or C += A·op(B) when <paramref name="accumulate"/> (the bias is
    /// then ignored). A is a pre-packed constant matrix; B is [a.Cols, n] ([n, a.Cols] when <paramref name="transB"/>).
    /// </summary>
    public static void Sgemm(PackedMatrix a, int n, ReadOnlySpan<float> b, bool transB, Span<float> c,
        ReadOnlySpan<float> rowBias = default, bool accumulate = false, ComputeOptions? options = null)
        => Sgemm(a, n, b, transB, c, rowBias, accumulate, (options ?? ComputeOptions.Default).Threads, packB: null);

    /// <summary>
    /// C (+)= op(A)·op(B) on sub-matrices with explicit leading dimensions (row strides, in elements): element (i, j) of
    /// C is c[i·ldc + j]; A is m×k (k×m when <paramref name="transA"/>) with row stride <paramref name="lda"/>; B is k×n
    /// (n×k when <paramref name="transB"/>) with row stride <paramref name="ldb"/>. Slice the spans to offset them.
    /// </summary>
    public static void Sgemm(int m, int n, int k, ReadOnlySpan<float> a, int lda, bool transA, ReadOnlySpan<float> b, int ldb,
        bool transB, Span<float> c, int ldc, bool accumulate = false, ComputeOptions? options = null)
        => Sgemm(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, accumulate, IsaInfo.Best, (options ?? ComputeOptions.Default).Threads);

    internal static void Sgemm(int m, int n, int k, ReadOnlySpan<float> a, bool transA, ReadOnlySpan<float> b, bool transB,
        Span<float> c, bool accumulate, Isa isa, int threads, bool? packB = null)
        => Sgemm(m, n, k, a, transA ? m : k, transA, b, transB ? k : n, transB, c, n, accumulate, isa, threads, packB);

    internal static void Sgemm(int m, int n, int k, ReadOnlySpan<float> a, int lda, bool transA, ReadOnlySpan<float> b, int ldb,
        bool transB, Span<float> c, int ldc, bool accumulate, Isa isa, int threads, bool? packB = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        CheckMatrix(a.Length, transA ? k : m, transA ? m : k, lda, nameof(a));
        CheckMatrix(b.Length, transB ? n : k, transB ? k : n, ldb, nameof(b));
        CheckMatrix(c.Length, m, n, ldc, nameof(c));
        if (m == 0 || n == 0) return;
        isa = IsaInfo.Clamp(isa);
        var apack = ArrayPool<float>.Shared.Rent(checked((int)GemmCore.PackedALength(m, k, isa) + 16));
        try
        {
            fixed (float* pa = a, pab = apack)
            {
                float* ap = GemmCore.Align64(pab);
                GemmCore.PackA(pa, m, k, lda, transA, isa, ap);
                Multiply(m, n, k, ap, b, ldb, transB, c, ldc, default, accumulate, isa, threads, packB);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(apack);
        }
    }

    internal static void Sgemm(PackedMatrix a, int n, ReadOnlySpan<float> b, bool transB, Span<float> c,
        ReadOnlySpan<float> rowBias, bool accumulate, int threads, bool? packB)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        Check(b.Length, (long)a.Cols * n, nameof(b));
        Check(c.Length, (long)a.Rows * n, nameof(c));
        if (!rowBias.IsEmpty) Check(rowBias.Length, a.Rows, nameof(rowBias));
        if (a.Rows == 0 || n == 0) return;
        Multiply(a.Rows, n, a.Cols, a.Pointer, b, transB ? a.Cols : n, transB, c, n, rowBias, accumulate, a.Isa, threads, packB);
    }

    private static void Check(int length, long needed, string name)
    {
        if (length < needed) throw new ArgumentException($"{name} has {length} elements, needs {needed}", name);
    }

    private static void CheckMatrix(int length, int rows, int cols, int ld, string name)
    {
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentOutOfRangeException(name, $"leading dimension {ld} of {name} is less than its {cols} columns");
        Check(length, (long)(rows - 1) * ld + cols, name);
    }

    /// <summary>C = packedA · op(B) with B given as a plain row-major matrix.</summary>
    private static void Multiply(int m, int n, int k, float* ap, ReadOnlySpan<float> b, int ldb, bool transB, Span<float> c, int ldc,
        ReadOnlySpan<float> rowBias, bool accumulate, Isa isa, int threads, bool? packB)
    {
        // In place B is read straight from the caller's rows; a transposed B (or a large problem, where the copy is
        // repaid many times) is packed block by block into contiguous panels.
        bool pack = transB || (packB ?? GemmCore.ShouldPackB(m, n, k, ldb, isa));
        int[]? offs = null;
        try
        {
            if (!transB)
            {
                offs = ArrayPool<int>.Shared.Rent(k);
                for (int p = 0; p < k; p++) offs[p] = p * ldb;
            }
            fixed (float* pb = b, pc = c, pbias = rowBias)
            fixed (int* po = offs)
            {
                var pr = new GemmProblem
                {
                    M = m, N = n, K = k, A = ap, B = pb, BOffs = po, Ldb = ldb,
                    PackB = pack, TransB = transB, BReadPastN = false,
                    C = pc, Ldc = ldc, RowInit = pbias, Accumulate = accumulate,
                };
                RunParallel(pr, isa, threads);
            }
        }
        finally
        {
            if (offs != null) ArrayPool<int>.Shared.Return(offs);
        }
    }

    /// <summary>Runs a problem on up to <paramref name="threads"/> threads, cutting C by column tiles or row panels.</summary>
    internal static void RunParallel(in GemmProblem problem, Isa isa, int threads)
    {
        int mr = IsaInfo.Mr(isa), nr = IsaInfo.Nr(isa);
        int panels = (problem.M + mr - 1) / mr, tiles = (problem.N + nr - 1) / nr;
        double flops = 2.0 * problem.M * problem.N * Math.Max(problem.K, 1);
        int t = (int)Math.Min(threads, Math.Max(1.0, flops / MinFlopsPerThread));
        t = Math.Min(t, Math.Max(panels, tiles));
        if (t <= 1)
        {
            GemmCore.Run(problem, isa);
            return;
        }
        var pr = problem;
        bool byColumns = tiles >= 2 * t || tiles >= panels;
        int parts = Math.Min(t, byColumns ? tiles : panels);
        Compute.For(parts, parts, i =>
        {
            if (byColumns)
            {
                int t0 = Compute.ChunkStart(tiles, parts, i), t1 = Compute.ChunkStart(tiles, parts, i + 1);
                GemmCore.Run(pr, 0, panels, t0 * nr, Math.Min(pr.N, t1 * nr), isa);
            }
            else
            {
                int p0 = Compute.ChunkStart(panels, parts, i), p1 = Compute.ChunkStart(panels, parts, i + 1);
                GemmCore.Run(pr, p0, p1, 0, pr.N, isa);
            }
        });
    }
}
