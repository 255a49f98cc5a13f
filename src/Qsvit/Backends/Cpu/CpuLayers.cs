using Qsvit.Tensors;

namespace Qsvit.Backends.Cpu;

/// <summary>A conv layer packed once for the micro-kernels (<see cref="ConvWeights"/>), with its bias and BN chain.</summary>
internal sealed class CpuConvLayer : ConvLayer
{
    public ConvWeights Packed { get; }

    public CpuConvLayer(ConvLayerSpec spec) : base(spec)
    {
        if (spec.Weights is not DenseConvWeights dense)
            throw new QsvitException($"the CPU backend cannot run {spec.Weights.GetType().Name} weights yet");
        Packed = ConvWeights.Pack(dense.Values, spec.Geometry);
    }

    public override void Dispose() => Packed.Dispose();
}

internal sealed class CpuHeadLayer(IReadOnlyList<LinearWeights> heads, int features, int classes) : HeadLayer(heads, features, classes);
