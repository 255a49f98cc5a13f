using Qsvit.IO.Datasets;

namespace Qsvit.Tests.IO.Datasets;

public class CifarDatasetTests
{
    private static readonly string TestBin = RepoPaths.Combine("data", "cifar10", "test.bin");
    private static readonly string ValBin = RepoPaths.Combine("data", "cifar10", "val.bin");

    [Theory]
    [InlineData("test.bin", 10_000)]
    [InlineData("val.bin", 5_000)]
    public void BundledFiles_CountAndInterleavedLabels(string file, int count)
    {
        var ds = DatasetLoader.Open(RepoPaths.Combine("data", "cifar10", file), DatasetOptions.Default);
        Assert.Equal(count, ds.Count);
        Assert.Equal((3, 32, 32), (ds.Channels, ds.Height, ds.Width));
        Assert.Equal(10, ds.ClassNames.Count);
        Assert.Equal("airplane", ds.ClassNames[0]);
        Assert.Equal("truck", ds.ClassNames[9]);
        for (int i = 0; i < count; i++) Assert.Equal(i % 10, ds.Label(i));
    }

    [Fact]
    public void FirstImage_EqualsHandNormalizedRawBytes()
    {
        var raw = new byte[3073 * 2];
        using (var f = File.OpenRead(TestBin)) f.ReadExactly(raw);
        var ds = DatasetLoader.Open(TestBin, DatasetOptions.Default);
        float[] mean = [0.4914f, 0.4822f, 0.4465f], std = [0.2470f, 0.2435f, 0.2616f];

        for (int record = 0; record < 2; record++)
        {
            var image = new float[3 * 32 * 32];
            ds.Read(record, image);
            Assert.Equal(raw[record * 3073], ds.Label(record));
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < 1024; i++)
                {
                    byte x = raw[record * 3073 + 1 + c * 1024 + i];
                    float expected = (x / 255f - mean[c]) / std[c];
                    Assert.Equal(expected, image[c * 1024 + i]);
                }
        }
        // A value worked out by hand: the first red byte is 141 in this file; (141/255 - 0.4914) / 0.2470 = 0.24916.
        Assert.Equal(141, raw[1]);
        var first = new float[3072];
        ds.Read(0, first);
        Assert.Equal(0.24916, first[0], 1e-4);
    }

    [Fact]
    public void NormalizationNone_GivesBytesOver255()
    {
        var raw = new byte[3073];
        using (var f = File.OpenRead(ValBin)) f.ReadExactly(raw);
        var ds = DatasetLoader.Open(ValBin, DatasetOptions.Default with { Normalization = Normalization.None });
        var image = new float[3072];
        ds.Read(0, image);
        for (int i = 0; i < 3072; i++) Assert.Equal(raw[1 + i] / 255f, image[i]);
    }

    [Fact]
    public void TruncatedFile_IsAClearError()
    {
        using var dir = new TempDir();
        var path = dir.File("test.bin");
        var bytes = new byte[3073 * 3 + 100];
        using (var f = File.OpenRead(TestBin)) f.ReadExactly(bytes);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(path, DatasetOptions.Default));
        Assert.Contains(path, e.Message);
        Assert.Contains("9319", e.Message);   // the size
        Assert.Contains("3073", e.Message);   // the record size

        // With the variant given, the message names that record size and the leftover.
        e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(path, DatasetOptions.Default with { CifarVariant = CifarVariant.Cifar10 }));
        Assert.Contains("9319", e.Message);
        Assert.Contains("3073-byte record", e.Message);
        Assert.Contains("100 byte(s) left over", e.Message);
    }

    [Fact]
    public void LabelOutOfRange_IsAnError()
    {
        using var dir = new TempDir();
        var path = dir.File("bad.bin");
        var bytes = new byte[3073 * 3];
        bytes[3073 * 1] = 10;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(path, DatasetOptions.Default));
        Assert.Contains(path, e.Message);
        Assert.Contains("record 1", e.Message);
        Assert.Contains("label 10", e.Message);
    }

    [Fact]
    public void Cifar100_UsesTheFineLabel_DetectedBySize()
    {
        using var dir = new TempDir();
        var path = dir.File("x.bin");
        var bytes = new byte[3074 * 3];
        (bytes[0], bytes[1]) = (19, 99);
        (bytes[3074], bytes[3075]) = (3, 0);
        (bytes[6148], bytes[6149]) = (7, 57);
        bytes[6150] = 255;   // first red pixel of record 2
        File.WriteAllBytes(path, bytes);
        var ds = DatasetLoader.Open(path, DatasetOptions.Default with { Normalization = Normalization.None });
        Assert.Equal(3, ds.Count);
        Assert.Equal(100, ds.ClassNames.Count);
        Assert.Equal([99, 0, 57], Enumerable.Range(0, 3).Select(ds.Label));
        Assert.Equal("worm", ds.ClassNames[99]);
        Assert.Equal("apple", ds.ClassNames[0]);
        var image = new float[3072];
        ds.Read(2, image);
        Assert.Equal(1f, image[0]);
        Assert.Equal(0f, image[1]);
    }

    [Fact]
    public void Cifar100_FineLabelOutOfRange_IsAnError()
    {
        using var dir = new TempDir();
        var path = dir.File("cifar-100-binary", "test.bin");
        var bytes = new byte[3074 * 2];
        bytes[3074 + 1] = 100;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(path, DatasetOptions.Default));
        Assert.Contains("label 100", e.Message);
        Assert.Contains("CIFAR-100", e.Message);
    }

    [Fact]
    public void FolderName_DecidesTheVariant()
    {
        using var dir = new TempDir();
        var path = dir.File("cifar-100-binary", "test.bin");
        File.WriteAllBytes(path, new byte[3073 * 3074]);   // a multiple of both record sizes
        Assert.Equal(100, DatasetLoader.Open(path, DatasetOptions.Default).ClassNames.Count);
        Assert.Equal(3073, DatasetLoader.Open(path, DatasetOptions.Default).Count);

        var plain = dir.File("plain", "test.bin");
        File.Copy(path, plain);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(plain, DatasetOptions.Default));
        Assert.Contains("CifarVariant", e.Message);
        Assert.Equal(3074, DatasetLoader.Open(plain, DatasetOptions.Default with { CifarVariant = CifarVariant.Cifar10 }).Count);
    }

    [Fact]
    public void Directory_NeedsASplitWhenSeveralFiles()
    {
        var dir = RepoPaths.Combine("data", "cifar10");
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir, DatasetOptions.Default));
        Assert.Contains("test.bin", e.Message);
        Assert.Contains("val.bin", e.Message);
        Assert.Equal(5_000, DatasetLoader.Open(dir, DatasetOptions.Default, split: "val").Count);
        Assert.Equal(10_000, DatasetLoader.Open(dir, DatasetOptions.Default, split: "test").Count);
        e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir, DatasetOptions.Default, split: "train"));
        Assert.Contains("train", e.Message);
    }

    [Fact]
    public void Directory_TrainSplitConcatenatesDataBatchesInOrder()
    {
        using var dir = new TempDir();
        for (int n = 1; n <= 10; n += 9)   // data_batch_1 and data_batch_10: numeric, not text, order
        {
            var bytes = new byte[3073 * 2];
            bytes[0] = (byte)(n % 10);
            bytes[3073] = 5;
            File.WriteAllBytes(dir.File($"data_batch_{n}.bin"), bytes);
        }
        File.WriteAllBytes(dir.File("test_batch.bin"), new byte[3073]);
        var ds = DatasetLoader.Open(dir.Path, DatasetOptions.Default, split: "train");
        Assert.Equal([1, 5, 0, 5], Enumerable.Range(0, 4).Select(ds.Label));
        var image = new float[3072];
        ds.Read(3, image);
        Assert.Equal(1, DatasetLoader.Open(dir.Path, DatasetOptions.Default, split: "test").Count);
    }

    [Fact]
    public void OneChannel_IsAnError()
    {
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(ValBin, DatasetOptions.Default with { Channels = 1 }));
        Assert.Contains("RGB", e.Message);
    }

    [Fact]
    public void Read_ChecksIndexAndDestination()
    {
        var ds = DatasetLoader.Open(ValBin, DatasetOptions.Default);
        Assert.Throws<ArgumentOutOfRangeException>(() => ds.Read(5_000, new float[3072]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ds.Label(-1));
        Assert.Throws<ArgumentException>(() => ds.Read(0, new float[3071]));
    }
}
