using System.Text.Json.Nodes;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>A setting's top-1 on one split, with per-image correctness for paired comparisons.</summary>
public sealed record AccuracyRecord(string Setting, string Split, int Count, long Correct, bool[] CorrectMask, double Seconds)
{
    public Interval Top1 => Statistics.Accuracy(Correct, Count);
    public double Accuracy => Count == 0 ? 0 : 100.0 * Correct / Count;
    /// <summary>This accuracy minus <paramref name="baseline"/>'s over the same images, in points, with its 95 % interval.</summary>
    public Interval DifferenceFrom(AccuracyRecord baseline) => Statistics.PairedDifference(baseline.CorrectMask, CorrectMask);
}

/// <summary>What a search can ask about a setting. Implemented by <see cref="SettingEvaluator"/> and by test fakes.</summary>
public interface ISettingOracle
{
    /// <summary>Top-1 accuracy (percent) of the setting on the named split.</summary>
    AccuracyRecord Accuracy(QuantizationSetting setting, string split);
    /// <summary>Membrane-potential drift of the setting from fp32 on the calibration images.</summary>
    DriftResult Drift(QuantizationSetting setting);
    /// <summary>Evaluations actually run (cache hits excluded).</summary>
    int FullEvaluations { get; }
    int DriftEvaluations { get; }
}

/// <summary>
/// Evaluates quantization settings of one fp32 model on named splits, caching every result in memory and, when given a
/// <see cref="RunStore"/>, on disk so that a restarted run re-evaluates nothing. Identical settings are evaluated once:
/// results are keyed by <see cref="Key"/>, the coarsest setting that gives every weight the same width, so a layer or
/// transformer-block setting that equals a block setting shares its evaluations. Drift is measured on
/// <see cref="CalibrationImages"/> images spread evenly over the first split (the search split), and firing rates (for
/// energy estimates) on its first images.
/// </summary>
public sealed class SettingEvaluator : ISettingOracle
{
    private readonly LoadedModel _model;
    private readonly ModelQuantizer _quantizer;
    private readonly IReadOnlyDictionary<string, IImageDataset> _splits;
    private readonly EvalOptions _options;
    private readonly RunStore? _store;
    private readonly Dictionary<(string Setting, string Split), AccuracyRecord> _accuracy = new();
    private readonly Dictionary<string, DriftResult> _drift = new();
    private readonly Dictionary<(string Setting, int Images), IReadOnlyList<LifRate>> _rates = new();
    private readonly int? _calibrationImages;
    private MembraneDrift? _membrane;

    public QuantizerSpec Spec { get; }
    public Sdtv2Layout Layout => _quantizer.Layout;
    public int FullEvaluations { get; private set; }
    public int DriftEvaluations { get; private set; }
    /// <summary>Seconds spent in full evaluations and in drift measurements actually run (not replayed).</summary>
    public double FullSeconds { get; private set; }
    public double DriftSeconds { get; private set; }
    /// <summary>Called with (split, done, total) during full evaluations, for progress bars.</summary>
    public Action<string, int, int>? OnProgress { get; set; }

    public SettingEvaluator(LoadedModel model, QuantizerSpec spec, IReadOnlyDictionary<string, IImageDataset> splits,
        EvalOptions options, RunStore? store = null, int? calibrationImages = 64)
    {
        _model = model;
        Spec = spec;
        _quantizer = new ModelQuantizer(model.State, new Sdtv2Layout(model.Config));
        _splits = splits;
        _options = options;
        _store = store;
        _calibrationImages = calibrationImages is null or >= 1 ? calibrationImages
            : throw new QsvitException($"calibration images must be at least 1, got {calibrationImages}");
        if (store is not null) Replay(store);
    }

    public IReadOnlyCollection<string> Splits => _splits.Keys.ToArray();
    /// <summary>
    /// Images the drift is measured on (fewer when the search split, as limited, is smaller); 0 for an evaluator made without
    /// calibration images, which measures no drift (so that a run whose identity does not pin them cannot log any).
    /// </summary>
    public int CalibrationImages => _calibrationImages is { } n ? Math.Min(n, SplitSize(_splits.First().Key)) : 0;
    public int SplitSize(string split) => Math.Min(Dataset(split).Count, _options.Limit ?? int.MaxValue);

    public QuantizedModel Quantize(QuantizationSetting setting) => _quantizer.Apply(setting, Spec);

    public AccuracyRecord Accuracy(QuantizationSetting setting, string split)
    {
        var key = (Key(setting), split);
        if (_accuracy.TryGetValue(key, out var cached)) return cached;
        var data = Dataset(split);
        var model = new Sdtv2Model(_model.Config, Quantize(setting).StateDict);
        var progress = OnProgress is { } report ? new Progress(p => report(split, p.Done, p.Total)) : null;
        var r = Evaluator.Run(model, data, _options, progress);
        var record = new AccuracyRecord(key.Item1, split, r.Count, r.Top1Correct, r.Correct, r.Seconds);
        FullEvaluations++;
        FullSeconds += r.Seconds;
        _accuracy[key] = record;
        _store?.Append(new JsonObject
        {
            ["kind"] = "accuracy",
            ["setting"] = record.Setting,
            ["split"] = split,
            ["count"] = record.Count,
            ["correct"] = record.Correct,
            ["mask"] = PackMask(record.CorrectMask),
            ["seconds"] = Math.Round(record.Seconds, 3),
        });
        return record;
    }

    public DriftResult Drift(QuantizationSetting setting)
    {
        var key = Key(setting);
        if (_drift.TryGetValue(key, out var cached)) return cached;
        if (_calibrationImages is null) throw new InvalidOperationException("this evaluator was made without calibration images: it measures no drift");
        _membrane ??= CaptureReference();
        var result = _membrane.Measure(new Sdtv2Model(_model.Config, Quantize(setting).StateDict));
        DriftEvaluations++;
        DriftSeconds += result.Seconds;
        _drift[key] = result;
        _store?.Append(new JsonObject
        {
            ["kind"] = "drift",
            ["setting"] = key,
            ["drift"] = result.Drift,
            ["mismatch"] = result.SpikeMismatch,
            ["per_layer"] = new JsonArray(result.PerLayer.Select(d => (JsonNode)Math.Round(d, 7)).ToArray()),
            ["seconds"] = Math.Round(result.Seconds, 3),
        });
        return result;
    }

    /// <summary>
    /// Per-LIF-layer firing rates of the setting over the first <paramref name="images"/> images of the first split (the
    /// search split), for energy estimates; cached and logged like the other evaluations. Not counted in
    /// <see cref="FullEvaluations"/>: they are report extras, not search cost.
    /// </summary>
    public IReadOnlyList<LifRate> FiringRates(QuantizationSetting setting, int images)
    {
        var (name, data) = _splits.First();
        images = Math.Min(images, SplitSize(name));
        if (images < 1) throw new QsvitException($"firing rates need at least one image, got {images}");
        var key = (Key(setting), images);
        if (_rates.TryGetValue(key, out var cached)) return cached;
        var model = new Sdtv2Model(_model.Config, Quantize(setting).StateDict);
        var progress = OnProgress is { } report ? new Progress(p => report(name, p.Done, p.Total)) : null;
        var rates = Evaluator.Run(model, data, _options with { Limit = images }, progress).FiringRates;
        _rates[key] = rates;
        _store?.Append(new JsonObject
        {
            ["kind"] = "rates",
            ["setting"] = key.Item1,
            ["images"] = images,
            ["layers"] = new JsonArray(rates.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Name,
                ["block"] = r.Block,
                ["spikes"] = r.Spikes,
                ["neurons"] = r.Neurons,
                ["rate"] = r.Rate,
            }).ToArray()),
        });
        return rates;
    }

    /// <summary>
    /// The setting's cache key: its text at the coarsest granularity that expresses it exactly (block, then transformer
    /// block, else layer), so that equal models get equal keys whatever granularity the caller works at.
    /// </summary>
    public string Key(QuantizationSetting setting)
    {
        if (setting.Granularity == SettingGranularity.Block) return setting.ToString();
        setting.Validate(Layout);
        var weights = Layout.Weights.Where(w => w.Block != Sdtv2Layout.Head).ToArray();
        foreach (var coarser in new[] { SettingGranularity.Block, SettingGranularity.TransformerBlock })
        {
            if (coarser >= setting.Granularity) break;
            var groups = weights.GroupBy(w => coarser == SettingGranularity.Block ? w.Unit : w.Block)
                .Select(g => (Name: g.Key, Bits: g.Select(setting.BitsFor).Distinct().ToArray())).ToArray();
            if (groups.All(g => g.Bits.Length == 1))
                return QuantizationSetting.Create(coarser, groups.Select(g => KeyValuePair.Create(g.Name, g.Bits[0])), setting.HeadBits).ToString();
        }
        return setting.ToString();
    }

    /// <summary>
    /// Calibration images spread evenly over the images evaluated of the first split (the search split): a split stored
    /// class by class (image folders) would otherwise calibrate on a single class.
    /// </summary>
    private MembraneDrift CaptureReference()
    {
        var (name, data) = _splits.First();
        int n = CalibrationImages, span = Math.Min(SplitSize(name), data.Count - _options.Start);
        int size = data.Channels * data.Height * data.Width;
        var images = new float[n * size];
        Parallel.For(0, n, Tensors.ComputeOptions.Default.Parallel,
            i => data.Read(_options.Start + (int)((long)i * span / n), images.AsSpan(i * size, size)));
        return new MembraneDrift(_model.CreateModel(), images, n, data.Height, data.Width, _options.BatchSize);
    }

    private IImageDataset Dataset(string split) =>
        _splits.TryGetValue(split, out var d) ? d : throw new QsvitException($"no split named '{split}' (have {string.Join(", ", _splits.Keys)})");

    private void Replay(RunStore store)
    {
        foreach (var r in store.Records)
        {
            var kind = r["kind"]?.GetValue<string>();
            if (r["setting"]?.GetValue<string>() is not { } text || CanonicalKey(text) is not { } setting) continue;
            if (kind == "accuracy" && r["split"]?.GetValue<string>() is { } split)
            {
                int count = r["count"]!.GetValue<int>();
                var mask = UnpackMask(r["mask"]!.GetValue<string>(), count);
                _accuracy[(setting, split)] = new AccuracyRecord(setting, split, count, r["correct"]!.GetValue<long>(), mask, r["seconds"]?.GetValue<double>() ?? 0);
            }
            else if (kind == "rates" && r["images"]?.GetValue<int>() is { } images && r["layers"] is JsonArray layers)
            {
                _rates[(setting, images)] = layers.Select(l => new LifRate(l!["name"]!.GetValue<string>(), l["block"]!.GetValue<string>(),
                    l["rate"]!.GetValue<double>(), l["spikes"]!.GetValue<long>(), l["neurons"]!.GetValue<long>())).ToArray();
            }
            else if (kind == "drift")
            {
                var perLayer = r["per_layer"]?.AsArray().Select(n => n!.GetValue<double>()).ToArray() ?? [];
                _drift[setting] = new DriftResult(r["drift"]!.GetValue<double>(), r["mismatch"]?.GetValue<double>() ?? 0, perLayer, r["seconds"]?.GetValue<double>() ?? 0);
            }
        }
    }

    /// <summary>The key of a logged setting text, or null when it no longer parses or fits this model.</summary>
    private string? CanonicalKey(string text)
    {
        try { return Key(QuantizationSetting.Parse(text)); }
        catch (QsvitException) { return null; }
    }

    private static string PackMask(bool[] mask)
    {
        var bytes = new byte[(mask.Length + 7) / 8];
        for (int i = 0; i < mask.Length; i++) if (mask[i]) bytes[i >> 3] |= (byte)(1 << (i & 7));
        return Convert.ToBase64String(bytes);
    }

    private static bool[] UnpackMask(string base64, int count)
    {
        var bytes = Convert.FromBase64String(base64);
        var mask = new bool[count];
        for (int i = 0; i < count; i++) mask[i] = (bytes[i >> 3] & (1 << (i & 7))) != 0;
        return mask;
    }

    private sealed class Progress(Action<EvalProgress> report) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress value) => report(value);
    }
}
