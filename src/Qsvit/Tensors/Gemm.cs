namespace Qsvit.Tensors;

/// <summary>Single-precision matrix multiply, row-major, natural leading dimensions.</summary>
public static class Gemm
{
    /// <summary>
    /// C[m,n] = op(A)·op(B), or C += op(A)·op(B) when <paramref name="accumulate"/>.
    /// A is [m,k] ([k,m] when <paramref name="transA"/>); B is [k,n] ([n,k] when <paramref name="transB"/>).
    /// </summary>
    public static void Sgemm(int m, int n, int k, ReadOnlySpan<float> a, bool transA, ReadOnlySpan<float> b, bool transB,
        Span<float> c, bool accumulate = false)
    {
        // Placeholder reference path; replaced by the blocked vector kernel.
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++)
                    s += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
                c[i * n + j] = accumulate ? c[i * n + j] + s : s;
            }
    }
}
