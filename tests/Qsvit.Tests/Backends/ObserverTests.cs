using Qsvit.Backends;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Snn;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Backends;

/// <summary>The backend's own observers against what a host observer sees of the same passes.</summary>
public sealed class ObserverTests
{
    private static float[] Images(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count * 3 * 32 * 32).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
    }

    [Fact]
    public void SpikeCounter_MatchesTheHostFiringRateRecorder_OverSeveralPasses()
    {
        using var model = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(2));
        var images = Images(5, 1);
        using var counter = model.Backend.CreateSpikeCounter(model.LifNames.Count);
        var host = new FiringRateRecorder();
        foreach (var (start, n) in new[] { (0, 3), (3, 2) })
        {
            var batch = images.AsSpan(start * 3072, n * 3072);
            var a = model.Forward(batch, n, 32, 32, counter);
            var b = model.Forward(batch, n, 32, 32, host);
            Assert.Equal(a, b);
        }
        var counts = counter.Read();
        Assert.Equal(model.LifNames, host.Names);
        for (int l = 0; l < host.Count; l++)
        {
            Assert.Equal(host.Spikes(l), counts.Spikes[l]);
            Assert.Equal(host.Neurons(l), counts.Neurons[l]);
        }
        Assert.Contains(counts.Spikes, s => s > 0);
        counter.Clear();
        Assert.All(counter.Read().Spikes, s => Assert.Equal(0, s));
    }

    /// <summary>Σ(H_q − H_fp)², ΣH_fp² and mismatches, as a naive host loop over the same potentials computes them.</summary>
    [Fact]
    public void DriftMeter_EqualsANaiveHostComputation_AndResets()
    {
        using var fp32 = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(3));
        using var q = fp32.WithState(ModelQuantizer.Apply(fp32.State, fp32.Layout, QuantizationSetting.Uniform(4), QuantizerSpec.Paper).StateDict);
        var images = Images(4, 2);
        var b = fp32.Backend;
        using var reference = b.CreateMembraneReference(fp32.LifNames.Count);
        var hostFp = new Capture();
        var hostQ = new Capture();
        foreach (int start in new[] { 0, 2 })
        {
            var batch = images.AsSpan(start * 3072, 2 * 3072);
            fp32.Forward(batch, 2, 32, 32, reference);
            fp32.Forward(batch, 2, 32, 32, hostFp);
            q.Forward(batch, 2, 32, 32, hostQ);
        }
        reference.Seal();
        using var meter = b.CreateDriftMeter(reference);
        for (int round = 0; round < 2; round++)
        {
            meter.Reset();
            foreach (int start in new[] { 0, 2 }) q.Forward(images.AsSpan(start * 3072, 2 * 3072), 2, 32, 32, meter);
            var sums = meter.Read();
            Assert.Equal(fp32.LifNames.Count, sums.LayersSeen);
            Assert.Equal(fp32.LifNames.Count, reference.Layers);
            for (int l = 0; l < reference.Layers; l++)
            {
                double d2 = 0, n2 = 0;
                long mismatch = 0, neurons = 0;
                for (int c = 0; c < 2; c++)
                {
                    var (hf, sf) = hostFp.Layers[l][c];
                    var (hq, sq) = hostQ.Layers[l][c];
                    double chunkD = 0, chunkN = 0;
                    for (int i = 0; i < hf.Length; i++)
                    {
                        double d = hq[i] - hf[i];
                        chunkD += d * d;
                        chunkN += (double)hf[i] * hf[i];
                        if (sq[i] != sf[i]) mismatch++;
                    }
                    d2 += chunkD;
                    n2 += chunkN;
                    neurons += hf.Length;
                }
                Assert.Equal(d2, sums.DiffSquared[l]);
                Assert.Equal(n2, reference.NormSquared[l]);
                Assert.Equal(mismatch, sums.Mismatches[l]);
                Assert.Equal(neurons, reference.Neurons[l]);
            }
            Assert.Contains(sums.DiffSquared, d => d > 0);
        }
        // A third chunk has no reference: an error, not a silent comparison with the wrong images.
        Assert.Throws<InvalidOperationException>(() => q.Forward(images.AsSpan(0, 2 * 3072), 2, 32, 32, meter));
    }

    [Fact]
    public void MembraneDrift_IsZeroForTheReference_AndTheSameOnAnyCpuBackend()
    {
        using var fp32 = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(3));
        using var drift = new MembraneDrift(fp32, Images(2, 3), 2, 32, 32, batch: 2);
        Assert.Equal(0.0, drift.Measure(fp32).Drift);
        var state = ModelQuantizer.Apply(fp32.State, fp32.Layout, QuantizationSetting.Uniform(8), QuantizerSpec.Paper).StateDict;
        using var here = fp32.WithState(state);
        using var elsewhere = new Sdtv2Model(Aq4Fixtures.Tiny, state, backend: new Qsvit.Backends.Cpu.CpuBackend(new Qsvit.Tensors.ComputeOptions { Threads = 1 }));
        var a = drift.Measure(here);
        var b = drift.Measure(elsewhere);
        Assert.True(a.Drift > 0);
        Assert.Equal(a.PerLayer, b.PerLayer);
        Assert.Equal(a.SpikeMismatch, b.SpikeMismatch);
    }

    /// <summary>Weights stay on the device: a candidate uploads only the layers whose arrays changed.</summary>
    [Fact]
    public void WithState_UploadsOnlyTheChangedLayers()
    {
        using var fp32 = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));
        int all = fp32.LayerUploads;
        Assert.Equal(fp32.Layout.Weights.Count - (Aq4Fixtures.Tiny.Kd ? 2 : 1) + 1, all);   // every conv, plus the head once
        var quantizer = new ModelQuantizer(fp32.State, fp32.Layout);
        var one = QuantizationSetting.Uniform(32).With("CONV_S2_B1", 4);
        int convs = fp32.Layout.Weights.Count(w => w.Unit == "CONV_S2_B1");
        using (var a = fp32.WithState(quantizer.Apply(one, QuantizerSpec.Paper).StateDict))
        {
            Assert.Equal(all + convs, fp32.LayerUploads);
            // The same quantized arrays again (the quantizer caches them): nothing new is uploaded while a holds them.
            using var b = fp32.WithState(quantizer.Apply(one, QuantizerSpec.Paper).StateDict);
            Assert.Equal(all + convs, fp32.LayerUploads);
            Assert.Equal(a.Forward(Images(1, 5), 1, 32, 32), b.Forward(Images(1, 5), 1, 32, 32));
        }
        using var c = fp32.WithState(fp32.State);
        Assert.Equal(all + convs, fp32.LayerUploads);
    }

    private sealed class Capture : ILifObserver
    {
        public readonly List<List<(float[] H, float[] S)>> Layers = new();
        public bool WantsMembrane => true;

        public void Observe(int index, string name, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes, long spikeCount)
        {
            while (Layers.Count <= index) Layers.Add(new());
            Layers[index].Add((membrane.ToArray(), spikes.ToArray()));
        }
    }
}
