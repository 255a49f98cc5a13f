using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Snn;

namespace Qsvit.Tests.Models;

/// <summary>The official 1000-class architecture (reduced widths, kd) against logits and LIF rates of the PyTorch code.</summary>
public class ParityTests
{
    private static (float[] Logits, FiringRateRecorder Rates) Run(int timesteps)
    {
        var loaded = ModelLoader.Load(Fixtures.ParityCheckpoint, overrides: new ConfigOverrides { Timesteps = timesteps });
        Assert.Equal([32, 64, 128, 160], loaded.Config.EmbedDim);
        Assert.True(loaded.Config.Kd);
        Assert.Equal(1000, loaded.Config.NumClasses);
        var model = loaded.CreateModel();
        var rates = new FiringRateRecorder();
        var logits = model.Forward(Fixtures.ParityImages(), 2, 224, 224, rates);
        return (logits, rates);
    }

    /// <summary>
    /// T=1 matches to ~1e-7. At T=4 one spike of downsample1_2.encode_lif lands on the other side of the threshold
    /// (its membrane potential is 3.6e-7, three float32 ulps, from 1.0): the reference's convolution sums round it one
    /// way, ours (blocked SGEMM and a double-accumulated naive conv alike) the other, and the flip spreads through the
    /// 72 layers after it. Rates stay within 0.005 and argmaxes agree; logits differ by up to ~0.065, hence 0.1 at T=4.
    /// The reference is PyTorch on CPU: rerun there it reproduces these numbers exactly, while the same PyTorch code on
    /// CUDA is also off at T=4 (0.0245 in logits, see BENCHMARKS.md), so 1e-2 at T=4 holds only for oneDNN's own
    /// summation order.
    /// </summary>
    [Theory]
    [InlineData(1, 1e-2)]
    [InlineData(4, 0.1)]
    public void LogitsAndFiringRatesMatchTheOfficialModel(int timesteps, double logitTolerance)
    {
        var (logits, rates) = Run(timesteps);
        var expected = Fixtures.Matrix(Fixtures.ParityExpected.GetProperty($"logits_T{timesteps}"));
        for (int b = 0; b < 2; b++)
        {
            var row = logits.AsSpan(b * 1000, 1000);
            for (int i = 0; i < 1000; i++)
                Assert.True(Math.Abs(row[i] - expected[b][i]) <= logitTolerance, $"T={timesteps} image {b} logit {i}: {row[i]} vs {expected[b][i]}");
            Assert.Equal(Array.IndexOf(expected[b], expected[b].Max()), Evaluator.ArgMax(row));
        }
        var expectedRates = Fixtures.Vector(Fixtures.ParityExpected.GetProperty($"lif_rates_T{timesteps}"));
        Assert.Equal(77, rates.Count);
        Assert.Equal("ConvBlock1_1.0.Conv.lif1", rates.Names[0]);
        Assert.Equal("lif", rates.Names[76]);
        for (int i = 0; i < 77; i++)
            Assert.True(Math.Abs(rates.Rate(i) - expectedRates[i]) <= 0.005, $"T={timesteps} {rates.Names[i]}: {rates.Rate(i)} vs {expectedRates[i]}");
    }
}
