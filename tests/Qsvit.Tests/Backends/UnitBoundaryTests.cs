using Qsvit.Backends;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Backends;

/// <summary>Prefix reuse (issue 11): a pass split at any unit boundary equals the full pass bit for bit.</summary>
public sealed class UnitBoundaryTests
{
    private const int Batch = 3;

    private static float[] Images(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, Batch * 3 * 32 * 32).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
    }

    [Fact]
    public void Units_AreThePapersBlocksInExecutionOrder()
    {
        using var model = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));
        Assert.Equal(Aq4Fixtures.TinyLayout.Blocks, model.Units);
        Assert.Equal("DS_S1_B1", model.Units[0]);
        Assert.Equal("TRAN_S3_B1", model.Units[8]);
        Assert.Equal(Sdtv2Layout.Head, model.Units[^1]);
        Assert.Throws<QsvitException>(() => model.UnitIndex("TRAN_S5"));
        Assert.Throws<QsvitException>(() => model.ForwardUntil(Images(1), Batch, 32, 32, "DS_S1_B1"));
    }

    [Fact]
    public void ForwardFrom_EveryBoundary_IsBitIdenticalToTheFullPass_LogitsAndSpikes()
    {
        using var model = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));
        var images = Images(2);
        using var fullCounts = model.Backend.CreateSpikeCounter(model.LifNames.Count);
        var full = model.Forward(images, Batch, 32, 32, fullCounts);
        var expected = fullCounts.Read();
        for (int u = 1; u < model.Units.Count; u++)
        {
            using var prefix = model.Backend.CreateSpikeCounter(model.LifNames.Count);
            using var stream = model.ForwardUntil(images, Batch, 32, 32, model.Units[u], prefix);
            Assert.Equal(model.Units[u], stream.Unit);
            Assert.Equal(u, stream.UnitIndex);
            var host = new float[stream.Length];
            stream.CopyTo(host);   // spillable to the host
            using var suffix = model.Backend.CreateSpikeCounter(model.LifNames.Count);
            var resumed = model.ForwardFrom(stream, suffix);
            Assert.Equal(full, resumed);
            using (var reloaded = model.LoadStream(model.Units[u], Batch, 32, 32, host))
                Assert.Equal(full, model.ForwardFrom(reloaded));
            // The prefix and the suffix together saw every LIF layer exactly once, under its full-pass index.
            var a = prefix.Read();
            var b = suffix.Read();
            for (int l = 0; l < model.LifNames.Count; l++)
            {
                Assert.Equal(expected.Spikes[l], a.Spikes[l] + b.Spikes[l]);
                Assert.Equal(expected.Neurons[l], a.Neurons[l] + b.Neurons[l]);
                Assert.True(a.Neurons[l] == 0 || b.Neurons[l] == 0, $"layer {l} ran on both sides of {model.Units[u]}");
            }
        }
    }

    /// <summary>The search case: a candidate that changes units from k on continues the fp32 model's stream at k.</summary>
    [Theory]
    [InlineData("CONV_S1_B2")]
    [InlineData("DS_S3")]
    [InlineData("TRAN_S4")]
    public void ACandidateChangedFromUnitK_ContinuesTheParentsStream(string firstChanged)
    {
        using var fp32 = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(3));
        var units = Sdtv2Layout.PaperUnits;
        var setting = QuantizationSetting.Uniform(32);
        for (int i = units.ToList().IndexOf(firstChanged); i < units.Count; i++) setting = setting.With(units[i], 4);
        using var candidate = fp32.WithState(ModelQuantizer.Apply(fp32.State, fp32.Layout, setting, QuantizerSpec.Paper).StateDict);
        var images = Images(4);
        // The paper unit's first block (TRAN_S4 starts at TRAN_S4_B1).
        string boundary = fp32.Units.First(b => b == firstChanged || b.StartsWith(firstChanged + "_B", StringComparison.Ordinal));
        using var stream = fp32.ForwardUntil(images, Batch, 32, 32, boundary);
        var resumed = candidate.ForwardFrom(stream);
        Assert.Equal(candidate.Forward(images, Batch, 32, 32), resumed);
        Assert.NotEqual(fp32.Forward(images, Batch, 32, 32), resumed);
    }

    [Fact]
    public void ForwardFrom_RefusesAStreamOfAnotherBackendOrConfiguration()
    {
        using var a = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));
        using var b = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));   // its own CPU backend
        using var stream = a.ForwardUntil(Images(1), Batch, 32, 32, "DS_S2");
        Assert.Throws<QsvitException>(() => b.ForwardFrom(stream));
        var t4 = Aq4Fixtures.Tiny with { Timesteps = 4 };
        using var c = new Sdtv2Model(t4, Aq4Fixtures.LivelyWeights(1), backend: a.Backend);
        Assert.Throws<QsvitException>(() => c.ForwardFrom(stream));
    }
}
