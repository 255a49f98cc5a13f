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
    public const string PaperSetting = "8,4,8,8|8,8,8|4,32|4,32";

    /// <summary>Runs Alg. 1-4. Memory is counted on <paramref name="layout"/> (the paper's way, no quantizer overhead).</summary>
    public static QsvitResult Run(ISettingOracle oracle, Sdtv2Layout layout, QsvitOptions options, Action<QsvitProgress>? progress = null)
    {
        options.Validate();
        var session = new Session(oracle, options, progress);
        int units = options.Units.Count, widths = options.QuantizedBits.Count;
        int final = 1 + (options.ReportSplit is null ? 0 : 2);
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
        session.Finish();

        SettingMemory Memory(string name, QuantizationSetting s) => new(name, s, MemoryFootprint.Compute(layout, s));
        var memory = new[]
        {
            Memory("fp32", options.Fp32), Memory("bSettingH", bases.BSettingH), Memory("bSettingL", bases.BSettingL), Memory("bSettingG", g),
        };
        return new QsvitResult(options, table, bases, high, low, guided, search, report, memory, session.Cost());
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
        var bits = o.Bits.Distinct().OrderDescending().ToArray();
        var cells = new List<SensitivityCell>(o.Units.Count * bits.Length);
        foreach (var unit in o.Units)
            foreach (var b in bits)
            {
                var acc = b == Quantizer.FullPrecision ? fp32
                    : session.Evaluate(QsvitPhase.Sensitivity, o.Fp32.With(unit, b), o.SearchSplit, $"{unit} at {b} bits");
                cells.Add(new SensitivityCell(unit, b, acc, acc.DifferenceFrom(fp32), o.WithinTolerance(acc.Accuracy, fp32.Accuracy)));
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
                var acc = session.Evaluate(QsvitPhase.Guided, setting, o.SearchSplit, $"{unit} {current[unit]}→{b} bits");
                bool within = o.WithinTolerance(acc.Accuracy, fp32.Accuracy);
                if (within) kept = b;
                steps.Add(new GuidedStep(steps.Count, unit, b, setting, acc, acc.DifferenceFrom(fp32), within, Kept: false));
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
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private QsvitPhase _phase;
        private double _evaluationSeconds;

        public QsvitOptions Options { get; } = options;
        public int Done { get; private set; }
        public int Total { get; set; }

        /// <summary>Evaluations the progress total counted that will not be asked (they count as done).</summary>
        private int _skipped;

        public void Skip(int evaluations) => _skipped += evaluations;

        public AccuracyRecord Evaluate(QsvitPhase phase, QuantizationSetting setting, string split, string detail)
        {
            _phase = phase;
            progress?.Invoke(new QsvitProgress(phase, Done + _skipped, Math.Max(Total, Done + _skipped + 1), $"{detail} on {split}"));
            var key = (setting.ToString(), split);
            if (!_memo.TryGetValue(key, out var record))
            {
                int before = oracle.FullEvaluations;
                record = oracle.Accuracy(setting, split);
                _memo[key] = record;
                _evaluationSeconds += record.Seconds;
                var (evaluations, run) = _phases.GetValueOrDefault(phase);
                _phases[phase] = (evaluations + 1, run + (oracle.FullEvaluations - before));
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
            return new SearchCost(phases.Sum(p => p.Evaluations), phases.Sum(p => p.Run), _clock.Elapsed.TotalSeconds, _evaluationSeconds, phases);
        }
    }
}
