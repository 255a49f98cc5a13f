using System.Globalization;
using System.Text;

namespace Qsvit.Reports;

/// <summary>
/// A minimal SVG element writer: the handful of shapes the charts need, numbers in the invariant culture, text escaped
/// for XML (characters XML 1.0 forbids are dropped), so the output always parses.
/// </summary>
internal sealed class SvgWriter
{
    private readonly StringBuilder _sb = new();

    public SvgWriter(double width, double height)
    {
        _sb.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
           .Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{N(width)}\" height=\"{N(height)}\" viewBox=\"0 0 {N(width)} {N(height)}\" ")
           .Append("font-family=\"Helvetica, Arial, sans-serif\" font-size=\"11\">\n")
           .Append($"<rect x=\"0\" y=\"0\" width=\"{N(width)}\" height=\"{N(height)}\" fill=\"#ffffff\"/>\n");
    }

    public static string N(double v) => Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);

    public static string Escape(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            switch (c)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '"': sb.Append("&quot;"); break;
                case '\t' or '\n' or '\r': sb.Append(' '); break;
                default:
                    if (c >= 0x20 && c != '\uFFFE' && c != '\uFFFF') sb.Append(c);
                    break;
            }
        }
        return sb.ToString();
    }

    public void OpenGroup(string? transform = null, string? clipId = null)
    {
        _sb.Append("<g");
        if (transform is not null) _sb.Append($" transform=\"{transform}\"");
        if (clipId is not null) _sb.Append($" clip-path=\"url(#{clipId})\"");
        _sb.Append(">\n");
    }

    public void CloseGroup() => _sb.Append("</g>\n");

    public void ClipRect(string id, double x, double y, double width, double height) =>
        _sb.Append($"<defs><clipPath id=\"{id}\"><rect x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(width)}\" height=\"{N(height)}\"/></clipPath></defs>\n");

    public void Rect(double x, double y, double width, double height, string fill, string? stroke = null) =>
        _sb.Append($"<rect x=\"{N(x)}\" y=\"{N(y)}\" width=\"{N(width)}\" height=\"{N(height)}\" fill=\"{fill}\"")
           .Append(stroke is null ? "" : $" stroke=\"{stroke}\"").Append("/>\n");

    public void Line(double x1, double y1, double x2, double y2, string stroke, double width = 1, string? dash = null) =>
        _sb.Append($"<line x1=\"{N(x1)}\" y1=\"{N(y1)}\" x2=\"{N(x2)}\" y2=\"{N(y2)}\" stroke=\"{stroke}\" stroke-width=\"{N(width)}\"")
           .Append(dash is null ? "" : $" stroke-dasharray=\"{dash}\"").Append("/>\n");

    public void Polyline(IEnumerable<(double X, double Y)> points, string stroke, double width = 1.5, string? dash = null)
    {
        var list = string.Join(" ", points.Select(p => $"{N(p.X)},{N(p.Y)}"));
        if (list.Length == 0) return;
        _sb.Append($"<polyline points=\"{list}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"{N(width)}\" stroke-linejoin=\"round\"")
           .Append(dash is null ? "" : $" stroke-dasharray=\"{dash}\"").Append("/>\n");
    }

    /// <param name="title">Shown by viewers as a tooltip on the marker.</param>
    public void Circle(double cx, double cy, double r, string fill, string? stroke = null, double strokeWidth = 1, string? title = null) =>
        _sb.Append($"<circle cx=\"{N(cx)}\" cy=\"{N(cy)}\" r=\"{N(r)}\" fill=\"{fill}\"")
           .Append(stroke is null ? "" : $" stroke=\"{stroke}\" stroke-width=\"{N(strokeWidth)}\"")
           .Append(title is null ? "/>\n" : $"><title>{Escape(title)}</title></circle>\n");

    /// <param name="anchor">start, middle or end.</param>
    /// <param name="rotate">Degrees about (x, y).</param>
    public void Text(double x, double y, string text, double size = 11, string anchor = "start", double? rotate = null,
        bool bold = false, string fill = "#222222")
    {
        _sb.Append($"<text x=\"{N(x)}\" y=\"{N(y)}\" font-size=\"{N(size)}\" text-anchor=\"{anchor}\" fill=\"{fill}\"");
        if (bold) _sb.Append(" font-weight=\"bold\"");
        if (rotate is { } r) _sb.Append($" transform=\"rotate({N(r)} {N(x)} {N(y)})\"");
        _sb.Append('>').Append(Escape(text)).Append("</text>\n");
    }

    public override string ToString() => _sb + "</svg>\n";
}
