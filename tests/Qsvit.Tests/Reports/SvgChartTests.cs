using System.Xml.Linq;
using Qsvit.Reports;

namespace Qsvit.Tests.Reports;

public class SvgChartTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static XDocument Parse(string svg)
    {
        var doc = XDocument.Parse(svg);
        Assert.Equal(Svg + "svg", doc.Root!.Name);
        return doc;
    }

    private static string[] Texts(XDocument doc) => doc.Descendants(Svg + "text").Select(t => t.Value).ToArray();

    [Fact]
    public void ALineChartIsWellFormedSvgWithAxesLegendAndRules()
    {
        var chart = new SvgChart
        {
            Title = "Accuracy <vs> bits & \"more\"",
            XLabel = "bits",
            YLabel = "top-1 (%)",
            Series =
            [
                new ChartSeries("DS_S1_B1", [new(32, 90), new(16, 89.5), new(8, 88), new(4, 61)]),
                new ChartSeries("CONV_S1_B1\u0001", [new(32, 90), new(16, 90), new(8, 86), new(4, double.NaN)]) { Dashed = true },
            ],
            Rules = [new ChartRule("fp32", 90), new ChartRule("tolerance", 85, "#e15759")],
        };
        var doc = Parse(chart.ToSvg());
        var texts = Texts(doc);
        Assert.Contains("Accuracy <vs> bits & \"more\"", texts);      // escaped on the way out, intact on the way in
        Assert.Contains("DS_S1_B1", texts);
        Assert.Contains("CONV_S1_B1", texts);                          // a control character is dropped, not written
        Assert.Contains("fp32", texts);
        Assert.Contains("tolerance", texts);
        Assert.Contains("top-1 (%)", texts);
        Assert.Contains("60", texts);                                  // nice y ticks cover 61..90
        Assert.Contains("90", texts);
        Assert.Equal(2, doc.Descendants(Svg + "polyline").Count());
        Assert.Equal(7, doc.Descendants(Svg + "circle").Count(c => (string?)c.Attribute("r") == "3.5") - 2); // 7 finite points + 2 legend markers
        // The tolerance rule: once across the plot, once as its legend sample.
        Assert.Equal(2, doc.Descendants(Svg + "line").Count(l => (string?)l.Attribute("stroke") == "#e15759" && l.Attribute("stroke-dasharray") is not null));
    }

    [Fact]
    public void CategoricalRotatedLabelsAndAnEmptyChartStillParse()
    {
        var labels = Enumerable.Range(0, 30).Select(i => $"CONV_S2_B1→8: 8,4,8,8|8,8,{i}|4,32|4,32").ToArray();
        var doc = Parse(new SvgChart
        {
            XCategories = labels,
            RotateXLabels = true,
            Series = [new ChartSeries("acc", labels.Select((_, i) => new ChartPoint(i, 80 + i % 5)).ToArray())],
        }.ToSvg());
        Assert.Equal(30, Texts(doc).Count(t => t.StartsWith("CONV_S2_B1→8", StringComparison.Ordinal)));
        Assert.All(doc.Descendants(Svg + "text").Where(t => t.Value.StartsWith("CONV", StringComparison.Ordinal)),
            t => Assert.StartsWith("rotate(-45", (string)t.Attribute("transform")!));

        Parse(new SvgChart().ToSvg());
        Parse(new SvgChart { Series = [new ChartSeries("one", [new(1, 1)])] }.ToSvg());
    }

    [Fact]
    public void ParetoFrontKeepsOnlyUndominatedPoints()
    {
        ChartPoint[] points = [new(1, 80), new(2, 85), new(2, 84), new(3, 85), new(4, 90), new(0.5, 70), new(5, 89), new(double.NaN, 99)];
        Assert.Equal([new(0.5, 70), new(1, 80), new(2, 85), new(4, 90)], SvgChart.ParetoFront(points));

        var doc = Parse(new SvgChart
        {
            HighlightParetoFront = true,
            Series = [new ChartSeries("greedy", points) { Style = SeriesStyle.Scatter, ShowLabels = true }],
        }.ToSvg());
        Assert.Equal(4, doc.Descendants(Svg + "circle").Count(c => (string?)c.Attribute("r") == "6.5"));
        Assert.Contains("Pareto front", Texts(doc));
        Assert.DoesNotContain(doc.Descendants(Svg + "polyline"), p => p.Attribute("stroke-dasharray") is null); // scatter: no data line
    }

    [Fact]
    public void AGridPlacesEveryPanel()
    {
        var panels = Enumerable.Range(1, 4).Select(i => new SvgChart { Title = $"Stage {i}", Series = [new ChartSeries($"u{i}", [new(0, i), new(1, i + 1)])] }).ToArray();
        var doc = Parse(SvgChart.Grid("Sensitivity", panels, columns: 2));
        var texts = Texts(doc);
        Assert.Contains("Sensitivity", texts);
        Assert.All(Enumerable.Range(1, 4), i => Assert.Contains($"Stage {i}", texts));
        Assert.Equal(4, doc.Root!.Elements(Svg + "g").Count(g => ((string?)g.Attribute("transform"))?.StartsWith("translate(", StringComparison.Ordinal) == true));
        Assert.Equal(4, doc.Descendants(Svg + "clipPath").Select(c => (string)c.Attribute("id")!).Distinct().Count());
    }
}
