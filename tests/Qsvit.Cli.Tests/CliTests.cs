using System.Text.Json.Nodes;
using Qsvit.Search;

namespace Qsvit.Cli.Tests;

/// <summary>What a new user hits at the command line: every bad input is exit 2 with a message naming it, nothing half done.</summary>
public sealed class CliTests : IDisposable
{
    private readonly QsvitProcess _qsvit = new();

    public void Dispose() => _qsvit.Dispose();

    private static void AssertRefused(CliResult r, params string[] says)
    {
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}, stderr: {r.Err}");
        Assert.StartsWith("error: ", r.Err.TrimStart());
        foreach (var s in says) Assert.Contains(s, r.Err);
    }

    /// <summary>CI has no GPU: --device cuda is a clear error naming what was looked for (skipped where a driver exists).</summary>
    [Theory]
    [InlineData("eval")]
    [InlineData("search")]
    public void DeviceCuda_WithoutAGpu_IsRefused(string command)
    {
        bool driver = System.Runtime.InteropServices.NativeLibrary.TryLoad("libcuda.so.1", out var handle);
        if (driver) { System.Runtime.InteropServices.NativeLibrary.Free(handle); return; }
        var (model, data) = _qsvit.TinyModelAndData();
        string[] run = command == "search" ? ["--run-dir", _qsvit.File("run")] : [];
        AssertRefused(_qsvit.Run([command, "--model", model, "--data", data, "--device", "cuda", .. run]),
            "cuda:0", "no usable CUDA GPU", "libcuda.so.1");
    }

    [Fact]
    public void Device_ThatIsNoDevice_IsRefused()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        AssertRefused(_qsvit.Run("eval", "--model", model, "--data", data, "--device", "tpu"), "'tpu' is not a device");
    }

    [Theory]
    [InlineData("cuda:0,0", "names a GPU twice")]
    [InlineData("cuda:0,x", "is not a device")]
    public void Device_BadListsOfGpus_AreRefused(string device, string says)
    {
        var (model, data) = _qsvit.TinyModelAndData();
        AssertRefused(_qsvit.Run("eval", "--model", model, "--data", data, "--device", device), says);
    }

    /// <summary>--gemm takes every kernel choice (tensor-real-fused and tensor-tf32-1x1 among them; the CPU ignores them) and refuses others, naming the choices.</summary>
    [Fact]
    public void Gemm_KnownChoicesRun_OthersAreRefused()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        foreach (var choice in new[] { "tensor-real-fused", "tensor-tf32-1x1", "tensor-wgmma" })
        {
            var run = _qsvit.Run("eval", "--model", model, "--data", data, "--device", "cpu", "--gemm", choice);
            Assert.True(run.ExitCode == 0, run.Err);
        }
        AssertRefused(_qsvit.Run("eval", "--model", model, "--data", data, "--device", "cpu", "--gemm", "tensor-fused"),
            "--gemm is tensor,", "tensor-real-fused", "tensor-tf32-1x1", "tensor-wgmma", "not 'tensor-fused'");
    }

    /// <summary>"paper" names the QSViT paper's setting wherever a setting is read (memory is the quickest reader).</summary>
    [Fact]
    public void Setting_Paper_IsThePublishedSetting()
    {
        var byName = _qsvit.Run("memory", "--preset", "55M", "--setting", "paper");
        var byWidths = _qsvit.Run("memory", "--preset", "55M", "--setting", "8,4,8,8|8,8,8|4,32|4,32");
        Assert.True(byName.ExitCode == 0, byName.Err);
        Assert.Equal(byWidths.Out, byName.Out);
    }

    /// <summary>--power on the CPU evaluates as usual and says power was not measured (in text and JSON).</summary>
    [Fact]
    public void EvalPower_OnTheCpu_SaysPowerWasNotMeasured()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        var text = _qsvit.Run("eval", "--model", model, "--data", data, "--device", "cpu", "--power");
        Assert.True(text.ExitCode == 0, text.Err);
        Assert.Contains("power  not measured: cpu is not an NVIDIA GPU", text.Out);
        var json = _qsvit.Run("eval", "--model", model, "--data", data, "--device", "cpu", "--power", "--json");
        Assert.True(json.ExitCode == 0, json.Err);
        var power = JsonNode.Parse(json.Out)!["power"]!;
        Assert.False(power["measured"]!.GetValue<bool>());
        Assert.Contains("NVML", power["not_measured_reason"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("-5")]
    [InlineData("0")]
    public void Eval_ALimitBelowOne_IsRefused(string limit) =>
        AssertRefused(_qsvit.Run("eval", "--model", QsvitProcess.BundledModel, "--data", QsvitProcess.CifarTest, "--limit", limit),
            $"--limit must be at least 1, got {limit}");

    [Fact]
    public void Apply_ANegativeLimit_IsRefused_BeforeAnythingIsWritten()
    {
        string output = _qsvit.File("q.safetensors");
        AssertRefused(_qsvit.Run("apply", "--model", QsvitProcess.BundledModel, "--setting", "8", "--out", output,
            "--data", QsvitProcess.CifarTest, "--limit", "-5"), "--limit must be at least 1, got -5");
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData("search", "bais", "unknown correction 'bais'; expected one of: none, bias, bn, bias,bn")]
    [InlineData("search", "bias,bias", "names 'bias' twice")]
    [InlineData("search", "none --correct-apart false", "--correct-apart needs --correct bias, bn or bias,bn")]
    [InlineData("apply", "bn", "--correct bn needs --calibration-data")]
    [InlineData("export", "none --correct-images 8", "--correct-images and --calibration-data need --correct bias, bn or bias,bn")]
    public void Correct_BadValues_AreRefused_BeforeAnythingIsWritten(string command, string correct, string says)
    {
        var (model, data) = _qsvit.TinyModelAndData();
        string output = _qsvit.File("q.safetensors");
        string[] rest = command == "search" ? ["--data", data, "--run-dir", _qsvit.File("run")] : ["--setting", "4", "--out", output];
        AssertRefused(_qsvit.Run([command, "--model", model, .. rest, "--correct", .. correct.Split(' ')]), says);
        Assert.False(File.Exists(output));
        Assert.False(Directory.Exists(_qsvit.File("run")));
    }

    [Fact]
    public void Apply_WithCorrections_CalibratesOnTheGivenImages_AndSaysSo()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        string output = _qsvit.File("q.safetensors");
        var r = _qsvit.Run("apply", "--model", model, "--setting", "4", "--out", output, "--correct", "bias,bn", "--calibration-data", data,
            "--correct-images", "3", "--json");
        Assert.True(r.ExitCode == 0, r.Err);
        var json = JsonNode.Parse(r.Out)!;
        Assert.Equal("bias,bn", json["correction"]!.GetValue<string>());
        Assert.Equal(3, json["correction_images"]!.GetValue<int>());
        Assert.Contains("\"qsvit.correction\":\"bias,bn on 3 images\"", System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(output)[..4096]));
    }

    /// <summary>A packed export carries the corrected BatchNorms: it is another file than the plain one, and it runs.</summary>
    [Fact]
    public void Export_WithCorrections_PacksTheCorrectedNetwork()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        string plain = _qsvit.File("plain.safetensors"), corrected = _qsvit.File("bn.safetensors");
        Assert.Equal(0, _qsvit.Run("export", "--model", model, "--setting", "4", "--out", plain).ExitCode);
        var r = _qsvit.Run("export", "--model", model, "--setting", "4", "--correct", "bn", "--calibration-data", data, "--correct-images", "2",
            "--out", corrected);
        Assert.True(r.ExitCode == 0, r.Err);
        Assert.NotEqual(File.ReadAllBytes(plain), File.ReadAllBytes(corrected));
        var eval = _qsvit.Run("eval", "--model", corrected, "--data", data, "--device", "cpu");
        Assert.True(eval.ExitCode == 0, eval.Err);
    }

    [Fact]
    public void Search_ANegativeTestLimit_IsRefused()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        AssertRefused(_qsvit.Run("search", "--model", model, "--data", data, "--test-data", data, "--test-limit", "-1"),
            "test limit must be at least 1, got -1");
    }

    [Fact]
    public void Eval_AModelConfiguredForAnotherInputSize_IsRefused_NamingBothSizes()
    {
        // As the bundled model's safetensors without their sidecar: the official 224x224 default on 32x32 CIFAR images.
        AssertRefused(_qsvit.Run("eval", "--model", QsvitProcess.BundledModel, "--data", QsvitProcess.CifarTest, "--limit", "2", "--image-size", "224"),
            "gives 32x32 images but the model is configured for 224x224", "--image-size 32");
    }

    [Fact]
    public void Eval_A100ClassModelOn10ClassData_IsRefused_NamingBothCounts()
    {
        var (model, data) = _qsvit.TinyModelAndData(classes: 100);
        AssertRefused(_qsvit.Run("eval", "--model", model, "--data", data), "has 10 classes but the model predicts 100");
    }

    [Fact]
    public void SensitivityHelp_ShowsOnlyItsOwnDefaults()
    {
        var r = _qsvit.Run("sensitivity", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain("greedy", r.Out);
        Assert.DoesNotContain("--test-data", r.Out);
        Assert.Contains("32 16 12 8 4", r.Out);
    }

    [Fact]
    public void Sensitivity_RecordsWhatItRan_AndWarnsAboutADamagedLogLine()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        string[] args = ["sensitivity", "--model", model, "--data", data, "--bits", "32", "8", "--run-dir", "run", "--batch", "4"];
        var first = _qsvit.Run(args);
        Assert.True(first.ExitCode == 0, first.Err);
        var identity = JsonNode.Parse(File.ReadAllText(_qsvit.File(Path.Combine("run", RunStore.ManifestFile))))!["identity"]!;
        Assert.Equal("as stored", identity["preprocess"]!.GetValue<string>());   // a CIFAR .bin is never resized
        // The device auto opened, not the flag: results of one device never answer for another.
        Assert.Matches("^(cpu|cuda:[0-9]+)$", identity["device"]!.GetValue<string>());

        string log = _qsvit.File(Path.Combine("run", RunStore.LogFile));
        var lines = File.ReadAllLines(log);
        File.WriteAllLines(log, [lines[0].Replace("\"count\":", "\"was_count\":"), .. lines[1..]]);
        var again = _qsvit.Run(args);
        Assert.True(again.ExitCode == 0, again.Err);
        Assert.Contains($"warning: {Path.Combine("run", RunStore.LogFile)}:1: skipped", again.Err);
        Assert.Contains("1 run now", again.Out);   // only the damaged evaluation ran again
    }

    [Fact]
    public void Search_ARunDirectoryInUse_IsRefused_NamingTheHolder()
    {
        var (model, data) = _qsvit.TinyModelAndData();
        using var held = RunStore.Open(_qsvit.File("run"), new Dictionary<string, string?> { ["model"] = "another run" });
        AssertRefused(_qsvit.Run("search", "--model", model, "--data", data, "--run-dir", "run"), $"is in use by PID {Environment.ProcessId}");
    }
}
