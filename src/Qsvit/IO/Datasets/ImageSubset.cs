namespace Qsvit.IO.Datasets;

/// <summary>Some images of a dataset, in the order of their indices there.</summary>
public sealed class ImageSubset : IImageDataset
{
    private readonly IImageDataset _inner;
    private readonly int[] _indices;
    private readonly string _what;

    private ImageSubset(IImageDataset inner, int[] indices, string what)
    {
        _inner = inner;
        _indices = indices;
        _what = what;
    }

    /// <summary>
    /// <paramref name="count"/> images spread evenly over <paramref name="data"/> (at ⌊i·N/count⌋, as
    /// <see cref="Quantization.CalibrationImages.Spread"/> picks them, so every class of an interleaved or class-sorted split
    /// is among them) and the other images, apart: calibration images the decisions never see.
    /// </summary>
    public static (IImageDataset Picked, IImageDataset Others) Spread(IImageDataset data, int count)
    {
        int n = data.Count;
        if (count < 1 || count >= n)
            throw new QsvitException($"{data.Name} has {n} images: it cannot hold {count} apart and still leave images to decide on");
        var picked = new int[count];
        for (int i = 0; i < count; i++) picked[i] = Quantization.CalibrationImages.SpreadIndex(i, n, count);
        var rest = new int[n - count];
        for (int i = 0, p = 0, r = 0; i < n; i++)
            if (p < count && picked[p] == i) p++;
            else rest[r++] = i;
        return (new ImageSubset(data, picked, $"{count} spread evenly"), new ImageSubset(data, rest, $"all but {count} spread evenly"));
    }

    public string Name => $"{_inner.Name} ({_what})";
    public int Count => _indices.Length;
    public int Channels => _inner.Channels;
    public int Height => _inner.Height;
    public int Width => _inner.Width;
    public IReadOnlyList<string> ClassNames => _inner.ClassNames;
    public int Label(int index) => _inner.Label(_indices[Check(index)]);
    public void Read(int index, Span<float> destination) => _inner.Read(_indices[Check(index)], destination);
    private int Check(int index) => (uint)index < (uint)Count ? index : throw new ArgumentOutOfRangeException(nameof(index));
}
