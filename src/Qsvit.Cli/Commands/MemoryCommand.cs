using System.CommandLine;
using Qsvit.Models;
using Qsvit.Quantization;
using Spectre.Console;

namespace Qsvit.Cli.Commands;

/// <summary><c>qsvit memory</c>: the paper's memory footprint of a setting, per block and in total.</summary>
internal static class MemoryCommand
{
    public static Command Create()
    {
        var preset = new Option<string?>("--preset") { Description = $"Official size: {string.Join(", ", Presets.Names)} (or 55M)" };
        var model = new Option<string?>("--model", "-m") { Description = "Checkpoint whose architecture to count (instead of --preset)" };
        var setting = new Option<string>("--setting", "-s") { Description = "Bit widths, e.g. \"8,4,8,8|8,8,8|4,32|4,32\" (also: paper), or JSON", DefaultValueFactory = _ => "32" };
        var exact = new Option<string?>("--exact") { Description = "Also count quantization scales for this quantizer (paper, symmetric-channel, …)" };
        var json = CommonOptions.Json();
        var command = new Command("memory", "Memory footprint of a quantization setting as the QSViT paper counts it") { preset, model, setting, exact, json };
        command.SetAction(r =>
        {
            var config = r.GetValue(model) is { } path ? ModelLoader.Load(path).Config
                : r.GetValue(preset) is { } name ? Presets.Get(name)
                : throw new QsvitException("give --preset NAME or --model CHECKPOINT");
            var layout = new Sdtv2Layout(config);
            var text = r.GetValue(setting)!;
            var s = text.Trim() is { } t && int.TryParse(t, out int uniform) ? QuantizationSetting.Uniform(uniform) : QuantizationSetting.Parse(text);
            s.Validate(layout);
            var spec = r.GetValue(exact) is { } e ? QuantizerSpec.Parse(e) : null;
            var m = MemoryFootprint.Compute(layout, s, spec);
            if (r.GetValue(json))
            {
                Cli.WriteJson(new
                {
                    setting = s.ToString(),
                    parameters = layout.LearnedParameterCount,
                    fp32_bytes = m.Fp32Bytes,
                    bytes = m.Bytes,
                    mib = m.MiB,
                    fp32_mib = m.Fp32MiB,
                    saving_percent = m.SavingPercent,
                    units = m.Units.Select(u => new { name = u.Name, parameters = u.Parameters, bytes = u.Bytes, mib = u.MiB }),
                });
                return 0;
            }
            var table = new Table().AddColumns("unit", "parameters", "MiB", "saving");
            foreach (var u in m.Units) table.AddRow(u.Name, $"{u.Parameters:N0}", $"{u.MiB:F2}", $"{u.SavingPercent:F1}%");
            Cli.Out.Write(table);
            Console.WriteLine($"setting   {s}{(spec is null ? "" : $" (exact: scales of {spec} counted)")}");
            Console.WriteLine($"fp32      {m.Fp32Bytes:N0} B ({m.Fp32MiB:F2} MiB)");
            Console.WriteLine($"quantized {m.Bytes:N0} B ({m.MiB:F2} MiB, {m.SavingPercent:F2} % saving)");
            return 0;
        });
        return command;
    }
}
