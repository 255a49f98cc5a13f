using System.Collections.Concurrent;
using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Tensors;

namespace Qsvit.Quantization;

/// <summary>How one conv/linear weight was quantized. At 32 bits it is untouched: no scales, no error.</summary>
public sealed record WeightReport(string Key, string Label, string Block, string Unit, LayerKind Kind, int Bits, long Count,
    int ScaleCount, double ClippedFraction, double Mse, double SqnrDb);

/// <summary>A state_dict with fake-quantized weights, and what was done to each weight (layout order).</summary>
public sealed record QuantizedModel(StateDict StateDict, QuantizationSetting Setting, QuantizerSpec Spec, IReadOnlyList<WeightReport> Weights)
{
    /// <summary>The corrections applied after quantization (<see cref="QuantizationCorrector"/>); none by default.</summary>
    public CorrectionOptions Correction { get; init; } = CorrectionOptions.None;
}

/// <summary>
/// Applies quantization settings to one fp32 model. Quantized tensors are cached per (key, bits, spec), so evaluating many
/// settings quantizes each weight at each width once; safe to call from several threads. The fp32 tensors are treated as
/// immutable: changing their data in place after construction leaves stale cache entries. Each cached entry costs a float32
/// copy of its weight; <see cref="ClearCache"/> frees them.
/// </summary>
public sealed class ModelQuantizer
{
    private readonly StateDict _fp32;
    private readonly ConcurrentDictionary<(string Key, int Bits, QuantizerSpec Spec), Lazy<(Tensor Tensor, QuantizationResult Result)>> _cache = new();
    private readonly ConcurrentDictionary<(string Key, int Bits, QuantizerSpec Spec), Lazy<PackedWeight>> _codes = new();

    public Sdtv2Layout Layout { get; }

    private readonly ComputeOptions _options;

    /// <param name="options">Threads for quantizing (default: all cores).</param>
    public ModelQuantizer(StateDict fp32, Sdtv2Layout layout, ComputeOptions? options = null)
    {
        _options = options ?? ComputeOptions.Default;
        foreach (var w in layout.Weights)
        {
            if (!fp32.TryGetValue(w.Key, out var t))
                throw new QsvitException($"state_dict lacks weight '{w.Key}' ({w.Label}) that the model configuration expects");
            if (!Tensor.SameShape(t.Shape, w.Shape))
                throw new QsvitException($"weight '{w.Key}' has shape {Tensor.Format(t.Shape)}; the configuration expects {Tensor.Format(w.Shape)}");
        }
        _fp32 = fp32.Copy(); // later Set/Remove on the caller's dict must not change what the cache was built from
        Layout = layout;
    }

    /// <summary>One-off application without keeping a cache.</summary>
    public static QuantizedModel Apply(StateDict fp32, Sdtv2Layout layout, QuantizationSetting setting, QuantizerSpec spec) =>
        new ModelQuantizer(fp32, layout).Apply(setting, spec);

    /// <summary>
    /// A new state_dict sharing every unchanged tensor with the fp32 one, with each conv/linear weight replaced by its
    /// fake-quantized values at the width the setting gives it (the head's width comes from the setting too).
    /// Biases and BatchNorm parameters stay fp32.
    /// </summary>
    public QuantizedModel Apply(QuantizationSetting setting, QuantizerSpec spec)
    {
        spec.Validate();
        setting.Validate(Layout);
        var bits = Layout.Weights.ToDictionary(w => w.Key, setting.BitsFor, StringComparer.Ordinal);
        var todo = Layout.Weights.Where(w => bits[w.Key] != Quantizer.FullPrecision).ToArray();
        Parallel.ForEach(todo, _options.Parallel, w => _ = Quantized(w, bits[w.Key], spec));

        var result = _fp32.Copy();
        var reports = new List<WeightReport>(Layout.Weights.Count);
        foreach (var w in Layout.Weights)
        {
            int b = bits[w.Key];
            if (b == Quantizer.FullPrecision)
            {
                reports.Add(new WeightReport(w.Key, w.Label, w.Block, w.Unit, w.Kind, b, w.Count, 0, 0, 0, double.PositiveInfinity));
                continue;
            }
            var (tensor, r) = Quantized(w, b, spec);
            result.Set(w.Key, tensor, _fp32.StoredType(w.Key));
            reports.Add(new WeightReport(w.Key, w.Label, w.Block, w.Unit, w.Kind, b, w.Count, r.ScaleCount, r.ClippedFraction, r.Mse, r.SqnrDb));
        }
        return new QuantizedModel(result, setting, spec, reports);
    }

    /// <summary>
    /// The integer codes and scales of one weight at <paramref name="bits"/> (cached like the fake-quantized tensors): the
    /// same quantization, so <see cref="PackedWeight.Dequantize"/> gives exactly the tensor <see cref="Apply"/> puts in the
    /// state_dict. For backends that sum codes exactly (spike-input layers on the CUDA backend's integer path).
    /// </summary>
    public PackedWeight Codes(string key, int bits, QuantizerSpec spec)
    {
        var w = Layout.Weight(key);
        return _codes.GetOrAdd((key, bits, spec), k => new Lazy<PackedWeight>(() =>
            PackedWeight.Quantize(k.Key, _fp32[k.Key].Data, w.Shape, k.Bits, k.Spec))).Value;
    }

    /// <summary>Number of (key, bits, spec) tensors held in the cache.</summary>
    public int CachedCount => _cache.Count;

    public void ClearCache()
    {
        _cache.Clear();
        _codes.Clear();
    }

    private (Tensor Tensor, QuantizationResult Result) Quantized(WeightInfo w, int bits, QuantizerSpec spec) =>
        _cache.GetOrAdd((w.Key, bits, spec), key => new Lazy<(Tensor, QuantizationResult)>(() =>
        {
            var fp = _fp32[key.Key];
            var q = new Tensor(fp.Shape);
            var r = Quantizer.Quantize(fp.Data, fp.Shape, key.Bits, key.Spec, q.Data, _options);
            return (q, r);
        })).Value;
}
