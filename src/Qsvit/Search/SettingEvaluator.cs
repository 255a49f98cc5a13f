using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>What a search can ask about a setting. Implemented by <see cref="SettingEvaluator"/> and by test fakes.</summary>
public interface ISettingOracle
{
    /// <summary>Top-1 accuracy (percent) of the setting on the named split.</summary>
    AccuracyRecord Accuracy(QuantizationSetting setting, string split);
    /// <summary>
    /// Top-1 on at least the first <paramref name="images"/> images of the split (all of them when it has no more), for
    /// sequential decisions; may return more images than asked for (e.g. a whole-split result it already has).
    /// </summary>
    AccuracyRecord Accuracy(QuantizationSetting setting, string split, int images) => Accuracy(setting, split);
    /// <summary>Membrane-potential drift of the setting from fp32 on the calibration images.</summary>
    DriftResult Drift(QuantizationSetting setting);
    /// <summary>Evaluations actually run (cache hits excluded).</summary>
    int FullEvaluations { get; }
    int DriftEvaluations { get; }
    /// <summary>Work on the split that prefix reuse skipped, in images' worth of whole passes (0 without reuse).</summary>
    double ImagesSaved(string split) => 0;
    /// <summary>
    /// Calibration work the corrections after quantization cost a search of <paramref name="settings"/> distinct quantized
    /// settings, in images' worth of passes (<see cref="CorrectionOptions"/>; 0 without them).
    /// </summary>
    long CorrectionImages(int settings) => 0;
    /// <summary>What prefix reuse did for accuracies and for drift measurements; null without reuse.</summary>
    PrefixReuseStats? Reuse => null;
    PrefixReuseStats? DriftReuse => null;
}

/// <summary>
/// Evaluates quantization settings of one fp32 model on named splits, caching every result in memory and, when given a
/// <see cref="RunStore"/>, on disk so that a restarted run re-evaluates nothing. Identical settings are evaluated once:
/// results are keyed by <see cref="Key"/>, the coarsest setting that gives every weight the same width, so a layer or
/// transformer-block setting that equals a block setting shares its evaluations. Drift is measured on
/// <see cref="CalibrationImages"/> images spread evenly over the first split (the search split), and firing rates (for
/// energy estimates) on its first images.
/// </summary>
public sealed class SettingEvaluator : ISettingOracle, IDisposable
{
    private readonly LoadedModel _model;
    private readonly ModelQuantizer _quantizer;
    private readonly IReadOnlyDictionary<string, IImageDataset> _splits;
    /// <summary>The first split: the one a search decides on (calibration, firing rates and prefix reuse use it alone).</summary>
    private readonly string _searchSplit;
    private readonly EvalOptions _options;
    private readonly EvaluationLog? _log;
    private readonly Dictionary<(string Setting, string Split), AccuracyRecord> _accuracy = new();
    private readonly Dictionary<(string Setting, string Split), AccuracyRecord> _prefix = new();
    private readonly Dictionary<string, DriftResult> _drift = new();
    private readonly Dictionary<(string Setting, int Images), IReadOnlyList<LifRate>> _rates = new();
    private readonly int? _calibrationImages;
    /// <summary>What the corrections calibrate on; null: images spread evenly over the search split.</summary>
    private readonly Quantization.CalibrationImages? _correctionImages;
    private MembraneDrift? _membrane;
    private readonly Backends.IBackend? _backend;
    private Sdtv2Model? _root, _candidate;
    private readonly PrefixReuse? _reuse, _driftReuse;
    private readonly WeightInfo[][] _unitWeights;   // quantized weights of each unit of the pass (Layout.Blocks order)

    public QuantizerSpec Spec { get; }
    /// <summary>Corrections every quantized setting gets before it is evaluated (<see cref="CorrectionOptions.None"/>: none).</summary>
    public CorrectionOptions Correction { get; }
    public Sdtv2Layout Layout => _quantizer.Layout;
    public int FullEvaluations { get; private set; }
    public int DriftEvaluations { get; private set; }
    /// <summary>Images actually run through a model for accuracies (full evaluations and sequential chunks), per split.</summary>
    public IReadOnlyDictionary<string, long> ImagesEvaluated => _images;
    private readonly Dictionary<string, long> _images = new();
    /// <summary>Seconds spent in full evaluations and in drift measurements actually run (not replayed).</summary>
    public double FullSeconds { get; private set; }
    public double DriftSeconds { get; private set; }
    /// <summary>Called with (split, done, total) during full evaluations, for progress bars.</summary>
    public Action<string, int, int>? OnProgress { get; set; }

    /// <param name="cacheMegabytes">Memory for prefix reuse's residual streams (<see cref="PrefixCache"/>); 0 turns it off.
    /// With a <paramref name="store"/>, streams beyond it spill to its directory, up to 4x as much.</param>
    public SettingEvaluator(LoadedModel model, QuantizerSpec spec, IReadOnlyDictionary<string, IImageDataset> splits,
        EvalOptions options, RunStore? store = null, int? calibrationImages = 64, Backends.IBackend? backend = null, long cacheMegabytes = 0,
        CorrectionOptions? correction = null, Quantization.CalibrationImages? correctionImages = null)
    {
        Correction = correction ?? CorrectionOptions.None;
        _correctionImages = correctionImages;
        Correction.Validate();
        if (cacheMegabytes < 0) throw new QsvitException($"the prefix cache size must not be negative, got {cacheMegabytes} MB");
        _model = model;
        Spec = spec;
        _backend = backend;
        _quantizer = new ModelQuantizer(model.State, new Sdtv2Layout(model.Config), options.Host);
        _splits = splits;
        _searchSplit = splits.Keys.FirstOrDefault() ?? throw new QsvitException("the evaluator needs at least one split");
        _options = options;
        _log = store?.Log;
        _calibrationImages = calibrationImages is null or >= 1 ? calibrationImages
            : throw new QsvitException($"calibration images must be at least 1, got {calibrationImages}");
        var layout = _quantizer.Layout;
        _unitWeights = layout.Blocks.Select(b => layout.Weights.Where(w => w.Block == b).ToArray()).ToArray();
        // Streams live on one device; on several GPUs each evaluation's batches are split across them instead.
        if (cacheMegabytes > 0 && backend is not Backends.DeviceGroup { Count: > 1 })
        {
            long bytes = cacheMegabytes << 20;
            _reuse = new PrefixReuse(new PrefixCache(bytes, store is null ? null : Path.Combine(store.Directory, "prefix-cache"), 4 * bytes),
                layout.Blocks.Count);
            // Drift's streams (a few calibration batches) live apart, so that the search split's never evict them.
            _driftReuse = new PrefixReuse(new PrefixCache(Math.Max(1, bytes / 8)), layout.Blocks.Count);
        }
        if (_log is not null) Replay(_log);
    }

    /// <summary>What prefix reuse did for accuracies (all splits) and for drift measurements; null when it is off.</summary>
    public PrefixReuseStats? Reuse => _reuse?.Stats;
    public PrefixReuseStats? DriftReuse => _driftReuse?.Stats;
    public PrefixCache? Cache => _reuse?.Cache;

    /// <summary>
    /// Search-split work that prefix reuse skipped, in images' worth of whole passes: what a cost in images evaluated
    /// subtracts to count only the units actually run.
    /// </summary>
    public double ImagesSaved(string split) => _savedImageUnits.GetValueOrDefault(split) / (double)_unitWeights.Length;
    private readonly Dictionary<string, long> _savedImageUnits = new();

    /// <summary>
    /// The setting's prefix keys: [u] names the widths of every weight of the units before u (u ≥ 1), all that decides the
    /// residual stream at u's start.
    /// </summary>
    private string[] PrefixKeys(QuantizationSetting setting)
    {
        var keys = new string[_unitWeights.Length];
        var text = new System.Text.StringBuilder();
        for (int u = 0; u < keys.Length; u++)
        {
            keys[u] = $"{u}:{text}";
            foreach (var w in _unitWeights[u]) text.Append(setting.BitsFor(w)).Append(',');
            text.Append('|');
        }
        return keys;
    }

    public IReadOnlyCollection<string> Splits => _splits.Keys.ToArray();
    /// <summary>
    /// Images the drift is measured on (fewer when the search split, as limited, is smaller); 0 for an evaluator made without
    /// calibration images, which measures no drift (so that a run whose identity does not pin them cannot log any).
    /// </summary>
    public int CalibrationImages => _calibrationImages is { } n ? Math.Min(n, SplitSize(_searchSplit)) : 0;
    public int SplitSize(string split) => Math.Min(Dataset(split).Count, _options.Limit ?? int.MaxValue);

    /// <summary>
    /// The setting's quantized network as every evaluation runs it: with <see cref="Correction"/> applied, on
    /// <see cref="CorrectionOptions.CalibrationImages"/> images spread over the search split, or on the calibration images
    /// the evaluator was given (the candidates of a search are the very models it can return). Corrected networks are kept
    /// per setting: a BN re-estimation pass runs once each.
    /// </summary>
    public QuantizedModel Quantize(QuantizationSetting setting)
    {
        var quantized = QuantizeWeights(setting);
        if (Correction.IsNone) return quantized;
        var key = Key(setting);
        if (_corrected.TryGetValue(key, out var done)) return done;
        _corrector ??= new QuantizationCorrector(Root, _correctionImages ?? SearchCalibration(Correction.CalibrationImages), Correction, _options.BatchSize);
        return _corrected[key] = _corrector.Correct(quantized);
    }

    /// <summary>The setting's quantized weights alone, without corrections (weight errors, reports).</summary>
    public QuantizedModel QuantizeWeights(QuantizationSetting setting) => _quantizer.Apply(setting, Spec);

    private QuantizationCorrector? _corrector;
    private readonly Dictionary<string, QuantizedModel> _corrected = new();

    /// <summary>Calibration passes the corrections actually ran in this process (see <see cref="CorrectionImages"/> for the cost).</summary>
    public int CorrectionPasses => _corrector?.Passes ?? 0;

    /// <summary>Images the corrections calibrate on (of the search split: fewer than asked when the split is smaller); 0 without corrections.</summary>
    public int CorrectionImagesUsed => Correction.IsNone ? 0 : _correctionImages?.Count ?? Math.Min(Correction.CalibrationImages, SplitSize(_searchSplit));

    public long CorrectionImages(int settings)
    {
        long n = CorrectionImagesUsed;
        return (Correction.Bias ? n : 0) + (Correction.BatchNorm ? n * settings : 0);
    }

    /// <summary>
    /// The network with <paramref name="setting"/>'s quantized weights as every evaluation runs it: on the evaluator's
    /// device, sharing its resident layers. The caller disposes it.
    /// </summary>
    public Sdtv2Model CreateModel(QuantizationSetting setting)
    {
        var quantized = Quantize(setting);
        return Root.WithState(quantized.StateDict, IntegerCodes(quantized));
    }

    public AccuracyRecord Accuracy(QuantizationSetting setting, string split)
    {
        var key = (Key(setting), split);
        if (_accuracy.TryGetValue(key, out var cached)) return cached;
        // A sequential decision may already have evaluated the first images: run only the rest.
        var prefix = _prefix.GetValueOrDefault(key);
        var rest = Evaluate(setting, split, prefix?.Count ?? 0, SplitSize(split));
        var record = prefix is null ? rest : Concat(prefix, rest);
        FullEvaluations++;
        FullSeconds += rest.Seconds;
        _accuracy[key] = record;
        _prefix.Remove(key);
        _log?.Append(new LoggedAccuracy(record));
        return record;
    }

    public AccuracyRecord Accuracy(QuantizationSetting setting, string split, int images)
    {
        var key = (Key(setting), split);
        if (_accuracy.TryGetValue(key, out var cached)) return cached;
        if (images >= SplitSize(split)) return Accuracy(setting, split);
        var prefix = _prefix.GetValueOrDefault(key);
        int have = prefix?.Count ?? 0;
        if (have >= images) return prefix!;
        var chunk = Evaluate(setting, split, have, images);
        FullSeconds += chunk.Seconds;
        var record = prefix is null ? chunk : Concat(prefix, chunk);
        _prefix[key] = record;
        _log?.Append(new LoggedChunk(chunk, have));
        return record;
    }

    /// <summary>
    /// Images [start, end) of the split, in batches on one grid (multiples of the batch size) whatever range is asked for, so
    /// that a batch of a sequential chunk is the same batch in every candidate's evaluation and its cached streams are found.
    /// </summary>
    private AccuracyRecord Evaluate(QuantizationSetting setting, string split, int start, int end)
    {
        int batch = _options.BatchSize, aligned = Math.Min(end, (start + batch - 1) / batch * batch);
        if (start < aligned && aligned < end)
        {
            var head = Evaluate(setting, split, start, aligned);
            return Concat(head, Evaluate(setting, split, aligned, end));
        }
        var data = Dataset(split);
        var progress = OnProgress is { } report ? new Progress(p => report(split, start + p.Done, SplitSize(split))) : null;
        var options = _options with { Start = _options.Start + start, Limit = end - start };
        // Only the search split: a held-out split sees two or three settings, too few to repay storing streams of its
        // images (the prefixes they share with the search's settings made fp32's held-out pass store and spill gigabytes).
        if (_reuse is not null && split == _searchSplit)
        {
            var prefixes = _reuse.Register(Key(setting), PrefixKeys(setting));
            long savedBefore = _reuse.Stats.ImageUnitsSaved;
            options = options with
            {
                Forward = (model, images, first, count, h, w, rates) => prefixes.Forward(model, images, count, h, w, rates, from: -1,
                    u => $"{split} {first}+{count} {prefixes.Keys[u]}"),
            };
            var result = Evaluator.Run(Candidate(setting), data, options, progress);
            _savedImageUnits[split] = _savedImageUnits.GetValueOrDefault(split) + _reuse.Stats.ImageUnitsSaved - savedBefore;
            return Record(setting, split, result);
        }
        return Record(setting, split, Evaluator.Run(Candidate(setting), data, options, progress));
    }

    private AccuracyRecord Record(QuantizationSetting setting, string split, EvalResult r)
    {
        _images[split] = _images.GetValueOrDefault(split) + r.Count;
        return new AccuracyRecord(Key(setting), split, r.Count, r.Top1Correct, r.Correct, r.Seconds);
    }

    private static AccuracyRecord Concat(AccuracyRecord a, AccuracyRecord b) =>
        new(a.Setting, a.Split, a.Count + b.Count, a.Correct + b.Correct, [.. a.CorrectMask, .. b.CorrectMask], a.Seconds + b.Seconds);

    public DriftResult Drift(QuantizationSetting setting)
    {
        var key = Key(setting);
        if (_drift.TryGetValue(key, out var cached)) return cached;
        if (_calibrationImages is null) throw new InvalidOperationException("this evaluator was made without calibration images: it measures no drift");
        _membrane ??= CaptureReference();
        var result = _membrane.Measure(Candidate(setting), _driftReuse?.Register(key, PrefixKeys(setting)));
        DriftEvaluations++;
        DriftSeconds += result.Seconds;
        _drift[key] = result;
        _log?.Append(new LoggedDrift(key, result));
        return result;
    }

    /// <summary>
    /// Per-LIF-layer firing rates of the setting over the first <paramref name="images"/> images of the first split (the
    /// search split), for energy estimates; cached and logged like the other evaluations. Not counted in
    /// <see cref="FullEvaluations"/>: they are report extras, not search cost.
    /// </summary>
    public IReadOnlyList<LifRate> FiringRates(QuantizationSetting setting, int images)
    {
        var (name, data) = (_searchSplit, _splits[_searchSplit]);
        images = Math.Min(images, SplitSize(name));
        if (images < 1) throw new QsvitException($"firing rates need at least one image, got {images}");
        var key = (Key(setting), images);
        if (_rates.TryGetValue(key, out var cached)) return cached;
        var model = Candidate(setting);
        var progress = OnProgress is { } report ? new Progress(p => report(name, p.Done, p.Total)) : null;
        var rates = Evaluator.Run(model, data, _options with { Limit = images }, progress).FiringRates;
        _rates[key] = rates;
        _log?.Append(new LoggedRates(key.Item1, images, rates));
        return rates;
    }

    /// <summary>
    /// The setting's cache key: its text at the coarsest granularity that expresses it exactly (block, then transformer
    /// block, else layer), so that equal models get equal keys whatever granularity the caller works at.
    /// </summary>
    public string Key(QuantizationSetting setting)
    {
        if (setting.Granularity == Granularity.Block) return setting.ToString();
        setting.Validate(Layout);
        var weights = Layout.Weights.Where(w => w.Block != Sdtv2Layout.Head).ToArray();
        foreach (var coarser in new[] { Granularity.Block, Granularity.TransformerBlock })
        {
            if (coarser >= setting.Granularity) break;
            var groups = weights.GroupBy(w => coarser == Granularity.Block ? w.Unit : w.Block)
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
        var c = SearchCalibration(CalibrationImages);
        return new MembraneDrift(Root, c.Images, c.Count, c.Height, c.Width, _options.BatchSize);
    }

    /// <summary><paramref name="count"/> images spread evenly over the images evaluated of the search split.</summary>
    private CalibrationImages SearchCalibration(int count)
    {
        var (name, data) = (_searchSplit, _splits[_searchSplit]);
        return Quantization.CalibrationImages.Spread(data, count, _options.Start, SplitSize(name), _options.Host.Parallel);
    }

    /// <summary>The fp32 model on the backend (its layers stay resident for the evaluator's lifetime).</summary>
    private Sdtv2Model Root => _root ??= new Sdtv2Model(_model.Config, _model.State, backend: _backend);

    /// <summary>
    /// The setting's model on the backend. Layers it shares with the fp32 model or with the previous candidate (the same
    /// quantized arrays, which the quantizer caches) are not uploaded again: a candidate uploads only what changed.
    /// </summary>
    private Sdtv2Model Candidate(QuantizationSetting setting)
    {
        var quantized = Quantize(setting);
        var next = Root.WithState(quantized.StateDict, IntegerCodes(quantized));
        _candidate?.Dispose();
        return _candidate = next;
    }

    /// <summary>
    /// On a backend that sums integer codes exactly (the CUDA backend's tensor-core path), the codes of the quantized
    /// spike-input conv weights, so those layers run on the integer path; null elsewhere (the CPU keeps fake quantization,
    /// bit-identical to earlier searches).
    /// </summary>
    private IReadOnlyDictionary<string, PackedWeight>? IntegerCodes(QuantizedModel quantized)
    {
        if (!RunsIntegerCodes) return null;
        return quantized.Weights
            .Where(w => w.Bits != Quantizer.FullPrecision && !w.Key.StartsWith("head", StringComparison.Ordinal) && Sdtv2Layout.TakesSpikes(w.Key))
            .ToDictionary(w => w.Key, w => _quantizer.Codes(w.Key, w.Bits, Spec), StringComparer.Ordinal);
    }

    /// <summary>Whether quantized candidates run their spike-input layers on exact integer codes (see <see cref="IntegerCodes"/>).</summary>
    public bool RunsIntegerCodes =>
        // Every device of a group runs the same kind of backend, so the first one speaks for all.
        (Root.Backend is Backends.DeviceGroup group ? group.Devices[0] : Root.Backend) is Backends.Cuda.CudaBackend { RunsIntegerCodes: true };

    /// <summary>The device the evaluations run on.</summary>
    public Backends.IBackend Backend => Root.Backend;

    public void Dispose()
    {
        _reuse?.Cache.Dispose();
        _driftReuse?.Cache.Dispose();
        _candidate?.Dispose();
        _corrector?.Dispose();
        _membrane?.Dispose();
        _root?.Dispose();
    }

    private IImageDataset Dataset(string split) =>
        _splits.TryGetValue(split, out var d) ? d : throw new QsvitException($"no split named '{split}' (have {string.Join(", ", _splits.Keys)})");

    /// <summary>
    /// Fills the caches from the log under canonical keys. Two records of one evaluation must agree (a setting logged at two
    /// granularities included); records whose setting no longer parses or fits this model are left alone.
    /// </summary>
    private void Replay(EvaluationLog log)
    {
        var seen = new Dictionary<string, LoggedEvaluation>(StringComparer.Ordinal);
        foreach (var entry in log.Entries)
        {
            if (CanonicalKey(entry.Setting) is not { } setting) continue;
            if (seen.TryGetValue($"{entry.What} of {setting}", out var first))
            {
                if (first.Content != entry.Content) throw log.Conflict(first, entry);
                continue;
            }
            seen[$"{entry.What} of {setting}"] = entry;
            switch (entry)
            {
                case LoggedAccuracy a: _accuracy[(setting, a.Record.Split)] = a.Record with { Setting = setting }; break;
                case LoggedChunk c when c.Start == (_prefix.GetValueOrDefault((setting, c.Record.Split))?.Count ?? 0):
                    var chunk = c.Record with { Setting = setting };
                    _prefix[(setting, c.Record.Split)] = c.Start == 0 ? chunk : Concat(_prefix[(setting, c.Record.Split)], chunk);
                    break;
                case LoggedDrift d: _drift[setting] = d.Result; break;
                case LoggedRates r: _rates[(setting, r.Images)] = r.Rates; break;
            }
        }
    }

    /// <summary>The key of a logged setting text, or null when it no longer parses or fits this model.</summary>
    private string? CanonicalKey(string text)
    {
        try { return Key(QuantizationSetting.Parse(text)); }
        catch (QsvitException) { return null; }
    }

    private sealed class Progress(Action<EvalProgress> report) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress value) => report(value);
    }
}
