namespace Qsvit.IO.Datasets;

/// <summary>The first images of a dataset (<c>--limit N</c>), so that each split of a run can have its own limit.</summary>
public sealed class FirstImages : IImageDataset
{
    private readonly IImageDataset _inner;

    private FirstImages(IImageDataset inner, int count)
    {
        _inner = inner;
        Count = count;
    }

    /// <summary>
    /// The first <paramref name="limit"/> images of <paramref name="data"/> (all of them when it has no more, or when
    /// <paramref name="limit"/> is null). A limit below 1 is an error naming <paramref name="option"/>.
    /// </summary>
    public static IImageDataset Of(IImageDataset data, int? limit, string option = "limit") => limit switch
    {
        null => data,
        < 1 => throw new QsvitException($"{option} must be at least 1, got {limit}"),
        { } n when n >= data.Count => data,
        { } n => new FirstImages(data, n),
    };

    /// <summary>Checks a limit before any work is done (e.g. before an output file is written).</summary>
    public static void Validate(int? limit, string option = "limit")
    {
        if (limit < 1) throw new QsvitException($"{option} must be at least 1, got {limit}");
    }

    internal IImageDataset Inner => _inner;
    public string Name => $"{_inner.Name} (first {Count})";
    public int Count { get; }
    public int Channels => _inner.Channels;
    public int Height => _inner.Height;
    public int Width => _inner.Width;
    public IReadOnlyList<string> ClassNames => _inner.ClassNames;
    public int Label(int index) => _inner.Label(Check(index));
    public void Read(int index, Span<float> destination) => _inner.Read(Check(index), destination);
    private int Check(int index) => (uint)index < (uint)Count ? index : throw new ArgumentOutOfRangeException(nameof(index));
}
