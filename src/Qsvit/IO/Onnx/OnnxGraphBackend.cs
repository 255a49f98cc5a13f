using System.Runtime.InteropServices;
using Qsvit.Backends;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.IO.Onnx;

/// <summary>
/// An <see cref="IBackend"/> that computes nothing and records what <see cref="Sdtv2Model"/> asks of it as an ONNX graph,
/// so the export follows the one model wiring. Buffers are symbolic: each holds the name of the graph value last written
/// into it (SSA: an in-place op such as <see cref="Add"/> or <see cref="RepeatBlock"/> gives the buffer a new value) and
/// that value's shape with the frame dimension dynamic, so every op is recorded shape-agnostically ([T·batch, …] splits
/// by Reshape with −1) and the graph takes any batch. The first upload into a workspace buffer is the graph input,
/// the first download is the graph output. Conv weights go out under their official keys (<see cref="ConvLayerSpec.Keys"/>):
/// fp32, or at their width as integer codes read by DequantizeLinear (quantized here from fp32 weights, or a packed model's
/// codes as they are). A BatchNorm that qsvit runs as its own step goes out as a BatchNormalization node with the official
/// running statistics; a packed model stores only the eval affine, which goes out as the Mul/Add qsvit runs.
/// One pass records one graph.
/// </summary>
internal sealed class OnnxGraphBackend : IBackend
{
    private readonly OnnxGraph _g;
    private readonly Sdtv2Config _config;
    private readonly Sdtv2Layout _layout;
    private readonly OnnxExportOptions _options;
    private readonly StateDict? _batchNormStats;
    private readonly PackedModel? _packed;
    private readonly Dictionary<string, int> _storage = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _masks = new(StringComparer.Ordinal);
    private IReadOnlyList<string> _lifNames = [];
    private string _module = "downsample1_1";
    private bool _hasInput, _hasOutput;

    /// <param name="batchNormStats">The state_dict whose BatchNorm modules give the running statistics (null: a packed model).</param>
    /// <param name="packed">A packed model: its codes go out as they are (its head too).</param>
    public OnnxGraphBackend(OnnxGraph graph, Sdtv2Config config, Sdtv2Layout layout, OnnxExportOptions options,
        StateDict? batchNormStats, PackedModel? packed = null)
    {
        _g = graph;
        _config = config;
        _layout = layout;
        _options = options;
        _batchNormStats = batchNormStats;
        _packed = packed;
    }

    /// <summary>Nodes recorded (Scan bodies included).</summary>
    public int Nodes { get; private set; }
    /// <summary>Weights written per storage type ("float32", "int4", …).</summary>
    public IReadOnlyDictionary<string, int> WeightsByStorage => _storage;

    /// <summary>Names the LIF layers by their call index (<see cref="Sdtv2Model.LifNames"/>): node names and QSViT blocks.</summary>
    public void NameLifLayers(IReadOnlyList<string> names) => _lifNames = names;

    public DeviceSpec Device => DeviceSpec.Cpu;
    public string Description => "ONNX graph recorder";
    public int DefaultBatchSize(int height, int width, long activationBytesPerImage) => 1;

    // ---- memory: symbolic ----

    private sealed class Value(long length, bool workspace) : DeviceBuffer
    {
        public override long Length => length;
        public readonly bool Workspace = workspace;
        public string? Name;
        /// <summary>Dims of <see cref="Name"/>, dim 0 (frames or images) dynamic.</summary>
        public long[] Dims = [];
        /// <summary>Host data uploaded into an allocated buffer (a constant such as BN pad values), and its initializer.</summary>
        public float[]? Constant;
        public string? Initializer;
        /// <summary>The BatchNorm (or conv, when folded) that wrote this value last: names the pad values read beside it.</summary>
        public string? Producer;
    }

    public DeviceBuffer Rent(long length) => new Value(length, workspace: true);
    public int Mark() => 0;
    public void Release(int mark) { }
    public DeviceBuffer Allocate(long length) => new Value(length, workspace: false);

    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, long offset = 0)
    {
        var v = (Value)destination;
        if (!v.Workspace)
        {
            if (offset != 0) throw new QsvitException("the ONNX graph backend takes constants whole");
            v.Constant = source.ToArray();
            return;
        }
        if (_hasInput) throw new QsvitException("the ONNX graph backend records one pass: the images were uploaded already");
        var c = _config;
        _hasInput = true;
        v.Name = _g.Input(Sdtv2OnnxExporter.InputName, OnnxType.Float, [null, c.InChannels, c.ImageHeight, c.ImageWidth]);
        v.Dims = [-1, c.InChannels, c.ImageHeight, c.ImageWidth];
    }

    public void Download(DeviceBuffer source, long offset, Span<float> destination)
    {
        var v = (Value)source;
        if (_hasOutput || offset != 0 || v.Name is null) throw new QsvitException("the ONNX graph backend records one pass with one output, the logits");
        _hasOutput = true;
        _g.Rename(v.Name, Sdtv2OnnxExporter.OutputName);
        _g.Output(Sdtv2OnnxExporter.OutputName, OnnxType.Float, [null, _config.NumClasses]);
        destination.Clear();
    }

    public void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length) =>
        throw new QsvitException("the ONNX graph backend records whole passes (no residual streams)");

    public void Synchronize() { }

    // ---- layers: initializers under the official keys ----

    /// <summary>One BatchNorm after a conv: a BatchNormalization node's inputs, or the affine's scale and shift.</summary>
    private sealed record GraphBatchNorm(string Module, string[] Inputs, bool Affine);

    private sealed class GraphConv(ConvLayerSpec spec, string module, string weight, string? bias, GraphBatchNorm[] batchNorms)
        : ConvLayer(spec)
    {
        public readonly string Module = module, Weight = weight;
        public readonly string? Bias = bias;
        public readonly GraphBatchNorm[] BatchNorms = batchNorms;
    }

    private sealed class GraphHead(IReadOnlyList<LinearWeights> heads, int features, int classes, (string Module, string Weight, string Bias)[] linears)
        : HeadLayer(heads, features, classes)
    {
        public readonly (string Module, string Weight, string Bias)[] Linears = linears;
    }

    public ConvLayer CreateConv(ConvLayerSpec spec)
    {
        var keys = spec.Keys ?? throw new QsvitException("the ONNX exporter names weights by their official keys; this conv has none");
        if (keys.BatchNorms.Count != spec.Affines.Count) throw new QsvitException($"'{keys.Weight}': {spec.Affines.Count} affines but {keys.BatchNorms.Count} BatchNorm names");
        var g = spec.Geometry;
        string module = keys.Weight.EndsWith(".weight", StringComparison.Ordinal) ? keys.Weight[..^".weight".Length] : keys.Weight;
        string doc = Block(module);
        long[] dims = [g.OutChannels, g.InChannels / g.Groups, g.KernelH, g.KernelW];
        string weight = spec.Weights switch
        {
            DenseConvWeights dense => Weight(keys.Weight, dense.Values, dims),
            PackedConvWeights packed => Codes(packed.Weight, dims),
            var other => throw new QsvitException($"the ONNX exporter has no {other.GetType().Name} path"),
        };
        string? bias = spec.Bias.Length == 0 ? null : _g.Floats(keys.Bias ?? module + ".bias", [spec.Bias.Length], spec.Bias, doc);
        var batchNorms = spec.Affines.Select((a, i) => BatchNormInputs(keys.BatchNorms[i], a)).ToArray();
        return new GraphConv(spec, module, weight, bias, batchNorms);
    }

    /// <summary>
    /// A BatchNorm qsvit runs as its own step: the official module's weight, bias, running_mean and running_var under their
    /// keys (epsilon 1e-5, as the official model), read by BatchNormalization. A packed model keeps only the eval affine
    /// y = x·α + β (α = weight/√(running_var + ε), β = bias − running_mean·α), which goes out as Mul/Add under the packed
    /// file's names ("bn.scale", "bn.shift").
    /// </summary>
    private GraphBatchNorm BatchNormInputs(string bn, ChannelAffine affine)
    {
        string doc = $"{Block(bn)} {bn}";
        long[] channels = [affine.Scale.Length];
        if (_batchNormStats is { } state)
        {
            string[] parts = [".weight", ".bias", ".running_mean", ".running_var"];
            return new GraphBatchNorm(bn, parts.Select(part =>
            {
                var t = state.TryGetValue(bn + part, out var v) ? v : throw new QsvitException($"the state_dict has no '{bn}{part}' for BatchNorm '{bn}'");
                if (t.Data.Length != affine.Scale.Length) throw new QsvitException($"'{bn}{part}' has {t.Data.Length} values for {affine.Scale.Length} channels");
                return _g.Floats(bn + part, channels, t.Data, doc);
            }).ToArray(), Affine: false);
        }
        string affineDoc = $"{doc} (eval BatchNorm as its affine: scale = weight/sqrt(running_var + eps), shift = bias - running_mean·scale)";
        long[] dims = [affine.Scale.Length, 1, 1];
        return new GraphBatchNorm(bn, [_g.Floats(bn + ".scale", dims, affine.Scale, affineDoc), _g.Floats(bn + ".shift", dims, affine.Shift, affineDoc)], Affine: true);
    }

    public HeadLayer CreateHead(IReadOnlyList<LinearWeights> heads, int features, int classes)
    {
        var linears = heads.Select(h =>
        {
            string module = h.Module ?? throw new QsvitException("the ONNX exporter names the head by its official keys; this one has none");
            string key = module + ".weight";
            long[] dims = [classes, features];
            // A packed model's head is handed over dequantized (it is tiny); its codes are in the packed model.
            string weight = _packed is not null && _packed.Packed.TryGetValue(key, out var codes) ? Codes(codes, dims) : Weight(key, h.Weight, dims);
            return (module, weight, _g.Floats(module + ".bias", [classes], h.Bias, Block(module)));
        }).ToArray();
        return new GraphHead(heads, features, classes, linears);
    }

    /// <summary>
    /// A conv/linear weight from fp32 values: fp32 under its key at 32 bits (and always for a packed model, whose quantized
    /// weights come as codes), else quantized at the setting's width by the one quantizer and written as <see cref="Codes"/>.
    /// </summary>
    private string Weight(string key, float[] values, long[] dims)
    {
        var info = _layout.Weight(key);
        int bits = _packed is not null ? Quantizer.FullPrecision : _options.Setting?.BitsFor(info) ?? Quantizer.FullPrecision;
        if (bits != Quantizer.FullPrecision)
            return Codes(PackedWeight.Quantize(key, values, dims.Select(d => (int)d).ToArray(), bits, _options.Quantizer), dims);
        Count("float32");
        return _g.Floats(key, dims, values, $"{info.Block} {info.Label} ({info.Kind}, {bits} bit)");
    }

    /// <summary>
    /// Integer codes under the weight's key read by DequantizeLinear: scale "key.scale" (one, or one per output channel on
    /// axis 0), zero point "key.zero_point" where any is non-zero. The codes are the packed ones, unpacked into an ONNX
    /// integer type (int4/uint4 two per byte, int8/uint8, int16/uint16): no float round trip.
    /// </summary>
    private string Codes(PackedWeight w, long[] dims)
    {
        var info = _layout.Weight(w.Key);
        if (w.Count != dims.Aggregate(1L, (a, d) => a * d))
            throw new QsvitException($"'{w.Key}' has {w.Count} codes; the graph needs shape [{string.Join(", ", dims)}]");
        string spec = _packed?.Spec.ToString() ?? _options.Quantizer.ToString();
        string doc = $"{info.Block} {info.Label} ({info.Kind}, {w.Bits} bit)";
        var codes = new int[w.Count];
        BitPacking.Unpack(w.Codes, w.Bits, 0, codes);
        for (int i = 0; i < codes.Length; i++) codes[i] += w.Qmin;
        var type = CodeType(w.Bits, signed: w.Qmin < 0);
        Count(type.ToString().ToLowerInvariant());
        string q = _g.Initializer(w.Key, type, dims, Pack(codes, type), $"{doc}, {spec} codes in [{w.Qmin}, {w.Qmax}]");
        bool perAxis = w.Groups > 1;
        long[] groupDims = perAxis ? [w.Groups] : [];
        var inputs = new List<string> { q, _g.Floats(w.Key + ".scale", groupDims, w.Scales) };
        if (w.ZeroPoints.Any(z => z != 0)) inputs.Add(_g.Initializer(w.Key + ".zero_point", type, groupDims, Pack(w.ZeroPoints, type)));
        OnnxAttribute[] attrs = perAxis ? [OnnxAttribute.Of("axis", 0L)] : [];
        return Op("DequantizeLinear", w.Key + "/dequantize", inputs, doc, attrs);
    }

    private static OnnxType CodeType(int bits, bool signed) =>
        bits <= 4 ? (signed ? OnnxType.Int4 : OnnxType.UInt4)
        : bits <= 8 ? (signed ? OnnxType.Int8 : OnnxType.UInt8)
        : bits <= 16 ? (signed ? OnnxType.Int16 : OnnxType.UInt16)
        : throw new QsvitException($"{bits}-bit codes have no ONNX integer type (int4, int8 and int16 are supported)");

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

    // ---- ops ----

    private int T => _config.Timesteps;

    private static Value In(DeviceBuffer buffer, string what) =>
        (Value)buffer is { Name: not null } v ? v : throw new InvalidOperationException($"{what} reads a buffer nothing was written into");

    public void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output)
    {
        var conv = (GraphConv)layer;
        var x = In(input, conv.Module);
        var g = conv.Geometry;
        string doc = Block(conv.Module);
        var inputs = new List<string> { x.Name!, conv.Weight };
        if (conv.Bias is not null) inputs.Add(conv.Bias);
        var y = Op("Conv", conv.Module, inputs, doc,
            OnnxAttribute.Of("kernel_shape", new long[] { g.KernelH, g.KernelW }),
            OnnxAttribute.Of("strides", new long[] { g.StrideH, g.StrideW }),
            OnnxAttribute.Of("pads", new long[] { g.PadH, g.PadW, g.PadH, g.PadW }),
            OnnxAttribute.Of("group", (long)g.Groups));
        foreach (var bn in conv.BatchNorms)
            y = bn.Affine
                ? Op("Add", bn.Module + "/shift", [Op("Mul", bn.Module + "/scale", [y, bn.Inputs[0]], doc), bn.Inputs[1]], doc)
                : Op("BatchNormalization", bn.Module, [y, .. bn.Inputs], doc, OnnxAttribute.Of("epsilon", BatchNorm.DefaultEps));
        var o = (Value)output;
        o.Name = y;
        o.Dims = [-1, g.OutChannels, g.OutH((int)x.Dims[2]), g.OutW((int)x.Dims[3])];
        // BNAndPadLayer's BN, or with BatchNorm folded the conv that absorbed it: either names the pad values read next.
        o.Producer = conv.BatchNorms.Length switch { 0 => conv.Module, 1 => conv.BatchNorms[0].Module, _ => null };
    }

    /// <summary>
    /// BNAndPadLayer: Pad with zeros, then add pad values × a border mask (1 on the border, 0 inside): x + 0 in the centre
    /// and 0 + BN(0) on the border, both exact.
    /// </summary>
    public void Pad(DeviceBuffer input, int frames, int channels, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output)
    {
        var x = In(input, "pad");
        var values = (Value)padValues;
        if (values.Constant is null) throw new QsvitException("the ONNX graph backend takes pad values as uploaded constants");
        string module = x.Producer ?? _module;
        string doc = Block(module);
        values.Initializer ??= _g.Floats(module + ".pad_value", [1, channels, 1, 1], values.Constant, $"{doc} {module}: BN(0), the value BNAndPadLayer pads with");
        int h = (int)x.Dims[2], w = (int)x.Dims[3];
        string maskName = $"pad_border_{h}x{w}_{pad}";
        if (!_masks.TryGetValue(maskName, out var mask))
            _masks[maskName] = mask = _g.Floats(maskName, [1, 1, h + 2 * pad, w + 2 * pad], Border(h, w, pad), "1 on the border BNAndPadLayer fills, 0 inside");
        var padded = Op("Pad", module + "/pad", [x.Name!, _g.Int64s(0, 0, pad, pad, 0, 0, pad, pad)], doc);
        var border = Op("Mul", module + "/border", [mask, values.Initializer], doc);
        var o = (Value)output;
        o.Name = Op("Add", module + "/padded", [padded, border], doc);
        o.Dims = [-1, x.Dims[1], h + 2 * pad, w + 2 * pad];
    }

    private static float[] Border(int h, int w, int pad)
    {
        int ph = h + 2 * pad, pw = w + 2 * pad;
        var mask = new float[ph * pw];
        for (int i = 0; i < ph; i++)
            for (int j = 0; j < pw; j++)
                mask[i * pw + j] = i < pad || i >= pad + h || j < pad || j >= pad + w ? 1f : 0f;
        return mask;
    }

    /// <summary>The image repeated over T: [batch, …] → [T·batch, …], frame t·batch + b (the official repeat then flatten).</summary>
    public void RepeatBlock(DeviceBuffer x, long block, int times)
    {
        if (times == 1) return;
        var v = In(x, "repeat");
        string doc = Block("downsample1_1");
        var u = Op("Unsqueeze", "repeat_T/unsqueeze", [v.Name!, _g.Int64s(0)], doc);
        var e = Op("Expand", "repeat_T/expand", [u, _g.Int64s([times, .. Enumerable.Repeat(1L, v.Dims.Length)])], doc);
        v.Name = Op("Reshape", "repeat_T", [e, _g.Int64s([-1, .. v.Dims[1..]])], doc);
    }

    public void Add(DeviceBuffer x, DeviceBuffer y, long length)
    {
        var a = In(x, "add");
        var b = In(y, "add");
        a.Name = Op("Add", _module + "/residual", [a.Name!, b.Name!], Block(_module));
        a.Producer = null;
    }

    /// <summary>MultiStepLIF over time-first frames [T·B, …]: H = V + (X − V)·0.5; S = H ≥ Vth; V = S ? 0 : H.</summary>
    public void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer, SpikeReader? next = null)
    {
        if (recorder is not null) throw new QsvitException("the ONNX graph backend records no observers");
        if (timesteps != T) throw new InvalidOperationException($"LIF over {timesteps} steps in a T = {T} graph");
        var x = In(input, "lif");
        string module = layer < _lifNames.Count ? _lifNames[layer] : $"lif{layer}";
        // The block the following convs, adds and attention belong to (the LIF's module less its last part).
        int dot = module.LastIndexOf('.');
        _module = dot < 0 ? module : module[..dot];
        var s = (Value)spikes;
        s.Name = _options.Lif == LifExport.Scan ? LifScan(module, x.Name!, threshold) : LifUnrolled(module, x.Name!, threshold);
        s.Dims = x.Dims;
        s.Producer = null;
    }

    private string LifUnrolled(string module, string x, float threshold)
    {
        string doc = Block(module);
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
        string doc = Block(module);
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
        Nodes += 5;

        var shape = Op("Shape", $"{module}/shape", [x], doc);
        var seq = Op("Reshape", $"{module}/to_T", [x, _g.Int64s(T, -1)], doc);
        var v0 = Op("ConstantOfShape", $"{module}/v0", [Op("Shape", $"{module}/neurons", [seq], doc, OnnxAttribute.Of("start", 1L))], doc);
        var outs = Op("Scan", $"{module}/scan", [v0, seq], 2, doc, OnnxAttribute.Of("body", body), OnnxAttribute.Of("num_scan_inputs", 1L));
        return Op("Reshape", module, [outs[1], shape], doc);
    }

    /// <summary>
    /// SDSA per frame and head on [d, N] slices (channel = head·d + j, as the official reshape): kv = K·Vᵀ, out = kvᵀ·Q·scale,
    /// i.e. (V·Kᵀ)·Q·scale. Spikes are 0/1, so every sum is an exact integer in float32.
    /// </summary>
    public void SpikeDrivenAttention(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output, int frames, int channels, int tokens, int heads, float scale)
    {
        var (qv, kv, vv) = (In(q, "attention"), In(k, "attention"), In(v, "attention"));
        string p = _module, doc = Block(p);
        var dims = qv.Dims;
        var headShape = _g.Int64s(-1, heads, channels / heads, tokens);
        var qr = Op("Reshape", $"{p}/q_heads", [qv.Name!, headShape], doc);
        var kr = Op("Reshape", $"{p}/k_heads", [kv.Name!, headShape], doc);
        var vr = Op("Reshape", $"{p}/v_heads", [vv.Name!, headShape], doc);
        var kt = Op("Transpose", $"{p}/k_t", [kr], doc, OnnxAttribute.Of("perm", new long[] { 0, 1, 3, 2 }));
        var vk = Op("MatMul", $"{p}/v_kt", [vr, kt], doc);
        var a = Op("MatMul", $"{p}/vkt_q", [vk, qr], doc);
        a = Op("Mul", $"{p}/scale", [a, _g.Scalar(scale)], doc);
        var o = (Value)output;
        o.Name = Op("Reshape", $"{p}/merge_heads", [a, _g.Int64s([-1, .. dims[1..]])], doc);
        o.Dims = dims;
        o.Producer = null;
    }

    public void AccumulateFrames(DeviceBuffer x, int frames, long length, double weight, Span<double> sums) => throw NoCalibration();
    public void ChannelMoments(DeviceBuffer x, int frames, int channels, int plane, Span<double> mean, Span<double> squares) => throw NoCalibration();
    public void ChannelAffines(DeviceBuffer x, int frames, int channels, int plane, DeviceBuffer affines, int count, bool inverse) => throw NoCalibration();
    private static QsvitException NoCalibration() => new("the ONNX graph backend records inference passes; corrections calibrate on a compute backend");

    public void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output)
    {
        var v = In(x, "spatial mean");
        var o = (Value)output;
        o.Name = Op("ReduceMean", "head/spatial_mean", [v.Name!, _g.Int64s(2, 3)], Block("head"), OnnxAttribute.Of("keepdims", 0L));
        o.Dims = [-1, v.Dims[1]];
    }

    /// <summary>Each head per frame (Gemm), the mean over T, and with kd the mean of head and head_kd.</summary>
    public void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits)
    {
        var h = (GraphHead)head;
        var x = In(features, "head");
        int classes = h.Classes;
        string doc = Block("head");
        string Linear((string Module, string Weight, string Bias) l)
        {
            var y = Op("Gemm", l.Module, [x.Name!, l.Weight, l.Bias], doc, OnnxAttribute.Of("transB", 1L));
            y = Op("Reshape", $"{l.Module}/split_T", [y, _g.Int64s(timesteps, -1, classes)], doc);
            return Op("ReduceMean", $"{l.Module}/mean_T", [y, _g.Int64s(0)], doc, OnnxAttribute.Of("keepdims", 0L));
        }
        var result = Linear(h.Linears[0]);
        if (h.Linears.Length == 2)
        {
            var sum = Op("Add", $"{h.Linears[1].Module}/sum", [result, Linear(h.Linears[1])], doc);
            result = Op("Mul", $"{h.Linears[1].Module}/mean", [sum, _g.Scalar(0.5f)], doc);
        }
        else if (h.Linears.Length != 1) throw new QsvitException($"the ONNX exporter takes one or two heads, got {h.Linears.Length}");
        var o = (Value)logits;
        o.Name = result;
        o.Dims = [-1, classes];
    }

    // ---- observers: none in a graph ----

    public SpikeCounter CreateSpikeCounter(int layers) => throw new QsvitException("the ONNX graph backend records no observers");
    public MembraneReference CreateMembraneReference(int layers) => throw new QsvitException("the ONNX graph backend records no observers");
    public DriftMeter CreateDriftMeter(MembraneReference reference) => throw new QsvitException("the ONNX graph backend records no observers");

    public void Dispose() { }

    // ---- helpers ----

    private string Op(string op, string name, IReadOnlyList<string> inputs, string? doc, params OnnxAttribute[] attrs)
    {
        Nodes++;
        return _g.Node(op, name, inputs, doc, attrs);
    }

    private string[] Op(string op, string name, IReadOnlyList<string> inputs, int outputs, string? doc, params OnnxAttribute[] attrs)
    {
        Nodes++;
        return _g.Node(op, name, inputs, outputs, doc, attrs);
    }

    /// <summary>The QSViT block of an official module path or state_dict key (the node's doc string).</summary>
    private static string Block(string moduleOrKey) => Sdtv2Layout.BlockOfModule(moduleOrKey);
}
