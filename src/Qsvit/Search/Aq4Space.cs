using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>A search unit: its name and the entries of the underlying <see cref="QuantizationSetting"/> it sets.</summary>
/// <param name="Weights">Number of weight values it covers (what one bit less saves, in bits).</param>
public sealed record Aq4Unit(string Name, IReadOnlyList<string> Members, long Weights);

/// <summary>
/// The AQ4SViT search space: units at one granularity, each on a ladder of widths from 32 (the fp32 start) down. A point is
/// one ladder level per unit; <see cref="Setting"/> turns it into a <see cref="QuantizationSetting"/> at block granularity
/// (network, stage, block units), transformer-block or layer granularity. The head is a unit of its own only with
/// <see cref="QuantizeHead"/>; otherwise it stays fp32.
/// </summary>
public sealed class Aq4Space
{
    public const string HeadUnit = Sdtv2Layout.Head;

    public Sdtv2Layout Layout { get; }
    public Granularity Granularity { get; }
    public IReadOnlyList<Aq4Unit> Units { get; }
    /// <summary>Widths a unit steps through: 32 first, then the searched widths, descending.</summary>
    public IReadOnlyList<int> Ladder { get; }
    public bool QuantizeHead { get; }
    /// <summary>The granularity of the settings this space builds.</summary>
    public Granularity SettingGranularity => Granularity.OfSetting();

    private Aq4Space(Sdtv2Layout layout, Granularity granularity, IReadOnlyList<Aq4Unit> units, IReadOnlyList<int> ladder,
        bool quantizeHead)
    {
        Layout = layout;
        Granularity = granularity;
        Units = units;
        Ladder = ladder;
        QuantizeHead = quantizeHead;
    }

    /// <summary>The paper quantizer degrades sharply below 4 bits and between the powers of two it was studied at.</summary>
    public static IReadOnlyList<int> DefaultBits(QuantizerSpec spec) =>
        spec.Kind == QuantizerKind.Paper ? [16, 12, 8, 4] : [16, 12, 8, 6, 4, 3, 2];

    /// <param name="bits">Widths to search below 32 (any order; 32 itself is the start and is ignored here).</param>
    public static Aq4Space Create(Sdtv2Layout layout, Granularity granularity, IEnumerable<int> bits, bool quantizeHead = false)
    {
        var widths = bits.Where(b => b != Quantizer.FullPrecision).Distinct().OrderDescending().ToArray();
        if (widths.Length == 0) throw new QsvitException("give at least one bit width below 32 to search");
        foreach (int b in widths.Where(b => !Quantizer.IsValidBits(b)))
            throw new QsvitException($"bit width {b} is not supported; allowed {Quantizer.MinBits}..{Quantizer.MaxBits}");

        var weights = layout.Weights.Where(w => w.Block != Sdtv2Layout.Head).ToArray();
        Aq4Unit Unit(string name, IReadOnlyList<string> members, Func<WeightInfo, bool> covers) =>
            new(name, members, weights.Where(covers).Sum(w => w.Count));
        List<Aq4Unit> units = granularity switch
        {
            Granularity.Network => [Unit("NETWORK", Sdtv2Layout.PaperUnits, _ => true)],
            Granularity.Stage => Sdtv2Layout.PaperStages
                .Select((stage, i) => Unit($"S{i + 1}", stage, w => stage.Contains(w.Unit))).ToList(),
            Granularity.Block => Sdtv2Layout.PaperUnits.Select(u => Unit(u, [u], w => w.Unit == u)).ToList(),
            Granularity.TransformerBlock => QuantizationSetting.UnitNames(Granularity.TransformerBlock)
                .Select(b => Unit(b, [b], w => w.Block == b)).ToList(),
            Granularity.Layer => weights.Select(w => new Aq4Unit(w.Key, [w.Key], w.Count)).ToList(),
            _ => throw new QsvitException($"unknown granularity {(int)granularity}"),
        };
        if (quantizeHead)
            units.Add(new Aq4Unit(HeadUnit, [HeadUnit], layout.Weights.Where(w => w.Block == Sdtv2Layout.Head).Sum(w => w.Count)));
        return new Aq4Space(layout, granularity, units, [Quantizer.FullPrecision, .. widths], quantizeHead);
    }

    /// <summary>Number of one-step moves from fp32 to the bottom of every ladder: the deepest a search can go.</summary>
    public int MaxDepth => Units.Count * (Ladder.Count - 1);

    /// <summary>The setting at one ladder level (index into <see cref="Ladder"/>) per unit.</summary>
    public QuantizationSetting Setting(IReadOnlyList<int> levels)
    {
        if (levels.Count != Units.Count) throw new ArgumentException($"{levels.Count} levels for {Units.Count} units");
        int head = Quantizer.FullPrecision;
        var entries = new List<KeyValuePair<string, int>>();
        for (int u = 0; u < Units.Count; u++)
        {
            int bits = Ladder[levels[u]];
            if (Units[u].Name == HeadUnit) head = bits;
            else entries.AddRange(Units[u].Members.Select(m => KeyValuePair.Create(m, bits)));
        }
        return QuantizationSetting.Create(SettingGranularity, entries, head);
    }
}
