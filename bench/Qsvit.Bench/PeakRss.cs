using System.Diagnostics;
using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Bench;

/// <summary>
/// Peak resident memory of loading a model and running one batch-1 forward, fp32 checkpoint against packed model:
/// <c>rss random 55M.safetensors</c> writes the 55M preset with random weights; <c>rss run FILE</c> loads FILE (packed models
/// on the integer path) and prints VmHWM after loading and after the forward. One process per measurement.
/// </summary>
internal static class PeakRss
{
    public static void Run(string[] args)
    {
        if (args.Length == 3 && args[1] == "random")
        {
            var config = Presets.Get("metaspikformer_8_512");
            SafeTensors.Write(args[2], RandomWeights.Create(config),
                new Dictionary<string, string> { [ModelLoader.ConfigMetadataKey] = ModelFile.Write(config, null, null) });
            return;
        }
        if (args.Length != 3 || args[1] != "run") throw new ArgumentException("usage: rss random OUT.safetensors | rss run MODEL");
        string path = args[2];
        var clock = Stopwatch.StartNew();
        bool packed = PackedModel.IsPackedFile(path);
        using var model = packed ? new Sdtv2Model(PackedModel.Load(path)) : ModelLoader.Load(path).CreateModel();
        long afterLoad = HighWaterMiB();
        var c = model.Config;
        model.Forward(new float[c.InChannels * c.ImageHeight * c.ImageWidth], 1, c.ImageHeight, c.ImageWidth);
        Console.WriteLine($"{(packed ? "packed" : "fp32")} {Path.GetFileName(path)}: peak RSS {afterLoad} MiB after loading, " +
                          $"{HighWaterMiB()} MiB after one batch-1 forward ({clock.Elapsed.TotalSeconds:F1} s)");
    }

    private static long HighWaterMiB() =>
        long.Parse(File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmHWM", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
}
