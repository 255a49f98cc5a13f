namespace Qsvit.IO.Datasets;

/// <summary>
/// Lookup tables mapping each 8-bit value of each output channel to (x / 255f - mean) / std, evaluated in float32
/// exactly as torchvision's ToTensor + Normalize would.
/// </summary>
internal sealed class PixelNormalizer
{
    private readonly float[][] _tables;

    public Normalization Normalization { get; }

    public PixelNormalizer(Normalization normalization, int channels, string source)
    {
        var mean = normalization.Mean ?? throw new QsvitException($"{source}: normalization has no mean");
        var std = normalization.Std ?? throw new QsvitException($"{source}: normalization has no std");
        if (mean.Length != std.Length)
            throw new QsvitException($"{source}: normalization has {mean.Length} mean value(s) but {std.Length} std value(s)");
        if (mean.Length != 1 && mean.Length != channels)
            throw new QsvitException(
                $"{source}: normalization has {mean.Length} values per statistic but the images have {channels} channel(s) " +
                "(give one value per channel, or a single value for all)");
        _tables = new float[channels][];
        for (int c = 0; c < channels; c++)
        {
            float m = mean[mean.Length == 1 ? 0 : c], s = std[std.Length == 1 ? 0 : c];
            if (!float.IsFinite(m) || !float.IsFinite(s) || s == 0f)
                throw new QsvitException($"{source}: normalization for channel {c} has mean {m} and std {s}; both must be finite and std nonzero");
            var table = new float[256];
            for (int v = 0; v < 256; v++) table[v] = (v / 255f - m) / s;
            _tables[c] = table;
        }
        Normalization = new Normalization((float[])mean.Clone(), (float[])std.Clone());
    }

    public int Channels => _tables.Length;

    /// <summary>The normalized value of 8-bit <paramref name="value"/> in channel <paramref name="channel"/>.</summary>
    public float this[int channel, byte value] => _tables[channel][value];

    /// <summary>Normalizes one plane of 8-bit pixels (consecutive in <paramref name="pixels"/>) for channel <paramref name="channel"/>.</summary>
    public void Plane(ReadOnlySpan<byte> pixels, int channel, Span<float> destination)
    {
        var table = _tables[channel];
        destination = destination[..pixels.Length];
        for (int i = 0; i < pixels.Length; i++) destination[i] = table[pixels[i]];
    }

    /// <summary>Normalizes interleaved pixels (HWC, <see cref="Channels"/> per pixel) into planar CHW.</summary>
    public void Interleaved(ReadOnlySpan<byte> pixels, Span<float> destination)
    {
        int channels = _tables.Length, plane = pixels.Length / channels;
        for (int c = 0; c < channels; c++)
        {
            var table = _tables[c];
            var dst = destination.Slice(c * plane, plane);
            for (int i = 0, j = c; i < plane; i++, j += channels) dst[i] = table[pixels[j]];
        }
    }
}
