using Qsvit.IO;
using Qsvit.Tensors;

namespace Qsvit.Models;

/// <summary>
/// A convolution (bias optional) followed by zero or more eval-mode BatchNorms. By default each BN runs as its own
/// x·α + β pass, the operation order of PyTorch's eval batch_norm, so spikes match the official model bit for bit
/// where convolution sums do; <c>fold</c> merges the BNs into the weights instead (one pass fewer, slightly different rounding).
/// </summary>
internal sealed class ConvBn
{
    private readonly (float[] Scale, float[] Shift)[] _bns;
    private readonly ConvWeights _packed;

    public ConvGeometry Geometry { get; }
    public float[] Weight { get; }
    public float[] Bias { get; }
    /// <summary>The output for an all-zero input, computed like BNAndPadLayer's pad values (bias-free conv, one BN).</summary>
    public float[] PadValues { get; }
    /// <summary>With folding, the bias already is BN(0) in the folded arithmetic; null otherwise.</summary>
    public float[]? FoldedPad { get; }

    /// <param name="bnPrefixes">BatchNorm modules applied in order after the conv (e.g. RepConv's inner BN, then the outer one).</param>
    public ConvBn(StateDict state, string weightKey, string? biasKey, ConvGeometry g, bool fold, params string[] bnPrefixes)
    {
        Geometry = g;
        var bns = bnPrefixes.Select(bn => BatchNorm.Fold(state[bn + ".weight"].Data, state[bn + ".bias"].Data,
            state[bn + ".running_mean"].Data, state[bn + ".running_var"].Data)).ToArray();
        PadValues = bnPrefixes.Length == 1 ? BatchNorm.ZeroInputOutput(state, bnPrefixes[0]) : [];
        if (!fold)
        {
            Weight = state[weightKey].Data;
            Bias = biasKey is null ? [] : state[biasKey].Data;
            _bns = bns;
            _packed = ConvWeights.Pack(Weight, g);
            return;
        }
        Weight = (float[])state[weightKey].Data.Clone();
        Bias = biasKey is null ? new float[g.OutChannels] : (float[])state[biasKey].Data.Clone();
        int perChannel = Weight.Length / g.OutChannels;
        foreach (var (scale, shift) in bns)
            for (int oc = 0; oc < g.OutChannels; oc++)
            {
                var row = Weight.AsSpan(oc * perChannel, perChannel);
                for (int i = 0; i < row.Length; i++) row[i] *= scale[oc];
                Bias[oc] = Bias[oc] * scale[oc] + shift[oc];
            }
        _bns = [];
        FoldedPad = Bias;
        _packed = ConvWeights.Pack(Weight, g);
    }

    public int OutH(int h) => Geometry.OutH(h);
    public int OutW(int w) => Geometry.OutW(w);

    public void Run(float[] input, int frames, int h, int w, float[] output)
    {
        var g = Geometry;
        int spatial = g.OutH(h) * g.OutW(w);
        var dst = output.AsSpan(0, frames * g.OutChannels * spatial);
        Conv2d.Forward(input.AsSpan(0, frames * g.InChannels * h * w), frames, h, w, _packed, Bias, dst);
        foreach (var (scale, shift) in _bns) ChannelOps.ScaleShift(dst, frames, g.OutChannels, spatial, scale, shift);
    }
}
