using Qsvit.Backends;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Tests.Backends;

/// <summary>
/// What a model gives over some batches on a backend, through <see cref="Sdtv2Model.ForwardBatches"/> with each group
/// recorder: the fp32 logits (in delivery order) and spike counts, the fp32 membrane reference's norms, and the drift of
/// a 4-bit copy against it. One device and a group of any size must give the same to the bit.
/// </summary>
internal sealed record RecordedRun(float[] Logits, LifCounts Counts, double[] Norm, DriftSums Drift)
{
    public static RecordedRun Of(LoadedModel loaded, IReadOnlyList<BatchInput> batches, IBackend backend)
    {
        using var fp32 = loaded.CreateModel(backend: backend);
        using var q = fp32.WithState(ModelQuantizer.Apply(fp32.State, fp32.Layout, QuantizationSetting.Uniform(4), QuantizerSpec.Paper).StateDict);
        var logits = new List<float>();
        var order = new List<int>();
        using var counter = backend.CreateSpikeCounter(fp32.LifNames.Count);
        fp32.ForwardBatches(batches, counter, (k, l) =>
        {
            order.Add(k);
            logits.AddRange(l);
        });
        Assert.Equal(Enumerable.Range(0, batches.Count), order);
        using var reference = backend.CreateMembraneReference(fp32.LifNames.Count);
        fp32.ForwardBatches(batches, reference, (_, _) => { });
        reference.Seal();
        using var meter = backend.CreateDriftMeter(reference);
        q.ForwardBatches(batches, meter, (_, _) => { });
        return new([.. logits], counter.Read(), reference.NormSquared, meter.Read());
    }

    public void AssertSameAs(RecordedRun other)
    {
        Assert.Equal(Logits, other.Logits);
        Assert.Equal(Counts.Spikes, other.Counts.Spikes);
        Assert.Equal(Counts.Neurons, other.Counts.Neurons);
        Assert.Equal(Norm, other.Norm);
        Assert.Equal(Drift.DiffSquared, other.Drift.DiffSquared);
        Assert.Equal(Drift.Mismatches, other.Drift.Mismatches);
        Assert.Contains(Drift.DiffSquared, d => d > 0);
    }
}
