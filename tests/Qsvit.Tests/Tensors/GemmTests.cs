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
