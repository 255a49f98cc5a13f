using Qsvit.Quantization;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qsvit.Evaluation;
using Qsvit.Search;
using Qsvit.IO;

namespace Qsvit.Reports;

/// <summary>fp32 and the chosen setting on the held-out split, evaluated by the caller after the search.</summary>
public sealed record Aq4HeldOut(AccuracyRecord Fp32, AccuracyRecord Chosen)
{
    /// <summary>Chosen minus fp32 over the same images, in points, with its 95 % paired interval.</summary>
    public Interval Difference => Chosen.DifferenceFrom(Fp32);
}

/// <summary>What an AQ4SViT report shows besides the search result: the held-out check, energy and the saved network.</summary>
/// <param name="Context">What was searched (model, data, quantizer…), in display order.</param>
public sealed record Aq4ReportInput(Aq4Result Result, IReadOnlyList<KeyValuePair<string, string>> Context)
{
    /// <summary>fp32 and the chosen setting on the held-out split, when one was evaluated.</summary>
    public Aq4HeldOut? HeldOut { get; init; }
    public EnergyComparison? Energy { get; init; }
    /// <summary>Board energy measured on the device (NVML), or why it was not; the section says "not measured" without it.</summary>
    public MeasuredEnergyComparison? MeasuredEnergy { get; init; }
    /// <summary>Where the chosen setting's quantized network was saved, if it was.</summary>
    public string? QuantizedModelPath { get; init; }
    /// <summary>The run's quantizer and corrections, recorded in the comparison rows and the summary (null: not recorded).</summary>
    public QuantizerSpec? Quantizer { get; init; }
    public CorrectionOptions Correction { get; init; } = CorrectionOptions.None;
}

/// <summary>
/// Writes an AQ4SViT search to a directory: <c>report.md</c>, <c>report.json</c> (every candidate),
/// <c>memory-accuracy.svg</c> (memory against search-split accuracy of every verified candidate, with the Pareto front) and
/// <c>comparison.json</c> (fp32 and the chosen setting as rows of a method comparison).
/// </summary>
public static class Aq4Report
{
    public const string MarkdownFile = "report.md", JsonFile = "report.json", ChartFile = "memory-accuracy.svg";

    private const string Fp32Color = "#333333", ConstraintColor = "#e15759", ChosenColor = "#59a14f", PassColor = "#4e79a7", FailColor = "#e15759";

    /// <summary>Writes every file into <paramref name="directory"/> (created if needed).</summary>
    public static void Write(string directory, Aq4ReportInput input)
    {
        Directory.CreateDirectory(directory);
        TextFiles.WriteAtomically(Path.Combine(directory, ChartFile), Chart(input.Result));
        TextFiles.WriteAtomically(Path.Combine(directory, ComparisonTable.FileName), ComparisonTable.ToJson(ComparisonRows(input.Result, input.HeldOut, input.Quantizer, input.Correction)));
        TextFiles.WriteAtomically(Path.Combine(directory, JsonFile), Json(input).ToJsonString(TextFiles.Json));
        TextFiles.WriteAtomically(Path.Combine(directory, MarkdownFile), Markdown(input));
    }

    /// <summary>Verified candidates no other verified candidate beats on both memory and accuracy, by memory ascending.</summary>
    public static IReadOnlyList<Aq4Candidate> ParetoFront(IEnumerable<Aq4Candidate> candidates) =>
        SvgChart.ParetoFront(candidates.Where(c => c.Verified), c => c.MiB, c => c.Accuracy!.Value);

    /// <summary>The method as a comparison row names it: "AQ4SViT-Greedy", "AQ4SViT-Beam (B=4)", with any granularity but block.</summary>
    public static string MethodName(Aq4Result r)
    {
        var details = new List<string>();
        if (r.Method == Aq4Method.Beam) details.Add($"B={r.Options.BeamWidth}");
        if (r.Space.Granularity != Granularity.Block) details.Add(r.Space.Granularity.Name());
        if (r.Space.QuantizeHead) details.Add("head searched");
        if (!r.Options.DriftGate) details.Add("no drift gate");
        if (r.Options.LazyDrift && !r.Options.PathSearch) details.Add("lazy drift");
        if (r.Method == Aq4Method.Greedy && !r.Options.PathSearch) details.Add("step verification");
        return $"AQ4SViT-{(r.Method == Aq4Method.Greedy ? "Greedy" : "Beam")}{(details.Count == 0 ? "" : $" ({string.Join(", ", details)})")}";
    }

    /// <summary>
    /// fp32 and the chosen setting as rows of a method comparison. The cost is the search's: its full and drift evaluations
    /// on the search split and their recorded time (the held-out check is not counted).
    /// </summary>
    /// <param name="quantizer">The run's quantizer and corrections, recorded in the rows (null: not recorded).</param>
    public static IReadOnlyList<ComparisonRow> ComparisonRows(Aq4Result r, Aq4HeldOut? heldOut, QuantizerSpec? quantizer = null,
        CorrectionOptions? correction = null)
    {
        var row = ComparisonRow.Create(MethodName(r), r.Setting, r.Space.Layout, r.Accuracy, heldOut?.Chosen, r.Fp32Accuracy, heldOut?.Fp32,
            r.FullEvaluations, r.DriftEvaluations, r.FullSeconds + r.DriftSeconds, r.Options.MaxDrop, r.CostFullEquivalents);
        return
        [
            ComparisonRow.Baseline(r.Space.Layout, r.Fp32Accuracy, heldOut?.Fp32),
            quantizer is null ? row : row.Made(quantizer, correction ?? CorrectionOptions.None),
        ];
    }

    public static string Title(Aq4Result r) =>
        $"AQ4SViT {(r.Method == Aq4Method.Greedy ? "greedy" : $"beam (width {r.Options.BeamWidth})")}, {r.Space.Granularity.Name()} granularity";

    public static string Markdown(Aq4ReportInput input)
    {
        var (r, heldOut, context) = (input.Result, input.HeldOut, input.Context);
        var md = new StringBuilder();
        md.AppendLine($"# {Title(r)}").AppendLine();
        md.AppendLine("| | |").AppendLine("|---|---|");
        foreach (var (key, value) in context) md.AppendLine($"| {key} | {Cell(value)} |");
        md.AppendLine($"| bit widths | {string.Join(", ", r.Space.Ladder)} (from 32 down){(r.Space.QuantizeHead ? ", head searched" : ", head fp32")} |");
        md.AppendLine($"| constraint | top-1 drop ≤ {F(r.Options.MaxDrop)} points on split `{r.Options.SearchSplit}` |");
        md.AppendLine($"| decisions | {ReportSummary.DecisionRule(r.Options.Sequential, r.Options.MaxDrop, r.Options.SearchSplit)} |");
        md.AppendLine($"| chosen setting | `{Cell(r.Setting.ToString())}` |");
        md.AppendLine($"| memory | {r.Memory.MiB:F3} MiB of {r.Memory.Fp32MiB:F3} MiB fp32: **{r.Memory.SavingPercent:F2} % saved** |");
        md.AppendLine($"| search top-1 | {r.Accuracy.Top1} % (fp32 {r.Fp32Accuracy.Top1} %), drop {F(r.Drop)} points; " +
                      $"paired difference {r.Difference} |");
        if (heldOut is not null)
            md.AppendLine($"| held-out top-1 (`{heldOut.Chosen.Split}`) | {heldOut.Chosen.Top1} % (fp32 {heldOut.Fp32.Top1} %), " +
                          $"drop {F(heldOut.Fp32.Accuracy - heldOut.Chosen.Accuracy)} points; paired difference {heldOut.Difference} |");
        if (r.Method == Aq4Method.Greedy)
            md.AppendLine(r.Options.PathSearch
                ? "| verification | path: descend by drift (lazily re-measured), then gallop and bisect the path for its last passing setting |"
                : "| verification | step: each step's best-ranked move, as in the paper |");
        md.AppendLine($"| evaluations | {r.FullEvaluations} full, {r.DriftEvaluations} drift (run now: {r.NewFullEvaluations} on the whole split, " +
                      $"{r.NewDriftEvaluations} drift; the rest decided on chunks or replayed) |");
        md.AppendLine($"| cost | {F(r.CostFullEquivalents)} full-evaluation equivalents ({r.SearchImages:N0} search images evaluated / {r.SplitImages:N0}, " +
                      $"+ drift seconds / whole-split evaluation seconds{(r.CorrectionImages > 0 ? $" + {r.CorrectionImages:N0} correction calibration images / {r.SplitImages:N0}" : "")}) |");
        md.AppendLine($"| time | {r.WallSeconds:F1} s wall; recorded {r.FullSeconds:F1} s full, {r.DriftSeconds:F1} s drift |");
        md.AppendLine($"| prefix reuse | {PrefixReuseStats.Describe(r.Reuse, r.DriftReuse)} |");
        md.AppendLine($"| proxy | Spearman ρ(drift, drop) = {F(r.ProxySpearman)} over {r.Candidates.Count(c => c.Step > 0 && c.Verified)} verified candidates; " +
                      $"drift gate threshold {(double.IsInfinity(r.GateThreshold) ? "never set" : F(r.GateThreshold))}{(r.Options.DriftGate ? "" : " (gate off)")} |");
        md.AppendLine($"| steps | {r.Steps} |");
        if (input.QuantizedModelPath is { } saved)
            md.AppendLine($"| quantized network | `{Cell(saved)}` (dequantized float32 weights with the setting in its metadata; run it with `qsvit eval --model {Cell(saved)} --data …`) |");
        md.AppendLine();

        md.AppendLine($"![memory against accuracy]({ChartFile})").AppendLine();

        md.AppendLine("## Chosen bit widths").AppendLine();
        md.AppendLine("| unit | weights | bits |").AppendLine("|---|---:|---:|");
        foreach (var u in r.Space.Units)
            md.AppendLine($"| {u.Name} | {u.Weights:N0} | {r.Setting[u.Members[0]]} |");
        md.AppendLine();

        md.AppendLine("## Energy (estimate and measured)").AppendLine();
        foreach (var line in QsvitReport.EnergyLines(input.Energy, input.MeasuredEnergy, "chosen")) md.AppendLine(line);
        md.AppendLine();

        md.AppendLine("## Candidates").AppendLine();
        md.AppendLine(string.Join(", ", Enum.GetValues<Aq4Outcome>().Select(o => $"{r.Candidates.Count(c => c.Step > 0 && c.Outcome == o)} {Name(o)}")) + ".");
        md.AppendLine("Passed and failed candidates were fully evaluated; drift-gated, dominated, not-reached and implied ones were not" +
                      (r.Options.PathSearch ? " (path search: implied ones lie above a setting on their path that passed)." : ".")).AppendLine();
        md.AppendLine("Top-1 and drop are over the images the decision used (early = decided sequentially before the whole split).").AppendLine();
        md.AppendLine("| step | move | MiB | saving % | drift | spike mismatch | score | top-1 % | drop | images | outcome |");
        md.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var c in r.Candidates.Where(c => c.Verified))
            md.AppendLine($"| {c.Step} | {(c.Unit is null ? "fp32" : $"{c.Unit} {c.FromBits}→{c.ToBits}")} | {c.MiB:F3} | {c.SavingPercent:F2} | " +
                          $"{G(c.Drift)} | {G(c.SpikeMismatch)} | {G(c.Score)} | {c.Accuracy:F2} | {F(c.Drop)} | {c.Images}{(c.Early ? " early" : "")} | " +
                          $"{Name(c.Outcome)}{(c.Setting == r.Setting ? " (chosen)" : "")} |");
        return md.ToString();
    }

    public static JsonObject Json(Aq4ReportInput input)
    {
        var (r, heldOut, context) = (input.Result, input.HeldOut, input.Context);
        string Context(string key) => context.FirstOrDefault(kv => kv.Key == key).Value ?? "";
        var front = ParetoFront(r.Candidates).Select(c => c.Setting).ToHashSet();
        return new JsonObject
        {
            ["summary"] = ReportSummary.Create(r.Method == Aq4Method.Greedy ? "greedy" : "beam", Context("quantizer"), r.Setting.ToString(),
                r.Memory.SavingPercent, new FinalAccuracy(r.Options.SearchSplit, r.Fp32Accuracy, r.Accuracy),
                heldOut is null ? null : new FinalAccuracy(heldOut.Chosen.Split, heldOut.Fp32, heldOut.Chosen),
                r.CostFullEquivalents, r.WallSeconds, r.Options.Sequential, Context("device"), input.Correction.ToString()),
            ["method"] = r.Method == Aq4Method.Greedy ? "greedy" : "beam",
            ["beam_width"] = r.Method == Aq4Method.Beam ? r.Options.BeamWidth : null,
            ["granularity"] = r.Space.Granularity.Name(),
            ["bits"] = new JsonArray(r.Space.Ladder.Skip(1).Select(b => (JsonNode)b).ToArray()),
            ["quantize_head"] = r.Space.QuantizeHead,
            ["max_drop"] = r.Options.MaxDrop,
            ["search_split"] = r.Options.SearchSplit,
            ["drift_gate"] = r.Options.DriftGate,
            ["lazy_drift"] = r.Options.LazyDrift && !r.Options.PathSearch,
            ["verification"] = r.Method == Aq4Method.Greedy ? (r.Options.PathSearch ? "path" : "step") : "step",
            ["sequential"] = r.Options.Sequential is { } seq
                ? new JsonObject { ["error_budget"] = seq.ErrorBudget, ["first_images"] = seq.FirstImages, ["growth"] = seq.Growth } : null,
            ["context"] = new JsonObject(context.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["chosen"] = new JsonObject
            {
                ["setting"] = r.Setting.ToString(),
                ["setting_json"] = JsonNode.Parse(r.Setting.ToJson()),
                ["units"] = new JsonObject(r.Space.Units.Select(u => KeyValuePair.Create(u.Name, (JsonNode?)r.Setting[u.Members[0]]))),
                ["mib"] = r.Memory.MiB,
                ["fp32_mib"] = r.Memory.Fp32MiB,
                ["bytes"] = r.Memory.Bytes,
                ["saving_percent"] = r.Memory.SavingPercent,
                ["search"] = Accuracy(r.Accuracy, r.Fp32Accuracy),
                ["held_out"] = heldOut is null ? null : Accuracy(heldOut.Chosen, heldOut.Fp32),
            },
            ["evaluations"] = new JsonObject
            {
                ["full"] = r.FullEvaluations,
                ["drift"] = r.DriftEvaluations,
                ["full_run_now"] = r.NewFullEvaluations,
                ["drift_run_now"] = r.NewDriftEvaluations,
                ["search_images"] = r.SearchImages,
                ["split_images"] = r.SplitImages,
                ["full_seconds"] = r.FullSeconds,
                ["drift_seconds"] = r.DriftSeconds,
                ["cost_full_equivalents"] = Num(r.CostFullEquivalents),
                ["images_saved_by_prefix_reuse"] = r.ImagesSaved,
                ["correction_images"] = r.CorrectionImages,
                ["prefix_reuse"] = QsvitReport.ReuseJson(r.Reuse),
                ["drift_prefix_reuse"] = QsvitReport.ReuseJson(r.DriftReuse),
                ["wall_seconds"] = r.WallSeconds,
                ["steps"] = r.Steps,
            },
            ["energy_estimate"] = QsvitReport.EnergyJson(input.Energy, "chosen_uj"),
            ["energy_measured"] = QsvitReport.MeasuredEnergyJson(input.MeasuredEnergy, "chosen"),
            ["quantized_model"] = input.QuantizedModelPath,
            ["proxy"] = new JsonObject
            {
                ["spearman_drift_drop"] = Num(r.ProxySpearman),
                ["verified"] = r.Candidates.Count(c => c.Step > 0 && c.Verified),
                ["gate_threshold"] = Num(r.GateThreshold),
            },
            ["candidates"] = new JsonArray(r.Candidates.Select(c => (JsonNode)new JsonObject
            {
                ["step"] = c.Step,
                ["setting"] = c.Setting.ToString(),
                ["parent"] = c.Parent,
                ["unit"] = c.Unit,
                ["from_bits"] = c.FromBits,
                ["to_bits"] = c.ToBits,
                ["mib"] = c.MiB,
                ["saving_percent"] = c.SavingPercent,
                ["drift"] = Num(c.Drift),
                ["spike_mismatch"] = Num(c.SpikeMismatch),
                ["score"] = Num(c.Score),
                ["outcome"] = Name(c.Outcome),
                ["verified"] = c.Verified,
                ["accuracy"] = Num(c.Accuracy),
                ["drop"] = Num(c.Drop),
                ["images"] = c.Images,
                ["early"] = c.Early,
                ["accepted"] = c.Accepted,
                ["pareto"] = c.Verified && front.Contains(c.Setting),
            }).ToArray()),
        };
    }

    /// <summary>
    /// Memory (x) against search-split top-1 (y) of every verified candidate, passed and failed, with fp32, the chosen
    /// setting, the Pareto front of them all and the constraint line; every marker's tooltip names its setting.
    /// </summary>
    public static string Chart(Aq4Result r)
    {
        string Tip(Aq4Candidate c) => Inv($"{c.Setting}: {c.MiB:F3} MiB, {c.Accuracy:F2} %, drift {G(c.Drift)}, {Name(c.Outcome)}");
        ChartSeries Candidates(string name, Aq4Outcome outcome, string color) =>
            new(name, r.Candidates.Where(c => c.Step > 0 && c.Outcome == outcome).Select(c => new ChartPoint(c.MiB, c.Accuracy!.Value, null, Tip(c))).ToArray())
            {
                Style = SeriesStyle.Scatter,
                Color = color,
            };
        ChartSeries One(string name, double mib, AccuracyRecord accuracy, string color) =>
            new(name, [new ChartPoint(mib, accuracy.Accuracy, name, Inv($"{name}: {mib:F3} MiB, {accuracy.Accuracy:F2} %"))])
            {
                Style = SeriesStyle.Scatter,
                Color = color,
                MarkerRadius = 5,
                ShowLabels = true,
            };
        double floor = r.Fp32Accuracy.Accuracy - r.Options.MaxDrop;
        return new SvgChart
        {
            Title = Title(r),
            XLabel = "memory (MiB, paper counting)",
            YLabel = $"top-1 on {r.Options.SearchSplit} (%)",
            HighlightParetoFront = true,
            Width = 720,
            Height = 440,
            Series =
            [
                Candidates("passed", Aq4Outcome.Passed, PassColor),
                Candidates("failed", Aq4Outcome.Failed, FailColor),
                One("fp32", r.Memory.Fp32MiB, r.Fp32Accuracy, Fp32Color),
                One("chosen", r.Memory.MiB, r.Accuracy, ChosenColor),
            ],
            Rules = [new ChartRule(Inv($"max drop {r.Options.MaxDrop:G4} points: {floor:F2} %"), floor, ConstraintColor)],
        }.ToSvg();
    }

    private static JsonObject Accuracy(AccuracyRecord chosen, AccuracyRecord fp32) => new()
    {
        ["split"] = chosen.Split,
        ["images"] = chosen.Count,
        ["top1"] = chosen.Accuracy,
        ["top1_ci95"] = new JsonArray(Num(chosen.Top1.Low), Num(chosen.Top1.High)),
        ["fp32_top1"] = fp32.Accuracy,
        ["drop"] = fp32.Accuracy - chosen.Accuracy,
        ["difference_ci95"] = new JsonArray(Num(chosen.DifferenceFrom(fp32).Low), Num(chosen.DifferenceFrom(fp32).High)),
    };

    /// <summary>JSON has no NaN or infinity: those are written as null.</summary>
    private static JsonNode? Num(double? v) => v is { } d && double.IsFinite(d) ? JsonValue.Create(d) : null;

    private static string Name(Aq4Outcome o) => o switch
    {
        Aq4Outcome.Passed => "passed",
        Aq4Outcome.Failed => "failed",
        Aq4Outcome.DriftGated => "drift-gated",
        Aq4Outcome.Dominated => "dominated",
        Aq4Outcome.Implied => "implied",
        _ => "not reached",
    };

    private static string F(double? v) => v is { } d && double.IsFinite(d) ? d.ToString("F2", CultureInfo.InvariantCulture) : "–";
    private static string G(double? v) => v is { } d && double.IsFinite(d) ? d.ToString("G4", CultureInfo.InvariantCulture) : "–";
    private static string Cell(string s) => s.Replace("|", "\\|");
    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
