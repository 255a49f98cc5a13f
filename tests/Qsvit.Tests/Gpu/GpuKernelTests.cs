using ILGPU;
using ILGPU.Runtime;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Snn;
using Qsvit.Tensors;
using Qsvit.Tests.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>One CUDA backend on ILGPU's CPU accelerator, kernels compiled once, shared by the GPU tests (compiling is the slow part).</summary>
public class CpuAcceleratorFixture : IDisposable
{
    public CpuAcceleratorFixture() : this(CudaBackend.OnCpuAccelerator()) { }

    /// <summary>Another configuration of the CPU accelerator (e.g. CUDA-sized groups).</summary>
    protected CpuAcceleratorFixture(CudaBackend backend) => Backend = backend;

    public CudaBackend Backend { get; }
    public GpuDevice Device => Backend.GpuDevice;
    internal GpuOps Ops => Backend.Ops;

    public MemoryBuffer1D<float, Stride1D.Dense> Upload(float[] data) => Device.Accelerator.Allocate1D(data);
    public MemoryBuffer1D<float, Stride1D.Dense> Zeros(long length) => Device.Accelerator.Allocate1D<float>(Math.Max(1, length));

    public void Dispose()
    {
        Backend.Dispose();
        GC.SuppressFinalize(this);
    }
}

[CollectionDefinition("gpu-cpu-accelerator")]
public sealed class CpuAcceleratorCollection : ICollectionFixture<CpuAcceleratorFixture>;

/// <summary>
/// Every CUDA-backend kernel on ILGPU's CPU accelerator against the CPU kernels, on small odd shapes. Where the CPU's
/// float order is fixed (FMA chains, K segments, BN as one FMA) the results must be identical; elsewhere close.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class GpuKernelTests(CpuAcceleratorFixture gpu)
{
    public static IEnumerable<object[]> ConvCases =>
    [
        // cin, cout, k, stride, pad, groups, h, w, bias, BNs, spike input
        [3, 16, 7, 2, 3, 1, 13, 11, true, 1, false],   // the stem: real input, bias, BN, stride 2
        [20, 24, 3, 1, 1, 1, 9, 7, false, 1, true],    // two channel blocks: two K segments
        [32, 48, 1, 1, 0, 1, 5, 6, false, 1, true],    // pointwise, oneDNN reduce blocking
        [160, 32, 1, 1, 0, 1, 14, 14, false, 2, true], // pointwise in segments of 80, two BNs (RepConv)
        [17, 5, 1, 1, 0, 1, 3, 5, true, 0, false],     // odd pointwise with bias after the first segment
        [8, 12, 3, 2, 1, 2, 10, 9, true, 0, false],    // groups, stride 2
        [70, 66, 3, 2, 1, 1, 7, 5, true, 1, true],     // more rows than one 64-row tile
        [24, 24, 7, 1, 3, 24, 8, 7, false, 0, true],   // depthwise 7x7 (ConvBlock)
        [16, 16, 3, 1, 0, 16, 6, 7, false, 0, false],  // depthwise 3x3 unpadded (RepConv)
        [10, 10, 3, 2, 1, 10, 9, 8, true, 1, false],   // depthwise, stride 2, bias, BN
        [6, 6, 7, 1, 3, 6, 19, 23, false, 1, false],   // depthwise over several tiles per plane
        [5, 5, 3, 1, 0, 5, 4, 4, false, 0, true],      // depthwise, several planes per group, the last group short
        [4, 4, 7, 2, 3, 4, 15, 12, true, 2, false],    // depthwise 7x7 stride 2, bias, two BNs
    ];

    /// <summary>
    /// The tiles a GPU launch uses (about 1024 outputs per group) computed by this accelerator's small groups: the
    /// kernel walks its tile with whatever threads the group has, so the GPU's tiling is checked here too.
    /// </summary>
    [Theory]
    [InlineData(7, 1, 3, 40, 70)]   // tiles of a plane (two columns of tiles, balanced)
    [InlineData(7, 1, 3, 7, 7)]     // 20 planes per group
    [InlineData(3, 1, 0, 6, 6)]     // RepConv's unpadded 3x3, 64 planes per group
    [InlineData(3, 2, 1, 33, 9)]    // stride 2
    [InlineData(3, 2, 0, 7, 9)]     // unpadded stride 2: whole planes, one contiguous copy per group
    public void DepthwiseWithGpuTilesMatchesTheCpuKernel(int k, int stride, int pad, int h, int w)
    {
        var rng = new Random(k * 31 + h);
        int channels = 6, frames = 7;
        var g = new ConvGeometry(channels, channels, k, k, stride, stride, pad, pad, channels);
        int oh = g.OutH(h), ow = g.OutW(w);
        var x = TestData.Random(rng, frames * channels * h * w);
        var weight = TestData.Random(rng, g.WeightLength, -0.5f, 0.5f);
        var bn = (TestData.Random(rng, channels, 0.5f, 1.5f), TestData.Random(rng, channels));
        var expected = new float[frames * channels * oh * ow];
        Conv2d.Forward(x, frames, h, w, weight, [], g, expected);
        ChannelOps.ScaleShift(expected, frames, channels, oh * ow, bn.Item1, bn.Item2);

        var acc = gpu.Device.Accelerator;
        using var layer = new GpuConv(acc, g, weight, [], [bn]);
        using var input = gpu.Upload(x);
        var kernel = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
            GpuKernels.Depthwise<ExactFma>);
        // One output row per thread, and at stride 1 two (the pair reads each staged row once): the same values bit for bit.
        foreach (int rows in stride == 1 ? [1, 2] : new[] { 1 })
        {
            using var output = gpu.Upload(Enumerable.Repeat(float.NaN, expected.Length).ToArray());
            var p = new DepthwiseArgs
            {
                Planes = frames * channels, Channels = channels, H = h, W = w, OH = oh, OW = ow, KH = k, KW = k,
                StrideH = stride, StrideW = stride, PadH = pad, PadW = pad, BnCount = 1, Rows = rows,
            };
            long groups = GpuOps.DepthwiseTiles(ref p, 1024);
            Assert.True(p.TilesY * p.TileH >= oh && p.TilesX * p.TileW >= ow && p.TileW <= 64);
            Assert.True((long)p.InTileH * p.InTileW * p.PlanesPerGroup <= GpuKernels.DepthwiseTileFloats);
            kernel(new KernelConfig(new Index1D((int)groups), new Index1D(2)), input.View, layer.Weights.View, layer.Weights.View, layer.Bn!.View, output.View,
                layer.Weights.View, p);
            acc.Synchronize();
            TestData.AssertSame(expected, output.GetAsArray1D(), $"depthwise {g} @{h}x{w}, tiles {p.TileH}x{p.TileW} x{p.PlanesPerGroup}, {rows} rows per thread");
        }
    }

    /// <summary>
    /// The stride-1 3×3 / 7×7 kernel with four or eight outputs per thread (<see cref="GpuKernels.DepthwiseStrips{TFma, TTaps}"/>)
    /// on the GPU's tiles, run by this accelerator's two-thread groups: the CPU kernel's values, and the generic tiled
    /// kernel's bit for bit (signs of zeros included). Maps narrower than a strip, than the kernel, over several tiles in
    /// both directions, strips cut short at the map's edge, odd channel counts, pads short of the kernel's reach, BN
    /// padding on tiny and wider maps.
    /// </summary>
    [Theory]
    [InlineData(7, 3, 0, 32, 32, 3, false, 1)]    // CIFAR's first ConvBlock: one 32×32 tile per plane
    [InlineData(7, 3, 0, 100, 37, 1, true, 2)]    // tiles in both directions, the last ones partial; bias, two BNs
    [InlineData(7, 3, 0, 5, 6, 5, false, 0)]      // a map smaller than the kernel, many planes per group, the last group short
    [InlineData(7, 1, 0, 9, 11, 3, true, 1)]      // a pad short of the kernel's reach
    [InlineData(7, 3, 0, 28, 28, 2, false, 1)]    // 55M's last ConvBlock map: eight-wide strips cut short at 28
    [InlineData(7, 3, 0, 8, 8, 3, false, 0)]      // CIFAR's 8×8 map
    [InlineData(3, 0, 0, 6, 7, 5, false, 0)]      // RepConv's unpadded 3×3
    [InlineData(3, 1, 0, 13, 10, 3, true, 2)]     // zero-padded 3×3
    [InlineData(3, 0, 1, 6, 6, 7, false, 0)]      // BN-padded 4×4 interior (CIFAR's transformer stages), 7 channels
    [InlineData(3, 0, 1, 6, 6, 5, true, 2)]       // the same with bias and two BNs: 15 planes, the last plane group short
    [InlineData(3, 0, 1, 16, 16, 3, true, 1)]     // BN-padded 14×14 interior (55M), bias and BN
    [InlineData(3, 0, 1, 7, 3, 2, false, 0)]      // BN-padded 5×1 interior: one column
    public void DepthwiseStripsMatchTheGenericKernel(int k, int pad, int border, int h, int w, int channels, bool hasBias, int bnCount)
    {
        var rng = new Random(k * 131 + pad * 17 + h * 3 + w + border);
        const int frames = 3;
        var g = new ConvGeometry(channels, channels, k, k, 1, 1, pad, pad, channels);
        int oh = g.OutH(h), ow = g.OutW(w), ih = h - 2 * border, iw = w - 2 * border;
        var x = TestData.Random(rng, frames * channels * ih * iw);
        var weight = TestData.Random(rng, g.WeightLength, -0.5f, 0.5f);
        var bias = hasBias ? TestData.Random(rng, channels) : [];
        var bns = Enumerable.Range(0, bnCount).Select(_ => (TestData.Random(rng, channels, 0.5f, 1.5f), TestData.Random(rng, channels))).ToArray();
        var values = TestData.Random(rng, channels);
        var padded = x;
        if (border > 0)
        {
            padded = new float[frames * channels * h * w];
            for (int pl = 0; pl < frames * channels; pl++)
                for (int yy = 0; yy < h; yy++)
                    for (int xx = 0; xx < w; xx++)
                    {
                        int jy = yy - border, jx = xx - border;
                        padded[(pl * h + yy) * w + xx] = jy >= 0 && jy < ih && jx >= 0 && jx < iw ? x[(pl * ih + jy) * iw + jx] : values[pl % channels];
                    }
        }
        var expected = new float[frames * channels * oh * ow];
        Conv2d.Forward(padded, frames, h, w, weight, bias, g, expected);
        foreach (var (scale, shift) in bns) ChannelOps.ScaleShift(expected, frames, channels, oh * ow, scale, shift);

        var acc = gpu.Device.Accelerator;
        using var layer = new GpuConv(acc, g, weight, bias, bns);
        using var input = gpu.Upload(x);
        using var borderValues = gpu.Upload(values);
        Assert.True(GpuOps.StripsFit(g));
        var generic = Run(acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
            GpuKernels.Depthwise<ExactFma>), (ref DepthwiseArgs p) => GpuOps.DepthwiseTiles(ref p, 1024));
        TestData.AssertSame(expected, generic, $"generic {g} @{h}x{w} border {border}");
        var kernels = k == 3
            ? new[] { (acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ExactFma, Taps3>), 4) }
            : [(acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ExactFma, Taps7>), 4),
                (acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ExactFma, Taps7x8>), 8)];
        foreach (var (kernel, width) in kernels)
        {
            var strips = Run(kernel, (ref DepthwiseArgs p) => GpuOps.DepthwiseStripTiles(ref p, GpuOps.StripThreads, width));
            TestData.AssertSameBits(generic, strips, $"{width} per thread");
        }
        if (border == 1)
        {
            // RepConv's BN-padded 3×3 straight from the map.
            Assert.True(GpuOps.Border3Fits(g, oh, ow));
            var direct = Run(acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
                GpuKernels.DepthwiseBorder3<ExactFma>), (ref DepthwiseArgs p) => GpuOps.DepthwiseBorder3Groups(ref p, GpuOps.StripThreads));
            TestData.AssertSameBits(generic, direct, "direct");
            Assert.Equal(ih == 4 && iw == 4, GpuOps.Border3PlanesFit(g, oh, ow, input.View, borderValues.View));
            if (ih == 4 && iw == 4)
            {
                // CIFAR's 4×4 maps: a plane per thread (two-thread groups here).
                var planes = Run(acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
                    GpuKernels.DepthwiseBorder3Planes<ExactFma>), (ref DepthwiseArgs p) => { p.ChannelsInverse = 1f / p.Channels; return (p.Planes + 1) / 2; });
                TestData.AssertSameBits(generic, planes, "a plane per thread");
            }
        }
        // Through the backend's dispatch too (which picks the strips kernel and its width, or another kernel where one pays), and with
        // the plane kernel off.
        foreach (bool planesOn in new[] { true, false })
        {
            using var viaOps = gpu.Zeros(expected.Length);
            gpu.Ops.BorderPlanes = planesOn;
            try { gpu.Ops.Conv(layer, input.View, frames, h, w, viaOps.View, border > 0 ? borderValues.View : default, border); }
            finally { gpu.Ops.BorderPlanes = true; }
            TestData.AssertSame(expected, viaOps.GetAsArray1D(), $"GpuOps.Conv, planes {planesOn}");
        }

        float[] Run(Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs> kernel,
            TilePlanner plan)
        {
            using var output = gpu.Upload(Enumerable.Repeat(float.NaN, expected.Length).ToArray());
            var p = new DepthwiseArgs
            {
                Planes = frames * channels, Channels = channels, H = h, W = w, OH = oh, OW = ow, KH = k, KW = k,
                StrideH = 1, StrideW = 1, PadH = pad, PadW = pad, HasBias = hasBias ? 1 : 0, BnCount = bnCount, Border = border, Rows = 1,
            };
            long groups = plan(ref p);
            Assert.True(p.TilesY * p.TileH >= oh && p.TilesX * p.TileW >= ow || p.TilesY == 0);
            Assert.True((long)p.PlanesPerGroup * p.InTileH * Math.Max(p.InTileW, p.Pitch) <= GpuKernels.DepthwiseTileFloats);
            kernel(new KernelConfig(new Index1D((int)groups), new Index1D(2)), input.View, layer.Weights.View, layer.Bias?.View ?? layer.Weights.View,
                layer.Bn?.View ?? layer.Weights.View, output.View, borderValues.View, p);
            acc.Synchronize();
            return output.GetAsArray1D();
        }
    }

    private delegate long TilePlanner(ref DepthwiseArgs p);

    /// <summary>
    /// The 7×7 4×4-blocks kernel (<see cref="GpuKernels.DepthwiseBlocks{TFma}"/>) on the GPU's tiles, run by this
    /// accelerator's two-thread groups: the CPU kernel's values, and the generic tiled kernel's bit for bit (signs of zeros
    /// included). Maps smaller than the kernel and than a block, widths that are no multiple of 4 (element-wise staging and
    /// stores), an input that is not 16-byte aligned, tiles in both directions with the last ones partial, several planes
    /// per group with the last group short, odd channel counts, bias and BNs.
    /// </summary>
    [Theory]
    [InlineData(32, 32, 3, false, 1, 0)]     // CIFAR's first ConvBlock: three planes per group
    [InlineData(8, 8, 5, false, 0, 0)]       // CIFAR's 8×8 map: 21 planes per group, the last group short
    [InlineData(5, 6, 3, true, 2, 0)]        // a map smaller than the kernel, 6 wide: element-wise staging and stores
    [InlineData(28, 28, 2, false, 1, 1)]     // 55M's last ConvBlock map, an input one float past a 16-byte boundary
    [InlineData(150, 133, 1, true, 1, 0)]    // tiles in both directions (34 strips of 32 at most, 38 row blocks), partial ones
    [InlineData(13, 9, 3, false, 0, 0)]      // odd sizes
    public void DepthwiseBlocksMatchTheGenericKernel(int h, int w, int channels, bool hasBias, int bnCount, int offset)
    {
        var rng = new Random(h * 3 + w + offset);
        const int frames = 3, k = 7, pad = 3;
        var g = new ConvGeometry(channels, channels, k, k, 1, 1, pad, pad, channels);
        int oh = g.OutH(h), ow = g.OutW(w);
        Assert.True(GpuOps.BlocksFit(g) && oh == h && ow == w);
        var x = TestData.Random(rng, frames * channels * h * w);
        // Zeros and negative zeros among the inputs: the skipped rows and zero columns must keep the sums' signs.
        for (int i = 0; i < x.Length; i += 7) x[i] = i % 2 == 0 ? 0f : -0f;
        var weight = TestData.Random(rng, g.WeightLength, -0.5f, 0.5f);
        var bias = hasBias ? TestData.Random(rng, channels) : [];
        var bns = Enumerable.Range(0, bnCount).Select(_ => (TestData.Random(rng, channels, 0.5f, 1.5f), TestData.Random(rng, channels))).ToArray();
        var expected = new float[frames * channels * oh * ow];
        Conv2d.Forward(x, frames, h, w, weight, bias, g, expected);
        foreach (var (scale, shift) in bns) ChannelOps.ScaleShift(expected, frames, channels, oh * ow, scale, shift);

        var acc = gpu.Device.Accelerator;
        using var layer = new GpuConv(acc, g, weight, bias, bns);
        using var inputBuffer = gpu.Upload([.. new float[offset], .. x]);
        var input = inputBuffer.View.SubView(offset, x.Length);
        using var genericOut = gpu.Upload(Enumerable.Repeat(float.NaN, expected.Length).ToArray());
        using var blocksOut = gpu.Upload(Enumerable.Repeat(float.NaN, expected.Length).ToArray());
        var p = Args();
        long groups = GpuOps.DepthwiseTiles(ref p, 1024);
        acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
            GpuKernels.Depthwise<ExactFma>)(new KernelConfig(new Index1D((int)groups), new Index1D(2)), input, layer.Weights.View,
            layer.Bias?.View ?? layer.Weights.View, layer.Bn?.View ?? layer.Weights.View, genericOut.View, layer.Weights.View, p);
        p = Args();
        p.Vec = w % 4 == 0 && offset % 4 == 0 ? 1 : 0;
        p.VecOut = w % 4 == 0 ? 1 : 0;
        groups = GpuOps.DepthwiseBlockTiles(ref p, GpuOps.BlockThreads);
        Assert.True(p.TilesY * p.TileH >= oh && p.TilesX * p.TileW >= ow && p.PlanesPerGroup * p.PlaneFloats <= GpuKernels.DepthwiseBlockChunks);
        acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
            GpuKernels.DepthwiseBlocks<ExactFma>)(new KernelConfig(new Index1D((int)groups), new Index1D(2)), input, layer.Weights.View,
            layer.Bias?.View ?? layer.Weights.View, layer.Bn?.View ?? layer.Weights.View, blocksOut.View, p);
        acc.Synchronize();
        var generic = genericOut.GetAsArray1D();
        var blocks = blocksOut.GetAsArray1D();
        TestData.AssertSame(expected, generic, $"generic {g} @{h}x{w}");
        TestData.AssertSameBits(generic, blocks, "blocks");
        // Through the backend's dispatch too (the planes kernel on small maps, the blocks kernel where it pays, the strips kernel elsewhere).
        using var viaOps = gpu.Zeros(expected.Length);
        gpu.Ops.Conv(layer, input, frames, h, w, viaOps.View);
        var dispatched = viaOps.GetAsArray1D();
        TestData.AssertSameBits(generic, dispatched, "GpuOps.Conv");

        DepthwiseArgs Args() => new()
        {
            Planes = frames * channels, Channels = channels, H = h, W = w, OH = oh, OW = ow, KH = k, KW = k,
            StrideH = 1, StrideW = 1, PadH = pad, PadW = pad, HasBias = hasBias ? 1 : 0, BnCount = bnCount, Rows = 1,
        };
    }

    /// <summary>
    /// The 7×7 whole-planes kernel (<see cref="GpuKernels.DepthwisePlanes{TFma}"/>) on the GPU's batches of planes, run by
    /// this accelerator's two-thread groups, each group taking one, two or three batches (the next batch's first chunks
    /// loaded ahead, the rest staged after): the generic tiled kernel's values bit for bit (signs of zeros included).
    /// Several planes per batch with the last batch short, heights that are no multiple of the eight-row block, maps
    /// smaller than the kernel, widths of 1 to 16 strips, odd channel counts, bias and BNs; and through
    /// <see cref="GpuOps.Conv"/>, also from an input that is not 16-byte aligned (another kernel).
    /// </summary>
    [Theory]
    [InlineData(32, 32, 3, false, 0, 0)]     // CIFAR's first ConvBlock
    [InlineData(16, 16, 5, false, 1, 0)]     // CIFAR's 16×16 map
    [InlineData(8, 8, 7, true, 0, 0)]        // CIFAR's 8×8 map: many planes per batch, the last batch short
    [InlineData(28, 28, 2, false, 1, 0)]     // 55M's 28×28: seven strips
    [InlineData(13, 20, 3, true, 2, 0)]      // a height that is no multiple of 8
    [InlineData(5, 4, 3, false, 1, 0)]       // a map smaller than the kernel, one strip
    [InlineData(1, 12, 2, true, 0, 0)]       // one row
    [InlineData(56, 56, 1, false, 0, 0)]     // 55M's 56×56: one plane per batch
    [InlineData(64, 64, 2, true, 1, 0)]      // the largest square map that fits: 16 strips × 8 row blocks
    [InlineData(9, 8, 3, false, 0, 1)]       // not 16-byte aligned: GpuOps.Conv takes another kernel
    public void DepthwisePlanesMatchTheGenericKernel(int h, int w, int channels, bool hasBias, int bnCount, int offset)
    {
        var rng = new Random(h * 5 + w + offset);
        const int frames = 3, k = 7, pad = 3;
        var g = new ConvGeometry(channels, channels, k, k, 1, 1, pad, pad, channels);
        Assert.True(GpuOps.PlanesFit(g, h, w));
        var x = TestData.Random(rng, frames * channels * h * w);
        // Zeros and negative zeros among the inputs: the skipped rows and zero columns must keep the sums' signs.
        for (int i = 0; i < x.Length; i += 7) x[i] = i % 2 == 0 ? 0f : -0f;
        var weight = TestData.Random(rng, g.WeightLength, -0.5f, 0.5f);
        var bias = hasBias ? TestData.Random(rng, channels) : [];
        var bns = Enumerable.Range(0, bnCount).Select(_ => (TestData.Random(rng, channels, 0.5f, 1.5f), TestData.Random(rng, channels))).ToArray();
        var acc = gpu.Device.Accelerator;
        using var layer = new GpuConv(acc, g, weight, bias, bns);
        using var inputBuffer = gpu.Upload([.. new float[offset], .. x]);
        var input = inputBuffer.View.SubView(offset, x.Length);
        using var genericOut = gpu.Upload(Enumerable.Repeat(float.NaN, x.Length).ToArray());
        var p = Args();
        long groups = GpuOps.DepthwiseTiles(ref p, 1024);
        acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
            GpuKernels.Depthwise<ExactFma>)(new KernelConfig(new Index1D((int)groups), new Index1D(2)), input, layer.Weights.View,
            layer.Bias?.View ?? layer.Weights.View, layer.Bn?.View ?? layer.Weights.View, genericOut.View, layer.Weights.View, p);
        acc.Synchronize();
        var generic = genericOut.GetAsArray1D();
        if (offset == 0)
        {
            var kernel = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(
                GpuKernels.DepthwisePlanes<ExactFma>);
            using var planesOut = gpu.Zeros(x.Length);
            p = Args();
            long batches = GpuOps.DepthwisePlaneBatches(ref p, GpuOps.PlaneThreads);
            Assert.True(p.PlanesPerGroup * p.PlaneFloats <= GpuKernels.DepthwisePlaneChunks && p.PlanesPerGroup * p.Strips * p.Rows <= GpuOps.PlaneThreads);
            foreach (int perGroup in new[] { 1, 2, 3 })
            {
                planesOut.MemSet(0xff);
                kernel(new KernelConfig(new Index1D((int)((batches + perGroup - 1) / perGroup)), new Index1D(2), SharedMemoryConfig.RequestDynamic<Floats4>(p.PlanesPerGroup * p.PlaneFloats)),
                    input, layer.Weights.View, layer.Bias?.View ?? layer.Weights.View, layer.Bn?.View ?? layer.Weights.View, planesOut.View, p);
                acc.Synchronize();
                var planes = planesOut.GetAsArray1D();
                TestData.AssertSameBits(generic, planes, $"planes, {perGroup} batches per group");
            }
        }
        using var viaOps = gpu.Zeros(x.Length);
        gpu.Ops.Conv(layer, input, frames, h, w, viaOps.View);
        var dispatched = viaOps.GetAsArray1D();
        TestData.AssertSameBits(generic, dispatched, "GpuOps.Conv");

        DepthwiseArgs Args() => new()
        {
            Planes = frames * channels, Channels = channels, H = h, W = w, OH = h, OW = w, KH = k, KW = k,
            StrideH = 1, StrideW = 1, PadH = pad, PadW = pad, HasBias = hasBias ? 1 : 0, BnCount = bnCount, Rows = 1,
        };
    }

    /// <summary>
    /// The whole-planes kernel takes the 7×7 stride-1 padding-3 layers on maps up to about 64 × 64 whose width is a
    /// multiple of 4 (CIFAR's 32, 16, 8; the 55M's 56, 28), not the 55M's 112 × 112 (the blocks kernel), other widths,
    /// kernels, strides or paddings.
    /// </summary>
    [Fact]
    public void DepthwisePlanesRunOnSmallMaps()
    {
        var sep = new ConvGeometry(8, 8, 7, 7, 1, 1, 3, 3, 8);
        foreach (int size in new[] { 8, 16, 32, 28, 56, 64, 4 }) Assert.True(GpuOps.PlanesFit(sep, size, size), $"{size}");
        foreach (int size in new[] { 112, 68, 14, 13 }) Assert.False(GpuOps.PlanesFit(sep, size, size), $"{size}");
        Assert.True(GpuOps.PlanesFit(sep, 7, 32));
        Assert.False(GpuOps.PlanesFit(new ConvGeometry(8, 8, 3, 3, 1, 1, 1, 1, 8), 32, 32));
        Assert.False(GpuOps.PlanesFit(new ConvGeometry(8, 8, 7, 7, 2, 2, 3, 3, 8), 32, 32));
        Assert.False(GpuOps.PlanesFit(new ConvGeometry(8, 8, 7, 7, 1, 1, 0, 0, 8), 32, 32));
    }

    /// <summary>
    /// The blocks kernel runs the 7×7 layers whose width the strips kernel's tiles overshoot (the 55M's 112, 56, 28; measured
    /// faster there) and not those they cover exactly (CIFAR's 32, 16, 8; measured slower), widths that are no multiple
    /// of 4, or other kernels.
    /// </summary>
    [Fact]
    public void DepthwiseBlocksRunWhereMeasuredFaster()
    {
        var sep = new ConvGeometry(8, 8, 7, 7, 1, 1, 3, 3, 8);
        foreach (int width in new[] { 112, 56, 28 }) Assert.True(GpuOps.BlocksPay(sep, width), $"{width}");
        foreach (int width in new[] { 32, 16, 8, 14, 13 }) Assert.False(GpuOps.BlocksPay(sep, width), $"{width}");
        Assert.False(GpuOps.BlocksPay(new ConvGeometry(8, 8, 3, 3, 1, 1, 1, 1, 8), 28));
        Assert.False(GpuOps.BlocksPay(new ConvGeometry(8, 8, 7, 7, 2, 2, 3, 3, 8), 28));
    }

    [Fact]
    public void SmallDivisionsByFloatReciprocalAreExact()
    {
        foreach (int d in Enumerable.Range(1, 80).Concat([97, 255, 1000, 1023, 4095, 4096, 65_537, 1 << 20]))
        {
            float inverse = 1f / d;
            for (int i = 0; i < 1 << 21; i++)
                if (GpuKernels.SmallDiv(i, inverse) != i / d) Assert.Fail($"{i} / {d}: {GpuKernels.SmallDiv(i, inverse)}");
        }
    }

    /// <summary>
    /// RepConv's BN padding read inside the depthwise conv (<see cref="IBackend.ConvPadded"/>) equals the
    /// CPU backend's pad, then conv, bit for bit: small planes (several per group) and planes split into tiles, a bias
    /// and a BN, and a dense conv, which pads first.
    /// </summary>
    [Theory]
    [InlineData(true, 3, 1, 5, 4, true, 1)]      // RepConv's depthwise 3×3 on small maps, bias, BN
    [InlineData(true, 3, 1, 21, 40, false, 2)]   // a plane over several tiles, two BNs
    [InlineData(true, 5, 3, 4, 6, false, 0)]     // a 5×5 kernel, pad 3 (wider than the kernel's reach)
    [InlineData(false, 3, 1, 5, 5, true, 0)]     // a dense conv: padded first, then the conv
    public void BnPaddedConvMatchesPadThenConvOnTheCpu(bool depthwise, int k, int pad, int h, int w, bool hasBias, int bnCount)
    {
        const int channels = 6, frames = 3;
        var g = depthwise ? new ConvGeometry(channels, channels, k, k, 1, 1, 0, 0, channels) : new ConvGeometry(channels, 4, k, k);
        var rng = new Random(k * 17 + h * 3 + w);
        var x = TestData.Random(rng, frames * channels * h * w);
        var weight = TestData.Random(rng, g.WeightLength, -0.5f, 0.5f);
        var spec = new ConvLayerSpec(g, new DenseConvWeights(weight), hasBias ? TestData.Random(rng, g.OutChannels) : [],
            Enumerable.Range(0, bnCount).Select(_ => new ChannelAffine(TestData.Random(rng, g.OutChannels, 0.5f, 1.5f), TestData.Random(rng, g.OutChannels))).ToArray());
        var values = TestData.Random(rng, channels);
        int outLength = frames * g.OutChannels * g.OutH(h + 2 * pad) * g.OutW(w + 2 * pad);
        using var cpu = new CpuBackend();
        var expected = PaddedConv(cpu, spec, x, values, frames, h, w, pad, outLength);
        var actual = PaddedConv(gpu.Backend, spec, x, values, frames, h, w, pad, outLength);
        TestData.AssertSame(expected, actual, $"bn-padded {g} @{h}x{w} +{pad}");
    }

    private static float[] PaddedConv(IBackend backend, ConvLayerSpec spec, float[] input, float[] values,
        int frames, int h, int w, int pad, int outLength)
    {
        using var layer = backend.CreateConv(spec);
        int mark = backend.Mark();
        var x = backend.Rent(input.Length);
        var v = backend.Rent(values.Length);
        var y = backend.Rent(outLength);
        backend.Upload(input, x);
        backend.Upload(values, v);
        backend.ConvPadded(layer, x, frames, h, w, pad, v, y);
        var result = new float[outLength];
        backend.Download(y, 0, result);
        backend.Release(mark);
        return result;
    }

    [Theory]
    [MemberData(nameof(ConvCases))]
    public void ConvMatchesTheCpuKernel(int cin, int cout, int k, int stride, int pad, int groups, int h, int w, bool hasBias, int bnCount, bool spikes)
    {
        var g = new ConvGeometry(cin, cout, k, k, stride, stride, pad, pad, groups);
        const int frames = 3;
        var (x, expected, layer) = ConvCase(new Random(cin * 131 + cout * 7 + k + h), g, frames, h, w, hasBias, bnCount, spikes);
        using var _ = layer;
        using var input = gpu.Upload(x);
        using var output = gpu.Zeros(expected.Length);
        gpu.Ops.Conv(layer, input.View, frames, h, w, output.View);
        TestData.AssertSame(expected, output.GetAsArray1D(), $"conv {g}");
    }

    /// <summary>
    /// The stem's direct conv (<see cref="GpuOps.SmallInputConv"/>) gives the CPU kernel's values to the last bit, written
    /// once per copy: tiles of a map wider than one tile, a partial channel block, stride 2, bias and BNs or none.
    /// </summary>
    [Theory]
    [InlineData(3, 16, 7, 1, 3, 9, 11, true, 1, 4)]     // CIFAR's stem (small map), four copies over T
    [InlineData(3, 20, 7, 2, 3, 13, 10, false, 2, 1)]   // stride 2, a second channel block of 4, two BNs
    [InlineData(1, 5, 3, 1, 1, 3, 70, true, 0, 2)]      // one channel, two tile columns (64 + 6), bias only
    public void SmallInputConvMatchesTheCpuKernel(int cin, int cout, int k, int stride, int pad, int h, int w, bool hasBias, int bnCount, int copies)
    {
        var g = new ConvGeometry(cin, cout, k, k, stride, stride, pad, pad);
        Assert.True(GpuOps.SmallInputFits(g, h, w));
        const int frames = 2;
        var (x, expected, layer) = ConvCase(new Random(cin * 17 + cout + h), g, frames, h, w, hasBias, bnCount, spikes: false);
        using var _ = layer;
        using var input = gpu.Upload(x);
        using var output = gpu.Zeros(expected.Length * copies + 1);
        output.MemSetToZero();
        gpu.Ops.SmallInputConv(layer, input.View, frames, h, w, output.View, copies);
        var actual = output.GetAsArray1D();
        for (int t = 0; t < copies; t++)
            TestData.AssertSame(expected, actual.AsSpan(t * expected.Length, expected.Length).ToArray(), $"small-input conv {g} copy {t}");
        Assert.Equal(0f, actual[^1]);
        Assert.False(GpuOps.SmallInputFits(new ConvGeometry(16, 16, 3, 3, 1, 1, 1, 1), h, w)); // not a few input channels
    }

    /// <summary>Random input and weights for a conv layer, the CPU kernel's output (conv, bias, then each BN) and the layer on the device.</summary>
    private (float[] Input, float[] Expected, GpuConv Layer) ConvCase(Random rng, ConvGeometry g, int frames, int h, int w, bool hasBias, int bnCount, bool spikes)
    {
        int length = frames * g.InChannels * h * w, oh = g.OutH(h), ow = g.OutW(w);
        var x = spikes ? TestData.Spikes(rng, length) : TestData.Random(rng, length);
        var weight = TestData.Random(rng, g.WeightLength, -0.5f, 0.5f);
        var bias = hasBias ? TestData.Random(rng, g.OutChannels) : [];
        var bns = Enumerable.Range(0, bnCount).Select(_ => (TestData.Random(rng, g.OutChannels, 0.5f, 1.5f), TestData.Random(rng, g.OutChannels))).ToArray();
        var expected = new float[frames * g.OutChannels * oh * ow];
        Conv2d.Forward(x, frames, h, w, weight, bias, g, expected);
        foreach (var (scale, shift) in bns) ChannelOps.ScaleShift(expected, frames, g.OutChannels, oh * ow, scale, shift);
        return (x, expected, new GpuConv(gpu.Device.Accelerator, g, weight, bias, bns));
    }

    /// <summary>
    /// The cuBLAS path's conv driver (<see cref="GpuOps.ConvByGemm"/>) with the ILGPU GEMM standing in for the library:
    /// a 1×1 layer on a small map run pixel-major (input transposed, one GEMM over every pixel, the layout turned back in
    /// the epilogue), a 1×1 layer read in place, and an im2col'd 3×3; columns small enough to need several chunks.
    /// Another summation order than the CPU's: within 1e-5 of the output's scale.
    /// </summary>
    [Theory]
    [InlineData(24, 20, 1, 0, 4, 4, true, 2)]     // pixel-major (RepConv's 1×1 on CIFAR's 4×4 maps), bias, two BNs
    [InlineData(12, 8, 1, 0, 16, 16, false, 1)]   // 256 pixels: read in place
    [InlineData(6, 10, 3, 1, 5, 4, true, 1)]      // im2col
    public void ConvByGemmMatchesTheCpuKernel(int cin, int cout, int k, int pad, int h, int w, bool hasBias, int bnCount)
    {
        var g = new ConvGeometry(cin, cout, k, k, 1, 1, pad, pad);
        Assert.Equal(h * w < GpuOps.PixelMajorBelow && k == 1, GpuOps.PixelMajor(g, h, w));
        const int frames = 5;
        var (x, expected, layer) = ConvCase(new Random(cin * 7 + h), g, frames, h, w, hasBias, bnCount, spikes: false);
        using var _ = layer;
        using var input = gpu.Upload(x);
        using var output = gpu.Zeros(expected.Length);
        long chunkFloats = 2 * GpuOps.ColumnsPerFrame(g, h, w);   // two frames per chunk: three chunks
        using var columns = gpu.Zeros(chunkFloats);
        // C[i] = A·B[i] (B[i] stored n×k with transB), as cuBLAS computes it, by the ILGPU GEMM.
        void Library(int m, int n, int kk, ArrayView<float> a, ArrayView<float> b, long strideB, ArrayView<float> c, long strideC, int batch, bool transB) =>
            gpu.Ops.Gemm(batch, m, n, kk, a, 0, kk, 1, b, (int)strideB, transB ? 1 : n, transB ? kk : 1, c, (int)strideC, n, 1);
        gpu.Ops.ConvByGemm(layer, input.View, frames, h, w, output.View, columns.View, chunkFloats, Library);
        var actual = output.GetAsArray1D();
        float size = expected.Max(MathF.Abs);
        for (int i = 0; i < expected.Length; i++) Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f * size, $"{g} @{h}x{w}: {i}: {actual[i]} vs {expected[i]}");
    }

    [Fact]
    public void StridedBatchedGemmIsOneFmaChainPerElement()
    {
        // The SDSA shapes: kv = K·Vᵀ per plane, then out = (kvᵀ·Q)·0.125, on [d, N] slices.
        var rng = new Random(5);
        int planes = 3, d = 5, tokens = 70;
        var q = TestData.Spikes(rng, planes * d * tokens);
        var k = TestData.Spikes(rng, planes * d * tokens);
        var v = TestData.Spikes(rng, planes * d * tokens);
        var expected = new float[planes * d * tokens];
        var kv = new float[d * d];
        for (int p = 0; p < planes; p++)
        {
            int off = p * d * tokens;
            Gemm.Sgemm(d, d, tokens, k.AsSpan(off, d * tokens), false, v.AsSpan(off, d * tokens), true, kv);
            var dst = expected.AsSpan(off, d * tokens);
            Gemm.Sgemm(d, tokens, d, kv, true, q.AsSpan(off, d * tokens), false, dst);
            System.Numerics.Tensors.TensorPrimitives.Multiply(dst, 0.125f, dst);
        }
        using var bq = gpu.Upload(q);
        using var bk = gpu.Upload(k);
        using var bv = gpu.Upload(v);
        using var bkv = gpu.Zeros(planes * d * d);
        using var outBuf = gpu.Zeros(expected.Length);
        int slice = d * tokens;
        gpu.Ops.Gemm(planes, d, d, tokens, bk.View, slice, tokens, 1, bv.View, slice, 1, tokens, bkv.View, d * d, d, 1);
        gpu.Ops.Gemm(planes, d, tokens, d, bkv.View, d * d, 1, d, bq.View, slice, tokens, 1, outBuf.View, slice, tokens, 1, alpha: 0.125f);
        TestData.AssertSame(expected, outBuf.GetAsArray1D(), "SDSA");
    }

    [Fact]
    public void GemmWithRowBiasMatchesTheHead()
    {
        // The head: y[f, j] = Σ_c features[f, c]·W[j, c], then + b[j]; computed as yᵀ = W·featuresᵀ so the bias is per row.
        var rng = new Random(6);
        int frames = 7, features = 90, classes = 67;
        var f = TestData.Spikes(rng, frames * features);
        var wt = TestData.Random(rng, classes * features);
        var b = TestData.Random(rng, classes);
        var expected = new float[frames * classes];
        Gemm.Sgemm(frames, classes, features, f, false, wt, true, expected);
        for (int i = 0; i < frames; i++)
            for (int j = 0; j < classes; j++) expected[i * classes + j] += b[j];
        using var bf = gpu.Upload(f);
        using var bw = gpu.Upload(wt);
        using var bb = gpu.Upload(b);
        using var y = gpu.Zeros(expected.Length);
        gpu.Ops.Gemm(1, classes, frames, features, bw.View, 0, features, 1, bf.View, 0, 1, features, y.View, 0, 1, classes, bb.View);
        TestData.AssertSame(expected, y.GetAsArray1D(), "head");
    }

    [Theory]
    [InlineData(1, 1f, false)]
    [InlineData(4, 1f, true)]
    [InlineData(3, 0.5f, true)]
    public void LifMatchesMultiStepLif(int timesteps, float threshold, bool membrane)
    {
        var rng = new Random(timesteps);
        int perStep = 613, length = perStep * timesteps;
        var x = TestData.Random(rng, length, -1f, 3f);
        var spikes = new float[length];
        var h = membrane ? new float[length] : null;
        long count = MultiStepLif.Forward(x, spikes, length, timesteps, threshold, h);

        using var input = gpu.Upload(x);
        using var s = gpu.Zeros(length);
        using var hm = gpu.Zeros(length);
        using var counts = gpu.Device.Accelerator.Allocate1D<long>(3);
        counts.MemSetToZero();
        gpu.Ops.Lif(input.View, s.View, length, timesteps, threshold, membrane ? hm.View : default, counts.View, 2);
        gpu.Ops.Lif(input.View, s.View, length, timesteps, threshold, membrane ? hm.View : default, counts.View, 2);
        TestData.AssertSame(spikes, s.GetAsArray1D(), "spikes");
        if (membrane) TestData.AssertSame(h, hm.GetAsArray1D(), "membrane");
        Assert.Equal(new long[] { 0, 0, 2 * count }, counts.GetAsArray1D());
    }

    /// <summary>
    /// The fused residual add and LIF (<see cref="IBackend.AddLif"/>) against the CPU's add, then MultiStepLif, bit for bit:
    /// the stream x as the add leaves it and the spikes; a neuron count that fills no group evenly, T = 1 and 4, thresholds
    /// that leave a few and most neurons firing. Through the backend with a spike counter it runs the two ops and counts.
    /// </summary>
    [Theory]
    [InlineData(1, 1f)]
    [InlineData(4, 1f)]
    [InlineData(4, 0.25f)]
    [InlineData(3, 2.5f)]
    public void AddLifEqualsAddThenLif(int timesteps, float threshold)
    {
        var rng = new Random(timesteps * 7 + (int)(threshold * 4));
        int perStep = 389, length = perStep * timesteps;
        var x = TestData.Random(rng, length, -1f, 2f);
        var y = TestData.Random(rng, length, -1f, 2f);
        var sum = x.Zip(y, (a, b) => a + b).ToArray();
        var spikes = new float[length];
        long count = MultiStepLif.Forward(sum, spikes, length, timesteps, threshold);
        Assert.InRange(count, 1, length - 1);

        using var xs = gpu.Upload(x);
        using var ys = gpu.Upload(y);
        using var s = gpu.Upload(Enumerable.Repeat(float.NaN, length).ToArray());
        gpu.Ops.AddLif(xs.View, ys.View, s.View, length, timesteps, threshold);
        TestData.AssertSame(sum, xs.GetAsArray1D(), "x after the add");
        TestData.AssertSame(spikes, s.GetAsArray1D(), "spikes");

        // The backend op, without and with a recorder (which sees the separate ops).
        var b = gpu.Backend;
        int mark = b.Mark();
        var bx = b.Rent(length);
        var by = b.Rent(length);
        var bs = b.Rent(length);
        using var counter = b.CreateSpikeCounter(2);
        foreach (var recorder in new LifRecorder?[] { null, counter })
        {
            b.Upload(x, bx);
            b.Upload(y, by);
            b.AddLif(bx, by, length, bs, timesteps, threshold, recorder, 1);
            var got = new float[length];
            b.Download(bs, 0, got);
            TestData.AssertSame(spikes, got, recorder is null ? "backend spikes" : "backend spikes, recorded");
            b.Download(bx, 0, got);
            TestData.AssertSame(sum, got, "backend x");
        }
        Assert.Equal(count, counter.Read().Spikes[1]);
        b.Release(mark);
    }

    /// <summary>
    /// SDSA of small planes in one kernel (<see cref="GpuKernels.SmallAttention"/>) equals the CPU backend's two SGEMMs on
    /// spikes bit for bit: CIFAR's planes (d = 16 and 24, 16 tokens), odd sizes, and planes too large for it, which keep
    /// the GEMM path.
    /// </summary>
    [Theory]
    [InlineData(3, 128, 16, 8)]    // CIFAR stage 3: d = 16
    [InlineData(2, 192, 16, 8)]    // CIFAR stage 4: d = 24
    [InlineData(5, 21, 7, 3)]      // odd d and tokens
    [InlineData(2, 48, 45, 1)]     // d = 48, 45 tokens: too large for shared memory, the GEMM path
    public void SpikeDrivenAttentionMatchesTheCpuBackend(int frames, int channels, int tokens, int heads)
    {
        var rng = new Random(channels + tokens);
        int n = frames * channels * tokens;
        var q = TestData.Spikes(rng, n);
        var k = TestData.Spikes(rng, n);
        var v = TestData.Spikes(rng, n);
        Assert.Equal(tokens < 40, GpuOps.SmallAttentionFits(channels / heads, tokens));
        using var cpu = new CpuBackend();
        var expected = Attention(cpu);
        var actual = Attention(gpu.Backend);
        TestData.AssertSame(expected, actual, $"sdsa {channels}ch {heads} heads {tokens} tokens");
        Assert.Contains(expected, x => x > 0);

        float[] Attention(IBackend b)
        {
            int mark = b.Mark();
            var (bq, bk, bv, o) = (b.Rent(n), b.Rent(n), b.Rent(n), b.Rent(n));
            b.Upload(q, bq);
            b.Upload(k, bk);
            b.Upload(v, bv);
            b.SpikeDrivenAttention(bq, bk, bv, o, frames, channels, tokens, heads, 0.125f);
            var result = new float[n];
            b.Download(o, 0, result);
            b.Release(mark);
            return result;
        }
    }

    /// <summary>
    /// The attention core fused (<see cref="GpuKernels.SmallAttentionLif"/> on small planes, <see cref="BitAttentionKernels"/>
    /// on larger ones: q/k/v LIFs, SDSA, attn_lif over the T frames of each image and head) gives the CPU backend's five
    /// ops' spikes bit for bit, and the spike counter the same counts; planes too large for both run the five ops. Inputs
    /// are multiples of ½, so membranes land exactly on the thresholds now and then.
    /// </summary>
    [Theory]
    [InlineData(4, 2, 32, 16, 2, "small")]   // CIFAR's 16 tokens, d = 16, T = 4
    [InlineData(3, 1, 15, 7, 3, "small")]    // odd d and tokens, T = 3
    [InlineData(1, 2, 48, 45, 1, "bits")]    // d = 48, a partial second token word
    [InlineData(3, 2, 66, 33, 2, "bits")]    // d = 33: two channel-mask words, the second of one bit
    [InlineData(2, 1, 160, 70, 2, "bits")]   // d = 80 (the 55M's 640 channels): three mask words, two token tiles of 35
    [InlineData(3, 1, 128, 99, 2, "bits")]   // d = 64 (the 55M's 512 channels): tiles of 50 and 49
    [InlineData(1, 1, 84, 3, 1, "ops")]      // d = 84: kv outgrows the bit kernels' shared memory, the five ops
    public void LifAttentionLifMatchesTheCpuBackend(int timesteps, int batch, int channels, int tokens, int heads, string path) =>
        AssertLifAttentionLifMatches(gpu.Backend, timesteps, batch, channels, tokens, heads, path);

    internal static void AssertLifAttentionLifMatches(CudaBackend gpuBackend, int timesteps, int batch, int channels, int tokens, int heads, string path)
    {
        var rng = new Random(channels * 3 + tokens);
        int frames = timesteps * batch, n = frames * channels * tokens, d = channels / heads;
        // Pre-activations around the threshold in steps of ½, so that every LIF fires now and then, some exactly at it.
        float[] Inputs() => [.. TestData.Random(rng, n, -0.5f, 2.5f).Select(x => MathF.Round(2 * x) / 2)];
        var (q, k, v) = (Inputs(), Inputs(), Inputs());
        Assert.Equal(path == "small", GpuOps.SmallAttentionLifFits(d, tokens));
        Assert.Equal(path != "ops", path == "small" || GpuOps.BitAttentionTileTokens(d, tokens) > 0);
        using var cpu = new CpuBackend();
        // The power-of-two scale that puts the attention's sums nearest attn_lif's threshold (it neither always nor never fires).
        float scale = Enumerable.Range(0, 14).Select(e => MathF.ScaleB(1f, -e)).MinBy(x => Math.Abs(Run(cpu, false, x).Spikes.Average() - 0.4f));
        foreach (bool counted in new[] { false, true })
        {
            var (expected, expectedCounts) = Run(cpu, counted, scale);
            var (actual, actualCounts) = Run(gpuBackend, counted, scale);
            TestData.AssertSame(expected, actual, $"attn_lif spikes, {channels}ch {heads} heads {tokens} tokens T={timesteps}");
            Assert.Equal(expectedCounts, actualCounts);
            double rate = expected.Average();
            Assert.InRange(rate, 0.1, 0.8);
        }

        (float[] Spikes, long[] Counts) Run(IBackend b, bool counted, float scale)
        {
            using var counter = counted ? b.CreateSpikeCounter(6) : null;
            int mark = b.Mark();
            var (bq, bk, bv, s) = (b.Rent(n), b.Rent(n), b.Rent(n), b.Rent(n));
            b.Upload(q, bq);
            b.Upload(k, bk);
            b.Upload(v, bv);
            b.LifAttentionLif(bq, bk, bv, frames, channels, tokens, heads, scale, timesteps, 1f, 0.5f, s, counter, 1);
            var result = new float[n];
            b.Download(s, 0, result);
            b.Release(mark);
            if (counter is null) return (result, []);
            var c = counter.Read();
            Assert.Equal([0, n, n, n, n, 0], c.Neurons);
            return (result, c.Spikes);
        }
    }

    /// <summary>The bit-packed attention's token tiles: the fewest that fit shared memory, evened out; 0 where it does not take the planes.</summary>
    [Theory]
    [InlineData(64, 196, 66)]  // the 55M's 512-channel blocks: 3 tiles
    [InlineData(80, 196, 49)]  // its 640-channel blocks: 4 tiles
    [InlineData(80, 70, 35)]
    [InlineData(16, 256, 128)]
    [InlineData(81, 196, 0)]   // kv past shared memory
    [InlineData(16, 257, 0)]   // more than 8 token words
    public void BitAttentionTilesFitSharedMemory(int d, int tokens, int expected)
    {
        int tile = GpuOps.BitAttentionTileTokens(d, tokens);
        Assert.Equal(expected, tile);
        if (tile > 0) Assert.True((tile | 1) * d <= BitAttentionKernels.TileCapacity);
    }

    [Fact]
    public void GlueKernelsMatchTheirDefinitions()
    {
        var rng = new Random(7);
        int frames = 2, c = 3, h = 4, w = 5;
        var inner = TestData.Random(rng, frames * c * h * w);
        var pad = TestData.Random(rng, c);
        using var bi = gpu.Upload(inner);
        using var bp = gpu.Upload(pad);
        using var padded = gpu.Zeros(frames * c * (h + 2) * (w + 2));
        gpu.Ops.PadBorder(bi.View, frames, c, h, w, 1, bp.View, padded.View);
        var got = padded.GetAsArray1D();
        for (int f = 0; f < frames; f++)
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < h + 2; y++)
                    for (int x = 0; x < w + 2; x++)
                    {
                        bool inside = y >= 1 && y <= h && x >= 1 && x <= w;
                        float want = inside ? inner[((f * c + ch) * h + y - 1) * w + x - 1] : pad[ch];
                        Assert.Equal(want, got[((f * c + ch) * (h + 2) + y) * (w + 2) + x]);
                    }

        var a = TestData.Random(rng, 101);
        var b = TestData.Random(rng, 101);
        using var ba = gpu.Upload(a);
        using var bb = gpu.Upload(b);
        gpu.Ops.Add(ba.View, bb.View, 98); // four per thread, the last thread two
        var sum = ba.GetAsArray1D();
        for (int i = 0; i < 98; i++) Assert.Equal(a[i] + b[i], sum[i]);
        Assert.Equal(a.AsSpan(98).ToArray(), sum.AsSpan(98).ToArray());

        var rep = new float[4 * 13];
        TestData.Random(rng, 13).CopyTo(rep, 0);
        using var br = gpu.Upload(rep);
        gpu.Ops.RepeatBlock(br.View, 13, 4);
        var repeated = br.GetAsArray1D();
        for (int t = 1; t < 4; t++) Assert.Equal(rep.AsSpan(0, 13).ToArray(), repeated.AsSpan(t * 13, 13).ToArray());

        int rows = 9, spatial = 17;
        var m = TestData.Random(rng, rows * spatial);
        var expected = new float[rows];
        ChannelOps.SpatialMean(m, 1, rows, spatial, expected);
        using var bm = gpu.Upload(m);
        using var mean = gpu.Zeros(rows);
        gpu.Ops.SpatialMean(bm.View, rows, spatial, mean.View);
        TestData.AssertClose(expected, mean.GetAsArray1D(), "spatial mean", 1e-6f);
    }

    [Fact]
    public void MeanOverTimeAveragesStepsThenHeads()
    {
        var rng = new Random(8);
        int batch = 3, classes = 11, T = 4;
        var head = TestData.Random(rng, T * batch * classes);
        var kd = TestData.Random(rng, T * batch * classes);
        var expected = new float[batch * classes];
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < classes; j++)
            {
                float s = 0f, s2 = 0f;
                for (int t = 0; t < T; t++)
                {
                    s += head[(t * batch + b) * classes + j];
                    s2 += kd[(t * batch + b) * classes + j];
                }
                expected[b * classes + j] = (s / T + s2 / T) / 2f;
            }
        using var bh = gpu.Upload(head);
        using var bk = gpu.Upload(kd);
        using var logits = gpu.Zeros(batch * classes);
        gpu.Ops.MeanOverTime(bh.View, bk.View, logits.View, batch, classes, T);
        TestData.AssertSame(expected, logits.GetAsArray1D(), "mean over T");
    }

    [Fact]
    public void SquaredDifferenceIsDeterministicAndExact()
    {
        var rng = new Random(9);
        int length = GpuOps.ReduceChunk * 2 + 1234;
        var x = TestData.Random(rng, length);
        var r = TestData.Random(rng, length);
        var s = TestData.Spikes(rng, length);
        var rs = TestData.Spikes(rng, length);
        double want = 0;
        long mismatch = 0;
        for (int i = 0; i < length; i++)
        {
            double d = (double)x[i] - r[i];
            want += d * d;
            if ((s[i] != 0) != (rs[i] != 0)) mismatch++;
        }
        using var bx = gpu.Upload(x);
        using var br = gpu.Upload(r);
        using var bs = gpu.Upload(s);
        using var brs = gpu.Upload(rs);
        using var sums = gpu.Device.Accelerator.Allocate1D<double>(2);
        using var mism = gpu.Device.Accelerator.Allocate1D<long>(2);
        sums.MemSetToZero();
        mism.MemSetToZero();
        gpu.Ops.SquaredDifference(bx.View, br.View, length, bs.View, brs.View, sums.View, mism.View, 1);
        var first = sums.GetAsArray1D()[1];
        gpu.Ops.SquaredDifference(bx.View, br.View, length, bs.View, brs.View, sums.View, mism.View, 1);
        Assert.Equal(2 * first, sums.GetAsArray1D()[1]);
        Assert.Equal(want, first, 1e-9 * want);
        Assert.Equal(2 * mismatch, mism.GetAsArray1D()[1]);
    }
}

/// <summary>The bit-packed attention kernels with CUDA-sized groups (four warps of 32 threads sharing each barrier).</summary>
[Collection("gpu-cpu-accelerator")]
public sealed class WarpGroupAttentionTests(PointwiseAcceleratorFixture gpu) : IClassFixture<PointwiseAcceleratorFixture>
{
    [Fact]
    public void LifAttentionLifMatchesTheCpuBackend() => GpuKernelTests.AssertLifAttentionLifMatches(gpu.Backend, 2, 1, 80, 70, 1, "bits");
}
