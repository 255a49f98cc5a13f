using System.Text;
using System.Text.Json.Nodes;
using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using static Qsvit.Reports.ComparisonTable;

namespace Qsvit.Reports;

/// <summary>report.md: the report as a person reads it, section by section.</summary>
public static partial class QsvitReport
{
    public static string ToMarkdown(QsvitReportInput input)
    {
        var m = new MarkdownText(input);
        Header(m);
        Summary(m);
        Baseline(m);
        Sensitivity(m);
        WeightErrors(m);
        BaseSettings(m);
        Guided(m);
        FinalNetwork(m);
        PaperComparison(m);
        MemoryPerUnit(m);
        Energy(m);
        Cost(m);
        return m.ToString();
    }

    /// <summary>report.md as it is written: the input, and the lines so far.</summary>
    private sealed class MarkdownText(QsvitReportInput input)
    {
        private readonly StringBuilder _md = new();
        public QsvitReportInput Input => input;
        public void Line(string s = "") => _md.AppendLine(s);
        /// <summary>A split's name with what it is.</summary>
        public string Split(string name) => input.Splits.TryGetValue(name, out var d) ? $"`{name}` ({d})" : $"`{name}`";
        public override string ToString() => _md.ToString();
    }

    private static void Header(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("# QSViT quantization report");
        m.Line();
        m.Line($"- **Model**: `{input.Model}` — {input.Layout.Config}");
        m.Line($"- **Quantizer**: `{input.Quantizer}`{(input.Quantizer.Kind == QuantizerKind.Paper ? " (the paper's Eq. 1-3, per tensor)" : "")}; weights of conv/linear layers only, the head stays fp32");
        m.Line(input.Correction.IsNone ? "- **Correction after quantization**: none"
            : $"- **Correction after quantization**: `{input.Correction}` on {input.Correction.CalibrationImages} images of the search data (the search split's line says whether they are held apart from it) " +
              "(bias: each conv's expected weight error removed; bn: BatchNorm statistics re-estimated), for every candidate and bSettingG alike");
        m.Line($"- **Device**: {input.Device}");
        m.Line($"- **Units**: {o.Units.Count} at {o.Granularity.Name()} granularity ({string.Join(", ", o.Units)})");
        m.Line($"- **Widths tried**: {string.Join(", ", t.Bits)}; **tolerance**: {F(o.TolerancePoints, 2)} points below fp32 on the search split (threshold {F(t.Threshold, 2)} %)");
        m.Line($"- **Search split** {m.Split(o.SearchSplit)}: every decision is made here.");
        m.Line($"- **Decisions**: {ReportSummary.DecisionRule(o.Sequential, o.TolerancePoints, o.SearchSplit)}.");
        if (o.ReportSplit is { } rs) m.Line($"- **Report split** {m.Split(rs)}: held out, only reported.");
        m.Line();
    }

    private static void Summary(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## Summary");
        m.Line();
        var g = r.MemoryOf("bSettingG").Memory;
        m.Line($"bSettingG = `{r.BSettingG}` — {F(g.MiB, 3)} MiB vs {F(g.Fp32MiB, 3)} MiB fp32 ({F(g.SavingPercent, 1)} % saving).");
        m.Line();
        m.Line($"| split | fp32 top-1 % [95 % CI] | bSettingG top-1 % [95 % CI] | Δ vs fp32, paired [95 % CI] |");
        m.Line("|---|---:|---:|---:|");
        foreach (var f in new[] { r.Search, r.Report }.OfType<FinalAccuracy>())
            m.Line($"| {f.Split} (n = {f.Fp32.Count}) | {Acc(f.Fp32.Top1)} | {Acc(f.Quantized.Top1)} | {Diff(f.Difference)} |");
        m.Line();
        m.Line(r.WithinTolerance
            ? $"bSettingG is within the {F(o.TolerancePoints, 2)}-point tolerance on the search split."
            : $"**bSettingG is NOT within the tolerance on the search split**: even bSettingH (each unit's highest passing width, together) drops below {F(t.Threshold, 2)} %.");
        m.Line();
    }

    private static void Baseline(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 1. FP32 baseline");
        m.Line();
        m.Line($"- {o.SearchSplit}: {Acc(r.Search.Fp32.Top1)} % (n = {r.Search.Fp32.Count}, 95 % Wilson interval)");
        if (r.Report is { } rep) m.Line($"- {rep.Split}: {Acc(rep.Fp32.Top1)} % (n = {rep.Fp32.Count})");
        m.Line();
    }

    private static void Sensitivity(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 2. Per-unit sensitivity (Alg. 1)");
        m.Line();
        m.Line($"Each unit quantized alone, every other unit fp32, on `{o.SearchSplit}`. Cell: top-1 % and, in parentheses, the difference from fp32 " +
             $"on the same images with its paired 95 % interval. ✓ = within tolerance (≥ {F(t.Threshold, 2)} %), ✗ = outside.");
        m.Line();
        m.Line("| unit | " + string.Join(" | ", t.Bits.Select(b => $"{b}-bit")) + " |");
        m.Line("|---|" + string.Concat(t.Bits.Select(_ => "---:|")));
        foreach (var unit in t.Units)
            m.Line($"| {unit} | " + string.Join(" | ", t.Bits.Select(b =>
            {
                var c = t.Cell(unit, b);
                return b == Quantizer.FullPrecision ? $"{F(c.Accuracy.Accuracy, 2)} (fp32)"
                    : $"{F(c.Accuracy.Accuracy, 2)} ({Diff(c.Difference)}) {(c.WithinTolerance ? "✓" : "✗")}{Images(c.Accuracy, c.Early, t.Fp32.Count)}";
            })) + " |");
        m.Line();
        m.Line($"![Layer-wise sensitivity]({SensitivityFigure})");
        m.Line();
    }

    private static void WeightErrors(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        if (input.WeightErrors is not { Count: > 0 } errors) return;
        m.Line("## 3. Weight quantization error per unit");
        m.Line();
        if (input.Quantizer.Kind == QuantizerKind.Paper)
        {
            m.Line("The paper's quantizer uses S = (max − min) / (Qmax − Qmin) with signed codes in [−2^(b−1), 2^(b−1) − 1] and no zero point. " +
                 "The codes are centred on 0 but the scale spans max − min, so both ends are clamped at about ±(max − min)/2: the larger side of " +
                 "an asymmetric weight range (max ≠ −min) loses everything beyond that, and even a symmetric range loses its extreme step. " +
                 "The clamping point does not move with the width, so more bits do not reduce the clipped share: it is a range mismatch, not " +
                 "rounding, and how much it matters depends on how lopsided each weight tensor is. Clipped = share of the unit's weights clamped; " +
                 "SQNR = signal-to-quantization-noise ratio over the unit's weights.");
        }
        else
        {
            m.Line("Clipped = share of the unit's weights clamped to the code range; SQNR = signal-to-quantization-noise ratio over the unit's weights.");
        }
        m.Line();
        var widths = o.QuantizedBits;
        m.Line("| unit | weights | " + string.Join(" | ", widths.Select(b => $"{b}-bit clipped / SQNR")) + " |");
        m.Line("|---|---:|" + string.Concat(widths.Select(_ => "---:|")));
        foreach (var unit in o.Units)
        {
            var row = errors.Where(e => e.Unit == unit).ToDictionary(e => e.Bits);
            if (row.Count == 0) continue;
            m.Line($"| {unit} | {row.Values.First().Weights:N0} | " + string.Join(" | ", widths.Select(b =>
                row.TryGetValue(b, out var e) ? $"{F(100 * e.ClippedFraction, 3)} % / {(double.IsFinite(e.SqnrDb) ? F(e.SqnrDb, 1) + " dB" : "exact")}" : "—")) + " |");
        }
        m.Line();
    }

    private static void BaseSettings(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 4. Base settings (Alg. 2)");
        m.Line();
        m.Line("Per unit, among the quantized widths within tolerance in Alg. 1: bSettingH takes the highest (conservative), bSettingL the lowest " +
             "(aggressive). A unit where no quantized width passes stays at 32 in both.");
        m.Line();
        m.Line($"- bSettingH = `{r.BSettingH}` — whole network: {Acc(r.BSettingHAccuracy.Top1)} % on {o.SearchSplit} ({Diff(r.BSettingHAccuracy.DifferenceFrom(t.Fp32))})");
        m.Line($"- bSettingL = `{r.BSettingL}` — whole network: {Acc(r.BSettingLAccuracy.Top1)} % on {o.SearchSplit} ({Diff(r.BSettingLAccuracy.DifferenceFrom(t.Fp32))})");
        m.Line();
        m.Line("| unit | widths within tolerance | bSettingH | bSettingL | Alg. 3 tries |");
        m.Line("|---|---|---:|---:|---|");
        foreach (var unit in t.Units)
        {
            var passing = o.QuantizedBits.Where(b => t.Cell(unit, b).WithinTolerance).ToArray();
            var tries = r.Base.GuidedWidths(unit, o.QuantizedBits);
            m.Line($"| {unit} | {(passing.Length == 0 ? "none (fp32 only)" : string.Join(", ", passing))} | {r.BSettingH[unit]} | {r.BSettingL[unit]} | " +
                 $"{(tries.Count == 0 ? "—" : string.Join(" → ", tries))} |");
        }
        m.Line();
    }

    private static void Guided(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 5. Guided quantization (Alg. 3)");
        m.Line();
        m.Line($"From bSettingH, unit by unit in network order, each width below the unit's bSettingH down to its bSettingL is tried with the other units at " +
             $"their current widths; the unit keeps the lowest width still within tolerance (every width is tried, accuracy need not be monotone). " +
             $"Start: bSettingH at {Acc(r.Guided.Start.Top1)} %.");
        m.Line();
        m.Line("| step | unit | bits | setting evaluated | top-1 % [95 % CI] | Δ vs fp32, paired | within | kept |");
        m.Line("|---:|---|---:|---|---:|---:|:---:|:---:|");
        foreach (var s in r.Guided.Steps)
            m.Line($"| {s.Index + 1} | {s.Unit} | {s.Bits} | {Code(s.Setting.ToString())} | {Acc(s.Accuracy.Top1)} | {Diff(s.Difference)}{Images(s.Accuracy, s.Early, r.Sensitivity.Fp32.Count)} | {(s.WithinTolerance ? "✓" : "✗")} | {(s.Kept ? "**kept**" : "")} |");
        if (r.Guided.Steps.Count == 0) m.Line("| — | no unit has a width between its bSettingH and bSettingL | | | | | | |");
        m.Line();
        m.Line($"Result: **bSettingG = `{r.BSettingG}`**.");
        m.Line();
        m.Line($"![Guided quantization]({GuidedFigure})");
        m.Line();
    }

    private static void FinalNetwork(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 6. Final network (Alg. 4)");
        m.Line();
        m.Line("| split | fp32 top-1 % [95 % CI] | bSettingG top-1 % [95 % CI] | Δ vs fp32, paired [95 % CI] | images where only fp32 is right / only bSettingG is right |");
        m.Line("|---|---:|---:|---:|---:|");
        foreach (var f in new[] { r.Search, r.Report }.OfType<FinalAccuracy>())
        {
            var (fpOnly, qOnly) = Discordant(f.Fp32.CorrectMask, f.Quantized.CorrectMask);
            m.Line($"| {f.Split} | {Acc(f.Fp32.Top1)} | {Acc(f.Quantized.Top1)} | {Diff(f.Difference)} | {fpOnly} / {qOnly} |");
        }
        m.Line();
        m.Line("**What is noise.** " + NoiseNote(r));
        m.Line();
        if (input.QuantizedModelPath is { } saved)
            m.Line($"Quantized network saved as `{saved}` (dequantized float32 weights; metadata `{QsvitCheckpoint.SettingKey}`, `{QsvitCheckpoint.QuantizerKey}`, " +
                 $"`{ModelLoader.ConfigMetadataKey}`): run it with `qsvit eval --model {saved} --data …`.");
        m.Line();
    }

    private static void PaperComparison(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 7. Comparison (as in the paper's Table II)");
        m.Line();
        m.Line($"| method | precision | setting | memory (MiB) | saving | timesteps | top-1 {o.SearchSplit} % [95 % CI] | top-1 {o.ReportSplit ?? "report"} % [95 % CI] |");
        m.Line("|---|---|---|---:|---:|---:|---:|---:|");
        int T = input.Layout.Config.Timesteps;
        void Row(string method, string name, AccuracyRecord? search, AccuracyRecord? test)
        {
            var s = r.MemoryOf(name);
            m.Line($"| {method} | {Precision(s.Setting)} | {Code(s.Setting.ToString())} | {F(s.Memory.MiB, 3)} | {F(s.Memory.SavingPercent, 1)} % | {T} | {Acc(search?.Top1)} | {Acc(test?.Top1)} |");
        }
        Row("SDTv2 (fp32)", "fp32", r.Search.Fp32, r.Report?.Fp32);
        Row("QSViT bSettingH", "bSettingH", r.BSettingHAccuracy, null);
        Row("QSViT bSettingL", "bSettingL", r.BSettingLAccuracy, null);
        Row("**QSViT bSettingG**", "bSettingG", r.Search.Quantized, r.Report?.Quantized);
        if (r.Reference is { } reference)
        {
            var s = reference.Memory;
            m.Line($"| reference: paper's published setting | {Precision(s.Setting)} | {Code(s.Setting.ToString())} | {F(s.Memory.MiB, 3)} | " +
                   $"{F(s.Memory.SavingPercent, 1)} % | {T} | {Acc(reference.Search.Quantized.Top1)} ({Diff(reference.Search.Difference)}) | " +
                   $"{Acc(reference.Report?.Quantized.Top1)}{(reference.Report is { } rr ? $" ({Diff(rr.Difference)})" : "")} |");
        }
        else
        {
            var paper = MemoryFootprint.Compute(input.Layout, QuantizationSetting.Parse(QsvitSearch.PaperSetting));
            m.Line($"| paper's reported setting (memory only, not evaluated) | {Precision(QuantizationSetting.Parse(QsvitSearch.PaperSetting))} | {Code(QsvitSearch.PaperSetting)} | " +
                   $"{F(paper.MiB, 3)} | {F(paper.SavingPercent, 1)} % | {T} | — | — |");
        }
        m.Line();
        m.Line($"![Memory vs accuracy]({MemoryFigure})");
        m.Line();
    }

    private static void MemoryPerUnit(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 8. Memory per unit");
        m.Line();
        m.Line("Learned parameters (weights, biases, BatchNorm affine) at 32 bits, quantized weights at their width, as the paper counts memory; " +
             "1 MiB = 2^20 bytes; quantizer scales not included.");
        m.Line();
        var fp = r.MemoryOf("fp32").Memory;
        var g = r.MemoryOf("bSettingG").Memory;
        m.Line("| unit | parameters | fp32 (MiB) | bSettingG bits | bSettingG (MiB) | saving |");
        m.Line("|---|---:|---:|---:|---:|---:|");
        foreach (var u in g.Units)
        {
            string bits = u.Name == Sdtv2Layout.Head ? r.BSettingG.HeadBits.ToString(System.Globalization.CultureInfo.InvariantCulture)
                : string.Join("/", input.Layout.Weights.Where(w => w.Unit == u.Name).Select(r.BSettingG.BitsFor).Distinct());
            m.Line($"| {u.Name} | {u.Parameters:N0} | {F(u.Fp32Bits / 8.0 / MemoryFootprint.BytesPerMiB, 3)} | {bits} | {F(u.MiB, 3)} | {F(u.SavingPercent, 1)} % |");
        }
        m.Line($"| **total** | {input.Layout.LearnedParameterCount:N0} | {F(fp.MiB, 3)} | | {F(g.MiB, 3)} | {F(g.SavingPercent, 1)} % |");
        m.Line();
    }

    private static void Energy(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 9. Energy (estimate and measured)");
        m.Line();
        foreach (var line in EnergyLines(input.Energy, input.MeasuredEnergy, "bSettingG")) m.Line(line);
        m.Line();
    }

    private static void Cost(MarkdownText m)
    {
        var (input, r, o, t) = (m.Input, m.Input.Result, m.Input.Result.Options, m.Input.Result.Sensitivity);
        m.Line("## 10. Cost");
        m.Line();
        var c = r.Cost;
        int run = input.OracleEvaluations ?? c.Run;
        m.Line($"The search used {c.Evaluations} distinct full evaluations (setting × split) taking {Duration(c.EvaluationSeconds)} in all; {run} were run on the whole split by " +
             $"this process, {c.Evaluations - c.Run} were decided on chunks of it (sequential tests) or came from the run directory or the evaluator's cache. Wall time of this process: {Duration(c.WallSeconds)}.");
        m.Line();
        m.Line($"In whole search-split evaluations: {F(c.FullEquivalents, 1)} ({c.SearchImages:N0} images evaluated for the search, less " +
               $"{F(c.ImagesSaved, 1)} images' worth of units skipped by prefix reuse{(c.CorrectionImages > 0 ? $", plus {c.CorrectionImages:N0} calibration images for the corrections" : "")}, " +
               $"/ {c.SplitImages:N0}); the reference row and the held-out split are not search cost.");
        m.Line();
        m.Line($"{PrefixReuseStats.Describe(c.Reuse, null)}.");
        m.Line();
        m.Line("| phase | evaluations | run now on the whole split | decided on chunks or replayed |");
        m.Line("|---|---:|---:|---:|");
        foreach (var p in c.Phases) m.Line($"| {QsvitResult.PhaseName(p.Phase)} | {p.Evaluations} | {p.Run} | {p.Evaluations - p.Run} |");
    }

    /// <summary>
    /// The energy section's body (shared by the QSViT and AQ4SViT reports): the 45 nm estimate, then the board energy
    /// measured on the device, each labelled; <paramref name="name"/> labels the quantized network.
    /// </summary>
    internal static IEnumerable<string> EnergyLines(EnergyComparison? energy, MeasuredEnergyComparison? measured, string name)
    {
        yield return "**Estimate (45 nm model, not a measurement).**";
        yield return "";
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
        yield return "**Measured (board power through NVML, what the QSViT paper reports).**";
        yield return "";
        if (measured is not { Measured: true } mm)
        {
            yield return measured is null ? "Power was not measured for this run."
                : $"Power was not measured: {measured.NotMeasuredReason}. Only the estimate above is given.";
            yield break;
        }
        yield return $"Board energy while each network evaluated the {mm.Images:N0} images of `{mm.Split}` on {mm.Device} " +
                     $"({mm.Fp32.Devices[0].Source}; whole cards, idle draw included). " + (mm.IntegerCodes
                         ? "The quantized network's spike-input layers summed its integer codes exactly (int8 tensor cores), so a " +
                           "difference comes from that narrower arithmetic as well as from its spikes and data."
                         : "The quantized network runs as fp32 simulation of its codes, so a difference comes from its spikes and " +
                           "data, not from narrower arithmetic.");
        yield return "";
        yield return "| network | average W | J/image | images/J | seconds |";
        yield return "|---|---:|---:|---:|---:|";
        foreach (var (label, m) in new[] { ("fp32", mm.Fp32), (name, mm.Quantized) })
            yield return $"| {label} | {F(m.AverageWatts, 1)} | {m.JoulesPerImage.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)} | " +
                         $"{m.ImagesPerJoule.ToString("G4", System.Globalization.CultureInfo.InvariantCulture)} | {F(m.Seconds, 2)} |";
        if (mm.Fp32.Devices.Count > 1)
        {
            yield return "";
            foreach (var (label, m) in new[] { ("fp32", mm.Fp32), (name, mm.Quantized) })
                yield return $"Per GPU, {label}: " + string.Join("; ", m.Devices.Select(d => $"{d.Device} {F(d.AverageWatts, 1)} W, {F(d.Joules, 1)} J")) + ".";
        }
        yield return "";
        yield return $"Measured saving: {F(mm.SavingPercent, 1)} % of fp32's joules per image.";
    }

    internal static JsonObject? MeasuredEnergyJson(MeasuredEnergyComparison? measured, string name) => measured is null ? null : new JsonObject
    {
        ["what"] = "board energy measured through NVML while each network evaluated the split",
        ["measured"] = measured.Measured,
        ["not_measured_reason"] = measured.NotMeasuredReason,
        ["split"] = measured.Split,
        ["images"] = measured.Images,
        ["device"] = measured.Device,
        ["quantized_arithmetic"] = measured.IntegerCodes ? "integer codes (exact int8 sums)" : "fp32 simulation of the codes",
        ["fp32"] = MeasurementJson(measured.Fp32),
        [name] = MeasurementJson(measured.Quantized),
        ["saving_percent"] = measured.Measured ? measured.SavingPercent : null,
    };

    private static JsonObject MeasurementJson(EnergyMeasurement m) => new()
    {
        ["average_watts"] = m.Measured ? m.AverageWatts : null,
        ["joules_per_image"] = m.Measured ? m.JoulesPerImage : null,
        ["images_per_joule"] = m.Measured ? m.ImagesPerJoule : null,
        ["seconds"] = m.Seconds,
        ["source"] = m.Devices.Count > 0 ? m.Devices[0].Source : null,
        ["per_device"] = new JsonArray(m.Devices.Select(d => (JsonNode)new JsonObject
        {
            ["device"] = d.Device,
            ["average_watts"] = d.AverageWatts,
            ["joules"] = d.Joules,
        }).ToArray()),
    };

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

    /// <summary>" (n = 375, early)" for a decision on fewer images than the split; empty for a whole-split one.</summary>
    private static string Images(AccuracyRecord a, bool early, int split) =>
        a.Count < split ? $" (n = {a.Count}{(early ? ", early" : "")})" : "";

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
}
