using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

public class Conv2dTests
{
    // (batch, height, width, cin, cout, kh, kw, stride, pad, groups)
    public static TheoryData<int, int, int, int, int, int, int, int, int, int> Cases => new()
    {
        // pointwise, incl. sizes that do not fill a vector and many small maps
        { 1, 1, 1, 1, 1, 1, 1, 1, 0, 1 },
        { 2, 5, 7, 3, 17, 1, 1, 1, 0, 1 },
        { 3, 4, 4, 33, 65, 1, 1, 1, 0, 1 },
        { 2, 17, 13, 7, 9, 1, 1, 1, 0, 1 },
        { 1, 32, 32, 16, 32, 1, 1, 1, 0, 1 },
        // 1x1 with stride or padding (not "pointwise")
        { 2, 9, 9, 5, 6, 1, 1, 2, 0, 1 },
        { 2, 6, 5, 4, 3, 1, 1, 1, 1, 1 },
        // 3x3, pad 1, stride 1 and 2, odd sizes
        { 2, 8, 8, 16, 64, 3, 3, 1, 1, 1 },
        { 3, 7, 9, 3, 5, 3, 3, 1, 1, 1 },
        { 2, 17, 17, 8, 12, 3, 3, 2, 1, 1 },
        { 1, 16, 16, 16, 32, 3, 3, 2, 1, 1 },
        { 5, 4, 4, 24, 40, 3, 3, 1, 1, 1 },
        { 2, 33, 33, 4, 8, 3, 3, 1, 0, 1 },
        // 7x7 stems
        { 2, 32, 32, 3, 16, 7, 7, 1, 3, 1 },
        { 1, 23, 29, 3, 8, 7, 7, 2, 3, 1 },
        // general groups, depthwise multiplier
        { 2, 8, 8, 8, 12, 3, 3, 1, 1, 4 },
        { 2, 9, 7, 6, 6, 1, 1, 1, 0, 2 },
        { 1, 10, 10, 4, 8, 3, 3, 2, 1, 4 },
        // depthwise: 7x7 pad 3, 3x3 pad 0 (attention 6x6 -> 4x4), stride 2, odd maps
        { 2, 32, 32, 8, 8, 7, 7, 1, 3, 8 },
        { 3, 16, 16, 5, 5, 7, 7, 1, 3, 5 },
        { 2, 8, 8, 6, 6, 7, 7, 1, 3, 6 },
        { 4, 6, 6, 8, 8, 3, 3, 1, 0, 8 },
        { 2, 16, 16, 3, 3, 3, 3, 1, 0, 3 },
        { 2, 13, 11, 3, 3, 3, 3, 2, 1, 3 },
        { 1, 37, 19, 2, 2, 5, 3, 1, 2, 2 },
        { 2, 1, 1, 3, 3, 3, 3, 1, 1, 3 },
        // depthwise on maps of at most 16 pixels (one register per plane with AVX-512): CIFAR's 4×4 RepConv, 15 and 2
        // pixels, a 7×7 kernel on a 4×4 map, no padding (2×2 out)
        { 3, 4, 4, 16, 16, 3, 3, 1, 1, 16 },
        { 2, 3, 5, 4, 4, 3, 3, 1, 1, 4 },
        { 2, 1, 2, 3, 3, 3, 3, 1, 1, 3 },
        { 2, 4, 4, 5, 5, 7, 7, 1, 3, 5 },
        { 2, 4, 4, 6, 6, 3, 3, 1, 0, 6 },
        // reductions in several segments: 3x3 over 40 channels (16+16+8); 1x1 over 14x14 maps (80+48 channels);
        // 1x1 on a 1-row map, as Conv1d (256+256); the parity model's stem
        { 2, 9, 9, 40, 24, 3, 3, 1, 1, 1 },
        { 2, 14, 14, 128, 32, 1, 1, 1, 0, 1 },
        { 2, 1, 20, 512, 16, 1, 1, 1, 0, 1 },
        { 1, 40, 40, 3, 16, 7, 7, 2, 3, 1 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_MatchesNaive_EveryAlgorithmPathAndThreadCount(int batch, int h, int w, int cin, int cout, int kh, int kw,
        int stride, int pad, int groups)
    {
        var g = new ConvGeometry(cin, cout, kh, kw, stride, stride, pad, pad, groups);
        var rng = new Random(HashCode.Combine(batch, h, w, cin, cout, kh, stride, groups));
        var x = TestData.Spikes(rng, batch * cin * h * w);
        CheckEveryPath(g, batch, h, w, x, rng, NaiveKernels.Conv2d, [ConvAlgo.Auto, ConvAlgo.Direct, ConvAlgo.Im2Col],
            (expected, y, what) => TestData.AssertClose(expected, y, what));
    }

    /// <summary>
    /// Every ISA, thread count and lowering sums in the same order as PyTorch on CPU (see ReductionOrder), so results
    /// are equal to the last bit, real-valued inputs included.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_SumsInTheReferenceOrder_BitForBit(int batch, int h, int w, int cin, int cout, int kh, int kw,
        int stride, int pad, int groups)
    {
        var g = new ConvGeometry(cin, cout, kh, kw, stride, stride, pad, pad, groups);
        var rng = new Random(HashCode.Combine(cin, cout, kh, h, 17));
        var x = TestData.Random(rng, batch * cin * h * w, -2f, 2f);
        CheckEveryPath(g, batch, h, w, x, rng, NaiveKernels.Conv2dReferenceOrder, [ConvAlgo.Direct, ConvAlgo.Im2Col],
            (expected, y, what) => TestData.AssertSame(expected, y, what));
    }

    private delegate void NaiveConv(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias, in ConvGeometry g, Span<float> output);

    /// <summary>Random weights and bias; with and without the bias, every ISA, 1 and 2 threads and each algorithm against the reference.</summary>
    private static void CheckEveryPath(ConvGeometry g, int batch, int h, int w, float[] x, Random rng, NaiveConv reference,
        ConvAlgo[] algos, Action<float[], float[], string> assert)
    {
        var weight = TestData.Random(rng, g.WeightLength);
        var bias = TestData.Random(rng, g.OutChannels);
        int outLen = batch * g.OutChannels * g.OutH(h) * g.OutW(w);
        foreach (bool withBias in new[] { false, true })
        {
            var b = withBias ? bias : [];
            var expected = new float[outLen];
            reference(x, batch, h, w, weight, b, g, expected);
            foreach (var isa in TestData.Isas())
                foreach (int threads in new[] { 1, 2 })
                    foreach (var algo in algos)
                    {
                        var y = new float[outLen];
                        y.AsSpan().Fill(float.NaN);
                        Conv2d.Forward(x, batch, h, w, weight, b, g, y, isa, threads, algo);
                        assert(expected, y, $"{g} {h}x{w} batch {batch} bias={withBias} {isa} T={threads} {algo}");
                    }
        }
    }

    [Fact]
    public void Forward_RealValuedInputAndOddStrides()
    {
        // Different strides and paddings per axis, real-valued input.
        var g = new ConvGeometry(6, 10, 3, 5, StrideH: 2, StrideW: 1, PadH: 1, PadW: 2);
        var rng = new Random(11);
        int batch = 3, h = 11, w = 9;
        var x = TestData.Random(rng, batch * 6 * h * w);
        var weight = TestData.Random(rng, g.WeightLength);
        var bias = TestData.Random(rng, 10);
        var expected = new float[batch * 10 * g.OutH(h) * g.OutW(w)];
        NaiveKernels.Conv2d(x, batch, h, w, weight, bias, g, expected);
        foreach (var isa in TestData.Isas())
            foreach (var algo in new[] { ConvAlgo.Direct, ConvAlgo.Im2Col })
            {
                var y = new float[expected.Length];
                Conv2d.Forward(x, batch, h, w, weight, bias, g, y, isa, 2, algo);
                TestData.AssertClose(expected, y, $"{isa} {algo}");
            }
    }

    [Theory]
    [InlineData(1, 4, 4, 32, 32, 3, 1, 1, 1)]
    [InlineData(3, 8, 8, 16, 16, 7, 1, 3, 16)]
    [InlineData(2, 6, 6, 20, 24, 1, 1, 0, 1)]
    public void PackedWeights_MatchUnpacked(int batch, int h, int w, int cin, int cout, int k, int stride, int pad, int groups)
    {
        var g = new ConvGeometry(cin, cout, k, k, stride, stride, pad, pad, groups);
        var rng = new Random(5);
        var x = TestData.Spikes(rng, batch * cin * h * w);
        var weight = TestData.Random(rng, g.WeightLength);
        var bias = TestData.Random(rng, cout);
        var expected = new float[batch * cout * g.OutH(h) * g.OutW(w)];
        NaiveKernels.Conv2d(x, batch, h, w, weight, bias, g, expected);
        var packed = ConvWeights.Pack(weight, g);
        Assert.Equal(g, packed.Geometry);
        var y = new float[expected.Length];
        Conv2d.Forward(x, batch, h, w, packed, bias, y);
        TestData.AssertClose(expected, y, "packed");
        y = new float[expected.Length];
        Conv2d.Forward(x, batch, h, w, weight, bias, g, y);
        TestData.AssertClose(expected, y, "public");
    }

    [Fact]
    public void Forward_ModelShapes_LargeBatch()
    {
        // A few CIFAR-model layers over many frames, through the public API.
        var rng = new Random(99);
        foreach (var (g, hw) in new (ConvGeometry, int)[]
                 {
                     (new ConvGeometry(128, 128, 1, 1), 4),
                     (new ConvGeometry(128, 128, 3, 3, Groups: 128), 6),
                     (new ConvGeometry(64, 256, 3, 3, PadH: 1, PadW: 1), 8),
                     (new ConvGeometry(32, 64, 3, 3, 2, 2, 1, 1), 16),
                 })
        {
            int batch = 24;
            var x = TestData.Spikes(rng, batch * g.InChannels * hw * hw);
            var weight = TestData.Random(rng, g.WeightLength);
            var bias = TestData.Random(rng, g.OutChannels);
            var expected = new float[batch * g.OutChannels * g.OutH(hw) * g.OutW(hw)];
            NaiveKernels.Conv2d(x, batch, hw, hw, weight, bias, g, expected);
            var y = new float[expected.Length];
            Conv2d.Forward(x, batch, hw, hw, weight, bias, g, y);
            TestData.AssertClose(expected, y, $"{g} at {hw}x{hw}");
        }
    }

    [Fact]
    public void Forward_RejectsBadArguments()
    {
        var g = new ConvGeometry(4, 4, 3, 3, PadH: 1, PadW: 1);
        Assert.Throws<ArgumentException>(() => Conv2d.Forward(new float[10], 1, 4, 4, new float[g.WeightLength], [], g, new float[64]));
        Assert.Throws<ArgumentException>(() => Conv2d.Forward(new float[64], 1, 4, 4, new float[3], [], g, new float[64]));
        Assert.Throws<ArgumentException>(() => Conv2d.Forward(new float[64], 1, 4, 4, new float[g.WeightLength], [], g, new float[63]));
        Assert.Throws<ArgumentException>(() => Conv2d.Forward(new float[64], 1, 4, 4, new float[g.WeightLength], [], new ConvGeometry(4, 6, 3, 3, Groups: 4), new float[64]));
    }
}
