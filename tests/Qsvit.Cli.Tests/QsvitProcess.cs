using System.Diagnostics;
using Qsvit.IO;
using Qsvit.Models;

namespace Qsvit.Cli.Tests;

/// <summary>What a run of the qsvit command left: its exit code and both streams.</summary>
public sealed record CliResult(int ExitCode, string Out, string Err);

/// <summary>Runs the built qsvit command as a user does, in its own process, from a scratch working directory.</summary>
public sealed class QsvitProcess : IDisposable
{
    private const int Cifar10Record = 1 + 3 * 32 * 32;   // label, then R, G and B planes

    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("qsvit-cli-").FullName;

    public static string Repo(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (System.IO.File.Exists(Path.Combine(dir.FullName, "Qsvit.slnx"))) return Path.Combine([dir.FullName, .. parts]);
        throw new InvalidOperationException($"no directory above {AppContext.BaseDirectory} contains Qsvit.slnx");
    }

    public static readonly string BundledModel = Repo("models", "sdtv2-cifar10", "sdtv2_cifar10_w32-192_T4.pth");
    public static readonly string CifarTest = Repo("data", "cifar10", "test.bin");

    public string File(string name) => Path.Combine(Directory, name);

    public CliResult Run(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "Qsvit.Cli.dll"), .. args])
        {
            WorkingDirectory = Directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"qsvit {string.Join(" ", args)} ran past 3 minutes");
        }
        return new CliResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>
    /// A tiny random SDTv2 (32x32 input, T=1) saved as safetensors with its architecture in the metadata, and
    /// <paramref name="images"/> random CIFAR-10 records beside it: searches over it take seconds.
    /// </summary>
    public (string Model, string Data) TinyModelAndData(int classes = 10, int images = 4)
    {
        var config = new Sdtv2Config
        {
            EmbedDim = [8, 16, 16, 16], NumHeads = 2, StemStride = 2, NumClasses = classes, Timesteps = 1, ImageHeight = 32, ImageWidth = 32,
        };
        string model = File($"tiny{classes}.safetensors");
        SafeTensors.Write(model, RandomWeights.Create(config, 3),
            new Dictionary<string, string> { [ModelLoader.ConfigMetadataKey] = ModelFile.Write(config, null, null) });
        var bytes = new byte[images * Cifar10Record];
        new Random(5).NextBytes(bytes);
        for (int i = 0; i < images; i++) bytes[i * Cifar10Record] = (byte)(i % 10);
        string data = File("val.bin");
        System.IO.File.WriteAllBytes(data, bytes);
        return (model, data);
    }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}
