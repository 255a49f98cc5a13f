using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

/// <summary>Event-driven SDSA of a plane equals the two GEMMs and the scale bit for bit on spikes, and leaves other values alone.</summary>
public class SpikeAttentionTests
{
    [Theory]
    [InlineData(16, 16)]   // CIFAR's stage 3 and 4 planes
    [InlineData(24, 64)]
    [InlineData(64, 196)]  // the 55M preset's
    [InlineData(1, 1)]
    [InlineData(3, 5)]
    public void EqualsTheTwoGemmsOnSpikes(int d, int tokens)
    {
        var rng = new Random(d * 1000 + tokens);
        foreach (double rate in new[] { 0.0, 0.2, 1.0 })
        {
            float[] Spikes() => Enumerable.Range(0, d * tokens).Select(_ => rng.NextDouble() < rate ? 1f : 0f).ToArray();
            float[] q = Spikes(), k = Spikes(), v = Spikes();
            var kv = new float[d * d];
            Gemm.Sgemm(d, d, tokens, k, false, v, true, kv, false, IsaInfo.Best, 1);
            var expected = new float[d * tokens];
            Gemm.Sgemm(d, tokens, d, kv, true, q, false, expected, false, IsaInfo.Best, 1);
            for (int i = 0; i < expected.Length; i++) expected[i] *= 0.125f;
            var output = Enumerable.Repeat(float.NaN, d * tokens).ToArray();
            Assert.True(SpikeAttention.TryPlane(q, k, v, output, d, tokens, 0.125f, new float[SpikeAttention.ScratchLength(d, tokens)]));
            for (int i = 0; i < output.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(output[i]),
                    $"d {d} tokens {tokens} rate {rate}: element {i} is {output[i]}, expected {expected[i]}");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void AnyOtherValueIsLeftToTheGemms(int input)
    {
        const int d = 4, tokens = 6;
        var maps = Enumerable.Range(0, 3).Select(_ => Enumerable.Repeat(1f, d * tokens).ToArray()).ToArray();
        maps[input][d * tokens - 1] = 0.5f;
        var output = Enumerable.Repeat(7f, d * tokens).ToArray();
        Assert.False(SpikeAttention.TryPlane(maps[0], maps[1], maps[2], output, d, tokens, 1f, new float[SpikeAttention.ScratchLength(d, tokens)]));
        Assert.All(output, x => Assert.Equal(7f, x));
    }
}
