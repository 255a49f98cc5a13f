using Qsvit.Quantization;

namespace Qsvit.Tests.Quantization;

public class QuantizerTests
{
    private static readonly QuantizerSpec Sym = QuantizerSpec.Parse("symmetric");
    private static readonly QuantizerSpec SymChannel = QuantizerSpec.Parse("symmetric-channel");
    private static readonly QuantizerSpec Asym = QuantizerSpec.Parse("asymmetric");

    private static (float[] Output, QuantizationResult Result) Run(float[] w, int[] shape, int bits, QuantizerSpec spec)
    {
        var output = new float[w.Length];
        var result = Quantizer.Quantize(w, shape, bits, spec, output);
        return (output, result);
    }

    private static int[] Codes(float[] w, int[] shape, int bits, QuantizerSpec spec, out QuantizationParams p)
    {
        var codes = new int[w.Length];
        p = Quantizer.QuantizeToCodes(w, shape, bits, spec, codes);
        return codes;
    }

    [Fact]
    public void Paper_RoundsTiesToEvenAndClampsTheTopOfTheRange()
    {
        // 3 bits: Qmin = -4, Qmax = 3, S = (0.875 - -0.875) / 7 = 0.25 exactly, so w / S is exact and the ties are real ties.
        float[] w = [-0.875f, -0.125f, 0.125f, 0.375f, 0.625f, 0.875f];
        var codes = Codes(w, [6], 3, QuantizerSpec.Paper, out var p);
        Assert.Equal(0.25f, p.Scales.Single());
        Assert.Equal(0, p.ZeroPoints.Single());
        Assert.Equal((-4, 3), (p.Qmin, p.Qmax));
        // -3.5 -> -4 (even, in range); -0.5 -> 0; 0.5 -> 0; 1.5 -> 2; 2.5 -> 2; 3.5 -> 4, clamped to 3.
        Assert.Equal([-4, 0, 0, 2, 2, 3], codes);

        var (output, r) = Run(w, [6], 3, QuantizerSpec.Paper);
        Assert.Equal([-1f, 0f, 0f, 0.5f, 0.5f, 0.75f], output);
        Assert.Equal(1, r.ClippedCount);
        Assert.Equal(1.0 / 6, r.ClippedFraction, 12);
        // errors 0.125, 0.125, 0.125, 0.125, 0.125, 0.125
        Assert.Equal(6 * 0.125 * 0.125 / 6, r.Mse, 12);
        Assert.Equal(1, r.ScaleCount);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    public void Paper_ClipsAnAsymmetricRangeAtAnyBitWidth(int bits)
    {
        // All-positive weights: S spans (max - min) over the whole signed code range, but codes above Qmax (about half of
        // the range) are clipped: 0.6, 0.8 and 1.0 map to ~0.6·2^b, ~0.8·2^b and 2^b - 1, above Qmax = 2^(b-1) - 1.
        float[] w = [0f, 0.2f, 0.4f, 0.6f, 0.8f, 1f];
        var (output, r) = Run(w, [6], bits, QuantizerSpec.Paper);
        Assert.Equal(0.5, r.ClippedFraction, 12);
        float s = (1f - 0f) / ((1 << bits) - 1);
        float top = ((1 << (bits - 1)) - 1) * s;
        Assert.Equal(top, output[3]);
        Assert.Equal(top, output[5]);
        Assert.True(r.Mse > 0.01, $"clipping must cost error even at {bits} bits, got MSE {r.Mse}");
    }

    [Fact]
    public void Paper_MatchesTorchFloat32Arithmetic()
    {
        // torch: S = (w.max() - w.min()) / (qmax - qmin); torch.clamp(torch.round(w / S), qmin, qmax) * S, all float32.
        var rng = new Random(7);
        var w = Enumerable.Range(0, 5000).Select(_ => (float)(rng.NextDouble() * 0.3 - 0.1)).ToArray();
        foreach (int bits in new[] { 2, 4, 8 })
        {
            var (output, _) = Run(w, [50, 100], bits, QuantizerSpec.Paper);
            int qmin = -(1 << (bits - 1)), qmax = (1 << (bits - 1)) - 1;
            float s = (w.Max() - w.Min()) / (float)(qmax - qmin);
            for (int i = 0; i < w.Length; i++)
            {
                float q = Math.Clamp(MathF.Round(w[i] / s, MidpointRounding.ToEven), qmin, qmax);
                Assert.Equal(q * s, output[i]);
            }
        }
    }

    [Fact]
    public void FullPrecision_LeavesTheTensorUnchanged()
    {
        float[] w = [0.1f, -0.3f, 7f];
        var (output, r) = Run(w, [3], 32, QuantizerSpec.Paper);
        Assert.Equal(w, output);
        Assert.Null(r.Params);
        Assert.Equal(0, r.ScaleCount);
        Assert.Equal(0, r.Mse);
        Assert.Equal(double.PositiveInfinity, r.SqnrDb);
        Assert.Throws<QsvitException>(() => Quantizer.QuantizeToCodes(w, [3], 32, Sym, new int[3]));
    }

    [Fact]
    public void Symmetric_UsesTheRestrictedRange()
    {
        // 2 bits: codes -1..1, S = max|W| / 1.
        float[] w = [-2f, 1f, 0.5f, 2f];
        var codes = Codes(w, [4], 2, Sym, out var p);
        Assert.Equal((-1, 1), (p.Qmin, p.Qmax));
        Assert.Equal(2f, p.Scales.Single());
        Assert.Equal([-1, 0, 0, 1], codes); // 0.5 and 0.25 round to 0 (0.5 is a tie, to even)
    }

    [Fact]
    public void Symmetric_PerChannelGivesOneScalePerOutputChannel()
    {
        float[] w = [1f, -0.5f, 0.25f, -8f, 4f, 2f];
        var codes = Codes(w, [2, 3], 2, SymChannel, out var p);
        Assert.Equal([1f, 8f], p.Scales.ToArray());
        Assert.Equal([1, 0, 0, -1, 0, 0], codes);

        var perTensor = Codes(w, [2, 3], 2, Sym, out var pt);
        Assert.Equal([8f], pt.Scales.ToArray());
        Assert.Equal([0, 0, 0, -1, 0, 0], perTensor);

        var (output, r) = Run(w, [2, 3], 2, SymChannel);
        Assert.Equal([1f, 0f, 0f, -8f, 0f, 0f], output);
        Assert.Equal(2, r.ScaleCount);
        Assert.Equal(0, r.ClippedCount);
    }

    [Fact]
    public void Asymmetric_ZeroPointMakesZeroExact()
    {
        // 2 bits: codes 0..3; range [-1, 2] -> S = 1, zero point 1.
        float[] w = [-1f, 0f, 0.3f, 2f];
        var codes = Codes(w, [4], 2, Asym, out var p);
        Assert.Equal((0, 3), (p.Qmin, p.Qmax));
        Assert.Equal(1f, p.Scales.Single());
        Assert.Equal(1, p.ZeroPoints.Single());
        Assert.Equal([0, 1, 1, 3], codes);
        var (output, _) = Run(w, [4], 2, Asym);
        Assert.Equal([-1f, 0f, 0f, 2f], output);

        // Random ranges, including all-positive and all-negative channels: zeros stay exactly zero.
        var rng = new Random(3);
        foreach (var spec in new[] { Asym, QuantizerSpec.Parse("asymmetric-channel"), QuantizerSpec.Parse("asymmetric-channel-mse") })
            for (int bits = 2; bits <= 8; bits++)
            {
                var x = new float[4 * 64];
                for (int c = 0; c < 4; c++)
                    for (int i = 0; i < 64; i++)
                        x[c * 64 + i] = i % 5 == 0 ? 0f : (float)(rng.NextDouble() * 1.7 - (c switch { 0 => 0.2, 1 => 0.0, 2 => 1.7, _ => 0.9 }));
                var (y, r) = Run(x, [4, 64], bits, spec);
                for (int i = 0; i < x.Length; i++)
                    if (x[i] == 0) Assert.Equal(0f, y[i]);
                Assert.True(r.Params!.ZeroPoints.All(z => z >= 0 && z <= (1 << bits) - 1));
            }
    }

    [Fact]
    public void FakeQuantIsDequantizedCodes()
    {
        var rng = new Random(11);
        var w = Enumerable.Range(0, 8 * 27).Select(_ => (float)(rng.NextDouble() - 0.4)).ToArray();
        foreach (string name in QuantizerSpec.Names)
            foreach (int bits in new[] { 2, 5, 8, 16 })
            {
                var spec = QuantizerSpec.Parse(name);
                var codes = Codes(w, [8, 3, 3, 3], bits, spec, out var p);
                Assert.All(codes, c => Assert.InRange(c, p.Qmin, p.Qmax));
                var dq = new float[w.Length];
                Quantizer.Dequantize(codes, p, dq);
                var (output, _) = Run(w, [8, 3, 3, 3], bits, spec);
                Assert.Equal(dq, output);
            }
    }

    [Fact]
    public void MseClipping_IsNeverWorseThanTheFullRange()
    {
        var rng = new Random(5);
        // Heavy tails: mostly small Gaussian weights plus a few outliers per channel.
        var w = new float[16 * 200];
        for (int i = 0; i < w.Length; i++)
        {
            double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            w[i] = (float)(i % 97 == 0 ? 12 * g : 0.05 * g + 0.01);
        }
        int[] shape = [16, 200];
        bool strictlyBetter = false;
        foreach (var kind in new[] { "symmetric", "asymmetric" })
            foreach (var channel in new[] { "", "-channel" })
                for (int bits = 2; bits <= 8; bits++)
                {
                    var full = Run(w, shape, bits, QuantizerSpec.Parse(kind + channel)).Result;
                    var mse = Run(w, shape, bits, QuantizerSpec.Parse(kind + channel + "-mse")).Result;
                    Assert.True(mse.SquaredError <= full.SquaredError, $"{kind}{channel} {bits} bits: {mse.Mse} > {full.Mse}");
                    strictlyBetter |= mse.SquaredError < 0.9 * full.SquaredError;
                    Assert.True(mse.ClippedFraction >= full.ClippedFraction);
                }
        Assert.True(strictlyBetter, "clipping outliers should pay off somewhere");
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.37f)]
    [InlineData(-2.5f)]
    public void DegenerateTensorsStayFinite(float value)
    {
        var w = Enumerable.Repeat(value, 12).ToArray();
        foreach (string name in QuantizerSpec.Names)
            foreach (int bits in new[] { 2, 8, 16 })
            {
                var (output, r) = Run(w, [3, 4], bits, QuantizerSpec.Parse(name));
                Assert.All(r.Params!.Scales, s => Assert.True(float.IsFinite(s) && s > 0, $"{name}: scale {s}"));
                Assert.All(output, y => Assert.True(float.IsFinite(y)));
                Assert.True(double.IsFinite(r.Mse));
                if (value == 0) Assert.All(output, y => Assert.Equal(0f, y));
                else Assert.All(output, y => Assert.Equal(value, y, 1e-5f * Math.Abs(value)));
            }
        var single = Run([0.7f], [1, 1], 4, QuantizerSpec.Paper).Output;
        Assert.Equal(0.7f, single[0], 1e-6f);
    }

    [Fact]
    public void RejectsBadInput()
    {
        Assert.Throws<QsvitException>(() => Run([1f, 2f], [2], 1, Sym));
        Assert.Throws<QsvitException>(() => Run([1f, 2f], [2], 17, Sym));
        Assert.Throws<QsvitException>(() => Run([1f, float.NaN], [2], 8, Sym));
        Assert.Throws<QsvitException>(() => Run([1f, float.PositiveInfinity], [2], 8, QuantizerSpec.Paper));
        Assert.Throws<ArgumentException>(() => Run([1f, 2f], [3], 8, Sym));
        Assert.Throws<QsvitException>(() => Run([1f, 2f], [2], 8, new QuantizerSpec(QuantizerKind.Paper, PerChannel: true)));
    }

    [Fact]
    public void SpecTextRoundTrips()
    {
        foreach (string name in QuantizerSpec.Names)
            Assert.Equal(name, QuantizerSpec.Parse(name).ToString());
        Assert.Equal(new QuantizerSpec(QuantizerKind.Asymmetric, PerChannel: true, MseClipping: true), QuantizerSpec.Parse(" Asymmetric-Channel-MSE "));
        var e = Assert.Throws<QsvitException>(() => QuantizerSpec.Parse("paper-mse"));
        Assert.Contains("symmetric-channel-mse", e.Message);
    }
}
