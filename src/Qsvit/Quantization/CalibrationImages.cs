using Qsvit.IO.Datasets;

namespace Qsvit.Quantization;

/// <summary>
/// Normalized images [Count, C, Height, Width] held on the host for calibration (drift measurements, corrections after
/// quantization), spread evenly over a range of a dataset: a split stored class by class (image folders) would otherwise
/// calibrate on a single class. Deterministic: the same dataset and range give the same images.
/// </summary>
public sealed record CalibrationImages(float[] Images, int Count, int Channels, int Height, int Width)
{
    /// <summary>
    /// <paramref name="count"/> images (fewer when the range holds fewer) at first + ⌊i·span/count⌋ for i in [0, count).
    /// </summary>
    /// <param name="span">Images of the range (default: from <paramref name="first"/> to the end).</param>
    public static CalibrationImages Spread(IImageDataset data, int count, int first = 0, int? span = null, ParallelOptions? parallel = null)
    {
        int range = Math.Min(span ?? int.MaxValue, data.Count - first);
        if (count < 1) throw new QsvitException($"calibration needs at least one image, got {count}");
        if (range < 1) throw new QsvitException($"{data.Name} holds no image to calibrate on from image {first}");
        int n = Math.Min(count, range), size = data.Channels * data.Height * data.Width;
        var images = new float[(long)n * size];
        Parallel.For(0, n, parallel ?? new ParallelOptions(),
            i => data.Read(first + SpreadIndex(i, range, n), images.AsSpan(i * size, size)));
        return new CalibrationImages(images, n, data.Channels, data.Height, data.Width);
    }

    /// <summary>The i-th of <paramref name="count"/> images spread evenly over <paramref name="range"/>: ⌊i·range/count⌋.</summary>
    public static int SpreadIndex(int i, int range, int count) => (int)((long)i * range / count);

    /// <summary>Images [start, start + count) of the set.</summary>
    public ReadOnlySpan<float> Slice(int start, int count) =>
        Images.AsSpan(start * Channels * Height * Width, count * Channels * Height * Width);
}
