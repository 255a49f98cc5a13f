using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

public class GemmTests
{
    // Odd sizes around the register tiles (MR 4/6/8, NR 4/8/16/32), the K block (256) and the column block (512).
    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 }, { 1, 17, 3 }, { 3, 7, 1 }, { 7, 33, 17 }, { 17, 65, 33 }, { 33, 129, 7 }, { 65, 31, 129 },
        { 129, 1, 65 }, { 8, 32, 256 }, { 13, 40, 300 }, { 70, 600, 20 }, { 9, 70, 600 }, { 2, 3, 513 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Sgemm_MatchesNaive_EveryPathLayoutAndThreadCount(int m, int n, int k)
    {
        var rng = new Random(m * 1000003 + n * 1009 + k);
        var a = TestData.Random(rng, m * k);
        var b = TestData.Random(rng, k * n);
        var c0 = TestData.Random(rng, m * n);
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
                foreach (bool acc in new[] { false, true })
                {
                    var expected = (float[])c0.Clone();
                    NaiveKernels.Sgemm(m, n, k, a, transA, b, transB, expected, acc);
                    foreach (var isa in TestData.Isas())
                        foreach (int threads in new[] { 1, 2 })
                            foreach (bool? packB in new bool?[] { null, false, true })
                            {
                                var c = (float[])c0.Clone();
                                Gemm.Sgemm(m, n, k, a, transA, b, transB, c, acc, isa, threads, packB);
                                TestData.AssertClose(expected, c, $"{m}x{n}x{k} tA={transA} tB={transB} acc={acc} {isa} T={threads} packB={packB}");
                            }
                }
    }

    [Fact]
    public void Sgemm_PublicApi_LargeMultiBlock()
    {
        var rng = new Random(7);
        int m = 97, n = 1030, k = 700;
        var a = TestData.Random(rng, m * k);
        var b = TestData.Random(rng, k * n);
        var expected = new float[m * n];
        NaiveKernels.Sgemm(m, n, k, a, false, b, false, expected);
        var c = new float[m * n];
        Gemm.Sgemm(m, n, k, a, false, b, false, c);
        TestData.AssertClose(expected, c, "public Sgemm");
    }

    [Fact]
    public void Sgemm_ZeroK_ClearsOrKeepsC()
    {
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        Gemm.Sgemm(2, 3, 0, [], false, [], false, c, accumulate: true);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, c);
        Gemm.Sgemm(2, 3, 0, [], false, [], false, c);
        Assert.All(c, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Sgemm_EmptyAndShortBuffers()
    {
        Gemm.Sgemm(0, 5, 3, [], false, new float[15], false, []);
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(2, 2, 2, new float[3], false, new float[4], false, new float[4]));
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(2, 2, 2, new float[4], false, new float[4], false, new float[3]));
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(17, 33, 7)]
    [InlineData(64, 16, 128)]
    [InlineData(130, 65, 300)]
    public void PackedMatrix_MatchesNaive_WithBiasTransposeAndAccumulate(int m, int n, int k)
    {
        var rng = new Random(m + 31 * n + 977 * k);
        var a = TestData.Random(rng, m * k);
        var b = TestData.Random(rng, k * n);
        var bias = TestData.Random(rng, m);
        var c0 = TestData.Random(rng, m * n);
        foreach (var isa in TestData.Isas())
            foreach (bool transA in new[] { false, true })
            {
                var pa = PackedMatrix.Pack(a, m, k, transA, isa);
                Assert.Equal(m, pa.Rows);
                Assert.Equal(k, pa.Cols);
                foreach (bool transB in new[] { false, true })
                    foreach (int threads in new[] { 1, 2 })
                    {
                        var plain = new float[m * n];
                        NaiveKernels.Sgemm(m, n, k, a, transA, b, transB, plain);
                        var withBias = (float[])plain.Clone();
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++) withBias[i * n + j] += bias[i];
                        var accumulated = (float[])c0.Clone();
                        NaiveKernels.Sgemm(m, n, k, a, transA, b, transB, accumulated, accumulate: true);

                        var c = new float[m * n];
                        Gemm.Sgemm(pa, n, b, transB, c, default, false, threads, null);
                        TestData.AssertClose(plain, c, $"packed {isa} tA={transA} tB={transB} T={threads}");
                        Gemm.Sgemm(pa, n, b, transB, c, bias, false, threads, null);
                        TestData.AssertClose(withBias, c, $"packed+bias {isa} tA={transA} tB={transB} T={threads}");
                        c = (float[])c0.Clone();
                        Gemm.Sgemm(pa, n, b, transB, c, bias, true, threads, null);
                        TestData.AssertClose(accumulated, c, $"packed acc {isa} tA={transA} tB={transB} T={threads}");
                    }
            }
    }

    [Fact]
    public void PackedMatrix_PublicOverload()
    {
        var rng = new Random(3);
        int m = 40, n = 50, k = 60;
        var a = TestData.Random(rng, m * k);
        var b = TestData.Random(rng, k * n);
        var expected = new float[m * n];
        NaiveKernels.Sgemm(m, n, k, a, false, b, false, expected);
        var c = new float[m * n];
        Gemm.Sgemm(PackedMatrix.Pack(a, m, k), n, b, false, c);
        TestData.AssertClose(expected, c, "public packed Sgemm");
    }
}

public class GemmStridedTests
{
    /// <summary>Copies an r×c block out of a strided buffer.</summary>
    private static float[] Dense(float[] src, int offset, int rows, int cols, int ld)
    {
        var d = new float[rows * cols];
        for (int i = 0; i < rows; i++)
            Array.Copy(src, offset + i * ld, d, i * cols, cols);
        return d;
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 33, 17)]
    [InlineData(17, 65, 3)]
    [InlineData(40, 9, 300)]
    public void Sgemm_LeadingDimensions_MatchDenseReference(int m, int n, int k)
    {
        var rng = new Random(m * 13 + n * 17 + k);
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
                foreach (bool acc in new[] { false, true })
                {
                    int aRows = transA ? k : m, aCols = transA ? m : k, bRows = transB ? n : k, bCols = transB ? k : n;
                    int lda = aCols + 3, ldb = bCols + 5, ldc = n + 2, offA = 2, offB = 1, offC = 3;
                    var aBuf = TestData.Random(rng, offA + aRows * lda);
                    var bBuf = TestData.Random(rng, offB + bRows * ldb);
                    var cBuf = TestData.Random(rng, offC + m * ldc);
                    var expected = Dense(cBuf, offC, m, n, ldc);
                    NaiveKernels.Sgemm(m, n, k, Dense(aBuf, offA, aRows, aCols, lda), transA, Dense(bBuf, offB, bRows, bCols, ldb), transB, expected, acc);
                    foreach (var isa in TestData.Isas())
                        foreach (int threads in new[] { 1, 2 })
                        {
                            var c = (float[])cBuf.Clone();
                            Gemm.Sgemm(m, n, k, aBuf.AsSpan(offA), lda, transA, bBuf.AsSpan(offB), ldb, transB, c.AsSpan(offC), ldc, acc, isa, threads);
                            TestData.AssertClose(expected, Dense(c, offC, m, n, ldc), $"tA={transA} tB={transB} acc={acc} {isa} T={threads}");
                            // The gaps between rows of C are left alone.
                            for (int i = 0; i < m; i++)
                                for (int j = n; j < ldc && offC + i * ldc + j < c.Length; j++)
                                    Assert.Equal(cBuf[offC + i * ldc + j], c[offC + i * ldc + j]);
                        }
                }
    }

    [Fact]
    public void Sgemm_LeadingDimensions_PublicAndValidation()
    {
        var rng = new Random(1);
        var a = TestData.Random(rng, 6 * 10);
        var b = TestData.Random(rng, 10 * 8);
        var expected = new float[6 * 8];
        NaiveKernels.Sgemm(6, 8, 10, a, false, b, false, expected);
        var c = new float[6 * 8];
        Gemm.Sgemm(6, 8, 10, a, 10, false, b, 8, false, c, 8);
        TestData.AssertClose(expected, c, "public strided");
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Sgemm(6, 8, 10, a, 9, false, b, 8, false, c, 8));
        Assert.Throws<ArgumentException>(() => Gemm.Sgemm(6, 8, 10, a, 11, false, b, 8, false, c, 8));
    }
}
