using System.Globalization;
using System.Runtime.InteropServices;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Snn;
using Qsvit.Tensors;

namespace Qsvit.IO.Onnx;

/// <summary>How the MultiStepLIF recurrence over T appears in the graph.</summary>
public enum LifExport
{
    /// <summary>T steps of elementwise ops (Split, Sub, Mul, Add, GreaterOrEqual, Cast, Where, Concat): every runtime runs it.</summary>
    Unrolled,
    /// <summary>One Scan over T whose body is one step: a smaller graph, but ONNX Runtime runs it slower (README).</summary>
    Scan,
}

/// <summary>What to export: fp32 when <see cref="Setting"/> is null, else QDQ units at the setting's widths.</summary>
public sealed record OnnxExportOptions
{
    public QuantizationSetting? Setting { get; init; }
    public QuantizerSpec Quantizer { get; init; } = QuantizerSpec.Paper;
    public LifExport Lif { get; init; } = LifExport.Unrolled;
}

/// <summary>What an export wrote: its size, and how many weights went out in each storage type.</summary>
public sealed record OnnxExportResult(long FileBytes, long InitializerBytes, int Nodes, IReadOnlyDictionary<string, int> WeightsByStorage);

/// <summary>
/// Writes an SDTv2 as a standard ONNX graph (opset 21) computing what <see cref="Sdtv2Model"/> computes: input "images"
/// [batch, C, H, W] (normalized, dynamic batch), output "logits" [batch, classes]. Activations are time-first frames
/// [T·batch, …] as in the official model; the image is repeated over T after the stem conv (identical frames).
/// Quantized weights are integer initializers (int4/int8/int16, or unsigned with a zero point) under their official
/// state_dict keys, read by DequantizeLinear with per-tensor or per-output-channel (axis 0) scales; fp32 weights, biases
/// and BatchNorm parameters are float initializers under their official keys. BatchNorm stays BatchNormalization: folding
/// it is never exact in float32 and would change a quantized weight's codes; runtimes fold it into fp32 convs when they load.
/// Each node's doc_string names its QSViT block; model metadata holds the configuration, setting and quantizer.
/// </summary>
public sealed class Sdtv2OnnxExporter
{
    public const string InputName = "images", OutputName = "logits";

    private readonly Sdtv2Config _config;
    private readonly Sdtv2Layout _layout;
    private readonly StateDict _state;
    private readonly OnnxExportOptions _options;
    private readonly OnnxGraph _g = new("sdtv2");
    private readonly Dictionary<string, int> _storage = new(StringComparer.Ordinal);
    private int _nodes;

    private Sdtv2OnnxExporter(Sdtv2Config config, StateDict state, OnnxExportOptions options)
    {
        config.Validate();
        _config = config;
        _layout = new Sdtv2Layout(config);
        StateDictCheck.Validate(_layout, state, strict: true);
        _state = state;
        _options = options;
        options.Quantizer.Validate();
        options.Setting?.Validate(_layout);
    }

    /// <summary>
    /// Exports <paramref name="model"/> (fp32 weights under the official keys) to <paramref name="path"/>, atomically. The model
    /// description (configuration, normalization, class names) goes into the metadata as "qsvit.model", as in safetensors.
    /// </summary>
    public static OnnxExportResult Export(LoadedModel model, string path, OnnxExportOptions? options = null)
    {
        var exporter = new Sdtv2OnnxExporter(model.Config, model.State, options ?? new OnnxExportOptions());
        exporter.Build();
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) throw new QsvitException($"output folder '{dir}' does not exist");
        string temp = full + ".tmp";
        try
        {
            using (var stream = File.Create(temp))
                OnnxModel.Write(stream, exporter._g, typeof(Sdtv2OnnxExporter).Assembly.GetName().Version?.ToString() ?? "0",
                    "Spike-Driven Transformer V2 (SDTv2) exported by qsvit",
                    exporter.Metadata(ModelFile.Write(model.Config, model.Normalization, model.ClassNames)));
            File.Move(temp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
        return new OnnxExportResult(new FileInfo(full).Length, exporter._g.InitializerBytes, exporter._nodes, exporter._storage);
    }

    private Dictionary<string, string> Metadata(string modelJson)
    {
        var m = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [ModelLoader.ConfigMetadataKey] = modelJson,
            ["qsvit.config"] = _config.ToString(),
            ["qsvit.setting"] = _options.Setting?.ToString() ?? "fp32",
            ["qsvit.quantizer"] = _options.Setting is null ? "none" : _options.Quantizer.ToString(),
            ["qsvit.lif"] = _options.Lif.ToString().ToLowerInvariant(),
            // Official key → QSViT block, layer label and width, for tools that map results back onto the paper's names.
            ["qsvit.weights"] = System.Text.Json.JsonSerializer.Serialize(_layout.Weights.ToDictionary(w => w.Key,
                w => new Dictionary<string, object> { ["block"] = w.Block, ["unit"] = w.Unit, ["label"] = w.Label, ["bits"] = BitsOf(w) })),
        };
        return m;
    }

    private int BitsOf(WeightInfo w) => _options.Setting?.BitsFor(w) ?? Quantizer.FullPrecision;

    // ---- the network (mirrors Sdtv2Model.Forward) ----

    private int T => _config.Timesteps;

    private void Build()
    {
        var c = _config;
        int[] d = c.EmbedDim;
        _g.DocString = $"{c}; input: normalized images [batch, {c.InChannels}, {c.ImageHeight}, {c.ImageWidth}]; output: logits [batch, {c.NumClasses}]";
        string x = _g.Input(InputName, OnnxType.Float, [null, c.InChannels, c.ImageHeight, c.ImageWidth]);
        int h = c.ImageHeight, w = c.ImageWidth;

        // Stem on the image once, then repeated over T (the official model repeats the image; the stem sees T equal frames).
        var stem = new ConvGeometry(c.InChannels, d[0] / 2, 7, 7, c.StemStride, c.StemStride, 3, 3);
        x = ConvBn("downsample1_1", x, "downsample1_1.encode_conv.weight", "downsample1_1.encode_conv.bias", stem, "downsample1_1.encode_bn");
        (h, w) = (stem.OutH(h), stem.OutW(w));
        x = RepeatOverTime(x, d[0] / 2, h, w);

        x = ConvBlock("ConvBlock1_1.0", x, d[0] / 2);
        (x, h, w) = DownSampling("downsample1_2", x, d[0] / 2, d[0], 2, h, w);
        x = ConvBlock("ConvBlock1_2.0", x, d[0]);
        (x, h, w) = DownSampling("downsample2", x, d[0], d[1], 2, h, w);
        x = ConvBlock("ConvBlock2_1.0", x, d[1]);
        x = ConvBlock("ConvBlock2_2.0", x, d[1]);
        (x, h, w) = DownSampling("downsample3", x, d[1], d[2], 2, h, w);
        for (int j = 0; j < Sdtv2Config.Stage3Depth; j++) x = TransformerBlock($"block3.{j}", x, d[2], h, w);
        (x, h, w) = DownSampling("downsample4", x, d[2], d[3], 1, h, w);
        for (int j = 0; j < Sdtv2Config.Stage4Depth; j++) x = TransformerBlock($"block4.{j}", x, d[3], h, w);
        Head(x);
    }

    private string RepeatOverTime(string x, int ch, int h, int w)
    {
        if (T == 1) return x;
        string doc = Doc("downsample1_1");
        var u = Op("Unsqueeze", "repeat_T/unsqueeze", [x, _g.Int64s(0)], doc);
        var e = Op("Expand", "repeat_T/expand", [u, _g.Int64s(T, 1, 1, 1, 1)], doc);
        return Op("Reshape", "repeat_T", [e, _g.Int64s(-1, ch, h, w)], doc);
    }

    private (string X, int H, int W) DownSampling(string p, string x, int cin, int cout, int stride, int h, int w)
    {
        var g = new ConvGeometry(cin, cout, 3, 3, stride, stride, 1, 1);
        var s = Lif($"{p}.encode_lif", x, MultiStepLif.DefaultThreshold);
        var y = ConvBn(p, s, $"{p}.encode_conv.weight", $"{p}.encode_conv.bias", g, $"{p}.encode_bn");
        return (y, g.OutH(h), g.OutW(w));
    }

    /// <summary>MS_ConvBlock: x += SepConv(x); x += bn2(conv2(lif2(bn1(conv1(lif1(x)))))).</summary>
    private string ConvBlock(string p, string x, int dim)
    {
        int med = 2 * dim, hidden = dim * _config.MlpRatio;
        var s1 = Lif($"{p}.Conv.lif1", x, MultiStepLif.DefaultThreshold);
        var a = ConvBn(p, s1, $"{p}.Conv.pwconv1.weight", null, new ConvGeometry(dim, med, 1, 1), $"{p}.Conv.bn1");
        var s2 = Lif($"{p}.Conv.lif2", a, MultiStepLif.DefaultThreshold);
        a = ConvBn(p, s2, $"{p}.Conv.dwconv.weight", null, new ConvGeometry(med, med, 7, 7, 1, 1, 3, 3, med));
        a = ConvBn(p, a, $"{p}.Conv.pwconv2.weight", null, new ConvGeometry(med, dim, 1, 1), $"{p}.Conv.bn2");
        x = Op("Add", $"{p}.Conv/residual", [x, a], Doc(p));
        var s3 = Lif($"{p}.lif1", x, MultiStepLif.DefaultThreshold);
        var f = ConvBn(p, s3, $"{p}.conv1.weight", null, new ConvGeometry(dim, hidden, 3, 3, 1, 1, 1, 1), $"{p}.bn1");
        var s4 = Lif($"{p}.lif2", f, MultiStepLif.DefaultThreshold);
        var g = ConvBn(p, s4, $"{p}.conv2.weight", null, new ConvGeometry(hidden, dim, 3, 3, 1, 1, 1, 1), $"{p}.bn2");
        return Op("Add", $"{p}/residual", [x, g], Doc(p));
    }

    /// <summary>
    /// RepConv + BN. BNAndPadLayer pads BN(conv1x1(x)) with BN(0); the 1x1 conv has no bias, so padding its input with
    /// zeros and letting BN run over the border gives exactly that, in standard ops.
    /// </summary>
    private string RepConv(string p, string x, int dim)
    {
        string block = p;
        var padded = ConvBn(block, x, $"{p}.0.body.0.weight", null, new ConvGeometry(dim, dim, 1, 1, 1, 1, 1, 1), $"{p}.0.body.1.bn");
        var y = ConvBn(block, padded, $"{p}.0.body.2.0.weight", null, new ConvGeometry(dim, dim, 3, 3, 1, 1, 0, 0, dim));
        return ConvBn(block, y, $"{p}.0.body.2.1.weight", null, new ConvGeometry(dim, dim, 1, 1), $"{p}.0.body.2.2", $"{p}.1");
    }

    /// <summary>MS_Block: x += proj(attn_lif(SDSA(q, k, v))); x += MLP(x).</summary>
    private string TransformerBlock(string p, string x, int c, int h, int w)
    {
        string doc = Doc(p);
        int heads = _config.NumHeads, dh = c / heads, tokens = h * w;
        var s = Lif($"{p}.attn.head_lif", x, MultiStepLif.DefaultThreshold);
        var q = Lif($"{p}.attn.q_lif", RepConv($"{p}.attn.q_conv", s, c), MultiStepLif.DefaultThreshold);
        var k = Lif($"{p}.attn.k_lif", RepConv($"{p}.attn.k_conv", s, c), MultiStepLif.DefaultThreshold);
        var v = Lif($"{p}.attn.v_lif", RepConv($"{p}.attn.v_conv", s, c), MultiStepLif.DefaultThreshold);

        // SDSA per frame and head on [d, N] slices (channel = head·d + j, as the official reshape): the official
        // (Q_h·(K_hᵀ·V_h)·0.125)ᵀ = (V_h·K_hᵀ)·Q_h·0.125. Spikes are 0/1, so every sum is an exact integer in float32.
        var headShape = _g.Int64s(-1, heads, dh, tokens);
        var qr = Op("Reshape", $"{p}.attn/q_heads", [q, headShape], doc);
        var kr = Op("Reshape", $"{p}.attn/k_heads", [k, headShape], doc);
        var vr = Op("Reshape", $"{p}.attn/v_heads", [v, headShape], doc);
        var kt = Op("Transpose", $"{p}.attn/k_t", [kr], doc, OnnxAttribute.Of("perm", new long[] { 0, 1, 3, 2 }));
        var vk = Op("MatMul", $"{p}.attn/v_kt", [vr, kt], doc);
        var a = Op("MatMul", $"{p}.attn/vkt_q", [vk, qr], doc);
        a = Op("Mul", $"{p}.attn/scale", [a, _g.Scalar(0.125f)], doc);
        a = Op("Reshape", $"{p}.attn/merge_heads", [a, _g.Int64s(-1, c, h, w)], doc);
        var sa = Lif($"{p}.attn.attn_lif", a, MultiStepLif.AttentionThreshold);
        var o = RepConv($"{p}.attn.proj_conv", sa, c);
        x = Op("Add", $"{p}.attn/residual", [x, o], doc);

        // MS_MLP runs Conv1d over [T·B, C, N] with BatchNorm1d, as the official module (weights keep their [out, in, 1] shape).
        int hidden = c * _config.MlpRatio;
        var seq = Op("Reshape", $"{p}.mlp/flatten", [x, _g.Int64s(-1, c, tokens)], doc);
        var m1 = Lif($"{p}.mlp.fc1_lif", seq, MultiStepLif.DefaultThreshold);
        var f = ConvBn(p, m1, $"{p}.mlp.fc1_conv.weight", $"{p}.mlp.fc1_conv.bias", new ConvGeometry(c, hidden, 1, 1), $"{p}.mlp.fc1_bn");
        var m2 = Lif($"{p}.mlp.fc2_lif", f, MultiStepLif.DefaultThreshold);
        var g = ConvBn(p, m2, $"{p}.mlp.fc2_conv.weight", $"{p}.mlp.fc2_conv.bias", new ConvGeometry(hidden, c, 1, 1), $"{p}.mlp.fc2_bn");
        g = Op("Reshape", $"{p}.mlp/unflatten", [g, _g.Int64s(-1, c, h, w)], doc);
        return Op("Add", $"{p}.mlp/residual", [x, g], doc);
    }

    /// <summary>Spatial mean, the final lif, head (and head_kd) per frame, mean over T (and over the two heads).</summary>
    private void Head(string x)
    {
        int classes = _config.NumClasses;
        string doc = Doc("head");
        var pooled = Op("ReduceMean", "head/spatial_mean", [x, _g.Int64s(2, 3)], doc, OnnxAttribute.Of("keepdims", 0L));
        var spikes = Lif("lif", pooled, MultiStepLif.DefaultThreshold);
        string Linear(string name)
        {
            var y = Op("Gemm", name, [spikes, Weight($"{name}.weight"), Float($"{name}.bias")], doc, OnnxAttribute.Of("transB", 1L));
            y = Op("Reshape", $"{name}/split_T", [y, _g.Int64s(T, -1, classes)], doc);
            return Op("ReduceMean", $"{name}/mean_T", [y, _g.Int64s(0)], doc, OnnxAttribute.Of("keepdims", 0L));
        }
        var logits = Linear("head");
        if (_config.Kd)
        {
            var sum = Op("Add", "head_kd/sum", [logits, Linear("head_kd")], doc);
            logits = Op("Mul", "head_kd/mean", [sum, _g.Scalar(0.5f)], doc);
        }
        _g.Rename(logits, OutputName);
        _g.Output(OutputName, OnnxType.Float, [null, classes]);
    }

    // ---- layers ----

    /// <summary>Conv (1-D when the weight is [out, in, 1]) with optional bias, then each BatchNorm in order.</summary>
    private string ConvBn(string module, string x, string weightKey, string? biasKey, ConvGeometry g, params string[] bns)
    {
        string doc = Doc(module);
        string name = weightKey[..^".weight".Length];
        bool conv1d = _state[weightKey].Shape.Length == 3;
        var inputs = new List<string> { x, Weight(weightKey) };
        if (biasKey is not null) inputs.Add(Float(biasKey));
        var attrs = conv1d
            ? new[] { OnnxAttribute.Of("kernel_shape", new long[] { 1 }) }
            : new[]
            {
                OnnxAttribute.Of("kernel_shape", new long[] { g.KernelH, g.KernelW }),
                OnnxAttribute.Of("strides", new long[] { g.StrideH, g.StrideW }),
                OnnxAttribute.Of("pads", new long[] { g.PadH, g.PadW, g.PadH, g.PadW }),
                OnnxAttribute.Of("group", (long)g.Groups),
            };
        var y = Op("Conv", name, inputs, doc, attrs);
        foreach (var bn in bns)
            y = Op("BatchNormalization", bn, [y, Float(bn + ".weight"), Float(bn + ".bias"), Float(bn + ".running_mean"), Float(bn + ".running_var")],
                doc, OnnxAttribute.Of("epsilon", BatchNorm.DefaultEps));
        return y;
    }

    /// <summary>MultiStepLIF over time-first frames [T·B, …]: H = V + (X − V)·0.5; S = H ≥ Vth; V = S ? 0 : H.</summary>
    private string Lif(string module, string x, float threshold) =>
        _options.Lif == LifExport.Scan ? LifScan(module, x, threshold) : LifUnrolled(module, x, threshold);

    private string LifUnrolled(string module, string x, float threshold)
    {
        string doc = Doc(module);
        string half = _g.Scalar(0.5f), th = _g.Scalar(threshold), zero = _g.Scalar(0f);
        string[] steps = T == 1 ? [x] : Op("Split", $"{module}/split_T", [x], T, doc, OnnxAttribute.Of("axis", 0L), OnnxAttribute.Of("num_outputs", (long)T));
        var spikes = new string[T];
        string? v = null;
        for (int t = 0; t < T; t++)
        {
            string step = $"{module}/t{t}";
            // At t = 0, V = 0 and H = 0 + (X − 0)·0.5 = X·0.5 exactly.
            string hv = v is null
                ? Op("Mul", $"{step}/h", [steps[t], half], doc)
                : Op("Add", $"{step}/h", [v, Op("Mul", $"{step}/leak", [Op("Sub", $"{step}/x_minus_v", [steps[t], v], doc), half], doc)], doc);
            var fire = Op("GreaterOrEqual", $"{step}/fire", [hv, th], doc);
            spikes[t] = Op("Cast", $"{step}/spike", [fire], doc, OnnxAttribute.Of("to", (long)OnnxType.Float));
            if (t < T - 1) v = Op("Where", $"{step}/reset", [fire, zero, hv], doc);
        }
        return T == 1 ? spikes[0] : Op("Concat", module, spikes, doc, OnnxAttribute.Of("axis", 0L));
    }

    private string LifScan(string module, string x, float threshold)
    {
        string doc = Doc(module);
        string half = _g.Scalar(0.5f), th = _g.Scalar(threshold), zero = _g.Scalar(0f);
        var body = _g.Subgraph($"{module}/step");
        string vIn = body.Input($"{module}/v_in", OnnxType.Float, null);
        string xIn = body.Input($"{module}/x_t", OnnxType.Float, null);
        string hv = body.Node("Add", $"{module}/h", [vIn, body.Node("Mul", $"{module}/leak", [body.Node("Sub", $"{module}/x_minus_v", [xIn, vIn], doc), half], doc)], doc);
        string fire = body.Node("GreaterOrEqual", $"{module}/fire", [hv, th], doc);
        string spike = body.Node("Cast", $"{module}/spike", [fire], doc, OnnxAttribute.Of("to", (long)OnnxType.Float));
        string vOut = body.Node("Where", $"{module}/reset", [fire, zero, hv], doc);
        body.Output(vOut, OnnxType.Float, null);
        body.Output(spike, OnnxType.Float, null);
        _nodes += 5;

        var shape = Op("Shape", $"{module}/shape", [x], doc);
        var seq = Op("Reshape", $"{module}/to_T", [x, _g.Int64s(T, -1)], doc);
        var v0 = Op("ConstantOfShape", $"{module}/v0", [Op("Shape", $"{module}/neurons", [seq], doc, OnnxAttribute.Of("start", 1L))], doc);
        var outs = Op("Scan", $"{module}/scan", [v0, seq], 2, doc, OnnxAttribute.Of("body", body), OnnxAttribute.Of("num_scan_inputs", 1L));
        return Op("Reshape", module, [outs[1], shape], doc);
    }

    // ---- initializers ----

    private string Float(string key)
    {
        var t = _state[key];
        return _g.Floats(key, Dims(t.Shape), t.Data, Doc(key));
    }

    /// <summary>
    /// A conv/linear weight: fp32 under its key at 32 bits, else its integer codes under its key read by DequantizeLinear
    /// (scale "key.scale", zero point "key.zero_point" for asymmetric quantizers).
    /// </summary>
    private string Weight(string key)
    {
        var info = _layout.Weight(key);
        int bits = BitsOf(info);
        var t = _state[key];
        string doc = $"{info.Block} {info.Label} ({info.Kind}, {bits} bit)";
        if (bits == Quantizer.FullPrecision)
        {
            Count("float32");
            return _g.Floats(key, Dims(t.Shape), t.Data, doc);
        }
        var spec = _options.Quantizer;
        var codes = new int[t.Data.Length];
        var p = Quantizer.QuantizeToCodes(t.Data, t.Shape, bits, spec, codes);
        var (type, raw) = Pack(codes, p);
        Count(type.ToString().ToLowerInvariant());
        string q = _g.Initializer(key, type, Dims(t.Shape), raw, $"{doc}, {spec} codes in [{p.Qmin}, {p.Qmax}]");
        bool perAxis = p.Groups > 1;
        long[] groupDims = perAxis ? [p.Groups] : [];
        var inputs = new List<string> { q, _g.Floats(key + ".scale", groupDims, p.Scales.AsSpan()) };
        if (p.ZeroPoints.Any(z => z != 0)) inputs.Add(_g.Initializer(key + ".zero_point", type, groupDims, Pack(p.ZeroPoints.AsSpan(), type)));
        OnnxAttribute[] attrs = perAxis ? [OnnxAttribute.Of("axis", 0L)] : [];
        return Op("DequantizeLinear", key + "/dequantize", inputs, doc, attrs);
    }

    private static (OnnxType Type, byte[] Raw) Pack(int[] codes, QuantizationParams p)
    {
        bool signed = p.Qmin < 0;
        int bits = p.Bits;
        var type = bits <= 4 ? (signed ? OnnxType.Int4 : OnnxType.UInt4)
            : bits <= 8 ? (signed ? OnnxType.Int8 : OnnxType.UInt8)
            : bits <= 16 ? (signed ? OnnxType.Int16 : OnnxType.UInt16)
            : throw new QsvitException($"{bits}-bit codes have no ONNX integer type (int4, int8 and int16 are supported)");
        return (type, Pack(codes, type));
    }

    /// <summary>Little-endian raw_data; 4-bit types pack two codes per byte, the first in the low nibble.</summary>
    private static byte[] Pack(ReadOnlySpan<int> codes, OnnxType type)
    {
        switch (type)
        {
            case OnnxType.Int4 or OnnxType.UInt4:
            {
                var raw = new byte[(codes.Length + 1) / 2];
                for (int i = 0; i < codes.Length; i++) raw[i / 2] |= (byte)((codes[i] & 0xF) << (4 * (i & 1)));
                return raw;
            }
            case OnnxType.Int8 or OnnxType.UInt8:
            {
                var raw = new byte[codes.Length];
                for (int i = 0; i < codes.Length; i++) raw[i] = (byte)codes[i];
                return raw;
            }
            default:
            {
                var values = new short[codes.Length];
                for (int i = 0; i < codes.Length; i++) values[i] = (short)codes[i];
                return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            }
        }
    }

    private void Count(string storage) => _storage[storage] = _storage.GetValueOrDefault(storage) + 1;

    private static long[] Dims(int[] shape) => shape.Select(s => (long)s).ToArray();

    private string Op(string op, string name, IReadOnlyList<string> inputs, string? doc, params OnnxAttribute[] attrs)
    {
        _nodes++;
        return _g.Node(op, name, inputs, doc, attrs);
    }

    private string[] Op(string op, string name, IReadOnlyList<string> inputs, int outputs, string? doc, params OnnxAttribute[] attrs)
    {
        _nodes++;
        return _g.Node(op, name, inputs, outputs, doc, attrs);
    }

    /// <summary>The QSViT block of an official module path or state_dict key.</summary>
    private static string Doc(string moduleOrKey) => Sdtv2Layout.BlockOfModule(moduleOrKey);
}
