using Qsvit.Backends;
using Qsvit.IO;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Models;

/// <summary>
/// What one conv of the wiring is, read from the state_dict: a convolution (bias optional) followed by zero or more
/// eval-mode BatchNorms. By default each BN runs as its own x·α + β pass, the operation order of PyTorch's eval
/// batch_norm, so spikes match the official model bit for bit where convolution sums do; <c>fold</c> merges the BNs into
/// the weights instead (one pass fewer, slightly different rounding).
/// </summary>
internal sealed class ConvBn
{
    public ConvLayerSpec Spec { get; }
    public ConvGeometry Geometry => Spec.Geometry;
    /// <summary>BNAndPadLayer's pad values, BN(0): as PyTorch computes them (bias-free conv, one BN), or the folded bias when folding.</summary>
    public float[] PadValues { get; }
    /// <summary>The state_dict arrays this conv was built from: a backend layer built from the same arrays is the same layer.</summary>
    public float[][] Sources { get; }
    public string Key { get; }

    /// <param name="bnPrefixes">BatchNorm modules applied in order after the conv (e.g. RepConv's inner BN, then the outer one).</param>
    public ConvBn(StateDict state, string weightKey, string? biasKey, ConvGeometry g, bool fold, params string[] bnPrefixes)
    {
        Key = weightKey;
        var sourceKeys = new List<string> { weightKey };
        if (biasKey is not null) sourceKeys.Add(biasKey);
        foreach (var bn in bnPrefixes) sourceKeys.AddRange([bn + ".weight", bn + ".bias", bn + ".running_mean", bn + ".running_var"]);
        Sources = sourceKeys.Select(k => state[k].Data).ToArray();

        var bns = bnPrefixes.Select(bn => BatchNorm.Fold(state[bn + ".weight"].Data, state[bn + ".bias"].Data,
            state[bn + ".running_mean"].Data, state[bn + ".running_var"].Data)).ToArray();
        if (!fold)
        {
            PadValues = bnPrefixes.Length == 1 ? BatchNorm.ZeroInputOutput(state, bnPrefixes[0]) : [];
            Spec = new ConvLayerSpec(g, new DenseConvWeights(state[weightKey].Data), biasKey is null ? [] : state[biasKey].Data,
                bns.Select(b => new ChannelAffine(b.Scale, b.Shift)).ToArray()) { Keys = new ConvKeys(weightKey, biasKey, bnPrefixes), SpikeInput = Sdtv2Layout.TakesSpikes(weightKey) };
            return;
        }
        var weight = (float[])state[weightKey].Data.Clone();
        var bias = biasKey is null ? new float[g.OutChannels] : (float[])state[biasKey].Data.Clone();
        int perChannel = weight.Length / g.OutChannels;
        foreach (var (scale, shift) in bns)
            for (int oc = 0; oc < g.OutChannels; oc++)
            {
                var row = weight.AsSpan(oc * perChannel, perChannel);
                for (int i = 0; i < row.Length; i++) row[i] *= scale[oc];
                bias[oc] = bias[oc] * scale[oc] + shift[oc];
            }
        PadValues = bias; // folded, the bias already is BN(0) in the folded arithmetic
        Spec = new ConvLayerSpec(g, new DenseConvWeights(weight), bias, []) { Keys = new ConvKeys(weightKey, biasKey, []), SpikeInput = Sdtv2Layout.TakesSpikes(weightKey) };
    }

    private ConvBn(string key, ConvLayerSpec spec, float[] padValues, float[][] sources)
    {
        Key = key;
        Spec = spec;
        PadValues = padValues;
        Sources = sources;
    }

    /// <summary>
    /// The same conv from a packed model: its codes (<see cref="PackedConvWeights"/>, integer path where the input is spikes),
    /// or with <paramref name="simulate"/> the dequantized fp32 weights, which is exactly what fake quantization runs.
    /// BatchNorms come as the stored eval affines (the very α, β the state_dict path computes).
    /// </summary>
    public static ConvBn FromPacked(PackedModel model, string weightKey, string? biasKey, ConvGeometry g, bool simulate, params string[] bnPrefixes)
    {
        var affines = bnPrefixes.Select(bn => model.BatchNorm(bn)).Select(a => new ChannelAffine(a.Scale, a.Shift)).ToArray();
        var bias = biasKey is null ? [] : model.Floats[biasKey];
        var pad = bnPrefixes.Length == 1 && PackedModel.IsPadBatchNorm(bnPrefixes[0]) ? model.Pad(bnPrefixes[0]) : [];
        ConvWeightData weights;
        float[] identity;
        if (model.Packed.TryGetValue(weightKey, out var packed))
        {
            identity = packed.Scales;
            weights = simulate ? new DenseConvWeights(packed.Dequantize())
                : new PackedConvWeights(packed);
        }
        else
        {
            identity = model.Floats[weightKey];
            weights = new DenseConvWeights(identity);
        }
        var sources = new List<float[]> { identity };
        if (biasKey is not null) sources.Add(bias);
        foreach (var a in affines) sources.AddRange([a.Scale, a.Shift]);
        return new ConvBn(weightKey, new ConvLayerSpec(g, weights, bias, affines)
            { Keys = new ConvKeys(weightKey, biasKey, bnPrefixes), SpikeInput = Sdtv2Layout.TakesSpikes(weightKey) }, pad, sources.ToArray());
    }

    /// <summary>
    /// The same conv computing from integer codes that dequantize exactly to its weights (<see cref="PackedConvWeights"/>).
    /// The codes' scales join <see cref="Sources"/>, so a backend layer built from the fp32 values is never taken for this one.
    /// </summary>
    public ConvBn WithCodes(PackedWeight codes) =>
        new(Key, Spec with { Weights = new PackedConvWeights(codes) }, PadValues, [.. Sources, codes.Scales]);

    public int OutH(int h) => Geometry.OutH(h);
    public int OutW(int w) => Geometry.OutW(w);
}
