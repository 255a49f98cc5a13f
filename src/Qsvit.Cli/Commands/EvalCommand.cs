using System.CommandLine;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Spectre.Console;

namespace Qsvit.Cli.Commands;

/// <summary><c>qsvit eval</c>: accuracy, throughput and firing rates of a checkpoint on a dataset.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var data = new DataOptions();
        var device = new DeviceOptions();
        var json = CommonOptions.Json();
        // Only here: searches compare settings against cached fp32 results, which folding would change in the last bits.
        var foldBn = new Option<bool>("--fold-bn") { Description = "Fold BatchNorm into conv weights (faster, not bit-exact with PyTorch)" };
        var command = new Command("eval", "Evaluate a checkpoint: top-1/top-5 with 95% intervals, images/s, spike rates per block");
        model.AddTo(command);
        data.AddTo(command);
        device.AddTo(command);
        command.Add(json);
        command.Add(foldBn);
        command.SetAction(r =>
        {
            FirstImages.Validate(r.GetValue(data.Limit), "--limit");
            using var backend = device.Open(r);
            var loaded = model.Load(r);
            var dataset = data.Open(r, loaded);
            using var net = loaded.CreateModel(r.GetValue(foldBn), backend);
            var options = new EvalOptions { BatchSize = data.BatchSize(r, backend, dataset), Host = device.Compute(r) };
            var result = Cli.WithProgress("eval", dataset.Count, report =>
                Evaluator.Run(net, dataset, options, new Progress(report)));
            if (r.GetValue(json)) Cli.WriteJson(ToJson(loaded, dataset.Name, result, backend, options.BatchSize));
            else Print(loaded, dataset.Name, result, backend, options.BatchSize);
            return 0;
        });
        return command;
    }

    /// <summary>Synchronous IProgress so that reports arrive in order on the evaluating thread.</summary>
    internal sealed class Progress(Action<int, string> report) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress p) =>
            report(p.Done, $"top-1 {100.0 * p.Correct / Math.Max(1, p.Done):F2}% {p.Done / Math.Max(1e-9, p.Elapsed.TotalSeconds):F1} img/s");
    }

    private static void Print(LoadedModel m, string data, EvalResult r, Backends.IBackend device, int batch)
    {
        Console.WriteLine($"model  {m.CheckpointPath}");
        Console.WriteLine($"       {m.Config}");
        Console.WriteLine($"data   {data}, {r.Count} images");
        Console.WriteLine($"top-1  {r.Top1} %  (95% Wilson interval)");
        Console.WriteLine($"top-5  {r.Top5} %");
        Console.WriteLine($"device {device.Description}, batch {batch}");
        Console.WriteLine($"speed  {r.ImagesPerSecond:F2} images/s over {r.Seconds:F1} s");
        var table = new Table().AddColumns("block", "firing rate");
        foreach (var (block, rate) in r.RatesByBlock()) table.AddRow(block, $"{rate:F4}");
        Cli.Out.Write(table);
    }

    private static object ToJson(LoadedModel m, string data, EvalResult r, Backends.IBackend device, int batch) => new
    {
        model = m.CheckpointPath,
        config = m.Config.ToString(),
        data,
        images = r.Count,
        top1 = r.Top1.Value,
        top1_ci95 = new[] { r.Top1.Low, r.Top1.High },
        top5 = r.Top5.Value,
        top5_ci95 = new[] { r.Top5.Low, r.Top5.High },
        images_per_second = r.ImagesPerSecond,
        seconds = r.Seconds,
        device = device.Device.ToString(),
        device_description = device.Description,
        batch,
        firing_rates_by_block = r.RatesByBlock().ToDictionary(x => x.Block, x => x.Rate),
        firing_rates = r.FiringRates.ToDictionary(x => x.Name, x => x.Rate),
    };
}
