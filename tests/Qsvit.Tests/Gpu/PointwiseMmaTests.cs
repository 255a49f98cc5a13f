using ILGPU;
using ILGPU.Runtime;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The fused pointwise kernel (<see cref="PointwiseMmaKernels"/>, here its scalar body: inline PTX does not run on ILGPU's
/// CPU accelerator) against the packed-columns path it replaces and the CPU's integer path, bit for bit: column and row
/// tiling (partial tiles, odd channels, maps of 1×1 to 5×7, 16-byte loads and stores where HW is a multiple of 4), 1–3
/// int8 digits, bias and BNs, and the fused LIF over T = 1, 2, 4.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class PointwiseMmaTests(PointwiseAcceleratorFixture gpu) : IClassFixture<PointwiseAcceleratorFixture>
{
    public static TheoryData<int, int, int, int, int, int, string> Layers => new()
    {
        // in, out channels, h, w, frames, bits, quantizer
        { 33, 17, 5, 7, 3, 8, "asymmetric-channel-mse" },  // HW 35: scalar loads, partial column tile; codes up to ±255: two digits
        { 20, 40, 4, 4, 3, 4, "paper" },                   // HW 16: 16-byte loads and stores; 40 rows: a partial second row tile
        { 70, 9, 1, 1, 5, 16, "symmetric-channel" },       // a 1×1 map; Cp 80: a partial 64-channel slice; three digits
        { 16, 32, 2, 6, 2, 12, "symmetric" },              // HW 12, two digits, one tensor scale
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void FusedPointwiseEqualsThePackedPathAndTheCpuIntegerPath(int cin, int cout, int h, int w, int frames, int bits, string quantizer)
    {
        var (spec, codes, rng) = Layer(cin, cout, bits, quantizer);
        var input = ChainLayers.Spikes(rng, frames * cin * h * w);
        var expected = RunOnCpu(spec, input, frames, h, w);
        var acc = gpu.Device.Accelerator;
        using var layer = new GpuSpikeConv(acc, spec, codes);
        long length = (long)frames * cout * h * w;
        using var x = gpu.Upload(input);
        foreach (var mode in new[] { SpikeInputGemm.TensorCores, SpikeInputGemm.TensorCoresPointwiseCublas })
        {
            var ops = new SpikeGemmOps(acc, null, mode);
            bool fused = ops.Fused(layer);
            Assert.Equal(mode == SpikeInputGemm.TensorCores, fused);
            var (chunk, columnFloats, sumFloats) = SpikeGemmOps.Plan(layer, frames, h, w, 1L << 30, fused: fused);
            using var cols = gpu.Zeros(columnFloats);
            using var sums = gpu.Zeros(sumFloats);
            using var y = gpu.Upload(Enumerable.Repeat(float.NaN, (int)length).ToArray());
            ops.Conv(layer, x.View, frames, h, w, y.View, cols.View, sums.View, chunk);
            Assert.Equal(expected, y.GetAsArray1D());
        }
    }

    public static TheoryData<int, int, int, int, int, int> LifLayers => new()
    {
        // in, out channels, h, w, bits, T (batch 3)
        { 33, 17, 3, 5, 4, 4 },   // T = 4: a lane's eight columns are two pixels' runs; HW 15
        { 20, 40, 4, 4, 8, 1 },   // T = 1 on a map of 16
        { 70, 9, 1, 1, 12, 2 },   // T = 2 on a 1×1 map, two digits
    };

    /// <summary>The LIF in the fused kernel's registers writes exactly the spikes of the packed path's conv followed by the LIF kernel.</summary>
    [Theory]
    [MemberData(nameof(LifLayers))]
    public void FusedLifEqualsConvThenLif(int cin, int cout, int h, int w, int bits, int timesteps)
    {
        const int batch = 3;
        const float threshold = 0.4f;
        int frames = timesteps * batch;
        var (spec, codes, rng) = Layer(cin, cout, bits, "paper");
        var acc = gpu.Device.Accelerator;
        using var layer = new GpuSpikeConv(acc, spec, codes);
        long length = (long)frames * cout * h * w;
        using var x = gpu.Upload(ChainLayers.Spikes(rng, frames * cin * h * w));
        var packedPath = new SpikeGemmOps(acc, null, SpikeInputGemm.TensorCoresPointwiseCublas);
        var (_, columnFloats, sumFloats) = SpikeGemmOps.Plan(layer, frames, h, w, 1L << 30);
        using var cols = gpu.Zeros(columnFloats);
        using var sums = gpu.Zeros(sumFloats);
        using var pre = gpu.Zeros(length);
        using var expected = gpu.Zeros(length);
        packedPath.Conv(layer, x.View, frames, h, w, pre.View, cols.View, sums.View, frames);
        gpu.Ops.Lif(pre.View, expected.View, length, timesteps, threshold, default, default, 0);

        var ops = new SpikeGemmOps(acc, null);
        Assert.True(ops.Fused(layer, timesteps));
        Assert.False(ops.Fused(layer, 3));   // three steps do not tile a lane's eight columns: the packed path runs
        using var actual = gpu.Upload(Enumerable.Repeat(float.NaN, (int)length).ToArray());
        ops.Conv(layer, x.View, frames, h, w, actual.View, default, default, frames, timesteps, threshold);
        var e = expected.GetAsArray1D();
        Assert.Equal(e, actual.GetAsArray1D());
        Assert.InRange(e.Count(v => v != 0), length / 10, length * 9 / 10);   // both outcomes common
    }

    public static TheoryData<int, int, int, int, int, int> WholeLayers => new()
    {
        // in, out channels, h, w, bits, T (0: no LIF; batch 3)
        { 128, 128, 4, 4, 4, 0 },   // CIFAR's RepConv 1×1: Cp 128, one stage, two items per thread
        { 33, 17, 3, 5, 4, 4 },     // Cp 48, the LIF over T = 4, HW 15: scalar loads, partial column tile
        { 20, 40, 4, 4, 8, 1 },     // 40 rows: two row warps, a partial second tile; T = 1
        { 130, 9, 2, 2, 4, 0 },     // Cp 144: past one stage, chunked either way
        { 16, 24, 1, 1, 12, 2 },    // two digits: chunked either way
    };

    /// <summary>The whole input staged at once (<see cref="PointwiseMmaKernels.WholeStage"/>) gives the chunked stages' outputs and spikes bit for bit.</summary>
    [Theory]
    [MemberData(nameof(WholeLayers))]
    public void WholeStageEqualsChunkedStages(int cin, int cout, int h, int w, int bits, int timesteps)
    {
        const int batch = 3;
        int frames = Math.Max(1, timesteps) * batch;
        var (spec, codes, rng) = Layer(cin, cout, bits, "paper");
        var acc = gpu.Device.Accelerator;
        using var layer = new GpuSpikeConv(acc, spec, codes);
        Assert.Equal(layer.Parts == 1 && layer.Cp <= PointwiseMmaKernels.ChunkChannels, PointwiseMmaKernels.WholeStage(layer.Parts, layer.Cp));
        using var x = gpu.Upload(ChainLayers.Spikes(rng, frames * cin * h * w));
        var outputs = new List<float[]>();
        foreach (bool whole in new[] { false, true })
        {
            var ops = new SpikeGemmOps(acc, null, wholeStages: whole);
            Assert.True(ops.Fused(layer, timesteps));
            using var y = gpu.Upload(Enumerable.Repeat(float.NaN, frames * cout * h * w).ToArray());
            ops.Conv(layer, x.View, frames, h, w, y.View, default, default, frames, timesteps, 0.4f);
            outputs.Add(y.GetAsArray1D());
        }
        Assert.Equal(outputs[0].Select(BitConverter.SingleToInt32Bits), outputs[1].Select(BitConverter.SingleToInt32Bits));
        if (timesteps == 0) Assert.Equal(RunOnCpu(spec, x.GetAsArray1D(), frames, h, w), outputs[1]);
    }

    /// <summary>
    /// The rule and what profiles name: integer 1×1 layers up to the bound run fused where cuBLAS exists, always without it
    /// (if the call fits one launch); never with <c>--gemm tensor-cublas-1x1</c> or where groups are smaller than four warps.
    /// </summary>
    [Fact]
    public void FusedRuleAndEngineNames()
    {
        Assert.True(PointwiseMmaKernels.FusedPays(PointwiseMmaKernels.FusedMaxRows));
        Assert.False(PointwiseMmaKernels.FusedPays(PointwiseMmaKernels.FusedMaxRows + 1));
        var (spec, codes, _) = Layer(20, 40, 4, "paper");
        using (var spike = new GpuSpikeConv(gpu.Device.Accelerator, spec, codes))
        {
            var ops = new SpikeGemmOps(gpu.Device.Accelerator, null);
            Assert.True(ops.Fused(spike, 3, 4, 4, 0));
            Assert.False(ops.Fused(spike, 1 << 20, 64, 64, 0));   // more than one launch holds: the chunked packed path runs
        }
        foreach (var (mode, expected) in new[] { (SpikeInputGemm.TensorCores, true), (SpikeInputGemm.TensorCoresPointwiseCublas, false) })
        {
            using var backend = CudaBackend.OnCpuAcceleratorWithWarps(mode);
            using var layer = backend.CreateConv(spec);
            Assert.Equal(expected, layer.EngineAt(4, 4).Contains("fused 1x1"));
        }
        // Accelerators whose groups are smaller than four warps keep the packed path.
        using var small = CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCores, split: false);
        using var smallLayer = small.CreateConv(spec);
        Assert.DoesNotContain("fused 1x1", smallLayer.EngineAt(4, 4));
    }

    private static (ConvLayerSpec Spec, PackedWeight Codes, Random Rng) Layer(int cin, int cout, int bits, string quantizer)
    {
        var g = new ConvGeometry(cin, cout, 1, 1);
        var rng = new Random(cin * 31 + cout * 7 + bits);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [cout, cin, 1, 1], bits, QuantizerSpec.Parse(quantizer));
        var bias = Enumerable.Range(0, cout).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var bn = new ChannelAffine(bias.Select(b => b + 1.5f).ToArray(), bias.Select(b => 0.1f * b).ToArray());
        return (new ConvLayerSpec(g, new PackedConvWeights(codes), bias, [bn]) { SpikeInput = true }, codes, rng);
    }


    private static float[] RunOnCpu(ConvLayerSpec spec, float[] input, int frames, int h, int w)
    {
        using var cpu = new CpuBackend();
        using var layer = cpu.CreateConv(spec);
        var g = spec.Geometry;
        int length = frames * g.OutChannels * h * w, mark = cpu.Mark();
        var x = cpu.Rent(input.Length);
        cpu.Upload(input, x);
        var y = cpu.Rent(length);
        cpu.Conv(layer, x, frames, h, w, y);
        var result = new float[length];
        cpu.Download(y, 0, result);
        cpu.Release(mark);
        return result;
    }
}

/// <summary>ILGPU's CPU accelerator with CUDA-sized groups (four warps of 32 threads), which the fused pointwise kernel needs.</summary>
public sealed class PointwiseAcceleratorFixture() : CpuAcceleratorFixture(CudaBackend.OnCpuAcceleratorWithWarps());
