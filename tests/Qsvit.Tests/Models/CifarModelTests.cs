using Qsvit.Evaluation;
using Qsvit.IO;
using Qsvit.Models;

namespace Qsvit.Tests.Models;

/// <summary>The bundled CIFAR-10 SDTv2 against the official PyTorch reference on the bundled test set.</summary>
public class CifarModelTests
{
    private static double MedianAbsDiff(float[] logits, double[][] expected, out int sameArgmax)
    {
        var diffs = new List<double>();
        sameArgmax = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            var row = logits.AsSpan(i * 10, 10);
            for (int j = 0; j < 10; j++) diffs.Add(Math.Abs(row[j] - expected[i][j]));
            if (Evaluator.ArgMax(row) == Array.IndexOf(expected[i], expected[i].Max())) sameArgmax++;
        }
        diffs.Sort();
        return diffs[diffs.Count / 2];
    }

    [Fact]
    public void ConfigurationComesFromTheSidecarAndTheWeights()
    {
        var c = Fixtures.Cifar.Config;
        Assert.Equal([32, 64, 128, 192], c.EmbedDim);
        Assert.Equal(1, c.StemStride);
        Assert.Equal(10, c.NumClasses);
        Assert.Equal(4, c.Timesteps);
        Assert.False(c.Kd);
        Assert.Equal(32, c.ImageHeight);
        Assert.Equal("airplane", Fixtures.Cifar.ClassNames![0]);
    }

    [Fact]
    [Trait("Category", "Slow")]   // the whole 10,000-image test set
    public void FullTestSetMatchesTheReferenceAccuracyAndLogits()
    {
        var result = Evaluator.Run(Fixtures.Cifar.CreateModel(), Fixtures.CifarTestSet, new EvalOptions { BatchSize = 64, KeepLogits = 256 });
        double expectedAcc = Fixtures.CifarExpected.GetProperty("test_acc_fp32").GetDouble();
        Assert.Equal(10000, result.Count);
        Assert.InRange(result.Top1.Value, expectedAcc - 0.15, expectedAcc + 0.15);
        var expected = Fixtures.Matrix(Fixtures.CifarExpected.GetProperty("test_logits_first256"));
        double median = MedianAbsDiff(result.Logits, expected, out int same);
        Assert.True(same >= 254, $"argmax agrees on {same}/256");
        Assert.True(median < 1e-3, $"median |Δlogit| = {median}");
    }

    /// <summary>
    /// The reference logits above were not made by PyTorch on CPU (rerun there they differ by up to 0.98 on one image),
    /// so qsvit is also held to PyTorch 2.11 on CPU itself, which it matches bit for bit up to the head's mean.
    /// </summary>
    [Fact]
    public void First256LogitsMatchPyTorchOnCpu()
    {
        var result = Evaluator.Run(Fixtures.Cifar.CreateModel(), Fixtures.CifarTestSet, new EvalOptions { BatchSize = 32, Limit = 256, KeepLogits = 256 });
        var expected = Fixtures.Matrix(Fixtures.CifarPyTorchCpu.GetProperty("logits"));
        Assert.Equal(256, expected.Length);
        for (int i = 0; i < 256; i++)
            for (int j = 0; j < 10; j++)
                Assert.True(Math.Abs(result.Logits[i * 10 + j] - expected[i][j]) <= 1e-5, $"image {i} logit {j}: {result.Logits[i * 10 + j]} vs {expected[i][j]}");
    }

    [Fact]
    public void SafetensorsRoundTripGivesIdenticalLogits()
    {
        var loaded = Fixtures.Cifar;
        var path = Path.Combine(Path.GetTempPath(), $"qsvit-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafeTensors.Write(path, loaded.State, new Dictionary<string, string>
            {
                [ModelLoader.ConfigMetadataKey] = ModelFile.Write(loaded.Config, loaded.Normalization, loaded.ClassNames),
            });
            var reloaded = ModelLoader.Load(path);
            Assert.Equal(loaded.Config.ToString(), reloaded.Config.ToString());
            var data = Fixtures.CifarTestSet;
            var options = new EvalOptions { BatchSize = 16, Limit = 16, KeepLogits = 16 };
            var a = Evaluator.Run(loaded.CreateModel(), data, options).Logits;
            var b = Evaluator.Run(reloaded.CreateModel(), data, options).Logits;
            Assert.Equal(a, b);
        }
        finally { File.Delete(path); }
    }
}
