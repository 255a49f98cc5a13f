using ILGPU;
using ILGPU.Runtime;
using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Quantization;
using Qsvit.Tensors;
using Qsvit.Tests.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>The backend on ILGPU's CPU accelerator with real-input layers of codes on the bf16 path (cuBLAS's stand-in kernels).</summary>
public sealed class SplitAcceleratorFixture() : CpuAcceleratorFixture(CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCores, split: true));

/// <summary>
/// RepConv's body with the BN-padded depthwise 3×3 inside the real-input 1×1's bf16 split (<see cref="DepthwiseSplitKernels"/>)
/// against today's three ops (<see cref="IBackend.RunRepConv"/>) on the same backend, bit for bit: the first 1×1's int32
/// sums read with its epilogue (one digit) or its map (two digits), channels past a group's block and past Cp, columns
/// padded past the valid pixels, 32 and 16 channels per group, chunks of frames; and the rule's fallbacks.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class DepthwiseSplitTests(SplitAcceleratorFixture gpu) : IClassFixture<SplitAcceleratorFixture>
{
    public static TheoryData<int, int, int, int, int, bool, int> Shapes => new()
    {
        // channels, h, w, frames, the first 1×1's bits, biases (first, depthwise, real), the real 1×1's BNs
        { 131, 9, 9, 3, 4, true, 2 },    // Cp 144: the fifth block of 32 half past Cp, a pair half past the channels; 243 pixels → 244 columns; the first's sums feed the kernel
        { 130, 14, 14, 2, 4, true, 1 },  // the 55M's map: quads of the sums wrap rows (W = 14)
        { 128, 8, 10, 2, 12, false, 1 }, // 12-bit codes (two int8 digits): the first's map is read; Cp 128, four whole blocks
        { 256, 16, 16, 1, 4, true, 0 },  // 256 pixels (not pixel-major: K·M ≥ 128·(K + M)); padded 18×18: 16 channels per group
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void RepConvEqualsTheThreeOps(int channels, int h, int w, int frames, int firstBits, bool biases, int bns)
    {
        var backend = gpu.Backend;
        var rng = new Random(channels * 31 + h * 7 + w + firstBits);
        var (first, depthwise, pointwise) = Layers(rng, channels, firstBits, biases, bns, pointwiseCodes: true);
        using var f = (CudaConvLayer)backend.CreateConv(first);
        using var d = (CudaConvLayer)backend.CreateConv(depthwise);
        using var p = (CudaConvLayer)backend.CreateConv(pointwise);
        Assert.True(backend.DepthwiseSplitPays(d, p, h, w));
        Assert.Equal(firstBits <= 8, backend.SpikeOps!.SumsFeedDepthwise(f.Spike!, frames, h, w));
        Assert.Equal(h * w >= 256 ? 16 : 32, DepthwiseSplitKernels.BlockChannels(h, w, out _));
        var input = TestData.Spikes(rng, frames * channels * h * w);
        var pad = TestData.Random(rng, channels);
        var expected = Run(backend, f, d, p, input, pad, frames, h, w, threeOps: true);
        var actual = Run(backend, f, d, p, input, pad, frames, h, w, threeOps: false);
        TestData.AssertSame(expected, actual, $"RepConv {channels}ch @{h}x{w} x{frames}");
    }

    /// <summary>Chunks of two frames (the last one partial, its columns padded) give the one-chunk result, from sums and from a map.</summary>
    [Fact]
    public void ChunksOfFramesEqualTheThreeOps()
    {
        const int channels = 128, h = 9, w = 7, frames = 5, chunk = 2;
        var backend = gpu.Backend;
        var acc = gpu.Device.Accelerator;
        var rng = new Random(5);
        var (first, depthwise, pointwise) = Layers(rng, channels, 4, true, 2, pointwiseCodes: true);
        using var f = (CudaConvLayer)backend.CreateConv(first);
        using var d = (CudaConvLayer)backend.CreateConv(depthwise);
        using var p = (CudaConvLayer)backend.CreateConv(pointwise);
        var input = TestData.Spikes(rng, frames * channels * h * w);
        var pad = TestData.Random(rng, channels);
        var expected = Run(backend, f, d, p, input, pad, frames, h, w, threeOps: true);
        var ops = new SpikeGemmOps(acc, null);
        var real = p.RealCodes!;
        var (_, columnFloats, sumFloats) = SpikeGemmOps.Plan(real, chunk, h, w, 1L << 30);
        var (packed, firstSums) = SpikeGemmOps.FirstFloats(f.Spike!, chunk, h, w);
        using var x = gpu.Upload(input);
        using var border = gpu.Upload(pad);
        using var cols = gpu.Zeros(columnFloats);
        using var sums = gpu.Zeros(sumFloats);
        using var packedSpikes = gpu.Zeros(packed);
        using var intSums = gpu.Zeros(firstSums);
        using var y = gpu.Upload(Enumerable.Repeat(float.NaN, expected.Length).ToArray());
        ops.DepthwiseSplit(f.Spike, x.View, packedSpikes.View, intSums.View, d.Gpu!, border.View, real, frames, h, w, y.View, cols.View, sums.View, chunk);
        TestData.AssertSame(expected, y.GetAsArray1D(), "RepConv in chunks of 2 frames from the first's sums");
        // From the first 1×1's map (today's first op).
        using var map = gpu.Zeros(input.Length);
        int mark = backend.Mark();
        var inBuffer = backend.Rent(input.Length);
        var mapBuffer = backend.Rent(input.Length);
        backend.Upload(input, inBuffer);
        backend.Conv(f, inBuffer, frames, h, w, mapBuffer);
        var mapValues = new float[input.Length];
        backend.Download(mapBuffer, 0, mapValues);
        backend.Release(mark);
        map.CopyFromCPU(mapValues);
        using var y2 = gpu.Upload(Enumerable.Repeat(float.NaN, expected.Length).ToArray());
        ops.DepthwiseSplit(null, map.View, default, default, d.Gpu!, border.View, real, frames, h, w, y2.View, cols.View, sums.View, chunk);
        TestData.AssertSame(expected, y2.GetAsArray1D(), "RepConv in chunks of 2 frames from the first's map");
    }

    /// <summary>
    /// The three ops run where the path does not apply, and give their result: fp32 real-input units (no codes), codes not
    /// exact in bf16, maps below <see cref="CudaBackend.DepthwiseSplitMinPixels"/> (CIFAR's 4×4), planes too large for a
    /// group, and the fp32 spike path (<c>--gemm fp32</c>).
    /// </summary>
    [Fact]
    public void OtherLayersAndMapsFallBackToTheThreeOps()
    {
        var backend = gpu.Backend;
        var rng = new Random(11);
        const int channels = 128, frames = 2;
        var (first, depthwise, codes) = Layers(rng, channels, 4, true, 1, pointwiseCodes: true);
        var (_, _, dense) = Layers(rng, channels, 4, true, 1, pointwiseCodes: false);
        var (_, _, wide) = Layers(rng, channels, 4, true, 1, pointwiseCodes: true, pointwiseBits: 12);
        using var f = (CudaConvLayer)backend.CreateConv(first);
        using var d = (CudaConvLayer)backend.CreateConv(depthwise);
        using var p = (CudaConvLayer)backend.CreateConv(codes);
        using var fp32 = (CudaConvLayer)backend.CreateConv(dense);
        using var twelve = (CudaConvLayer)backend.CreateConv(wide);
        Assert.True(backend.DepthwiseSplitPays(d, p, 8, 8));
        Assert.False(backend.DepthwiseSplitPays(d, fp32, 8, 8));
        Assert.False(backend.DepthwiseSplitPays(d, twelve, 8, 8));
        Assert.False(backend.DepthwiseSplitPays(d, p, 4, 4));
        // Profiles name the path where it runs, and the three ops' engines elsewhere.
        Assert.Contains("depthwise 3x3 inside the bf16 split", backend.RepConvEngine(f, d, p, 8, 8));
        Assert.Null(backend.RepConvEngine(f, d, p, 4, 4));
        Assert.Null(backend.RepConvEngine(f, d, fp32, 8, 8));
        Assert.Equal(0, DepthwiseSplitKernels.BlockChannels(40, 40, out _));
        Assert.False(backend.DepthwiseSplitPays(d, p, 40, 40));
        using (var plain = CudaBackend.OnCpuAccelerator(SpikeInputGemm.Fp32, split: true))
        using (var pd = (CudaConvLayer)plain.CreateConv(depthwise))
        using (var pp = (CudaConvLayer)plain.CreateConv(codes))
            Assert.False(plain.DepthwiseSplitPays(pd, pp, 8, 8));
        // A fallback call is today's ops, bit for bit.
        var input = TestData.Spikes(rng, frames * channels * 4 * 4);
        var pad = TestData.Random(rng, channels);
        TestData.AssertSame(Run(backend, f, d, p, input, pad, frames, 4, 4, threeOps: true), Run(backend, f, d, p, input, pad, frames, 4, 4, threeOps: false), "4x4 fallback");
        var input8 = TestData.Spikes(rng, frames * channels * 8 * 8);
        TestData.AssertSame(Run(backend, f, d, fp32, input8, pad, frames, 8, 8, threeOps: true), Run(backend, f, d, fp32, input8, pad, frames, 8, 8, threeOps: false), "fp32 fallback");
    }

    /// <summary>
    /// q, k and v over one spike map (<see cref="IBackend.RepConvs"/>): packed once where every conv's first 1×1 feeds the
    /// depthwise kernel from its sums, one by one elsewhere (a 4×4 map, below the kernel's rule); each output equals
    /// <see cref="IBackend.RepConv"/>'s alone, bit for bit.
    /// </summary>
    [Theory]
    [InlineData(130, 14, 14, 2, true)]
    [InlineData(128, 4, 4, 3, false)]
    public void RepConvsOverOneInputEqualEachRepConv(int channels, int h, int w, int frames, bool shared)
    {
        var backend = gpu.Backend;
        var rng = new Random(channels + h);
        var layers = new List<CudaConvLayer>();
        var convs = new RepConvLayers[3];
        int mark = backend.Mark();
        var input = TestData.Spikes(rng, frames * channels * h * w);
        var x = backend.Rent(input.Length);
        backend.Upload(input, x);
        var expected = new float[3][];
        for (int i = 0; i < 3; i++)
        {
            var (first, depthwise, pointwise) = Layers(rng, channels, 4, biases: i != 1, bns: 1 + i % 2, pointwiseCodes: true);
            var (f, d, q) = ((CudaConvLayer)backend.CreateConv(first), (CudaConvLayer)backend.CreateConv(depthwise), (CudaConvLayer)backend.CreateConv(pointwise));
            layers.AddRange([f, d, q]);
            var pad = TestData.Random(rng, channels);
            var v = backend.Rent(channels);
            backend.Upload(pad, v);
            convs[i] = new RepConvLayers(f, v, d, q);
            expected[i] = Run(backend, f, d, q, input, pad, frames, h, w, threeOps: false);
        }
        Assert.Equal(shared, backend.SharesPacking(convs, frames, h, w));
        int outLength = frames * channels * h * w;
        var outputs = new DeviceBuffer[3];
        for (int i = 0; i < 3; i++)
        {
            outputs[i] = backend.Rent(outLength);
            backend.Upload(Enumerable.Repeat(float.NaN, outLength).ToArray(), outputs[i]);
        }
        ((IBackend)backend).RepConvs(convs, x, frames, h, w, outputs);
        for (int i = 0; i < 3; i++)
        {
            var actual = new float[outLength];
            backend.Download(outputs[i], 0, actual);
            TestData.AssertSame(expected[i], actual, $"conv {i} of RepConvs {channels}ch @{h}x{w} x{frames}");
        }
        Assert.Throws<ArgumentException>(() => ((IBackend)backend).RepConvs(convs, x, frames, h, w, outputs.AsSpan(0, 2)));
        backend.Release(mark);
        foreach (var layer in layers) layer.Dispose();
    }

    /// <summary>RepConv's three layers as the model builds them: spike-input 1×1 of codes, depthwise 3×3 of 4-bit codes, real-input 1×1 (codes or fp32) with BNs.</summary>
    internal static (ConvLayerSpec First, ConvLayerSpec Depthwise, ConvLayerSpec Pointwise) Layers(Random rng, int c, int firstBits, bool biases, int bns,
        bool pointwiseCodes, int pointwiseBits = 8)
    {
        var one = new ConvGeometry(c, c, 1, 1);
        var dw = new ConvGeometry(c, c, 3, 3, 1, 1, 0, 0, c);
        float[] Bias() => biases ? TestData.Random(rng, c) : [];
        ChannelAffine Bn() => new(TestData.Random(rng, c, 0.5f, 1.5f), TestData.Random(rng, c));
        ConvWeightData Codes(ConvGeometry g, int bits, string quantizer) =>
            new PackedConvWeights(PackedWeight.Quantize("w", TestData.Random(rng, g.WeightLength, -0.5f, 0.5f), [g.OutChannels, g.InChannels / g.Groups, g.KernelH, g.KernelW], bits, QuantizerSpec.Parse(quantizer)));
        var first = new ConvLayerSpec(one, Codes(one, firstBits, "paper"), Bias(), [Bn()]) { SpikeInput = true };
        var depthwise = new ConvLayerSpec(dw, Codes(dw, 4, "paper"), Bias(), []);
        var pointwise = new ConvLayerSpec(one, pointwiseCodes ? Codes(one, pointwiseBits, "asymmetric-channel-mse") : new DenseConvWeights(TestData.Random(rng, one.WeightLength, -0.5f, 0.5f)),
            Bias(), Enumerable.Range(0, bns).Select(_ => Bn()).ToArray());
        return (first, depthwise, pointwise);
    }

    private static float[] Run(CudaBackend backend, ConvLayer first, ConvLayer depthwise, ConvLayer pointwise, float[] input, float[] pad, int frames, int h, int w,
        bool threeOps)
    {
        int mark = backend.Mark(), outLength = frames * pointwise.Geometry.OutChannels * h * w;
        var x = backend.Rent(input.Length);
        var v = backend.Rent(pad.Length);
        var y = backend.Rent(outLength);
        backend.Upload(input, x);
        backend.Upload(pad, v);
        backend.Upload(Enumerable.Repeat(float.NaN, outLength).ToArray(), y); // the workspace slot holds the previous call's output
        if (threeOps) IBackend.RunRepConv(backend, first, v, depthwise, pointwise, x, frames, h, w, y);
        else ((IBackend)backend).RepConv(first, v, depthwise, pointwise, x, frames, h, w, y);
        var result = new float[outLength];
        backend.Download(y, 0, result);
        backend.Release(mark);
        return result;
    }
}
