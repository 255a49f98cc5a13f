using System.CommandLine;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
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
        var compare = new Option<bool>("--compare-simulated")
        {
            Description = "Packed models: also run the same codes as fp32 simulation (fake quantization) and count identical predictions",
        };
        var power = new Option<bool>("--power")
        {
            Description = "Measure board power while evaluating (NVML, CUDA GPUs): average watts, joules per image, images per joule, per GPU and in total",
        };
        var predictions = new Option<string?>("--predictions") { Description = "Write each image's index, label, predicted class and logits to FILE (JSON Lines)" };
        var command = new Command("eval", "Evaluate a checkpoint or a packed model: top-1/top-5 with 95% intervals, images/s, spike rates per block");
        model.AddTo(command);
        data.AddTo(command);
        device.AddTo(command);
        command.Add(json);
        command.Add(foldBn);
        command.Add(compare);
        command.Add(predictions);
        command.Add(power);
        command.SetAction(r =>
        {
            FirstImages.Validate(r.GetValue(data.Limit), "--limit");
            if (PackedModel.IsPackedFile(r.GetRequiredValue(model.Model))) return EvalPacked(r, model, data, device, json, compare, predictions);
            if (r.GetValue(compare)) throw new QsvitException("--compare-simulated needs a packed model (qsvit export)");
            // Bad inputs (model, data, the predictions file) are reported before the device is opened (and announced).
            var loaded = model.Load(r);
            var dataset = data.Open(r, loaded);
            using var writer = r.GetValue(predictions) is { } file ? new PredictionWriter(file) : null;
            using var backend = device.Open(r);
            using var net = loaded.CreateModel(r.GetValue(foldBn), backend);
            var options = new EvalOptions
            {
                BatchSize = data.BatchSize(r, backend, net, dataset), Host = device.Compute(r), OnPrediction = writer is null ? null : writer.Write,
            };
            var (result, energy) = Measured(r.GetValue(power), backend, () => Cli.WithProgress("eval", dataset.Count, report =>
                Evaluator.Run(net, dataset, options, new Progress(report))));
            if (r.GetValue(json)) Cli.WriteJson(ToJson(loaded, dataset.Name, result, backend, options.BatchSize, energy));
            else Print(loaded, dataset.Name, result, backend, options.BatchSize, energy);
            return 0;
        });
        return command;
    }

    /// <summary>A packed model on its integer path; with --compare-simulated also as fp32 simulation of the same codes.</summary>
    private static int EvalPacked(ParseResult r, ModelOptions model, DataOptions data, DeviceOptions device, Option<bool> json, Option<bool> compare,
        Option<string?> predictions)
    {
        string path = r.GetRequiredValue(model.Model);
        var packed = PackedModel.Load(path);
        var dataset = data.Open(r, packed.Config, packed.Normalization);
        // --predictions records the packed (integer) run, the one a deployed packed model computes.
        using var writer = r.GetValue(predictions) is { } file ? new PredictionWriter(file) : null;
        using var backend = device.Open(r);
        int batch;
        using (var probe = new Sdtv2Model(packed, simulate: false, new Backends.WorkspaceMeter())) batch = data.BatchSize(r, backend, probe, dataset);
        var options = new EvalOptions { BatchSize = batch, Host = device.Compute(r) };
        EvalResult Run(bool simulate) => Cli.WithProgress(simulate ? "simulated" : "packed", dataset.Count, report =>
        {
            using var net = new Sdtv2Model(packed, simulate, backend);
            return Evaluator.Run(net, dataset, simulate || writer is null ? options : options with { OnPrediction = writer.Write }, new Progress(report));
        });
        var result = Run(simulate: false);
        var comparison = r.GetValue(compare) ? new PackedComparison(result, Run(simulate: true)) : null;
        var described = new LoadedModel(packed.Config, new IO.StateDict(), packed.Normalization, packed.ClassNames, path, null,
            new Dictionary<string, string>());
        if (r.GetValue(json))
        {
            Cli.WriteJson(new
            {
                packed = ToJson(described, dataset.Name, result, backend, options.BatchSize),
                setting = packed.Setting.ToString(),
                quantizer = packed.Spec.ToString(),
                simulated = comparison is null ? null : ToJson(described, dataset.Name, comparison.Simulated, backend, options.BatchSize),
                identical_predictions = comparison?.Identical,
                identical_percent = comparison?.IdenticalPercent,
                top1_delta_points = comparison?.Top1DeltaPoints,
                correct_only_packed = comparison?.CorrectOnly.PackedOnly,
                correct_only_simulated = comparison?.CorrectOnly.SimulatedOnly,
            });
            return 0;
        }
        Print(described, dataset.Name, result, backend, options.BatchSize);
        Console.WriteLine($"packed {packed.Setting} ({packed.Spec}), integer spike path");
        if (comparison is not null)
        {
            var (p, s) = comparison.CorrectOnly;
            Console.WriteLine($"simulated (fp32 fake quantization of the same codes): top-1 {comparison.Simulated.Top1} %, " +
                              $"{comparison.Simulated.ImagesPerSecond:F2} images/s");
            Console.WriteLine($"identical predictions {comparison.Identical} of {comparison.Count} ({comparison.IdenticalPercent:F2} %); " +
                              $"top-1 packed − simulated {comparison.Top1DeltaPoints:+0.00;-0.00} points ({p} right only packed, {s} only simulated)");
        }
        return 0;
    }

    /// <summary>The evaluation, with its board energy when asked for (<c>--power</c>).</summary>
    internal static (EvalResult Result, EnergyMeasurement? Energy) Measured(bool power, Backends.IBackend backend, Func<EvalResult> run,
        IPowerSource? source = null)
    {
        if (!power) return (run(), null);
        var (result, energy) = EnergyMeasurement.Measure(backend, source ?? NvmlPowerSource.Instance, run, x => x.Count);
        return (result, energy);
    }

    /// <summary>Synchronous IProgress so that reports arrive in order on the evaluating thread.</summary>
    internal sealed class Progress(Action<int, string> report) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress p) =>
            report(p.Done, $"top-1 {100.0 * p.Correct / Math.Max(1, p.Done):F2}% {p.Done / Math.Max(1e-9, p.Elapsed.TotalSeconds):F1} img/s");
    }

    private static void Print(LoadedModel m, string data, EvalResult r, Backends.IBackend device, int batch, EnergyMeasurement? energy = null)
    {
        Console.WriteLine($"model  {m.CheckpointPath}");
        Console.WriteLine($"       {m.Config}");
        Console.WriteLine($"data   {data}, {r.Count} images");
        Console.WriteLine($"top-1  {r.Top1} %  (95% Wilson interval)");
        Console.WriteLine($"top-5  {r.Top5} %");
        Console.WriteLine($"device {device.Description}, batch {batch}");
        Console.WriteLine($"speed  {r.ImagesPerSecond:F2} images/s over {r.Seconds:F1} s");
        if (energy is not null)
            foreach (var line in energy.Lines()) Console.WriteLine($"power  {line}");
        var table = new Table().AddColumns("block", "firing rate");
        foreach (var (block, rate) in r.RatesByBlock()) table.AddRow(block, $"{rate:F4}");
        Cli.Out.Write(table);
    }

    private static object ToJson(LoadedModel m, string data, EvalResult r, Backends.IBackend device, int batch, EnergyMeasurement? energy = null) => new
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
        power = energy is null ? null : PowerJson(energy),
    };

    internal static object PowerJson(EnergyMeasurement e) => new
    {
        measured = e.Measured,
        not_measured_reason = e.NotMeasuredReason,
        average_watts = e.Measured ? e.AverageWatts : (double?)null,
        joules = e.Measured ? e.Joules : (double?)null,
        joules_per_image = e.Measured ? e.JoulesPerImage : (double?)null,
        images_per_joule = e.Measured ? e.ImagesPerJoule : (double?)null,
        seconds = e.Seconds,
        devices = e.Devices.Select(d => new { device = d.Device, source = d.Source, average_watts = d.AverageWatts, joules = d.Joules, seconds = d.Seconds, d.Measured }).ToArray(),
    };
}
