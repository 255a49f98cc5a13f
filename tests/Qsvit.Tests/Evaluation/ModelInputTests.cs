using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;

namespace Qsvit.Tests.Evaluation;

/// <summary>Data a model was not configured for is refused before it runs, naming both sides.</summary>
public sealed class ModelInputTests
{
    private sealed class Images(int size, int classes, int[] labels) : IImageDataset
    {
        public string Name => "test images";
        public int Count => labels.Length;
        public int Channels => 3;
        public int Height => size;
        public int Width => size;
        public IReadOnlyList<string> ClassNames { get; } = Enumerable.Range(0, classes).Select(i => $"c{i}").ToArray();
        public int Label(int index) => labels[index];
        public void Read(int index, Span<float> destination) => destination.Clear();
    }

    private static readonly Sdtv2Config Cifar = new() { EmbedDim = [8, 16, 16, 16], NumClasses = 10, ImageHeight = 32, ImageWidth = 32 };

    [Fact]
    public void MatchingData_Passes() => ModelInput.Check(Cifar, new Images(32, 10, [0, 9, 3]));

    [Fact]
    public void AnotherInputSize_IsRefused() =>
        Assert.Contains("gives 224x224 images but the model is configured for 32x32",
            Assert.Throws<QsvitException>(() => ModelInput.Check(Cifar, new Images(224, 10, [0]))).Message);

    [Fact]
    public void AnotherClassCount_IsRefused() =>
        Assert.Contains("has 10 classes but the model predicts 100",
            Assert.Throws<QsvitException>(() => ModelInput.Check(Cifar with { NumClasses = 100 }, new Images(32, 10, [0]))).Message);

    [Fact]
    public void ALabelBeyondTheModelsClasses_IsRefused() =>
        Assert.Contains("image 1 has label 12, beyond the model's 10 classes",
            Assert.Throws<QsvitException>(() => ModelInput.Check(Cifar, new Images(32, 10, [0, 12]))).Message);
}
