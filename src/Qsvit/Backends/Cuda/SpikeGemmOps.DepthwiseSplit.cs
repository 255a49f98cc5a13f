using ILGPU;
using ILGPU.Runtime;

namespace Qsvit.Backends.Cuda;

/// <summary>RepConv's body with its depthwise 3×3 inside the real-input 1×1's packing (<see cref="DepthwiseSplitKernels"/>).</summary>
internal sealed partial class SpikeGemmOps
{
    /// <summary>Loaded on first use (only RepConvs on maps that <see cref="DepthwiseSplitFits"/> run it).</summary>
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<ushort>, DepthwiseSplitArgs>? _depthwiseSplit;

    /// <summary>
    /// Whether RepConv's depthwise 3×3 (BN-padded by 1) and real-input 1×1 on h × w maps can run as
    /// <see cref="DepthwiseSplit"/>: the real layer's codes on the packed bf16 path (not the fused kernel), the depthwise
    /// conv one that <see cref="GpuKernels.DepthwiseBorder3{TFma}"/> runs today (its FMA chain is the one reproduced),
    /// over the real layer's input channels, and eight padded planes fitting a group's shared memory.
    /// </summary>
    public bool DepthwiseSplitFits(GpuConv depthwise, GpuSpikeConv real, int h, int w) =>
        real.RealInput && !Fused(real) && depthwise.Geometry.InChannels == real.Geometry.InChannels && GpuOps.Border3Fits(depthwise.Geometry, h, w)
        && DepthwiseSplitKernels.BlockChannels(h, w, out _) > 0;

    /// <summary>
    /// Whether the first 1×1 (spikes in) hands <see cref="DepthwiseSplit"/> its int32 sums rather than its output map: it
    /// runs the packed int8 path (<see cref="Conv"/> neither fused nor TF32 in place) with one digit (sums of one row each).
    /// </summary>
    public bool SumsFeedDepthwise(GpuSpikeConv first, int frames, int h, int w) =>
        first.Integer && first.Pointwise && first.Parts == 1 && !InPlace(first, frames, h, w, 0);

    /// <summary>The first 1×1's arguments over a chunk from frame <paramref name="f0"/>: its packing and its epilogue (which the depthwise kernel runs).</summary>
    private static SpikeGemmArgs FirstArgs(GpuSpikeConv first, int f0, long rows, long valid, int hw) => new()
    {
        Frame0 = f0, Rows = (int)rows, InChannels = first.Geometry.InChannels, Cp = first.Cp, M = first.Geometry.OutChannels, Parts = first.Parts,
        HasBias = first.Bias is null ? 0 : 1, BnCount = first.BnCount, PackRows = (int)rows, PackValid = (int)valid, PackPlane = hw, PackCopies = 1,
    };

    /// <summary>
    /// <paramref name="source"/>'s spikes (all <paramref name="frames"/>) packed as <see cref="DepthwiseSplit"/> packs them for
    /// <paramref name="first"/> in one chunk, into <paramref name="firstPacked"/> (<see cref="FirstFloats"/> of the frames):
    /// for several first 1×1s over the same spikes (<see cref="CudaBackend.RepConvs"/>).
    /// </summary>
    public void PackFirst(GpuSpikeConv first, ArrayView<float> source, ArrayView<float> firstPacked, int frames, int h, int w)
    {
        long valid = (long)frames * h * w;
        PackS8(source, firstPacked.Cast<sbyte>(), FirstArgs(first, 0, Rows(valid), valid, h * w));
    }

    /// <summary>Floats of workspace the first 1×1's packed spikes and int32 sums take for chunks of <paramref name="chunk"/> frames (<see cref="SumsFeedDepthwise"/>).</summary>
    public static (long Packed, long Sums) FirstFloats(GpuSpikeConv first, int chunk, int h, int w)
    {
        long rows = Rows((long)chunk * h * w);
        return (Align(rows * first.Cp / 4), first.GemmRows * rows);
    }

    /// <summary>
    /// RepConv's depthwise 3×3 (border values <paramref name="border"/>) and real-input 1×1 over the first 1×1's result, in
    /// chunks of <paramref name="chunk"/> frames (the real layer's <see cref="Plan"/>, so its GEMMs are today's): with
    /// <paramref name="first"/>, its spikes <paramref name="source"/> are packed and summed by its int8 GEMM into
    /// <paramref name="firstSums"/> per chunk (<see cref="SumsFeedDepthwise"/>) and its epilogue runs in the depthwise
    /// kernel; without, <paramref name="source"/> is its output map. The kernel writes the real layer's bf16 columns, then
    /// its bf16 GEMM and epilogue run as in <see cref="Conv"/>: the output is the three ops' bit for bit.
    /// </summary>
    /// <param name="packedAlready">The first 1×1's spikes are in <paramref name="firstPacked"/> already (<see cref="PackFirst"/>, one chunk).</param>
    public void DepthwiseSplit(GpuSpikeConv? first, ArrayView<float> source, ArrayView<float> firstPacked, ArrayView<float> firstSums,
        GpuConv depthwise, ArrayView<float> border, GpuSpikeConv real, int frames, int h, int w, ArrayView<float> output,
        ArrayView<float> columns, ArrayView<float> sums, int chunk, bool packedAlready = false)
    {
        if (packedAlready && (first is null || chunk < frames)) throw new ArgumentException("spikes packed ahead need the first 1×1 and one chunk", nameof(packedAlready));
        RequireViews(real, source, output, frames, h, w);
        _depthwiseSplit ??= _acc.AcceleratorType == AcceleratorType.Cuda
            ? _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<ushort>, DepthwiseSplitArgs>(DepthwiseSplitKernels.Run<ContractedFma>)
            : _acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<ushort>, DepthwiseSplitArgs>(DepthwiseSplitKernels.Run<ExactFma>);
        int hw = h * w, m = real.Geometry.OutChannels, blockChannels = DepthwiseSplitKernels.BlockChannels(h, w, out int pitch);
        var unused = real.Scales!.View; // stands in for an absent bias or BN table (never read)
        var cols = columns.Cast<ushort>();
        for (int f0 = 0; f0 < frames; f0 += chunk)
        {
            int n = Math.Min(chunk, frames - f0);
            long valid = (long)n * hw, rows = Rows(valid);
            if (rows * real.GemmK > int.MaxValue / 2 || (long)m * rows > int.MaxValue || (first is not null && (long)first.GemmRows * rows > int.MaxValue))
                throw new QsvitException($"a RepConv chunk of {n} frames is too large for one launch; use a smaller batch");
            var a = default(SpikeGemmArgs);
            if (first is not null)
            {
                // The first 1×1's spikes packed into int8 columns and its int8 GEMM, as Conv runs them; its epilogue runs in the kernel below.
                a = FirstArgs(first, f0, rows, valid, hw);
                var packed = firstPacked.Cast<sbyte>();
                if (!packedAlready) PackS8(source, packed, a);
                GemmS8(first, packed, firstSums.Cast<int>(), (int)rows);
            }
            var d = new DepthwiseSplitArgs
            {
                Channels = real.Geometry.InChannels, Cp = real.Cp, H = h, W = w, HW = hw, PaddedW = w + 2, PaddedHW = (h + 2) * (w + 2),
                Pitch = pitch, BlockChannels = blockChannels, BlockShift = System.Numerics.BitOperations.Log2((uint)blockChannels),
                Blocks = (real.Cp + blockChannels - 1) / blockChannels, Frames = n, Frame0 = f0, Valid = (int)valid, Rows = (int)rows,
                FromSums = first is null ? 0 : 1, Quads = hw % 4 == 0 && Aligned16(first is null ? source : firstSums) ? 1 : 0, DwBias = depthwise.Bias is null ? 0 : 1, DwBnCount = depthwise.BnCount,
                InvPaddedHW = 1f / ((h + 2) * (w + 2)), InvPaddedW = 1f / (w + 2), InvW = 1f / w,
                InvQuads = 1f / Math.Max(1, hw / 4), InvPerimeter = 1f / (2 * (w + 2) + 2 * h),
            };
            _depthwiseSplit(new KernelConfig(new Index1D(n * d.Blocks), new Index1D(Math.Min(_group, DepthwiseSplitKernels.GroupThreads))),
                first is null ? source : firstSums, (first ?? real).Scales!.View, first?.Bias?.View ?? unused, first?.Bn?.View ?? unused, a,
                depthwise.Weights.View, depthwise.Bias?.View ?? unused, depthwise.Bn?.View ?? unused, border, cols, d);
            // The real layer's bf16 GEMM and scaled epilogue, as Conv runs them on these columns.
            var p = new SpikeGemmArgs
            {
                Frame0 = f0, Rows = (int)rows, M = m, OHW = hw, Parts = 1, HasBias = real.Bias is null ? 0 : 1, BnCount = real.BnCount,
                PerThread = hw % 4 == 0 && Aligned16(output) && Aligned16(sums) ? 4 : 1,
            };
            GemmBf16(real, cols, sums, (int)rows);
            _epilogueScaled((int)((long)n * m * hw / p.PerThread), sums, output, real.Scales.View, real.Bias?.View ?? sums, real.Bn?.View ?? sums, p);
        }
    }
}
