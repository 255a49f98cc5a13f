namespace Qsvit.Tensors;

/// <summary>Eval-mode BatchNorm parameters reduced to y = x·scale + shift.</summary>
public static class BatchNorm
{
    public const float DefaultEps = 1e-5f;

    public static (float[] Scale, float[] Shift) Fold(ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar, float eps = DefaultEps)
    {
        int c = runningMean.Length;
        var scale = new float[c];
        var shift = new float[c];
        for (int i = 0; i < c; i++)
        {
            // torch's eval batch_norm on x86: alpha = w / sqrt(var + eps), beta = b - mean·alpha (compiled as one FMA),
            // then y = x·alpha + beta, also one FMA (see ChannelOps.ScaleShift).
            float inv = 1f / MathF.Sqrt(runningVar[i] + eps);
            float w = weight.IsEmpty ? 1f : weight[i];
            scale[i] = inv * w;
            shift[i] = MathF.FusedMultiplyAdd(-runningMean[i], scale[i], bias.IsEmpty ? 0f : bias[i]);
        }
        return (scale, shift);
    }

    /// <summary>BN(0) as BNAndPadLayer computes its pad values: bias - running_mean·weight / sqrt(running_var + eps).</summary>
    public static float[] ZeroInputOutput(IO.StateDict state, string prefix, float eps = DefaultEps)
    {
        var w = state[prefix + ".weight"].Data;
        var b = state[prefix + ".bias"].Data;
        var mean = state[prefix + ".running_mean"].Data;
        var var = state[prefix + ".running_var"].Data;
        var pad = new float[mean.Length];
        for (int i = 0; i < pad.Length; i++) pad[i] = b[i] - mean[i] * w[i] / MathF.Sqrt(var[i] + eps);
        return pad;
    }
}
