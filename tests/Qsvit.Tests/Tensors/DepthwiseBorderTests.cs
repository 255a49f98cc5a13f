using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

/// <summary>
/// BNAndPadLayer then RepConv's depthwise conv without the padded map (<see cref="Conv2d.ForwardBordered"/>): the same bits
/// as padding the map with the per-channel border values and running the unpadded conv, on every path.
/// </summary>
public class DepthwiseBorderTests
{
    // (batch, height, width, channels, kernel, stride, pad): CIFAR's 4×4 maps (one register per plane), 15- and 1-pixel maps,
    // 8×8 and 14×14 (the row kernel), a wider pad, stride 2.
    public static TheoryData<int, int, int, int, int, int, int> Shapes => new()
    {
        { 3, 4, 4, 16, 3, 1, 1 }, { 2, 3, 5, 6, 3, 1, 1 }, { 2, 1, 1, 3, 3, 1, 1 }, { 2, 8, 8, 8, 3, 1, 1 },
        { 1, 14, 14, 4, 3, 1, 1 }, { 2, 5, 5, 3, 3, 1, 2 }, { 2, 7, 7, 4, 3, 2, 1 }, { 2, 4, 4, 4, 5, 1, 2 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void EqualsPaddingWithTheBorderThenTheConv_BitForBit(int batch, int h, int w, int channels, int k, int stride, int pad)
    {
        var g = new ConvGeometry(channels, channels, k, k, stride, stride, 0, 0, channels);
        var rng = new Random(HashCode.Combine(batch, h, w, channels, k, stride, pad));
        var x = TestData.Random(rng, batch * channels * h * w, -2f, 2f);
        var weight = TestData.Random(rng, g.WeightLength);
        var bias = TestData.Random(rng, channels);
        var border = TestData.Random(rng, channels, -3f, 3f);
        int ph = h + 2 * pad, pw = w + 2 * pad;
        var padded = new float[batch * channels * ph * pw];
        for (int p = 0; p < batch * channels; p++)
            for (int i = 0; i < ph; i++)
                for (int j = 0; j < pw; j++)
                {
                    int y = i - pad, c = j - pad;
                    padded[(p * ph + i) * pw + j] = y >= 0 && y < h && c >= 0 && c < w ? x[(p * h + y) * w + c] : border[p % channels];
                }
        int outLen = batch * channels * g.OutH(ph) * g.OutW(pw);
        foreach (bool withBias in new[] { false, true })
        {
            var b = withBias ? bias : [];
            var expected = new float[outLen];
            Conv2d.Forward(padded, batch, ph, pw, weight, b, g, expected, Isa.Scalar, 1, ConvAlgo.Auto);
            foreach (var isa in TestData.Isas())
                foreach (int threads in new[] { 1, 2 })
                {
                    var y = new float[outLen];
                    y.AsSpan().Fill(float.NaN);
                    Conv2d.ForwardBordered(x, batch, h, w, weight, b, g, pad, border, y, isa, threads);
                    TestData.AssertSameBits(expected, y, $"{h}x{w} k{k} s{stride} pad {pad} bias={withBias} {isa} T={threads}");
                }
        }
    }

    [Fact]
    public void RefusesPaddedOrDenseConvsAndShortBorders()
    {
        var x = new float[2 * 4 * 16];
        var y = new float[x.Length];
        var w = new float[4 * 9];
        var dw = new ConvGeometry(4, 4, 3, 3, Groups: 4);
        Assert.Throws<ArgumentException>(() => Conv2d.ForwardBordered(x, 2, 4, 4, w, [], dw with { PadH = 1, PadW = 1 }, 1, new float[4], y, Isa.Scalar, 1));
        Assert.Throws<ArgumentException>(() => Conv2d.ForwardBordered(x, 2, 4, 4, new float[4 * 4 * 9], [], new ConvGeometry(4, 4, 3, 3), 1, new float[4], y, Isa.Scalar, 1));
        Assert.Throws<ArgumentException>(() => Conv2d.ForwardBordered(x, 2, 4, 4, w, [], dw, 1, new float[3], y, Isa.Scalar, 1));
    }
}
