using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

public class SpikeAttentionTests
{
    // (frames, channels, tokens, heads): CIFAR's 4×4 maps (d = 16, 24), the 55M preset's 14×14 and 7×7 (d = 64, 80), token
    // counts around the vector widths and the 64-token mask words, d not a multiple of the four rows blocked together.
    public static TheoryData<int, int, int, int> Shapes => new()
    {
        { 3, 128, 16, 8 }, { 2, 192, 16, 8 }, { 1, 512, 196, 8 }, { 2, 640, 49, 8 }, { 2, 12, 1, 2 }, { 3, 14, 63, 2 },
        { 1, 9, 64, 1 }, { 2, 20, 65, 4 }, { 1, 6, 129, 3 }, { 5, 8, 7, 1 }, { 0, 16, 16, 2 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void EqualsTwoGemmsAndAMultiply_BitForBit_EveryPathAndThreadCount(int frames, int channels, int tokens, int heads)
    {
        var rng = new Random(HashCode.Combine(frames, channels, tokens, heads));
        int n = frames * channels * tokens, d = channels / heads;
        float[] q = TestData.Spikes(rng, n), k = TestData.Spikes(rng, n), v = TestData.Spikes(rng, n);
        if (n > 0) { Array.Fill(k, 1f, 0, d * tokens); Array.Fill(v, 1f, 0, d * tokens); Array.Fill(q, 1f, 0, d * tokens); } // the largest sums
        const float scale = 0.125f;
        var expected = new float[n];
        var kv = new float[d * d];
        for (int p = 0; p < frames * heads; p++)
        {
            int off = p * d * tokens;
            NaiveKernels.Sgemm(d, d, tokens, k.AsSpan(off), false, v.AsSpan(off), true, kv, false);
            var dst = expected.AsSpan(off, d * tokens);
            NaiveKernels.Sgemm(d, tokens, d, kv, true, q.AsSpan(off), false, dst, false);
            for (int i = 0; i < dst.Length; i++) dst[i] *= scale;
        }
        foreach (var isa in TestData.Isas())
            foreach (int threads in new[] { 1, 2 })
            {
                var y = new float[n];
                SpikeAttention.Forward(q, k, v, y, frames, channels, tokens, heads, scale, isa, threads);
                TestData.AssertSameBits(expected, y, $"[{frames}, {channels}, {tokens}] heads {heads} {isa} T={threads}");
            }
    }

    [Fact]
    public void RejectsHeadsThatDoNotSplitTheChannelsAndShortBuffers()
    {
        var x = new float[2 * 12 * 4];
        Assert.Throws<ArgumentException>(() => SpikeAttention.Forward(x, x, x, new float[x.Length], 2, 12, 4, 5, 1f, IsaInfo.Best, 1));
        Assert.Throws<ArgumentException>(() => SpikeAttention.Forward(x, x, x, new float[x.Length - 1], 2, 12, 4, 3, 1f, IsaInfo.Best, 1));
    }
}
