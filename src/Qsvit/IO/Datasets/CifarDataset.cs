namespace Qsvit.IO.Datasets;

/// <summary>
/// CIFAR-10 / CIFAR-100 binary files (one or several, concatenated in order), read whole into memory.
/// CIFAR-10 records: 1 label byte, 1024 R, 1024 G, 1024 B (32×32 row-major). CIFAR-100 records add a coarse label
/// byte in front of the fine label; the fine label is used.
/// </summary>
internal sealed class CifarDataset : ImageDatasetBase
{
    public const int Side = 32;
    public const int PixelBytes = 3 * Side * Side;
    public const int Cifar10Record = 1 + PixelBytes;
    public const int Cifar100Record = 2 + PixelBytes;

    private readonly byte[][] _files;
    private readonly int[] _firstRecord;   // index of the first record of each file; one extra entry = Count
    private readonly int _recordSize;

    private CifarDataset(string name, int[] labels, string[] classNames, PixelNormalizer normalizer,
        byte[][] files, int[] firstRecord, int recordSize)
        : base(name, 3, Side, Side, labels, classNames, normalizer)
    {
        _files = files;
        _firstRecord = firstRecord;
        _recordSize = recordSize;
    }

    public static CifarDataset Open(IReadOnlyList<string> paths, DatasetOptions options)
    {
        if (paths.Count == 0) throw new ArgumentException("no CIFAR files given", nameof(paths));
        if (options.Channels != 3)
            throw new QsvitException($"{paths[0]}: CIFAR images are RGB; they cannot be read as {options.Channels} channel(s) (set Channels to 3)");

        var variant = options.CifarVariant;
        if (variant == CifarVariant.Auto) variant = DetectVariant(paths[0]);
        int recordSize = variant == CifarVariant.Cifar10 ? Cifar10Record : Cifar100Record;
        int labelOffset = recordSize - PixelBytes - 1;   // the (fine) label byte sits just before the pixels
        string[] classNames = variant == CifarVariant.Cifar10 ? Cifar10Classes : Cifar100Classes;
        string kind = variant == CifarVariant.Cifar10 ? "CIFAR-10" : "CIFAR-100";

        var files = new byte[paths.Count][];
        var firstRecord = new int[paths.Count + 1];
        long total = 0;
        for (int f = 0; f < paths.Count; f++)
        {
            long size = FileSize(paths[f]);
            if (size == 0 || size % recordSize != 0)
                throw new QsvitException(
                    $"{paths[f]}: {kind} file size {size} bytes is not a positive multiple of the {recordSize}-byte record " +
                    $"({size / recordSize} whole record(s), {size % recordSize} byte(s) left over)" +
                    (options.CifarVariant == CifarVariant.Auto ? $"; detected as {kind}, set CifarVariant to choose" : ""));
            if (size > Array.MaxLength || total + size / recordSize > int.MaxValue)
                throw new QsvitException($"{paths[f]}: {size} bytes is too large for one CIFAR dataset");
            firstRecord[f] = (int)total;
            total += size / recordSize;
        }
        firstRecord[paths.Count] = (int)total;

        var labels = new int[total];
        for (int f = 0; f < paths.Count; f++)
        {
            files[f] = ReadAll(paths[f]);
            int records = firstRecord[f + 1] - firstRecord[f];
            if (files[f].LongLength != (long)records * recordSize)
                throw new QsvitException($"{paths[f]}: the file changed size while being read");
            for (int r = 0; r < records; r++)
            {
                int label = files[f][(long)r * recordSize + labelOffset];
                if (label >= classNames.Length)
                    throw new QsvitException(
                        $"{paths[f]}: record {r} (byte offset {(long)r * recordSize + labelOffset}) has label {label}, " +
                        $"but {kind} has {classNames.Length} classes (labels 0-{classNames.Length - 1})");
                labels[firstRecord[f] + r] = label;
            }
        }

        var normalizer = new PixelNormalizer(options.Normalization ?? Normalization.Cifar10, 3, paths[0]);
        string name = paths.Count == 1 ? $"{kind} {paths[0]}" : $"{kind} {paths[0]} (+{paths.Count - 1} more)";
        return new CifarDataset(name, labels, (string[])classNames.Clone(), normalizer, files, firstRecord, recordSize);
    }

    protected override void ReadImage(int index, Span<float> destination)
    {
        int f = 0;
        while (index >= _firstRecord[f + 1]) f++;
        long offset = (long)(index - _firstRecord[f]) * _recordSize + (_recordSize - PixelBytes);
        var pixels = _files[f].AsSpan(checked((int)offset), PixelBytes);
        const int plane = Side * Side;
        for (int c = 0; c < 3; c++)
            Normalizer.Plane(pixels.Slice(c * plane, plane), c, destination.Slice(c * plane, plane));
    }

    /// <summary>
    /// CIFAR-10 or CIFAR-100: the file or folder names when they say (data_batch_*/test_batch, the meta files
    /// beside, "cifar10"/"cifar100" folder names), else the size when it fits exactly one record size.
    /// </summary>
    internal static CifarVariant DetectVariant(string path)
    {
        var byName = VariantFromName(path);
        if (byName != CifarVariant.Auto) return byName;
        long size = FileSize(path);
        bool fits10 = size > 0 && size % Cifar10Record == 0, fits100 = size > 0 && size % Cifar100Record == 0;
        if (fits10 && !fits100) return CifarVariant.Cifar10;
        if (fits100 && !fits10) return CifarVariant.Cifar100;
        if (fits10)
            throw new QsvitException(
                $"{path}: {size} bytes fits both CIFAR-10 ({Cifar10Record}-byte) and CIFAR-100 ({Cifar100Record}-byte) records; set CifarVariant");
        throw new QsvitException(
            $"{path}: file size {size} bytes is not a multiple of the CIFAR-10 record size {Cifar10Record} " +
            $"nor of the CIFAR-100 record size {Cifar100Record}");
    }

    private static CifarVariant VariantFromName(string path)
    {
        string file = Path.GetFileNameWithoutExtension(path).ToLowerInvariant();
        if (file.StartsWith("data_batch", StringComparison.Ordinal) || file == "test_batch") return CifarVariant.Cifar10;
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir == null) return CifarVariant.Auto;
        if (File.Exists(Path.Combine(dir, "fine_label_names.txt")) || File.Exists(Path.Combine(dir, "coarse_label_names.txt")))
            return CifarVariant.Cifar100;
        if (File.Exists(Path.Combine(dir, "batches.meta.txt"))) return CifarVariant.Cifar10;
        string folder = Path.GetFileName(dir).ToLowerInvariant().Replace("-", "").Replace("_", "");
        if (folder.Contains("cifar100", StringComparison.Ordinal)) return CifarVariant.Cifar100;
        if (folder.Contains("cifar10", StringComparison.Ordinal)) return CifarVariant.Cifar10;
        return CifarVariant.Auto;
    }

    private static long FileSize(string path)
    {
        try { return new FileInfo(path).Length; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{path}: cannot read the file: {e.Message}", e);
        }
    }

    private static byte[] ReadAll(string path)
    {
        try { return File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{path}: cannot read the file: {e.Message}", e);
        }
    }

    internal static readonly string[] Cifar10Classes =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    internal static readonly string[] Cifar100Classes =
    [
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
        "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
        "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
        "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ];
}
