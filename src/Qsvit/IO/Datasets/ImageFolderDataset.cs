using System.Buffers;

namespace Qsvit.IO.Datasets;

/// <summary>
/// An ImageNet-style folder, laid out and ordered as torchvision's ImageFolder: root/&lt;class&gt;/.../&lt;image&gt;,
/// classes the sorted subfolder names, each class's files found recursively in sorted folder then file order
/// (code-point order, as Python's sorted()). Each image is decoded as RGB, resized so its shorter side is
/// ResizeShorter (Pillow bicubic), center-cropped to CropSize and normalized.
/// </summary>
internal sealed class ImageFolderDataset : ImageDatasetBase
{
    /// <summary>Extensions read (any case).</summary>
    public static readonly string[] Extensions = [".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm"];

    /// <summary>Extensions torchvision would include but that cannot be decoded here.</summary>
    private static readonly string[] UnsupportedExtensions = [".tif", ".tiff", ".webp"];

    private readonly string[] _files;
    private readonly int _resizeShorter;

    private ImageFolderDataset(string name, int crop, int resizeShorter, int[] labels, string[] classNames,
        PixelNormalizer normalizer, string[] files)
        : base(name, 3, crop, crop, labels, classNames, normalizer)
    {
        _files = files;
        _resizeShorter = resizeShorter;
    }

    /// <summary>The image files, in dataset order.</summary>
    public IReadOnlyList<string> Files => _files;

    public static ImageFolderDataset Open(string root, DatasetOptions options)
    {
        if (options.Channels != 3)
            throw new QsvitException(
                $"{root}: image folders are decoded as RGB; they cannot be read as {options.Channels} channel(s) (set Channels to 3)");
        var classDirs = SubDirectories(root);
        if (classDirs.Length == 0)
            throw new QsvitException($"{root}: no class subfolders (expected root/<class>/<image>.jpg|.png)");

        var files = new List<string>();
        var labels = new List<int>();
        var empty = new List<string>();
        for (int label = 0; label < classDirs.Length; label++)
        {
            int before = files.Count;
            CollectImages(classDirs[label], files);
            for (int i = before; i < files.Count; i++) labels.Add(label);
            if (files.Count == before) empty.Add(Path.GetFileName(classDirs[label]));
        }
        if (empty.Count > 0)
            throw new QsvitException(
                $"{root}: class folder(s) {string.Join(", ", empty.Take(10).Select(e => $"'{e}'"))}{(empty.Count > 10 ? ", ..." : "")} " +
                $"hold no images ({string.Join(", ", Extensions)})");

        var normalizer = new PixelNormalizer(options.Normalization ?? Normalization.ImageNet, 3, root);
        var classNames = classDirs.Select(d => Path.GetFileName(d)!).ToArray();
        return new ImageFolderDataset($"image folder {root}", options.CropSize, options.ResizeShorter,
            labels.ToArray(), classNames, normalizer, files.ToArray());
    }

    /// <summary>Whether <paramref name="root"/> looks like an image folder: some subfolder holds an image file, at any depth.</summary>
    internal static bool LooksLikeImageFolder(string root)
    {
        foreach (var dir in SubDirectories(root))
        {
            try
            {
                foreach (var folder in Folders(dir))
                    if (Directory.EnumerateFiles(folder).Any(IsImageFile)) return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or QsvitException) { }
        }
        return false;
    }

    protected override void ReadImage(int index, Span<float> destination)
    {
        string path = _files[index];
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{path}: cannot read the image: {e.Message}", e);
        }

        var (pixels, width, height) = ImageDecoder.DecodeRgb(bytes, path);

        int crop = Height;
        var rgb = ArrayPool<byte>.Shared.Rent(crop * crop * 3);
        try
        {
            ResizeAndCrop(pixels, width, height, _resizeShorter, crop, rgb.AsSpan(0, crop * crop * 3));
            Normalizer.Interleaved(rgb.AsSpan(0, crop * crop * 3), destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rgb);
        }
    }

    /// <summary>
    /// torchvision's Resize(shorter, BICUBIC) then CenterCrop(crop) on an interleaved RGB image, into
    /// crop × crop × 3 bytes. Where the crop reaches past the resized image, the pixels are 0 (torchvision pads).
    /// </summary>
    internal static void ResizeAndCrop(ReadOnlySpan<byte> rgb, int width, int height, int shorter, int crop, Span<byte> destination)
    {
        var (outWidth, outHeight) = PilBicubic.ShorterSideSize(width, height, shorter);
        if (outWidth < 1 || outHeight < 1)
            throw new QsvitException($"a {width}x{height} image resized to shorter side {shorter} would be {outWidth}x{outHeight}");
        int top = PilBicubic.CenterCropOffset(outHeight, crop), left = PilBicubic.CenterCropOffset(outWidth, crop);
        // The part of the crop inside the resized image.
        int x0 = Math.Max(left, 0), y0 = Math.Max(top, 0);
        int x1 = Math.Min(left + crop, outWidth), y1 = Math.Min(top + crop, outHeight);
        if (x0 == left && y0 == top && x1 - x0 == crop && y1 - y0 == crop)
        {
            PilBicubic.ResizeWindow(rgb, width, height, 3, outWidth, outHeight, x0, y0, crop, crop, destination);
            return;
        }
        destination.Clear();
        int windowWidth = x1 - x0, windowHeight = y1 - y0;
        var window = new byte[windowWidth * windowHeight * 3];
        PilBicubic.ResizeWindow(rgb, width, height, 3, outWidth, outHeight, x0, y0, windowWidth, windowHeight, window);
        for (int y = 0; y < windowHeight; y++)
            window.AsSpan(y * windowWidth * 3, windowWidth * 3).CopyTo(destination.Slice(((y0 - top + y) * crop + (x0 - left)) * 3));
    }

    private static string[] SubDirectories(string dir)
    {
        try
        {
            var dirs = Directory.GetDirectories(dir);
            Array.Sort(dirs, CodePointComparer.Instance);
            return dirs;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{dir}: cannot list the folder: {e.Message}", e);
        }
    }

    /// <summary>
    /// Appends the images under <paramref name="dir"/> in torchvision's order: sorted(os.walk(dir)) visits folders in
    /// sorted path order, and each folder's files are sorted.
    /// </summary>
    private static void CollectImages(string dir, List<string> files)
    {
        var folders = Folders(dir).ToList();
        folders.Sort(CodePointComparer.Instance);
        foreach (var folder in folders)
        {
            string[] names;
            try { names = Directory.GetFiles(folder); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new QsvitException($"{folder}: cannot list the folder: {e.Message}", e);
            }
            Array.Sort(names, CodePointComparer.Instance);
            foreach (var name in names)
            {
                if (IsImageFile(name)) files.Add(name);
                else if (UnsupportedExtensions.Any(x => name.EndsWith(x, StringComparison.OrdinalIgnoreCase)))
                    throw new QsvitException($"{name}: {Path.GetExtension(name)} images are not supported (only {string.Join(", ", Extensions)})");
            }
        }
    }

    /// <summary>
    /// <paramref name="dir"/> and every folder below it, following symbolic links as torchvision does (os.walk with
    /// followlinks=True) but visiting each real folder once: a link loop, or a second link to a folder already seen,
    /// adds nothing (os.walk would recurse until the path is too long, counting the same images again and again).
    /// </summary>
    private static IEnumerable<string> Folders(string dir)
    {
        var seen = new HashSet<string>(OperatingSystem.IsWindows() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
        var pending = new Stack<(string Path, string Real)>();
        pending.Push((dir, RealPath(dir)));
        while (pending.Count > 0)
        {
            var (d, real) = pending.Pop();
            if (!seen.Add(real)) continue;
            yield return d;
            foreach (var sub in SubDirectories(d))
            {
                string subReal = IsLink(sub) ? RealPath(sub) : Path.Combine(real, Path.GetFileName(sub));
                if (!seen.Contains(subReal)) pending.Push((sub, subReal));
            }
        }
    }

    private static bool IsLink(string path)
    {
        try { return new DirectoryInfo(path).LinkTarget is not null; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>The path with every symbolic link in it resolved (realpath), so one folder has one name.</summary>
    internal static string RealPath(string path) => RealPath(Path.GetFullPath(path), 0);

    private static string RealPath(string full, int hops)
    {
        string root = Path.GetPathRoot(full) ?? "";
        string current = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar))
        {
            if (part.Length == 0 || part == ".") continue;
            if (part == "..") { current = Path.GetDirectoryName(current) ?? root; continue; }
            string next = Path.Combine(current, part);
            string? target;
            try { target = new DirectoryInfo(next).LinkTarget; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { target = null; }
            if (target is not null)
            {
                if (++hops > MaxLinkHops) throw new QsvitException($"{full}: too many levels of symbolic links (a link loop?)");
                next = RealPath(Path.GetFullPath(target, current), hops);
            }
            current = next;
        }
        return current;
    }

    /// <summary>Links followed while resolving one path, as Linux's ELOOP limit.</summary>
    private const int MaxLinkHops = 40;

    private static bool IsImageFile(string path) => Extensions.Any(x => path.EndsWith(x, StringComparison.OrdinalIgnoreCase));

    /// <summary>Orders strings by Unicode code point, as Python compares str.</summary>
    internal sealed class CodePointComparer : IComparer<string>
    {
        public static readonly CodePointComparer Instance = new();

        public int Compare(string? x, string? y)
        {
            if (ReferenceEquals(x, y)) return 0;
            if (x is null) return -1;
            if (y is null) return 1;
            var a = x.EnumerateRunes();
            var b = y.EnumerateRunes();
            while (true)
            {
                bool hasA = a.MoveNext(), hasB = b.MoveNext();
                if (!hasA || !hasB) return hasA ? 1 : hasB ? -1 : 0;
                int d = a.Current.Value.CompareTo(b.Current.Value);
                if (d != 0) return d;
            }
        }
    }
}
