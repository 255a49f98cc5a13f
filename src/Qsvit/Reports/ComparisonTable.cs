using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.IO;

namespace Qsvit.Reports;

/// <summary>
/// One search method's outcome, for comparing methods (QSViT, AQ4SViT greedy/beam…) side by side. Plain values only, so
/// rows written by one run can be read back and merged with another's. The fp32 baseline is a row too, with no search cost.
/// </summary>
/// <param name="DifferenceVsFp32">Top-1 minus fp32's on the same images (<paramref name="DifferenceSplit"/>), paired 95 % interval.</param>
/// <param name="FullEvaluations">Distinct settings the search fully evaluated on the search split (fp32 included); the
/// held-out check of the result is not search cost and is not counted.</param>
/// <param name="DriftEvaluations">Membrane-drift proxy evaluations (AQ4SViT's gate); 0 for QSViT.</param>
/// <param name="SearchSeconds">Recorded time of those evaluations (full and drift), replayed ones counted as when they ran,
/// so interrupted, resumed and shared runs compare with uninterrupted ones.</param>
/// <param name="AllowedDrop">The accuracy constraint the method searched under: accepted top-1 drop below fp32 on the
/// search split, in points (QSViT's tolerance, AQ4SViT's max drop).</param>
/// <param name="FullEquivalents">Search cost in full evaluations: drift measurements counted at their time relative to a
/// full evaluation (equal to <paramref name="FullEvaluations"/> for a method without drift).</param>
public sealed record ComparisonRow(string Method, string Setting, double MemoryMiB, double SavingPercent,
    Interval? SearchAccuracy, Interval? TestAccuracy, Interval? DifferenceVsFp32, string? DifferenceSplit,
    int FullEvaluations, int DriftEvaluations, double SearchSeconds, double? AllowedDrop = null, double? FullEquivalents = null)
{
    public const string Fp32Method = "fp32";

    /// <summary>The weight quantizer (<see cref="QuantizerSpec"/>'s text); null for fp32 and rows written before it was recorded.</summary>
    public string? Quantizer { get; init; }
    /// <summary>Corrections after quantization (<see cref="CorrectionOptions"/>'s text, "none" for plain quantizers); null as above.</summary>
    public string? Correction { get; init; }

    /// <summary>This row as the run made it: with its quantizer and corrections (a variant of the same method and setting).</summary>
    public ComparisonRow Made(QuantizerSpec quantizer, CorrectionOptions correction) =>
        IsBaseline ? this : this with { Quantizer = quantizer.ToString(), Correction = correction.ToString() };

    /// <summary>"paper", "paper + bias,bn"; "—" where unknown or fp32.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string QuantizerText => Quantizer is null ? "—" : Correction is null or "none" ? Quantizer : $"{Quantizer} + {Correction}";

    /// <summary>The fp32 baseline row: nothing was searched.</summary>
    public bool IsBaseline => Method == Fp32Method;

    /// <summary>
    /// A row for <paramref name="setting"/>: memory as the paper counts it on <paramref name="layout"/>, accuracies where given,
    /// and the paired difference from fp32 on the test split when both are given, else on the search split.
    /// </summary>
    public static ComparisonRow Create(string method, QuantizationSetting setting, Sdtv2Layout layout,
        AccuracyRecord? search, AccuracyRecord? test, AccuracyRecord? fp32Search, AccuracyRecord? fp32Test,
        int fullEvaluations, int driftEvaluations, double searchSeconds, double? allowedDrop = null, double? fullEquivalents = null)
    {
        var memory = MemoryFootprint.Compute(layout, setting);
        var (difference, split) = test is not null && fp32Test is not null ? (test.DifferenceFrom(fp32Test), test.Split)
            : search is not null && fp32Search is not null ? (search.DifferenceFrom(fp32Search), search.Split)
            : ((Interval?)null, (string?)null);
        return new ComparisonRow(method, setting.ToString(), memory.MiB, memory.SavingPercent, search?.Top1, test?.Top1,
            difference, split, fullEvaluations, driftEvaluations, searchSeconds, allowedDrop, fullEquivalents);
    }

    /// <summary>
    /// The fp32 row: its accuracies on the search and (when evaluated) test split, no difference from itself, no cost. Its
    /// setting is written at block granularity whatever granularity the method searched, so every run's fp32 row merges.
    /// </summary>
    public static ComparisonRow Baseline(Sdtv2Layout layout, AccuracyRecord search, AccuracyRecord? test) =>
        Create(Fp32Method, QuantizationSetting.Uniform(Quantization.Quantizer.FullPrecision), layout, search, test, null, null, 0, 0, 0);
}

/// <summary>Writes comparison rows as a markdown table and as JSON, and reads the JSON back (to merge runs).</summary>
public static class ComparisonTable
{
    public const string FileName = "comparison.json";

    // camelCase, unlike TextFiles.Json: --compare reads comparison.json files written by earlier versions.
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The rows as a markdown table, followed by what its cost columns mean.</summary>
    public static string ToMarkdown(IReadOnlyList<ComparisonRow> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| method | quantizer | setting | memory (MiB) | saving | allowed drop | search top-1 % [95 % CI] | test top-1 % [95 % CI] | " +
                      "Δ top-1 vs fp32 [paired 95 % CI] | full evals | drift evals | full-eval equivalents | search time |");
        sb.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            string Cost(string text) => r.IsBaseline ? "—" : text;
            sb.AppendLine($"| {r.Method} | {(r.Quantizer is null ? "—" : Code(r.QuantizerText))} | {Code(r.Setting)} | {F(r.MemoryMiB, 3)} | {F(r.SavingPercent, 1)} % | " +
                          $"{(r.AllowedDrop is { } d ? F(d, 2) : "—")} | {Acc(r.SearchAccuracy)} | {Acc(r.TestAccuracy)} | " +
                          $"{Diff(r.DifferenceVsFp32, r.DifferenceSplit)} | {Cost(r.FullEvaluations.ToString(CultureInfo.InvariantCulture))} | " +
                          $"{Cost(r.DriftEvaluations.ToString(CultureInfo.InvariantCulture))} | " +
                          $"{Cost(r.FullEquivalents is { } e && double.IsFinite(e) ? F(e, 1) : "—")} | {Cost(Duration(r.SearchSeconds))} |");
        }
        sb.AppendLine();
        sb.AppendLine("Quantizer: the weight quantizer, with the corrections after quantization that every candidate and the result got " +
                      "(`+ bias`: bias correction, `+ bn`: BatchNorm re-estimation, on calibration images of the search split). " +
                      "Allowed drop: the accuracy constraint searched under, in top-1 points below fp32 on the search split. " +
                      "Full evals: distinct settings the search evaluated on the whole search split (fp32 included; the held-out test " +
                      "check is not counted). Full-eval equivalents add the drift measurements at their time relative to a full evaluation, " +
                      "and the corrections' calibration passes in images. " +
                      "Search time: the recorded time of those evaluations, replayed ones counted as when they ran.");
        return sb.ToString();
    }

    public static string ToJson(IReadOnlyList<ComparisonRow> rows) => JsonSerializer.Serialize(rows, Options);

    public static void Write(string path, IReadOnlyList<ComparisonRow> rows) => TextFiles.WriteAtomically(path, ToJson(rows));

    /// <summary>Rows from a comparison.json, or from the one inside a report directory.</summary>
    public static IReadOnlyList<ComparisonRow> Read(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file)) throw new QsvitException($"no comparison rows at '{path}' (expected {FileName} or a report directory holding one)");
        try
        {
            return JsonSerializer.Deserialize<ComparisonRow[]>(File.ReadAllText(file), Options)
                   ?? throw new QsvitException($"{file} holds no comparison rows");
        }
        catch (JsonException e) { throw new QsvitException($"{file} is not a comparison table: {e.Message}", e); }
    }

    /// <summary>
    /// Rows of several runs, each (method, quantizer, corrections, setting) once (the first occurrence wins: fp32 rows repeat
    /// across runs), the fp32 baseline first, then by method name and quantizer (plain before corrected), so that the table
    /// does not depend on which run merged the others.
    /// </summary>
    public static IReadOnlyList<ComparisonRow> Merge(IEnumerable<ComparisonRow> rows) =>
        rows.DistinctBy(r => (r.Method, r.Setting, r.Quantizer, r.Correction)).OrderBy(r => r.IsBaseline ? 0 : 1).ThenBy(r => r.Method, StringComparer.Ordinal)
            .ThenBy(r => r.Quantizer ?? "", StringComparer.Ordinal).ThenBy(r => r.Correction is null or "none" ? "" : r.Correction, StringComparer.Ordinal).ToArray();

    /// <summary>A code span for a markdown table cell: GFM splits cells at '|' even inside code spans unless escaped.</summary>
    internal static string Code(string text) => "`" + text.Replace("|", "\\|", StringComparison.Ordinal) + "`";

    internal static string F(double v, int decimals)
    {
        double r = Math.Round(v, decimals);
        return (r == 0 ? 0 : r).ToString("F" + decimals, CultureInfo.InvariantCulture); // never "-0.00"
    }

    internal static string Acc(Interval? i) => i is { } v ? $"{F(v.Value, 2)} [{F(v.Low, 2)}, {F(v.High, 2)}]" : "—";

    internal static string Diff(Interval? i, string? split = null) =>
        i is { } v ? $"{Signed(v.Value)} [{Signed(v.Low)}, {Signed(v.High)}]{(split is null ? "" : $" ({split})")}" : "—";

    internal static string Signed(double v) => (v > 0 ? "+" : "") + F(v, 2);

    internal static string Duration(double seconds) =>
        seconds < 60 ? $"{F(seconds, 1)} s" : seconds < 3600 ? $"{F(seconds / 60, 1)} min" : $"{F(seconds / 3600, 2)} h";
}
