using Qsvit.IO.Datasets;

namespace Qsvit.Tests.IO.Datasets;

public class DatasetLoaderTests
{
    [Fact]
    public void MissingPath_IsAnError()
    {
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open("/no/such/dataset/here", DatasetOptions.Default));
        Assert.Contains("/no/such/dataset/here", e.Message);
        Assert.Contains("does not exist", e.Message);
    }

    [Fact]
    public void UnknownFile_ListsWhatWasTried()
    {
        using var dir = new TempDir();
        var path = dir.File("mystery.dat");
        File.WriteAllBytes(path, new byte[100]);
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(path, DatasetOptions.Default));
        Assert.Contains(path, e.Message);
        Assert.Contains("CIFAR", e.Message);
        Assert.Contains("idx", e.Message);
        Assert.Contains("image folder", e.Message);
    }

    [Fact]
    public void UnknownFolder_ListsWhatWasTried()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("readme.txt"), "hi");
        File.WriteAllText(dir.File("sub", "readme.txt"), "hi");
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.Path, DatasetOptions.Default));
        Assert.Contains("CIFAR", e.Message);
        Assert.Contains("idx", e.Message);
        Assert.Contains("image folder", e.Message);
    }

    [Fact]
    public void SplitWithAFilePath_IsAnError()
    {
        var e = Assert.Throws<QsvitException>(() =>
            DatasetLoader.Open(RepoPaths.Combine("data", "cifar10", "val.bin"), DatasetOptions.Default, split: "test"));
        Assert.Contains("split", e.Message);
    }

    [Fact]
    public void IdxFileWithUnfamiliarName_IsSniffed()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("digits.idx"), TestFiles.Idx([2, 2, 2], new byte[8]));
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(dir.File("digits.idx"), DatasetOptions.Default));
        Assert.Contains("labels", e.Message);   // recognised as idx images; no labels name to derive
    }

    [Theory]
    [InlineData(2, 256, 224)]
    [InlineData(3, 0, 224)]
    [InlineData(3, 256, 0)]
    public void BadOptions_AreErrors(int channels, int shorter, int crop)
    {
        var options = DatasetOptions.Default with { Channels = channels, ResizeShorter = shorter, CropSize = crop };
        Assert.Throws<QsvitException>(() => DatasetLoader.Open(RepoPaths.Combine("data", "cifar10", "val.bin"), options));
    }

    [Fact]
    public void Normalization_ComparesValues()
    {
        Assert.Equal(Normalization.Cifar10, Normalization.Cifar10);
        Assert.Equal(new Normalization([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]), Normalization.ImageNet);
        Assert.NotEqual(Normalization.ImageNet, Normalization.Cifar10);
        Assert.Equal(Normalization.None.GetHashCode(), new Normalization([0f], [1f]).GetHashCode());
    }

    [Fact]
    public void BadNormalization_IsAnError()
    {
        var options = DatasetOptions.Default with { Normalization = new Normalization([0.5f, 0.5f, 0.5f], [0.2f, 0f, 0.2f]) };
        var e = Assert.Throws<QsvitException>(() => DatasetLoader.Open(RepoPaths.Combine("data", "cifar10", "val.bin"), options));
        Assert.Contains("std", e.Message);
    }
}
