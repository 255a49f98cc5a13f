using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using Qsvit.Tensors;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// A convolution resident on the device: for dense layers the weights of each group as a [Cout/G, K] matrix with K in
/// the CPU's summation order (<see cref="ReductionOrder.TapOrder"/>) and the tap table that maps K back to (c, ky, kx);
/// for depthwise layers the weights as given. Bias and the BN chain (scale, shift per BN) beside them.
/// </summary>
internal sealed class GpuConv : IDisposable
{
    public ConvGeometry Geometry { get; }
    public MemoryBuffer1D<float, Stride1D.Dense> Weights { get; }
    public MemoryBuffer1D<int, Stride1D.Dense>? Taps { get; }
    public MemoryBuffer1D<float, Stride1D.Dense>? Bias { get; }
    /// <summary>scale0, shift0, scale1, shift1, … each OutChannels long; null without BNs.</summary>
    public MemoryBuffer1D<float, Stride1D.Dense>? Bn { get; }
    public int BnCount { get; }

    public GpuConv(Accelerator accelerator, ConvGeometry g, float[] weight, float[] bias, IReadOnlyList<(float[] Scale, float[] Shift)> bns)
    {
        g.Validate();
        if (weight.Length < g.WeightLength) throw new ArgumentException($"weight has {weight.Length} elements, needs {g.WeightLength}", nameof(weight));
        if (bias.Length != 0 && bias.Length < g.OutChannels) throw new ArgumentException($"bias has {bias.Length} elements, needs {g.OutChannels}", nameof(bias));
        if (g.KernelH > 15 || g.KernelW > 15) throw new QsvitException($"the CUDA backend runs kernels up to 15x15, not {g.KernelH}x{g.KernelW}");
        Geometry = g;
        if (g.IsDepthwise)
            Weights = accelerator.Allocate1D(weight.AsSpan(0, g.WeightLength).ToArray());
        else
        {
            int cinG = g.InChannels / g.Groups, k = cinG * g.KernelH * g.KernelW;
            var order = ReductionOrder.TapOrder(cinG, g.KernelH, g.KernelW);
            var permuted = new float[g.WeightLength];
            for (int m = 0; m < g.OutChannels; m++)
                for (int j = 0; j < k; j++) permuted[(long)m * k + j] = weight[(long)m * k + order[j]];
            var taps = new int[k];
            int khw = g.KernelH * g.KernelW;
            for (int j = 0; j < k; j++)
            {
                int c = order[j] / khw, rest = order[j] % khw;
                taps[j] = (c << 8) | ((rest / g.KernelW) << 4) | (rest % g.KernelW);
            }
            Weights = accelerator.Allocate1D(permuted);
            Taps = accelerator.Allocate1D(taps);
        }
        if (bias.Length != 0) Bias = accelerator.Allocate1D(bias.AsSpan(0, g.OutChannels).ToArray());
        BnCount = bns.Count;
        if (bns.Count > 0)
        {
            var packed = new float[2 * bns.Count * g.OutChannels];
            for (int i = 0; i < bns.Count; i++)
            {
                bns[i].Scale.AsSpan(0, g.OutChannels).CopyTo(packed.AsSpan(2 * i * g.OutChannels));
                bns[i].Shift.AsSpan(0, g.OutChannels).CopyTo(packed.AsSpan((2 * i + 1) * g.OutChannels));
            }
            Bn = accelerator.Allocate1D(packed);
        }
    }

    public long DeviceBytes => 4 * (Weights.Length + (Taps?.Length ?? 0) + (Bias?.Length ?? 0) + (Bn?.Length ?? 0));

    public void Dispose()
    {
        Weights.Dispose();
        Taps?.Dispose();
        Bias?.Dispose();
        Bn?.Dispose();
    }
}

/// <summary>
/// The ILGPU kernels of <see cref="GpuKernels"/>, compiled once for an accelerator, behind host-side launchers that
/// take shapes and check them. All launches go to the accelerator's default stream, in call order.
/// </summary>
/// <summary>
/// A library GEMM over a batch: C[i] (m×n, row-major, dense) = A (m×k, shared) · B[i] (k×n, dense; n×k with
/// <paramref name="transB"/>), B[i] and C[i] <c>strideB</c>/<c>strideC</c> elements apart.
/// </summary>
internal delegate void LibraryGemm(int m, int n, int k, ArrayView<float> a, ArrayView<float> b, long strideB, ArrayView<float> c, long strideC, int batch,
    bool transB = false);

internal sealed class GpuOps : IDisposable
{
    private readonly Accelerator _acc;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmArgs> _gemm;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs> _depthwise;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs> _strips3, _strips7, _strips7x8, _border3, _border3Planes;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs> _blocks7, _planes7;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, int, int, float, int, int> _lif;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int> _add;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float> _smallAttention;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float> _addLif;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, int, int, int, int, int, float, float, float, int> _smallAttentionLif;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<long>, int, int, int, int, int, float, int> _spikeBits;
    private readonly Action<KernelConfig, ArrayView<int>, ArrayView<float>, ArrayView<long>, int, int, int, int, int, int, int, int, float, float, int> _bitAttention;
    private readonly Action<Index1D, ArrayView<float>, int> _repeat;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int> _pad;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, float> _mean;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int> _meanOverTime;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, ArrayView<float>, ArrayView<float>, int, int, int, ArrayView<double>, ArrayView<long>, int> _partials;
    private readonly Action<Index1D, ArrayView<double>, int, ArrayView<double>, int> _sumPartials;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int, int, int, int, int, int, int, int> _im2col;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int> _epilogue;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SmallInputArgs> _smallInput;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int, int> _toPixelMajor;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int> _rowsEpilogue;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _dummy;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _dummyInt;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _dummyLong;
    private MemoryBuffer1D<double, Stride1D.Dense>? _partialBuffer;
    private readonly int _groupEdge, _reduceThreads;

    /// <summary>Elements each group of the squared-difference reduction sums (fixed, so results never depend on the device).</summary>
    public const int ReduceChunk = 1 << 16;

    public GpuOps(Accelerator accelerator)
    {
        _acc = accelerator;
        // Group sizes: full tiles on a GPU; one thread per group on the CPU accelerator, where every barrier of a larger
        // group costs OS thread switches (the same kernels, smaller tiles).
        int maxGroup = accelerator.MaxNumThreadsPerGroup;
        bool cuda = accelerator.AcceleratorType == AcceleratorType.Cuda;
        _groupEdge = maxGroup >= GpuKernels.GpuGroupEdge * GpuKernels.GpuGroupEdge ? GpuKernels.GpuGroupEdge : 1;
        _reduceThreads = ReduceGroupSize(maxGroup, GpuKernels.MaxReduceThreads);
        _gemm = cuda
            ? Load("Gemm", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmArgs>(GpuKernels.Gemm<ContractedFma>))
            : Load("Gemm", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GemmArgs>(GpuKernels.Gemm<ExactFma>));
        _depthwise = cuda
            ? Load("Depthwise", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.Depthwise<ContractedFma>))
            : Load("Depthwise", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.Depthwise<ExactFma>));
        _strips3 = cuda
            ? Load("DepthwiseStrips3", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ContractedFma, Taps3>))
            : Load("DepthwiseStrips3", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ExactFma, Taps3>));
        _strips7 = cuda
            ? Load("DepthwiseStrips7", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ContractedFma, Taps7>))
            : Load("DepthwiseStrips7", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ExactFma, Taps7>));
        _strips7x8 = cuda
            ? Load("DepthwiseStrips7x8", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ContractedFma, Taps7x8>))
            : Load("DepthwiseStrips7x8", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseStrips<ExactFma, Taps7x8>));
        _blocks7 = cuda
            ? Load("DepthwiseBlocks", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseBlocks<ContractedFma>))
            : Load("DepthwiseBlocks", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseBlocks<ExactFma>));
        _planes7 = cuda
            ? Load("DepthwisePlanes", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwisePlanes<ContractedFma>))
            : Load("DepthwisePlanes", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwisePlanes<ExactFma>));
        _border3 = cuda
            ? Load("DepthwiseBorder3", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseBorder3<ContractedFma>))
            : Load("DepthwiseBorder3", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseBorder3<ExactFma>));
        _border3Planes = cuda
            ? Load("DepthwiseBorder3Planes", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseBorder3Planes<ContractedFma>))
            : Load("DepthwiseBorder3Planes", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DepthwiseArgs>(GpuKernels.DepthwiseBorder3Planes<ExactFma>));
        _lif = Load("Lif", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, int, int, float, int, int>(GpuKernels.Lif));
        _add = Load("Add", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(GpuKernels.Add));
        _smallAttention = Load("SmallAttention", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(GpuKernels.SmallAttention));
        _smallAttentionLif = Load("SmallAttentionLif", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, int, int, int, int, int, float, float, float, int>(GpuKernels.SmallAttentionLif));
        _spikeBits = Load("SpikeBits", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<long>, int, int, int, int, int, float, int>(BitAttentionKernels.SpikeBits));
        _bitAttention = Load("BitAttention", () => accelerator.LoadStreamKernel<ArrayView<int>, ArrayView<float>, ArrayView<long>, int, int, int, int, int, int, int, int, float, float, int>(BitAttentionKernels.Attention));
        _addLif = Load("AddLif", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(GpuKernels.AddLif));
        _repeat = Load("RepeatOverTime", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int>(GpuKernels.RepeatOverTime));
        _pad = Load("PadBorder", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(GpuKernels.PadBorder));
        _mean = Load("SpatialMean", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, float>(GpuKernels.SpatialMean));
        _meanOverTime = Load("MeanOverTime", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(GpuKernels.MeanOverTime));
        _partials = Load("SquaredDiffPartials", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, ArrayView<float>, ArrayView<float>, int, int, int, ArrayView<double>, ArrayView<long>, int>(GpuKernels.SquaredDiffPartials));
        _sumPartials = Load("SumPartials", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, int, ArrayView<double>, int>(GpuKernels.SumPartials));
        _im2col = Load("Im2Col", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int, int, int, int, int, int, int, int, int>(GpuKernels.Im2Col));
        _epilogue = cuda
            ? Load("ChannelEpilogue", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(GpuKernels.ChannelEpilogue<ContractedFma>))
            : Load("ChannelEpilogue", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(GpuKernels.ChannelEpilogue<ExactFma>));
        _smallInput = cuda
            ? Load("SmallInputConv", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SmallInputArgs>(GpuKernels.SmallInputConv<ContractedFma>))
            : Load("SmallInputConv", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SmallInputArgs>(GpuKernels.SmallInputConv<ExactFma>));
        _toPixelMajor = Load("ToPixelMajor", () => accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int, int, int, int>(GpuKernels.ToPixelMajor));
        _rowsEpilogue = cuda
            ? Load("RowsEpilogue", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int>(GpuKernels.RowsEpilogue<ContractedFma>))
            : Load("RowsEpilogue", () => accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int>(GpuKernels.RowsEpilogue<ExactFma>));
        _dummy = accelerator.Allocate1D<float>(1);
        _dummyInt = accelerator.Allocate1D<int>(1);
        _dummyLong = accelerator.Allocate1D<long>(1);
    }

    public Accelerator Accelerator => _acc;

    /// <summary>The largest power of two within both the device's group limit and a tree reduction's shared-memory size.</summary>
    internal static int ReduceGroupSize(int maxGroup, int cap)
    {
        int threads = 1;
        while (threads * 2 <= Math.Min(maxGroup, cap)) threads *= 2;
        return threads;
    }

    /// <summary>Loads a kernel; a compile or load failure becomes a clear error naming the kernel.</summary>
    internal static T Load<T>(string kernel, Func<T> load)
    {
        try { return load(); }
        catch (Exception e) when (e is not QsvitException)
        {
            throw new QsvitException($"the {kernel} kernel did not compile or load: {e.GetType().Name}: {e.Message}", e);
        }
    }

    /// <summary>
    /// output[frames, Cout, OH, OW] = conv(input[frames, Cin, h, w]) + bias, then the BNs, each one FMA; summed in the
    /// CPU's order (K in tap order, segments of <see cref="ReductionOrder.Segments"/>, the bias where the CPU adds it).
    /// </summary>
    /// <remarks>
    /// With <paramref name="border"/> &gt; 0 (depthwise only) the input is BN-padded on the fly: <paramref name="h"/>×<paramref name="w"/>
    /// is the padded map, <paramref name="input"/> holds its interior (h − 2·border)×(w − 2·border), and the border of
    /// channel c reads <paramref name="borderValues"/>[c], exactly as the conv of <see cref="PadBorder"/>'s output.
    /// </remarks>
    public void Conv(GpuConv layer, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output,
        ArrayView<float> borderValues = default, int border = 0)
    {
        var g = layer.Geometry;
        int oh = g.OutH(h), ow = g.OutW(w);
        if (oh <= 0 || ow <= 0) throw new ArgumentException($"input {h}x{w} is smaller than the kernel {g.KernelH}x{g.KernelW} with padding");
        if (border < 0 || border > 0 && (!g.IsDepthwise || h <= 2 * border || w <= 2 * border))
            throw new ArgumentException($"a border of {border} needs a depthwise layer and a padded map larger than twice it ({h}x{w})", nameof(border));
        if (border > 0) CheckLength(borderValues, g.InChannels, nameof(borderValues));
        long inLen = (long)frames * g.InChannels * (h - 2 * border) * (w - 2 * border), outLen = (long)frames * g.OutChannels * oh * ow;
        CheckLength(input, inLen, nameof(input));
        CheckLength(output, outLen, nameof(output));
        if (frames == 0) return;
        var bias = layer.Bias?.View ?? _dummy.View;
        var bn = layer.Bn?.View ?? _dummy.View;
        // One launch's groups for the depthwise kernels, or a clear error where a call is too large for one.
        Index1D DepthwiseGrid(long count) => count <= int.MaxValue ? new Index1D((int)count)
            : throw new QsvitException($"a depthwise convolution of {outLen:N0} outputs is too large for one launch; use a smaller batch");
        if (g.IsDepthwise)
        {
            var dp = new DepthwiseArgs
            {
                Planes = frames * g.InChannels, Channels = g.InChannels, H = h, W = w, OH = oh, OW = ow, KH = g.KernelH, KW = g.KernelW,
                StrideH = g.StrideH, StrideW = g.StrideW, PadH = g.PadH, PadW = g.PadW, HasBias = layer.Bias is null ? 0 : 1, BnCount = layer.BnCount,
                Border = border, Rows = g.StrideH == 1 && g.KernelH >= RowPairMinKernel ? 2 : 1,
            };
            if (border == 0 && PlanesFit(g, h, w) && SpikeGemmOps.Aligned16(input) && SpikeGemmOps.Aligned16(output))
            {
                var planeGroups = DepthwiseGrid((DepthwisePlaneBatches(ref dp, PlaneThreads) + PlaneBatchesPerGroup - 1) / PlaneBatchesPerGroup);
                _planes7(new KernelConfig(planeGroups, new Index1D(Math.Min(dp.PlanesPerGroup * dp.Strips * dp.Rows, _reduceThreads)),
                    SharedMemoryConfig.RequestDynamic<Floats4>(dp.PlanesPerGroup * dp.PlaneFloats)), input, layer.Weights.View, bias, bn, output, dp);
                return;
            }
            if (border == 0 && BlocksPay(g, ow))
            {
                dp.Vec = SpikeGemmOps.Aligned16(input) ? 1 : 0;
                dp.VecOut = SpikeGemmOps.Aligned16(output) ? 1 : 0;
                var blockGroups = DepthwiseGrid(DepthwiseBlockTiles(ref dp, BlockThreads));
                _blocks7(new KernelConfig(blockGroups, new Index1D(Math.Min(dp.PlanesPerGroup * dp.Strips * dp.Rows, _reduceThreads))),
                    input, layer.Weights.View, bias, bn, output, dp);
                return;
            }
            if (border == 1 && BorderPlanes && Border3PlanesFit(g, oh, ow, input, output))
            {
                dp.ChannelsInverse = 1f / dp.Channels;
                int threads = Math.Min(Border3PlaneThreads, _reduceThreads);
                var planeGroups = DepthwiseGrid((dp.Planes + (long)threads - 1) / threads);
                _border3Planes(new KernelConfig(planeGroups, new Index1D(threads)), input, layer.Weights.View, bias, bn, output, borderValues, dp);
                return;
            }
            if (border == 1 && Border3Fits(g, oh, ow))
            {
                var borderGroups = DepthwiseGrid(DepthwiseBorder3Groups(ref dp, StripThreads));
                _border3(new KernelConfig(borderGroups, new Index1D(Math.Min(StripThreads, _reduceThreads))),
                    input, layer.Weights.View, bias, bn, output, borderValues, dp);
                return;
            }
            if (StripsFit(g))
            {
                int width = StripWidth(g, ow);
                var stripGroups = DepthwiseGrid(DepthwiseStripTiles(ref dp, StripThreads, width));
                (g.KernelH == 3 ? _strips3 : width == 8 ? _strips7x8 : _strips7)(new KernelConfig(stripGroups, new Index1D(Math.Min(StripThreads, _reduceThreads))),
                    input, layer.Weights.View, bias, bn, output, border > 0 ? borderValues : _dummy.View, dp);
                return;
            }
            var launchGroups = DepthwiseGrid(DepthwiseTiles(ref dp, _reduceThreads * 4 * dp.Rows));
            _depthwise(new KernelConfig(launchGroups, new Index1D(_reduceThreads)), input, layer.Weights.View, bias, bn, output,
                border > 0 ? borderValues : _dummy.View, dp);
            return;
        }
        int groups = g.Groups, cinG = g.InChannels / groups, coutG = g.OutChannels / groups, k = cinG * g.KernelH * g.KernelW;
        var (segment, biasAfter) = ReductionOrder.Segments(g, h, w);
        int ohw = oh * ow;
        long n = (long)frames * ohw;
        if (n > int.MaxValue / 2) throw new QsvitException($"a convolution over {n:N0} output pixels is too large for one launch; use a smaller batch");
        var p = new GemmArgs
        {
            M = coutG, N = (int)n, K = k, Batches = groups,
            ABatch = coutG * k, LdaM = k, LdaK = 1,
            CBatch = coutG * ohw, CImage = g.OutChannels * ohw, Cols = ohw, LdcM = ohw, LdcN = 1,
            Conv = 1, InChannels = g.InChannels, CinG = cinG, H = h, W = w, OW = ow,
            StrideH = g.StrideH, StrideW = g.StrideW, PadH = g.PadH, PadW = g.PadW,
            Segment = segment, BiasMode = layer.Bias is null ? 0 : biasAfter ? 2 : 1,
            RowsPerBatch = coutG, BnCount = layer.BnCount, BnChannels = g.OutChannels, Alpha = 1f,
        };
        LaunchGemm(layer.Weights.View, input, layer.Taps!.View, output, bias, bn, p);
    }

    /// <summary>
    /// Whether <see cref="SmallInputConv"/> takes this layer at this input size: a dense layer of at most 4 input channels
    /// (the stem over RGB) that is not 1×1, with K within the staged weights and its tile's input patch within shared memory.
    /// </summary>
    public static bool SmallInputFits(ConvGeometry g, int h, int w)
    {
        if (g.IsDepthwise || g.Groups != 1 || g.IsPointwise || g.InChannels > 4 || g.InChannels * g.KernelH * g.KernelW > GpuKernels.SmallInputMaxK)
            return false;
        var (tileH, tileW) = SmallInputTile(g.OutH(h), g.OutW(w));
        return (long)g.InChannels * ((tileH - 1) * g.StrideH + g.KernelH) * ((tileW - 1) * g.StrideW + g.KernelW) <= GpuKernels.SmallInputPatchFloats;
    }

    /// <summary>A tile of at most <see cref="GpuKernels.SmallInputPixels"/> outputs: up to 64 columns, as many rows as the rest allows.</summary>
    private static (int H, int W) SmallInputTile(int oh, int ow)
    {
        int tileW = Math.Min(ow, 64);
        return (Math.Min(oh, GpuKernels.SmallInputPixels / tileW), tileW);
    }

    /// <summary>
    /// The layer (<see cref="SmallInputFits"/>) by <see cref="GpuKernels.SmallInputConv{TFma}"/>, its result written into
    /// output <paramref name="copies"/> times, one after the other (frames·Cout·OH·OW floats each): the stem and the repeat over T in one kernel.
    /// The values are those of <see cref="Conv"/> (its implicit GEMM) to the last bit.
    /// </summary>
    public void SmallInputConv(GpuConv layer, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output, int copies = 1)
    {
        var g = layer.Geometry;
        if (!SmallInputFits(g, h, w)) throw new ArgumentException($"the small-input conv does not take {g.InChannels}->{g.OutChannels} {g.KernelH}x{g.KernelW} @{h}x{w}");
        if (copies < 1) throw new ArgumentOutOfRangeException(nameof(copies), $"copies must be at least 1, got {copies}");
        int oh = g.OutH(h), ow = g.OutW(w);
        long block = (long)frames * g.OutChannels * oh * ow;
        CheckLength(input, (long)frames * g.InChannels * h * w, nameof(input));
        CheckLength(output, block * copies, nameof(output));
        if (frames == 0) return;
        CheckInt(block * copies);
        var (tileH, tileW) = SmallInputTile(oh, ow);
        var p = new SmallInputArgs
        {
            InChannels = g.InChannels, H = h, W = w, OutChannels = g.OutChannels, OH = oh, OW = ow, KH = g.KernelH, KW = g.KernelW,
            StrideH = g.StrideH, StrideW = g.StrideW, PadH = g.PadH, PadW = g.PadW, K = g.InChannels * g.KernelH * g.KernelW,
            TileH = tileH, TileW = tileW, TilesY = (oh + tileH - 1) / tileH, TilesX = (ow + tileW - 1) / tileW,
            ChannelBlocks = (g.OutChannels + GpuKernels.SmallInputChannels - 1) / GpuKernels.SmallInputChannels,
            PatchH = (tileH - 1) * g.StrideH + g.KernelH, PatchW = (tileW - 1) * g.StrideW + g.KernelW,
            HasBias = layer.Bias is null ? 0 : 1, BnCount = layer.BnCount, Copies = copies, CopyStride = (int)block,
        };
        long groups = (long)frames * p.ChannelBlocks * p.TilesY * p.TilesX;
        if (groups > int.MaxValue) throw new QsvitException($"a convolution over {frames:N0} frames is too large for one launch; use a smaller batch");
        _smallInput(new KernelConfig(new Index1D((int)groups), new Index1D(Math.Min(GpuKernels.SmallInputPixels, _acc.MaxNumThreadsPerGroup))),
            input, layer.Weights.View, layer.Taps!.View, layer.Bias?.View ?? _dummy.View, layer.Bn?.View ?? _dummy.View, output, p);
    }

    /// <summary>
    /// Kernel height from which stride-1 depthwise threads take two output rows (<see cref="DepthwiseArgs.Rows"/>). Measured
    /// on an H200 (BENCHMARKS.md): the 7×7 depthwise ran 12–19 % faster, RepConv's BN-padded 3×3 6–12 % slower (a pair
    /// saves a quarter of its loads, and its small maps leave threads idle).
    /// </summary>
    public const int RowPairMinKernel = 5;

    /// <summary>
    /// Sizes a depthwise launch's tiles for about <paramref name="outputs"/> outputs per group: whole planes, several per
    /// group, when a plane is at most half that; else balanced tiles of at most 64 columns. The input tiles fit
    /// <see cref="GpuKernels.DepthwiseTileFloats"/>. Returns the number of groups.
    /// </summary>
    internal static long DepthwiseTiles(ref DepthwiseArgs p, int outputs)
    {
        if (p.OH * p.OW <= outputs / 2)
        {
            p.TileH = p.OH;
            p.TileW = p.OW;
            p.PlanesPerGroup = outputs / (p.OH * p.OW);
        }
        else
        {
            p.TileW = Balanced(p.OW, Math.Min(64, outputs));
            p.TileH = Balanced(p.OH, Math.Max(1, outputs / p.TileW));
            p.PlanesPerGroup = 1;
        }
        while (true)
        {
            p.InTileH = (p.TileH - 1) * p.StrideH + p.KH;
            p.InTileW = (p.TileW - 1) * p.StrideW + p.KW;
            long floats = (long)p.InTileH * p.InTileW;
            if (floats * p.PlanesPerGroup <= GpuKernels.DepthwiseTileFloats) break;
            if (floats <= GpuKernels.DepthwiseTileFloats) p.PlanesPerGroup = (int)(GpuKernels.DepthwiseTileFloats / floats);
            else if (p.TileH > 1) p.TileH = (p.TileH + 1) / 2;
            else p.TileW = (p.TileW + 1) / 2;
        }
        p.Strips = (p.TileW + 3) / 4;
        p.WholePlanes = p.Border == 0 && p.PadH == 0 && p.PadW == 0 && p.TileH == p.OH && p.TileW == p.OW && p.InTileH == p.H && p.InTileW == p.W ? 1 : 0;
        p.TilesY = (p.OH + p.TileH - 1) / p.TileH;
        p.TilesX = (p.OW + p.TileW - 1) / p.TileW;
        return (long)(p.Planes + p.PlanesPerGroup - 1) / p.PlanesPerGroup * p.TilesY * p.TilesX;
    }

    /// <summary>Threads of a <see cref="GpuKernels.DepthwiseStrips{TFma, TTaps}"/> group on a GPU, and the slots (four outputs each) its tiles are sized for.</summary>
    public const int StripThreads = 256;

    /// <summary>Whether a depthwise layer runs <see cref="GpuKernels.DepthwiseStrips{TFma, TTaps}"/>: stride 1, a 3×3 or 7×7 kernel, padding within its reach.</summary>
    internal static bool StripsFit(ConvGeometry g) =>
        g.IsDepthwise && g.StrideH == 1 && g.StrideW == 1 && g.KernelH == g.KernelW && g.KernelH is 3 or 7
        && g.PadH < g.KernelH && g.PadW < g.KernelW;

    /// <summary>
    /// Whether RepConv's BN-padded 3×3 (border 1, no zero padding, stride 1) runs <see cref="GpuKernels.DepthwiseBorder3{TFma}"/>:
    /// a plane's rows of four-output strips fit one group (interiors up to 64 × 16 of them).
    /// </summary>
    internal static bool Border3Fits(ConvGeometry g, int outH, int outW) =>
        g.IsDepthwise && g.KernelH == 3 && g.KernelW == 3 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0
        && (long)outH * ((outW + 3) / 4) <= StripThreads;

    /// <summary>
    /// Whether RepConv's BN-padded 3×3 runs <see cref="GpuKernels.DepthwiseBorder3Planes{TFma}"/> (one thread per plane):
    /// 4 × 4 maps, both views 16-byte aligned. Measured on an H200 (BENCHMARKS.md, tenth session, repconv4) only together
    /// with the fused 1×1 kernels' whole stages (<see cref="PointwiseMmaKernels.WholeStage"/>): CIFAR's 128-channel RepConvs
    /// 4.944 → 4.187 ms a pass; alone under Nsight Compute (caches flushed) 26.5 → 26.9 µs a call, so most of that is theirs.
    /// </summary>
    internal static bool Border3PlanesFit(ConvGeometry g, int outH, int outW, ArrayView<float> input, ArrayView<float> output) =>
        Border3Fits(g, outH, outW) && outH == 4 && outW == 4 && SpikeGemmOps.Aligned16(input) && SpikeGemmOps.Aligned16(output);

    /// <summary>Threads (planes) per group of <see cref="GpuKernels.DepthwiseBorder3Planes{TFma}"/>.</summary>
    public const int Border3PlaneThreads = 256;

    /// <summary>Tests: false runs <see cref="GpuKernels.DepthwiseBorder3{TFma}"/> where <see cref="Border3PlanesFit"/> would take the plane kernel.</summary>
    internal bool BorderPlanes { get; set; } = true;

    /// <summary>Whole planes per group of <see cref="GpuKernels.DepthwiseBorder3{TFma}"/>, as many as fill <paramref name="slots"/> four-output strips. Returns the number of groups.</summary>
    internal static long DepthwiseBorder3Groups(ref DepthwiseArgs p, int slots)
    {
        p.Strips = (p.OW + 3) / 4;
        p.PlanesPerGroup = Math.Max(1, slots / (p.OH * p.Strips));
        p.ChannelsInverse = 1f / p.Channels;
        return (p.Planes + (long)p.PlanesPerGroup - 1) / p.PlanesPerGroup;
    }

    /// <summary>
    /// Outputs per thread of <see cref="GpuKernels.DepthwiseStrips{TFma, TTaps}"/>: 8 for a 7×7 kernel on maps at least 16
    /// wide (14 loads and 7 weights per 56 FMAs instead of 10 and 7 per 28; a strip cut short at the map's edge wastes
    /// at most 7 of 16 columns, 4 of 32 at 28 wide), else 4 (narrow maps fill the group's threads with more planes).
    /// </summary>
    internal static int StripWidth(ConvGeometry g, int outWidth) => g.KernelH == 7 && outWidth >= 16 ? 8 : 4;

    /// <summary>
    /// Tiles of <see cref="GpuKernels.DepthwiseStrips{TFma, TTaps}"/>: strips of <paramref name="width"/> columns, at most
    /// 32 columns per tile row, balanced; rows up to <paramref name="slots"/> slots; whole planes, several per group, when
    /// one tile covers a plane. Input tiles (odd pitch) fit <see cref="GpuKernels.DepthwiseTileFloats"/>, output tiles
    /// <see cref="GpuKernels.DepthwiseOutFloats"/>. Returns the number of groups.
    /// </summary>
    internal static long DepthwiseStripTiles(ref DepthwiseArgs p, int slots, int width)
    {
        p.Strips = Balanced((p.OW + width - 1) / width, 32 / width);
        p.TileW = width * p.Strips;
        p.TileH = Balanced(p.OH, Math.Max(1, slots / p.Strips));
        while (true)
        {
            p.InTileH = p.TileH + p.KH - 1;
            p.InTileW = p.TileW + p.KW - 1;
            p.Pitch = p.InTileW | 1;
            p.OutPitch = p.TileW | 1;
            if ((long)p.InTileH * p.Pitch <= GpuKernels.DepthwiseTileFloats && (long)p.TileH * p.OutPitch <= GpuKernels.DepthwiseOutFloats) break;
            p.TileH = (p.TileH + 1) / 2;
        }
        p.PlaneFloats = p.InTileH * p.Pitch;
        p.ChannelsInverse = 1f / p.Channels;
        p.OutPlaneFloats = p.TileH * p.OutPitch;
        p.PlanesPerGroup = 1;
        if (p.TileH >= p.OH && p.TileW >= p.OW)
            p.PlanesPerGroup = Math.Max(1, Math.Min(slots / (p.TileH * p.Strips),
                Math.Min(GpuKernels.DepthwiseTileFloats / p.PlaneFloats, GpuKernels.DepthwiseOutFloats / p.OutPlaneFloats)));
        p.TilesY = (p.OH + p.TileH - 1) / p.TileH;
        p.TilesX = (p.OW + p.TileW - 1) / p.TileW;
        return (long)(p.Planes + p.PlanesPerGroup - 1) / p.PlanesPerGroup * p.TilesY * p.TilesX;
    }

    /// <summary>Most threads of a <see cref="GpuKernels.DepthwiseBlocks{TFma}"/> group on a GPU (4×4 outputs each).</summary>
    public const int BlockThreads = 256;

    /// <summary>Whether a depthwise layer can run <see cref="GpuKernels.DepthwiseBlocks{TFma}"/>: 7×7, stride 1, zero padding 3.</summary>
    internal static bool BlocksFit(ConvGeometry g) =>
        g.IsDepthwise && g.StrideH == 1 && g.StrideW == 1 && g.KernelH == 7 && g.KernelW == 7 && g.PadH == 3 && g.PadW == 3;

    /// <summary>
    /// Whether a depthwise layer runs <see cref="GpuKernels.DepthwiseBlocks{TFma}"/> rather than the strips kernel: it fits,
    /// its rows are whole 16-byte chunks (width a multiple of 4), and the strips kernel's tiles would compute idle columns
    /// past the map's edge. Measured on an H200 (BENCHMARKS.md, eighth session): 11–17 % faster on the 55M's 112, 56 and
    /// 28 wide maps (strip tiles cover 128, 64, 32 columns), 6–12 % slower on CIFAR's 32, 16 and 8 wide ones (no idle columns).
    /// </summary>
    internal static bool BlocksPay(ConvGeometry g, int outWidth)
    {
        if (!BlocksFit(g) || outWidth % 4 != 0) return false;
        int width = StripWidth(g, outWidth), tileW = width * Balanced((outWidth + width - 1) / width, 32 / width);
        return (outWidth + tileW - 1) / tileW * tileW > outWidth;
    }

    /// <summary>
    /// Threads of a <see cref="GpuKernels.DepthwisePlanes{TFma}"/> group on a GPU (at most; whole planes), and the batches of
    /// planes each group takes (the next batch's loads in flight while the FMAs of one run). Measured on an H200
    /// (BENCHMARKS.md, tenth session, branch <c>sepconv</c>; ms per call, 8 against 4 rows per thread, 256 against 128
    /// threads, 1 against 4 batches): 8 rows, 128 threads and 4 batches were the fastest of the nine on CIFAR's three maps
    /// and the 55M's 56 × 56 (32×32: 0.450 against 0.600 for 256 threads and one batch), 8 % behind 4 rows, 256 threads
    /// and 4 batches on the 55M's 28 × 28 (0.233 against 0.216).
    /// </summary>
    public const int PlaneThreads = 128, PlaneBatchesPerGroup = 4;

    /// <summary>
    /// Whether a depthwise layer on h × w maps runs <see cref="GpuKernels.DepthwisePlanes{TFma}"/> (where its views are
    /// 16-byte aligned): 7×7, stride 1, zero padding 3, rows of whole 16-byte chunks (w a multiple of 4), a plane's eight-row
    /// blocks of four-column strips within <see cref="PlaneThreads"/> and its staged chunks within
    /// <see cref="GpuKernels.DepthwisePlaneChunks"/> (maps up to about 64 × 64). Measured on an H200 (BENCHMARKS.md, tenth
    /// session, branch <c>sepconv</c>), ms per call against the strips or blocks kernel that ran these maps before, every
    /// output the same bit for bit: CIFAR's 32 ch @32×32 ×4000 0.450 / 0.994, 64 ch @16×16 0.240 / 0.554, 128 ch @8×8 0.139
    /// / 0.408; the 55M's 256 ch @56×56 ×128 0.449 / 0.686, 512 ch @28×28 0.233 / 0.310. Its 112 × 112 maps do not fit and
    /// keep the blocks kernel.
    /// </summary>
    internal static bool PlanesFit(ConvGeometry g, int h, int w)
    {
        if (!BlocksFit(g) || w % 4 != 0 || h < 1) return false;
        var p = new DepthwiseArgs { Planes = 1, Channels = 1, H = h, W = w };
        DepthwisePlaneBatches(ref p, PlaneThreads);
        return p.Strips * p.Rows <= PlaneThreads && p.PlaneFloats <= GpuKernels.DepthwisePlaneChunks;
    }

    /// <summary>
    /// Batches of planes of <see cref="GpuKernels.DepthwisePlanes{TFma}"/>: W / 4 strips and ⌈H / 8⌉ row blocks per plane,
    /// staged rows W / 4 + 1 chunks apart, planes H·Pitch + 1 chunks rounded up to ≡ Strips (mod 8) apart, as many planes
    /// per batch as <paramref name="threads"/> threads and <see cref="GpuKernels.DepthwisePlaneChunks"/> hold. H×W must be
    /// set. Returns the number of batches.
    /// </summary>
    internal static long DepthwisePlaneBatches(ref DepthwiseArgs p, int threads)
    {
        p.Strips = p.W / 4;
        p.Rows = (p.H + 7) / 8;
        p.Pitch = p.Strips + 1;
        int chunks = p.H * p.Pitch + 1;
        p.PlaneFloats = chunks + ((p.Strips - chunks) % 8 + 8) % 8;
        p.PlanesPerGroup = Math.Max(1, Math.Min(threads / Math.Max(1, p.Strips * p.Rows), GpuKernels.DepthwisePlaneChunks / p.PlaneFloats));
        p.ChannelsInverse = 1f / p.Channels;
        return (p.Planes + (long)p.PlanesPerGroup - 1) / p.PlanesPerGroup;
    }

    /// <summary>
    /// Tiles of <see cref="GpuKernels.DepthwiseBlocks{TFma}"/>: up to 32 strips of four columns per tile row and
    /// <paramref name="threads"/> blocks of 4×4 outputs per tile, balanced; whole planes, several per group, when one tile
    /// covers a plane. The staged input (six more rows than the tile, a chunk of four columns more on each side) fits
    /// <see cref="GpuKernels.DepthwiseBlockChunks"/>. H×W, OH×OW and KH must be set. Returns the number of groups.
    /// </summary>
    internal static long DepthwiseBlockTiles(ref DepthwiseArgs p, int threads)
    {
        p.Strips = Balanced((p.OW + 3) / 4, 32);
        p.Rows = Balanced((p.OH + 3) / 4, Math.Max(1, threads / p.Strips));
        // Odd pitches: the 16-byte loads of lanes on neighbouring row blocks or planes fall in different banks.
        p.Pitch = (p.Strips + 2) | 1;
        while (((4 * p.Rows + p.KH - 1) * p.Pitch | 1) > GpuKernels.DepthwiseBlockChunks) p.Rows = (p.Rows + 1) / 2;
        p.PlaneFloats = (4 * p.Rows + p.KH - 1) * p.Pitch | 1;
        p.TileW = 4 * p.Strips;
        p.TileH = 4 * p.Rows;
        p.TilesX = (p.OW + p.TileW - 1) / p.TileW;
        p.TilesY = (p.OH + p.TileH - 1) / p.TileH;
        p.PlanesPerGroup = p.TilesX == 1 && p.TilesY == 1
            ? Math.Max(1, Math.Min(threads / (p.Strips * p.Rows), GpuKernels.DepthwiseBlockChunks / p.PlaneFloats))
            : 1;
        p.ChannelsInverse = 1f / p.Channels;
        return (long)(p.Planes + p.PlanesPerGroup - 1) / p.PlanesPerGroup * p.TilesY * p.TilesX;
    }

    /// <summary>The smallest tile of at most <paramref name="max"/> that covers <paramref name="n"/> in as few tiles as tiles of <paramref name="max"/> do.</summary>
    private static int Balanced(int n, int max)
    {
        int tiles = (n + max - 1) / max;
        return (n + tiles - 1) / tiles;
    }

    /// <summary>
    /// 1×1 layers whose maps have fewer pixels than this run as one GEMM over every pixel of a chunk of frames
    /// (<see cref="PixelMajor"/>): per frame, the GEMM's n (the pixels) is too short for cuBLAS's batched kernels (CIFAR's
    /// 4×4 maps: about 10 TFLOP/s).
    /// </summary>
    public const int PixelMajorBelow = 256;

    /// <summary>Whether a 1×1 layer runs pixel-major: input transposed to [pixels, C], one GEMM W·Xᵀ → [Cout, pixels], turned back in the epilogue.</summary>
    public static bool PixelMajor(ConvGeometry g, int h, int w) => g.IsPointwise && (long)h * w < PixelMajorBelow;

    /// <summary>
    /// A dense conv through a library GEMM (<paramref name="gemm"/>: C[f] = A·B[f] over a run of frames, row-major, strides
    /// in elements): 1×1 stride-1 layers read the input in place, or on small maps (<see cref="PixelMajor"/>) run as one
    /// GEMM per chunk of frames over the transposed input in <paramref name="columns"/>; other layers are im2col'd in
    /// chunks of frames into <paramref name="columns"/> (at most <paramref name="columnFloats"/> floats). Then bias and
    /// BNs in one pass.
    /// </summary>
    public void ConvByGemm(GpuConv layer, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output,
        ArrayView<float> columns, long columnFloats, LibraryGemm gemm)
    {
        var g = layer.Geometry;
        Debug.Assert(!g.IsDepthwise && g.Groups == 1);
        int oh = g.OutH(h), ow = g.OutW(w), ohw = oh * ow, k = g.InChannels * g.KernelH * g.KernelW;
        CheckLength(input, (long)frames * g.InChannels * h * w, nameof(input));
        CheckLength(output, (long)frames * g.OutChannels * ohw, nameof(output));
        if (frames == 0) return;
        if (PixelMajor(g, h, w))
        {
            ConvPixelMajor(layer, input, frames, ohw, output, columns, columnFloats, gemm);
            return;
        }
        if (g.IsPointwise)
            gemm(g.OutChannels, ohw, k, layer.Weights.View, input, (long)k * ohw, output, (long)g.OutChannels * ohw, frames);
        else
        {
            long perFrame = (long)k * ohw;
            int chunk = (int)Math.Clamp(columnFloats / perFrame, 1, frames);
            for (int f0 = 0; f0 < frames; f0 += chunk)
            {
                int n = Math.Min(chunk, frames - f0);
                CheckInt(n * perFrame);
                _im2col((int)(n * perFrame), input, layer.Taps!.View, columns, f0, k, g.InChannels, h, w, ow, ohw, g.StrideH, g.StrideW, g.PadH, g.PadW);
                gemm(g.OutChannels, ohw, k, layer.Weights.View, columns, perFrame, output.SubView((long)f0 * g.OutChannels * ohw), (long)g.OutChannels * ohw, n);
            }
        }
        long len = (long)frames * g.OutChannels * ohw;
        if (layer.Bias is null && layer.BnCount == 0) return;
        CheckInt(len);
        _epilogue((int)len, output, layer.Bias?.View ?? _dummy.View, layer.Bn?.View ?? _dummy.View, layer.Bias is null ? 0 : 1, layer.BnCount, g.OutChannels, ohw);
    }

    /// <summary>
    /// A small-map 1×1 layer: per chunk of frames, xt[pixels, C] = the input transposed, C[Cout, pixels] = W·xtᵀ (one
    /// GEMM), then y = C turned back to [frames, Cout, pixels] with bias and BNs (<see cref="GpuKernels.RowsEpilogue{TFma}"/>).
    /// </summary>
    private void ConvPixelMajor(GpuConv layer, ArrayView<float> input, int frames, int ohw, ArrayView<float> output,
        ArrayView<float> columns, long columnFloats, LibraryGemm gemm)
    {
        var g = layer.Geometry;
        int k = g.InChannels, m = g.OutChannels;
        long perFrame = (long)(k + m) * ohw;
        int chunk = (int)Math.Clamp(columnFloats / perFrame, 1, frames);
        int groupSize = Math.Min(_acc.MaxNumThreadsPerGroup, 256);
        for (int f0 = 0; f0 < frames; f0 += chunk)
        {
            int n = Math.Min(chunk, frames - f0), pixels = n * ohw;
            CheckInt(perFrame * n);
            var xt = columns.SubView(0, (long)pixels * k);
            var rows = columns.SubView((long)pixels * k, (long)pixels * m);
            int tiles = (pixels + GpuKernels.TransposeTile - 1) / GpuKernels.TransposeTile * ((k + GpuKernels.TransposeTile - 1) / GpuKernels.TransposeTile);
            _toPixelMajor(new KernelConfig(new Index1D(tiles), new Index1D(groupSize)), input, xt, f0, pixels, k, ohw);
            gemm(m, pixels, k, layer.Weights.View, xt, 0, rows, 0, 1, transB: true);
            int per = ohw % 4 == 0 ? 4 : 1;
            _rowsEpilogue(n * m * ohw / per, rows, output, layer.Bias?.View ?? _dummy.View, layer.Bn?.View ?? _dummy.View, layer.Bias is null ? 0 : 1,
                layer.BnCount, m, ohw, pixels, f0, per);
        }
    }

    /// <summary>Floats of columns a chunk of one frame needs for this layer (im2col, or the transposed input and the GEMM's result of a pixel-major 1×1; 0 for layers read in place).</summary>
    public static long ColumnsPerFrame(ConvGeometry g, int h, int w) =>
        PixelMajor(g, h, w) ? (long)(g.InChannels + g.OutChannels) * h * w
        : g.IsPointwise ? 0 : (long)g.InChannels / g.Groups * g.KernelH * g.KernelW * g.OutH(h) * g.OutW(w);

    /// <summary>
    /// Strided batched GEMM, one FMA chain over k in order per element: C(z, m, n) = alpha·(Σ_k A(z, m, k)·B(z, k, n)
    /// [+ rowBias[m] after the sum]). Element addresses: a[z·aBatch + m·ldaM + k·ldaK], b[z·bBatch + k·ldbK + n·ldbN],
    /// c[z·cBatch + m·ldcM + n·ldcN].
    /// </summary>
    public void Gemm(int batches, int m, int n, int k,
        ArrayView<float> a, int aBatch, int ldaM, int ldaK,
        ArrayView<float> b, int bBatch, int ldbK, int ldbN,
        ArrayView<float> c, int cBatch, int ldcM, int ldcN,
        ArrayView<float> rowBias = default, float alpha = 1f)
    {
        if (batches == 0 || m == 0 || n == 0) return;
        Debug.Assert(k > 0);
        var p = new GemmArgs
        {
            M = m, N = n, K = k, Batches = batches,
            ABatch = aBatch, LdaM = ldaM, LdaK = ldaK, BBatch = bBatch, LdbK = ldbK, LdbN = ldbN,
            CBatch = cBatch, CImage = 0, Cols = n, LdcM = ldcM, LdcN = ldcN,
            Segment = k, BiasMode = rowBias.IsValid ? 2 : 0, RowsPerBatch = 0, Alpha = alpha,
        };
        LaunchGemm(a, b, _dummyInt.View, c, rowBias.IsValid ? rowBias : _dummy.View, _dummy.View, p);
    }

    private void LaunchGemm(ArrayView<float> a, ArrayView<float> b, ArrayView<int> taps, ArrayView<float> c, ArrayView<float> bias,
        ArrayView<float> bn, GemmArgs p)
    {
        p.GroupEdge = _groupEdge;
        int tile = 4 * _groupEdge;
        p.NTiles = (p.N + tile - 1) / tile;
        int mTiles = (p.M + tile - 1) / tile;
        long gridX = (long)p.NTiles * p.Batches;
        if (gridX > int.MaxValue || mTiles > 65535) throw new QsvitException($"a GEMM of {p.Batches} x {p.M} x {p.N} is too large for one launch; use a smaller batch");
        var config = new KernelConfig(new Index2D((int)gridX, mTiles), new Index2D(_groupEdge * _groupEdge, 1));
        _gemm(config, a, b, taps, c, bias, bn, p);
    }

    /// <summary>MultiStepLIF over [timesteps, perStep]; adds the spike count to counts[slot] when counts is given.</summary>
    public void Lif(ArrayView<float> input, ArrayView<float> spikes, long length, int timesteps, float threshold,
        ArrayView<float> membrane, ArrayView<long> counts, int slot)
    {
        if (length % timesteps != 0) throw new ArgumentException($"length {length} is not a multiple of T = {timesteps}");
        CheckLength(input, length, nameof(input));
        CheckLength(spikes, length, nameof(spikes));
        if (membrane.IsValid) CheckLength(membrane, length, nameof(membrane));
        if (length == 0) return;
        CheckInt(length);
        int perStep = (int)(length / timesteps), groups = (perStep + _reduceThreads - 1) / _reduceThreads;
        var config = new KernelConfig(new Index1D(groups), new Index1D(_reduceThreads));
        _lif(config, input, spikes, membrane.IsValid ? membrane : _dummy.View, counts.IsValid ? counts : _dummyLong.View,
            perStep, timesteps, threshold, membrane.IsValid ? 1 : 0, counts.IsValid ? slot : -1);
    }

    /// <summary>x[i] += y[i], i &lt; length.</summary>
    public void Add(ArrayView<float> x, ArrayView<float> y, long length)
    {
        CheckLength(x, length, nameof(x));
        CheckLength(y, length, nameof(y));
        if (length == 0) return;
        CheckInt(length + 3);
        _add((int)((length + 3) / 4), x, y, (int)length);
    }

    /// <summary>Whether <see cref="SmallAttention"/> takes planes of d rows and <paramref name="tokens"/> tokens: K, V, Q and kv fit a group's shared memory.</summary>
    public static bool SmallAttentionFits(int d, int tokens) =>
        3L * d * GpuKernels.SmallAttentionPitch(tokens) + (long)d * d <= GpuKernels.SmallAttentionFloats && (long)d * tokens < 1 << 21;

    /// <summary>SDSA over <paramref name="planes"/> (frame, head) planes of spikes, one group each (<see cref="GpuKernels.SmallAttention"/>).</summary>
    public void SmallAttention(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> output, int planes, int d, int tokens, float scale)
    {
        if (!SmallAttentionFits(d, tokens)) throw new ArgumentException($"planes of {d} x {tokens} do not fit the small attention kernel");
        long n = (long)planes * d * tokens;
        CheckLength(q, n, nameof(q));
        CheckLength(k, n, nameof(k));
        CheckLength(v, n, nameof(v));
        CheckLength(output, n, nameof(output));
        if (planes == 0) return;
        CheckInt(n);
        _smallAttention(new KernelConfig(new Index1D(planes), new Index1D(Math.Min(256, _acc.MaxNumThreadsPerGroup))), q, k, v, output, d, tokens, scale);
    }

    /// <summary>Whether <see cref="SmallAttentionLif"/> takes planes of d rows and <paramref name="tokens"/> tokens: its shared memory holds them with four membranes per element.</summary>
    public static bool SmallAttentionLifFits(int d, int tokens) =>
        3L * d * GpuKernels.SmallAttentionPitch(tokens) + (long)d * d + 4L * d * tokens <= GpuKernels.SmallAttentionLifFloats;

    /// <summary>
    /// q_lif, k_lif, v_lif, SDSA and attn_lif in one kernel (<see cref="GpuKernels.SmallAttentionLif"/>): one group per
    /// (image, head), its T frames in turn; spikes [frames, C, N] of attn_lif. With <paramref name="counts"/>, each layer's
    /// spikes are added to counts[slot + 0 … 3].
    /// </summary>
    public void SmallAttentionLif(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> spikes, int frames, int timesteps,
        int heads, int d, int tokens, float scale, float threshold, float attentionThreshold, ArrayView<long> counts, int slot)
    {
        if (!SmallAttentionLifFits(d, tokens)) throw new ArgumentException($"planes of {d} x {tokens} do not fit the fused attention kernel");
        if (timesteps < 1 || frames % timesteps != 0) throw new ArgumentException($"{frames} frames are not T = {timesteps} steps of a batch");
        long n = (long)frames * heads * d * tokens;
        CheckLength(q, n, nameof(q));
        CheckLength(k, n, nameof(k));
        CheckLength(v, n, nameof(v));
        CheckLength(spikes, n, nameof(spikes));
        if (frames == 0) return;
        CheckInt(n);
        int batch = frames / timesteps;
        _smallAttentionLif(new KernelConfig(new Index1D(batch * heads), new Index1D(Math.Min(256, _acc.MaxNumThreadsPerGroup))),
            q, k, v, spikes, counts.IsValid ? counts : _dummyLong.View, batch, heads, d, tokens, timesteps, scale, threshold, attentionThreshold,
            counts.IsValid ? slot : -1);
    }

    /// <summary>
    /// Tokens per tile of <see cref="BitAttentionLif"/> for heads of d rows, or 0 where its kernels do not take the planes
    /// (more than 256 tokens or 80 rows, or the tile's membranes outgrow shared memory): the fewest tiles that fit, evened out.
    /// </summary>
    public static int BitAttentionTileTokens(int d, int tokens)
    {
        const int K = BitAttentionKernels.TileCapacity;
        if (d < 1 || tokens < 1 || tokens > 256 || (long)d * d > BitAttentionKernels.KvCapacity || 32 * BitAttentionKernels.MaskWords < d
            || (long)d * BitAttentionKernels.WordPitch((tokens + 31) / 32) > BitAttentionKernels.WordsCapacity)
            return 0;
        int most = Math.Min(BitAttentionKernels.MaxTileTokens, K / d);
        if ((most | 1) * d > K) most--; // the membranes' row pitch is the tile made odd
        if (most < 1) return 0;
        int tiles = (tokens + most - 1) / most;
        return (tokens + tiles - 1) / tiles;
    }

    /// <summary>Floats of the packed q, k, v spikes <see cref="BitAttentionLif"/> needs as workspace.</summary>
    public static long BitAttentionWorkspace(int frames, int channels, int tokens) => 3L * frames * channels * ((tokens + 31) / 32);

    /// <summary>
    /// q_lif, k_lif, v_lif, SDSA and attn_lif on planes too large for <see cref="SmallAttentionLif"/> (<see cref="BitAttentionKernels"/>):
    /// the three LIFs into packed spike words in <paramref name="workspace"/> (<see cref="BitAttentionWorkspace"/> floats),
    /// then one group per (image, head, token tile) over its T frames; spikes [frames, C, N] of attn_lif. With
    /// <paramref name="counts"/>, each layer's spikes are added to counts[slot + 0 … 3].
    /// </summary>
    public void BitAttentionLif(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> spikes, ArrayView<float> workspace,
        int frames, int timesteps, int heads, int d, int tokens, float scale, float threshold, float attentionThreshold, ArrayView<long> counts, int slot)
    {
        int tileTokens = BitAttentionTileTokens(d, tokens);
        if (tileTokens == 0) throw new ArgumentException($"planes of {d} x {tokens} do not fit the bit-packed attention kernels");
        if (timesteps < 1 || frames % timesteps != 0) throw new ArgumentException($"{frames} frames are not T = {timesteps} steps of a batch");
        int channels = heads * d, words = (tokens + 31) / 32;
        long n = (long)frames * channels * tokens;
        CheckLength(q, n, nameof(q));
        CheckLength(k, n, nameof(k));
        CheckLength(v, n, nameof(v));
        CheckLength(spikes, n, nameof(spikes));
        CheckLength(workspace, BitAttentionWorkspace(frames, channels, tokens), nameof(workspace));
        if (frames == 0) return;
        CheckInt(n);
        int batch = frames / timesteps, rows = batch * channels, rowsPerGroup = Math.Max(1, BitAttentionKernels.BitsElements / tokens);
        var bits = workspace.Cast<int>();
        ArrayView<long> countView = counts.IsValid ? counts : _dummyLong.View;
        int threads = Math.Min(256, _acc.MaxNumThreadsPerGroup);
        _spikeBits(new KernelConfig(new Index1D((rows + rowsPerGroup - 1) / rowsPerGroup), new Index1D(threads)),
            q, k, v, bits, countView, rows, tokens, words, rowsPerGroup, timesteps, threshold, counts.IsValid ? slot : -1);
        int tiles = (tokens + tileTokens - 1) / tileTokens;
        _bitAttention(new KernelConfig(new Index1D(batch * heads * tiles), new Index1D(threads)),
            bits, spikes, countView, batch, heads, d, tokens, words, tiles, tileTokens, timesteps, scale, attentionThreshold, counts.IsValid ? slot + 3 : -1);
    }

    /// <summary>x[i] += y[i], then the LIF over [timesteps, length / timesteps] of x into spikes (no recorder).</summary>
    public void AddLif(ArrayView<float> x, ArrayView<float> y, ArrayView<float> spikes, long length, int timesteps, float threshold)
    {
        if (length % timesteps != 0) throw new ArgumentException($"length {length} is not a multiple of T = {timesteps}");
        CheckLength(x, length, nameof(x));
        CheckLength(y, length, nameof(y));
        CheckLength(spikes, length, nameof(spikes));
        if (length == 0) return;
        CheckInt(length);
        int perStep = (int)(length / timesteps);
        _addLif(perStep, x, y, spikes, perStep, timesteps, threshold);
    }

    /// <summary>x[t·block ..] = x[0 .. block) for t = 1 .. times − 1.</summary>
    public void RepeatBlock(ArrayView<float> x, long block, int times)
    {
        CheckLength(x, block * times, nameof(x));
        if (times <= 1 || block == 0) return;
        CheckInt(block * times);
        _repeat((int)(block * (times - 1)), x, (int)block);
    }

    /// <summary>padded[frames, C, h + 2·pad, w + 2·pad]: inner in the centre, values[c] in the border.</summary>
    public void PadBorder(ArrayView<float> inner, int frames, int channels, int h, int w, int pad, ArrayView<float> values, ArrayView<float> padded)
    {
        long len = (long)frames * channels * (h + 2 * pad) * (w + 2 * pad);
        CheckLength(inner, (long)frames * channels * h * w, nameof(inner));
        CheckLength(padded, len, nameof(padded));
        CheckLength(values, channels, nameof(values));
        if (len == 0) return;
        CheckInt(len);
        _pad((int)len, inner, values, padded, channels, h, w, pad);
    }

    /// <summary>output[r] = Σ_s x[r, s] · (1 / spatial).</summary>
    public void SpatialMean(ArrayView<float> x, int rows, int spatial, ArrayView<float> output)
    {
        CheckLength(x, (long)rows * spatial, nameof(x));
        CheckLength(output, rows, nameof(output));
        if (rows == 0) return;
        _mean(rows, x, output, spatial, 1f / spatial);
    }

    /// <summary>logits[b, j] = mean over T of head[t·batch + b, j], and with kd the mean of both heads.</summary>
    public void MeanOverTime(ArrayView<float> head, ArrayView<float> headKd, ArrayView<float> logits, int batch, int classes, int timesteps)
    {
        CheckLength(logits, (long)batch * classes, nameof(logits));
        if (batch == 0 || classes == 0) return;
        _meanOverTime(batch * classes, head, headKd.IsValid ? headKd : head, logits, batch, classes, timesteps, headKd.IsValid ? 1 : 0);
    }

    /// <summary>
    /// sums[slot] += Σ (x − reference)² (Σ x² without a reference) in double, and mismatches[slot] += the number of
    /// positions where spikes and refSpikes differ (when both are given); a fixed-order, deterministic reduction.
    /// </summary>
    public void SquaredDifference(ArrayView<float> x, ArrayView<float> reference, long length, ArrayView<float> spikes, ArrayView<float> refSpikes,
        ArrayView<double> sums, ArrayView<long> mismatches, int slot)
    {
        CheckLength(x, length, nameof(x));
        if (length == 0) return;
        CheckInt(length);
        int groups = (int)((length + ReduceChunk - 1) / ReduceChunk);
        if (_partialBuffer is null || _partialBuffer.Length < groups)
        {
            _acc.Synchronize(); // the old buffer may still be read by queued work
            _partialBuffer?.Dispose();
            _partialBuffer = _acc.Allocate1D<double>(Math.Max(groups, 64));
        }
        bool hasSpikes = spikes.IsValid && refSpikes.IsValid;
        var config = new KernelConfig(new Index1D(groups), new Index1D(_reduceThreads));
        _partials(config, x, reference.IsValid ? reference : x, reference.IsValid ? 1 : 0,
            hasSpikes ? spikes : _dummy.View, hasSpikes ? refSpikes : _dummy.View, hasSpikes ? 1 : 0,
            (int)length, ReduceChunk, _partialBuffer.View, mismatches.IsValid ? mismatches : _dummyLong.View, mismatches.IsValid ? slot : 0);
        _sumPartials(1, _partialBuffer.View, groups, sums, slot);
    }

    private static void CheckLength<T>(ArrayView<T> view, long needed, string name) where T : unmanaged
    {
        if (!view.IsValid && needed > 0) throw new ArgumentException($"{name} is empty, needs {needed} elements", name);
        if (view.Length < needed) throw new ArgumentException($"{name} has {view.Length} elements, needs {needed}", name);
    }

    private static void CheckInt(long length)
    {
        if (length > int.MaxValue) throw new QsvitException($"a tensor of {length:N0} elements is too large for the CUDA kernels (2^31 limit); use a smaller batch");
    }

    public void Dispose()
    {
        _dummy.Dispose();
        _dummyInt.Dispose();
        _dummyLong.Dispose();
        _partialBuffer?.Dispose();
    }
}
