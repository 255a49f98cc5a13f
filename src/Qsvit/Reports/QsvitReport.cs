using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using static Qsvit.Reports.ComparisonTable;
using Qsvit.IO;

namespace Qsvit.Reports;

/// <summary>What a QSViT report shows besides the search result itself.</summary>
public sealed record QsvitReportInput(QsvitResult Result, Sdtv2Layout Layout)
{
    /// <summary>The fp32 checkpoint (path or name).</summary>
    public string Model { get; init; } = "";
    public QuantizerSpec Quantizer { get; init; } = QuantizerSpec.Paper;
    /// <summary>Where the evaluations ran (the run's --device).</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Split name → what it is (file, image count).</summary>
    public IReadOnlyDictionary<string, string> Splits { get; init; } = new Dictionary<string, string>();
    /// <summary>Per-unit clipping and SQNR (<see cref="UnitWeightError.Compute"/>); the section is left out without it.</summary>
    public IReadOnlyList<UnitWeightError>? WeightErrors { get; init; }
    public EnergyComparison? Energy { get; init; }
    /// <summary>Where Alg. 4 saved the quantized network, if it did.</summary>
    public string? QuantizedModelPath { get; init; }
    /// <summary>Full evaluations actually run by this process (the oracle's count); defaults to the search's own count.</summary>
    public int? OracleEvaluations { get; init; }
}

/// <summary>
/// Writes a QSViT run as a report directory: report.md (read like an AIMET QuantAnalyzer report), report.json, the figures
/// sensitivity.svg (paper Fig. 7), guided.svg (Fig. 8) and memory-accuracy.svg, and comparison.json for method comparisons.
/// </summary>
public static class QsvitReport
{
    public const string Markdown = "report.md", Json = "report.json";
    public const string SensitivityFigure = "sensitivity.svg", GuidedFigure = "guided.svg", MemoryFigure = "memory-accuracy.svg";

    private const string Fp32Color = "#333333", ToleranceColor = "#e15759", KeptColor = "#59a14f", PassColor = "#4e79a7";

    /// <summary>Writes every file into <paramref name="directory"/> (created if needed) and returns their paths.</summary>
    public static IReadOnlyList<string> Write(string directory, QsvitReportInput input)
    {
        Directory.CreateDirectory(directory);
        var files = new List<string>();
        void Save(string name, string text)
        {
            var path = Path.Combine(directory, name);
            TextFiles.WriteAtomically(path, text);
            files.Add(path);
        }
        Save(SensitivityFigure, SensitivityChart(input.Result.Sensitivity));
        Save(GuidedFigure, GuidedChart(input.Result));
        Save(MemoryFigure, MemoryAccuracyChart(input.Result, input.Layout));
        Save(ComparisonTable.FileName, ComparisonTable.ToJson(ComparisonRows(input)));
        Save(Markdown, ToMarkdown(input));
        Save(Json, ToJson(input).ToJsonString(TextFiles.Json));
        return files;
    }

    /// <summary>
    /// fp32 and QSViT (bSettingG) as rows of a method comparison. The cost is the search's own: its distinct evaluations on the
    /// search split and their recorded time, without Alg. 4's held-out check.
    /// </summary>
    public static IReadOnlyList<ComparisonRow> ComparisonRows(QsvitReportInput input)
    {
        var r = input.Result;
        var fp32Test = r.Report?.Fp32;
        var evaluations = r.SearchEvaluations;
        string method = r.Options.Granularity == Granularity.Block ? "QSViT" : $"QSViT ({r.Options.Granularity.Name()})";
        return
        [
            ComparisonRow.Baseline(input.Layout, r.Search.Fp32, fp32Test),
            ComparisonRow.Create(method, r.BSettingG, input.Layout, r.Search.Quantized, r.Report?.Quantized, r.Search.Fp32, fp32Test,
                evaluations.Count, 0, evaluations.Sum(e => e.Seconds), r.Options.TolerancePoints, evaluations.Count),
        ];
    }

    // ---------------------------------------------------------------- figures

    /// <summary>Paper Fig. 7: accuracy vs width per unit, one panel per stage, with the fp32 and tolerance lines.</summary>
    public static string SensitivityChart(SensitivityTable t)
    {
        var categories = t.Bits.Select(b => b == Quantizer.FullPrecision ? "32 (fp32)" : b.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        double lowest = Math.Min(t.Cells.Min(c => c.Accuracy.Accuracy), t.Threshold);
        double yMin = Math.Max(0, Math.Floor((lowest - 1) / 5) * 5), yMax = Math.Min(100, Math.Ceiling((t.Fp32.Accuracy + 1) / 5) * 5);
        var panels = t.Units.GroupBy(Sdtv2Layout.StageOf).Select(stage => new SvgChart
        {
            Title = $"Stage {stage.Key}",
            XLabel = "weight bit width",
            YLabel = "top-1 (%)",
            XCategories = categories,
            YMin = yMin,
            YMax = yMax,
            Width = 520,
            Height = 330,
            Series = stage.Select(unit => new ChartSeries(unit,
                t.Bits.Select((b, i) => new ChartPoint(i, t.Cell(unit, b).Accuracy.Accuracy)).ToArray())).ToArray(),
            Rules =
            [
                new ChartRule($"fp32 {F(t.Fp32.Accuracy, 2)} %", t.Fp32.Accuracy, Fp32Color),
                new ChartRule($"tolerance {F(t.Threshold, 2)} %", t.Threshold, ToleranceColor),
            ],
        }).ToArray();
        return SvgChart.Grid($"Layer-wise sensitivity (Alg. 1), {t.Fp32.Split} split, n = {t.Fp32.Count}", panels, columns: 2);
    }

    /// <summary>Paper Fig. 8: accuracy of bSettingH and of every guided step, labelled with the setting evaluated.</summary>
    public static string GuidedChart(QsvitResult r)
    {
        var g = r.Guided;
        var labels = new List<string> { $"bSettingH {r.BSettingH}" };
        labels.AddRange(g.Steps.Select(s => $"{s.Unit}→{s.Bits}: {s.Setting}"));
        var all = new List<ChartPoint> { new(0, g.Start.Accuracy) };
        all.AddRange(g.Steps.Select(s => new ChartPoint(s.Index + 1, s.Accuracy.Accuracy)));
        ChartSeries Points(string name, string color, IEnumerable<GuidedStep> steps) =>
            new(name, steps.Select(s => new ChartPoint(s.Index + 1, s.Accuracy.Accuracy)).ToArray()) { Style = SeriesStyle.Scatter, Color = color, MarkerRadius = 4.5 };
        var threshold = r.Sensitivity.Threshold;
        return new SvgChart
        {
            Title = $"Guided quantization (Alg. 3): bSettingH → bSettingG {r.BSettingG}",
            XLabel = "step (setting evaluated)",
            YLabel = "top-1 (%)",
            XCategories = labels,
            RotateXLabels = true,
            Width = Math.Max(720, 140 + 26 * labels.Count),
            Height = 330,
            Series =
            [
                new ChartSeries("search top-1", all) { Color = "#bab0ac", MarkerRadius = 3 },
                new ChartSeries("bSettingH", [all[0]]) { Style = SeriesStyle.Scatter, Color = Fp32Color, MarkerRadius = 4.5 },
                Points("kept", KeptColor, g.Steps.Where(s => s.Kept)),
                Points("within tolerance", PassColor, g.Steps.Where(s => s.WithinTolerance && !s.Kept)),
                Points("outside tolerance", ToleranceColor, g.Steps.Where(s => !s.WithinTolerance)),
            ],
            Rules =
            [
                new ChartRule($"fp32 {F(r.Search.Fp32.Accuracy, 2)} %", r.Search.Fp32.Accuracy, Fp32Color),
                new ChartRule($"tolerance {F(threshold, 2)} %", threshold, ToleranceColor),
            ],
        }.ToSvg();
    }

    /// <summary>Memory vs search accuracy of every whole-network setting evaluated, with the Pareto front.</summary>
    public static string MemoryAccuracyChart(QsvitResult r, Sdtv2Layout layout)
    {
        double MiB(QuantizationSetting s) => MemoryFootprint.Compute(layout, s).MiB;
        var steps = r.Guided.Steps.Select(s => new ChartPoint(MiB(s.Setting), s.Accuracy.Accuracy)).ToArray();
        ChartSeries One(string name, QuantizationSetting s, AccuracyRecord a, string color) =>
            new(name, [new ChartPoint(MiB(s), a.Accuracy, name)]) { Style = SeriesStyle.Scatter, Color = color, MarkerRadius = 5, ShowLabels = true };
        return new SvgChart
        {
            Title = "Memory vs accuracy of the evaluated settings",
            XLabel = "memory (MiB, paper counting)",
            YLabel = $"top-1 on {r.Options.SearchSplit} (%)",
            HighlightParetoFront = true,
            Series =
            [
                new ChartSeries("guided steps", steps) { Style = SeriesStyle.Scatter, Color = "#bab0ac" },
                One("fp32", r.Fp32, r.Search.Fp32, Fp32Color),
                One("bSettingH", r.BSettingH, r.BSettingHAccuracy, PassColor),
                One("bSettingL", r.BSettingL, r.BSettingLAccuracy, "#f28e2b"),
                One("bSettingG", r.BSettingG, r.Search.Quantized, KeptColor),
            ],
            Rules = [new ChartRule("tolerance", r.Sensitivity.Threshold, ToleranceColor)],
        }.ToSvg();
    }

    // ---------------------------------------------------------------- markdown

    public static string ToMarkdown(QsvitReportInput input)
    {
        var r = input.Result;
        var o = r.Options;
        var t = r.Sensitivity;
        var md = new StringBuilder();
        void Line(string s = "") => md.AppendLine(s);
        string Split(string name) => input.Splits.TryGetValue(name, out var d) ? $"`{name}` ({d})" : $"`{name}`";

        Line("# QSViT quantization report");
        Line();
        Line($"- **Model**: `{input.Model}` — {input.Layout.Config}");
        Line($"- **Quantizer**: `{input.Quantizer}`{(input.Quantizer.Kind == QuantizerKind.Paper ? " (the paper's Eq. 1-3, per tensor)" : "")}; weights of conv/linear layers only, the head stays fp32");
        Line($"- **Device**: {input.Device}");
        Line($"- **Units**: {o.Units.Count} at {o.Granularity.Name()} granularity ({string.Join(", ", o.Units)})");
        Line($"- **Widths tried**: {string.Join(", ", t.Bits)}; **tolerance**: {F(o.TolerancePoints, 2)} points below fp32 on the search split (threshold {F(t.Threshold, 2)} %)");
        Line($"- **Search split** {Split(o.SearchSplit)}: every decision is made here.");
        if (o.ReportSplit is { } rs) Line($"- **Report split** {Split(rs)}: held out, only reported.");
        Line();

        Line("## Summary");
        Line();
        var g = r.MemoryOf("bSettingG").Memory;
        Line($"bSettingG = `{r.BSettingG}` — {F(g.MiB, 3)} MiB vs {F(g.Fp32MiB, 3)} MiB fp32 ({F(g.SavingPercent, 1)} % saving).");
        Line();
        Line($"| split | fp32 top-1 % [95 % CI] | bSettingG top-1 % [95 % CI] | Δ vs fp32, paired [95 % CI] |");
        Line("|---|---:|---:|---:|");
        foreach (var f in new[] { r.Search, r.Report }.OfType<FinalAccuracy>())
            Line($"| {f.Split} (n = {f.Fp32.Count}) | {Acc(f.Fp32.Top1)} | {Acc(f.Quantized.Top1)} | {Diff(f.Difference)} |");
        Line();
        Line(r.WithinTolerance
            ? $"bSettingG is within the {F(o.TolerancePoints, 2)}-point tolerance on the search split."
            : $"**bSettingG is NOT within the tolerance on the search split**: even bSettingH (each unit's highest passing width, together) drops below {F(t.Threshold, 2)} %.");
        Line();

        Line("## 1. FP32 baseline");
        Line();
        Line($"- {o.SearchSplit}: {Acc(r.Search.Fp32.Top1)} % (n = {r.Search.Fp32.Count}, 95 % Wilson interval)");
        if (r.Report is { } rep) Line($"- {rep.Split}: {Acc(rep.Fp32.Top1)} % (n = {rep.Fp32.Count})");
        Line();

        Line("## 2. Per-unit sensitivity (Alg. 1)");
        Line();
        Line($"Each unit quantized alone, every other unit fp32, on `{o.SearchSplit}`. Cell: top-1 % and, in parentheses, the difference from fp32 " +
             $"on the same images with its paired 95 % interval. ✓ = within tolerance (≥ {F(t.Threshold, 2)} %), ✗ = outside.");
        Line();
        Line("| unit | " + string.Join(" | ", t.Bits.Select(b => $"{b}-bit")) + " |");
        Line("|---|" + string.Concat(t.Bits.Select(_ => "---:|")));
        foreach (var unit in t.Units)
            Line($"| {unit} | " + string.Join(" | ", t.Bits.Select(b =>
            {
                var c = t.Cell(unit, b);
                return b == Quantizer.FullPrecision ? $"{F(c.Accuracy.Accuracy, 2)} (fp32)"
                    : $"{F(c.Accuracy.Accuracy, 2)} ({Diff(c.Difference)}) {(c.WithinTolerance ? "✓" : "✗")}";
            })) + " |");
        Line();
        Line($"![Layer-wise sensitivity]({SensitivityFigure})");
        Line();

        if (input.WeightErrors is { Count: > 0 } errors)
        {
            Line("## 3. Weight quantization error per unit");
            Line();
            if (input.Quantizer.Kind == QuantizerKind.Paper)
            {
                Line("The paper's quantizer uses S = (max − min) / (Qmax − Qmin) with signed codes in [−2^(b−1), 2^(b−1) − 1] and no zero point. " +
                     "The codes are centred on 0 but the scale spans max − min, so both ends are clamped at about ±(max − min)/2: the larger side of " +
                     "an asymmetric weight range (max ≠ −min) loses everything beyond that, and even a symmetric range loses its extreme step. " +
                     "The clamping point does not move with the width, so more bits do not reduce the clipped share: it is a range mismatch, not " +
                     "rounding, and how much it matters depends on how lopsided each weight tensor is. Clipped = share of the unit's weights clamped; " +
                     "SQNR = signal-to-quantization-noise ratio over the unit's weights.");
            }
            else
            {
                Line("Clipped = share of the unit's weights clamped to the code range; SQNR = signal-to-quantization-noise ratio over the unit's weights.");
            }
            Line();
            var widths = o.QuantizedBits;
            Line("| unit | weights | " + string.Join(" | ", widths.Select(b => $"{b}-bit clipped / SQNR")) + " |");
            Line("|---|---:|" + string.Concat(widths.Select(_ => "---:|")));
            foreach (var unit in o.Units)
            {
                var row = errors.Where(e => e.Unit == unit).ToDictionary(e => e.Bits);
                if (row.Count == 0) continue;
                Line($"| {unit} | {row.Values.First().Weights:N0} | " + string.Join(" | ", widths.Select(b =>
                    row.TryGetValue(b, out var e) ? $"{F(100 * e.ClippedFraction, 3)} % / {(double.IsFinite(e.SqnrDb) ? F(e.SqnrDb, 1) + " dB" : "exact")}" : "—")) + " |");
            }
            Line();
        }

        Line("## 4. Base settings (Alg. 2)");
        Line();
        Line("Per unit, among the quantized widths within tolerance in Alg. 1: bSettingH takes the highest (conservative), bSettingL the lowest " +
             "(aggressive). A unit where no quantized width passes stays at 32 in both.");
        Line();
        Line($"- bSettingH = `{r.BSettingH}` — whole network: {Acc(r.BSettingHAccuracy.Top1)} % on {o.SearchSplit} ({Diff(r.BSettingHAccuracy.DifferenceFrom(t.Fp32))})");
        Line($"- bSettingL = `{r.BSettingL}` — whole network: {Acc(r.BSettingLAccuracy.Top1)} % on {o.SearchSplit} ({Diff(r.BSettingLAccuracy.DifferenceFrom(t.Fp32))})");
        Line();
        Line("| unit | widths within tolerance | bSettingH | bSettingL | Alg. 3 tries |");
        Line("|---|---|---:|---:|---|");
        foreach (var unit in t.Units)
        {
            var passing = o.QuantizedBits.Where(b => t.Cell(unit, b).WithinTolerance).ToArray();
            var tries = r.Base.GuidedWidths(unit, o.QuantizedBits);
            Line($"| {unit} | {(passing.Length == 0 ? "none (fp32 only)" : string.Join(", ", passing))} | {r.BSettingH[unit]} | {r.BSettingL[unit]} | " +
                 $"{(tries.Count == 0 ? "—" : string.Join(" → ", tries))} |");
        }
        Line();

        Line("## 5. Guided quantization (Alg. 3)");
        Line();
        Line($"From bSettingH, unit by unit in network order, each width below the unit's bSettingH down to its bSettingL is tried with the other units at " +
             $"their current widths; the unit keeps the lowest width still within tolerance (every width is tried, accuracy need not be monotone). " +
             $"Start: bSettingH at {Acc(r.Guided.Start.Top1)} %.");
        Line();
        Line("| step | unit | bits | setting evaluated | top-1 % [95 % CI] | Δ vs fp32, paired | within | kept |");
        Line("|---:|---|---:|---|---:|---:|:---:|:---:|");
        foreach (var s in r.Guided.Steps)
            Line($"| {s.Index + 1} | {s.Unit} | {s.Bits} | {Code(s.Setting.ToString())} | {Acc(s.Accuracy.Top1)} | {Diff(s.Difference)} | {(s.WithinTolerance ? "✓" : "✗")} | {(s.Kept ? "**kept**" : "")} |");
        if (r.Guided.Steps.Count == 0) Line("| — | no unit has a width between its bSettingH and bSettingL | | | | | | |");
        Line();
        Line($"Result: **bSettingG = `{r.BSettingG}`**.");
        Line();
        Line($"![Guided quantization]({GuidedFigure})");
        Line();

        Line("## 6. Final network (Alg. 4)");
        Line();
        Line("| split | fp32 top-1 % [95 % CI] | bSettingG top-1 % [95 % CI] | Δ vs fp32, paired [95 % CI] | images where only fp32 is right / only bSettingG is right |");
        Line("|---|---:|---:|---:|---:|");
        foreach (var f in new[] { r.Search, r.Report }.OfType<FinalAccuracy>())
        {
            var (fpOnly, qOnly) = Discordant(f.Fp32.CorrectMask, f.Quantized.CorrectMask);
            Line($"| {f.Split} | {Acc(f.Fp32.Top1)} | {Acc(f.Quantized.Top1)} | {Diff(f.Difference)} | {fpOnly} / {qOnly} |");
        }
        Line();
        Line("**What is noise.** " + NoiseNote(r));
        Line();
        if (input.QuantizedModelPath is { } saved)
            Line($"Quantized network saved as `{saved}` (dequantized float32 weights; metadata `{QsvitCheckpoint.SettingKey}`, `{QsvitCheckpoint.QuantizerKey}`, " +
                 $"`{ModelLoader.ConfigMetadataKey}`): run it with `qsvit eval --model {saved} --data …`.");
        Line();

        Line("## 7. Comparison (as in the paper's Table II)");
        Line();
        Line($"| method | precision | setting | memory (MiB) | saving | timesteps | top-1 {o.SearchSplit} % [95 % CI] | top-1 {o.ReportSplit ?? "report"} % [95 % CI] |");
        Line("|---|---|---|---:|---:|---:|---:|---:|");
        int T = input.Layout.Config.Timesteps;
        void Row(string method, string name, AccuracyRecord? search, AccuracyRecord? test)
        {
            var m = r.MemoryOf(name);
            Line($"| {method} | {Precision(m.Setting)} | {Code(m.Setting.ToString())} | {F(m.Memory.MiB, 3)} | {F(m.Memory.SavingPercent, 1)} % | {T} | {Acc(search?.Top1)} | {Acc(test?.Top1)} |");
        }
        Row("SDTv2 (fp32)", "fp32", r.Search.Fp32, r.Report?.Fp32);
        Row("QSViT bSettingH", "bSettingH", r.BSettingHAccuracy, null);
        Row("QSViT bSettingL", "bSettingL", r.BSettingLAccuracy, null);
        Row("**QSViT bSettingG**", "bSettingG", r.Search.Quantized, r.Report?.Quantized);
        var paper = MemoryFootprint.Compute(input.Layout, QuantizationSetting.Parse(QsvitSearch.PaperSetting));
        Line($"| paper's reported setting (memory only, not evaluated) | {Precision(QuantizationSetting.Parse(QsvitSearch.PaperSetting))} | {Code(QsvitSearch.PaperSetting)} | " +
             $"{F(paper.MiB, 3)} | {F(paper.SavingPercent, 1)} % | {T} | — | — |");
        Line();
        Line($"![Memory vs accuracy]({MemoryFigure})");
        Line();

        Line("## 8. Memory per unit");
        Line();
        Line("Learned parameters (weights, biases, BatchNorm affine) at 32 bits, quantized weights at their width, as the paper counts memory; " +
             "1 MiB = 2^20 bytes; quantizer scales not included.");
        Line();
        var fp = r.MemoryOf("fp32").Memory;
        Line("| unit | parameters | fp32 (MiB) | bSettingG bits | bSettingG (MiB) | saving |");
        Line("|---|---:|---:|---:|---:|---:|");
        foreach (var u in g.Units)
        {
            string bits = u.Name == Sdtv2Layout.Head ? r.BSettingG.HeadBits.ToString(System.Globalization.CultureInfo.InvariantCulture)
                : string.Join("/", input.Layout.Weights.Where(w => w.Unit == u.Name).Select(r.BSettingG.BitsFor).Distinct());
            Line($"| {u.Name} | {u.Parameters:N0} | {F(u.Fp32Bits / 8.0 / MemoryFootprint.BytesPerMiB, 3)} | {bits} | {F(u.MiB, 3)} | {F(u.SavingPercent, 1)} % |");
        }
        Line($"| **total** | {input.Layout.LearnedParameterCount:N0} | {F(fp.MiB, 3)} | | {F(g.MiB, 3)} | {F(g.SavingPercent, 1)} % |");
        Line();

        Line("## 9. Energy (estimate)");
        Line();
        foreach (var line in EnergyLines(input.Energy, "bSettingG")) Line(line);
        Line();

        Line("## 10. Cost");
        Line();
        var c = r.Cost;
        int run = input.OracleEvaluations ?? c.Run;
        Line($"The search used {c.Evaluations} distinct full evaluations (setting × split) taking {Duration(c.EvaluationSeconds)} in all; {run} were run by " +
             $"this process, {c.Evaluations - c.Run} came from the run directory or the evaluator's cache. Wall time of this process: {Duration(c.WallSeconds)}.");
        Line();
        Line("| phase | evaluations | run now | replayed |");
        Line("|---|---:|---:|---:|");
        foreach (var p in c.Phases) Line($"| {QsvitResult.PhaseName(p.Phase)} | {p.Evaluations} | {p.Run} | {p.Evaluations - p.Run} |");
        return md.ToString();
    }

    /// <summary>The energy section's body (shared by the QSViT and AQ4SViT reports); <paramref name="name"/> labels the quantized network.</summary>
    internal static IEnumerable<string> EnergyLines(EnergyComparison? energy, string name)
    {
        if (energy is { } e)
        {
            yield return $"A {EnergyEstimate.Caveat}: E = E_MAC · MACs(input layer) + E_AC · SOPs(other layers) + weight reads at the stored width, " +
                         $"with firing rates measured on {e.Images} image(s) of `{e.Split}` for each network.";
            yield return "";
            yield return "| network | compute (µJ/image) | weight reads (µJ/image) | total (µJ/image) |";
            yield return "|---|---:|---:|---:|";
            yield return $"| fp32 | {F(e.Fp32.ComputeUj, 3)} | {F(e.Fp32.MemoryUj, 3)} | {F(e.Fp32.TotalUj, 3)} |";
            yield return $"| {name} | {F(e.Quantized.ComputeUj, 3)} | {F(e.Quantized.MemoryUj, 3)} | {F(e.Quantized.TotalUj, 3)} |";
            yield return "";
            yield return $"Estimated saving: {F(e.SavingPercent, 1)} %.";
        }
        else yield return "Not computed for this run.";
        yield return "";
        yield return "The paper reports GPU power; power cannot be measured here (CPU inference, no power counters), so only this theoretical estimate is given.";
    }

    internal static JsonObject? EnergyJson(EnergyComparison? energy, string quantizedKey) => energy is { } e ? new JsonObject
    {
        ["caveat"] = EnergyEstimate.Caveat,
        ["split"] = e.Split,
        ["images"] = e.Images,
        ["fp32_uj"] = e.Fp32.TotalUj,
        [quantizedKey] = e.Quantized.TotalUj,
        ["saving_percent"] = e.SavingPercent,
    } : null;

    private static string NoiseNote(QsvitResult r)
    {
        var s = r.Search;
        double half = (s.Fp32.Top1.High - s.Fp32.Top1.Low) / 2;
        var note = new StringBuilder();
        note.Append($"On {s.Fp32.Count} images an accuracy is only known to about ±{F(half, 2)} points (95 % Wilson interval of fp32 on {s.Split}). ");
        note.Append("Two networks on the same images are compared by the paired interval, which counts only the images they disagree on and is " +
                    "much tighter; when it contains 0 the difference is not distinguishable from sampling noise. ");
        note.Append($"bSettingG was chosen on {s.Split}, so its accuracy there is optimistically biased (it is the setting that happened to pass); ");
        note.Append(r.Report is { } rep
            ? $"the held-out {rep.Split} split is the honest estimate: {Diff(rep.Difference)} points vs fp32" +
              (rep.Difference.Low <= 0 && rep.Difference.High >= 0 ? ", consistent with no change." : rep.Difference.High < 0 ? ", a real drop." : ", a real gain.")
            : "no held-out split was evaluated, so there is no unbiased estimate.");
        return note.ToString();
    }

    private static (int FpOnly, int QOnly) Discordant(bool[] fp, bool[] q)
    {
        int a = 0, b = 0;
        for (int i = 0; i < Math.Min(fp.Length, q.Length); i++)
        {
            if (fp[i] && !q[i]) a++;
            else if (q[i] && !fp[i]) b++;
        }
        return (a, b);
    }

    /// <summary>"32-bit", "8-bit" or "mixed 16/8/4" over the quantizable units.</summary>
    private static string Precision(QuantizationSetting s)
    {
        var widths = s.Entries.Select(e => e.Value).Distinct().OrderDescending().ToArray();
        return widths.Length == 1 ? $"{widths[0]}-bit" : "mixed " + string.Join("/", widths);
    }

    // ---------------------------------------------------------------- json

    public static JsonObject ToJson(QsvitReportInput input)
    {
        var r = input.Result;
        var o = r.Options;
        var t = r.Sensitivity;
        return new JsonObject
        {
            ["method"] = "qsvit",
            ["model"] = input.Model,
            ["config"] = input.Layout.Config.ToString(),
            ["quantizer"] = input.Quantizer.ToString(),
            ["device"] = input.Device,
            ["granularity"] = o.Granularity.Name(),
            ["bits"] = JsonList(t.Bits.Select(b => (JsonNode)b)),
            ["tolerance_points"] = o.TolerancePoints,
            ["search_split"] = o.SearchSplit,
            ["report_split"] = o.ReportSplit,
            ["splits"] = new JsonObject(input.Splits.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["fp32"] = AccuracyJson(t.Fp32),
            ["threshold"] = t.Threshold,
            ["sensitivity"] = JsonList(t.Cells.Select(c => (JsonNode)new JsonObject
            {
                ["unit"] = c.Unit,
                ["bits"] = c.Bits,
                ["accuracy"] = AccuracyJson(c.Accuracy),
                ["difference"] = IntervalJson(c.Difference),
                ["within_tolerance"] = c.WithinTolerance,
            })),
            ["weight_errors"] = input.WeightErrors is { } errors ? JsonList(errors.Select(e => (JsonNode)new JsonObject
            {
                ["unit"] = e.Unit,
                ["bits"] = e.Bits,
                ["weights"] = e.Weights,
                ["clipped_fraction"] = e.ClippedFraction,
                ["sqnr_db"] = double.IsFinite(e.SqnrDb) ? e.SqnrDb : null,
            })) : null,
            ["bSettingH"] = SettingJson(r.BSettingH, r.BSettingHAccuracy, t.Fp32),
            ["bSettingL"] = SettingJson(r.BSettingL, r.BSettingLAccuracy, t.Fp32),
            ["guided"] = JsonList(r.Guided.Steps.Select(s => (JsonNode)new JsonObject
            {
                ["step"] = s.Index + 1,
                ["unit"] = s.Unit,
                ["bits"] = s.Bits,
                ["setting"] = s.Setting.ToString(),
                ["accuracy"] = AccuracyJson(s.Accuracy),
                ["difference"] = IntervalJson(s.Difference),
                ["within_tolerance"] = s.WithinTolerance,
                ["kept"] = s.Kept,
            })),
            ["bSettingG"] = r.BSettingG.ToString(),
            ["within_tolerance"] = r.WithinTolerance,
            ["final"] = JsonList(new[] { r.Search, r.Report }.OfType<FinalAccuracy>().Select(f => (JsonNode)new JsonObject
            {
                ["split"] = f.Split,
                ["fp32"] = AccuracyJson(f.Fp32),
                ["bSettingG"] = AccuracyJson(f.Quantized),
                ["difference"] = IntervalJson(f.Difference),
            })),
            ["memory"] = JsonList(r.Memory.Select(m => (JsonNode)new JsonObject
            {
                ["name"] = m.Name,
                ["setting"] = m.Setting.ToString(),
                ["bytes"] = m.Memory.Bytes,
                ["mib"] = m.Memory.MiB,
                ["saving_percent"] = m.Memory.SavingPercent,
                ["units"] = new JsonObject(m.Memory.Units.Select(u => KeyValuePair.Create(u.Name, (JsonNode?)u.MiB))),
            })),
            ["energy_estimate"] = EnergyJson(input.Energy, "bSettingG_uj"),
            ["quantized_model"] = input.QuantizedModelPath,
            ["cost"] = new JsonObject
            {
                ["wall_seconds"] = r.Cost.WallSeconds,
                ["evaluation_seconds"] = r.Cost.EvaluationSeconds,
                ["evaluations"] = r.Cost.Evaluations,
                ["run"] = input.OracleEvaluations ?? r.Cost.Run,
                ["replayed"] = r.Cost.Replayed,
                ["phases"] = JsonList(r.Cost.Phases.Select(p => (JsonNode)new JsonObject
                {
                    ["phase"] = QsvitResult.PhaseName(p.Phase),
                    ["evaluations"] = p.Evaluations,
                    ["run"] = p.Run,
                })),
            },
        };
    }

    private static JsonArray JsonList(IEnumerable<JsonNode> items) => new(items.ToArray());

    private static JsonObject IntervalJson(Interval i) => new() { ["value"] = Finite(i.Value), ["low"] = Finite(i.Low), ["high"] = Finite(i.High) };

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private static JsonObject AccuracyJson(AccuracyRecord a) => new()
    {
        ["setting"] = a.Setting,
        ["split"] = a.Split,
        ["count"] = a.Count,
        ["correct"] = a.Correct,
        ["top1"] = IntervalJson(a.Top1),
    };

    private static JsonObject SettingJson(QuantizationSetting s, AccuracyRecord a, AccuracyRecord fp32) => new()
    {
        ["setting"] = s.ToString(),
        ["accuracy"] = AccuracyJson(a),
        ["difference"] = IntervalJson(a.DifferenceFrom(fp32)),
    };
}
