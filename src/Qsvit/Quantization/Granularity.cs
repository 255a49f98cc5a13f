namespace Qsvit.Quantization;

/// <summary>
/// What one unit of quantization covers, coarsest first. Settings (<see cref="QuantizationSetting"/>) are made at
/// <see cref="Block"/>, <see cref="TransformerBlock"/> or <see cref="Layer"/> granularity; searches may also move whole stages or
/// the whole network, which are written as block settings (<see cref="Granularities.OfSetting"/>).
/// </summary>
public enum Granularity
{
    /// <summary>One unit: the whole network at one width.</summary>
    Network,
    /// <summary>S1..S4: the paper units of each stage move together.</summary>
    Stage,
    /// <summary>The paper's 11 block-level units (<see cref="Models.Sdtv2Layout.PaperUnits"/>); TRAN_S3 covers all six stage-3 blocks.</summary>
    Block,
    /// <summary>Like <see cref="Block"/>, but each transformer block (TRAN_S3_B1..B6, TRAN_S4_B1..B2) gets its own width.</summary>
    TransformerBlock,
    /// <summary>Each conv/linear weight by its official state_dict key.</summary>
    Layer,
}

/// <summary>Names, parsing and the setting granularity of <see cref="Granularity"/>.</summary>
public static class Granularities
{
    public static IReadOnlyList<Granularity> All { get; } = Enum.GetValues<Granularity>();

    /// <summary>The granularities a <see cref="QuantizationSetting"/> can be made at.</summary>
    public static IReadOnlyList<Granularity> OfSettings { get; } = [Granularity.Block, Granularity.TransformerBlock, Granularity.Layer];

    /// <summary>The name used in options, JSON and reports: network, stage, block, transformer-block, layer.</summary>
    public static string Name(this Granularity granularity) => granularity switch
    {
        Granularity.Network => "network",
        Granularity.Stage => "stage",
        Granularity.Block => "block",
        Granularity.TransformerBlock => "transformer-block",
        Granularity.Layer => "layer",
        _ => throw new QsvitException($"unknown granularity {(int)granularity}"),
    };

    /// <summary>Parses a <see cref="Name"/>, accepting only <paramref name="allowed"/> (default: every granularity).</summary>
    public static Granularity Parse(string? text, IReadOnlyList<Granularity>? allowed = null)
    {
        allowed ??= All;
        string name = (text ?? "").Trim().ToLowerInvariant();
        foreach (var g in allowed)
            if (g.Name() == name) return g;
        throw new QsvitException($"granularity '{text}' is not one of {string.Join(", ", allowed.Select(Name))}");
    }

    /// <summary>The granularity of the settings a search at <paramref name="granularity"/> builds: stage and network moves are block settings.</summary>
    public static Granularity OfSetting(this Granularity granularity) => granularity < Granularity.Block ? Granularity.Block : granularity;
}
