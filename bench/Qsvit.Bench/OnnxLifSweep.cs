using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Qsvit.IO.Onnx;
using Qsvit.Models;

namespace Qsvit.Bench;

/// <summary>
/// ONNX Runtime (CPU) on the bundled CIFAR-10 SDTv2 exported with the LIF unrolled and as Scan: images/s, best of
/// interleaved rounds (robust on a shared machine), fp32 and the paper setting.
///   dotnet run -c Release --project bench/Qsvit.Bench -- onnx-lif [rounds] [batch] [threads]
/// </summary>
internal static class OnnxLifSweep
{
    public static void Run(string[] args)
    {
        int rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
        int batch = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 32;
        int threads = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 2;
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Qsvit.slnx"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
        var loaded = ModelLoader.Load(Path.Combine(root, "models", "sdtv2-cifar10", "sdtv2_cifar10_w32-192_T4.pth"));
        var c = loaded.Config;
        var images = new float[batch * c.InChannels * c.ImageHeight * c.ImageWidth];
        var rng = new Random(1);
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);

        var cases = new List<(string Name, InferenceSession Session)>();
        foreach (string? setting in new[] { null, "8,4,8,8|8,8,8|4,32|4,32" })
            foreach (var lif in new[] { LifExport.Unrolled, LifExport.Scan })
            {
                string path = Path.Combine(Path.GetTempPath(), $"qsvit-bench-{lif}-{(setting is null ? "fp32" : "paper")}.onnx");
                Sdtv2OnnxExporter.Export(loaded, path, new OnnxExportOptions
                {
                    Setting = setting is null ? null : Quantization.QuantizationSetting.Parse(setting),
                    Lif = lif,
                });
                var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
                cases.Add(($"{(setting is null ? "fp32" : "paper setting (paper quantizer)")}, LIF {lif.ToString().ToLowerInvariant()}", new InferenceSession(path, options)));
            }

        var best = new double[cases.Count];
        Array.Fill(best, double.MaxValue);
        using var input = OrtValue.CreateTensorValueFromMemory(images, [batch, c.InChannels, c.ImageHeight, c.ImageWidth]);
        using var run = new RunOptions();
        for (int r = 0; r <= rounds; r++) // round 0 warms up
            for (int i = 0; i < cases.Count; i++)
            {
                var clock = Stopwatch.StartNew();
                using var outputs = cases[i].Session.Run(run, [Sdtv2OnnxExporter.InputName], [input], [Sdtv2OnnxExporter.OutputName]);
                if (r > 0) best[i] = Math.Min(best[i], clock.Elapsed.TotalSeconds);
            }
        Console.WriteLine($"ONNX Runtime {OrtEnv.Instance().GetVersionString()} CPU, {threads} intra-op threads, batch {batch}, best of {rounds} interleaved rounds");
        Console.WriteLine();
        Console.WriteLine("| model | images/s | best time |");
        Console.WriteLine("|---|---:|---:|");
        for (int i = 0; i < cases.Count; i++)
            Console.WriteLine($"| {cases[i].Name} | {batch / best[i]:F1} | {best[i] * 1000:F0} ms |");
        foreach (var (_, session) in cases) session.Dispose();
    }
}
