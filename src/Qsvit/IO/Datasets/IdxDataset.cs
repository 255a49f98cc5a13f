using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.RegularExpressions;

namespace Qsvit.IO.Datasets;

/// <summary>
/// MNIST / Fashion-MNIST idx files: an images file (magic 0x00000803, big-endian count, rows, columns, then
/// unsigned bytes) and the labels file beside it (magic 0x00000801, count, then one byte per label), raw or gzipped.
/// Both are read whole into memory after their headers are checked.
/// </summary>
internal sealed partial class IdxDataset : ImageDatasetBase
{
    public const int ImagesMagic = 0x00000803;
    public const int LabelsMagic = 0x00000801;

    private readonly byte[] _pixels;   // count × rows × columns

    private IdxDataset(string name, int channels, int rows, int columns, int[] labels, string[] classNames,
        PixelNormalizer normalizer, byte[] pixels)
        : base(name, channels, rows, columns, labels, classNames, normalizer)
    {
        _pixels = pixels;
    }

    public static IdxDataset Open(string imagesPath, DatasetOptions options)
    {
        string labelsPath = FindLabels(imagesPath);
        var (pixels, dims) = ReadIdx(imagesPath, ImagesMagic, 3, "images");
        var (labelBytes, labelDims) = ReadIdx(labelsPath, LabelsMagic, 1, "labels");
        if (labelDims[0] != dims[0])
            throw new QsvitException($"{imagesPath} holds {dims[0]} images but {labelsPath} holds {labelDims[0]} labels; the counts must match");

        bool fashion = imagesPath.Contains("fashion", StringComparison.OrdinalIgnoreCase);
        string[] classNames = fashion ? FashionClasses : DigitClasses;
        var labels = new int[labelBytes.Length];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = labelBytes[i];
            if (labels[i] >= classNames.Length)
                throw new QsvitException(
                    $"{labelsPath}: label {i} is {labels[i]}, but there are {classNames.Length} classes (labels 0-{classNames.Length - 1})");
        }

        int channels = options.Channels;
        var normalizer = new PixelNormalizer(options.Normalization ?? Normalization.None, channels, imagesPath);
        string name = $"{(fashion ? "Fashion-MNIST" : "MNIST")} {imagesPath}";
        return new IdxDataset(name, channels, dims[1], dims[2], labels, (string[])classNames.Clone(), normalizer, pixels);
    }

    protected override void ReadImage(int index, Span<float> destination)
    {
        int plane = Height * Width;
        var pixels = _pixels.AsSpan(index * plane, plane);
        for (int c = 0; c < Channels; c++)   // a 3-channel request replicates the gray plane
            Normalizer.Plane(pixels, c, destination.Slice(c * plane, plane));
    }

    /// <summary>
    /// The labels file beside an images file: "&lt;prefix&gt;-images-idx3-ubyte[.gz]" (any of the dashes may be dots)
    /// becomes "&lt;prefix&gt;-labels-idx1-ubyte", raw or .gz.
    /// </summary>
    internal static string FindLabels(string imagesPath)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(imagesPath)) ?? ".";
        var m = ImagesName().Match(Path.GetFileName(imagesPath));
        if (!m.Success)
            throw new QsvitException(
                $"{imagesPath}: cannot find the labels file: the name is not <prefix>-images-idx3-ubyte, so there is no <prefix>-labels-idx1-ubyte to look for");
        string labels = $"{m.Groups[1].Value}{m.Groups[2].Value}labels{m.Groups[3].Value}idx1{m.Groups[4].Value}ubyte";
        string[] candidates = [Path.Combine(dir, labels), Path.Combine(dir, labels + ".gz")];
        foreach (var c in candidates)
            if (File.Exists(c)) return c;
        throw new QsvitException($"{imagesPath}: no labels file beside it (looked for {string.Join(" and ", candidates.Select(Path.GetFileName))})");
    }

    /// <summary>Whether a file name is an idx images name, &lt;prefix&gt;-images-idx3-ubyte[.gz].</summary>
    internal static bool IsImagesName(string fileName) => ImagesName().IsMatch(fileName);

    /// <summary>Whether a file name is an idx labels name, &lt;prefix&gt;-labels-idx1-ubyte[.gz].</summary>
    internal static bool IsLabelsName(string fileName) => LabelsName().IsMatch(fileName);

    /// <summary>The split prefix of an idx images name ("t10k", "train").</summary>
    internal static string SplitOf(string fileName) => ImagesName().Match(fileName).Groups[1].Value;

    [GeneratedRegex(@"^(.*?)([-.])images([-.])idx3([-.])ubyte(\.gz)?$", RegexOptions.IgnoreCase)]
    private static partial Regex ImagesName();

    [GeneratedRegex(@"^(.*?)[-.]labels[-.]idx1[-.]ubyte(\.gz)?$", RegexOptions.IgnoreCase)]
    private static partial Regex LabelsName();

    /// <summary>Reads an idx file of unsigned bytes with the given magic and rank: the dimensions and the data.</summary>
    internal static (byte[] Data, int[] Dims) ReadIdx(string path, int magic, int rank, string what)
    {
        try
        {
            using var file = File.OpenRead(path);
            return ReadIdx(file, path, magic, rank, what);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{path}: cannot read the idx {what} file: {e.Message}", e);
        }
    }

    /// <summary>Deflate cannot expand data more than 1032:1: a gzip file declaring more is lying.</summary>
    private const long DeflateMaxRatio = 1032;

    /// <summary>
    /// Reads an idx file from a seekable stream. The data buffer grows with what really arrives, so a gzipped header that
    /// declares gigabytes allocates no more than the file really decompresses to.
    /// </summary>
    internal static (byte[] Data, int[] Dims) ReadIdx(Stream file, string path, int magic, int rank, string what)
    {
        try
        {
            bool gz = IsGzip(file);
            using Stream stream = gz ? new GZipStream(file, CompressionMode.Decompress, leaveOpen: true) : file;
            var header = new byte[4 + 4 * rank];
            int got = stream.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
            if (got < header.Length)
                throw new QsvitException($"{path}: {(gz ? "decompressed data" : "file")} is {got} bytes, too short for an idx {what} header ({header.Length} bytes)");
            int actual = BinaryPrimitives.ReadInt32BigEndian(header);
            if (actual != magic)
                throw new QsvitException($"{path}: idx magic is 0x{actual:X8}, expected 0x{magic:X8} for an {what} file (unsigned bytes, {rank} dimension(s))");
            var dims = new int[rank];
            long count = 1;
            for (int d = 0; d < rank; d++)
            {
                dims[d] = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4 + 4 * d));
                if (dims[d] <= 0 || (d > 0 && dims[d] > DatasetOptions.MaxSide))
                    throw new QsvitException($"{path}: idx dimension {d} is {dims[d]}");
                count *= dims[d];
                if (count > Array.MaxLength)
                    throw new QsvitException($"{path}: idx dimensions [{string.Join(", ", dims[..(d + 1)])}] are too large");
            }
            long total = header.Length + count;
            if (!gz && file.Length != total)
                throw new QsvitException($"{path}: file is {file.Length} bytes, but its header ({string.Join(" x ", dims)}) needs {total}");
            if (gz && total / DeflateMaxRatio > file.Length + 64)
                throw new QsvitException(
                    $"{path}: its header ({string.Join(" x ", dims)}) declares {total} bytes, more than a {file.Length}-byte gzip file can decompress to (corrupt?)");
            var data = ReadGrowing(stream, (int)count);
            if (data.Length < count)
                throw new QsvitException(
                    $"{path}: decompressed data ends after {header.Length + data.Length} bytes, but its header ({string.Join(" x ", dims)}) needs {total}");
            if (gz && stream.ReadByte() >= 0)
                throw new QsvitException(
                    $"{path}: decompressed data is longer than its header ({string.Join(" x ", dims)}) says ({total} bytes)");
            return (data, dims);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new QsvitException($"{path}: cannot read the idx {what} file: {e.Message}", e);
        }
    }

    /// <summary>Up to <paramref name="count"/> bytes, in a buffer doubled as data arrives (returned shorter when the stream ends first).</summary>
    private static byte[] ReadGrowing(Stream stream, int count)
    {
        var buffer = new byte[Math.Min(count, 1 << 20)];
        int filled = 0;
        while (true)
        {
            filled += stream.ReadAtLeast(buffer.AsSpan(filled), buffer.Length - filled, throwOnEndOfStream: false);
            if (filled < buffer.Length) return buffer[..filled];
            if (filled == count) return buffer;
            Array.Resize(ref buffer, (int)Math.Min(count, 2L * buffer.Length));
        }
    }

    /// <summary>True when the stream starts with the gzip magic 1F 8B; the position is restored.</summary>
    internal static bool IsGzip(Stream stream)
    {
        long position = stream.Position;
        int a = stream.ReadByte(), b = stream.ReadByte();
        stream.Position = position;
        return a == 0x1F && b == 0x8B;
    }

    private static readonly string[] DigitClasses = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

    private static readonly string[] FashionClasses =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
}
