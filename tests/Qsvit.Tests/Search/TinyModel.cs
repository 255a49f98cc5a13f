using Qsvit.IO.Datasets;
using Qsvit.Models;

namespace Qsvit.Tests.Search;

/// <summary>A tiny random SDTv2 and synthetic CIFAR-10 files: real evaluations in milliseconds.</summary>
internal static class TinyModel
{
    public static readonly Sdtv2Config Config = new()
    {
        EmbedDim = [8, 16, 16, 16], NumHeads = 2, StemStride = 2, NumClasses = 10, Timesteps = 2, ImageHeight = 32, ImageWidth = 32,
    };

    public static LoadedModel Load(int seed = 7) =>
        new(Config, RandomWeights.Create(Config, seed), null, null, "tiny.pth", null, new Dictionary<string, string>());

    /// <summary>Writes <paramref name="count"/> CIFAR-10 records (label byte + 3072 pixel bytes) of random images.</summary>
    public static string WriteCifar(string directory, string name, int count, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[count * CifarDataset.Cifar10Record];
        rng.NextBytes(bytes);
        for (int i = 0; i < count; i++) bytes[i * CifarDataset.Cifar10Record] = (byte)(i % 10);
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static IImageDataset Open(string path) => DatasetLoader.Open(path, new DatasetOptions());
}
