using System.Globalization;
using System.Text.Json;
using Qsvit.IO;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Tensors;

namespace Qsvit.Quantization;

/// <summary>
/// A quantized SDTv2 at its true size, as one standard safetensors file:
/// <list type="bullet">
/// <item>each quantized weight W as <c>W.codes</c> (U8, its codes q − Qmin bit-packed by <see cref="BitPacking"/>),
/// <c>W.scales</c> (F32, one per tensor or per output channel) and, for asymmetric quantizers, <c>W.zero_points</c>
/// (U8, zero point − Qmin packed at the weight's width);</item>
/// <item>each BatchNorm P reduced to its eval affine <c>P.scale</c>, <c>P.shift</c> (F32, exactly the α, β the runtime
/// applies, so the fold is exact), plus for RepConv's BNAndPadLayer its pad value BN(0) as PyTorch computes it:
/// <c>P.pad_ulps</c> (I8, its distance in float32 ulps from the shift), or <c>P.pad</c> (F32) when that does not fit;</item>
/// <item>everything else learned (biases, 32-bit units, the head unless the setting quantizes it) in F32 under the
/// official key; running statistics are not stored (they are inside the affine).</item>
/// </list>
/// Metadata: <c>qsvit.format</c> = <see cref="Format"/>, the model config (<see cref="ModelLoader.ConfigMetadataKey"/>),
/// <c>qsvit.setting</c> (JSON), <c>qsvit.quantizer</c>, <c>qsvit.packing</c> and <c>qsvit.weights</c>
/// (per quantized weight: shape, bits, qmin, qmax).
/// </summary>
public sealed class PackedModel
{
    public const string Format = "qsvit-packed-1";
    public const string FormatKey = "qsvit.format", SettingKey = "qsvit.setting", QuantizerKey = "qsvit.quantizer",
        PackingKey = "qsvit.packing", WeightsKey = "qsvit.weights";

    public Sdtv2Config Config { get; }
    public Sdtv2Layout Layout { get; }
    public QuantizationSetting Setting { get; }
    public QuantizerSpec Spec { get; }
    public Normalization? Normalization { get; }
    public IReadOnlyList<string>? ClassNames { get; }
    /// <summary>Quantized weights by official key.</summary>
    public IReadOnlyDictionary<string, PackedWeight> Packed { get; }
    /// <summary>fp32 tensors by stored name (official keys, BN <c>.scale/.shift/.pad</c>).</summary>
    public IReadOnlyDictionary<string, float[]> Floats { get; }

    private PackedModel(Sdtv2Config config, QuantizationSetting setting, QuantizerSpec spec, Normalization? norm, IReadOnlyList<string>? classes,
        IReadOnlyDictionary<string, PackedWeight> packed, IReadOnlyDictionary<string, float[]> floats)
    {
        Config = config;
        Layout = new Sdtv2Layout(config);
        Setting = setting;
        Spec = spec;
        Normalization = norm;
        ClassNames = classes;
        Packed = packed;
        Floats = floats;
    }

    /// <summary>BatchNorm prefixes of the architecture, in layout order.</summary>
    public static IEnumerable<string> BatchNormPrefixes(Sdtv2Layout layout) =>
        layout.Parameters.Where(p => p.Role == ParameterRole.BnWeight).Select(p => p.Key[..^".weight".Length]);

    /// <summary>RepConv's BNAndPadLayer BNs, whose pad value is stored too.</summary>
    public static bool IsPadBatchNorm(string prefix) => prefix.EndsWith(".body.1.bn", StringComparison.Ordinal);

    public (float[] Scale, float[] Shift) BatchNorm(string prefix) => (Floats[prefix + ".scale"], Floats[prefix + ".shift"]);
    public float[] Pad(string prefix) => Floats[prefix + ".pad"];

    /// <summary>Quantizes the model's fp32 weights with the setting and builds the packed model in memory.</summary>
    public static PackedModel Create(LoadedModel model, QuantizationSetting setting, QuantizerSpec spec, ComputeOptions? options = null)
    {
        spec.Validate();
        var layout = new Sdtv2Layout(model.Config);
        setting.Validate(layout);
        var state = model.State;
        var packed = new Dictionary<string, PackedWeight>(StringComparer.Ordinal);
        var todo = layout.Weights.Where(w => setting.BitsFor(w) != Quantizer.FullPrecision).ToArray();
        var results = new PackedWeight[todo.Length];
        Parallel.For(0, todo.Length, (options ?? ComputeOptions.Default).Parallel, i =>
            results[i] = PackedWeight.Quantize(todo[i].Key, state[todo[i].Key].Data, todo[i].Shape, setting.BitsFor(todo[i]), spec));
        foreach (var p in results) packed[p.Key] = p;

        var floats = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var p in layout.Parameters)
            if (p.Role is ParameterRole.Weight or ParameterRole.Bias && !packed.ContainsKey(p.Key)) floats[p.Key] = state[p.Key].Data;
        foreach (var bn in BatchNormPrefixes(layout))
        {
            var (scale, shift) = Tensors.BatchNorm.Fold(state[bn + ".weight"].Data, state[bn + ".bias"].Data,
                state[bn + ".running_mean"].Data, state[bn + ".running_var"].Data);
            floats[bn + ".scale"] = scale;
            floats[bn + ".shift"] = shift;
            if (IsPadBatchNorm(bn)) floats[bn + ".pad"] = Tensors.BatchNorm.ZeroInputOutput(state, bn);
        }
        return new PackedModel(model.Config, setting, spec, model.Normalization, model.ClassNames, packed, floats);
    }

    /// <summary>Writes the standard safetensors file (atomically).</summary>
    public void Save(string path)
    {
        var tensors = new List<RawTensor>();
        var weights = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var p in Layout.Parameters)
        {
            if (Packed.TryGetValue(p.Key, out var w))
            {
                tensors.Add(new RawTensor(p.Key + ".codes", DType.U8, [w.Codes.Length], null, w.Codes));
                tensors.Add(new RawTensor(p.Key + ".scales", DType.F32, [w.Groups], w.Scales, null));
                if (Spec.Kind == QuantizerKind.Asymmetric)
                {
                    var zp = w.ZeroPoints.Select(z => z - w.Qmin).ToArray();
                    var bytes = new byte[BitPacking.ByteCount(zp.Length, w.Bits)];
                    BitPacking.Pack(zp, w.Bits, bytes);
                    tensors.Add(new RawTensor(p.Key + ".zero_points", DType.U8, [bytes.Length], null, bytes));
                }
                weights[p.Key] = new { shape = w.Shape, bits = w.Bits, qmin = w.Qmin, qmax = w.Qmax };
            }
            else if (Floats.TryGetValue(p.Key, out var f)) tensors.Add(new RawTensor(p.Key, DType.F32, p.Shape, f, null));
            else if (p.Role == ParameterRole.BnWeight)
            {
                string bn = p.Key[..^".weight".Length];
                tensors.Add(new RawTensor(bn + ".scale", DType.F32, p.Shape, Floats[bn + ".scale"], null));
                tensors.Add(new RawTensor(bn + ".shift", DType.F32, p.Shape, Floats[bn + ".shift"], null));
                if (IsPadBatchNorm(bn))
                    tensors.Add(PadUlps(Floats[bn + ".pad"], Floats[bn + ".shift"]) is { } ulps
                        ? new RawTensor(bn + ".pad_ulps", DType.I8, p.Shape, null, ulps)
                        : new RawTensor(bn + ".pad", DType.F32, p.Shape, Floats[bn + ".pad"], null));
            }
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [FormatKey] = Format,
            [ModelLoader.ConfigMetadataKey] = ModelFile.Write(Config, Normalization, ClassNames),
            [SettingKey] = Setting.ToJson(),
            [QuantizerKey] = Spec.ToString(),
            [PackingKey] = BitPacking.Name,
            [WeightsKey] = JsonSerializer.Serialize(weights),
        };
        SafeTensors.WriteRaw(path, tensors, metadata);
    }

    /// <summary>True when the safetensors file at <paramref name="path"/> says it is a packed model (reads the header only).</summary>
    public static bool IsPackedFile(string path)
    {
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || !File.Exists(path)) return false;
        return SafeTensors.ReadMetadata(path).TryGetValue(FormatKey, out var f) && f.StartsWith("qsvit-packed", StringComparison.Ordinal);
    }

    /// <summary>Reads and validates a packed model. Codes stay packed; nothing is dequantized.</summary>
    /// <exception cref="QsvitException">The file is not a valid packed model; the message says what disagrees.</exception>
    public static PackedModel Load(string path)
    {
        var (tensors, metadata) = SafeTensors.ReadRaw(path);
        string ctx = $"packed model '{path}'";
        string Meta(string key) => metadata.TryGetValue(key, out var v) ? v
            : throw new QsvitException($"{ctx}: metadata lacks '{key}' (not written by qsvit export?)");
        if (Meta(FormatKey) != Format) throw new QsvitException($"{ctx}: format '{Meta(FormatKey)}' is not '{Format}'");
        if (Meta(PackingKey) != BitPacking.Name) throw new QsvitException($"{ctx}: unknown packing '{Meta(PackingKey)}' (this qsvit reads '{BitPacking.Name}')");
        ModelFile file;
        try { file = ModelFile.Parse(Meta(ModelLoader.ConfigMetadataKey)); }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new QsvitException($"{ctx}: model config in the metadata is not valid: {e.Message}", e);
        }
        if (file.Architecture.EmbedDim is null) throw new QsvitException($"{ctx}: model config in the metadata has no embed_dim");
        // Every field is written by Save; what a hand-made file leaves out takes the official default.
        var config = file.Architecture.ApplyTo(new Sdtv2Config { EmbedDim = file.Architecture.EmbedDim });
        config.Validate();
        var layout = new Sdtv2Layout(config);
        var setting = QuantizationSetting.Parse(Meta(SettingKey));
        setting.Validate(layout);
        var spec = QuantizerSpec.Parse(Meta(QuantizerKey));
        var declared = ParseWeights(Meta(WeightsKey), ctx);

        var byName = new Dictionary<string, RawTensor>(StringComparer.Ordinal);
        foreach (var t in tensors) byName[t.Name] = t;
        var used = new HashSet<string>(StringComparer.Ordinal);
        RawTensor Take(string name, DType dtype, long? length = null)
        {
            if (!byName.TryGetValue(name, out var t)) throw new QsvitException($"{ctx}: tensor '{name}' is missing");
            if (t.DType != dtype) throw new QsvitException($"{ctx}: tensor '{name}' is {t.DType}, expected {dtype}");
            if (length is { } n && Tensor.Count(t.Shape) != n)
                throw new QsvitException($"{ctx}: tensor '{name}' has {Tensor.Count(t.Shape)} elements, expected {n}");
            used.Add(name);
            return t;
        }

        var packed = new Dictionary<string, PackedWeight>(StringComparer.Ordinal);
        var floats = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var w in layout.Weights)
        {
            int bits = setting.BitsFor(w);
            bool isDeclared = declared.TryGetValue(w.Key, out var d);
            if (bits == Quantizer.FullPrecision)
            {
                if (isDeclared) throw new QsvitException($"{ctx}: metadata lists '{w.Key}' as packed, but the setting keeps it at 32 bits");
                continue;
            }
            if (!isDeclared || d is null) throw new QsvitException($"{ctx}: the setting quantizes '{w.Key}' to {bits} bits, but the metadata does not list it");
            if (!Tensor.SameShape(d.Shape, w.Shape))
                throw new QsvitException($"{ctx}: metadata gives '{w.Key}' shape {Tensor.Format(d.Shape)}; the model config needs {Tensor.Format(w.Shape)}");
            if (d.Bits != bits) throw new QsvitException($"{ctx}: metadata gives '{w.Key}' {d.Bits} bits; the setting says {bits}");
            var (qmin, qmax) = Quantizer.CodeRange(bits, spec.Kind);
            if (d.Qmin != qmin || d.Qmax != qmax)
                throw new QsvitException($"{ctx}: metadata gives '{w.Key}' codes [{d.Qmin}, {d.Qmax}]; the {spec} quantizer at {bits} bits uses [{qmin}, {qmax}]");
            var codes = Take(w.Key + ".codes", DType.U8);
            var scales = Take(w.Key + ".scales", DType.F32);
            int groups = spec.PerChannel ? w.OutChannels : 1;
            if (scales.Floats!.Length != groups)
                throw new QsvitException($"{ctx}: '{w.Key}.scales' has {scales.Floats.Length} scales; the {spec} quantizer needs {groups}");
            int[] zeroPoints = new int[groups];
            if (spec.Kind == QuantizerKind.Asymmetric)
            {
                var zp = Take(w.Key + ".zero_points", DType.U8);
                if (zp.Bytes!.Length != BitPacking.ByteCount(groups, bits))
                    throw new QsvitException($"{ctx}: '{w.Key}.zero_points' has {zp.Bytes.Length} bytes; {groups} zero points at {bits} bits need {BitPacking.ByteCount(groups, bits)}");
                BitPacking.Unpack(zp.Bytes, bits, 0, zeroPoints);
                for (int i = 0; i < groups; i++) zeroPoints[i] += qmin;
            }
            var pw = new PackedWeight(w.Key, w.Shape, bits, qmin, qmax, scales.Floats, zeroPoints, codes.Bytes!);
            pw.Validate(ctx);
            packed[w.Key] = pw;
        }
        foreach (var key in declared.Keys)
            if (!layout.TryGetWeight(key, out _)) throw new QsvitException($"{ctx}: metadata lists '{key}', which is no weight of {config}");

        foreach (var p in layout.Parameters)
            if (p.Role is ParameterRole.Weight or ParameterRole.Bias && !packed.ContainsKey(p.Key))
                floats[p.Key] = Take(p.Key, DType.F32, p.Count).Floats!;
        foreach (var bn in BatchNormPrefixes(layout))
        {
            int c = layout.Parameters.First(p => p.Key == bn + ".weight").Shape[0];
            floats[bn + ".scale"] = Take(bn + ".scale", DType.F32, c).Floats!;
            floats[bn + ".shift"] = Take(bn + ".shift", DType.F32, c).Floats!;
            if (!IsPadBatchNorm(bn)) continue;
            if (byName.ContainsKey(bn + ".pad_ulps"))
            {
                var ulps = Take(bn + ".pad_ulps", DType.I8, c).Bytes!;
                var shift = floats[bn + ".shift"];
                floats[bn + ".pad"] = shift.Select((v, i) => FromOrdered(ToOrdered(v) + (sbyte)ulps[i])).ToArray();
            }
            else floats[bn + ".pad"] = Take(bn + ".pad", DType.F32, c).Floats!;
        }
        var extra = tensors.Where(t => !used.Contains(t.Name)).Select(t => t.Name).ToArray();
        if (extra.Length > 0)
            throw new QsvitException($"{ctx}: tensor(s) that {config} with setting {setting} does not use: {string.Join(", ", extra.Take(5))}" +
                                     (extra.Length > 5 ? $" … and {extra.Length - 5} more" : ""));

        var norm = file.Mean is { } mean && file.Std is { } std ? new Normalization(mean, std) : null;
        return new PackedModel(config, setting, spec, norm, file.Classes, packed, floats);
    }

    // BNAndPadLayer's pad value BN(0) as PyTorch computes it lies within a few ulps of the affine's shift; storing the ulp
    // distance (I8) instead of a second fp32 vector keeps the file within the paper's count (weight and bias per BN).
    private static byte[]? PadUlps(float[] pad, float[] shift)
    {
        var ulps = new byte[pad.Length];
        for (int i = 0; i < pad.Length; i++)
        {
            long d = (long)ToOrdered(pad[i]) - ToOrdered(shift[i]);
            if (d is < sbyte.MinValue or > sbyte.MaxValue || !float.IsFinite(pad[i])) return null;
            ulps[i] = (byte)(sbyte)d;
        }
        return ulps;
    }

    /// <summary>float32 bits as an integer that orders like the floats (adjacent floats differ by 1).</summary>
    private static int ToOrdered(float x)
    {
        int i = BitConverter.SingleToInt32Bits(x);
        return i < 0 ? int.MinValue - i : i;
    }

    private static float FromOrdered(int o) => BitConverter.Int32BitsToSingle(o < 0 ? int.MinValue - o : o);

    private sealed record Declared(int[] Shape, int Bits, int Qmin, int Qmax);

    private static Dictionary<string, Declared> ParseWeights(string json, string ctx)
    {
        var result = new Dictionary<string, Declared>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(json);
            foreach (var e in doc.RootElement.EnumerateObject())
            {
                var v = e.Value;
                result[e.Name] = new Declared(v.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                    v.GetProperty("bits").GetInt32(), v.GetProperty("qmin").GetInt32(), v.GetProperty("qmax").GetInt32());
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new QsvitException($"{ctx}: metadata '{WeightsKey}' is not valid: {e.Message}", e);
        }
        return result;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Config} {Setting} ({Spec}, {Packed.Count} packed weights)");
}
