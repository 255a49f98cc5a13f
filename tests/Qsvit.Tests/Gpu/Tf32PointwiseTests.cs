using ILGPU;
using ILGPU.Runtime;
using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The TF32 path of integer 1×1 layers (<see cref="SpikeGemmOps.Tf32"/>): which codes TF32 holds exactly, the fp32 codes it
/// multiplies, and its in-place epilogues against the int8 path's epilogues bit for bit (the cuBLAS GEMM itself needs a card:
/// the device run compares whole-model logits of both paths).
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class Tf32PointwiseTests(CpuAcceleratorFixture gpu)
{
    [Theory]
    [InlineData(-2048, 2047, 8191, true)]   // 2048 · 8191 < 2^24
    [InlineData(-2048, 2047, 8192, false)]  // 2048 · 8192 = 2^24
    [InlineData(-2049, 0, 1, false)]        // 2049 needs 12 significant bits
    [InlineData(0, 2049, 1, false)]
    [InlineData(-8, 7, (1 << 21) - 1, true)]
    [InlineData(-8, 7, 1 << 21, false)]
    [InlineData(int.MinValue, 0, 1, false)]
    public void Tf32HoldsCodesUpTo2048WithSumsBelow2To24(int min, int max, int k, bool exact) =>
        Assert.Equal(exact, GpuSpikeConv.Tf32Exact(min, max, k));

    [Theory]
    [InlineData(1, 4, true)]
    [InlineData(1, 12, true)]   // |q − z| ≤ 2048
    [InlineData(1, 16, false)]  // beyond TF32: the int8 digits only
    [InlineData(3, 4, false)]   // 3×3: not a GEMM per frame on the input in place
    public void Fp32CodesOnlyFor1x1LayersTf32Holds(int kernel, int bits, bool f32)
    {
        var rng = new Random(bits * 10 + kernel);
        var g = new ConvGeometry(24, 20, kernel, kernel, 1, 1, kernel / 2, kernel / 2);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [20, 24, kernel, kernel], bits, QuantizerSpec.Parse("paper"));
        using var layer = new GpuSpikeConv(gpu.Device.Accelerator, new ConvLayerSpec(g, new PackedConvWeights(codes), [], []) { SpikeInput = true }, codes);
        Assert.Equal(f32, layer.F32 is not null);
        if (layer.F32 is null) return;
        var ints = new int[g.WeightLength];
        codes.IntegerRows(0, 20, ints);
        Assert.Equal(ints.Select(v => (float)v).ToArray(), layer.F32.GetAsArray1D());
    }

    /// <summary>
    /// The in-place epilogues over frame-major fp32 sums equal the int8 path's epilogues over the same integers laid out as
    /// its GEMM writes them ([M, frames·OHW]): with and without bias and BNs, 1 or 4 outputs a thread, with the LIF over T.
    /// </summary>
    [Theory]
    [InlineData(3, 5, 7, 0, true, 2)]    // odd plane: one output a thread
    [InlineData(4, 6, 8, 0, false, 0)]   // four a thread
    [InlineData(4, 5, 12, 4, true, 1)]   // LIF over T = 4, one image
    [InlineData(6, 3, 4, 2, false, 2)]   // LIF over T = 2, three images, four a thread
    [InlineData(8, 7, 9, 4, true, 1)]    // LIF, odd plane
    public void InPlaceEpiloguesEqualTheInt8Epilogues(int frames, int m, int ohw, int timesteps, bool bias, int bns)
    {
        var rng = new Random(frames * 100 + m * 10 + ohw + timesteps);
        var acc = gpu.Device.Accelerator;
        var sums = Enumerable.Range(0, frames * m * ohw).Select(_ => rng.Next(-3000, 3000)).ToArray();
        // The int8 path's layout: c[oc, f·OHW + pix], rows a multiple of 4.
        int rows = (frames * ohw + 3) / 4 * 4;
        var columnMajor = new int[m * rows];
        for (int f = 0; f < frames; f++)
            for (int oc = 0; oc < m; oc++)
                for (int pix = 0; pix < ohw; pix++)
                    columnMajor[oc * rows + f * ohw + pix] = sums[(f * m + oc) * ohw + pix];
        float[] Floats(int n, double offset) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() + offset)).ToArray();
        var scales = Floats(m, 0.01);
        var biases = bias ? Floats(m, -0.5) : [0f];
        var bn = bns > 0 ? Floats(2 * bns * m, -0.25) : [0f];
        int perThread = ohw % 4 == 0 ? 4 : 1, items = timesteps > 0 ? frames / timesteps : frames;
        var p = new SpikeGemmArgs
        {
            M = m, OHW = ohw, Rows = rows, Parts = 1, HasBias = bias ? 1 : 0, BnCount = bns, PerThread = perThread,
            Items = timesteps > 0 ? items : 0, InvItems = 1f / items, FrameStride = items, Timesteps = timesteps, Threshold = 0.3f,
        };
        int threads = frames * m * ohw / Math.Max(1, timesteps) / perThread;
        using var c = acc.Allocate1D(columnMajor);
        using var inPlace = acc.Allocate1D(sums.Select(v => (float)v).ToArray());
        using var expected = acc.Allocate1D<float>(frames * m * ohw);
        using var s = acc.Allocate1D(scales);
        using var b = acc.Allocate1D(biases);
        using var n = acc.Allocate1D(bn);
        if (timesteps > 0)
        {
            acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(
                SpikeGemmKernels.EpilogueIntLif<ExactFma>)(threads, c.View, expected.View, s.View, b.View, n.View, p);
            acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(
                SpikeGemmKernels.EpilogueInPlaceLif<ExactFma>)(threads, inPlace.View, s.View, b.View, n.View, p);
        }
        else
        {
            acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(
                SpikeGemmKernels.EpilogueInt<ExactFma>)(threads, c.View, expected.View, s.View, b.View, n.View, p);
            acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(
                SpikeGemmKernels.EpilogueInPlace<ExactFma>)(threads, inPlace.View, s.View, b.View, n.View, p);
        }
        acc.Synchronize();
        var want = expected.GetAsArray1D();
        Assert.Equal(want, inPlace.GetAsArray1D());
        if (timesteps > 0) Assert.Contains(want, v => v == 1f); // the LIF fires somewhere
    }

    [Fact]
    public void Tf32PaysFrom28x28To56x56AndTheFusedKernelUpTo56x56()
    {
        Assert.True(GpuSpikeConv.Tf32Pays(28 * 28) && GpuSpikeConv.Tf32Pays(56 * 56));
        Assert.False(GpuSpikeConv.Tf32Pays(14 * 14) || GpuSpikeConv.Tf32Pays(4 * 4));
        Assert.False(GpuSpikeConv.Tf32Pays(112 * 112)); // measured on the int8 path only
        Assert.True(PointwiseMmaKernels.FusedPaysAt(32 * 32) && PointwiseMmaKernels.FusedPaysAt(4 * 4)); // CIFAR's maps
        Assert.False(PointwiseMmaKernels.FusedPaysAt(112 * 112)); // the 55M's 64 → 128 + LIF: faster on cuBLAS's int8 GEMM
    }

    /// <summary>Without cuBLAS (its stand-in is a plain kernel) the TF32 path never runs; the CLI names it.</summary>
    [Fact]
    public void Tf32NeedsCublas()
    {
        var rng = new Random(5);
        var g = new ConvGeometry(40, 300, 1, 1);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [300, 40, 1, 1], 4, QuantizerSpec.Parse("paper"));
        using var layer = new GpuSpikeConv(gpu.Device.Accelerator, new ConvLayerSpec(g, new PackedConvWeights(codes), [], []) { SpikeInput = true }, codes);
        Assert.NotNull(layer.F32);
        var ops = new SpikeGemmOps(gpu.Device.Accelerator, null, SpikeInputGemm.TensorCoresTf32Pointwise);
        Assert.False(ops.Tf32(layer, 8, 4, 4, 0));
        Assert.False(ops.InPlace(layer, 8, 4, 4, 0) && !ops.Fused(layer, 8, 4, 4, 0));
    }
}
