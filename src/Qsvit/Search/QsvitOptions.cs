using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>What the QSViT search (Alg. 1-4) explores and how strict it is.</summary>
public sealed record QsvitOptions
{
    public const double DefaultTolerancePoints = 5;
    public static readonly IReadOnlyList<int> DefaultBits = [32, 16, 12, 8, 4];

    /// <summary>Block (the paper's 11 units) or TransformerBlock (each TRAN_S3/S4 block on its own).</summary>
    public Granularity Granularity { get; init; } = Granularity.Block;
    /// <summary>Widths Alg. 1 tries for every unit (32 = full precision); any order, used highest first.</summary>
    public IReadOnlyList<int> Bits { get; init; } = DefaultBits;
    /// <summary>Largest drop below the fp32 accuracy on the search split, in percentage points, that is still acceptable.</summary>
    public double TolerancePoints { get; init; } = DefaultTolerancePoints;
    /// <summary>Split every decision is made on.</summary>
    public string SearchSplit { get; init; } = "search";
    /// <summary>Held-out split Alg. 4 reports on, never used for decisions; null to skip.</summary>
    public string? ReportSplit { get; init; } = "test";

    /// <summary>The units a setting names at <see cref="Granularity"/>, in network order.</summary>
    public IReadOnlyList<string> Units => QuantizationSetting.UnitNames(Granularity);

    /// <summary>The configured widths below 32, highest first, without repeats.</summary>
    public IReadOnlyList<int> QuantizedBits => Bits.Where(b => b != Quantizer.FullPrecision).Distinct().OrderDescending().ToArray();

    /// <summary>Every unit at full precision: the baseline every accuracy is compared with.</summary>
    public QuantizationSetting Fp32 =>
        QuantizationSetting.Create(Granularity, Units.Select(u => KeyValuePair.Create(u, Quantizer.FullPrecision)));

    /// <summary>Whether <paramref name="accuracy"/> (percent) is within the tolerance of <paramref name="fp32"/>.</summary>
    public bool WithinTolerance(double accuracy, double fp32) => accuracy >= fp32 - TolerancePoints - 1e-9; // exact at the boundary

    public void Validate()
    {
        if (Granularity == Granularity.Layer)
            throw new QsvitException("QSViT searches block or transformer-block units, not single layers");
        if (Bits is null || Bits.Count == 0) throw new QsvitException("give at least one bit width to try");
        foreach (var b in Bits)
            if (!Quantizer.IsValidBits(b))
                throw new QsvitException($"bit width {b} is not supported; allowed {Quantizer.MinBits}..{Quantizer.MaxBits} or {Quantizer.FullPrecision}");
        if (QuantizedBits.Count == 0) throw new QsvitException("the bit widths to try must include at least one below 32");
        if (!double.IsFinite(TolerancePoints) || TolerancePoints < 0)
            throw new QsvitException($"tolerance must be a non-negative number of accuracy points, got {TolerancePoints}");
        if (string.IsNullOrWhiteSpace(SearchSplit)) throw new QsvitException("the search split needs a name");
        if (ReportSplit is not null && (ReportSplit.Length == 0 || ReportSplit == SearchSplit))
            throw new QsvitException($"the report split must be a different, named split (search split is '{SearchSplit}')");
    }
}
