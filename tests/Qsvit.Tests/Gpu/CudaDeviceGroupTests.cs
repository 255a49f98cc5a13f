using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// Two CUDA backends (each on an ILGPU CPU accelerator of its own, opened and driven on its own thread) against one:
/// logits, spike counts and drift sums identical, with an uneven last batch.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class CudaDeviceGroupTests(CpuAcceleratorFixture gpu)
{
    [Fact]
    public void TwoDevicesGiveWhatOneGives()
    {
        var loaded = Aq4Fixtures.TinyModel(3);
        var rng = new Random(9);
        var images = Enumerable.Range(0, 3 * 3072).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var batches = new[] { (0, 2), (2, 1) }.Select(c => new BatchInput(images.AsMemory(c.Item1 * 3072, c.Item2 * 3072), c.Item2, 32, 32)).ToArray();
        (float[] Logits, LifCounts Counts, double[] Norm, DriftSums Drift) Run(IBackend backend)
        {
            using var fp32 = loaded.CreateModel(backend: backend);
            using var q = fp32.WithState(ModelQuantizer.Apply(fp32.State, fp32.Layout, QuantizationSetting.Uniform(4), QuantizerSpec.Paper).StateDict);
            var logits = new List<float>();
            using var counter = backend.CreateSpikeCounter(fp32.LifNames.Count);
            fp32.ForwardBatches(batches, counter, (_, l) => logits.AddRange(l));
            using var reference = backend.CreateMembraneReference(fp32.LifNames.Count);
            fp32.ForwardBatches(batches, reference, (_, _) => { });
            reference.Seal();
            using var meter = backend.CreateDriftMeter(reference);
            q.ForwardBatches(batches, meter, (_, _) => { });
            return ([.. logits], counter.Read(), reference.NormSquared, meter.Read());
        }
        var one = Run(gpu.Backend);
        using var group = DeviceGroup.Open([CudaBackend.OnCpuAccelerator, CudaBackend.OnCpuAccelerator]);
        var two = Run(group);
        Assert.Equal(one.Logits, two.Logits);
        Assert.Equal(one.Counts.Spikes, two.Counts.Spikes);
        Assert.Equal(one.Counts.Neurons, two.Counts.Neurons);
        Assert.Equal(one.Norm, two.Norm);
        Assert.Equal(one.Drift.DiffSquared, two.Drift.DiffSquared);
        Assert.Equal(one.Drift.Mismatches, two.Drift.Mismatches);
        Assert.Contains(two.Drift.DiffSquared, d => d > 0);
    }
}
