using System.Buffers.Binary;
using System.Text;
using Qsvit.IO.Datasets;
using Qsvit.Tests.IO.Datasets;

namespace Qsvit.Tests.Hostile;

/// <summary>Issue 9, datasets: broken images, lying idx.gz headers, PNM files and symlink loops.</summary>
public class HostileDatasetTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static DatasetOptions Small => DatasetOptions.Default with { ResizeShorter = 8, CropSize = 8, Normalization = Normalization.None };

    /// <summary>
    /// A valid 16x16 gray baseline JPEG built by hand: all-ones quantization, one-code Huffman tables (DC category 0,
    /// AC end-of-block), so each 8x8 block is the two bits "00" and every pixel decodes to 128.
    /// </summary>
    internal static byte[] Jpeg16()
    {
        var j = new List<byte> { 0xFF, 0xD8 };
        void Segment(byte marker, params byte[] body)
        {
            j.AddRange([0xFF, marker, (byte)((body.Length + 2) >> 8), (byte)(body.Length + 2)]);
            j.AddRange(body);
        }
        Segment(0xDB, [0x00, .. Enumerable.Repeat((byte)1, 64)]);                  // DQT
        Segment(0xC0, 8, 0, 16, 0, 16, 1, 1, 0x11, 0);                             // SOF0 16x16, 1 component
        byte[] oneCode = [1, .. new byte[15]];
        Segment(0xC4, [0x00, .. oneCode, 0x00]);                                   // DHT DC 0: "0" -> category 0
        Segment(0xC4, [0x10, .. oneCode, 0x00]);                                   // DHT AC 0: "0" -> EOB
        Segment(0xDA, 1, 1, 0x00, 0, 63, 0);                                       // SOS
        j.Add(0x00);                                                               // 4 blocks x "00"
        j.AddRange([0xFF, 0xD9]);
        return j.ToArray();
    }

    /// <summary>A 24-bit bottom-up BMP of interleaved RGB pixels (rows padded to 4 bytes).</summary>
    internal static byte[] Bmp(byte[] rgb, int width, int height)
    {
        int row = (width * 3 + 3) / 4 * 4;
        var b = new byte[54 + row * height];
        b[0] = (byte)'B';
        b[1] = (byte)'M';
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(2), b.Length);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(10), 54);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(22), height);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(26), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(28), 24);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++)
                    b[54 + (height - 1 - y) * row + x * 3 + c] = rgb[(y * width + x) * 3 + (2 - c)];   // BGR
        return b;
    }

    [Fact]
    public void HandBuiltBmpDecodesLikeThePng()
    {
        var rgb = TestFiles.Pattern(5, 3, seed: 9);
        Assert.Equal(ImageDecoder.DecodeRgb(TestFiles.Png(rgb, 5, 3, 3), "a.png").Rgb, ImageDecoder.DecodeRgb(Bmp(rgb, 5, 3), "a.bmp").Rgb);
    }

    [Fact]
    public void HandBuiltJpegDecodes()
    {
        var (rgb, w, h) = ImageDecoder.DecodeRgb(Jpeg16(), "x.jpg");
        Assert.Equal((16, 16), (w, h));
        Assert.All(rgb, b => Assert.Equal(128, b));
    }

    // 10. A JPEG cut anywhere (the hang was a cut inside the first segment, 8-17 bytes) or with any byte
    //     broken ends fast: decoded or a clear error naming the file.
    [Fact]
    public void JpegCutAtEveryLengthOrWithAnyByteBrokenEndsFast()
    {
        var jpeg = Jpeg16();
        var cases = new List<byte[]>();
        for (int n = 0; n < jpeg.Length; n++) cases.Add(jpeg[..n]);
        for (int i = 0; i < jpeg.Length; i++)
            foreach (byte v in new byte[] { 0x00, 0xFF, 0x7F, (byte)(jpeg[i] ^ 0x01) })
            {
                var c = (byte[])jpeg.Clone();
                c[i] = v;
                cases.Add(c);
            }
        foreach (var c in cases)
        {
            var (e, _) = Guarded.Run(() => ImageDecoder.DecodeRgb(c, "cut.jpg"), TimeSpan.FromSeconds(20));
            if (e is not null) Assert.StartsWith("cut.jpg: ", e.Message);
        }
        Assert.Contains("JPEG ends early", Guarded.Refuses(() => ImageDecoder.DecodeRgb(jpeg[..12], "cut.jpg")).Error.Message);
    }

    [Fact]
    public void BrokenImageInAFolderIsAClearErrorNamingTheFile()
    {
        File.WriteAllBytes(_dir.File("root", "cls", "a.jpg"), Jpeg16());
        string broken = _dir.File("root", "cls", "b.jpg");
        File.WriteAllBytes(broken, Jpeg16()[..12]);
        var ds = DatasetLoader.Open(System.IO.Path.Combine(_dir.Path, "root"), Small);
        var image = new float[ds.Channels * ds.Height * ds.Width];
        ds.Read(0, image);
        var (e, _) = Guarded.Refuses(() => ds.Read(1, image));
        Assert.StartsWith(broken + ": JPEG ends early (truncated file?)", e.Message);
    }

    [Theory]
    [InlineData("png")]
    [InlineData("bmp")]
    [InlineData("jpg")]
    public void ImageDeclaringTenGigapixelsIsRefusedBeforeDecoding(string kind)
    {
        byte[] bytes;
        switch (kind)
        {
            case "png":
                bytes = TestFiles.Png(new byte[3], 1, 1, 3);
                BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), 100_000);
                BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), 100_000);
                break;
            case "bmp":
                bytes = new byte[54];
                bytes[0] = (byte)'B';
                bytes[1] = (byte)'M';
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(18), 100_000);
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(22), -100_000);
                break;
            default:
                bytes = Jpeg16();
                int sof = bytes.AsSpan().IndexOf([(byte)0xFF, (byte)0xC0]);
                bytes[sof + 5] = bytes[sof + 6] = bytes[sof + 7] = bytes[sof + 8] = 0xFF;   // 65535 x 65535
                break;
        }
        var (e, allocated) = Guarded.Refuses(() => ImageDecoder.DecodeRgb(bytes, "bomb." + kind));
        Assert.Contains("a decompression bomb?", e.Message);
        Assert.True(allocated < Guarded.MiB, $"allocated {allocated:N0} bytes");
    }

    [Theory]
    [InlineData("png", "PNG declares a 4000x4000 image but holds only")]
    [InlineData("jpg", "bytes cannot hold a 4096x4096 image")]
    [InlineData("bmp", "BMP declares a 4000x4000 image of 24 bits per pixel (48000000 bytes) but the file is 90 bytes")]
    public void TinyFileDeclaringALargeImageIsRefusedBeforeTheDecoderAllocatesIt(string kind, string expected)
    {
        byte[] bytes;
        if (kind == "png")
        {
            bytes = TestFiles.Png(new byte[3], 1, 1, 3);
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), 4000);
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), 4000);
        }
        else if (kind == "bmp")
        {
            bytes = Bmp(new byte[4 * 3 * 3], 4, 3);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(18), 4000);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(22), 4000);
        }
        else
        {
            bytes = Jpeg16();
            int sof = bytes.AsSpan().IndexOf([(byte)0xFF, (byte)0xC0]);
            (bytes[sof + 5], bytes[sof + 6], bytes[sof + 7], bytes[sof + 8]) = (0x10, 0, 0x10, 0);   // 4096 x 4096 from one byte of data
        }
        var (e, allocated) = Guarded.Refuses(() => ImageDecoder.DecodeRgb(bytes, "small." + kind));
        Assert.Contains(expected, e.Message);
        Assert.True(allocated < Guarded.MiB, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void PngChunkLongerThanTheFileIsRefusedBeforeTheDecoderAllocatesIt()
    {
        var bytes = TestFiles.Png(new byte[3], 1, 1, 3);
        bytes[33] ^= 0x3D;   // the IDAT length's high byte: a ~1 GB chunk in a tiny file (found by the fuzz test)
        var (e, allocated) = Guarded.Refuses(() => ImageDecoder.DecodeRgb(bytes, "chunk.png"));
        Assert.Contains("PNG chunk at offset 33 declares", e.Message);
        Assert.True(allocated < Guarded.MiB, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void FileThatIsNoImageFormatIsNamed()
    {
        var (e, _) = Guarded.Refuses(() => ImageDecoder.DecodeRgb(Encoding.ASCII.GetBytes("GIF89a......"), "x.png"));
        Assert.Equal("x.png: not a JPEG, PNG, BMP or binary PPM/PGM image (it starts with bytes 47 49 46 38 39 61 2e 2e)", e.Message);
    }

    // 11. idx.gz: the header's declared size is checked against what the gzip file can hold, and the buffer grows
    //     only with data that really arrives.
    [Fact]
    public void GzippedIdxDeclaring31By8192By8192ImagesAllocatesNothing()
    {
        string path = _dir.File("train-images-idx3-ubyte.gz");
        File.WriteAllBytes(path, TestFiles.Gzip(TestFiles.Idx([31, 8192, 8192], new byte[16])));
        File.WriteAllBytes(_dir.File("train-labels-idx1-ubyte.gz"), TestFiles.Gzip(TestFiles.Idx([31], new byte[31])));
        var (e, allocated) = Guarded.Refuses(() => DatasetLoader.Open(path, DatasetOptions.Default));
        Assert.Contains("more than a", e.Message);
        Assert.Contains("gzip file can decompress to", e.Message);
        Assert.True(allocated < Guarded.MiB, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void GzippedIdxDeclaring2Pow30LabelsAllocatesNothing()
    {
        var gz = TestFiles.Gzip(TestFiles.Idx([1 << 30], new byte[64]));
        var (e, allocated) = Guarded.Refuses(() => IdxDataset.ReadIdx(new MemoryStream(gz), "labels.gz", IdxDataset.LabelsMagic, 1, "labels"));
        Assert.Contains("gzip file can decompress to", e.Message);
        Assert.True(allocated < Guarded.MiB, $"allocated {allocated:N0} bytes");
    }

    [Fact]
    public void GzippedIdxThatEndsEarlyAllocatesOnlyWhatArrived()
    {
        // The declared 64 MiB pass the deflate-ratio check (the file is 128 KiB of incompressible noise), but only
        // 128 KiB decompress: the buffer never grows past its first MiB.
        var gz = TestFiles.Gzip(TestFiles.Idx([1024, 256, 256], TestFiles.Noise(128 << 10, 1)));
        var (e, allocated) = Guarded.Refuses(() => IdxDataset.ReadIdx(new MemoryStream(gz), "images.gz", IdxDataset.ImagesMagic, 3, "images"));
        Assert.Contains("decompressed data ends after", e.Message);
        Assert.True(allocated < 4 * Guarded.MiB, $"allocated {allocated:N0} bytes");
    }

    // 12. PPM/PGM: read (binary, 8-bit), the same pixels as the PNG of the same image.
    [Fact]
    public void BinaryPpmAndPgmDecodeLikeThePng()
    {
        var rgb = TestFiles.Pattern(5, 3, seed: 7);
        var (fromPng, _, _) = ImageDecoder.DecodeRgb(TestFiles.Png(rgb, 5, 3, 3), "a.png");
        var (fromPpm, w, h) = ImageDecoder.DecodeRgb([.. Encoding.ASCII.GetBytes("P6\n# a comment\n5 3\n255\n"), .. rgb], "a.ppm");
        Assert.Equal((5, 3), (w, h));
        Assert.Equal(fromPng, fromPpm);

        var gray = TestFiles.Noise(15, 3);
        var (fromPgm, _, _) = ImageDecoder.DecodeRgb([.. Encoding.ASCII.GetBytes("P5 5 3 255 "), .. gray], "a.pgm");
        Assert.Equal(gray.SelectMany(g => new[] { g, g, g }).ToArray(), fromPgm);
    }

    [Fact]
    public void PnmFolderImagesAreRead()
    {
        File.WriteAllBytes(_dir.File("root", "cls", "a.ppm"), [.. Encoding.ASCII.GetBytes("P6 8 8 255\n"), .. TestFiles.Pattern(8, 8, 1)]);
        File.WriteAllBytes(_dir.File("root", "cls", "b.pgm"), [.. Encoding.ASCII.GetBytes("P5 8 8 255\n"), .. TestFiles.Noise(64, 2)]);
        var ds = DatasetLoader.Open(System.IO.Path.Combine(_dir.Path, "root"), Small);
        var image = new float[ds.Channels * ds.Height * ds.Width];
        Assert.Equal(2, ds.Count);
        ds.Read(0, image);
        ds.Read(1, image);
    }

    [Theory]
    [InlineData("P3\n2 2\n255\n0 0 0", "a P3 netpbm image; only binary PGM (P5) and PPM (P6) are read")]
    [InlineData("P6\n2 2\n65535\n", "PPM/PGM with maxval 65535; only 8-bit images (maxval 255) are read")]
    [InlineData("P6\n2 2\n255\nabc", "2x2 PPM needs 12 bytes of pixels but has 3 (truncated?)")]
    [InlineData("P6\n2", "PPM/PGM header ends before its height")]
    [InlineData("P6\n99999999999 2\n255\n", "PPM/PGM width is not a number below 2^31 (offset 3)")]
    public void UnsupportedOrBrokenPnmIsAClearError(string text, string expected)
    {
        var (e, _) = Guarded.Refuses(() => ImageDecoder.DecodeRgb(Encoding.ASCII.GetBytes(text), "x.ppm"));
        Assert.Equal("x.ppm: " + expected, e.Message);
    }

    // 13. Symbolic links are followed (as torchvision does) but each real folder is visited once.
    [Fact]
    public void SymlinkLoopsInsideAnImageFolderCountEachImageOnce()
    {
        string root = System.IO.Path.Combine(_dir.Path, "root");
        File.WriteAllBytes(_dir.File("root", "cls", "a.png"), TestFiles.Png(new byte[3], 1, 1, 3));
        File.WriteAllBytes(_dir.File("root", "cls", "sub", "b.png"), TestFiles.Png(new byte[3], 1, 1, 3));
        Directory.CreateSymbolicLink(System.IO.Path.Combine(root, "cls", "sub", "up"), "..");                    // loop to cls
        Directory.CreateSymbolicLink(System.IO.Path.Combine(root, "cls", "sub", "self"), ".");                   // loop to itself
        Directory.CreateSymbolicLink(System.IO.Path.Combine(root, "cls", "top"), System.IO.Path.Combine(root, "cls"));   // absolute loop
        Directory.CreateSymbolicLink(System.IO.Path.Combine(root, "cls", "x"), "y");                             // x -> y -> x
        Directory.CreateSymbolicLink(System.IO.Path.Combine(root, "cls", "y"), "x");
        IImageDataset? ds = null;
        Guarded.Accepts(() => ds = DatasetLoader.Open(root, Small));
        Assert.Equal(2, ds!.Count);
    }

    [Fact]
    public void LinkedFolderOutsideTheTreeIsStillRead()
    {
        File.WriteAllBytes(_dir.File("elsewhere", "c.png"), TestFiles.Png(new byte[3], 1, 1, 3));
        string root = System.IO.Path.Combine(_dir.Path, "root");
        File.WriteAllBytes(_dir.File("root", "cls", "a.png"), TestFiles.Png(new byte[3], 1, 1, 3));
        Directory.CreateSymbolicLink(System.IO.Path.Combine(root, "cls", "linked"), System.IO.Path.Combine(_dir.Path, "elsewhere"));
        var ds = DatasetLoader.Open(root, Small);
        Assert.Equal(2, ds.Count);
    }
}
