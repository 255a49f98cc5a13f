using Qsvit.Tensors;

namespace Qsvit.Backends;

/// <summary>
/// A conv layer's weights as the model file gives them. The kind decides how a backend stores and computes them; today
/// only <see cref="DenseConvWeights"/> exists. A packed-codes kind (integer codes plus per-channel scales, integer
/// accumulation) is the seam for issues 12/13: add a sibling record, and backends that lack it throw
/// <see cref="QsvitException"/> from <see cref="IBackend.CreateConv"/>.
/// </summary>
public abstract record ConvWeightData;

/// <summary>fp32 weights [OutChannels, InChannels/Groups, KernelH, KernelW] (fake-quantized or not).</summary>
public sealed record DenseConvWeights(float[] Values) : ConvWeightData;

/// <summary>
/// Quantized weights at their bit width (<see cref="Quantization.PackedWeight"/>). Where the layer's input is spikes
/// (<see cref="ConvLayerSpec.SpikeInput"/>) a backend may sum integer codes exactly and scale once per output; otherwise it dequantizes.
/// </summary>
public sealed record PackedConvWeights(Quantization.PackedWeight Weight) : ConvWeightData;

/// <summary>y = x·Scale[c] + Shift[c] per output channel, one fused multiply-add (eval-mode BatchNorm, see <see cref="BatchNorm.Fold"/>).</summary>
public sealed record ChannelAffine(float[] Scale, float[] Shift);

/// <summary>
/// A convolution and what follows it: output[f, oc] = Σ input·weight (+ Bias[oc] when Bias is non-empty), then each of
/// <paramref name="Affines"/> in order as its own rounding step (a chain of BatchNorms run as PyTorch runs them; empty
/// when they were folded into the weights). Zero padding; groups as in PyTorch (Groups == InChannels == OutChannels is
/// depthwise).
/// </summary>
public sealed record ConvLayerSpec(ConvGeometry Geometry, ConvWeightData Weights, float[] Bias, IReadOnlyList<ChannelAffine> Affines)
{
    /// <summary>The official state_dict keys the layer was built from (names in exported graphs); null for a layer made up by hand.</summary>
    public ConvKeys? Keys { get; init; }

    /// <summary>
    /// The input is a spike tensor (exactly 0 or 1; <see cref="Models.Sdtv2Layout.TakesSpikes"/>), so a backend may compute
    /// the layer in a reduced-precision input type without rounding (spikes are exact in bf16, f16 and int8) and, with
    /// integer codes, sum exactly. False: real-valued input, computed in fp32.
    /// </summary>
    public bool SpikeInput { get; init; }
}

/// <summary>
/// Official state_dict names of a conv layer: its weight, its bias (null: none) and the BatchNorm modules behind
/// <see cref="ConvLayerSpec.Affines"/> (one per affine, in order; empty when they were folded).
/// </summary>
public sealed record ConvKeys(string Weight, string? Bias, IReadOnlyList<string> BatchNorms);

/// <summary>One linear classifier: Weight [classes, features] row-major, Bias [classes].</summary>
public sealed record LinearWeights(float[] Weight, float[] Bias)
{
    /// <summary>The official module name ("head", "head_kd"); its keys are Module.weight and Module.bias. Null: made up by hand.</summary>
    public string? Module { get; init; }
}

/// <summary>RepConv's three layers and BNAndPadLayer's border values, as <see cref="IBackend.RepConv"/> takes them.</summary>
public readonly record struct RepConvLayers(ConvLayer First, DeviceBuffer PadValues, ConvLayer Depthwise, ConvLayer Pointwise);

/// <summary>A conv layer resident on its backend (weights uploaded and packed once).</summary>
public abstract class ConvLayer : IDisposable
{
    protected ConvLayer(ConvLayerSpec spec) => Spec = spec;
    public ConvLayerSpec Spec { get; }
    public ConvGeometry Geometry => Spec.Geometry;
    /// <summary>What computes the layer on its backend, for profiles (e.g. "cuBLAS SGEMM", "ILGPU depthwise").</summary>
    public string Engine { get; internal set; } = "";
    /// <summary>What computes a call at this input map size: <see cref="Engine"/>, unless the backend chooses per call.</summary>
    public virtual string EngineAt(int height, int width) => Engine;
    public virtual void Dispose() { }
}

/// <summary>The classifier head(s) resident on the backend: one, or two with kd (head and head_kd).</summary>
public abstract class HeadLayer : IDisposable
{
    protected HeadLayer(IReadOnlyList<LinearWeights> heads, int features, int classes)
    {
        Heads = heads;
        Features = features;
        Classes = classes;
    }

    public IReadOnlyList<LinearWeights> Heads { get; }
    public int Features { get; }
    public int Classes { get; }
    public virtual void Dispose() { }
}

/// <summary>The backend op that reads a LIF layer's spikes next (<see cref="SpikeReader"/>).</summary>
public enum SpikeReaderOp
{
    /// <summary><see cref="IBackend.Conv"/> of the layer.</summary>
    Conv,
    /// <summary><see cref="IBackend.ConvLif"/> of the layer.</summary>
    ConvLif,
    /// <summary><see cref="IBackend.ConvLifConv"/> of the layer and <see cref="SpikeReader.Second"/>.</summary>
    ConvLifConv,
    /// <summary><see cref="IBackend.RepConvs"/> of <see cref="SpikeReader.Convs"/>.</summary>
    RepConvs,
}

/// <summary>
/// The op that reads a LIF layer's spikes next (<see cref="IBackend.Lif"/>, <see cref="IBackend.AddLif"/>) and the map it
/// reads them as, [Frames, C, Height, Width]. Given one, a backend may write the spikes in the form that op would pack them
/// into for its first layer rather than as floats; the caller then runs exactly that op next on them and reads them in no
/// other way.
/// </summary>
/// <param name="Layer">The first layer over the spikes (RepConvs: the first conv's first 1×1).</param>
public sealed record SpikeReader(SpikeReaderOp Op, ConvLayer Layer, int Frames, int Height, int Width)
{
    /// <summary>ConvLifConv's second layer.</summary>
    public ConvLayer? Second { get; init; }
    /// <summary>RepConvs' layers.</summary>
    public RepConvLayers[]? Convs { get; init; }

    public static SpikeReader Conv(ConvLayer layer, int frames, int height, int width) => new(SpikeReaderOp.Conv, layer, frames, height, width);
    public static SpikeReader ConvLif(ConvLayer layer, int frames, int height, int width) => new(SpikeReaderOp.ConvLif, layer, frames, height, width);
    public static SpikeReader ConvLifConv(ConvLayer first, ConvLayer second, int frames, int height, int width) =>
        new(SpikeReaderOp.ConvLifConv, first, frames, height, width) { Second = second };
    public static SpikeReader RepConvs(RepConvLayers[] convs, int frames, int height, int width) =>
        convs.Length > 0 ? new(SpikeReaderOp.RepConvs, convs[0].First, frames, height, width) { Convs = convs }
            : throw new ArgumentException("RepConvs read spikes with at least one conv", nameof(convs));
}
