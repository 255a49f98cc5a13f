using System.CommandLine;
using System.Globalization;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Cli.Commands;

/// <summary><c>qsvit export</c>: write a quantized model for deployment; safetensors (packed codes, the default) or onnx.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var format = new Option<string>("--format")
        {
            Description = "safetensors: the packed model (codes bit-packed at their width, scales, fp32 rest) that eval and bench run " +
                          "on the integer path; onnx: a standard ONNX graph",
            DefaultValueFactory = _ => "safetensors",
        };
        var setting = new Option<string?>("--setting", "-s") { Description = "Bit widths, e.g. \"8,4,8,8|8,8,8|4,32|4,32\", a single width, or the JSON form" };
        var quantizer = new Option<string>("--quantizer", "-q") { Description = $"Weight quantizer: {string.Join(", ", QuantizerSpec.Names)}", DefaultValueFactory = _ => "paper" };
        var output = new Option<string>("--out", "-o") { Description = "File to write (.safetensors)", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON on stdout" };
        var command = new Command("export", "Export a quantized model at its true size: packed safetensors (default) or ONNX");
        model.AddTo(command);
        foreach (var o in new Option[] { format, setting, quantizer, output, json }) command.Add(o);
        command.SetAction(r =>
        {
            string f = r.GetValue(format)!.ToLowerInvariant();
            if (f != "safetensors") throw new QsvitException($"unknown --format '{r.GetValue(format)}'; this build exports safetensors");
            var loaded = model.Load(r);
            string text = r.GetValue(setting) ?? throw new QsvitException("--setting is required for a packed model (e.g. --setting 8)");
            var s = int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int uniform)
                ? QuantizationSetting.Uniform(uniform) : QuantizationSetting.Parse(text);
            var spec = QuantizerSpec.Parse(r.GetValue(quantizer)!);
            string path = r.GetValue(output)!;
            if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                throw new QsvitException($"--out '{path}': a packed model is a .safetensors file");
            var packed = PackedModel.Create(loaded, s, spec);
            packed.Save(path);
            long bytes = new FileInfo(path).Length;
            var layout = new Sdtv2Layout(loaded.Config);
            var exact = MemoryFootprint.Compute(layout, s, spec);
            if (r.GetValue(json))
            {
                Cli.WriteJson(new
                {
                    output = path,
                    format = "safetensors",
                    setting = s.ToString(),
                    quantizer = spec.ToString(),
                    bytes,
                    exact_memory_bytes = exact.Bytes,
                    fp32_bytes = exact.Fp32Bytes,
                    packed_weights = packed.Packed.Count,
                });
                return 0;
            }
            Console.WriteLine($"model     {loaded.CheckpointPath}");
            Console.WriteLine($"          {loaded.Config}");
            Console.WriteLine($"setting   {s} ({spec}); {packed.Packed.Count} weights packed, the rest fp32");
            Console.WriteLine($"saved     {path}: {bytes:N0} bytes (memory --exact {exact.Bytes:N0} bytes; fp32 {exact.Fp32Bytes:N0} bytes)");
            return 0;
        });
        return command;
    }
}
