using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>ConvBlock's 3×3 → LIF → 3×3 as one kernel (<see cref="ConvChainKernels"/>).</summary>
internal sealed partial class SpikeGemmOps
{
    /// <summary>Loaded on first use (only chains that <see cref="ConvChain"/> takes run it).</summary>
    private Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, ConvChainArgs>? _convChain;
    /// <summary>Whether <see cref="_convChain"/> launches with groups of this many warps, by warps.</summary>
    private readonly Dictionary<int, bool> _convChainLaunches = new();

    /// <summary>
    /// Whether conv 3×3 → LIF → conv 3×3 (<paramref name="first"/>, <paramref name="second"/>: IBackend.ConvLifConv) runs
    /// as the fused kernel: two integer 3×3 stride-1 pad-1 layers of one int8 digit each that chain, the int8 mma kernels
    /// available (as for <see cref="Mlp"/>) and the mode not one that pins the 3×3 layers' engine, T steps that tile a
    /// lane's columns, a call that fits one launch, stagings that fit shared memory (<see cref="ConvChainKernels.Plan"/>),
    /// groups that this accelerator launches, and as <see cref="ConvChainKernels.FusedPays"/> says with cuBLAS (always without).
    /// </summary>
    public bool ConvChain(GpuSpikeConv first, GpuSpikeConv second, int frames, int h, int w, int timesteps)
    {
        if (_mlp is null || _mode is not (SpikeInputGemm.TensorCores or SpikeInputGemm.TensorCoresPointwiseCublas or SpikeInputGemm.TensorCoresRealFused
                or SpikeInputGemm.TensorCoresTf32Pointwise)
            || !Chainable(first) || !Chainable(second) || first.Geometry.OutChannels != second.Geometry.InChannels
            || first.Geometry.InChannels > ConvChainKernels.MaxInChannels
            || timesteps <= 0 || !PointwiseMmaKernels.StepsFit(timesteps) || frames % timesteps != 0
            || !FitsOneLaunch(first, frames, h, w) || !FitsOneLaunch(second, frames, h, w)
            || !ConvChainKernels.Plan(first.Cp, second.Cp, h, w, timesteps, out _, out _, out _))
            return false;
        int warps = ConvChainKernels.WarpsFor(second.Geometry.OutChannels, timesteps);
        if (warps > ConvChainKernels.MaxWarps || (_blas is not null && !ConvChainKernels.FusedPays(h, w))) return false;
        return ConvChainLaunches(warps);
    }

    /// <summary>An integer 3×3 stride-1 pad-1 dense layer of one int8 digit over spikes.</summary>
    private static bool Chainable(GpuSpikeConv layer) =>
        layer.Integer && layer.Parts == 1 && !layer.RealInput && layer.Geometry is { KernelH: 3, KernelW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, Groups: 1 };

    private Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, ConvChainArgs> ConvChainKernel() =>
        _convChain ??= _acc.AcceleratorType == AcceleratorType.Cuda
            ? _acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, ConvChainArgs>(ConvChainKernels.Chain<ContractedFma>)
            : _acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, ConvChainArgs>(ConvChainKernels.Chain<ExactFma>);

    /// <summary>Whether a group of <paramref name="warps"/> warps launches here (on ILGPU's CPU accelerator one thread plays every lane).</summary>
    private bool ConvChainLaunches(int warps) =>
        _acc.AcceleratorType != AcceleratorType.Cuda || ChainLaunches(_convChainLaunches, () => ConvChainKernel().GetKernel(), warps);

    /// <summary>
    /// conv 3×3 → LIF → conv 3×3 as one launch (<see cref="ConvChain"/> must hold): input[frames, C, h, w] (spikes) into
    /// output[frames, M, h, w], the hidden spikes never in memory; the output is that of <see cref="Conv"/> with the fused
    /// LIF, then <see cref="Conv"/>, bit for bit. With <paramref name="countSlot"/> ≥ 0 the hidden spikes are added to
    /// <paramref name="counts"/>[countSlot] (a spike counter).
    /// </summary>
    public void RunConvChain(GpuSpikeConv first, GpuSpikeConv second, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output,
        int timesteps, float threshold, ArrayView<long> counts = default, int countSlot = -1)
    {
        Debug.Assert(ConvChain(first, second, frames, h, w, timesteps));
        var (conv1, conv2) = ChainArgs(first, second, input, output, frames, h, w, timesteps, threshold);
        ConvChainKernels.Plan(first.Cp, second.Cp, h, w, timesteps, out int inStride, out int hiddenStride, out int chunk);
        int batch = frames / timesteps, warps = ConvChainKernels.WarpsFor(second.Geometry.OutChannels, timesteps);
        int inPositions = (Math.Min(ConvChainKernels.HiddenSide, h) + 2) * (Math.Min(ConvChainKernels.HiddenSide, w) + 2);
        var a = new ConvChainArgs
        {
            First = conv1,
            Second = conv2,
            H = h, W = w,
            TilesX = (w + ConvChainKernels.TileSide - 1) / ConvChainKernels.TileSide,
            TilesY = (h + ConvChainKernels.TileSide - 1) / ConvChainKernels.TileSide,
            StepShift = System.Numerics.BitOperations.Log2((uint)timesteps),
            InStride = inStride, HiddenStride = hiddenStride, HiddenAt = inPositions * timesteps * inStride,
            Chunk = chunk, Warps = warps, CountSlot = countSlot,
        };
        long groups = (long)batch * a.TilesX * a.TilesY;
        var unused1 = first.Scales!.View; // stands in for an absent bias or BN table (never read)
        var unused2 = second.Scales!.View;
        int groupSize = _acc.AcceleratorType == AcceleratorType.Cuda ? warps * PointwiseMmaKernels.Lanes : 1;
        ConvChainKernel()(new KernelConfig(new Index1D((int)groups), new Index1D(groupSize)), input, ((ArrayView<sbyte>)first.S8!.View).Cast<int>(),
            first.Scales.View, first.Bias?.View ?? unused1, first.Bn?.View ?? unused1, ((ArrayView<sbyte>)second.S8!.View).Cast<int>(),
            second.Scales.View, second.Bias?.View ?? unused2, second.Bn?.View ?? unused2, output, countSlot < 0 ? default : counts, a);
    }
}
