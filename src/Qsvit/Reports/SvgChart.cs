using System.Globalization;

namespace Qsvit.Reports;

/// <summary>
/// A data point; <see cref="Label"/> is drawn beside it when its series has <see cref="ChartSeries.ShowLabels"/>, and
/// <see cref="Tooltip"/> is shown by SVG viewers when pointing at its marker.
/// </summary>
public readonly record struct ChartPoint(double X, double Y, string? Label = null, string? Tooltip = null);

public enum SeriesStyle { LineAndMarkers, Line, Scatter }

/// <summary>A named series of points, drawn in the given order. Without a <see cref="Color"/> it takes the next palette colour.</summary>
public sealed record ChartSeries(string Name, IReadOnlyList<ChartPoint> Points)
{
    public SeriesStyle Style { get; init; } = SeriesStyle.LineAndMarkers;
    /// <summary>Any SVG colour, e.g. "#e15759".</summary>
    public string? Color { get; init; }
    public bool Dashed { get; init; }
    public bool ShowLabels { get; init; }
    public double MarkerRadius { get; init; } = 3.5;
}

/// <summary>A horizontal reference line across the plot (a baseline, a threshold), listed in the legend.</summary>
public sealed record ChartRule(string Label, double Y, string Color = "#555555", bool Dashed = true);

/// <summary>
/// A line or scatter chart rendered to a self-contained SVG document with axes, nice ticks, grid lines, axis labels, a title and
/// a legend to the right of the plot. Numeric x axes by default; give <see cref="XCategories"/> for a categorical axis (the
/// points' X are then category indices 0, 1, 2…). With <see cref="HighlightParetoFront"/> the points no other point beats
/// (lower or equal X and higher or equal Y, one strictly), e.g. memory vs accuracy, are ringed and joined.
/// <code>
/// var svg = new SvgChart
/// {
///     Title = "Memory vs accuracy", XLabel = "memory (MiB)", YLabel = "top-1 (%)", HighlightParetoFront = true,
///     Series = [new ChartSeries("greedy", points) { Style = SeriesStyle.Scatter }],
///     Rules = [new ChartRule("fp32", 93.1)],
/// }.ToSvg();
/// </code>
/// </summary>
public sealed record SvgChart
{
    public static readonly IReadOnlyList<string> Palette =
        ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

    public string Title { get; init; } = "";
    public string XLabel { get; init; } = "";
    public string YLabel { get; init; } = "";
    public IReadOnlyList<ChartSeries> Series { get; init; } = [];
    public IReadOnlyList<ChartRule> Rules { get; init; } = [];
    /// <summary>Tick labels of a categorical x axis, at x = 0, 1, 2….</summary>
    public IReadOnlyList<string>? XCategories { get; init; }
    /// <summary>Slant the x tick labels (for long category labels).</summary>
    public bool RotateXLabels { get; init; }
    public bool HighlightParetoFront { get; init; }
    public bool ShowLegend { get; init; } = true;
    /// <summary>Requested size in pixels; the chart grows where its labels need more room.</summary>
    public double Width { get; init; } = 640;
    public double Height { get; init; } = 400;
    /// <summary>Axis limits; unset limits follow the data (and the rules, for y).</summary>
    public double? XMin { get; init; }
    public double? XMax { get; init; }
    public double? YMin { get; init; }
    public double? YMax { get; init; }

    private const double CharWidth = 0.6; // of the font size: a fair average for Helvetica/Arial
    private const double MinSlantedTickSpacing = 22;

    /// <summary>The whole chart as an SVG document.</summary>
    public string ToSvg()
    {
        var frame = Measure();
        var w = new SvgWriter(frame.Width, frame.Height);
        Render(w, frame, "c0");
        return w.ToString();
    }

    /// <summary>Several charts in one SVG document, row by row, <paramref name="columns"/> per row, under a common title.</summary>
    public static string Grid(string title, IReadOnlyList<SvgChart> panels, int columns = 2)
    {
        if (panels.Count == 0) throw new ArgumentException("a grid needs at least one chart", nameof(panels));
        columns = Math.Clamp(columns, 1, panels.Count);
        var frames = panels.Select(p => p.Measure()).ToArray();
        double cellW = frames.Max(f => f.Width), cellH = frames.Max(f => f.Height);
        double top = string.IsNullOrEmpty(title) ? 0 : 30;
        int rows = (panels.Count + columns - 1) / columns;
        var w = new SvgWriter(cellW * columns, top + cellH * rows);
        if (top > 0) w.Text(cellW * columns / 2, 20, title, 15, "middle", bold: true);
        for (int i = 0; i < panels.Count; i++)
        {
            var frame = frames[i] with { Width = cellW, Height = cellH };
            w.OpenGroup($"translate({SvgWriter.N(i % columns * cellW)},{SvgWriter.N(top + i / columns * cellH)})");
            panels[i].Render(w, frame, $"c{i}");
            w.CloseGroup();
        }
        return w.ToString();
    }

    /// <summary>The points no other point dominates when lower X and higher Y are better, by increasing X.</summary>
    public static IReadOnlyList<ChartPoint> ParetoFront(IEnumerable<ChartPoint> points) => ParetoFront(points, p => p.X, p => p.Y);

    /// <summary>
    /// The items no other item dominates when lower <paramref name="x"/> and higher <paramref name="y"/> are better (e.g. memory
    /// and accuracy), by increasing x; of equal points the first is kept. Items with a non-finite coordinate are left out.
    /// </summary>
    public static IReadOnlyList<T> ParetoFront<T>(IEnumerable<T> items, Func<T, double> x, Func<T, double> y)
    {
        var front = new List<T>();
        double best = double.NegativeInfinity;
        foreach (var item in items.Where(i => double.IsFinite(x(i)) && double.IsFinite(y(i))).OrderBy(x).ThenByDescending(y))
        {
            if (y(item) <= best) continue;
            front.Add(item);
            best = y(item);
        }
        return front;
    }

    private sealed record Frame(double Width, double Height, double Left, double Top, double Right, double Bottom, double LegendWidth);

    private IEnumerable<ChartPoint> AllPoints => Series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y));

    private IReadOnlyList<(string Label, string Color, bool Dashed, bool Line, bool Marker)> LegendEntries()
    {
        var entries = Series.Where(s => s.Name.Length > 0)
            .Select(s => (s.Name, SeriesColor(s), s.Dashed, s.Style != SeriesStyle.Scatter, s.Style != SeriesStyle.Line))
            .Concat(Rules.Select(r => (r.Label, r.Color, r.Dashed, true, false)))
            .ToList();
        if (HighlightParetoFront) entries.Add(("Pareto front", "#222222", true, true, false));
        return entries;
    }

    private Frame Measure()
    {
        double legend = ShowLegend && LegendEntries() is { Count: > 0 } entries ? 40 + entries.Max(e => e.Label.Length) * 11 * CharWidth : 0;
        double top = string.IsNullOrEmpty(Title) ? 14 : 34;
        // Slanted labels hang down and to the left of their tick by their length times cos 45°.
        double slant = RotateXLabels && XCategories is { Count: > 0 } cats ? cats.Max(c => c.Length) * 10 * CharWidth * Math.Sqrt(0.5) : 0;
        double bottom = (RotateXLabels ? 14 + slant : 22) + (string.IsNullOrEmpty(XLabel) ? 8 : 26);
        double left = Math.Max(64, slant), right = 14 + legend;
        // Slanted labels need about 1.5 font sizes between ticks not to touch (their spacing across the slant is cos 45° of it).
        double ticks = RotateXLabels && XCategories is { Count: > 0 } c ? c.Count * MinSlantedTickSpacing : 0;
        double width = Math.Max(Width, left + right + Math.Max(120, ticks)), height = Math.Max(Height, top + bottom + 180);
        return new Frame(width, height, left, top, right, bottom, legend);
    }

    private string SeriesColor(ChartSeries s)
    {
        if (s.Color is not null) return s.Color;
        int i = Series.Where(x => x.Color is null).ToList().IndexOf(s);
        return Palette[Math.Max(0, i) % Palette.Count];
    }

    private void Render(SvgWriter w, Frame f, string id)
    {
        double px0 = f.Left, px1 = f.Width - f.Right, py0 = f.Top, py1 = f.Height - f.Bottom;
        var points = AllPoints.ToArray();

        // X domain: categories sit at integer positions, numeric data gets nice ticks.
        double xLo, xHi;
        IReadOnlyList<(double Value, string Label)> xTicks;
        if (XCategories is { } cats)
        {
            xLo = XMin ?? -0.5;
            xHi = XMax ?? Math.Max(cats.Count, 1) - 0.5;
            xTicks = cats.Select((c, i) => ((double)i, c)).ToArray();
        }
        else
        {
            (xLo, xHi, xTicks) = NiceAxis(points.Select(p => p.X), XMin, XMax);
        }
        var (yLo, yHi, yTicks) = NiceAxis(points.Select(p => p.Y).Concat(Rules.Select(r => r.Y)), YMin, YMax);
        double X(double v) => px0 + (v - xLo) / (xHi - xLo) * (px1 - px0);
        double Y(double v) => py1 - (v - yLo) / (yHi - yLo) * (py1 - py0);

        if (!string.IsNullOrEmpty(Title)) w.Text((px0 + px1) / 2, 22, Title, 13, "middle", bold: true);

        // Grid and ticks.
        foreach (var (v, label) in yTicks)
        {
            w.Line(px0, Y(v), px1, Y(v), "#e6e6e6");
            w.Line(px0 - 4, Y(v), px0, Y(v), "#444444");
            w.Text(px0 - 7, Y(v) + 4, label, 10, "end");
        }
        foreach (var (v, label) in xTicks)
        {
            if (v < xLo - 1e-9 || v > xHi + 1e-9) continue;
            if (XCategories is null) w.Line(X(v), py0, X(v), py1, "#f0f0f0");
            w.Line(X(v), py1, X(v), py1 + 4, "#444444");
            if (RotateXLabels) w.Text(X(v) + 3, py1 + 12, label, 10, "end", rotate: -45);
            else w.Text(X(v), py1 + 16, label, 10, "middle");
        }
        w.Rect(px0, py0, px1 - px0, py1 - py0, "none", "#444444");
        if (!string.IsNullOrEmpty(XLabel)) w.Text((px0 + px1) / 2, f.Height - 8, XLabel, 11, "middle");
        if (!string.IsNullOrEmpty(YLabel)) w.Text(Math.Max(16, px0 - 46), (py0 + py1) / 2, YLabel, 11, "middle", rotate: -90);

        foreach (var r in Rules.Where(r => r.Y >= yLo && r.Y <= yHi)) w.Line(px0, Y(r.Y), px1, Y(r.Y), r.Color, 1.2, r.Dashed ? "6 4" : null);
        // Data, clipped to the plot widened by a marker, so points on the edge (100 %) stay whole.
        const double Margin = 8;
        w.ClipRect(id, px0 - Margin, py0 - Margin, px1 - px0 + 2 * Margin, py1 - py0 + 2 * Margin);
        w.OpenGroup(clipId: id);
        foreach (var s in Series)
        {
            string color = SeriesColor(s);
            var valid = s.Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToArray();
            if (s.Style != SeriesStyle.Scatter) w.Polyline(valid.Select(p => (X(p.X), Y(p.Y))), color, 1.8, s.Dashed ? "5 3" : null);
            if (s.Style != SeriesStyle.Line)
                foreach (var p in valid) w.Circle(X(p.X), Y(p.Y), s.MarkerRadius, color, "#ffffff", 0.8, p.Tooltip);
        }
        if (HighlightParetoFront)
        {
            var front = ParetoFront(points);
            w.Polyline(front.Select(p => (X(p.X), Y(p.Y))), "#222222", 1, "3 3");
            foreach (var p in front) w.Circle(X(p.X), Y(p.Y), 6.5, "none", "#222222", 1.2);
        }
        w.CloseGroup();
        foreach (var s in Series.Where(s => s.ShowLabels))
            foreach (var p in s.Points.Where(p => p.Label is not null && double.IsFinite(p.X) && double.IsFinite(p.Y)))
                w.Text(X(p.X) + 6, Y(p.Y) - 6, p.Label!, 9, fill: "#333333");

        if (f.LegendWidth > 0)
        {
            double lx = px1 + 14, ly = py0 + 8;
            foreach (var (label, color, dashed, line, marker) in LegendEntries())
            {
                if (line) w.Line(lx, ly, lx + 22, ly, color, 1.8, dashed ? "5 3" : null);
                if (marker) w.Circle(lx + 11, ly, 3.5, color, "#ffffff", 0.8);
                w.Text(lx + 28, ly + 4, label, 11);
                ly += 17;
            }
        }
    }

    /// <summary>A padded domain on 1-2-5 ticks covering the values (and the fixed limits, which win).</summary>
    private static (double Lo, double Hi, IReadOnlyList<(double, string)> Ticks) NiceAxis(IEnumerable<double> values, double? min, double? max)
    {
        var v = values.Where(double.IsFinite).ToArray();
        double lo = min ?? (v.Length > 0 ? v.Min() : 0), hi = max ?? (v.Length > 0 ? v.Max() : 1);
        if (hi < lo) (lo, hi) = (hi, lo);
        if (hi - lo < 1e-12) { lo -= 1; hi += 1; }
        double step = NiceStep((hi - lo) / 5);
        if (min is null) lo = Math.Floor(lo / step - 0.05) * step;
        if (max is null) hi = Math.Ceiling(hi / step + 0.05) * step;
        int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9));
        var ticks = new List<(double, string)>();
        double first = Math.Ceiling(lo / step - 1e-9);
        for (int i = 0; (first + i) * step <= hi + step * 1e-6; i++)
        {
            double t = (first + i) * step;
            double shown = Math.Abs(t) < step * 1e-6 ? 0 : Math.Round(t, decimals); // no "-0.0"
            ticks.Add((t, shown.ToString("F" + decimals, CultureInfo.InvariantCulture)));
        }
        return (lo, hi, ticks);
    }

    private static double NiceStep(double raw)
    {
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double n = raw / magnitude;
        return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * magnitude;
    }
}
