using Qsvit.IO.Datasets;

namespace Qsvit.Tests.IO.Datasets;

public class ImageFolderDatasetTests
{
    private static DatasetOptions Options(int shorter, int crop) =>
        DatasetOptions.Default with { ResizeShorter = shorter, CropSize = crop, Normalization = Normalization.None };

    private static void WritePng(string path, byte[] pixels, int width, int height, int channels = 3) =>
        File.WriteAllBytes(path, TestFiles.Png(pixels, width, height, channels));

    /// <summary>Reads image <paramref name="index"/> back as HWC bytes (Normalization.None).</summary>
    private static byte[] ReadBytes(IImageDataset ds, int index)
    {
        var image = new float[ds.Channels * ds.Height * ds.Width];
        ds.Read(index, image);
        return TestFiles.Interleave(TestFiles.ToBytes(image), ds.Channels, ds.Height, ds.Width);
    }

    /// <summary>torchvision Resize(shorter) + CenterCrop(crop) by the double-precision reference, no padding.</summary>
    private static byte[] ReferencePipeline(byte[] rgb, int w, int h, int shorter, int crop)
    {
        int ow, oh;
        if (w <= h) (ow, oh) = (shorter, (int)((double)shorter * h / w));
        else (ow, oh) = ((int)((double)shorter * w / h), shorter);
        var resized = PilBicubicTests.Reference(rgb, w, h, 3, ow, oh);
        int top = (int)Math.Round((oh - crop) / 2.0, MidpointRounding.ToEven), left = (int)Math.Round((ow - crop) / 2.0, MidpointRounding.ToEven);
        var result = new byte[crop * crop * 3];
        for (int y = 0; y < crop; y++)
            Array.Copy(resized, ((top + y) * ow + left) * 3, result, y * crop * 3, crop * 3);
        return result;
    }

    [Fact]
    public void ClassesAndFiles_FollowTorchvisionOrder()
    {
        using var dir = new TempDir();
        var px = TestFiles.Pattern(8, 8, 1);
        // Class folders in ordinal order: "B" < "a" < "a b" < "b".
        WritePng(dir.File("b", "x.png"), px, 8, 8);
        WritePng(dir.File("a", "2.png"), px, 8, 8);
        WritePng(dir.File("a", "10.PNG"), px, 8, 8);          // "10.PNG" < "2.png"; extension case ignored
        WritePng(dir.File("a", "sub", "0.png"), px, 8, 8);    // subfolders are walked after the folder's files
        File.WriteAllText(dir.File("a", "notes.txt"), "not an image");
        WritePng(dir.File("a b", "y.png"), px, 8, 8);
        WritePng(dir.File("B", "z.png"), px, 8, 8);

        var ds = DatasetLoader.Open(dir.Path, Options(8, 8));
        Assert.Equal(["B", "a", "a b", "b"], ds.ClassNames);
        var files = ((ImageFolderDataset)ds).Files.Select(f => Path.GetRelativePath(dir.Path, f).Replace('\\', '/')).ToArray();
        Assert.Equal(["B/z.png", "a/10.PNG", "a/2.png", "a/sub/0.png", "a b/y.png", "b/x.png"], files);
        Assert.Equal([0, 1, 1, 1, 2, 3], Enumerable.Range(0, ds.Count).Select(ds.Label));
    }

    [Fact]
    public void ResizeAndCrop_ShapesAndValuesMatchReference()
    {
        using var dir = new TempDir();
        var sizes = new[] { (40, 30), (30, 40), (97, 73), (16, 16), (13, 50), (200, 21) };
        var sources = new List<byte[]>();
        for (int i = 0; i < sizes.Length; i++)
        {
            var (w, h) = sizes[i];
            var px = TestFiles.Pattern(w, h, seed: 100 + i);
            sources.Add(px);
            WritePng(dir.File("cls", $"{i}.png"), px, w, h);
        }
        var ds = DatasetLoader.Open(dir.Path, Options(16, 14));
        Assert.Equal((3, 14, 14), (ds.Channels, ds.Height, ds.Width));
        Assert.Equal(sizes.Length, ds.Count);
        for (int i = 0; i < sizes.Length; i++)
        {
            var (w, h) = sizes[i];
            var actual = ReadBytes(ds, i);
            var expected = ReferencePipeline(sources[i], w, h, 16, 14);
            int max = actual.Zip(expected).Max(p => Math.Abs(p.First - p.Second));
            Assert.True(max <= 1, $"image {i} ({w}x{h}): differs from the reference by {max} gray levels");
            // And exactly what the resampler gives for that window.
            var (ow, oh) = PilBicubic.ShorterSideSize(w, h, 16);
            var full = PilBicubic.Resize(sources[i], w, h, 3, ow, oh);
            int top = PilBicubic.CenterCropOffset(oh, 14), left = PilBicubic.CenterCropOffset(ow, 14);
            for (int y = 0; y < 14; y++)
                Assert.Equal(full.AsSpan(((top + y) * ow + left) * 3, 14 * 3).ToArray(), actual.AsSpan(y * 14 * 3, 14 * 3).ToArray());
        }
    }

    [Fact]
    public void ConstantImage_StaysConstant()
    {
        using var dir = new TempDir();
        var px = new byte[37 * 23 * 3];
        for (int i = 0; i < px.Length; i += 3) (px[i], px[i + 1], px[i + 2]) = (10, 200, 255);
        WritePng(dir.File("c", "k.png"), px, 37, 23);
        var ds = DatasetLoader.Open(dir.Path, Options(64, 56));
        var image = new float[3 * 56 * 56];
        ds.Read(0, image);
        for (int i = 0; i < 56 * 56; i++)
        {
            Assert.Equal(10 / 255f, image[i]);
            Assert.Equal(200 / 255f, image[56 * 56 + i]);
            Assert.Equal(1f, image[2 * 56 * 56 + i]);
        }
    }

    [Fact]
    public void SameSize_IsIdentity_AndCropIsCentered()
    {
        using var dir = new TempDir();
        var px = TestFiles.Pattern(16, 21, seed: 3);
        WritePng(dir.File("c", "k.png"), px, 16, 21);
        var ds = DatasetLoader.Open(dir.Path, Options(16, 16));
        var actual = ReadBytes(ds, 0);
        // (21 - 16) / 2 = 2.5 rounds to 2: rows 2..17.
        Assert.Equal(px.AsSpan(2 * 16 * 3, 16 * 16 * 3).ToArray(), actual);
    }

    [Fact]
    public void CropLargerThanImage_IsZeroPadded()
    {
        using var dir = new TempDir();
        var px = TestFiles.Pattern(10, 7, seed: 4);
        WritePng(dir.File("c", "k.png"), px, 10, 7);
        var ds = DatasetLoader.Open(dir.Path, Options(7, 12));   // resize is identity; 10x7 padded into 12x12
        var actual = ReadBytes(ds, 0);
        // Left pad (12 - 10) // 2 = 1, top pad (12 - 7) // 2 = 2.
        for (int y = 0; y < 12; y++)
            for (int x = 0; x < 12; x++)
                for (int c = 0; c < 3; c++)
                {
                    int sy = y - 2, sx = x - 1;
                    byte expected = sy is >= 0 and < 7 && sx is >= 0 and < 10 ? px[(sy * 10 + sx) * 3 + c] : (byte)0;
                    Assert.Equal(expected, actual[(y * 12 + x) * 3 + c]);
                }
    }

    [Fact]
    public void Grayscale_IsReplicatedToRgb()
    {
        using var dir = new TempDir();
        var gray = TestFiles.Noise(9 * 9, seed: 8);
        WritePng(dir.File("c", "g.png"), gray, 9, 9, channels: 1);
        var ds = DatasetLoader.Open(dir.Path, Options(9, 9));
        var actual = ReadBytes(ds, 0);
        for (int i = 0; i < 81; i++)
            for (int c = 0; c < 3; c++)
                Assert.Equal(gray[i], actual[i * 3 + c]);
    }

    [Fact]
    public void DefaultNormalization_IsImageNet()
    {
        using var dir = new TempDir();
        var px = new byte[4 * 4 * 3];
        for (int i = 0; i < px.Length; i++) px[i] = 128;
        WritePng(dir.File("c", "k.png"), px, 4, 4);
        var ds = DatasetLoader.Open(dir.Path, DatasetOptions.Default with { ResizeShorter = 4, CropSize = 4 });
        var image = new float[3 * 16];
        ds.Read(0, image);
        Assert.Equal((128 / 255f - 0.485f) / 0.229f, image[0]);
        Assert.Equal((128 / 255f - 0.406f) / 0.225f, image[47]);
    }

    [Fact]
    public void UndecodableImage_IsAnErrorNamingTheFile()
    {
        using var dir = new TempDir();
        WritePng(dir.File("c", "good.png"), new byte[12], 2, 2);
        var bad = dir.File("c", "not-really.png");
        File.WriteAllText(bad, "this is not a PNG");
        var ds = DatasetLoader.Open(dir.Path, Options(2, 2));
        var image = new float[12];
        ds.Read(0, image);
        var e = Assert.Throws<QsvitException>(() => ds.Read(1, image));
        Assert.Contains(bad, e.Message);
    }

    [Fact]
    public void EmptyClassFolder_IsAnError()
    {
        using var dir = new TempDir();
        WritePng(dir.File("a", "k.png"), new byte[12], 2, 2);
        Directory.CreateDirectory(Path.Combine(dir.Path, "empty"));
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Options(2, 2)));
        Assert.Contains("'empty'", e.Message);
    }

    [Fact]
    public void OneChannel_IsAnError()
    {
        using var dir = new TempDir();
        WritePng(dir.File("a", "k.png"), new byte[12], 2, 2);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Options(2, 2) with { Channels = 1 }));
        Assert.Contains("RGB", e.Message);
    }

    [Fact]
    public void Split_SelectsASubfolder()
    {
        using var dir = new TempDir();
        WritePng(dir.File("val", "a", "k.png"), new byte[12], 2, 2);
        WritePng(dir.File("val", "b", "k.png"), new byte[12], 2, 2);
        WritePng(dir.File("train", "a", "k.png"), new byte[12], 2, 2);
        var ds = DatasetLoader.Open(dir.Path, Options(2, 2), split: "val");
        Assert.Equal(2, ds.Count);
        Assert.Equal(["a", "b"], ds.ClassNames);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Options(2, 2), split: "test"));
        Assert.Contains("test", e.Message);
    }
}
