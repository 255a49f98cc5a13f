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

/// <summary>
/// A conv layer holding quantized codes. Spike-input dense layers keep the codes as s8/s16 integers and run
/// <see cref="SpikeConv"/> (exact int32 sums, one scale per output); the other dense layers (stem, pwconv2, RepConv's
/// pointwise conv) keep them as integers in the fp32 GEMM's panel layout (<see cref="CodePanels"/>) and expand them for the
/// duration of one call into a pooled buffer; depthwise layers dequantize the bit-packed codes per call. No fp32 copy
/// outlives a call.
/// </summary>
internal sealed class CpuPackedConvLayer : ConvLayer
{
    private readonly Quantization.PackedWeight _codes;
    private readonly (float[] Scale, float[] Shift)[] _affines;

    /// <summary>The integer form, for spike-input dense layers; null when the layer dequantizes per call.</summary>
    public SpikeConvWeights? Integer { get; }
    /// <summary>The codes in the fp32 GEMM's panel layout, for real-valued-input dense layers (expanded per call); null otherwise.</summary>
    private readonly CodePanels? _panels;

    public CpuPackedConvLayer(ConvLayerSpec spec, PackedConvWeights packed) : base(spec)
    {
        _codes = packed.Weight;
        _affines = [.. spec.Affines.Select(a => (a.Scale, a.Shift))];
        var g = spec.Geometry;
        if (packed.Weight.Count != g.WeightLength)
            throw new QsvitException($"'{packed.Weight.Key}' holds {packed.Weight.Count} codes; the layer needs {g.WeightLength}");
        Engine = "CPU dequantized fp32";
        var (min, max) = packed.Weight.IntegerRange();
        var scales = packed.Weight.Groups == 1 ? Enumerable.Repeat(packed.Weight.Scales[0], g.OutChannels).ToArray() : packed.Weight.Scales;
        if (!spec.SpikeInput || g.Groups != 1)
        {
            if (!g.IsDepthwise) _panels = new CodePanels(g, IsaInfo.Best, min, max, scales, packed.Weight.IntegerRows);
            return;
        }
        var matrix = IntMatrix.Create(g.OutChannels, g.WeightLength / g.OutChannels, min, max, packed.Weight.IntegerRows, g);
        Integer = new SpikeConvWeights(g, matrix, scales);
        Engine = $"CPU integer spikes ({SpikeGemm.Best})"; // which instruction path sums them: Vnni512, Vnni256, Vector512, ...
    }

    /// <summary>The convolution and its <see cref="ConvLayerSpec.Affines"/> (the integer path applies them in its epilogue).</summary>
    /// <param name="handed">The input's spikes as this layer's input words (integer direct layers only), or null.</param>
    public void Run(ReadOnlySpan<float> input, int frames, int height, int width, Span<float> output, int threads,
        SpikeAccumulation accumulation = SpikeAccumulation.Auto, HandedSpikes? handed = null)
    {
        var g = Geometry;
        if (Integer is not null)
        {
            SpikeConv.Forward(input, frames, height, width, Integer, Spec.Bias, output, SpikeGemm.Best, threads, _affines, accumulation, handed);
            return;
        }
        if (handed is not null) throw new InvalidOperationException("only integer layers read handed spikes");
        if (_panels is not null)
        {
            using var expanded = _panels.Expand();
            Finish(input, frames, height, width, expanded, output, threads);
            return;
        }
        RunDepthwise(input, frames, height, width, 0, default, output, threads);
    }

    /// <summary>
    /// The depthwise layer with its codes dequantized into a pooled buffer for this call, over the input padded by
    /// <paramref name="pad"/> with <paramref name="border"/> (<see cref="Conv2d.ForwardBordered"/>) where pad &gt; 0.
    /// </summary>
    public void RunDepthwise(ReadOnlySpan<float> input, int frames, int height, int width, int pad, ReadOnlySpan<float> border, Span<float> output,
        int threads)
    {
        var g = Geometry;
        const int tileRows = 64;
        var values = System.Buffers.ArrayPool<float>.Shared.Rent(g.WeightLength);
        var scratch = System.Buffers.ArrayPool<int>.Shared.Rent(tileRows * _codes.RowLength);
        try
        {
            int k = _codes.RowLength;
            for (int r0 = 0; r0 < g.OutChannels; r0 += tileRows)
            {
                int n = Math.Min(tileRows, g.OutChannels - r0);
                _codes.DequantizeRows(r0, n, scratch, values.AsSpan(r0 * k, n * k));
            }
            var w = values.AsSpan(0, g.WeightLength);
            if (pad == 0) Conv2d.Forward(input, frames, height, width, w, Spec.Bias, g, output, IsaInfo.Best, threads, ConvAlgo.Auto);
            else Conv2d.ForwardBordered(input, frames, height, width, w, Spec.Bias, g, pad, border, output, IsaInfo.Best, threads);
            var padded = g with { PadH = g.PadH + pad, PadW = g.PadW + pad };
            CpuBackend.ApplyAffines(Spec, output, frames, padded.OutH(height) * padded.OutW(width), threads);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(values);
            System.Buffers.ArrayPool<int>.Shared.Return(scratch);
        }
    }

    /// <summary>The integer layer and the LIF of its output in one pass (<see cref="SpikeConv.ForwardLif"/>): spikes out.</summary>
    public long RunLif(ReadOnlySpan<float> input, int frames, int height, int width, Span<float> spikes, int timesteps, float threshold, int threads,
        HandedSpikes? handed = null) =>
        SpikeConv.ForwardLif(input, frames, height, width, Integer ?? throw new InvalidOperationException("the layer has no integer form"),
            Spec.Bias, spikes, timesteps, threshold, SpikeGemm.Best, threads, _affines, handed);

    /// <summary><paramref name="first"/> with its LIF feeding <paramref name="second"/> (<see cref="SpikeConv.ForwardLifConv"/>).</summary>
    public static long RunLifConv(CpuPackedConvLayer first, ReadOnlySpan<float> input, int frames, int height, int width, int timesteps, float threshold,
        CpuPackedConvLayer second, Span<float> output, int threads, SpikeAccumulation accumulation, HandedSpikes? handed = null) =>
        SpikeConv.ForwardLifConv(input, frames, height, width, first.Integer ?? throw new InvalidOperationException("the layer has no integer form"),
            first.Spec.Bias, first._affines, timesteps, threshold, second.Integer ?? throw new InvalidOperationException("the layer has no integer form"),
            second.Spec.Bias, second._affines, output, SpikeGemm.Best, threads, accumulation, handed);

    /// <summary>The fp32 convolution with this call's weights, then the affines.</summary>
    private void Finish(ReadOnlySpan<float> input, int frames, int height, int width, ConvWeights w, Span<float> output, int threads)
    {
        var g = Geometry;
        Conv2d.Forward(input, frames, height, width, w, Spec.Bias, output, threads, ConvAlgo.Auto, null);
        CpuBackend.ApplyAffines(Spec, output, frames, g.OutH(height) * g.OutW(width), threads);
    }
}
