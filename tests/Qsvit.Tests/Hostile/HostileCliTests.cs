using System.Diagnostics;
using System.Text;
using Qsvit.Tests.IO;

namespace Qsvit.Tests.Hostile;

/// <summary>Issue 9 at the command line: inputs that used to end in exit 134 (an unhandled exception) now exit 2 with "error: ...".</summary>
public class HostileCliTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static (int Code, string Stderr) Qsvit(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Qsvit.Cli.dll"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("qsvit did not exit within 120 s");
        }
        return (p.ExitCode, stderr.Result);
    }

    private static readonly string Data = RepoPaths.Combine("data", "cifar10", "test.bin");

    [Fact]
    public void OverflowingStorageOffsetExitsWith2()
    {
        string path = _dir.File("overflow.pth");
        var p = new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict().BinUnicode("w")
            .Global("torch._utils", "_rebuild_tensor_v2").Mark().Storage("FloatStorage", "0", 4).Long1(BitConverter.GetBytes(long.MaxValue))
            .IntTuple(1).IntTuple(1).False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce().SetItem().SetItem().Stop();
        TorchZip.Write(path, "arch", p.ToArray(), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1, 2, 3, 4) });
        var (code, stderr) = Qsvit("eval", "--model", path, "--data", Data, "--limit", "1");
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains("overflows", stderr);
    }

    [Fact]
    public void SafetensorsWithInvalidUtf8ExitsWith2()
    {
        string path = _dir.File("bad.safetensors");
        var header = Encoding.UTF8.GetBytes("{\"w?\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        header[3] = 0xFF;
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, 0, 0, 0, 0]);
        var (code, stderr) = Qsvit("eval", "--model", path, "--data", Data, "--limit", "1");
        Assert.Equal(2, code);
        Assert.Contains("not valid UTF-8", stderr);
    }

    [Fact]
    public void ModelJsonWithANullExitsWith2()
    {
        string model = _dir.File("m.pth");
        File.Copy(CheckpointReaderTests.CifarPath, model);
        File.WriteAllText(_dir.File("model.json"), "{\"embed_dim\": [32, null, 128, 192]}");
        var (code, stderr) = Qsvit("eval", "--model", model, "--data", Data, "--limit", "1");
        Assert.Equal(2, code);
        Assert.Contains("'embed_dim[1]' is null", stderr);
    }
}
