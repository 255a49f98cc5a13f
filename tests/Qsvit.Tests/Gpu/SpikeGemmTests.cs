using ILGPU;
using ILGPU.Runtime;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The CUDA backend's spike-input GEMM path (<see cref="GpuSpikeConv"/>) on ILGPU's CPU accelerator, where its fallback
/// kernels stand in for cuBLAS: the int8 digits of integer codes against the CPU's integer path bit for bit, the bf16
/// split of fp32 weights, and the parity model on the integer path.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class SpikeGemmTests(CpuAcceleratorFixture gpu)
{
    /// <summary>
    /// conv → LIF → conv with the hidden spikes handed over packed (<see cref="SpikeGemmOps.HiddenPacked"/>: the first
    /// layer's LIF epilogue writes the second layer's int8 input, which it reads without packing) equals the two ops
    /// (ConvLif with a spike counter, then Conv) bit for bit: 3×3 pairs on im2col, the implicit GEMM and the pipelined kernel
    /// (its LIF in the kernel), 1×1 pairs on
    /// packed columns, hidden channels not a multiple of 16 (words of a warp spanning several pixels); maps of whole quads
    /// of pixels only (others run the two ops as before).
    /// </summary>
    [Theory]
    [InlineData(3, 6, 20, 10, 4, 5, SpikeInputGemm.TensorCoresIm2col)]
    [InlineData(3, 16, 32, 8, 4, 4, SpikeInputGemm.TensorCoresImplicit)]
    [InlineData(3, 16, 40, 24, 4, 5, SpikeInputGemm.TensorCoresPipelined)]   // the LIF in the pipelined kernel: spikes staged as bytes
    [InlineData(3, 8, 150, 16, 2, 4, SpikeInputGemm.TensorCoresPipelined)]   // two row blocks, rows past M in the second
    [InlineData(1, 24, 48, 16, 3, 4, SpikeInputGemm.TensorCoresPointwiseCublas)]
    [InlineData(1, 8, 36, 12, 2, 6, SpikeInputGemm.TensorCoresPointwiseCublas)]
    public void HiddenSpikesHandedOverPackedEqualTheTwoOps(int kernel, int cin, int hidden, int cout, int h, int w, SpikeInputGemm mode)
    {
        const int timesteps = 2, batch = 3, frames = timesteps * batch;
        using var backend = CudaBackend.OnCpuAccelerator(mode, split: false);
        var (first, second) = ChainLayers.Of(kernel, cin, hidden, cout, 4, "paper");
        using (var a = (CudaConvLayer)backend.CreateConv(first))
        using (var b = (CudaConvLayer)backend.CreateConv(second))
        {
            Assert.True(backend.SpikeOps!.HiddenPacked(a.Spike!, b.Spike!, frames, h, w, timesteps));
            Assert.False(backend.SpikeOps.HiddenPacked(a.Spike!, b.Spike!, frames, 3, 3, timesteps)); // 9 pixels: not whole quads
        }
        var input = ChainLayers.Spikes(new Random(kernel * 100 + hidden), frames * cin * h * w);
        using var counter = backend.CreateSpikeCounter(2); // a recorder: the two ops, fp32 spikes
        var (expected, _) = ChainLayers.Run(backend, first, second, input, h, w, timesteps, batch, fused: false, counter);
        var (actual, _) = ChainLayers.Run(backend, first, second, input, h, w, timesteps, batch, fused: false);
        Assert.Equal(expected, actual);
        Assert.InRange(counter.Read().Spikes[1], 1, frames * hidden * h * w - 1); // the hidden LIF fired, not everywhere
    }

    /// <summary>A hidden layer of 3 channels packs 16 a pixel, more bytes than its fp32 spikes buffer holds: the two ops run.</summary>
    [Fact]
    public void HiddenSpikesTooNarrowToPackInTheirBufferRunTheTwoOps()
    {
        const int timesteps = 2, batch = 2, frames = timesteps * batch, h = 4, w = 4;
        using var backend = CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCoresIm2col, split: false);
        var (first, second) = ChainLayers.Of(3, 8, 3, 8, 4, "paper");
        using (var b = (CudaConvLayer)backend.CreateConv(second))
        {
            Assert.False(SpikeGemmOps.PackedFits(b.Spike!, frames, h, w, frames * 3 * h * w));
            Assert.True(SpikeGemmOps.PackedFits(b.Spike!, frames, h, w, frames * 16 * h * w));
        }
        var input = ChainLayers.Spikes(new Random(3), frames * 8 * h * w);
        using var counter = backend.CreateSpikeCounter(2);
        var (expected, _) = ChainLayers.Run(backend, first, second, input, h, w, timesteps, batch, fused: false, counter);
        var (actual, spikes) = ChainLayers.Run(backend, first, second, input, h, w, timesteps, batch, fused: false);
        Assert.Equal(expected, actual);
        Assert.All(spikes, v => Assert.True(v is 0f or 1f)); // the ops' fp32 spikes, not packed bytes
    }

    /// <summary>
    /// The four-pixel packer writes <see cref="SpikeGemmKernels.PackS8"/>'s bytes: channels not a multiple of 16 (zero
    /// padding), written rows past the valid ones (zero), two copies of each pixel, chunks of whole images for a fused LIF
    /// (local frame j is step j / Items of an image), any nonzero input a spike; and it declines planes that are not whole quads.
    /// </summary>
    [Theory]
    [InlineData(40, 16, 6, 0, 0, 0, 1)]      // 3×3 input: rows = valid, Cp 48
    [InlineData(16, 8, 5, 2, 0, 0, 1)]       // frames from Frame0 = 2
    [InlineData(33, 12, 4, 0, 8, 0, 2)]      // a 1×1's columns: 8 zero rows past the valid ones, two copies
    [InlineData(64, 4, 8, 1, 0, 2, 1)]       // LIF chunk: 2 images × 4 steps of a batch of 3, from image 1
    [InlineData(300, 20, 3, 0, 4, 0, 1)]     // 19 blocks, several warps' slices
    public void QuadPackerWritesThePackersBytes(int channels, int plane, int frames, int frame0, int extraRows, int items, int copies)
    {
        var rng = new Random(channels * 1000 + plane * 10 + frames);
        var acc = gpu.Device.Accelerator;
        int cp = (channels + 15) / 16 * 16, batch = items > 0 ? 3 : frame0 + frames, steps = items > 0 ? frames / items : 1;
        int totalFrames = items > 0 ? batch * steps : batch;
        // Mostly 0 / 1, some other nonzero values (the packer reads any nonzero as a spike).
        var x = Enumerable.Range(0, totalFrames * channels * plane)
            .Select(_ => rng.Next(10) switch { < 6 => 0f, < 9 => 1f, _ => (float)rng.NextDouble() - 2f }).ToArray();
        var p = new SpikeGemmArgs
        {
            Frame0 = frame0, InChannels = channels, Cp = cp, PackPlane = plane, PackValid = frames * plane, PackRows = frames * plane + extraRows,
            PackCopies = copies, Items = items, InvItems = items > 0 ? 1f / items : 1f, FrameStride = batch,
        };
        Assert.True(SpikeGemmKernels.PacksQuads(p, inputAligned16: true));
        using var input = acc.Allocate1D(x);
        long bytes = (long)p.PackRows * copies * cp;
        // Different fillings: every byte must be written.
        using var plain = acc.Allocate1D(Enumerable.Repeat((sbyte)0x55, (int)bytes).ToArray());
        using var quads = acc.Allocate1D(Enumerable.Repeat((sbyte)0x2A, (int)bytes).ToArray());
        acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<sbyte>, SpikeGemmArgs>(SpikeGemmKernels.PackS8)(
            p.PackRows * (cp / SpikeGemmKernels.ChannelAlign), input.View, plain.View, p);
        acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<sbyte>, SpikeGemmArgs>(SpikeGemmKernels.PackS8Quads)(
            (int)SpikeGemmKernels.QuadThreads(p), input.View, quads.View, p);
        acc.Synchronize();
        var want = plain.GetAsArray1D();
        Assert.Equal(want, quads.GetAsArray1D());
        Assert.Contains(want, v => v == 1);
        Assert.False(SpikeGemmKernels.PacksQuads(p with { PackPlane = 6, PackValid = 6 * frames, PackRows = 6 * frames }, inputAligned16: true));
        Assert.False(SpikeGemmKernels.PacksQuads(p, inputAligned16: false));
    }

    [Fact]
    public void Bf16PiecesSumToTheWeightExactly()
    {
        var rng = new Random(5);
        for (int i = 0; i < 100_000; i++)
        {
            // Magnitudes from 2^-110 (the stated bound) to 2^40, both signs, every mantissa.
            float w = BitConverter.Int32BitsToSingle(rng.Next(0x08800000, 0x68000000)) * (rng.Next(2) == 0 ? 1 : -1);
            var (hi, mid, lo) = Bf16Split.Split(w);
            float back = Bf16Split.Value(hi) + (Bf16Split.Value(mid) + Bf16Split.Value(lo));
            Assert.True(back == w, $"{w:R}: {Bf16Split.Value(hi):R} + {Bf16Split.Value(mid):R} + {Bf16Split.Value(lo):R} = {back:R}");
        }
        // Below the bound the error stays under 2^-133; zero stays zero.
        foreach (float w in new[] { 0f, float.Epsilon, 1e-40f, -3.3e-38f })
        {
            var (hi, mid, lo) = Bf16Split.Split(w);
            Assert.True(Math.Abs(w - ((double)Bf16Split.Value(hi) + Bf16Split.Value(mid) + Bf16Split.Value(lo))) <= Math.Pow(2, -133));
        }
    }

    [Theory]
    [InlineData(-128, 127, 1)]
    [InlineData(-129, 0, 2)]
    [InlineData(-2048, 2047, 2)]
    [InlineData(-32768, 32639, 2)]
    [InlineData(0, 32767, 3)]
    [InlineData(-65535, 65535, 3)]
    public void IntegerCodesSplitIntoTheFewestInt8Digits(int min, int max, int parts) => Assert.Equal(parts, GpuSpikeConv.Digits(min, max));

    public static TheoryData<ConvGeometry, int, int, int, int, string> Layers => new()
    {
        // geometry, input h, w, frames, bits, quantizer
        { new ConvGeometry(5, 7, 3, 3, 1, 1, 1, 1), 6, 5, 3, 8, "paper" },                    // K = 45: odd, not a multiple of 4
        { new ConvGeometry(6, 9, 3, 3, 2, 2, 1, 1), 7, 9, 2, 4, "symmetric-channel" },        // stride 2
        { new ConvGeometry(33, 17, 1, 1), 5, 3, 3, 8, "asymmetric-channel-mse" },              // 1×1, codes up to ±255: two digits
        { new ConvGeometry(4, 6, 3, 3, 1, 1, 0, 0), 5, 6, 2, 12, "asymmetric" },               // no padding, 12-bit
        { new ConvGeometry(3, 5, 2, 3, 2, 1, 1, 0), 7, 6, 2, 16, "symmetric-channel" },        // 16-bit: three digits (16 outputs per plane: four per epilogue thread)
    };

    /// <summary>The integer path equals the CPU's integer path (exact int32 sums, one fma per output, then the BNs) bit for bit.</summary>
    [Theory]
    [MemberData(nameof(Layers))]
    public void IntegerConvEqualsTheCpuIntegerPathBitForBit(ConvGeometry g, int h, int w, int frames, int bits, string quantizer)
    {
        var rng = new Random(g.GetHashCode() ^ bits);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], bits, QuantizerSpec.Parse(quantizer));
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble()).ToArray();
        var bn = new ChannelAffine(bias.Select(b => b + 0.5f).ToArray(), bias.Select(b => -b).ToArray());
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), bias, [bn]) { SpikeInput = true };
        var input = ChainLayers.Spikes(rng, frames * g.InChannels * h * w);

        var expected = Run(new CpuBackend(), spec, input, frames, h, w);
        var actual = Run(gpu.Backend, spec, input, frames, h, w, owned: false);
        Assert.Equal(expected, actual);
    }

    public static TheoryData<ConvGeometry, int, int, int, int, int> ImplicitLayers => new()
    {
        // geometry, input h, w, frames, bits, frames per chunk (SpikeMmaKernels: warp tiles of 32 rows × 32 pixels, k-steps of 32 channels of one tap)
        { new ConvGeometry(20, 40, 3, 3, 1, 1, 1, 1), 5, 7, 3, 8, 3 },   // Cp 32: one k-step per tap; 40 rows: a partial second row tile; 105 pixels: a partial pixel tile
        { new ConvGeometry(33, 9, 3, 3, 2, 2, 1, 1), 9, 8, 4, 4, 3 },    // Cp 48: a full and a half k-step per tap; stride 2 on an odd map; chunks of 3 and 1 frames
        { new ConvGeometry(5, 33, 3, 3, 1, 1, 0, 0), 4, 3, 5, 12, 5 },   // Cp 16 (only the lower half of a k-step), no padding, two digits: 66 rows, three row tiles
        { new ConvGeometry(6, 7, 3, 3, 2, 2, 1, 1), 1, 2, 2, 16, 1 },    // a 1×2 map under a 3×3 window (most taps outside), three digits
        // SpikeTiledKernels: block tiles of 64 × 128 (≤ 64 rows) or 128 × 64, stages of 64 channels of one tap
        { new ConvGeometry(70, 130, 3, 3, 1, 1, 1, 1), 6, 7, 3, 4, 2 },  // Cp 80: a full and a quarter stage per tap; 130 rows: a partial second 128-row block; chunks of 2 and 1
        { new ConvGeometry(9, 40, 3, 3, 2, 2, 1, 1), 11, 9, 4, 12, 4 },   // two digits (80 rows: 128 × 64 blocks), stride 2 on an odd map, 120 pixels: two partial pixel blocks
        { new ConvGeometry(130, 5, 3, 3, 1, 1, 1, 1), 3, 2, 1, 16, 1 },  // three digits (15 rows in a 64 × 128 block), Cp 144: three stages per tap, a 3×2 map smaller than the block
        { new ConvGeometry(24, 64, 3, 3, 1, 1, 1, 1), 9, 10, 2, 4, 2 },  // 64 rows, one digit: tiled with the fused epilogue by default too
        // SpikePipelinedKernels (every case above too): 128 × 128 blocks of 64 × 64 warp tiles, a ring of 3 stages
        { new ConvGeometry(40, 150, 3, 3, 1, 1, 1, 1), 13, 11, 2, 4, 2 }, // 150 rows, 286 pixels: partial row and pixel blocks, Cp 48, one digit: the fused epilogue
        { new ConvGeometry(17, 70, 3, 3, 1, 1, 1, 1), 4, 4, 4, 2, 4 },    // 4 frames of a 4×4 map: every window touches the border; 2-bit codes
    };

    /// <summary>
    /// The implicit-GEMM kernels, warp tiles and tiled blocks (here their scalar bodies, the ones inline PTX cannot run on),
    /// write the int32 sums im2col and the int8 GEMM write, so the output equals the im2col path's and the CPU's integer path's bit for bit: tile, tap and
    /// padding indexing, partial tiles, half k-steps, several digits and chunks.
    /// </summary>
    [Theory]
    [MemberData(nameof(ImplicitLayers))]
    public void ImplicitGemmEqualsIm2colAndTheCpuIntegerPath(ConvGeometry g, int h, int w, int frames, int bits, int chunk)
    {
        var rng = new Random(g.GetHashCode() ^ bits);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], bits, QuantizerSpec.Parse("symmetric-channel"));
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble()).ToArray();
        var bn = new ChannelAffine(bias.Select(b => b + 0.5f).ToArray(), bias.Select(b => -b).ToArray());
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), bias, [bn]) { SpikeInput = true };
        var input = ChainLayers.Spikes(rng, frames * g.InChannels * h * w);
        var expected = Run(new CpuBackend(), spec, input, frames, h, w);

        var acc = gpu.Device.Accelerator;
        using var layer = new GpuSpikeConv(acc, spec, codes);
        long length = (long)frames * g.OutChannels * g.OutH(h) * g.OutW(w);
        using var x = gpu.Upload(input);
        foreach (var mode in new[] { SpikeInputGemm.TensorCoresImplicit, SpikeInputGemm.TensorCoresTiled, SpikeInputGemm.TensorCoresPipelined, SpikeInputGemm.TensorCoresWgmma,
                     SpikeInputGemm.TensorCoresIm2col, SpikeInputGemm.TensorCores })
        {
            var ops = new SpikeGemmOps(acc, null, mode);
            bool implicitGemm = ops.Implicit(layer, h, w);
            Assert.Equal(mode != SpikeInputGemm.TensorCoresIm2col, implicitGemm);
            Assert.Equal(mode is SpikeInputGemm.TensorCoresPipelined or SpikeInputGemm.TensorCoresWgmma, ops.Pipelined(layer, lif: false));
            // Without cuBLAS the default rule keeps wgmma off (its bounds were measured against cuBLAS).
            Assert.Equal(mode == SpikeInputGemm.TensorCoresWgmma, ops.Wgmma(layer, lif: false));
            Assert.Equal(mode == SpikeInputGemm.TensorCoresTiled || (mode == SpikeInputGemm.TensorCores && GpuSpikeConv.TiledPays(layer.GemmRows, layer.Parts, lif: false)),
                ops.Tiled(layer, lif: false));
            var (_, columnFloats, sumFloats) = SpikeGemmOps.Plan(layer, chunk, h, w, 1L << 30, implicitGemm: implicitGemm);
            using var cols = gpu.Zeros(columnFloats);
            using var sums = gpu.Upload(Enumerable.Repeat(float.NaN, (int)sumFloats).ToArray());
            using var y = gpu.Upload(Enumerable.Repeat(float.NaN, (int)length).ToArray());
            ops.Conv(layer, x.View, frames, h, w, y.View, cols.View, sums.View, chunk);
            Assert.Equal(expected, y.GetAsArray1D());
        }
    }

    /// <summary>
    /// Which integer convs run as implicit GEMMs, and what profiles name: with cuBLAS those up to 64 GEMM rows (the rule
    /// measured on an H200) on warp tiles and those from TiledMinRows on tiled blocks, without it (here) every one wider than
    /// 1×1 (the stand-in GEMM is a plain kernel); never 1×1 layers (their packed spikes are the columns already), never
    /// with <c>--gemm tensor-im2col</c>.
    /// </summary>
    [Fact]
    public void ImplicitGemmRuleAndEngineNames()
    {
        Assert.True(GpuSpikeConv.ImplicitPays(64));
        Assert.False(GpuSpikeConv.ImplicitPays(65));
        // The tiled kernel by default: one digit, no LIF after it, TiledMinRows..TiledMaxRows GEMM rows.
        Assert.True(GpuSpikeConv.TiledPays(GpuSpikeConv.TiledMinRows, 1, lif: false));
        Assert.False(GpuSpikeConv.TiledPays(GpuSpikeConv.TiledMinRows - 1, 1, lif: false));
        Assert.False(GpuSpikeConv.TiledPays(GpuSpikeConv.TiledMaxRows + 1, 1, lif: false));
        Assert.False(GpuSpikeConv.TiledPays(GpuSpikeConv.TiledMinRows, 1, lif: true));
        Assert.False(GpuSpikeConv.TiledPays(GpuSpikeConv.TiledMinRows, 2, lif: false));
        // The pipelined kernel by default: one digit, no LIF after it, 65–128 GEMM rows, K from 1152 (the 55M's 512→128).
        Assert.True(GpuSpikeConv.PipelinedPays(128, 4608, 1, lif: false));
        Assert.False(GpuSpikeConv.PipelinedPays(128, 4608, 1, lif: true));
        Assert.False(GpuSpikeConv.PipelinedPays(128, 4608, 2, lif: false));
        Assert.False(GpuSpikeConv.PipelinedPays(256, 9216, 1, lif: false));
        Assert.False(GpuSpikeConv.PipelinedPays(64, 2304, 1, lif: false));
        Assert.False(GpuSpikeConv.PipelinedPays(128, 576, 1, lif: false));
        var rng = new Random(4);
        ConvLayerSpec Spec(ConvGeometry g)
        {
            var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], 4, QuantizerSpec.Paper);
            return new ConvLayerSpec(g, new PackedConvWeights(codes), [], []) { SpikeInput = true };
        }
        var conv3 = Spec(new ConvGeometry(20, 40, 3, 3, 2, 2, 1, 1));
        var conv1 = Spec(new ConvGeometry(20, 40, 1, 1));
        foreach (var (mode, expected) in new[] { (SpikeInputGemm.TensorCores, true), (SpikeInputGemm.TensorCoresIm2col, false) })
        {
            using var backend = CudaBackend.OnCpuAccelerator(mode, split: false);
            using var layer3 = backend.CreateConv(conv3);
            using var layer1 = backend.CreateConv(conv1);
            Assert.Equal(expected, layer3.EngineAt(9, 7).Contains("implicit GEMM"));
            Assert.DoesNotContain("tiled", layer3.EngineAt(9, 7));
            Assert.DoesNotContain("implicit GEMM", layer1.EngineAt(9, 7));
        }
        // From TiledMinRows GEMM rows the tiled kernel runs by default; --gemm tensor-tiled takes it for every layer wider than 1×1.
        var wide = Spec(new ConvGeometry(20, GpuSpikeConv.TiledMinRows, 3, 3, 1, 1, 1, 1));
        foreach (var (mode, spec) in new[] { (SpikeInputGemm.TensorCores, wide), (SpikeInputGemm.TensorCoresTiled, conv3) })
        {
            using var backend = CudaBackend.OnCpuAccelerator(mode, split: false);
            using var layer = backend.CreateConv(spec);
            Assert.Contains("tiled implicit GEMM", layer.EngineAt(9, 7));
        }
    }

    public static TheoryData<ConvGeometry, bool> SplitLayers => new()
    {
        // geometry (K long enough for the split, GpuSpikeConv.SplitPays), pieces stacked along K (2·M > Kp)
        { new ConvGeometry(32, 10, 3, 3, 1, 1, 1, 1), false },  // K = 288, pieces along M
        { new ConvGeometry(130, 80, 1, 1), true },              // 1×1, channels padded 130 → 144, pieces along K
        { new ConvGeometry(16, 80, 3, 3, 2, 2, 1, 1), true },   // 3×3 stride 2, K = 144, pieces along K
    };

    /// <summary>fp32 weights as bf16 pieces: fp32 quality (another summation order than the CPU's), within 1e-5 of |Σ|w||.</summary>
    [Theory]
    [MemberData(nameof(SplitLayers))]
    public void SplitConvMatchesTheFp32Conv(ConvGeometry g, bool stackK)
    {
        Assert.True(GpuSpikeConv.SplitPays(g));
        int h = 6, w = 4, frames = 3;   // 24 outputs per plane: four per epilogue thread on the stride-1 layers
        var rng = new Random(9);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.37f).ToArray();
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble()).ToArray();
        var spec = new ConvLayerSpec(g, new DenseConvWeights(weight), bias, []) { SpikeInput = true };
        using (var probe = CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCores, split: true))
        using (var layer = (CudaConvLayer)probe.CreateConv(spec))
            Assert.Equal(stackK, layer.Spike!.StackK);
        var input = ChainLayers.Spikes(rng, frames * g.InChannels * h * w);
        var expected = Run(new CpuBackend(), spec, input, frames, h, w);
        var actual = Run(CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCores, split: true), spec, input, frames, h, w);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f, $"{i}: {actual[i]} vs {expected[i]}");
    }

    public static TheoryData<ConvGeometry, int, string, bool> RealInputLayers => new()
    {
        // geometry (1×1, K ≥ 128 on a small map: GpuSpikeConv.RealInputPays), bits, quantizer, runs on the bf16 path (codes within ±256)
        { new ConvGeometry(130, 24, 1, 1), 4, "paper", true },                   // channels padded 130 → 144
        { new ConvGeometry(128, 20, 1, 1), 8, "asymmetric-channel-mse", true },  // codes up to ±255
        { new ConvGeometry(128, 8, 1, 1), 12, "symmetric", false },             // 12-bit codes: not exact in bf16, stays fp32
    };

    /// <summary>
    /// Integer codes of a real-valued-input 1×1 layer against the input's three bf16 pieces: exact products summed in fp32,
    /// so fp32 quality in another order than the CPU's dequantized conv, within 1e-5 of Σ|w·x|.
    /// </summary>
    [Theory]
    [MemberData(nameof(RealInputLayers))]
    public void RealInputCodesMatchTheDequantizedConv(ConvGeometry g, int bits, string quantizer, bool bf16)
    {
        int h = 3, w = 4, frames = 3;
        var rng = new Random(g.GetHashCode() ^ bits);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, 1, 1], bits, QuantizerSpec.Parse(quantizer));
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble()).ToArray();
        var bn = new ChannelAffine(bias.Select(b => b + 0.5f).ToArray(), bias.Select(b => -b).ToArray());
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), bias, [bn]);
        using (var probe = CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCores, split: true))
        using (var layer = (CudaConvLayer)probe.CreateConv(spec))
        {
            Assert.Equal(bf16, layer.RealCodes is { RealInput: true });
            Assert.True(GpuSpikeConv.RealInputPays(g, h, w));
            // Profiles name what each call ran: the bf16 codes on this small map, the fp32 conv where they do not pay.
            Assert.Equal(bf16, layer.EngineAt(h, w).Contains("bf16 tensor cores"));
            Assert.False(GpuSpikeConv.RealInputPays(g, 64, 64));
            Assert.Equal(layer.Engine, layer.EngineAt(64, 64));
            Assert.DoesNotContain("bf16", layer.Engine);
        }
        // Real values over many binades, both signs, some exact zeros.
        var input = Enumerable.Range(0, frames * g.InChannels * h * w)
            .Select(_ => rng.Next(8) == 0 ? 0f : (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-12, 6)))).ToArray();
        var expected = Run(new CpuBackend(), spec, input, frames, h, w);
        var actual = Run(CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCores, split: true), spec, input, frames, h, w);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"{i}: {actual[i]} vs {expected[i]}");
    }

    public static TheoryData<ConvGeometry, int, int, int, int, SpikeInputGemm, int> FusedLifLayers => new()
    {
        // geometry, input h, w, bits, images per chunk, how the 3×3 convs run, T
        { new ConvGeometry(5, 7, 3, 3, 1, 1, 1, 1), 6, 5, 4, 1, SpikeInputGemm.TensorCoresIm2col, 2 },    // 30 outputs per plane: one per epilogue thread
        { new ConvGeometry(5, 7, 3, 3, 1, 1, 1, 1), 6, 5, 4, 1, SpikeInputGemm.TensorCoresImplicit, 2 },  // the same as an implicit GEMM
        { new ConvGeometry(33, 17, 1, 1), 4, 3, 8, 2, SpikeInputGemm.TensorCores, 2 },                  // 1×1: the packed spikes are the columns; 12 per plane: four per thread
        { new ConvGeometry(16, 40, 3, 3, 2, 2, 1, 1), 7, 8, 12, 3, SpikeInputGemm.TensorCoresIm2col, 2 }, // two int8 digits, stride 2, every image in one chunk
        { new ConvGeometry(16, 40, 3, 3, 2, 2, 1, 1), 7, 8, 12, 3, SpikeInputGemm.TensorCoresImplicit, 2 },
        { new ConvGeometry(16, 40, 3, 3, 2, 2, 1, 1), 7, 8, 12, 3, SpikeInputGemm.TensorCoresTiled, 2 },   // tiled blocks of 128 × 64
        { new ConvGeometry(21, 9, 3, 3, 1, 1, 1, 1), 5, 6, 4, 2, SpikeInputGemm.TensorCoresTiled, 2 },     // tiled blocks of 64 × 128, two chunks of images
        { new ConvGeometry(16, 40, 3, 3, 2, 2, 1, 1), 7, 8, 12, 3, SpikeInputGemm.TensorCoresPipelined, 2 }, // pipelined 128 × 128 blocks, two digits
        { new ConvGeometry(21, 9, 3, 3, 1, 1, 1, 1), 5, 6, 4, 2, SpikeInputGemm.TensorCoresPipelined, 2 },
        // The pipelined kernel's LIF epilogue: 128 / T pixels × T steps per block (T = 3: 42 pixels, two columns unused)
        { new ConvGeometry(21, 9, 3, 3, 1, 1, 1, 1), 5, 6, 4, 1, SpikeInputGemm.TensorCoresPipelined, 1 },
        { new ConvGeometry(21, 9, 3, 3, 1, 1, 1, 1), 9, 7, 4, 2, SpikeInputGemm.TensorCoresPipelined, 3 },
        { new ConvGeometry(40, 130, 3, 3, 1, 1, 1, 1), 8, 9, 4, 3, SpikeInputGemm.TensorCoresPipelined, 4 },   // 130 rows: a partial second row block
        // The same kernel with wgmma stages (its scalar fallback here: the stage layout, the ring and the epilogue rounds)
        { new ConvGeometry(21, 9, 3, 3, 1, 1, 1, 1), 9, 7, 4, 2, SpikeInputGemm.TensorCoresWgmma, 3 },
        { new ConvGeometry(40, 130, 3, 3, 1, 1, 1, 1), 8, 9, 4, 3, SpikeInputGemm.TensorCoresWgmma, 4 },
        { new ConvGeometry(16, 40, 3, 3, 2, 2, 1, 1), 7, 8, 12, 3, SpikeInputGemm.TensorCoresWgmma, 2 },     // two digits: sums out, the separate epilogue
    };

    /// <summary>
    /// ConvLif's fused epilogue (the LIF in the GEMM's epilogue, chunks of whole images) writes exactly the spikes of the
    /// unfused conv followed by the LIF kernel, bit for bit.
    /// </summary>
    [Theory]
    [MemberData(nameof(FusedLifLayers))]
    public void FusedLifEqualsConvThenLif(ConvGeometry g, int h, int w, int bits, int imagesPerChunk, SpikeInputGemm mode, int timesteps)
    {
        const int batch = 3;
        int frames = timesteps * batch;
        var rng = new Random(g.GetHashCode());
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var bn = new ChannelAffine(bias.Select(b => b + 1.5f).ToArray(), bias.Select(b => 0.1f * b).ToArray());
        var acc = gpu.Device.Accelerator;
        using var layer = new GpuSpikeConv(acc, new ConvLayerSpec(g, new DenseConvWeights(weight), bias, [bn]) { SpikeInput = true },
            PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], bits, QuantizerSpec.Paper));
        var ops = new SpikeGemmOps(acc, null, mode);
        long length = (long)frames * g.OutChannels * g.OutH(h) * g.OutW(w);
        var (_, columnFloats, sumFloats) = SpikeGemmOps.Plan(layer, frames, h, w, 1L << 30, implicitGemm: ops.Implicit(layer, h, w));
        using var x = gpu.Upload(ChainLayers.Spikes(rng, frames * g.InChannels * h * w));
        using var cols = gpu.Zeros(columnFloats);
        using var sums = gpu.Zeros(sumFloats);
        using var pre = gpu.Zeros(length);
        using var expected = gpu.Zeros(length);
        using var actual = gpu.Upload(Enumerable.Repeat(float.NaN, (int)length).ToArray());
        const float threshold = 0.4f;
        ops.Conv(layer, x.View, frames, h, w, pre.View, cols.View, sums.View, frames);
        gpu.Ops.Lif(pre.View, expected.View, length, timesteps, threshold, default, default, 0);
        ops.Conv(layer, x.View, frames, h, w, actual.View, cols.View, sums.View, imagesPerChunk * timesteps, timesteps, threshold);
        var e = expected.GetAsArray1D();
        var a = actual.GetAsArray1D();
        Assert.Equal(e, a);
        int fired = e.Count(v => v != 0);
        Assert.InRange(fired, length / 10, length * 9 / 10);   // the threshold leaves both outcomes common
    }

    public static TheoryData<ConvGeometry, int, int, int, int, int> VectorLayers => new()
    {
        // geometry, input h, w, bits, T, BNs (with a bias when > 0): im2col + the fallback GEMM, so the packing, column and
        // epilogue kernels of the cuBLAS path run (four outputs per epilogue thread where OH·OW is a multiple of 4)
        { new ConvGeometry(7, 9, 3, 3, 1, 1, 1, 1), 6, 6, 4, 1, 0 },         // odd channels, 36 outputs per plane, one digit, no bias or BN
        { new ConvGeometry(17, 5, 3, 3, 1, 1, 1, 1), 5, 7, 12, 4, 1 },       // 35 per plane (one per thread), two digits, Cp = 32
        { new ConvGeometry(33, 3, 3, 3, 2, 2, 1, 1), 8, 8, 16, 4, 2 },       // Cp = 48 (three 16-channel blocks), three digits, stride 2
        { new ConvGeometry(3, 20, 1, 1), 5, 4, 8, 1, 1 },                    // 1×1: packed straight into the columns
    };

    /// <summary>
    /// The vectorised int8 packing, 16-byte columns and four-output epilogues (plain and with the fused LIF) equal the CPU's
    /// integer path bit for bit on the edges of their layouts.
    /// </summary>
    [Theory]
    [MemberData(nameof(VectorLayers))]
    public void VectorKernelsEqualTheCpuIntegerPath(ConvGeometry g, int h, int w, int bits, int timesteps, int bns)
    {
        const float threshold = 0.4f;
        int frames = 2 * timesteps;
        var rng = new Random(g.GetHashCode() ^ bits);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], bits, QuantizerSpec.Paper);
        var bias = bns == 0 ? [] : Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var affines = Enumerable.Range(0, bns).Select(k => new ChannelAffine(bias.Select(b => b + 1.5f + k).ToArray(), bias.Select(b => 0.1f * b).ToArray())).ToArray();
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), bias, affines) { SpikeInput = true };
        var input = ChainLayers.Spikes(rng, frames * g.InChannels * h * w);
        using var cpu = new CpuBackend();
        using var im2col = CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCoresIm2col, split: false);
        var (conv, spikes) = ConvAndLif(cpu, spec, input, frames, h, w, timesteps, threshold);
        var (gpuConv, gpuSpikes) = ConvAndLif(im2col, spec, input, frames, h, w, timesteps, threshold);
        Assert.Equal(conv, gpuConv);
        Assert.Equal(spikes, gpuSpikes);
        Assert.Contains(1f, spikes);
        Assert.Contains(0f, spikes);
    }

    private static (float[] Conv, float[] Spikes) ConvAndLif(IBackend backend, ConvLayerSpec spec, float[] input, int frames, int h, int w,
        int timesteps, float threshold)
    {
        var g = spec.Geometry;
        long length = (long)frames * g.OutChannels * g.OutH(h) * g.OutW(w);
        using var layer = backend.CreateConv(spec);
        int mark = backend.Mark();
        var x = backend.Rent(input.Length);
        backend.Upload(input, x);
        var y = backend.Rent(length);
        var spikes = backend.Rent(length);
        backend.Conv(layer, x, frames, h, w, y);
        var conv = new float[length];
        backend.Download(y, 0, conv);
        backend.ConvLif(layer, x, frames, h, w, y, spikes, timesteps, threshold, 0, null);
        var fired = new float[length];
        backend.Download(spikes, 0, fired);
        backend.Release(mark);
        return (conv, fired);
    }

    /// <summary>
    /// IBackend.ConvLif on the CUDA backend: without a recorder an integer layer runs fused (the pre-activation map is left as it
    /// was); with a spike counter it runs conv, then LIF, and counts what the CPU backend counts. The spikes are the CPU's both ways.
    /// </summary>
    [Fact]
    public void ConvLifThroughTheBackendFusesOnlyWithoutARecorder()
    {
        var g = new ConvGeometry(6, 10, 3, 3, 1, 1, 1, 1);
        const int timesteps = 2, frames = 4, h = 5, w = 4, layers = 1;
        const float threshold = 0.4f;
        var rng = new Random(11);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], 4, QuantizerSpec.Paper);
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), new float[g.OutChannels], []) { SpikeInput = true };
        var input = ChainLayers.Spikes(rng, frames * g.InChannels * h * w);
        int length = frames * g.OutChannels * h * w;

        (float[] Spikes, float[] Pre, LifCounts? Counts) Run(IBackend backend, bool count)
        {
            using var layer = backend.CreateConv(spec);
            using var counter = count ? backend.CreateSpikeCounter(layers) : null;
            int mark = backend.Mark();
            var x = backend.Rent(input.Length);
            backend.Upload(input, x);
            var pre = backend.Rent(length);
            backend.Upload(Enumerable.Repeat(float.NaN, length).ToArray(), pre);
            var spikes = backend.Rent(length);
            backend.ConvLif(layer, x, frames, h, w, pre, spikes, timesteps, threshold, 0, counter);
            var (s, p) = (new float[length], new float[length]);
            backend.Download(spikes, 0, s);
            backend.Download(pre, 0, p);
            backend.Release(mark);
            return (s, p, counter?.Read());
        }

        using var cpu = new CpuBackend();
        var cpuCounted = Run(cpu, count: true);
        var fused = Run(gpu.Backend, count: false);
        var counted = Run(gpu.Backend, count: true);
        Assert.Equal(cpuCounted.Spikes, fused.Spikes);
        Assert.Equal(cpuCounted.Spikes, counted.Spikes);
        Assert.All(fused.Pre, v => Assert.True(float.IsNaN(v)));           // fused: no pre-activation map written
        Assert.DoesNotContain(counted.Pre, float.IsNaN);                     // conv, then LIF: the map is there
        Assert.Equal(cpuCounted.Counts!.Spikes, counted.Counts!.Spikes);
        Assert.Equal(cpuCounted.Counts.Neurons, counted.Counts.Neurons);
        Assert.InRange(cpuCounted.Counts.Spikes[0], 1, length - 1);
    }

    /// <summary>
    /// The parity model (T = 1, a 32×32 crop) quantized to the paper setting: on the CUDA backend's integer path equal to the
    /// CPU backend's integer path (logits within 1e-4: both sum exactly; only the spatial mean's order differs), and against
    /// the fp32 simulation of the same codes argmax identical with logits within 0.5 (rounding moves a few spikes).
    /// </summary>
    [Fact]
    public void ParityModelOnTheIntegerPath()
    {
        const int size = 32, batch = 2;
        var (packed, images) = Fixtures.QuantizedParity(timesteps: 1, batch, size, seed: 3);

        using var cpuInteger = new Sdtv2Model(packed);
        using var gpuInteger = new Sdtv2Model(packed, backend: gpu.Backend);
        using var gpuSimulated = new Sdtv2Model(packed, simulate: true, backend: gpu.Backend);
        var expected = cpuInteger.Forward(images, batch, size, size);
        var actual = gpuInteger.Forward(images, batch, size, size);
        var simulated = gpuSimulated.Forward(images, batch, size, size);
        int classes = packed.Config.NumClasses;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4f, $"logit {i}: {actual[i]} vs CPU integer {expected[i]}");
            Assert.True(Math.Abs(simulated[i] - actual[i]) <= 0.5f, $"logit {i}: {actual[i]} vs simulated {simulated[i]}");
        }
        for (int b = 0; b < batch; b++)
            Assert.Equal(Evaluator.ArgMax(simulated.AsSpan(b * classes, classes)), Evaluator.ArgMax(actual.AsSpan(b * classes, classes)));
        Assert.Equal(actual, gpuInteger.Forward(images, batch, size, size));
    }


    /// <summary>One conv call of <paramref name="spec"/> on <paramref name="backend"/> (disposed after unless not <paramref name="owned"/>).</summary>
    internal static float[] Run(IBackend backend, ConvLayerSpec spec, float[] input, int frames, int h, int w, bool owned = true)
    {
        try
        {
            var g = spec.Geometry;
            using var layer = backend.CreateConv(spec);
            int mark = backend.Mark();
            var x = backend.Rent(input.Length);
            backend.Upload(input, x);
            var y = backend.Rent((long)frames * g.OutChannels * g.OutH(h) * g.OutW(w));
            backend.Conv(layer, x, frames, h, w, y);
            var result = new float[frames * g.OutChannels * g.OutH(h) * g.OutW(w)];
            backend.Download(y, 0, result);
            backend.Release(mark);
            return result;
        }
        finally
        {
            if (owned) backend.Dispose();
        }
    }
}
