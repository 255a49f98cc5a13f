namespace Qsvit.IO.Datasets;

/// <summary>
/// A batch of consecutive dataset images, as produced by <see cref="BatchReader"/>. Its buffers are pooled: the
/// batch is valid only until the reader moves to the next batch or is disposed, after which its arrays are reused.
/// </summary>
public sealed class ImageBatch
{
    internal ImageBatch(int capacity, int imageSize)
    {
        Images = new float[(long)capacity * imageSize];
        Labels = new int[capacity];
        ImageSize = imageSize;
    }

    /// <summary>Dataset index of the first image.</summary>
    public int Start { get; internal set; }

    /// <summary>Number of images in this batch.</summary>
    public int Count { get; internal set; }

    /// <summary>Floats per image: Channels × Height × Width.</summary>
    public int ImageSize { get; }

    /// <summary>
    /// The images as [Count, C, H, W] contiguous floats from index 0. The array may be longer than
    /// Count × ImageSize (it is sized for a full batch; a last, shorter batch leaves stale values after its images).
    /// </summary>
    public float[] Images { get; }

    /// <summary>The labels of the images; entries from Count on are stale.</summary>
    public int[] Labels { get; }

    /// <summary>Image <paramref name="i"/> of this batch (CHW).</summary>
    public Span<float> Image(int i)
    {
        if ((uint)i >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(i), i, $"the batch holds {Count} images");
        return Images.AsSpan(i * ImageSize, ImageSize);
    }

    /// <summary>The images actually in the batch: the first Count × ImageSize floats of <see cref="Images"/>.</summary>
    public Span<float> ImagesSpan => Images.AsSpan(0, Count * ImageSize);
}
