using System.Text.Json.Nodes;
using Qsvit.IO;

namespace Qsvit.Cli.Tests;

/// <summary>qsvit export (packed safetensors) and eval on the packed model; bad packed files exit 2.</summary>
public sealed class PackedCliTests : IDisposable
{
    private readonly QsvitProcess _qsvit = new();

    public void Dispose() => _qsvit.Dispose();

    private string Export(string model, string setting = "8,4,8,8|8,8,8|4,32|4,32", string quantizer = "paper")
    {
        string packed = _qsvit.File("packed.safetensors");
        var r = _qsvit.Run("export", "--model", model, "--setting", setting, "--quantizer", quantizer, "--out", packed, "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        var json = JsonNode.Parse(r.Out)!;
        Assert.Equal("safetensors", (string)json["format"]!);
        Assert.True((long)json["bytes"]! < (long)json["fp32_bytes"]!);
        return packed;
    }

    [Fact]
    public void ExportedModel_RunsOnTheIntegerPath_BesideItsSimulation()
    {
        var (model, data) = _qsvit.TinyModelAndData(images: 8);
        string packed = Export(model, "4", "symmetric-channel");
        var r = _qsvit.Run("eval", "--model", packed, "--data", data, "--threads", "2", "--compare-simulated", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        var json = JsonNode.Parse(r.Out)!;
        Assert.Equal(8, (int)json["packed"]!["images"]!);
        Assert.Equal("symmetric-channel", (string)json["quantizer"]!);
        Assert.InRange((int)json["identical_predictions"]!, 0, 8);
    }

    /// <summary>--spike-sums dense and events give the same predictions; an unknown choice exits 2.</summary>
    [Fact]
    public void SpikeSums_DenseAndEvents_PredictAlike()
    {
        var (model, data) = _qsvit.TinyModelAndData(images: 8);
        string packed = Export(model, "8");
        string Predictions(string sums)
        {
            string path = _qsvit.File($"predictions-{sums}.csv");
            var r = _qsvit.Run("eval", "--model", packed, "--data", data, "--threads", "2", "--spike-sums", sums, "--predictions", path);
            Assert.True(r.ExitCode == 0, r.Err);
            return File.ReadAllText(path);
        }
        Assert.Equal(Predictions("dense"), Predictions("events"));
        var bad = _qsvit.Run("eval", "--model", packed, "--data", data, "--spike-sums", "sparse");
        Assert.True(bad.ExitCode == 2, $"exit {bad.ExitCode}: {bad.Err}");
        Assert.Contains("--spike-sums is auto, dense or events", bad.Err);
    }

    [Fact]
    public void CorruptCodes_AreRefusedWithExit2()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        string packed = Export(model);
        var (tensors, metadata) = SafeTensors.ReadRaw(packed);
        var list = tensors.ToList();
        int i = list.FindIndex(t => t.Name == "ConvBlock1_1.0.conv1.weight.codes");
        list[i] = list[i] with { Shape = [list[i].Bytes!.Length + 3], Bytes = [.. list[i].Bytes!, 0, 0, 0] };
        SafeTensors.WriteRaw(packed, list, metadata);
        var r = _qsvit.Run("eval", "--model", packed, "--data", data);
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}: {r.Err}");
        Assert.Contains("ConvBlock1_1.0.conv1.weight", r.Err);
        Assert.Contains("code bytes", r.Err);
    }

    [Fact]
    public void PackedModel_ExportsToOnnx_AndWritesPredictions()
    {
        var (model, data) = _qsvit.TinyModelAndData(images: 4);
        string packed = Export(model);
        string onnx = _qsvit.File("packed.onnx");
        var r = _qsvit.Run("export", "--format", "onnx", "--model", packed, "--out", onnx, "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        var json = JsonNode.Parse(r.Out)!;
        Assert.Equal("8,4,8,8|8,8,8|4,32|4,32", (string)json["setting"]!);
        Assert.True(new FileInfo(onnx).Length > 0);

        string predictions = _qsvit.File("packed.jsonl");
        r = _qsvit.Run("eval", "--model", packed, "--data", data, "--threads", "2", "--predictions", predictions);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.Equal(4, File.ReadAllLines(predictions).Length);

        // A packed model carries its own setting; it is already packed; folding is for fp32 checkpoints.
        foreach (var args in new[]
        {
            new[] { "export", "--format", "onnx", "--model", packed, "--setting", "8", "--out", onnx },
            new[] { "export", "--model", packed, "--out", _qsvit.File("again.safetensors") },
            new[] { "export", "--format", "onnx", "--model", packed, "--fold-bn", "--out", onnx },
            new[] { "export", "--format", "onnx", "--model", model, "--setting", "8", "--fold-bn", "--out", onnx },
        })
        {
            r = _qsvit.Run(args);
            Assert.True(r.ExitCode == 2, $"{string.Join(' ', args)}: exit {r.ExitCode}: {r.Err}");
        }
    }

    [Fact]
    public void PackedModel_GivenToACommandThatNeedsFp32_IsRefused()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        string packed = Export(model);
        var r = _qsvit.Run("apply", "--model", packed, "--setting", "8", "--out", _qsvit.File("x.safetensors"));
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}: {r.Err}");
        Assert.Contains("is a packed model", r.Err);
    }
}
