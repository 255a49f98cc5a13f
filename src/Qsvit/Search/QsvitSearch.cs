using System.Diagnostics;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>
/// QSViT (Putra, Iftikhar, Shafique): Alg. 1 layer-wise sensitivity, Alg. 2 base settings, Alg. 3 guided quantization and
/// Alg. 4's final evaluation, against any <see cref="ISettingOracle"/>. Deterministic: units in network order, widths highest
/// first. Every (setting, split) is asked of the oracle at most once per run, whatever the oracle caches.
/// </summary>
public static class QsvitSearch
{
    /// <summary>The setting the paper reports for SDTv2 on ImageNet (block granularity).</summary>
    public const string PaperSetting = QuantizationSetting.PaperText;

    /// <summary>Runs Alg. 1-4. Memory is counted on <paramref name="layout"/> (the paper's way, no quantizer overhead).</summary>
    public static QsvitResult Run(ISettingOracle oracle, Sdtv2Layout layout, QsvitOptions options, Action<QsvitProgress>? progress = null)
    {
        options.Validate();
        var session = new Session(oracle, options, progress);
        int units = options.Units.Count, widths = options.QuantizedBits.Count;
        int references = options.ReferenceSetting is null ? 0 : options.ReportSplit is null ? 1 : 2;
        int final = 1 + (options.ReportSplit is null ? 0 : 2) + references;
        // Until Alg. 2 decides, every unit may step through every width but its bSettingH.
        session.Total = 1 + units * widths + 2 + units * (widths - 1) + final;

        var table = Sensitivity(session);
        var bases = BaseSettings.From(table, options.Granularity);
        // The total stays as announced: the guided steps Alg. 2 rules out count as done.
        session.Skip(units * (widths - 1) - options.Units.Sum(u => bases.GuidedWidths(u, options.QuantizedBits).Count));
        var high = session.Evaluate(QsvitPhase.BaseSettings, bases.BSettingH, options.SearchSplit, "bSettingH");
        var low = session.Evaluate(QsvitPhase.BaseSettings, bases.BSettingL, options.SearchSplit, "bSettingL");
        var guided = Guided(session, table.Fp32, bases, high);

        var g = guided.BSettingG;
        var search = new FinalAccuracy(options.SearchSplit, table.Fp32,
            session.Evaluate(QsvitPhase.Final, g, options.SearchSplit, "bSettingG"));
        FinalAccuracy? report = null;
        if (options.ReportSplit is { } held)
            report = new FinalAccuracy(held,
                session.Evaluate(QsvitPhase.Final, options.Fp32, held, "fp32"),
                session.Evaluate(QsvitPhase.Final, g, held, "bSettingG"));
        ReferenceResult? reference = null;
        if (options.ReferenceSetting is { } text)
        {
            var setting = QuantizationSetting.Parse(text);
            var onSearch = new FinalAccuracy(options.SearchSplit, table.Fp32,
                session.Evaluate(QsvitPhase.Final, setting, options.SearchSplit, "reference setting", countAsSearch: false));
            FinalAccuracy? onReport = options.ReportSplit is { } split
                ? new FinalAccuracy(split, report!.Fp32, session.Evaluate(QsvitPhase.Final, setting, split, "reference setting"))
                : null;
            reference = new ReferenceResult(new SettingMemory("reference", setting, MemoryFootprint.Compute(layout, setting)), onSearch, onReport);
        }
        session.Finish();

        SettingMemory Memory(string name, QuantizationSetting s) => new(name, s, MemoryFootprint.Compute(layout, s));
        var memory = new[]
        {
            Memory("fp32", options.Fp32), Memory("bSettingH", bases.BSettingH), Memory("bSettingL", bases.BSettingL), Memory("bSettingG", g),
        };
        return new QsvitResult(options, table, bases, high, low, guided, search, report, memory, session.Cost()) { Reference = reference };
    }

    /// <summary>Alg. 1 alone: the fp32 baseline, then each unit alone at each quantized width (the 32 column is fp32 itself).</summary>
    public static SensitivityTable Sensitivity(ISettingOracle oracle, QsvitOptions options, Action<QsvitProgress>? progress = null)
    {
        options.Validate();
        var session = new Session(oracle, options, progress) { Total = 1 + options.Units.Count * options.QuantizedBits.Count };
        var table = Sensitivity(session);
        session.Finish();
        return table;
    }

    private static SensitivityTable Sensitivity(Session session)
    {
        var o = session.Options;
        var fp32 = session.Evaluate(QsvitPhase.Sensitivity, o.Fp32, o.SearchSplit, "fp32");
        session.Reference(fp32);
        var bits = o.Bits.Distinct().OrderDescending().ToArray();
        var cells = new List<SensitivityCell>(o.Units.Count * bits.Length);
        foreach (var unit in o.Units)
            foreach (var b in bits)
            {
                if (b == Quantizer.FullPrecision)
                {
                    cells.Add(new SensitivityCell(unit, b, fp32, fp32.DifferenceFrom(fp32), true));
                    continue;
                }
                var d = session.Decide(QsvitPhase.Sensitivity, o.Fp32.With(unit, b), $"{unit} at {b} bits");
                cells.Add(new SensitivityCell(unit, b, d.Accuracy, d.Accuracy.DifferenceFrom(fp32), d.Passed) { Early = d.Early });
            }
        return new SensitivityTable(fp32, o.TolerancePoints, o.Units, bits, cells);
    }

    /// <summary>
    /// Alg. 3: from bSettingH, each unit in network order tries its <see cref="BaseSettings.GuidedWidths"/> with the other units
    /// at their current widths and keeps the lowest that stays within tolerance. Every width down to bSettingL is tried even
    /// after a failure, because accuracy is not always monotone in the width; with none passing the unit keeps its width.
    /// </summary>
    private static GuidedResult Guided(Session session, AccuracyRecord fp32, BaseSettings bases, AccuracyRecord start)
    {
        var o = session.Options;
        var current = bases.BSettingH;
        var steps = new List<GuidedStep>();
        foreach (var unit in o.Units)
        {
            int first = steps.Count;
            int kept = current[unit];
            foreach (var b in bases.GuidedWidths(unit, o.QuantizedBits))
            {
                var setting = current.With(unit, b);
                var d = session.Decide(QsvitPhase.Guided, setting, $"{unit} {current[unit]}→{b} bits");
                if (d.Passed) kept = b;
                steps.Add(new GuidedStep(steps.Count, unit, b, setting, d.Accuracy, d.Accuracy.DifferenceFrom(fp32), d.Passed, Kept: false) { Early = d.Early });
            }
            for (int i = first; i < steps.Count; i++)
                if (steps[i].Bits == kept) steps[i] = steps[i] with { Kept = true };
            current = current.With(unit, kept);
        }
        return new GuidedResult(start, steps, current);
    }

    /// <summary>One run's view of the oracle: memoizes, counts per phase and reports progress.</summary>
    private sealed class Session(ISettingOracle oracle, QsvitOptions options, Action<QsvitProgress>? progress)
    {
        private readonly Dictionary<(string Setting, string Split), AccuracyRecord> _memo = new();
        private readonly Dictionary<QsvitPhase, (int Evaluations, int Run)> _phases = new();
        private readonly Dictionary<string, int> _searchImages = new(StringComparer.Ordinal);
        private ConstraintDecider? _decider;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private QsvitPhase _phase;
        private double _evaluationSeconds;

        public QsvitOptions Options { get; } = options;
        public int Done { get; private set; }
        public int Total { get; set; }

        /// <summary>Evaluations the progress total counted that will not be asked (they count as done).</summary>
        private int _skipped;

        public void Skip(int evaluations) => _skipped += evaluations;

        /// <summary>Sets the reference every tolerance decision is paired with (fp32 on the search split).</summary>
        public void Reference(AccuracyRecord fp32) =>
            _decider = new ConstraintDecider(oracle, Options.SearchSplit, fp32, Options.TolerancePoints, Options.Sequential);

        /// <summary>Whether the setting keeps the tolerance on the search split (sequentially when configured).</summary>
        public ConstraintDecision Decide(QsvitPhase phase, QuantizationSetting setting, string detail)
        {
            _phase = phase;
            var key = (setting.ToString(), Options.SearchSplit);
            if (_memo.TryGetValue(key, out var full))
            {
                Done++;
                return new ConstraintDecision(Options.WithinTolerance(full.Accuracy, _memo[(Options.Fp32.ToString(), Options.SearchSplit)].Accuracy),
                    full, full.Count, full.Count, Early: false);
            }
            progress?.Invoke(new QsvitProgress(phase, Done + _skipped, Math.Max(Total, Done + _skipped + 1), $"{detail} on {Options.SearchSplit}"));
            int before = oracle.FullEvaluations;
            var d = _decider!.Decide(setting);
            if (!d.Sequential) _memo[key] = d.Accuracy;
            _evaluationSeconds += d.Accuracy.Seconds;
            Count(phase, key.Item1, d.Images, oracle.FullEvaluations - before);
            Done++;
            return d;
        }

        private void Count(QsvitPhase phase, string setting, int images, int run)
        {
            var (evaluations, ran) = _phases.GetValueOrDefault(phase);
            _phases[phase] = (evaluations + 1, ran + run);
            _searchImages[setting] = Math.Max(images, _searchImages.GetValueOrDefault(setting));
        }

        /// <param name="countAsSearch">Whether a search-split result is search cost (false for report extras such as the reference row).</param>
        public AccuracyRecord Evaluate(QsvitPhase phase, QuantizationSetting setting, string split, string detail, bool countAsSearch = true)
        {
            _phase = phase;
            progress?.Invoke(new QsvitProgress(phase, Done + _skipped, Math.Max(Total, Done + _skipped + 1), $"{detail} on {split}"));
            var key = (setting.ToString(), split);
            if (!_memo.TryGetValue(key, out var record))
            {
                int before = oracle.FullEvaluations;
                record = oracle.Accuracy(setting, split);
                _memo[key] = record;
                if (split == Options.SearchSplit && countAsSearch)
                {
                    // Seconds of images a sequential decision already ran are in its record, so count only the rest.
                    int earlier = _searchImages.GetValueOrDefault(key.Item1);
                    _evaluationSeconds += record.Seconds * (record.Count - earlier) / Math.Max(1, record.Count);
                    Count(phase, key.Item1, record.Count, oracle.FullEvaluations - before);
                }
                else
                {
                    _evaluationSeconds += record.Seconds;
                    var (evaluations, run) = _phases.GetValueOrDefault(phase);
                    _phases[phase] = (evaluations + 1, run + (oracle.FullEvaluations - before));
                }
            }
            Done++;
            return record;
        }

        public void Finish() => progress?.Invoke(new QsvitProgress(_phase, Done + _skipped, Done + _skipped, "done"));

        public SearchCost Cost()
        {
            var phases = Enum.GetValues<QsvitPhase>()
                .Select(p => _phases.TryGetValue(p, out var c) ? new PhaseCost(p, c.Evaluations, c.Run) : new PhaseCost(p, 0, 0))
                .ToArray();
            int split = _memo.GetValueOrDefault((Options.Fp32.ToString(), Options.SearchSplit))?.Count ?? 0;
            return new SearchCost(phases.Sum(p => p.Evaluations), phases.Sum(p => p.Run), _clock.Elapsed.TotalSeconds, _evaluationSeconds, phases)
            {
                SearchImages = _searchImages.Values.Sum(n => (long)n),
                SplitImages = split,
                ImagesSaved = oracle.ImagesSaved(Options.SearchSplit),
                Reuse = oracle.Reuse,
                CorrectionImages = oracle.CorrectionImages(Math.Max(0, _searchImages.Count - 1)),   // fp32 is not corrected
            };
        }
    }
}
