using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Evaluation;
using Qsvit.Models;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The whole SDTv2 wiring on the CUDA backend (run by ILGPU's CPU accelerator) against the CPU backend: the parity
/// fixture's official architecture (kd head, 1000 classes) on a 32×32 centre crop of its two images, so that the slow
/// CPU accelerator finishes in seconds.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class CudaBackendModelTests(CpuAcceleratorFixture gpu)
{
    private const int Size = 32, Batch = 2;

    /// <summary>
    /// Stated tolerance: 1e-4 on logits. The ILGPU kernels sum every convolution, SDSA product and head in the CPU's order
    /// with the same FMAs, so all but the spatial mean (summed in row order instead of the CPU's vector lanes) are
    /// bit-identical; a last-bit difference there can only move the final LIF's membrane by an ulp.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void ParityModelMatchesTheCpuBackend(int timesteps)
    {
        var loaded = ModelLoader.Load(Fixtures.ParityCheckpoint, overrides: new ConfigOverrides { Architecture = new PartialConfig { Timesteps = timesteps } });
        var images = CentreCrop(Fixtures.ParityImages(), Batch, 224, Size);
        using var cpu = new Sdtv2Model(loaded.Config, loaded.State);
        using var onGpu = new Sdtv2Model(loaded.Config, loaded.State, backend: gpu.Backend);

        var cpuCounter = cpu.Backend.CreateSpikeCounter(cpu.LifNames.Count);
        var expected = cpu.Forward(images, Batch, Size, Size, cpuCounter);
        using var gpuCounter = gpu.Backend.CreateSpikeCounter(onGpu.LifNames.Count);
        var actual = onGpu.Forward(images, Batch, Size, Size, gpuCounter);

        int classes = loaded.Config.NumClasses;
        for (int b = 0; b < Batch; b++)
        {
            var e = expected.AsSpan(b * classes, classes);
            var a = actual.AsSpan(b * classes, classes);
            for (int i = 0; i < classes; i++)
                Assert.True(Math.Abs(a[i] - e[i]) <= 1e-4f, $"T={timesteps} image {b} logit {i}: {a[i]} vs {e[i]}");
            Assert.Equal(Evaluator.ArgMax(e), Evaluator.ArgMax(a));
        }
        var c = cpuCounter.Read();
        var g = gpuCounter.Read();
        Assert.Equal(c.Neurons, g.Neurons);
        for (int l = 0; l < c.Spikes.Length; l++)
            Assert.True(Math.Abs(c.Rate(l) - g.Rate(l)) <= 1e-4, $"T={timesteps} {cpu.LifNames[l]}: rate {g.Rate(l)} vs {c.Rate(l)}");

        // Run to run: identical.
        Assert.Equal(actual, onGpu.Forward(images, Batch, Size, Size, (LifRecorder?)null));
    }

    [Fact]
    public void DriftRecordersAgreeWithTheCpuBackend()
    {
        var loaded = ModelLoader.Load(Fixtures.ParityCheckpoint, overrides: new ConfigOverrides { Architecture = new PartialConfig { Timesteps = 1 } });
        var images = CentreCrop(Fixtures.ParityImages(), Batch, 224, Size);
        var shifted = images.Select(v => v * 0.9f).ToArray();
        using var cpu = new Sdtv2Model(loaded.Config, loaded.State);
        using var onGpu = new Sdtv2Model(loaded.Config, loaded.State, backend: gpu.Backend);
        int layers = cpu.LifNames.Count;

        (double[] Norm, DriftSums Same, DriftSums Shifted) Measure(Sdtv2Model model)
        {
            using var reference = model.Backend.CreateMembraneReference(layers);
            model.Forward(images, 1, Size, Size, reference);
            model.Forward(images.AsSpan(3 * Size * Size), 1, Size, Size, reference);
            reference.Seal();
            using var meter = model.Backend.CreateDriftMeter(reference);
            model.Forward(images, 1, Size, Size, meter);
            model.Forward(images.AsSpan(3 * Size * Size), 1, Size, Size, meter);
            var same = meter.Read();
            meter.Reset();
            model.Forward(shifted, 1, Size, Size, meter);
            model.Forward(shifted.AsSpan(3 * Size * Size), 1, Size, Size, meter);
            return (reference.NormSquared, same, meter.Read());
        }

        var c = Measure(cpu);
        var g = Measure(onGpu);
        Assert.Equal(layers, g.Norm.Length);
        Assert.All(g.Same.DiffSquared, d => Assert.Equal(0, d));
        Assert.All(g.Same.Mismatches, m => Assert.Equal(0, m));
        Assert.Equal(c.Shifted.LayersSeen, g.Shifted.LayersSeen);
        for (int l = 0; l < layers; l++)
        {
            Assert.Equal(c.Norm[l], g.Norm[l], 1e-7 * c.Norm[l]); // double sums in another order
            Assert.Equal(c.Shifted.DiffSquared[l], g.Shifted.DiffSquared[l], 1e-6 * (c.Shifted.DiffSquared[l] + 1e-12));
            Assert.Equal(c.Shifted.Mismatches[l], g.Shifted.Mismatches[l]);
        }
    }

    /// <summary>
    /// A stream of batches (each uploaded ahead while the one before computes, into two alternating input buffers, one grown
    /// for a larger batch) gives each batch's logits exactly as a single pass does, in order.
    /// </summary>
    [Fact]
    public void BatchesUploadedAheadGiveTheLogitsOfSinglePasses()
    {
        var loaded = ModelLoader.Load(Fixtures.ParityCheckpoint, overrides: new ConfigOverrides { Architecture = new PartialConfig { Timesteps = 1 } });
        var images = CentreCrop(Fixtures.ParityImages(), Batch, 224, Size);
        int image = 3 * Size * Size;
        using var onGpu = new Sdtv2Model(loaded.Config, loaded.State, backend: gpu.Backend);
        BatchInput[] batches =
        [
            new(images.AsMemory(image, image), 1, Size, Size),
            new(images, 2, Size, Size),
            new(images.AsMemory(0, image), 1, Size, Size),
        ];
        var got = new List<(int, float[])>();
        onGpu.ForwardBatches(batches, null, (k, logits) => got.Add((k, logits)));

        Assert.Equal([0, 1, 2], got.Select(g => g.Item1));
        for (int k = 0; k < batches.Length; k++)
            Assert.Equal(onGpu.Forward(batches[k].Images.Span, batches[k].Batch, Size, Size, (LifRecorder?)null), got[k].Item2);
    }

    private static float[] CentreCrop(float[] images, int batch, int size, int crop)
    {
        var result = new float[batch * 3 * crop * crop];
        int off = (size - crop) / 2;
        for (int p = 0; p < batch * 3; p++)
            for (int y = 0; y < crop; y++)
                images.AsSpan((p * size + y + off) * size + off, crop).CopyTo(result.AsSpan((p * crop + y) * crop, crop));
        return result;
    }
}
