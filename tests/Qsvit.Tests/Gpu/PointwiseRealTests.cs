using ILGPU;
using ILGPU.Runtime;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Quantization;
using Qsvit.Tensors;
using Qsvit.Tests.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The fused real-input pointwise kernel (<see cref="PointwiseMmaKernels.RealConv{TFma}"/>, here its scalar body: inline
/// PTX does not run on ILGPU's CPU accelerator) against today's real-input path (bf16 split columns, the bf16 GEMM, the
/// scaled epilogue) and the CPU backend's dequantized fp32 conv. All three sum exact products in fp32 in different orders,
/// so they agree within 1e-5 of Σ|w·x| (times the BNs' scales) and of the output: the bound of 3·K fp32 additions for K ≤
/// 130 here, with room. Covered: odd channel counts (a 32-channel step half past Cp, several chunks, stages of 32, 64 and
/// 128 channels, the whole input in one stage), 1–4 row warps and a partial row tile, maps of 1×1 to 5×7 (scalar and
/// 16-byte loads and stores, partial column tiles), with and without bias and BNs (up to three, the third from global
/// memory), 4- and 8-bit codes.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class PointwiseRealTests(PointwiseAcceleratorFixture gpu) : IClassFixture<PointwiseAcceleratorFixture>
{
    public static TheoryData<int, int, int, int, int, int, string, bool, int> Layers => new()
    {
        // in, out channels, h, w, frames, bits, quantizer, bias, BNs
        { 33, 17, 5, 7, 3, 8, "asymmetric-channel-mse", true, 1 },  // Cp 48: two chunks, the second half past Cp; HW 35: scalar loads, partial column tile
        { 20, 40, 4, 4, 3, 4, "paper", false, 0 },                  // HW 16: 16-byte loads and stores; 40 rows: two row warps, a partial second tile
        { 70, 9, 1, 1, 5, 8, "symmetric-channel", true, 3 },        // a 1×1 map; three BNs
        { 130, 70, 2, 6, 2, 4, "symmetric", false, 2 },             // Cp 144: five chunks; 70 rows: four row warps; one tensor scale
        { 64, 70, 4, 4, 3, 4, "paper", true, 1 },                   // Cp 64 at one column warp: the whole input in one stage of 64
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void FusedRealInputMatchesTodaysPathAndTheDequantizedConv(int cin, int cout, int h, int w, int frames, int bits, string quantizer, bool bias, int bns)
    {
        var (spec, codes, rng) = Layer(cin, cout, bits, quantizer, bias, bns);
        var input = RealValues(rng, frames * cin * h * w);
        var expected = SpikeGemmTests.Run(new CpuBackend(), spec, input, frames, h, w);
        var bound = Bound(spec, codes, input, frames, h * w);
        var acc = gpu.Device.Accelerator;
        using var layer = GpuSpikeConv.RealInputCodes(acc, spec, codes);
        using var x = gpu.Upload(input);
        var outputs = new Dictionary<SpikeInputGemm, float[]>();
        foreach (var mode in new[] { SpikeInputGemm.TensorCores, SpikeInputGemm.TensorCoresRealFused })
        {
            var ops = new SpikeGemmOps(acc, null, mode);
            bool fused = ops.Fused(layer);
            Assert.Equal(mode == SpikeInputGemm.TensorCoresRealFused, fused);
            var (chunk, columnFloats, sumFloats) = SpikeGemmOps.Plan(layer, frames, h, w, 1L << 30, fused: fused);
            using var cols = gpu.Zeros(columnFloats);
            using var sums = gpu.Zeros(sumFloats);
            using var y = gpu.Upload(Enumerable.Repeat(float.NaN, expected.Length).ToArray());
            ops.Conv(layer, x.View, frames, h, w, y.View, cols.View, sums.View, chunk);
            outputs[mode] = y.GetAsArray1D();
        }
        var actual = outputs[SpikeInputGemm.TensorCoresRealFused];
        var today = outputs[SpikeInputGemm.TensorCores];
        for (int i = 0; i < expected.Length; i++)
        {
            float tolerance = 1e-5f * (1 + bound[i] + Math.Abs(expected[i]));
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance, $"{i}: fused {actual[i]} vs CPU {expected[i]} (Σ|w·x| {bound[i]})");
            Assert.True(Math.Abs(actual[i] - today[i]) <= tolerance, $"{i}: fused {actual[i]} vs today's path {today[i]}");
        }
    }

    /// <summary>
    /// Stages of up to 128 channels (<see cref="PointwiseMmaKernels.RealChunkFor"/>: 32 per stage at four column warps, 64
    /// at two, 128 at one), the whole input at once where it fits (<see cref="PointwiseArgs.Whole"/>, four items' loads per
    /// round), give the 32-channel stages' outputs bit for bit: the sums run per 32-channel step in the same order.
    /// </summary>
    [Theory]
    [MemberData(nameof(Layers))]
    public void WholeStagesEqualChunkedStagesBitForBit(int cin, int cout, int h, int w, int frames, int bits, string quantizer, bool bias, int bns)
    {
        var (spec, codes, rng) = Layer(cin, cout, bits, quantizer, bias, bns);
        var input = RealValues(rng, frames * cin * h * w);
        var acc = gpu.Device.Accelerator;
        using var layer = GpuSpikeConv.RealInputCodes(acc, spec, codes);
        using var x = gpu.Upload(input);
        var outputs = new List<float[]>();
        foreach (bool whole in new[] { false, true })
        {
            var ops = new SpikeGemmOps(acc, null, SpikeInputGemm.TensorCoresRealFused, wholeStages: whole);
            Assert.True(ops.Fused(layer));
            using var y = gpu.Upload(Enumerable.Repeat(float.NaN, frames * cout * h * w).ToArray());
            ops.Conv(layer, x.View, frames, h, w, y.View, default, default, frames);
            outputs.Add(y.GetAsArray1D());
        }
        TestData.AssertSameBits(outputs[0], outputs[1], "whole vs chunked stages");
        Assert.Equal(32, PointwiseMmaKernels.RealChunkFor(4, 144));
        Assert.Equal(64, PointwiseMmaKernels.RealChunkFor(2, 48));
        Assert.Equal(128, PointwiseMmaKernels.RealChunkFor(1, 144));
        Assert.Equal(96, PointwiseMmaKernels.RealChunkFor(1, 80));
    }

    /// <summary>
    /// Without cuBLAS (its rule, <see cref="PointwiseMmaKernels.RealFusedPays"/>, needs it) only <c>--gemm tensor-real-fused</c>
    /// runs the real-input layers fused, never with a LIF, and then at every map size (<see cref="GpuSpikeConv.RealInputPays"/>
    /// with the fused kernel); profiles name it; a whole call through the backend equals the dequantized conv within the bound.
    /// </summary>
    [Fact]
    public void FusedRealInputOnlyWithItsOptionAndThroughTheBackend()
    {
        const int h = 3, w = 4, frames = 2;
        var (spec, codes, rng) = Layer(130, 24, 4, "paper", true, 1);
        using (var layer = GpuSpikeConv.RealInputCodes(gpu.Device.Accelerator, spec, codes))
        {
            Assert.False(new SpikeGemmOps(gpu.Device.Accelerator, null).Fused(layer));
            var ops = new SpikeGemmOps(gpu.Device.Accelerator, null, SpikeInputGemm.TensorCoresRealFused);
            Assert.True(ops.Fused(layer));
            Assert.False(ops.Fused(layer, 4));
        }
        var input = RealValues(rng, frames * 130 * h * w);
        var expected = SpikeGemmTests.Run(new CpuBackend(), spec, input, frames, h, w);
        var bound = Bound(spec, codes, input, frames, h * w);
        foreach (var (mode, fused) in new[] { (SpikeInputGemm.TensorCores, false), (SpikeInputGemm.TensorCoresRealFused, true) })
        {
            using var backend = CudaBackend.OnCpuAcceleratorWithWarps(mode, split: true);
            using var layer = (CudaConvLayer)backend.CreateConv(spec);
            Assert.NotNull(layer.RealCodes);
            Assert.True(GpuSpikeConv.RealInputPays(spec.Geometry, h, w));
            Assert.Equal(fused, layer.EngineAt(h, w).Contains("fused 1x1, bf16 mma.sync"));
            // Unfused, the bf16 codes do not pay on a large map and the fp32 conv runs; fused they pay from K = 16.
            Assert.Equal(fused, layer.EngineAt(64, 64).Contains("fused 1x1, bf16 mma.sync"));
            if (!fused) continue;
            var actual = SpikeGemmTests.Run(backend, spec, input, frames, h, w, owned: false);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-5f * (1 + bound[i] + Math.Abs(expected[i])), $"{i}: {actual[i]} vs {expected[i]}");
        }
    }

    /// <summary>The measured bounds: fused from 16 input channels at any map size, by default up to 128 output channels.</summary>
    [Fact]
    public void RealInputRuleFollowsTheMeasurements()
    {
        Assert.True(PointwiseMmaKernels.RealFusedPays(64) && PointwiseMmaKernels.RealFusedPays(128));
        Assert.False(PointwiseMmaKernels.RealFusedPays(192));
        var g = new ConvGeometry(128, 64, 1, 1); // the 55M's pwconv2 at 112×112
        Assert.False(GpuSpikeConv.RealInputPays(g, 112, 112));
        Assert.True(GpuSpikeConv.RealInputPays(g, 112, 112, fused: true));
        Assert.False(GpuSpikeConv.RealInputPays(new ConvGeometry(8, 8, 1, 1), 4, 4, fused: true));
    }

    private static (ConvLayerSpec Spec, PackedWeight Codes, Random Rng) Layer(int cin, int cout, int bits, string quantizer, bool withBias, int bns)
    {
        var g = new ConvGeometry(cin, cout, 1, 1);
        var rng = new Random(cin * 31 + cout * 7 + bits + bns);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [cout, cin, 1, 1], bits, QuantizerSpec.Parse(quantizer));
        var bias = withBias ? Enumerable.Range(0, cout).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray() : [];
        var affines = Enumerable.Range(0, bns).Select(_ => new ChannelAffine(
            Enumerable.Range(0, cout).Select(_ => (float)rng.NextDouble() + 0.5f).ToArray(),
            Enumerable.Range(0, cout).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray())).ToArray();
        return (new ConvLayerSpec(g, new PackedConvWeights(codes), bias, affines), codes, rng);
    }

    /// <summary>Real values over many binades, both signs, some exact zeros.</summary>
    private static float[] RealValues(Random rng, int length) => Enumerable.Range(0, length)
        .Select(_ => rng.Next(8) == 0 ? 0f : (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-12, 6)))).ToArray();

    /// <summary>Per output: Σ_c |w[r, c]·x[f, c, pix]| times the BNs' |scales|, the scale of the summation error.</summary>
    private static float[] Bound(ConvLayerSpec spec, PackedWeight codes, float[] input, int frames, int hw)
    {
        var g = spec.Geometry;
        var weight = codes.Dequantize();
        var bound = new float[frames * g.OutChannels * hw];
        for (int f = 0; f < frames; f++)
            for (int r = 0; r < g.OutChannels; r++)
            {
                double gain = spec.Affines.Aggregate(1.0, (a, bn) => a * Math.Abs(bn.Scale[r]));
                for (int pix = 0; pix < hw; pix++)
                {
                    double s = 0;
                    for (int c = 0; c < g.InChannels; c++) s += Math.Abs(weight[r * g.InChannels + c] * input[(f * g.InChannels + c) * hw + pix]);
                    bound[(f * g.OutChannels + r) * hw + pix] = (float)(s * gain);
                }
            }
        return bound;
    }
}
