using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Qsvit.Models;

namespace Qsvit.Quantization;

/// <summary>
/// An immutable assignment of bit widths (2..16, or 32 = full precision) to the units of one granularity, plus the head's width
/// (default 32: the paper keeps the classifier in full precision). Equal by value (granularity included: a transformer-block
/// setting is never equal to a block setting, even with the same widths); <see cref="ToString"/> is canonical
/// (value-equal settings give the same string) and round-trips through <see cref="Parse"/>, so it serves as a cache key.
/// <para>Text form: four '|'-separated stage groups of comma-separated widths, optionally a fifth group with the head's width.
/// Block granularity follows <see cref="Sdtv2Layout.PaperStages"/> (4,3,2,2 values), e.g. the paper's "8,4,8,8|8,8,8|4,32|4,32";
/// transformer-block granularity follows <see cref="TransformerBlockStages"/> (4,3,7,3 values: stage 3 lists DS_S3 then
/// TRAN_S3_B1..B6, stage 4 lists DS_S4 then TRAN_S4_B1..B2), e.g. "8,4,8,8|8,8,8|4,16,16,8,8,8,8|4,8,8|8".
/// Layer granularity has no compact text form; its text form is the JSON form.</para>
/// <para>JSON form: {"granularity":"block"|"transformer-block"|"layer","bits":{name:width,...},"head":width}; "head" may be
/// omitted (32). Block and transformer-block settings must list every unit.</para>
/// </summary>
public sealed class QuantizationSetting : IEquatable<QuantizationSetting>
{
    public const int DefaultHeadBits = Quantizer.FullPrecision;

    /// <summary>Text-form stage groups at transformer-block granularity.</summary>
    public static readonly IReadOnlyList<IReadOnlyList<string>> TransformerBlockStages =
    [
        Sdtv2Layout.PaperStages[0],
        Sdtv2Layout.PaperStages[1],
        ["DS_S3", .. Enumerable.Range(1, Sdtv2Config.Stage3Depth).Select(i => $"TRAN_S3_B{i}")],
        ["DS_S4", .. Enumerable.Range(1, Sdtv2Config.Stage4Depth).Select(i => $"TRAN_S4_B{i}")],
    ];

    private static readonly string[] StageLabels = ["S1", "S2", "S3", "S4"];
    private static readonly string[] TransformerBlockUnits = TransformerBlockStages.SelectMany(s => s).ToArray();

    public Granularity Granularity { get; }
    public int HeadBits { get; }
    /// <summary>Unit (or layer key) names with their widths: stage order for block granularities, ordinal key order for layers.</summary>
    public IReadOnlyList<KeyValuePair<string, int>> Entries { get; }

    private readonly Dictionary<string, int> _bits;
    private readonly int _hash;

    private QuantizationSetting(Granularity granularity, IEnumerable<KeyValuePair<string, int>> entries, int headBits)
    {
        Granularity = granularity;
        HeadBits = headBits;
        Entries = entries.ToImmutableArray();
        _bits = new Dictionary<string, int>(Entries, StringComparer.Ordinal);
        var hash = new HashCode();
        hash.Add(granularity);
        hash.Add(headBits);
        foreach (var (name, bits) in Entries)
        {
            hash.Add(name, StringComparer.Ordinal);
            hash.Add(bits);
        }
        _hash = hash.ToHashCode();
    }

    /// <summary>Every unit at <paramref name="bits"/>, at block granularity.</summary>
    public static QuantizationSetting Uniform(int bits, int headBits = DefaultHeadBits) =>
        Create(Granularity.Block, Sdtv2Layout.PaperUnits.Select(u => KeyValuePair.Create(u, bits)), headBits);

    /// <summary>
    /// A setting from names and widths. Block and transformer-block settings must name every unit of their granularity exactly
    /// once; layer settings name weight keys (checked against a model by <see cref="Validate"/>), head weights excluded.
    /// </summary>
    public static QuantizationSetting Create(Granularity granularity, IEnumerable<KeyValuePair<string, int>> bits,
        int headBits = DefaultHeadBits)
    {
        if (!Granularities.OfSettings.Contains(granularity))
            throw new QsvitException($"a setting is made at {string.Join(", ", Granularities.OfSettings.Select(g => g.Name()))} granularity, not {granularity.Name()}");
        CheckBits(headBits, Sdtv2Layout.Head);
        var given = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, b) in bits)
        {
            if (!given.TryAdd(name, b)) throw new QsvitException($"setting names '{name}' twice");
            CheckBits(b, name);
        }

        if (granularity == Granularity.Layer)
        {
            if (given.Count == 0) throw new QsvitException("a layer setting must give at least one layer's bit width");
            if (given.Keys.FirstOrDefault(k => k == Sdtv2Layout.Head || k.StartsWith("head", StringComparison.Ordinal)) is { } head)
                throw new QsvitException($"'{head}' is a head weight; set the head's width with \"head\" instead");
            return new QuantizationSetting(granularity, given.OrderBy(e => e.Key, StringComparer.Ordinal), headBits);
        }

        var units = UnitNames(granularity);
        var unknown = given.Keys.Where(k => !units.Contains(k)).ToArray();
        if (unknown.Length > 0)
            throw new QsvitException($"unknown {granularity.Name()} unit(s) {string.Join(", ", unknown)}; " +
                                     $"expected {string.Join(", ", units)}");
        var missing = units.Where(u => !given.ContainsKey(u)).ToArray();
        if (missing.Length > 0)
            throw new QsvitException($"{granularity.Name()} setting lacks unit(s) {string.Join(", ", missing)}");
        return new QuantizationSetting(granularity, units.Select(u => KeyValuePair.Create(u, given[u])), headBits);
    }

    /// <summary>The units a block or transformer-block setting names, in text-form order.</summary>
    public static IReadOnlyList<string> UnitNames(Granularity granularity) => granularity switch
    {
        Granularity.Block => Sdtv2Layout.PaperUnits,
        Granularity.TransformerBlock => TransformerBlockUnits,
        _ => throw new QsvitException("layer settings name weight keys of a particular model; take them from its Sdtv2Layout"),
    };

    /// <summary>Width of a unit or layer key this setting names, or of "HEAD".</summary>
    public int this[string name] =>
        name == Sdtv2Layout.Head ? HeadBits
        : _bits.TryGetValue(name, out int b) ? b
        : throw new QsvitException($"{Granularity.Name()} setting has no unit '{name}'");

    /// <summary>A copy with one unit (or layer key, or "HEAD") at <paramref name="bits"/>.</summary>
    public QuantizationSetting With(string name, int bits)
    {
        if (name == Sdtv2Layout.Head) return Create(Granularity, Entries, bits);
        if (Granularity != Granularity.Layer && !_bits.ContainsKey(name))
            throw new QsvitException($"unknown {Granularity.Name()} unit '{name}'; expected {string.Join(", ", UnitNames(Granularity))} or {Sdtv2Layout.Head}");
        var entries = Entries.Where(e => e.Key != name).Append(KeyValuePair.Create(name, bits));
        return Create(Granularity, entries, HeadBits);
    }

    /// <summary>The width this setting gives a weight of the model.</summary>
    public int BitsFor(WeightInfo weight)
    {
        if (weight.Block == Sdtv2Layout.Head) return HeadBits;
        string name = Granularity switch
        {
            Granularity.Block => weight.Unit,
            Granularity.TransformerBlock => weight.Block,
            _ => weight.Key,
        };
        return _bits.TryGetValue(name, out int b) ? b
            : throw new QsvitException($"{Granularity.Name()} setting gives no bit width for '{name}' ({weight.Label})");
    }

    /// <summary>Throws unless this setting covers every weight of <paramref name="layout"/> and names nothing else.</summary>
    public void Validate(Sdtv2Layout layout)
    {
        if (Granularity != Granularity.Layer) return; // block units are fixed by the architecture
        var keys = layout.Weights.Where(w => w.Block != Sdtv2Layout.Head).Select(w => w.Key).ToHashSet(StringComparer.Ordinal);
        var unknown = _bits.Keys.Where(k => !keys.Contains(k)).Take(5).ToArray();
        if (unknown.Length > 0)
            throw new QsvitException($"layer setting names {string.Join(", ", unknown)}, not quantizable weights of this model");
        var missing = keys.Where(k => !_bits.ContainsKey(k)).Take(5).ToArray();
        if (missing.Length > 0)
            throw new QsvitException($"layer setting gives no bit width for {string.Join(", ", missing)}" +
                                     (keys.Count(k => !_bits.ContainsKey(k)) > missing.Length ? ", ..." : ""));
    }

    /// <summary>
    /// The same bit widths at a finer granularity (each transformer block, or each weight, takes its unit's width).
    /// Refining to the current granularity returns this setting.
    /// </summary>
    public QuantizationSetting Refine(Granularity granularity, Sdtv2Layout layout)
    {
        if (granularity < Granularity)
            throw new QsvitException($"cannot coarsen a {Granularity.Name()} setting to {granularity.Name()} granularity");
        if (granularity == Granularity) return this;
        Validate(layout);
        var quantizable = layout.Weights.Where(w => w.Block != Sdtv2Layout.Head).ToArray();
        if (granularity == Granularity.Layer)
            return Create(granularity, quantizable.Select(w => KeyValuePair.Create(w.Key, BitsFor(w))), HeadBits);
        var unitOf = quantizable.GroupBy(w => w.Block).ToDictionary(g => g.Key, g => g.First().Unit, StringComparer.Ordinal);
        return Create(granularity, TransformerBlockUnits.Select(b => KeyValuePair.Create(b, this[unitOf[b]])), HeadBits);
    }

    /// <summary>The setting the QSViT paper publishes for SDTv2 (Putra et al.); <see cref="Parse"/> also takes it as <c>paper</c>.</summary>
    public const string PaperText = "8,4,8,8|8,8,8|4,32|4,32";

    /// <summary>Parses the text form, <c>paper</c> (<see cref="PaperText"/>), or the JSON form when the text starts with '{'.</summary>
    public static QuantizationSetting Parse(string text)
    {
        string t = (text ?? "").Trim();
        if (t.Length == 0) throw new QsvitException($"empty quantization setting; expected e.g. \"{PaperText}\" (or paper)");
        if (t.Equals("paper", StringComparison.OrdinalIgnoreCase)) return ParseText(PaperText);
        return t[0] == '{' ? FromJson(t) : ParseText(t);
    }

    private static QuantizationSetting ParseText(string text)
    {
        string[] groups = text.Split('|');
        if (groups.Length is not (4 or 5))
            throw new QsvitException($"setting '{text}' has {groups.Length} '|'-separated group(s); expected 4 (S1|S2|S3|S4, " +
                                     "e.g. \"8,4,8,8|8,8,8|4,32|4,32\") or 5 (a last group with the head's width)");
        var values = new int[groups.Length][];
        for (int g = 0; g < groups.Length; g++)
        {
            string label = g < 4 ? StageLabels[g] : Sdtv2Layout.Head;
            string[] tokens = groups[g].Split(',');
            values[g] = new int[tokens.Length];
            for (int i = 0; i < tokens.Length; i++)
            {
                string tok = tokens[i].Trim();
                if (!int.TryParse(tok, NumberStyles.None, CultureInfo.InvariantCulture, out int b) || !Quantizer.IsValidBits(b))
                    throw new QsvitException($"setting '{text}': group {g + 1} ({label}), value {i + 1}: '{tok}' is not a bit width; " +
                                             $"allowed {Quantizer.MinBits}..{Quantizer.MaxBits} or {Quantizer.FullPrecision}");
                values[g][i] = b;
            }
        }

        CheckCount(text, values, 0, Sdtv2Layout.PaperStages[0]);
        CheckCount(text, values, 1, Sdtv2Layout.PaperStages[1]);
        for (int g = 2; g < 4; g++)
            if (values[g].Length != Sdtv2Layout.PaperStages[g].Count && values[g].Length != TransformerBlockStages[g].Count)
                throw new QsvitException($"setting '{text}': group {g + 1} ({StageLabels[g]}) has {values[g].Length} value(s); expected " +
                                         $"{Sdtv2Layout.PaperStages[g].Count} ({string.Join(", ", Sdtv2Layout.PaperStages[g])}) at block granularity " +
                                         $"or {TransformerBlockStages[g].Count} ({string.Join(", ", TransformerBlockStages[g])}) per transformer block");
        bool block3 = values[2].Length == Sdtv2Layout.PaperStages[2].Count, block4 = values[3].Length == Sdtv2Layout.PaperStages[3].Count;
        if (block3 != block4)
            throw new QsvitException($"setting '{text}' mixes granularities: S3 has {values[2].Length} values and S4 {values[3].Length}; " +
                                     $"use {Sdtv2Layout.PaperStages[2].Count} and {Sdtv2Layout.PaperStages[3].Count} (block) or " +
                                     $"{TransformerBlockStages[2].Count} and {TransformerBlockStages[3].Count} (transformer block)");
        if (groups.Length == 5 && values[4].Length != 1)
            throw new QsvitException($"setting '{text}': group 5 ({Sdtv2Layout.Head}) must be a single bit width, got {values[4].Length} values");

        var granularity = block3 ? Granularity.Block : Granularity.TransformerBlock;
        var stages = block3 ? Sdtv2Layout.PaperStages : TransformerBlockStages;
        var entries = stages.SelectMany((units, g) => units.Select((u, i) => KeyValuePair.Create(u, values[g][i])));
        return Create(granularity, entries, groups.Length == 5 ? values[4][0] : DefaultHeadBits);
    }

    private static void CheckCount(string text, int[][] values, int g, IReadOnlyList<string> units)
    {
        if (values[g].Length != units.Count)
            throw new QsvitException($"setting '{text}': group {g + 1} ({StageLabels[g]}) has {values[g].Length} value(s); " +
                                     $"expected {units.Count} ({string.Join(", ", units)})");
    }

    /// <summary>The text form for block granularities (head appended only when not 32); the compact JSON form for layers.</summary>
    public override string ToString()
    {
        if (Granularity == Granularity.Layer) return ToJson();
        var sb = new StringBuilder();
        int i = 0;
        var stages = Granularity == Granularity.Block ? Sdtv2Layout.PaperStages : TransformerBlockStages;
        foreach (var stage in stages)
        {
            if (sb.Length > 0) sb.Append('|');
            for (int j = 0; j < stage.Count; j++, i++)
            {
                if (j > 0) sb.Append(',');
                sb.Append(Entries[i].Value.ToString(CultureInfo.InvariantCulture));
            }
        }
        if (HeadBits != DefaultHeadBits) sb.Append('|').Append(HeadBits.ToString(CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    public string ToJson(bool indented = false)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartObject();
            w.WriteString("granularity", Granularity.Name());
            w.WriteStartObject("bits");
            foreach (var (name, bits) in Entries) w.WriteNumber(name, bits);
            w.WriteEndObject();
            w.WriteNumber("head", HeadBits);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static QuantizationSetting FromJson(string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new QsvitException($"quantization setting is not valid JSON: {e.Message}", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new QsvitException("quantization setting JSON must be an object");
            Granularity? granularity = null;
            Dictionary<string, int>? bits = null;
            int head = DefaultHeadBits;
            foreach (var prop in root.EnumerateObject())
            {
                switch (prop.Name)
                {
                    case "granularity":
                        string? g = prop.Value.ValueKind == JsonValueKind.String ? prop.Value.GetString()?.ToLowerInvariant() : null;
                        granularity = Granularities.OfSettings.Where(x => x.Name() == g).Cast<Granularity?>().FirstOrDefault()
                            ?? throw new QsvitException($"setting JSON: granularity {prop.Value.GetRawText()} is not one of " +
                                                        string.Join(", ", Granularities.OfSettings.Select(x => $"\"{x.Name()}\"")));
                        break;
                    case "bits":
                        if (prop.Value.ValueKind != JsonValueKind.Object)
                            throw new QsvitException("setting JSON: \"bits\" must be an object mapping unit or layer names to bit widths");
                        bits = new Dictionary<string, int>(StringComparer.Ordinal);
                        foreach (var entry in prop.Value.EnumerateObject())
                            if (!bits.TryAdd(entry.Name, JsonBits(entry.Value, $"\"bits\".\"{entry.Name}\"")))
                                throw new QsvitException($"setting JSON: \"bits\" names '{entry.Name}' twice");
                        break;
                    case "head":
                        head = JsonBits(prop.Value, "\"head\"");
                        break;
                    default:
                        throw new QsvitException($"setting JSON: unknown property \"{prop.Name}\"; expected \"granularity\", \"bits\", \"head\"");
                }
            }
            if (granularity is null) throw new QsvitException("setting JSON lacks \"granularity\" (\"block\", \"transformer-block\" or \"layer\")");
            if (bits is null) throw new QsvitException("setting JSON lacks \"bits\"");
            return Create(granularity.Value, bits, head);
        }
    }

    private static int JsonBits(JsonElement e, string where)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int b) || !Quantizer.IsValidBits(b))
            throw new QsvitException($"setting JSON: {where} = {e.GetRawText()} is not a bit width; " +
                                     $"allowed {Quantizer.MinBits}..{Quantizer.MaxBits} or {Quantizer.FullPrecision}");
        return b;
    }

    private static void CheckBits(int bits, string name)
    {
        if (!Quantizer.IsValidBits(bits))
            throw new QsvitException($"bit width {bits} for '{name}' is not supported; allowed {Quantizer.MinBits}..{Quantizer.MaxBits} " +
                                     $"or {Quantizer.FullPrecision}");
    }

    public bool Equals(QuantizationSetting? other) =>
        other is not null && (ReferenceEquals(this, other) ||
            (_hash == other._hash && Granularity == other.Granularity && HeadBits == other.HeadBits &&
             Entries.SequenceEqual(other.Entries)));

    public override bool Equals(object? obj) => Equals(obj as QuantizationSetting);
    public override int GetHashCode() => _hash;
    public static bool operator ==(QuantizationSetting? a, QuantizationSetting? b) => a?.Equals(b) ?? b is null;
    public static bool operator !=(QuantizationSetting? a, QuantizationSetting? b) => !(a == b);
}
