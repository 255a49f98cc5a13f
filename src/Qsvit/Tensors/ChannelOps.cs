namespace Qsvit.Tensors;

/// <summary>Per-channel elementwise kernels over [batch, channels, spatial] data.</summary>
public static class ChannelOps
{
    /// <summary>x = x·scale[c] + shift[c]: eval-mode BatchNorm once folded to a scale and a shift.</summary>
    public static void ScaleShift(Span<float> x, int batch, int channels, int spatial, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift)
    {
        for (int nb = 0; nb < batch; nb++)
            for (int c = 0; c < channels; c++)
            {
                var row = x.Slice((nb * channels + c) * spatial, spatial);
                for (int i = 0; i < row.Length; i++) row[i] = row[i] * scale[c] + shift[c];
            }
    }

    /// <summary>output[b, c] = mean over spatial of x[b, c, :].</summary>
    public static void SpatialMean(ReadOnlySpan<float> x, int batch, int channels, int spatial, Span<float> output)
    {
        for (int i = 0; i < batch * channels; i++)
        {
            float s = 0;
            foreach (var v in x.Slice(i * spatial, spatial)) s += v;
            output[i] = s / spatial;
        }
    }
}
