using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

internal static class TestData
{
    /// <summary>Every vector path this machine can run (forcing the narrower ones on a wide machine).</summary>
    public static IEnumerable<Isa> Isas() => Enum.GetValues<Isa>().Where(i => i <= IsaInfo.Best);

    public static float[] Random(Random rng, int length, float lo = -1f, float hi = 1f)
    {
        var a = new float[length];
        for (int i = 0; i < a.Length; i++) a[i] = lo + (float)rng.NextDouble() * (hi - lo);
        return a;
    }

    /// <summary>Binary spikes, as most convolution inputs in the model are.</summary>
    public static float[] Spikes(Random rng, int length)
    {
        var a = new float[length];
        for (int i = 0; i < a.Length; i++) a[i] = rng.NextDouble() < 0.3 ? 1f : 0f;
        return a;
    }

    /// <summary>Relative comparison: |actual − expected| ≤ tol·(|expected| + rms(expected)).</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what, float tol = 1e-4f)
    {
        Assert.Equal(expected.Length, actual.Length);
        double ss = 0;
        foreach (var v in expected) ss += (double)v * v;
        double rms = expected.Length == 0 ? 0 : Math.Sqrt(ss / expected.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            double lim = tol * (Math.Abs(e) + rms) + 1e-30;
            if (!(Math.Abs(a - e) <= lim))
                Assert.Fail($"{what}: element {i} is {a}, expected {e} (|diff| {Math.Abs(a - e):g3} > {lim:g3})");
        }
    }

    /// <summary>Exact equality element by element (+0 and −0 count as equal).</summary>
    public static void AssertSame(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (!(expected[i] == actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R}");
    }

    /// <summary>The same bits in every element (signs of zeros and NaN payloads too), where kernels must repeat today's float ops exactly.</summary>
    public static void AssertSameBits(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R}");
    }
}
