using Qsvit.Search;

namespace Qsvit.Tests.Search;

public sealed class Aq4DriftGateTests
{
    [Fact]
    public void MonotonePoints_ThresholdIsTheSmallestFailingDrift()
    {
        var gate = new Aq4DriftGate(maxDrop: 1.5);
        Assert.False(gate.PredictsFail(1e9));   // nothing known: verify everything
        gate.Add(0, 0);
        gate.Add(0.1, 0.4);
        gate.Add(0.3, 2.0);
        gate.Add(0.2, 1.0);
        Assert.Equal(0.3, gate.Threshold);
        gate.Add(0.25, 1.8);
        Assert.Equal(0.25, gate.Threshold);
        Assert.True(gate.PredictsFail(0.25));
        Assert.False(gate.PredictsFail(0.2499));
    }

    [Fact]
    public void ALoneLowFailure_IsPooledWithTheHigherPasses()
    {
        var gate = new Aq4DriftGate(maxDrop: 1.5);
        gate.Add(0.10, 1.9);   // an unlucky failure at a low drift
        gate.Add(0.20, 0.8);
        gate.Add(0.30, 1.0);
        Assert.Equal(double.PositiveInfinity, gate.Threshold);   // pooled mean 1.23 ≤ 1.5
        Assert.Equal([0.10, 0.20, 0.30], gate.Fit().Select(p => p.Drift));
        Assert.All(gate.Fit(), p => Assert.Equal((1.9 + 0.8 + 1.0) / 3, p.Drop, 12));
        gate.Add(0.40, 3.0);
        Assert.Equal(0.40, gate.Threshold);
    }

    [Fact]
    public void Fit_IsNonDecreasing_AndAveragesTies()
    {
        var rng = new Random(3);
        var gate = new Aq4DriftGate(maxDrop: 1);
        for (int i = 0; i < 200; i++) gate.Add(Math.Round(rng.NextDouble(), 1), rng.NextDouble() * 3);
        var fit = gate.Fit();
        Assert.Equal(11, fit.Count);   // drifts 0.0, 0.1, …, 1.0
        for (int i = 1; i < fit.Count; i++) Assert.True(fit[i].Drop >= fit[i - 1].Drop - 1e-12);
        var failing = fit.Where(p => p.Drop > 1).Select(p => p.Drift).ToArray();
        Assert.Equal(failing.Length > 0 ? failing[0] : double.PositiveInfinity, gate.Threshold);
    }
}
