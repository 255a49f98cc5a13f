using System.Text.Json;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Tests;

/// <summary>The bundled model, data and reference outputs of the official PyTorch code.</summary>
public static class Fixtures
{
    public static string CifarCheckpoint => RepoPaths.Combine("models", "sdtv2-cifar10", "sdtv2_cifar10_w32-192_T4.pth");
    public static string CifarTest => RepoPaths.Combine("data", "cifar10", "test.bin");
    public static string CifarVal => RepoPaths.Combine("data", "cifar10", "val.bin");
    public static string ParityCheckpoint => RepoPaths.Combine("tests", "fixtures", "parity", "parity_sdtv2_w32-160_kd.pth");
    public static string ParityInput => RepoPaths.Combine("tests", "fixtures", "parity", "parity_input_2x3x224x224_f32.bin");

    public static JsonElement ParityExpected { get; } = Load("tests", "fixtures", "parity", "parity_expected.json");
    public static JsonElement CifarExpected { get; } = Load("tests", "fixtures", "cifar10", "expected.json");
    /// <summary>PyTorch 2.11 CPU logits of the first 256 test images (bench/pytorch/sdtv2_torch.py cifar-logits, run on the device).</summary>
    public static JsonElement CifarPyTorchCpu { get; } = Load("tests", "fixtures", "cifar10", "pytorch_cpu_logits_first256.json");

    private static readonly Lazy<LoadedModel> _cifar = new(() => ModelLoader.Load(CifarCheckpoint));
    public static LoadedModel Cifar => _cifar.Value;

    public static IImageDataset CifarTestSet => DatasetLoader.Open(CifarTest, new DatasetOptions { Normalization = Cifar.Normalization });

    /// <summary>
    /// The parity checkpoint at <paramref name="timesteps"/> steps quantized to the paper setting (the integer path's test
    /// model), and <paramref name="batch"/> images of 3 × size × size uniform in [−2, 2) from <paramref name="seed"/>.
    /// </summary>
    public static (PackedModel Model, float[] Images) QuantizedParity(int timesteps, int batch, int size, int seed)
    {
        var loaded = ModelLoader.Load(ParityCheckpoint, overrides: new ConfigOverrides { Architecture = new PartialConfig { Timesteps = timesteps } });
        var packed = PackedModel.Create(loaded, QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32"), QuantizerSpec.Paper);
        var rng = new Random(seed);
        var images = new float[batch * 3 * size * size];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);
        return (packed, images);
    }

    public static float[] ParityImages()
    {
        var bytes = File.ReadAllBytes(ParityInput);
        var images = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, images, 0, bytes.Length);
        return images;
    }

    public static double[][] Matrix(JsonElement e) => e.EnumerateArray().Select(Vector).ToArray();
    public static double[] Vector(JsonElement e) => e.EnumerateArray().Select(x => x.GetDouble()).ToArray();

    private static JsonElement Load(params string[] parts) => JsonDocument.Parse(File.ReadAllText(RepoPaths.Combine(parts))).RootElement;
}
