using Qsvit.IO;
using Qsvit.Quantization;
using static Qsvit.Reports.ComparisonTable;

namespace Qsvit.Reports;

/// <summary>
/// Writes a QSViT run as a report directory: report.md (read like an AIMET QuantAnalyzer report), report.json, the figures
/// sensitivity.svg (paper Fig. 7), guided.svg (Fig. 8) and memory-accuracy.svg, and comparison.json for method comparisons.
/// </summary>
public static partial class QsvitReport
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
                evaluations.Count, 0, evaluations.Sum(e => e.Seconds), r.Options.TolerancePoints, r.Cost.FullEquivalents).Made(input.Quantizer, input.Correction),
        ];
    }
}
