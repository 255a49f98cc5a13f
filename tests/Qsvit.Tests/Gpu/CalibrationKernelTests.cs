using Qsvit.Backends;
using Qsvit.Backends.Cpu;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The calibration reductions (<see cref="IBackend.AccumulateFrames"/>, <see cref="IBackend.ChannelMoments"/>,
/// <see cref="IBackend.ChannelAffines"/>) on ILGPU's CPU accelerator against the CPU backend, on small odd shapes. Frame
/// sums and affines run in the CPU's order with exact or correctly rounded operations: identical. Moments are tree-summed
/// in double on the device: within 1e-12 relative, and identical from run to run.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class CalibrationKernelTests(CpuAcceleratorFixture gpu)
{
    private static float[] Random(int length, int seed, float offset = 0)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 4 - 2) + offset).ToArray();
    }

    private static DeviceBuffer On(IBackend backend, float[] data)
    {
        var buffer = backend.Allocate(data.Length);
        backend.Upload(data, buffer);
        return buffer;
    }

    private static float[] Read(IBackend backend, DeviceBuffer buffer, int length)
    {
        var data = new float[length];
        backend.Download(buffer, 0, data);
        return data;
    }

    [Theory]
    [InlineData(1, 1, 1.0)]
    [InlineData(5, 37, 4.0)]
    [InlineData(7, 300, 1.0)]
    public void AccumulateFrames_equals_the_cpu_backend(int frames, int length, double weight)
    {
        var x = Random(frames * length, frames + length);
        var start = Random(length, 3).Select(v => (double)v / 3).ToArray();
        using var cpu = new CpuBackend();
        var expected = (double[])start.Clone();
        cpu.AccumulateFrames(On(cpu, x), frames, length, weight, expected);
        var actual = (double[])start.Clone();
        using var b = On(gpu.Backend, x);
        gpu.Backend.AccumulateFrames(b, frames, length, weight, actual);
        Assert.Equal(expected, actual);
        // And the CPU backend is the naive sum, frame by frame.
        for (int i = 0; i < length; i++)
        {
            double s = start[i];
            for (int f = 0; f < frames; f++) s += x[f * length + i] * weight;
            Assert.Equal(s, expected[i]);
        }
    }

    [Theory]
    [InlineData(3, 5, 63)]
    [InlineData(1, 1, 1)]
    [InlineData(5, 2, 3600)]   // 18,000 values per channel: two chunks of the device reduction
    public void ChannelMoments_match_the_cpu_backend_and_repeat_exactly(int frames, int channels, int plane)
    {
        var x = Random(frames * channels * plane, channels * plane, offset: 3);
        using var cpu = new CpuBackend();
        double[] em = new double[channels], eq = new double[channels], am = new double[channels], aq = new double[channels];
        cpu.ChannelMoments(On(cpu, x), frames, channels, plane, em, eq);
        using var b = On(gpu.Backend, x);
        gpu.Backend.ChannelMoments(b, frames, channels, plane, am, aq);
        for (int c = 0; c < channels; c++)
        {
            // Naive reference for the CPU backend: exact order, so equal.
            double sum = 0, sq = 0;
            for (int f = 0; f < frames; f++) for (int i = 0; i < plane; i++) sum += x[(f * channels + c) * plane + i];
            double m = sum / ((double)frames * plane);
            for (int f = 0; f < frames; f++) for (int i = 0; i < plane; i++) sq += (x[(f * channels + c) * plane + i] - m) * (x[(f * channels + c) * plane + i] - m);
            Assert.Equal(m, em[c]);
            Assert.Equal(sq, eq[c]);
            Assert.Equal(em[c], am[c], Math.Abs(em[c]) * 1e-12);
            Assert.Equal(eq[c], aq[c], Math.Abs(eq[c]) * 1e-12);
        }
        double[] m2 = new double[channels], q2 = new double[channels];
        gpu.Backend.ChannelMoments(b, frames, channels, plane, m2, q2);
        Assert.Equal(am, m2);
        Assert.Equal(aq, q2);
    }

    [Theory]
    [InlineData(2, 3, 10, 1, false)]
    [InlineData(2, 3, 10, 2, true)]
    [InlineData(3, 4, 17, 1, true)]
    public void ChannelAffines_equal_the_cpu_backend_and_undo_exactly(int frames, int channels, int plane, int count, bool inverse)
    {
        var x = Random(frames * channels * plane, 11);
        var affines = Random(2 * count * channels, 12, offset: 0.5f);
        affines[0] = 1f;   // an identity channel, as the corrector passes for channels it leaves alone
        affines[channels] = 0f;
        using var cpu = new CpuBackend();
        var cx = On(cpu, x);
        cpu.ChannelAffines(cx, frames, channels, plane, On(cpu, affines), count, inverse);
        var expected = Read(cpu, cx, x.Length);
        using var gx = On(gpu.Backend, x);
        using var ga = On(gpu.Backend, affines);
        gpu.Backend.ChannelAffines(gx, frames, channels, plane, ga, count, inverse);
        Assert.Equal(expected, Read(gpu.Backend, gx, x.Length));
        for (int j = 0; j < x.Length; j++)
        {
            int c = j / plane % channels;
            if (inverse)
            {
                double v = x[j];
                for (int b = count - 1; b >= 0; b--) v = (v - affines[(2 * b + 1) * channels + c]) / affines[2 * b * channels + c];
                Assert.Equal((float)v, expected[j]);
            }
            else
            {
                float v = x[j];
                for (int b = 0; b < count; b++) v = MathF.FusedMultiplyAdd(v, affines[2 * b * channels + c], affines[(2 * b + 1) * channels + c]);
                Assert.Equal(v, expected[j]);
            }
        }
    }
}

/// <summary>The whole correction (bias and BN) on the CUDA backend (ILGPU's CPU accelerator) against the CPU backend: the tiny model, one 8×8 image.</summary>
[Collection("gpu-cpu-accelerator")]
public sealed class QuantizationCorrectorGpuTests(CpuAcceleratorFixture gpu)
{
    /// <summary>
    /// Stated tolerance: 1e-4 relative on every corrected bias and BN statistic. The ILGPU kernels sum convs in the CPU's
    /// order and the frame sums and affines are exact, so only the tree-summed moments (1e-12) and an ulp of a spatial
    /// mean can differ.
    /// </summary>
    [Fact]
    public void Corrected_state_matches_the_cpu_backend()
    {
        var config = Qsvit.Tests.Search.Aq4Fixtures.Tiny;
        var state = Qsvit.Tests.Search.Aq4Fixtures.LivelyWeights(1);
        var rng = new Random(5);
        var images = new Qsvit.Quantization.CalibrationImages(
            Enumerable.Range(0, 3 * 8 * 8).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray(), 1, 3, 8, 8);
        var options = new Qsvit.Quantization.CorrectionOptions { Bias = true, BatchNorm = true };
        using var cpu = new Qsvit.Models.Sdtv2Model(config, state);
        using var onGpu = new Qsvit.Models.Sdtv2Model(config, state, backend: gpu.Backend);
        var q = Qsvit.Quantization.ModelQuantizer.Apply(cpu.State, cpu.Layout, Qsvit.Quantization.QuantizationSetting.Uniform(3),
            Qsvit.Quantization.QuantizerSpec.Paper);
        var expected = new Qsvit.Quantization.QuantizationCorrector(cpu, images, options).Correct(q).StateDict;
        var actual = new Qsvit.Quantization.QuantizationCorrector(onGpu, images, options).Correct(q).StateDict;
        int changed = 0;
        foreach (var key in expected.Keys)
        {
            var e = expected[key].Data;
            var a = actual[key].Data;
            if (!ReferenceEquals(e, q.StateDict[key].Data)) changed++;
            for (int i = 0; i < e.Length; i++)
                Assert.True(Math.Abs(e[i] - a[i]) <= 1e-4 * (1 + Math.Abs(e[i])), $"{key}[{i}]: cpu {e[i]}, cuda {a[i]}");
        }
        Assert.True(changed > 50, $"{changed} tensors corrected");
    }
}
