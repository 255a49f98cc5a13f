using ILGPU;
using ILGPU.Runtime;

namespace Qsvit.Backends.Cuda;

/// <summary>Device memory of the CUDA backend. Workspace slots may swap in a larger allocation between passes, never during one.</summary>
internal sealed class CudaBuffer(MemoryBuffer1D<float, Stride1D.Dense> memory, bool workspace) : DeviceBuffer
{
    public MemoryBuffer1D<float, Stride1D.Dense> Memory { get; set; } = memory;
    public bool IsWorkspace => workspace;
    public ArrayView<float> View => Memory.View;
    public override long Length => Memory.Length;

    public override void Dispose()
    {
        if (!workspace) Memory.Dispose();
    }
}

/// <summary>
/// A conv layer resident on the GPU: <see cref="GpuConv"/> (fp32 weights in summation order, tap table, bias, BNs), or
/// for a dense spike-input layer on the tensor-core path <see cref="GpuSpikeConv"/> (int8 digits of integer codes, or bf16
/// pieces of fp32 weights). Packed codes of other layers are dequantized once here.
/// </summary>
internal sealed class CudaConvLayer : ConvLayer
{
    public GpuConv? Gpu { get; }
    public GpuSpikeConv? Spike { get; }
    /// <summary>
    /// A real-valued-input 1×1 layer's integer codes on bf16 tensor cores (<see cref="GpuSpikeConv.RealInput"/>), beside
    /// <see cref="Gpu"/>: each call takes the one that is faster at its map size (<see cref="GpuSpikeConv.RealInputPays"/>).
    /// </summary>
    public GpuSpikeConv? RealCodes { get; }

    /// <summary>What runs <see cref="RealCodes"/> on the calls that take them (set with <see cref="ConvLayer.Engine"/>).</summary>
    internal string RealCodesEngine { get; set; } = "";

    /// <summary>Whether <see cref="RealCodes"/> run as the fused pointwise kernel (set with <see cref="RealCodesEngine"/>).</summary>
    internal bool RealCodesFused { get; set; }

    /// <summary>
    /// What runs <see cref="Spike"/> at this input size where it is not <see cref="ConvLayer.Engine"/> (an implicit GEMM, the
    /// fused pointwise kernel, TF32 GEMMs in place); null where it is.
    /// </summary>
    internal Func<int, int, string?>? SpikeEngineAt { get; set; }

    public override string EngineAt(int height, int width) =>
        Gpu is not null && GpuOps.SmallInputFits(Geometry, height, width) ? "ILGPU direct conv (input patch in shared memory)"
        : RealCodes is not null && GpuSpikeConv.RealInputPays(Geometry, height, width, RealCodesFused) ? RealCodesEngine
        : SpikeEngineAt?.Invoke(height, width) ?? Engine;

    /// <param name="integer">Integer codes of spike-input layers run on the exact int8 path.</param>
    /// <param name="split">fp32 weights of spike-input layers run as bf16 pieces; with <paramref name="integer"/>, so do the real-valued inputs of 1×1 layers of codes.</param>
    public CudaConvLayer(Accelerator accelerator, ConvLayerSpec spec, bool integer, bool split) : base(spec)
    {
        var bns = spec.Affines.Select(a => (a.Scale, a.Shift)).ToArray();
        switch (spec.Weights)
        {
            case DenseConvWeights dense when split && GpuSpikeConv.Accepts(spec) && GpuSpikeConv.SplitPays(spec.Geometry):
                Spike = new GpuSpikeConv(accelerator, spec, dense.Values);
                break;
            case DenseConvWeights dense:
                Gpu = new GpuConv(accelerator, spec.Geometry, dense.Values, spec.Bias, bns);
                break;
            case PackedConvWeights packed:
                packed.Weight.Validate("conv layer");
                if (packed.Weight.Count != spec.Geometry.WeightLength)
                    throw new QsvitException($"'{packed.Weight.Key}' holds {packed.Weight.Count} codes; the layer needs {spec.Geometry.WeightLength}");
                if (integer && GpuSpikeConv.Accepts(spec)) Spike = new GpuSpikeConv(accelerator, spec, packed.Weight);
                else if (split && GpuSpikeConv.Accepts(spec)) Spike = new GpuSpikeConv(accelerator, spec, packed.Weight.Dequantize());
                else
                {
                    Gpu = new GpuConv(accelerator, spec.Geometry, packed.Weight.Dequantize(), spec.Bias, bns);
                    if (integer && split && GpuSpikeConv.AcceptsRealInput(spec, packed.Weight))
                        RealCodes = GpuSpikeConv.RealInputCodes(accelerator, spec, packed.Weight);
                }
                break;
            default:
                throw new QsvitException($"the CUDA backend cannot run {spec.Weights.GetType().Name} weights");
        }
    }

    public override void Dispose()
    {
        Gpu?.Dispose();
        Spike?.Dispose();
        RealCodes?.Dispose();
    }
}

/// <summary>The classifier head(s) on the GPU: weights [classes, features] and biases.</summary>
internal sealed class CudaHeadLayer : HeadLayer
{
    public MemoryBuffer1D<float, Stride1D.Dense>[] Weights { get; }
    public MemoryBuffer1D<float, Stride1D.Dense>[] Biases { get; }

    public CudaHeadLayer(Accelerator accelerator, IReadOnlyList<LinearWeights> heads, int features, int classes) : base(heads, features, classes)
    {
        if (heads.Count is < 1 or > 2) throw new ArgumentException($"a model has one head or two (kd), not {heads.Count}", nameof(heads));
        foreach (var h in heads)
            if (h.Weight.Length < (long)classes * features || h.Bias.Length < classes)
                throw new ArgumentException($"a head needs [{classes}, {features}] weights and {classes} biases, got {h.Weight.Length} and {h.Bias.Length}");
        Weights = heads.Select(h => accelerator.Allocate1D(h.Weight.AsSpan(0, classes * features).ToArray())).ToArray();
        Biases = heads.Select(h => accelerator.Allocate1D(h.Bias.AsSpan(0, classes).ToArray())).ToArray();
    }

    public override void Dispose()
    {
        foreach (var b in Weights) b.Dispose();
        foreach (var b in Biases) b.Dispose();
    }
}
