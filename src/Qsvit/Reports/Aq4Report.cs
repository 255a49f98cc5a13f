using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qsvit.Evaluation;
using Qsvit.Search;

namespace Qsvit.Reports;

/// <summary>fp32 and the chosen setting on the held-out split, evaluated by the caller after the search.</summary>
public sealed record Aq4HeldOut(AccuracyRecord Fp32, AccuracyRecord Chosen)
{
    /// <summary>Chosen minus fp32 over the same images, in points, with its 95 % paired interval.</summary>
    public Interval Difference => Chosen.DifferenceFrom(Fp32);
}

/// <summary>
/// Writes an AQ4SViT search to a directory: <c>report.md</c>, <c>report.json</c> (every candidate) and
/// <c>memory-accuracy.svg</c> (memory against search-split accuracy of every verified candidate, with the Pareto front).
/// </summary>
public static class Aq4Report
{
    public const string MarkdownFile = "report.md", JsonFile = "report.json", ChartFile = "memory-accuracy.svg";

    /// <param name="context">What was searched (model, data, quantizer…), in display order.</param>
    public static void Write(string directory, Aq4Result result, Aq4HeldOut? heldOut, IReadOnlyList<KeyValuePair<string, string>> context)
    {
        Directory.CreateDirectory(directory);
        RunStore.WriteAtomically(Path.Combine(directory, ChartFile), Chart(result));
        RunStore.WriteAtomically(Path.Combine(directory, JsonFile), Json(result, heldOut, context).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        RunStore.WriteAtomically(Path.Combine(directory, MarkdownFile), Markdown(result, heldOut, context));
    }

    /// <summary>Verified candidates no other verified candidate beats on both memory and accuracy, by memory ascending.</summary>
    public static IReadOnlyList<Aq4Candidate> ParetoFront(IEnumerable<Aq4Candidate> candidates)
    {
        var front = new List<Aq4Candidate>();
        foreach (var c in candidates.Where(c => c.Verified).OrderBy(c => c.MiB).ThenByDescending(c => c.Accuracy))
            if (front.Count == 0 || c.Accuracy > front[^1].Accuracy) front.Add(c);
        return front;
    }

    public static string Title(Aq4Result r) =>
        $"AQ4SViT {(r.Method == Aq4Method.Greedy ? "greedy" : $"beam (width {r.Options.BeamWidth})")}, {Aq4Space.Name(r.Space.Granularity)} granularity";

    public static string Markdown(Aq4Result r, Aq4HeldOut? heldOut, IReadOnlyList<KeyValuePair<string, string>> context)
    {
        var md = new StringBuilder();
        md.AppendLine($"# {Title(r)}").AppendLine();
        md.AppendLine("| | |").AppendLine("|---|---|");
        foreach (var (key, value) in context) md.AppendLine($"| {key} | {Cell(value)} |");
        md.AppendLine($"| bit widths | {string.Join(", ", r.Space.Ladder)} (from 32 down){(r.Space.QuantizeHead ? ", head searched" : ", head fp32")} |");
        md.AppendLine($"| constraint | top-1 drop ≤ {F(r.Options.MaxDrop)} points on split `{r.Options.SearchSplit}` |");
        md.AppendLine($"| chosen setting | `{Cell(r.Setting.ToString())}` |");
        md.AppendLine($"| memory | {r.Memory.MiB:F3} MiB of {r.Memory.Fp32MiB:F3} MiB fp32: **{r.Memory.SavingPercent:F2} % saved** |");
        md.AppendLine($"| search top-1 | {r.Accuracy.Top1} % (fp32 {r.Fp32Accuracy.Top1} %), drop {F(r.Drop)} points; " +
                      $"paired difference {r.Difference} |");
        if (heldOut is not null)
            md.AppendLine($"| held-out top-1 (`{heldOut.Chosen.Split}`) | {heldOut.Chosen.Top1} % (fp32 {heldOut.Fp32.Top1} %), " +
                          $"drop {F(heldOut.Fp32.Accuracy - heldOut.Chosen.Accuracy)} points; paired difference {heldOut.Difference} |");
        md.AppendLine($"| evaluations | {r.FullEvaluations} full, {r.DriftEvaluations} drift (run now: {r.NewFullEvaluations} full, " +
                      $"{r.NewDriftEvaluations} drift; the rest replayed) |");
        md.AppendLine($"| cost | {F(r.CostFullEquivalents)} full-evaluation equivalents (full evaluations + drift seconds / mean full-evaluation seconds) |");
        md.AppendLine($"| time | {r.WallSeconds:F1} s wall; recorded {r.FullSeconds:F1} s full, {r.DriftSeconds:F1} s drift |");
        md.AppendLine($"| proxy | Spearman ρ(drift, drop) = {F(r.ProxySpearman)} over {r.Candidates.Count(c => c.Step > 0 && c.Verified)} verified candidates; " +
                      $"drift gate threshold {(double.IsInfinity(r.GateThreshold) ? "never set" : F(r.GateThreshold))}{(r.Options.DriftGate ? "" : " (gate off)")} |");
        md.AppendLine($"| steps | {r.Steps} |").AppendLine();

        md.AppendLine($"![memory against accuracy]({ChartFile})").AppendLine();

        md.AppendLine("## Chosen bit widths").AppendLine();
        md.AppendLine("| unit | weights | bits |").AppendLine("|---|---:|---:|");
        foreach (var u in r.Space.Units)
            md.AppendLine($"| {u.Name} | {u.Weights:N0} | {r.Setting[u.Members[0]]} |");
        md.AppendLine();

        md.AppendLine("## Candidates").AppendLine();
        md.AppendLine(string.Join(", ", Enum.GetValues<Aq4Outcome>().Select(o => $"{r.Candidates.Count(c => c.Step > 0 && c.Outcome == o)} {Name(o)}")) + ".");
        md.AppendLine("Passed and failed candidates were fully evaluated; drift-gated, dominated and not-reached ones were not.").AppendLine();
        md.AppendLine("| step | move | MiB | saving % | drift | spike mismatch | score | top-1 % | drop | outcome |");
        md.AppendLine("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var c in r.Candidates.Where(c => c.Verified))
            md.AppendLine($"| {c.Step} | {(c.Unit is null ? "fp32" : $"{c.Unit} {c.FromBits}→{c.ToBits}")} | {c.MiB:F3} | {c.SavingPercent:F2} | " +
                          $"{G(c.Drift)} | {G(c.SpikeMismatch)} | {G(c.Score)} | {c.Accuracy:F2} | {F(c.Drop)} | " +
                          $"{Name(c.Outcome)}{(c.Setting == r.Setting ? " (chosen)" : "")} |");
        return md.ToString();
    }

    public static JsonObject Json(Aq4Result r, Aq4HeldOut? heldOut, IReadOnlyList<KeyValuePair<string, string>> context)
    {
        var front = ParetoFront(r.Candidates).Select(c => c.Setting).ToHashSet();
        return new JsonObject
        {
            ["method"] = r.Method == Aq4Method.Greedy ? "greedy" : "beam",
            ["beam_width"] = r.Method == Aq4Method.Beam ? r.Options.BeamWidth : null,
            ["granularity"] = Aq4Space.Name(r.Space.Granularity),
            ["bits"] = new JsonArray(r.Space.Ladder.Skip(1).Select(b => (JsonNode)b).ToArray()),
            ["quantize_head"] = r.Space.QuantizeHead,
            ["max_drop"] = r.Options.MaxDrop,
            ["search_split"] = r.Options.SearchSplit,
            ["drift_gate"] = r.Options.DriftGate,
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
                ["full_seconds"] = r.FullSeconds,
                ["drift_seconds"] = r.DriftSeconds,
                ["cost_full_equivalents"] = Num(r.CostFullEquivalents),
                ["wall_seconds"] = r.WallSeconds,
                ["steps"] = r.Steps,
            },
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
                ["accepted"] = c.Accepted,
                ["pareto"] = c.Verified && front.Contains(c.Setting),
            }).ToArray()),
        };
    }

    /// <summary>Memory (x) against search-split top-1 (y) of every verified candidate, with the Pareto front and the constraint.</summary>
    public static string Chart(Aq4Result r)
    {
        const double width = 760, height = 480, left = 70, right = 180, top = 40, bottom = 56;
        var verified = r.Candidates.Where(c => c.Verified).ToArray();
        double floor = r.Fp32Accuracy.Accuracy - r.Options.MaxDrop;
        var (x0, x1, xStep) = Axis(verified.Min(c => c.MiB), verified.Max(c => c.MiB));
        var (y0, y1, yStep) = Axis(Math.Min(verified.Min(c => c.Accuracy!.Value), floor), Math.Max(verified.Max(c => c.Accuracy!.Value), floor));
        double X(double v) => left + (v - x0) / (x1 - x0) * (width - left - right);
        double Y(double v) => height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom);

        var svg = new StringBuilder();
        svg.AppendLine(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"));
        svg.AppendLine(Inv($"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>"));
        svg.AppendLine(Inv($"<text x=\"{left}\" y=\"24\" font-size=\"15\">{Esc(Title(r))}</text>"));
        for (double v = x0; v <= x1 + xStep / 2; v += xStep)
            svg.AppendLine(Inv($"<line x1=\"{X(v):F1}\" y1=\"{top}\" x2=\"{X(v):F1}\" y2=\"{height - bottom}\" stroke=\"#e4e4e4\"/><text x=\"{X(v):F1}\" y=\"{height - bottom + 16}\" text-anchor=\"middle\">{Tick(v, xStep)}</text>"));
        for (double v = y0; v <= y1 + yStep / 2; v += yStep)
            svg.AppendLine(Inv($"<line x1=\"{left}\" y1=\"{Y(v):F1}\" x2=\"{width - right}\" y2=\"{Y(v):F1}\" stroke=\"#e4e4e4\"/><text x=\"{left - 6}\" y=\"{Y(v) + 4:F1}\" text-anchor=\"end\">{Tick(v, yStep)}</text>"));
        svg.AppendLine(Inv($"<rect x=\"{left}\" y=\"{top}\" width=\"{width - left - right}\" height=\"{height - top - bottom}\" fill=\"none\" stroke=\"#444\"/>"));
        svg.AppendLine(Inv($"<text x=\"{(left + width - right) / 2}\" y=\"{height - 16}\" text-anchor=\"middle\">memory (MiB)</text>"));
        svg.AppendLine(Inv($"<text transform=\"translate(18 {(top + height - bottom) / 2}) rotate(-90)\" text-anchor=\"middle\">top-1 on {Esc(r.Options.SearchSplit)} (%)</text>"));

        svg.AppendLine(Inv($"<line x1=\"{left}\" y1=\"{Y(floor):F1}\" x2=\"{width - right}\" y2=\"{Y(floor):F1}\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>"));
        var front = ParetoFront(verified);
        svg.AppendLine($"<polyline fill=\"none\" stroke=\"#e08000\" stroke-width=\"2\" points=\"{string.Join(" ", front.Select(c => Inv($"{X(c.MiB):F1},{Y(c.Accuracy!.Value):F1}")))}\"/>");
        foreach (var c in verified)
        {
            string label = Esc($"{c.Setting} — {c.MiB:F3} MiB, {c.Accuracy:F2} %, drift {c.Drift:G3}");
            svg.AppendLine(c.Step == 0
                ? Inv($"<rect x=\"{X(c.MiB) - 5:F1}\" y=\"{Y(c.Accuracy!.Value) - 5:F1}\" width=\"10\" height=\"10\" fill=\"#222\"><title>fp32 — {label}</title></rect>")
                : c.Outcome == Aq4Outcome.Passed
                    ? Inv($"<circle cx=\"{X(c.MiB):F1}\" cy=\"{Y(c.Accuracy!.Value):F1}\" r=\"4\" fill=\"#2a6fdb\" fill-opacity=\"0.8\"><title>{label}</title></circle>")
                    : Inv($"<circle cx=\"{X(c.MiB):F1}\" cy=\"{Y(c.Accuracy!.Value):F1}\" r=\"4\" fill=\"none\" stroke=\"#d03030\" stroke-width=\"1.5\"><title>{label}</title></circle>"));
        }
        svg.AppendLine(Inv($"<circle cx=\"{X(r.Memory.MiB):F1}\" cy=\"{Y(r.Accuracy.Accuracy):F1}\" r=\"9\" fill=\"none\" stroke=\"#109040\" stroke-width=\"2.5\"/>"));

        double lx = width - right + 16, ly = top + 10;
        void Legend(string mark, string text)
        {
            svg.AppendLine(Inv($"<g transform=\"translate({lx} {ly})\">{mark}<text x=\"16\" y=\"4\">{Esc(text)}</text></g>"));
            ly += 20;
        }
        Legend("<rect x=\"-5\" y=\"-5\" width=\"10\" height=\"10\" fill=\"#222\"/>", "fp32");
        Legend("<circle r=\"4\" fill=\"#2a6fdb\"/>", "passed");
        Legend("<circle r=\"4\" fill=\"none\" stroke=\"#d03030\" stroke-width=\"1.5\"/>", "failed");
        Legend("<circle r=\"7\" fill=\"none\" stroke=\"#109040\" stroke-width=\"2.5\"/>", "chosen");
        Legend("<line x1=\"-7\" x2=\"7\" stroke=\"#e08000\" stroke-width=\"2\"/>", "Pareto front");
        Legend("<line x1=\"-7\" x2=\"7\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>", Inv($"fp32 − {r.Options.MaxDrop:G4} points"));
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    /// <summary>An axis range covering [lo, hi] on a 1-2-5 tick step, about six ticks.</summary>
    private static (double Lo, double Hi, double Step) Axis(double lo, double hi)
    {
        if (!(hi > lo)) (lo, hi) = (lo - Math.Max(0.5, Math.Abs(lo) * 0.05), hi + Math.Max(0.5, Math.Abs(hi) * 0.05));
        double raw = (hi - lo) / 6, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 5, 10 }.Select(m => m * magnitude).First(s => s >= raw);
        return (Math.Floor(lo / step) * step, Math.Ceiling(hi / step) * step, step);
    }

    private static string Tick(double v, double step) =>
        v.ToString(step >= 1 ? "F0" : $"F{Math.Min(6, (int)Math.Ceiling(-Math.Log10(step)))}", CultureInfo.InvariantCulture);

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
        _ => "not reached",
    };

    private static string F(double? v) => v is { } d && double.IsFinite(d) ? d.ToString("F2", CultureInfo.InvariantCulture) : "–";
    private static string G(double? v) => v is { } d && double.IsFinite(d) ? d.ToString("G4", CultureInfo.InvariantCulture) : "–";
    private static string Cell(string s) => s.Replace("|", "\\|");
    private static string Esc(string s) => WebUtility.HtmlEncode(s);
    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
