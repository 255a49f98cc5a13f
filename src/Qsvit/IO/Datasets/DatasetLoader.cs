using System.Text.RegularExpressions;

namespace Qsvit.IO.Datasets;

/// <summary>Opens a dataset from a path, telling the format from the path itself.</summary>
public static partial class DatasetLoader
{
    /// <summary>
    /// Opens <paramref name="path"/>:
    /// <list type="bullet">
    /// <item>a CIFAR-10/100 binary file (*.bin);</item>
    /// <item>an idx images file (*-images-idx3-ubyte, raw or .gz; the labels file beside it is found);</item>
    /// <item>a folder holding CIFAR .bin files or idx files: <paramref name="split"/> picks the file
    /// ("test" → test_batch.bin / test.bin / t10k-images-idx3-ubyte, "train" → data_batch_*.bin or train.bin /
    /// train-images-idx3-ubyte, otherwise &lt;split&gt;.bin or &lt;split&gt;-images-idx3-ubyte); it may be left out
    /// when the folder holds only one candidate;</item>
    /// <item>an image folder root/&lt;class&gt;/&lt;image&gt;; with a <paramref name="split"/>, root/&lt;split&gt; is the image folder.</item>
    /// </list>
    /// <paramref name="split"/> must be null when <paramref name="path"/> is a file.
    /// </summary>
    public static IImageDataset Open(string path, DatasetOptions options, string? split = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (path.Length == 0) throw new QsvitException("dataset path is empty");
        if (split != null && (split.Length == 0 || split.IndexOfAny(['/', '\\']) >= 0 || split is "." or ".."))
            throw new QsvitException($"dataset split '{split}' is not a plain name");

        if (File.Exists(path))
        {
            if (split != null)
                throw new QsvitException($"{path}: a split ('{split}') selects a file inside a folder, but the path is already a file");
            return OpenFile(path, options);
        }
        if (Directory.Exists(path)) return OpenDirectory(path, options, split);
        throw new QsvitException($"dataset path '{path}' does not exist (expected a CIFAR .bin file, an idx images file or a folder)");
    }

    private static IImageDataset OpenFile(string path, DatasetOptions options)
    {
        string name = Path.GetFileName(path);
        if (name.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return CifarDataset.Open([path], options);
        if (IsIdxLabelsName(name))
            throw new QsvitException($"{path} is an idx labels file; give the images file (*-images-idx3-ubyte) beside it");
        if (IsIdxImagesName(name)) return IdxDataset.Open(path, options);

        // An unfamiliar name: look at the content.
        if (StartsWithIdxImagesMagic(path)) return IdxDataset.Open(path, options);
        long size = new FileInfo(path).Length;
        if (size > 0 && (size % CifarDataset.Cifar10Record == 0 || size % CifarDataset.Cifar100Record == 0))
            return CifarDataset.Open([path], options);
        throw new QsvitException(
            $"{path}: cannot tell the dataset format. Tried: CIFAR binary (needs a .bin name or a size that is a multiple of " +
            $"{CifarDataset.Cifar10Record} or {CifarDataset.Cifar100Record} bytes; this file is {size} bytes), " +
            "idx images (needs a *-images-idx3-ubyte name or the magic 0x00000803, raw or gzipped), " +
            "image folder (needs a folder, not a file)");
    }

    private static IImageDataset OpenDirectory(string dir, DatasetOptions options, string? split)
    {
        string[] files;
        try { files = Directory.GetFiles(dir).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{dir}: cannot list the folder: {e.Message}", e);
        }

        var idx = files.Where(IsIdxImagesName).ToArray();
        if (idx.Length > 0) return IdxDataset.Open(Path.Combine(dir, PickIdx(dir, idx, split)), options);

        var bins = files.Where(f => f.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)).ToArray();
        if (bins.Length > 0) return CifarDataset.Open(PickCifar(dir, bins, split).Select(f => Path.Combine(dir, f)).ToArray(), options);

        if (split != null)
        {
            string sub = Path.Combine(dir, split);
            if (Directory.Exists(sub) && ImageFolderDataset.LooksLikeImageFolder(sub)) return ImageFolderDataset.Open(sub, options);
            throw new QsvitException(
                $"{dir}: split '{split}' not found. Tried: CIFAR .bin files (none), idx images files (none), " +
                $"an image folder at {sub} ({(Directory.Exists(sub) ? "no class subfolders with images" : "no such folder")})");
        }
        if (ImageFolderDataset.LooksLikeImageFolder(dir)) return ImageFolderDataset.Open(dir, options);
        throw new QsvitException(
            $"{dir}: cannot tell the dataset format. Tried: CIFAR .bin files (none in the folder), " +
            "idx images files *-images-idx3-ubyte[.gz] (none), an image folder root/<class>/<image> " +
            $"(no subfolder holds {string.Join(", ", ImageFolderDataset.Extensions)} files)");
    }

    private static string PickIdx(string dir, string[] candidates, string? split)
    {
        if (split == null)
        {
            if (candidates.Length == 1) return candidates[0];
            throw new QsvitException(
                $"{dir} holds several idx images files ({string.Join(", ", candidates)}); choose one with a split (e.g. 't10k' or 'train') or give its path");
        }
        string prefix = split == "test" ? "t10k" : split;
        var match = candidates.Where(c => IdxPrefix(c) == prefix).ToArray();
        if (match.Length == 0)
            throw new QsvitException($"{dir}: no idx images file for split '{split}' (found {string.Join(", ", candidates)})");
        // The same split both raw and gzipped: take the raw one.
        return match.FirstOrDefault(m => !m.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) ?? match[0];
    }

    private static string[] PickCifar(string dir, string[] bins, string? split)
    {
        if (split == null)
        {
            if (bins.Length == 1) return bins;
            throw new QsvitException(
                $"{dir} holds several .bin files ({string.Join(", ", bins)}); choose one with a split (e.g. 'test') or give the file's path");
        }
        string? Find(string file) => bins.FirstOrDefault(b => string.Equals(b, file, StringComparison.OrdinalIgnoreCase));
        string[]? picked = split switch
        {
            "test" => Find("test_batch.bin") is { } t ? [t] : Find("test.bin") is { } u ? [u] : null,
            "train" => DataBatches(bins) is { Length: > 0 } batches ? batches : Find("train.bin") is { } v ? [v] : null,
            _ => Find(split + ".bin") is { } w ? [w] : null,
        };
        return picked ?? throw new QsvitException($"{dir}: no CIFAR file for split '{split}' (found {string.Join(", ", bins)})");
    }

    /// <summary>data_batch_N.bin files in N order.</summary>
    private static string[] DataBatches(string[] bins) =>
        bins.Select(b => (b, m: DataBatchName().Match(b)))
            .Where(t => t.m.Success)
            .OrderBy(t => long.Parse(t.m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .Select(t => t.b)
            .ToArray();

    private static bool IsIdxImagesName(string name) => IdxDataset.IsImagesName(name);
    private static bool IsIdxLabelsName(string name) => IdxDataset.IsLabelsName(name);
    private static string IdxPrefix(string name) => IdxDataset.SplitOf(name);

    private static bool StartsWithIdxImagesMagic(string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            using Stream stream = IdxDataset.IsGzip(file) ? new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionMode.Decompress) : file;
            Span<byte> magic = stackalloc byte[4];
            return stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 &&
                   System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(magic) == IdxDataset.ImagesMagic;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return false;
        }
    }

    [GeneratedRegex(@"^data_batch_(\d{1,9})\.bin$", RegexOptions.IgnoreCase)]
    private static partial Regex DataBatchName();
}
