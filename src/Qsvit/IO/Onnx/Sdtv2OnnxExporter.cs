using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.IO.Onnx;

/// <summary>How the MultiStepLIF recurrence over T appears in the graph.</summary>
public enum LifExport
{
    /// <summary>T steps of elementwise ops (Split, Sub, Mul, Add, GreaterOrEqual, Cast, Where, Concat): every runtime runs it.</summary>
    Unrolled,
    /// <summary>One Scan over T whose body is one step: a smaller graph; TensorRT lacks Scan, ONNX Runtime runs it about as fast (BENCHMARKS.md).</summary>
    Scan,
}

/// <summary>What to export: fp32 when <see cref="Setting"/> is null, else QDQ units at the setting's widths.</summary>
public sealed record OnnxExportOptions
{
    public QuantizationSetting? Setting { get; init; }
    public QuantizerSpec Quantizer { get; init; } = QuantizerSpec.Paper;
    public LifExport Lif { get; init; } = LifExport.Unrolled;
    /// <summary>BatchNorms folded into the conv weights, as <c>eval --fold-bn</c> runs them (fp32 only); otherwise each is a BatchNormalization node.</summary>
    public bool FoldBatchNorm { get; init; }
}

/// <summary>What an export wrote: its size, and how many weights went out in each storage type.</summary>
public sealed record OnnxExportResult(long FileBytes, long InitializerBytes, int Nodes, IReadOnlyDictionary<string, int> WeightsByStorage);

/// <summary>
/// Writes an SDTv2 as a standard ONNX graph (opset 21) computing what <see cref="Sdtv2Model"/> computes: input "images"
/// [batch, C, H, W] (normalized, dynamic batch), output "logits" [batch, classes]. The graph is recorded by running the one
/// model wiring (<see cref="Sdtv2Model"/>) on <see cref="OnnxGraphBackend"/>, so it has the official module order by
/// construction. Activations are time-first frames [T·batch, …] as in the official model; the image is repeated over T
/// after the stem conv (identical frames). Quantized weights are integer initializers (int4/int8/int16, or unsigned with
/// a zero point) under their official state_dict keys, read by DequantizeLinear with per-tensor or per-output-channel
/// (axis 0) scales; fp32 weights and biases are float initializers under their official keys. Each eval BatchNorm is a
/// BatchNormalization node with the official weight, bias and running statistics (qsvit runs it as its own step; runtimes
/// fold it into fp32 convs when they load), unless <see cref="OnnxExportOptions.FoldBatchNorm"/> folds it as qsvit does.
/// A packed model (<see cref="PackedModel"/>) goes out with its codes as they are and its BatchNorms as the stored
/// affines (Mul, Add). Each node's doc_string names its QSViT block; model metadata holds the configuration, setting and quantizer.
/// </summary>
public static class Sdtv2OnnxExporter
{
    public const string InputName = "images", OutputName = "logits";

    /// <summary>
    /// Exports <paramref name="model"/> (fp32 weights under the official keys) to <paramref name="path"/>, atomically. The model
    /// description (configuration, normalization, class names) goes into the metadata as "qsvit.model", as in safetensors.
    /// </summary>
    public static OnnxExportResult Export(LoadedModel model, string path, OnnxExportOptions? options = null)
    {
        options ??= new OnnxExportOptions();
        var c = model.Config;
        c.Validate();
        options.Quantizer.Validate();
        options.Setting?.Validate(new Sdtv2Layout(c));
        if (options.FoldBatchNorm && options.Setting is not null)
            throw new QsvitException("folding BatchNorm changes the weights a setting quantizes, so a folded model has no integer codes: " +
                                     "export it at fp32, or keep BatchNorm (the default) for a quantized export");
        return Write(c, path, options, model.Normalization, model.ClassNames, model.State, null,
            backend => new Sdtv2Model(c, model.State, foldBatchNorm: options.FoldBatchNorm, backend: backend));
    }

    /// <summary>
    /// Exports a packed model: its codes go straight into DequantizeLinear initializers under the official keys (no float
    /// round trip), its BatchNorms as the stored eval affines. The graph computes what <c>eval</c> runs on the model's
    /// simulated path (the same codes dequantized). <paramref name="options"/> gives the LIF form; the setting and quantizer
    /// are the model's own.
    /// </summary>
    public static OnnxExportResult Export(PackedModel model, string path, OnnxExportOptions? options = null)
    {
        options ??= new OnnxExportOptions();
        if (options.Setting is { } s && s.ToString() != model.Setting.ToString())
            throw new QsvitException($"the packed model was quantized with setting {model.Setting}; it cannot be exported with {s}");
        if (options.FoldBatchNorm) throw new QsvitException("a packed model keeps its BatchNorms as exact affines; --fold-bn is for fp32 checkpoints");
        options = options with { Setting = model.Setting, Quantizer = model.Spec };
        return Write(model.Config, path, options, model.Normalization, model.ClassNames, null, model,
            backend => new Sdtv2Model(model, simulate: false, backend));
    }

    private static OnnxExportResult Write(Sdtv2Config c, string path, OnnxExportOptions options, Normalization? normalization,
        IReadOnlyList<string>? classNames, StateDict? batchNormStats, PackedModel? packed, Func<OnnxGraphBackend, Sdtv2Model> create)
    {
        c.Validate();
        var layout = new Sdtv2Layout(c);
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) throw new QsvitException($"output folder '{dir}' does not exist");

        var graph = new OnnxGraph("sdtv2")
        {
            DocString = $"{c}; input: normalized images [batch, {c.InChannels}, {c.ImageHeight}, {c.ImageWidth}]; output: logits [batch, {c.NumClasses}]",
        };
        using var backend = new OnnxGraphBackend(graph, c, layout, options, batchNormStats, packed);
        using (var net = create(backend))
        {
            backend.NameLifLayers(net.LifNames);
            // One image records the pass; every op is recorded shape-agnostically, so the graph takes any batch.
            net.Forward(new float[c.InChannels * c.ImageHeight * c.ImageWidth], 1, c.ImageHeight, c.ImageWidth);
        }

        string temp = full + ".tmp";
        try
        {
            using (var stream = File.Create(temp))
                OnnxModel.Write(stream, graph, typeof(Sdtv2OnnxExporter).Assembly.GetName().Version?.ToString() ?? "0",
                    "Spike-Driven Transformer V2 (SDTv2) exported by qsvit",
                    Metadata(c, layout, options,
                        packed is not null ? "affine" : options.FoldBatchNorm ? "folded" : "BatchNormalization", ModelFile.Write(c, normalization, classNames)));
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return new OnnxExportResult(new FileInfo(full).Length, graph.InitializerBytes, backend.Nodes,
            new Dictionary<string, int>(backend.WeightsByStorage, StringComparer.Ordinal));
    }

    private static Dictionary<string, string> Metadata(Sdtv2Config config, Sdtv2Layout layout, OnnxExportOptions options, string batchNorm, string modelJson) => new(StringComparer.Ordinal)
    {
        [ModelLoader.ConfigMetadataKey] = modelJson,
        ["qsvit.config"] = config.ToString(),
        ["qsvit.setting"] = options.Setting?.ToString() ?? "fp32",
        ["qsvit.quantizer"] = options.Setting is null ? "none" : options.Quantizer.ToString(),
        ["qsvit.lif"] = options.Lif.ToString().ToLowerInvariant(),
        ["qsvit.batchnorm"] = batchNorm,
        // Official key → QSViT block, layer label and width, for tools that map results back onto the paper's names.
        ["qsvit.weights"] = System.Text.Json.JsonSerializer.Serialize(layout.Weights.ToDictionary(w => w.Key,
            w => new Dictionary<string, object>
            {
                ["block"] = w.Block, ["unit"] = w.Unit, ["label"] = w.Label, ["bits"] = options.Setting?.BitsFor(w) ?? Quantizer.FullPrecision,
            })),
    };
}
