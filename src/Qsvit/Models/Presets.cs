namespace Qsvit.Models;

/// <summary>The official SDTv2 model sizes (classification/models.py), all 224x224, 1000 classes, 8 heads.</summary>
public static class Presets
{
    public static readonly IReadOnlyDictionary<string, int[]> Widths = new Dictionary<string, int[]>(StringComparer.OrdinalIgnoreCase)
    {
        ["metaspikformer_8_384"] = [96, 192, 384, 480],
        ["metaspikformer_8_512"] = [128, 256, 512, 640],
        ["metaspikformer_8_768"] = [192, 384, 768, 960],
        ["15M"] = [64, 128, 256, 360],
    };

    /// <summary>Aliases users type for the published checkpoints.</summary>
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["55M"] = "metaspikformer_8_512",
        ["31M"] = "metaspikformer_8_384",
        ["84M"] = "metaspikformer_8_768",
    };

    public static IEnumerable<string> Names => Widths.Keys;

    public static Sdtv2Config Get(string name)
    {
        if (Aliases.TryGetValue(name, out var canonical)) name = canonical;
        if (!Widths.TryGetValue(name, out var widths))
            throw new QsvitException($"unknown preset '{name}'; known: {string.Join(", ", Widths.Keys)} (aliases {string.Join(", ", Aliases.Keys)})");
        return new Sdtv2Config { EmbedDim = (int[])widths.Clone() };
    }
}
