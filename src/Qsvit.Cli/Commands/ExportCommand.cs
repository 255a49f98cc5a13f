using System.CommandLine;
using System.Globalization;
using Qsvit.IO.Onnx;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Cli.Commands;

/// <summary>
/// <c>qsvit export</c>: write a model for deployment. safetensors (the default): the packed model, codes bit-packed at their
/// width, that eval and bench run on the integer path; onnx: a standard ONNX graph for other runtimes.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var format = new Option<string>("--format")
        {
            Description = "safetensors: the packed model (codes bit-packed at their width, scales, fp32 rest) that eval and bench run on the " +
                          "integer path; onnx: a standard ONNX graph (opset 21), quantized units as int4/int8/int16 QDQ",
            DefaultValueFactory = _ => "safetensors",
        };
        var setting = new Option<string?>("--setting", "-s") { Description = "Bit widths, e.g. \"8,4,8,8|8,8,8|4,32|4,32\" (also: paper, the QSViT paper's setting), a single width, or the JSON form (onnx: default fp32)" };
        var quantizer = CommonOptions.Quantizer();
        var correct = new CorrectOptions(withData: true);
        var lif = new Option<string>("--lif") { Description = "onnx: LIF over T unrolled (elementwise ops, faster in ONNX Runtime) or scan (one Scan per layer)", DefaultValueFactory = _ => "unrolled" };
        var foldBn = new Option<bool>("--fold-bn")
        {
            Description = "onnx, fp32: fold BatchNorm into the conv weights as eval --fold-bn runs them (default: BatchNormalization nodes with the official running statistics)",
        };
        var output = new Option<string>("--out", "-o") { Description = "File to write (.safetensors or .onnx)", Required = true };
        var json = CommonOptions.Json();
        var command = new Command("export", "Export a model for deployment: the packed safetensors model at its true size (default) or an ONNX graph " +
                                            "(from a checkpoint, or from a packed model with its codes as they are)");
        model.AddTo(command);
        foreach (var o in new Option[] { format, setting, quantizer }) command.Add(o);
        correct.AddTo(command);
        foreach (var o in new Option[] { lif, foldBn, output, json }) command.Add(o);
        command.SetAction(r =>
        {
            string f = r.GetValue(format)!.ToLowerInvariant();
            if (f is not ("safetensors" or "onnx")) throw new QsvitException($"unknown --format '{r.GetValue(format)}'; expected safetensors or onnx");
            if (PackedModel.IsPackedFile(r.GetRequiredValue(model.Model)))
            {
                if (f != "onnx") throw new QsvitException($"{r.GetRequiredValue(model.Model)} is a packed model already; export it with --format onnx");
                if (r.GetValue(setting) is not null || r.GetResult(quantizer) is { Implicit: false } || !correct.Parse(r).IsNone)
                    throw new QsvitException("a packed model carries its own setting, quantizer and corrections; leave out --setting, --quantizer and --correct");
                var packed = PackedModel.Load(r.GetRequiredValue(model.Model));
                var options = new OnnxExportOptions { Lif = LifMode(r, lif), FoldBatchNorm = r.GetValue(foldBn) };
                var exported = Sdtv2OnnxExporter.Export(packed, r.GetValue(output)!, options);
                return PrintOnnx(r, r.GetRequiredValue(model.Model), packed.Config, packed.Setting, packed.Spec, options.Lif, r.GetValue(output)!, exported, json);
            }
            var loaded = model.Load(r);
            string? text = r.GetValue(setting);
            if (text is null && loaded.Metadata.TryGetValue(QsvitCheckpoint.SettingKey, out var saved))
                throw new QsvitException($"{loaded.CheckpointPath} holds weights already quantized with setting {saved}; export the fp32 " +
                                         $"checkpoint with --setting \"{saved}\" --quantizer {loaded.Metadata.GetValueOrDefault(QsvitCheckpoint.QuantizerKey, "paper")} " +
                                         "so that the file stores their exact integer codes");
            var s = text is null ? null
                : int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int uniform) ? QuantizationSetting.Uniform(uniform)
                : QuantizationSetting.Parse(text);
            var spec = CommonOptions.ParseQuantizer(r.GetValue(quantizer)!);
            var correction = correct.Parse(r);
            if (!correction.IsNone)
            {
                // Corrections live in biases and BatchNorm statistics: the fp32 source carries them, its weights quantize as before.
                if (s is null) throw new QsvitException($"--correct {correction} corrects a quantized network; give --setting");
                var calibration = correct.Calibration(r, loaded, correction, Tensors.ComputeOptions.Default);
                var corrected = CorrectOptions.Apply(loaded, ModelQuantizer.Apply(loaded.State, new Sdtv2Layout(loaded.Config), s, spec), correction, calibration, null);
                loaded = loaded with { State = QuantizationCorrector.WithCorrections(loaded.State, corrected, new Sdtv2Layout(loaded.Config)) };
            }
            string path = r.GetValue(output)!;
            if (f == "onnx")
            {
                var options = new OnnxExportOptions { Setting = s, Quantizer = spec, Lif = LifMode(r, lif), FoldBatchNorm = r.GetValue(foldBn) };
                var exported = Sdtv2OnnxExporter.Export(loaded, path, options);
                return PrintOnnx(r, loaded.CheckpointPath, loaded.Config, s, spec, options.Lif, path, exported, json);
            }
            if (r.GetValue(foldBn)) throw new QsvitException("--fold-bn is for --format onnx (a packed model keeps BatchNorms as exact affines)");
            return Packed(r, loaded, s, spec, path, json);
        });
        return command;
    }

    private static int Packed(ParseResult r, LoadedModel loaded, QuantizationSetting? s, QuantizerSpec spec, string path, Option<bool> json)
    {
        if (s is null) throw new QsvitException("--setting is required for a packed model (e.g. --setting 8); use the checkpoint itself for fp32");
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new QsvitException($"--out '{path}': a packed model is a .safetensors file");
        var packed = PackedModel.Create(loaded, s, spec);
        packed.Save(path);
        long bytes = new FileInfo(path).Length;
        var exact = MemoryFootprint.Compute(new Sdtv2Layout(loaded.Config), s, spec);
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
    }

    private static LifExport LifMode(ParseResult r, Option<string> lif) => r.GetValue(lif)!.ToLowerInvariant() switch
    {
        "unrolled" => LifExport.Unrolled,
        "scan" => LifExport.Scan,
        var other => throw new QsvitException($"unknown --lif '{other}'; expected unrolled or scan"),
    };

    private static int PrintOnnx(ParseResult r, string source, Sdtv2Config config, QuantizationSetting? s, QuantizerSpec spec, LifExport lifMode,
        string path, OnnxExportResult result, Option<bool> json)
    {
        var packed = s is null ? null : MemoryFootprint.Compute(new Sdtv2Layout(config), s, spec);
        if (r.GetValue(json))
        {
            Cli.WriteJson(new
            {
                output = path,
                format = "onnx",
                opset = OnnxModel.Opset,
                setting = s?.ToString() ?? "fp32",
                quantizer = s is null ? null : spec.ToString(),
                lif = lifMode.ToString().ToLowerInvariant(),
                bytes = result.FileBytes,
                packed_bytes = packed?.Bytes,
                nodes = result.Nodes,
                weights_by_storage = result.WeightsByStorage,
            });
            return 0;
        }
        Console.WriteLine($"model     {source}");
        Console.WriteLine($"          {config}");
        Console.WriteLine($"setting   {(s is null ? "fp32" : $"{s} ({spec})")}");
        Console.WriteLine($"weights   {string.Join(", ", result.WeightsByStorage.OrderBy(kv => kv.Key).Select(kv => $"{kv.Value} {kv.Key}"))}");
        Console.WriteLine($"graph     ONNX opset {OnnxModel.Opset}, {result.Nodes} nodes, LIF {lifMode.ToString().ToLowerInvariant()}; " +
                          $"input {Sdtv2OnnxExporter.InputName} [batch, {config.InChannels}, {config.ImageHeight}, {config.ImageWidth}], " +
                          $"output {Sdtv2OnnxExporter.OutputName} [batch, {config.NumClasses}]");
        Console.WriteLine($"saved     {path} ({result.FileBytes:N0} bytes{(packed is null ? "" : $"; packed size {packed.Bytes:N0} bytes")})");
        return 0;
    }
}
