using System.Buffers.Binary;
using System.Globalization;
using StbImageSharp;

namespace Qsvit.IO.Datasets;

/// <summary>
/// Decodes one image file to interleaved RGB bytes: JPEG with <see cref="Jpeg.JpegDecoder"/> (the same bytes as PIL
/// over libjpeg-turbo), PNG and BMP through StbImageSharp, binary PPM/PGM here. The format is told from the bytes, and
/// the header is checked before anything is decoded: the size must be plausible (no decompression bombs) and a JPEG's
/// segments must be complete up to its first scan. Every failure is a <see cref="QsvitException"/> naming the file.
/// </summary>
internal static class ImageDecoder
{
    /// <summary>Pillow's DecompressionBombError threshold: twice Image.MAX_IMAGE_PIXELS.</summary>
    public const long MaxPixels = 2 * 89_478_485L;

    public static (byte[] Rgb, int Width, int Height) DecodeRgb(byte[] bytes, string path)
    {
        var (kind, width, height) = ReadHeader(bytes, path);
        CheckSize(kind, width, height, path);
        if (kind == "PNM") return (DecodePnm(bytes, path, width, height), width, height);
        if (kind == "JPEG")
        {
            var rgb = Jpeg.JpegDecoder.DecodeRgb(bytes, path, out int w, out int h);
            if (w != width || h != height) throw new QsvitException($"{path}: cannot decode the JPEG image (frame size changed)");
            return (rgb, width, height);
        }

        ImageResult image;
        try { image = ImageResult.FromMemory(bytes, ColorComponents.RedGreenBlue); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new QsvitException($"{path}: cannot decode the {kind} image: {e.Message}", e);
        }
        if (image?.Data == null || image.Width != width || image.Height != height || image.Data.Length < (long)width * height * 3)
            throw new QsvitException($"{path}: cannot decode the {kind} image");
        return (image.Data, width, height);
    }

    private static void CheckSize(string kind, int width, int height, string path)
    {
        if (width < 1 || height < 1)
            throw new QsvitException($"{path}: {kind} header declares a {width}x{height} image");
        if ((long)width * height > MaxPixels)
            throw new QsvitException($"{path}: {kind} header declares a {width}x{height} image, more than {MaxPixels:N0} pixels (a decompression bomb?)");
    }

    private static (string Kind, int Width, int Height) ReadHeader(byte[] b, string path)
    {
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        {
            var (w, h) = JpegSize(b, path);
            return ("JPEG", w, h);
        }
        if (b.Length >= 8 && b.AsSpan(0, 8).SequenceEqual(PngSignature))
        {
            if (b.Length < 33 || !b.AsSpan(12, 4).SequenceEqual("IHDR"u8))
                throw new QsvitException($"{path}: PNG ends before its IHDR header ({b.Length} bytes; truncated?)");
            int w = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(16)), h = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(20));
            CheckSize("PNG", w, h, path);
            CheckPngData(b, path, w, h);
            return ("PNG", w, h);
        }
        if (b.Length >= 2 && b[0] == 'B' && b[1] == 'M')
        {
            if (b.Length < 26) throw new QsvitException($"{path}: BMP ends before its header ({b.Length} bytes; truncated?)");
            int w = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(18)), h = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(22));
            h = h == int.MinValue ? 0 : Math.Abs(h);
            CheckSize("BMP", w, h, path);
            // The raster is stored uncompressed (StbImageSharp reads no RLE): the file must hold every row.
            int bpp = b.Length >= 30 ? BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(28)) : 0;
            long need = ((long)w * Math.Max(bpp, 1) + 31) / 32 * 4 * h;
            if (b.Length < need)
                throw new QsvitException($"{path}: BMP declares a {w}x{h} image of {bpp} bits per pixel ({need} bytes) but the file is {b.Length} bytes (truncated?)");
            return ("BMP", w, h);
        }
        if (b.Length >= 2 && b[0] == 'P' && b[1] is >= (byte)'1' and <= (byte)'7')
        {
            if (b[1] is not ((byte)'5' or (byte)'6'))
                throw new QsvitException($"{path}: a P{(char)b[1]} netpbm image; only binary PGM (P5) and PPM (P6) are read");
            var (w, h) = PnmSize(b, path);
            return ("PNM", w, h);
        }
        string head = string.Join(" ", b.Take(8).Select(x => x.ToString("x2", CultureInfo.InvariantCulture)));
        throw new QsvitException($"{path}: not a JPEG, PNG, BMP or binary PPM/PGM image (it starts with bytes {(head.Length > 0 ? head : "(none: empty file)")})");
    }

    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>
    /// Walks a JPEG's marker segments from SOI to the first SOS, checking each length against the file, and returns
    /// the frame size. Only baseline, extended and progressive Huffman JPEGs (SOF0-SOF2).
    /// </summary>
    internal static (int Width, int Height) JpegSize(ReadOnlySpan<byte> b, string path)
    {
        int pos = 2, width = 0, height = 0;
        bool frame = false;
        while (true)
        {
            if (pos >= b.Length) throw Truncated(path, pos, "before its image data");
            if (b[pos] != 0xFF) throw new QsvitException($"{path}: corrupt JPEG: expected a marker at offset {pos}, found byte 0x{b[pos]:x2}");
            while (pos < b.Length && b[pos] == 0xFF) pos++;   // fill bytes
            if (pos >= b.Length) throw Truncated(path, pos, "inside a marker");
            int marker = b[pos++];
            if (marker is >= 0xD0 and <= 0xD7 or 0x01) continue;   // standalone markers
            if (marker is 0x00 or 0xD8 or 0xD9)
                throw new QsvitException($"{path}: corrupt JPEG: marker 0xFF{marker:X2} at offset {pos - 2} before any image data");
            if (pos + 2 > b.Length) throw Truncated(path, pos, $"in the length of segment 0xFF{marker:X2}");
            int length = BinaryPrimitives.ReadUInt16BigEndian(b[pos..]);
            if (length < 2 || pos + length > b.Length)
                throw Truncated(path, pos, $"inside segment 0xFF{marker:X2}, which declares {length} bytes but {b.Length - pos} remain");
            var seg = b.Slice(pos + 2, length - 2);
            if (marker is >= 0xC0 and <= 0xCF and not (0xC4 or 0xC8 or 0xCC))   // SOFn
            {
                if (marker > 0xC2)
                    throw new QsvitException($"{path}: a JPEG of type SOF{marker - 0xC0} (lossless, hierarchical or arithmetic-coded) is not supported");
                if (frame) throw new QsvitException($"{path}: corrupt JPEG: a second frame header at offset {pos - 2}");
                if (seg.Length < 6) throw new QsvitException($"{path}: corrupt JPEG: frame header of {seg.Length} bytes");
                height = BinaryPrimitives.ReadUInt16BigEndian(seg[1..]);
                width = BinaryPrimitives.ReadUInt16BigEndian(seg[3..]);
                int components = seg[5];
                if (components is not (1 or 3 or 4) || seg.Length != 6 + 3 * components)
                    throw new QsvitException($"{path}: corrupt JPEG: frame header with {components} components in {seg.Length} bytes");
                if (height == 0) throw new QsvitException($"{path}: a JPEG whose height comes later (DNL marker) is not supported");
                frame = true;
            }
            else if (marker == 0xDA)   // SOS: the compressed data follows
            {
                if (!frame) throw new QsvitException($"{path}: corrupt JPEG: image data (SOS) before the frame header");
                int components = seg.Length > 0 ? seg[0] : 0;
                if (components is < 1 or > 4 || seg.Length != 4 + 2 * components)
                    throw new QsvitException($"{path}: corrupt JPEG: scan header with {components} components in {seg.Length} bytes");
                if (pos + length >= b.Length) throw Truncated(path, pos + length, "at the start of its image data");
                // Every 8x8 block costs at least one bit (its DC code); a quarter of the luma blocks is a safe floor
                // for any subsampling. Less data is a truncated file whose declared size would be allocated in full.
                CheckSize("JPEG", width, height, path);
                long blocks = ((width + 7L) / 8) * ((height + 7L) / 8);
                long dataBits = 8L * (b.Length - pos - length);
                if (dataBits < blocks / 4)
                    throw Truncated(path, b.Length, $"inside its image data: {b.Length - pos - length} bytes cannot hold a {width}x{height} image");
                return (width, height);
            }
            pos += length;
        }
    }

    /// <summary>
    /// The IDAT chunks must be able to inflate to the rows the header declares (deflate expands at most 1032:1), so a
    /// tiny PNG cannot make the decoder allocate a huge image.
    /// </summary>
    private static void CheckPngData(byte[] b, string path, int width, int height)
    {
        if (width < 1 || height < 1) return;
        int channels = b[25] switch { 0 or 3 => 1, 4 => 2, 2 => 3, 6 => 4, _ => 1 };
        long rowBits = (long)width * channels * Math.Max((int)b[24], 1);
        long raw = height * (1 + (rowBits + 7) / 8);
        long idat = 0;
        // Each chunk must fit in the file: StbImageSharp allocates a chunk's declared length before reading it.
        for (long pos = 8; pos + 8 <= b.Length;)
        {
            long length = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan((int)pos));
            if (length > b.Length - pos - 12)
                throw new QsvitException($"{path}: PNG chunk at offset {pos} declares {length} bytes but only {Math.Max(0, b.Length - pos - 12)} remain (truncated or corrupt)");
            var type = b.AsSpan((int)pos + 4, 4);
            if (type.SequenceEqual("IDAT"u8)) idat += length;
            pos += 12 + length;
            if (type.SequenceEqual("IEND"u8)) break;
        }
        if (raw / 1032 > idat + 64)
            throw new QsvitException($"{path}: PNG declares a {width}x{height} image but holds only {idat} bytes of image data (truncated?)");
    }

    private static QsvitException Truncated(string path, int offset, string where) =>
        new($"{path}: JPEG ends early (truncated file?): {where} at offset {offset}");

    /// <summary>Width and height of a binary PGM/PPM; the header must be followed by the whole raster.</summary>
    private static (int Width, int Height) PnmSize(byte[] b, string path)
    {
        var (w, h, maxval, dataStart) = PnmHeader(b, path);
        int channels = b[1] == '6' ? 3 : 1;
        if (maxval != 255)
            throw new QsvitException($"{path}: PPM/PGM with maxval {maxval}; only 8-bit images (maxval 255) are read");
        if (w < 1 || h < 1) return (w, h);
        long need = (long)w * h * channels;
        if (b.Length - dataStart < need)
            throw new QsvitException($"{path}: {w}x{h} {(channels == 3 ? "PPM" : "PGM")} needs {need} bytes of pixels but has {b.Length - dataStart} (truncated?)");
        return (w, h);
    }

    private static (int Width, int Height, int MaxVal, int DataStart) PnmHeader(byte[] b, string path)
    {
        int pos = 2;
        int Next(string what)
        {
            while (true)   // whitespace and # comments
            {
                if (pos >= b.Length) throw new QsvitException($"{path}: PPM/PGM header ends before its {what}");
                if (b[pos] == '#') { while (pos < b.Length && b[pos] != '\n' && b[pos] != '\r') pos++; continue; }
                if (b[pos] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r' or 0x0B or 0x0C) { pos++; continue; }
                break;
            }
            long v = 0;
            int start = pos;
            while (pos < b.Length && b[pos] is >= (byte)'0' and <= (byte)'9' && pos - start < 10) v = v * 10 + (b[pos++] - '0');
            if (pos == start || v > int.MaxValue || (pos < b.Length && b[pos] is >= (byte)'0' and <= (byte)'9'))
                throw new QsvitException($"{path}: PPM/PGM {what} is not a number below 2^31 (offset {start})");
            return (int)v;
        }
        int w = Next("width"), h = Next("height"), maxval = Next("maxval");
        if (pos >= b.Length) throw new QsvitException($"{path}: PPM/PGM ends after its header");
        return (w, h, maxval, pos + 1);   // exactly one whitespace byte before the raster
    }

    private static byte[] DecodePnm(byte[] b, string path, int width, int height)
    {
        var (_, _, _, start) = PnmHeader(b, path);
        int pixels = checked(width * height);
        var rgb = new byte[checked(pixels * 3)];
        if (b[1] == '6') b.AsSpan(start, pixels * 3).CopyTo(rgb);
        else
            for (int i = 0; i < pixels; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = b[start + i];
        return rgb;
    }
}
