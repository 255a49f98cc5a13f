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
            // Same operation order as torch's eval batch_norm: (x - mean) / sqrt(var + eps) * w + b.
            float inv = 1f / MathF.Sqrt(runningVar[i] + eps);
            float w = weight.IsEmpty ? 1f : weight[i];
            scale[i] = inv * w;
            shift[i] = (bias.IsEmpty ? 0f : bias[i]) - runningMean[i] * inv * w;
        }
        return (scale, shift);
    }
}
