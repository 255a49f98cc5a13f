using System.CommandLine;
using System.Globalization;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Spectre.Console;

namespace Qsvit.Cli.Commands;

/// <summary><c>qsvit apply</c>: QSViT's Alg. 4 on its own: quantize a checkpoint with a given setting and save it.</summary>
internal static class ApplyCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var data = new DataOptions("--data", "Evaluate the quantized network on this dataset (optional)");
        data.Data.Required = false;
        var setting = new Option<string>("--setting", "-s")
        {
            Description = "Bit widths, e.g. \"8,4,8,8|8,8,8|4,32|4,32\" (also: paper, the QSViT paper's setting), a single width for every unit, or the JSON form",
            Required = true,
        };
        var quantizer = CommonOptions.Quantizer();
        var correct = new CorrectOptions(withData: true);
        var output = new Option<string>("--out", "-o") { Description = "Quantized network to write (.safetensors)", Required = true };
        var device = new DeviceOptions();
        var json = CommonOptions.Json();
        var command = new Command("apply", "Quantize a checkpoint with a setting and save it as safetensors (dequantized weights + metadata)");
        model.AddTo(command);
        data.AddTo(command);
        foreach (var o in new Option[] { setting, quantizer }) command.Add(o);
        correct.AddTo(command);
        foreach (var o in new Option[] { output, json }) command.Add(o);
        device.AddTo(command);
        command.SetAction(r =>
        {
            FirstImages.Validate(r.GetValue(data.Limit), "--limit");
            var loaded = model.Load(r);
            var layout = new Sdtv2Layout(loaded.Config);
            string text = r.GetValue(setting)!;
            var s = int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int uniform)
                ? QuantizationSetting.Uniform(uniform) : QuantizationSetting.Parse(text);
            var spec = CommonOptions.ParseQuantizer(r.GetValue(quantizer)!);
            var correction = correct.Parse(r);
            // Every input (the device included) is checked before the output file is written.
            var dataset = r.GetValue(data.Data) is null ? null : data.Open(r, loaded);
            var calibration = correct.Calibration(r, loaded, correction, device.Compute(r));
            using var backend = dataset is null && calibration is null ? null : device.Open(r);
            var quantized = CorrectOptions.Apply(loaded, new ModelQuantizer(loaded.State, layout, device.Compute(r)).Apply(s, spec),
                correction, calibration, backend);
            string path = r.GetValue(output)!;
            QsvitCheckpoint.Save(path, loaded, quantized);
            var memory = MemoryFootprint.Compute(layout, s);
            var exact = MemoryFootprint.Compute(layout, s, spec);

            EvalResult? eval = null;
            string? deviceName = null;
            if (dataset is not null && backend is not null)
            {
                using var net = new Sdtv2Model(loaded.Config, quantized.StateDict, backend: backend);
                var options = new EvalOptions { BatchSize = data.BatchSize(r, backend, net, dataset), Host = device.Compute(r) };
                deviceName = backend.Device.ToString();
                eval = Cli.WithProgress("eval", dataset.Count, report => Evaluator.Run(net, dataset, options, new EvalCommand.Progress(report)));
            }

            var units = quantized.Weights.GroupBy(w => w.Unit).Select(g => new
            {
                unit = g.Key,
                bits = string.Join("/", g.Select(w => w.Bits).Distinct()),
                clipped_percent = 100 * g.Sum(w => w.ClippedFraction * w.Count) / g.Sum(w => w.Count),
                mib = memory.Units.Single(u => u.Name == g.Key).MiB,
            }).ToArray();
            if (r.GetValue(json))
            {
                Cli.WriteJson(new
                {
                    setting = s.ToString(),
                    quantizer = spec.ToString(),
                    correction = correction.ToString(),
                    correction_images = calibration?.Count,
                    output = path,
                    mib = memory.MiB,
                    fp32_mib = memory.Fp32MiB,
                    saving_percent = memory.SavingPercent,
                    mib_with_scales = exact.MiB,
                    units,
                    images = eval?.Count,
                    device = deviceName,
                    top1 = eval?.Top1.Value,
                    top1_ci95 = eval is null ? null : new[] { eval.Top1.Low, eval.Top1.High },
                });
                return 0;
            }
            var table = new Table().AddColumns("unit", "bits", "clipped", "MiB");
            foreach (var u in units) table.AddRow(u.unit, u.bits, $"{u.clipped_percent:F2} %", $"{u.mib:F3}");
            Cli.Out.Write(table);
            Console.WriteLine($"setting   {s} ({spec}{(correction.IsNone ? "" : $", corrected: {correction} on {calibration!.Count} images")})");
            Console.WriteLine($"memory    {memory.MiB:F3} MiB vs {memory.Fp32MiB:F3} MiB fp32 ({memory.SavingPercent:F2} % saving; {exact.MiB:F3} MiB with scales)");
            if (eval is not null) Console.WriteLine($"top-1     {eval.Top1} % on {eval.Count} images (95% Wilson interval), on {deviceName}");
            Console.WriteLine($"saved     {path}");
            return 0;
        });
        return command;
    }
}
