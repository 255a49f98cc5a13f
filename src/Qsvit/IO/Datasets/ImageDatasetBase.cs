namespace Qsvit.IO.Datasets;

/// <summary>What every dataset shares: the shape, the labels, the class names and argument checks.</summary>
internal abstract class ImageDatasetBase : IImageDataset
{
    private readonly int[] _labels;
    private readonly string[] _classNames;

    protected ImageDatasetBase(string name, int channels, int height, int width, int[] labels, string[] classNames, PixelNormalizer normalizer)
    {
        Name = name;
        Channels = channels;
        Height = height;
        Width = width;
        _labels = labels;
        _classNames = classNames;
        Normalizer = normalizer;
    }

    public string Name { get; }
    public int Count => _labels.Length;
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public IReadOnlyList<string> ClassNames => _classNames;

    /// <summary>The normalization applied (a copy of the one asked for, or the format's default).</summary>
    public Normalization Normalization => Normalizer.Normalization;

    protected PixelNormalizer Normalizer { get; }

    /// <summary>Elements of one image: Channels × Height × Width.</summary>
    public int ImageSize => Channels * Height * Width;

    public int Label(int index)
    {
        CheckIndex(index);
        return _labels[index];
    }

    public void Read(int index, Span<float> destination)
    {
        CheckIndex(index);
        if (destination.Length < ImageSize)
            throw new ArgumentException($"destination holds {destination.Length} floats; an image needs {ImageSize}", nameof(destination));
        ReadImage(index, destination[..ImageSize]);
    }

    /// <summary>Writes image <paramref name="index"/> (already checked) into exactly <see cref="ImageSize"/> floats.</summary>
    protected abstract void ReadImage(int index, Span<float> destination);

    private void CheckIndex(int index)
    {
        if ((uint)index >= (uint)_labels.Length)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {_labels.Length} images");
    }

    public override string ToString() => $"{Name}: {Count} images of {Channels}x{Height}x{Width}, {_classNames.Length} classes";
}
