using Qsvit.Snn;
using Qsvit.Tensors;

namespace Qsvit.Tests.Snn;

/// <summary>The LIF kernel against the spikingjelly recurrence written out naively.</summary>
public class MultiStepLifTests
{
    private static (float[] Spikes, float[] H) Naive(float[] x, int T, float vth)
    {
        int n = x.Length / T;
        var s = new float[x.Length];
        var h = new float[x.Length];
        for (int i = 0; i < n; i++)
        {
            float v = 0;
            for (int t = 0; t < T; t++)
            {
                float hv = v + (x[t * n + i] - v) * 0.5f;
                h[t * n + i] = hv;
                s[t * n + i] = hv >= vth ? 1 : 0;
                v = hv >= vth ? 0 : hv;
            }
        }
        return (s, h);
    }

    [Theory]
    [InlineData(4, 1, 1f, 1)]
    [InlineData(4, 10_001, 1f, 2)]
    [InlineData(1, 33, 0.5f, 1)]
    [InlineData(3, 9_000, 0.5f, 2)]
    public void MatchesTheRecurrence(int T, int n, float vth, int threads)
    {
        var rng = new Random(n);
        var x = new float[T * n];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 3 - 0.5);
        x[0] = 2 * vth; // exactly at threshold after one step: H = Vth fires
        var spikes = new float[x.Length];
        var h = new float[x.Length];
        long count = MultiStepLif.Forward(x, spikes, x.Length, T, vth, h, new ComputeOptions { Threads = threads });
        var (s, hr) = Naive(x, T, vth);
        Assert.Equal(s, spikes);
        Assert.Equal(hr, h);
        Assert.Equal((long)s.Sum(), count);
        Assert.Equal(1f, spikes[0]);
    }

    [Theory]
    [InlineData(4, 10_001, 1)]
    [InlineData(4, 10_001, 2)]
    [InlineData(2, 33, 1)]
    public void AddsTheResidualAsASeparateAddWould(int T, int n, int threads)
    {
        var rng = new Random(n + threads);
        float[] R() => Enumerable.Range(0, T * n).Select(_ => (float)(rng.NextDouble() * 3 - 1.2)).ToArray();
        float[] x = R(), y = R();
        var sum = x.Zip(y, (a, b) => a + b).ToArray();
        var expected = new float[sum.Length];
        long expectedCount = MultiStepLif.Forward(sum, expected, sum.Length, T, 1f);
        var spikes = new float[x.Length];
        long count = MultiStepLif.Forward(x, spikes, x.Length, T, 1f, null, new ComputeOptions { Threads = threads }, y);
        Assert.Equal(sum, x); // the residual stream keeps the sum
        Assert.Equal(expected, spikes);
        Assert.Equal(expectedCount, count);
    }

    [Fact]
    public void RejectsALengthThatIsNotAMultipleOfT()
    {
        Assert.Throws<ArgumentException>(() => MultiStepLif.Forward(new float[10], new float[10], 10, 4, 1f));
    }
}
