using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using static Qsvit.Reports.ComparisonTable;

namespace Qsvit.Reports;

/// <summary>The report's figures: paper Fig. 7 (sensitivity), Fig. 8 (guided steps) and memory vs accuracy.</summary>
public static partial class QsvitReport
{
    /// <summary>Paper Fig. 7: accuracy vs width per unit, one panel per stage, with the fp32 and tolerance lines.</summary>
    public static string SensitivityChart(SensitivityTable t)
    {
        var categories = t.Bits.Select(b => b == Quantizer.FullPrecision ? "32 (fp32)" : b.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        // One y range for every panel, fitted to every point (a unit may beat fp32) and both rules.
        double lowest = Math.Min(t.Cells.Min(c => c.Accuracy.Accuracy), t.Threshold);
        double highest = Math.Max(t.Cells.Max(c => c.Accuracy.Accuracy), t.Fp32.Accuracy);
        double yMin = Math.Max(0, Math.Floor((lowest - 1) / 5) * 5), yMax = Math.Min(100, Math.Ceiling((highest + 1) / 5) * 5);
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
        // Short tick labels (the move), the whole setting as each point's tooltip: full settings slanted side by side overlap.
        var labels = new List<string> { "bSettingH" };
        labels.AddRange(g.Steps.Select(s => $"{s.Unit}→{s.Bits}"));
        ChartPoint Point(GuidedStep s) => new(s.Index + 1, s.Accuracy.Accuracy, Tooltip: $"{s.Unit}→{s.Bits}: {s.Setting}, {F(s.Accuracy.Accuracy, 2)} %");
        var all = new List<ChartPoint> { new(0, g.Start.Accuracy, Tooltip: $"bSettingH {r.BSettingH}, {F(g.Start.Accuracy, 2)} %") };
        all.AddRange(g.Steps.Select(Point));
        ChartSeries Points(string name, string color, IEnumerable<GuidedStep> steps) =>
            new(name, steps.Select(Point).ToArray()) { Style = SeriesStyle.Scatter, Color = color, MarkerRadius = 4.5 };
        var threshold = r.Sensitivity.Threshold;
        return new SvgChart
        {
            Title = $"Guided quantization (Alg. 3): bSettingH → bSettingG {r.BSettingG}",
            XLabel = "step: unit → width (each point's tooltip gives the setting)",
            YLabel = "top-1 (%)",
            XCategories = labels,
            RotateXLabels = true,
            Width = 720,
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
                .. threshold > 0 ? [new ChartRule($"tolerance {F(threshold, 2)} %", threshold, ToleranceColor)] : Array.Empty<ChartRule>(),
            ],
        }.ToSvg();
    }

    /// <summary>Memory vs search accuracy of every whole-network setting evaluated, with the Pareto front.</summary>
    public static string MemoryAccuracyChart(QsvitResult r, Sdtv2Layout layout)
    {
        double MiB(QuantizationSetting s) => MemoryFootprint.Compute(layout, s).MiB;
        var steps = r.Guided.Steps.Select(s => new ChartPoint(MiB(s.Setting), s.Accuracy.Accuracy)).ToArray();
        var named = new (string Name, QuantizationSetting Setting, AccuracyRecord Accuracy, string Color)[]
        {
            ("fp32", r.Fp32, r.Search.Fp32, Fp32Color),
            ("bSettingH", r.BSettingH, r.BSettingHAccuracy, PassColor),
            ("bSettingL", r.BSettingL, r.BSettingLAccuracy, "#f28e2b"),
            ("bSettingG", r.BSettingG, r.Search.Quantized, KeptColor),
        };
        // Settings at the same point (bSettingG is often bSettingL) are one marker named by all of them, in the last one's
        // color: drawn apart, the later marker hides the earlier and their labels print over each other.
        var markers = named.GroupBy(n => (MiB(n.Setting), n.Accuracy.Accuracy)).Select(group =>
        {
            string name = string.Join(" = ", group.Select(n => n.Name));
            return new ChartSeries(name, [new ChartPoint(group.Key.Item1, group.Key.Item2, name)])
            {
                Style = SeriesStyle.Scatter, Color = group.Last().Color, MarkerRadius = 5, ShowLabels = true,
            };
        });
        return new SvgChart
        {
            Title = "Memory vs accuracy of the evaluated settings",
            XLabel = "memory (MiB, paper counting)",
            YLabel = $"top-1 on {r.Options.SearchSplit} (%)",
            HighlightParetoFront = true,
            Series =
            [
                new ChartSeries("guided steps", steps) { Style = SeriesStyle.Scatter, Color = "#bab0ac" },
                .. markers,
            ],
            // A threshold below 0 % (a tolerance wider than fp32's accuracy) would only stretch the axis.
            Rules = r.Sensitivity.Threshold > 0 ? [new ChartRule("tolerance", r.Sensitivity.Threshold, ToleranceColor)] : [],
        }.ToSvg();
    }
}
