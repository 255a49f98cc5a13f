using Qsvit.IO.Datasets;

namespace Qsvit.Tests.IO.Datasets;

public class IdxDatasetTests
{
    private const int N = 5, Rows = 4, Cols = 3;   // non-square: catches swapped dimensions

    private static readonly byte[] Pixels = TestFiles.Noise(N * Rows * Cols, seed: 42);
    private static readonly byte[] LabelBytes = [7, 0, 9, 3, 3];

    private static void Write(TempDir dir, string prefix, bool gzip, byte[]? images = null, byte[]? labels = null)
    {
        images ??= TestFiles.Idx([N, Rows, Cols], Pixels);
        labels ??= TestFiles.Idx([N], LabelBytes);
        string suffix = gzip ? ".gz" : "";
        File.WriteAllBytes(dir.File($"{prefix}-images-idx3-ubyte{suffix}"), gzip ? TestFiles.Gzip(images) : images);
        File.WriteAllBytes(dir.File($"{prefix}-labels-idx1-ubyte{suffix}"), gzip ? TestFiles.Gzip(labels) : labels);
    }

    private static DatasetOptions Plain(int channels = 1) => DatasetOptions.Default with { Channels = channels, Normalization = Normalization.None };

    private static void AssertContents(IImageDataset ds)
    {
        Assert.Equal(N, ds.Count);
        Assert.Equal((1, Rows, Cols), (ds.Channels, ds.Height, ds.Width));
        Assert.Equal(10, ds.ClassNames.Count);
        for (int i = 0; i < N; i++)
        {
            Assert.Equal(LabelBytes[i], ds.Label(i));
            var image = new float[Rows * Cols];
            ds.Read(i, image);
            for (int p = 0; p < Rows * Cols; p++) Assert.Equal(Pixels[i * Rows * Cols + p] / 255f, image[p]);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsBack_ByDirectoryAndSplit(bool gzip)
    {
        using var dir = new TempDir();
        Write(dir, "t10k", gzip);
        Write(dir, "train", gzip, TestFiles.Idx([1, Rows, Cols], new byte[Rows * Cols]), TestFiles.Idx([1], [1]));
        AssertContents(DatasetLoader.Open(dir.Path, Plain(), split: "t10k"));
        AssertContents(DatasetLoader.Open(dir.Path, Plain(), split: "test"));
        Assert.Equal(1, DatasetLoader.Open(dir.Path, Plain(), split: "train").Count);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Plain()));
        Assert.Contains("split", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadsBack_ByImagesPath(bool gzip)
    {
        using var dir = new TempDir();
        Write(dir, "t10k", gzip);
        AssertContents(DatasetLoader.Open(dir.File("t10k-images-idx3-ubyte" + (gzip ? ".gz" : "")), Plain()));
    }

    [Fact]
    public void GzippedImages_RawLabels()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("t10k-images-idx3-ubyte.gz"), TestFiles.Gzip(TestFiles.Idx([N, Rows, Cols], Pixels)));
        File.WriteAllBytes(dir.File("t10k-labels-idx1-ubyte"), TestFiles.Idx([N], LabelBytes));
        AssertContents(DatasetLoader.Open(dir.Path, Plain()));
    }

    [Fact]
    public void OneChannel_IsReplicatedToThree_WithPerChannelNormalization()
    {
        using var dir = new TempDir();
        Write(dir, "t10k", gzip: false);
        var ds = DatasetLoader.Open(dir.Path, DatasetOptions.Default with { Normalization = Normalization.ImageNet });
        Assert.Equal(3, ds.Channels);
        float[] mean = [0.485f, 0.456f, 0.406f], std = [0.229f, 0.224f, 0.225f];
        var image = new float[3 * Rows * Cols];
        ds.Read(2, image);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < Rows * Cols; p++)
                Assert.Equal((Pixels[2 * Rows * Cols + p] / 255f - mean[c]) / std[c], image[c * Rows * Cols + p]);

        var replicated = DatasetLoader.Open(dir.Path, Plain(3));
        replicated.Read(4, image);
        for (int c = 1; c < 3; c++) Assert.Equal(image.AsSpan(0, Rows * Cols).ToArray(), image.AsSpan(c * Rows * Cols, Rows * Cols).ToArray());
    }

    [Fact]
    public void NormalizationWithWrongChannelCount_IsAnError()
    {
        using var dir = new TempDir();
        Write(dir, "t10k", gzip: false);
        var e = Assert.Throws<QsvitException>(() =>
            DatasetLoader.Open(dir.Path, DatasetOptions.Default with { Channels = 1, Normalization = Normalization.ImageNet }));
        Assert.Contains("channel", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WrongMagic_IsAnError(bool gzip)
    {
        using var dir = new TempDir();
        Write(dir, "t10k", gzip, images: TestFiles.Idx([N, Rows, Cols], Pixels, magic: 0x00000903));
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Plain()));
        Assert.Contains("magic", e.Message);
        Assert.Contains("0x00000903", e.Message);
        Assert.Contains("t10k-images-idx3-ubyte", e.Message);
    }

    [Fact]
    public void WrongLabelsMagic_IsAnError()
    {
        using var dir = new TempDir();
        Write(dir, "t10k", false, labels: TestFiles.Idx([N], LabelBytes, magic: 0x00000803));
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Plain()));
        Assert.Contains("magic", e.Message);
        Assert.Contains("labels", e.Message);
    }

    [Fact]
    public void CountMismatch_IsAnError()
    {
        using var dir = new TempDir();
        Write(dir, "t10k", false, labels: TestFiles.Idx([N - 1], LabelBytes[..(N - 1)]));
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Plain()));
        Assert.Contains("5 images", e.Message);
        Assert.Contains("4 labels", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TruncatedData_IsAnError(bool gzip)
    {
        using var dir = new TempDir();
        var images = TestFiles.Idx([N, Rows, Cols], Pixels)[..^3];
        Write(dir, "t10k", gzip, images: images);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Plain()));
        Assert.Contains("needs 76", e.Message);
    }

    [Fact]
    public void LabelOutOfRange_IsAnError()
    {
        using var dir = new TempDir();
        Write(dir, "t10k", false, labels: TestFiles.Idx([N], [1, 2, 10, 3, 4]));
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Plain()));
        Assert.Contains("label 2 is 10", e.Message);
    }

    [Fact]
    public void MissingLabelsFile_IsAnError()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("t10k-images-idx3-ubyte"), TestFiles.Idx([N, Rows, Cols], Pixels));
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, Plain()));
        Assert.Contains("t10k-labels-idx1-ubyte", e.Message);
    }

    [Fact]
    public void FashionMnist_HasItsClassNames()
    {
        using var dir = new TempDir();
        var sub = Path.Combine(dir.Path, "fashion-mnist");
        Directory.CreateDirectory(sub);
        File.WriteAllBytes(Path.Combine(sub, "t10k-images-idx3-ubyte"), TestFiles.Idx([N, Rows, Cols], Pixels));
        File.WriteAllBytes(Path.Combine(sub, "t10k-labels-idx1-ubyte"), TestFiles.Idx([N], LabelBytes));
        var ds = DatasetLoader.Open(sub, Plain());
        Assert.Equal("Ankle boot", ds.ClassNames[9]);
        Assert.StartsWith("Fashion-MNIST", ds.Name);
    }

    [Fact]
    public void LabelsFileGivenAsPath_IsAnError()
    {
        using var dir = new TempDir();
        Write(dir, "t10k", false);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.File("t10k-labels-idx1-ubyte"), Plain()));
        Assert.Contains("labels file", e.Message);
    }
}
