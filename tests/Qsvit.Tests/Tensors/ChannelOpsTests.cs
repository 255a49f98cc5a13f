using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

public class ChannelOpsTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 3, 7)]
    [InlineData(3, 5, 16)]
    [InlineData(2, 17, 33)]
    [InlineData(4, 64, 65)]
    [InlineData(1, 3, 129)]
    [InlineData(64, 128, 64)]  // many frames of an 8x8 map: enough work to use two threads
    [InlineData(2, 4, 0)]
    public void ScaleShift_MatchesNaive(int batch, int channels, int spatial)
    {
        var rng = new Random(batch * 7919 + channels * 31 + spatial);
        var x = TestData.Random(rng, batch * channels * spatial, -3f, 3f);
        var scale = TestData.Random(rng, channels, -2f, 2f);
        var shift = TestData.Random(rng, channels);
        var expected = (float[])x.Clone();
        NaiveKernels.ScaleShift(expected, batch, channels, spatial, scale, shift);
        foreach (var isa in TestData.Isas())
            foreach (int threads in new[] { 1, 2 })
            {
                var y = (float[])x.Clone();
                ChannelOps.ScaleShift(y, batch, channels, spatial, scale, shift, isa, threads);
                TestData.AssertSame(expected, y, $"{isa} T={threads}");
            }
        var z = (float[])x.Clone();
        ChannelOps.ScaleShift(z, batch, channels, spatial, scale, shift);
        TestData.AssertSame(expected, z, "public");
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 3, 7)]
    [InlineData(3, 5, 16)]
    [InlineData(2, 17, 33)]
    [InlineData(4, 64, 196)]
    [InlineData(64, 128, 16)]
    [InlineData(64, 128, 64)]  // enough work to use two threads
    [InlineData(2, 3, 300)]
    [InlineData(2, 5, 1024)]
    public void SpatialMean_MatchesNaive(int batch, int channels, int spatial)
    {
        var rng = new Random(batch + channels * 101 + spatial * 7);
        var x = TestData.Random(rng, batch * channels * spatial);
        var expected = new float[batch * channels];
        NaiveKernels.SpatialMean(x, batch, channels, spatial, expected);
        foreach (var isa in TestData.Isas())
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[batch * channels];
                ChannelOps.SpatialMean(x, batch, channels, spatial, y, isa, threads);
                TestData.AssertClose(expected, y, $"{isa} T={threads}");
            }
        var z = new float[batch * channels];
        ChannelOps.SpatialMean(x, batch, channels, spatial, z);
        TestData.AssertClose(expected, z, "public");
    }

    [Fact]
    public void RejectShortBuffers()
    {
        Assert.Throws<ArgumentException>(() => ChannelOps.ScaleShift(new float[5], 1, 2, 3, new float[2], new float[2]));
        Assert.Throws<ArgumentException>(() => ChannelOps.ScaleShift(new float[6], 1, 2, 3, new float[1], new float[2]));
        Assert.Throws<ArgumentException>(() => ChannelOps.SpatialMean(new float[6], 1, 2, 3, new float[1]));
    }
}
