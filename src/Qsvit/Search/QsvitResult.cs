using Qsvit.Evaluation;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>The four steps of QSViT, in order.</summary>
public enum QsvitPhase { Sensitivity, BaseSettings, Guided, Final }

/// <summary>
/// Reported before every evaluation the search asks for (and once at the end with <see cref="Done"/> = <see cref="Total"/>).
/// <see cref="Total"/> is an upper bound until Alg. 2 fixes how many guided steps there are.
/// </summary>
public readonly record struct QsvitProgress(QsvitPhase Phase, int Done, int Total, string Detail)
{
    public string PhaseName => QsvitResult.PhaseName(Phase);
}

/// <summary>Alg. 1: one unit quantized alone at <see cref="Bits"/> (the others fp32).</summary>
/// <param name="Difference">Accuracy minus fp32's on the same images, in points, with its paired 95 % interval.</param>
/// <param name="Accuracy">On the images the decision used: the whole split, or its first chunks for a sequential decision.</param>
public sealed record SensitivityCell(string Unit, int Bits, AccuracyRecord Accuracy, Interval Difference, bool WithinTolerance)
{
    /// <summary>Decided sequentially before the whole split, under the error budget.</summary>
    public bool Early { get; init; }
}

/// <summary>Alg. 1's table: every unit at every configured width, on the search split.</summary>
public sealed record SensitivityTable(AccuracyRecord Fp32, double TolerancePoints, IReadOnlyList<string> Units,
    IReadOnlyList<int> Bits, IReadOnlyList<SensitivityCell> Cells)
{
    /// <summary>The lowest accuracy still within tolerance.</summary>
    public double Threshold => Fp32.Accuracy - TolerancePoints;

    public SensitivityCell Cell(string unit, int bits) =>
        Cells.FirstOrDefault(c => c.Unit == unit && c.Bits == bits) ?? throw new QsvitException($"no sensitivity result for {unit} at {bits} bits");
}

/// <summary>
/// Alg. 2: per unit, among the quantized widths whose single-unit accuracy is within tolerance, bSettingH takes the highest
/// (the conservative start) and bSettingL the lowest (the aggressive floor); a unit where no quantized width passes stays at
/// 32 in both.
/// </summary>
public sealed record BaseSettings(QuantizationSetting BSettingH, QuantizationSetting BSettingL)
{
    public static BaseSettings From(SensitivityTable table, Granularity granularity)
    {
        var high = new List<KeyValuePair<string, int>>();
        var low = new List<KeyValuePair<string, int>>();
        foreach (var unit in table.Units)
        {
            var passing = table.Bits.Where(b => b != Quantizer.FullPrecision && table.Cell(unit, b).WithinTolerance).ToArray();
            high.Add(KeyValuePair.Create(unit, passing.Length == 0 ? Quantizer.FullPrecision : passing.Max()));
            low.Add(KeyValuePair.Create(unit, passing.Length == 0 ? Quantizer.FullPrecision : passing.Min()));
        }
        return new BaseSettings(QuantizationSetting.Create(granularity, high), QuantizationSetting.Create(granularity, low));
    }

    /// <summary>
    /// The widths Alg. 3 tries for a unit, highest first: the configured ones below bSettingH's and down to bSettingL's
    /// (4-bit steps 16→12→8→4 with the default widths).
    /// </summary>
    public IReadOnlyList<int> GuidedWidths(string unit, IReadOnlyList<int> quantizedBits) =>
        quantizedBits.Where(b => b < BSettingH[unit] && b >= BSettingL[unit]).OrderDescending().ToArray();
}

/// <summary>One evaluation of Alg. 3: <see cref="Unit"/> tried at <see cref="Bits"/> with the other units at their current widths.</summary>
/// <param name="Kept">This width is the one the unit ends with (the lowest that stayed within tolerance).</param>
public sealed record GuidedStep(int Index, string Unit, int Bits, QuantizationSetting Setting, AccuracyRecord Accuracy,
    Interval Difference, bool WithinTolerance, bool Kept)
{
    /// <summary>Decided sequentially before the whole split, under the error budget.</summary>
    public bool Early { get; init; }
}

/// <summary>Alg. 3: the walk from bSettingH (whose accuracy is <see cref="Start"/>) to bSettingG.</summary>
public sealed record GuidedResult(AccuracyRecord Start, IReadOnlyList<GuidedStep> Steps, QuantizationSetting BSettingG);

/// <summary>A setting against fp32 on one split.</summary>
public sealed record FinalAccuracy(string Split, AccuracyRecord Fp32, AccuracyRecord Quantized)
{
    /// <summary>Quantized minus fp32 on the same images, in points, with its paired 95 % interval.</summary>
    public Interval Difference => Quantized.DifferenceFrom(Fp32);
}

/// <summary>A reference setting (the paper's published one) evaluated beside bSettingG on both splits.</summary>
public sealed record ReferenceResult(SettingMemory Memory, FinalAccuracy Search, FinalAccuracy? Report);

/// <summary>Memory of a named setting (fp32, bSettingH, bSettingL, bSettingG) as the paper counts it.</summary>
public sealed record SettingMemory(string Name, QuantizationSetting Setting, MemoryFootprint Memory);

/// <summary>Evaluations of one phase: <see cref="Evaluations"/> distinct (setting, split) results it used, <see cref="Run"/> of
/// them actually computed now (the rest came from the oracle's cache or the run directory).</summary>
public sealed record PhaseCost(QsvitPhase Phase, int Evaluations, int Run);

/// <summary>What the search cost: distinct evaluations used, those computed in this process, and the time.</summary>
/// <param name="WallSeconds">Wall time of this call (small when a resumed run replays most evaluations).</param>
/// <param name="EvaluationSeconds">Time of all the evaluations the search used, replayed ones included (as recorded when they ran):
/// the search's cost however many sessions it took.</param>
public sealed record SearchCost(int Evaluations, int Run, double WallSeconds, double EvaluationSeconds, IReadOnlyList<PhaseCost> Phases)
{
    /// <summary>The search's time: its evaluations over all sessions, or this call's wall time if that is longer.</summary>
    public double SearchSeconds => Math.Max(WallSeconds, EvaluationSeconds);

    /// <summary>Evaluations answered without running (replayed from the run directory or already cached).</summary>
    public int Replayed => Evaluations - Run;

    /// <summary>Search-split images the search's decisions and results used (each setting once, at the most it used).</summary>
    public long SearchImages { get; init; }
    /// <summary>Images of the whole search split.</summary>
    public int SplitImages { get; init; }
    /// <summary>Search-split work prefix reuse skipped, in images' worth of whole passes.</summary>
    public double ImagesSaved { get; init; }
    /// <summary>What prefix reuse did during the search (accuracies, all splits); null when it was off.</summary>
    public PrefixReuseStats? Reuse { get; init; }
    /// <summary>
    /// Cost in full evaluations of the search split, counting units actually run: (<see cref="SearchImages"/> −
    /// <see cref="ImagesSaved"/> + <see cref="CorrectionImages"/>) / <see cref="SplitImages"/>.
    /// </summary>
    public double FullEquivalents => SplitImages > 0 ? (Math.Max(0, SearchImages - ImagesSaved) + CorrectionImages) / SplitImages : Evaluations;
    /// <summary>Calibration passes of the corrections after quantization, in images (<see cref="ISettingOracle.CorrectionImages"/>); in <see cref="FullEquivalents"/>.</summary>
    public long CorrectionImages { get; init; }
}

/// <summary>Everything QSViT found, in the paper's terms.</summary>
public sealed record QsvitResult(
    QsvitOptions Options,
    SensitivityTable Sensitivity,
    BaseSettings Base,
    AccuracyRecord BSettingHAccuracy,
    AccuracyRecord BSettingLAccuracy,
    GuidedResult Guided,
    FinalAccuracy Search,
    FinalAccuracy? Report,
    IReadOnlyList<SettingMemory> Memory,
    SearchCost Cost)
{
    /// <summary>The reference setting's results (<see cref="QsvitOptions.ReferenceSetting"/>), when evaluated.</summary>
    public ReferenceResult? Reference { get; init; }

    public QuantizationSetting BSettingH => Base.BSettingH;
    public QuantizationSetting BSettingL => Base.BSettingL;
    public QuantizationSetting BSettingG => Guided.BSettingG;
    public QuantizationSetting Fp32 => Options.Fp32;
    /// <summary>bSettingG's accuracy on the search split is within the tolerance (false only if even bSettingH was not).</summary>
    public bool WithinTolerance => Options.WithinTolerance(Search.Quantized.Accuracy, Search.Fp32.Accuracy);

    /// <summary>
    /// The distinct evaluations the search itself made on the search split (Alg. 1-3 and Alg. 4's bSettingG there), without
    /// the held-out report split: the search's cost, comparable with other methods whose held-out check comes after.
    /// </summary>
    public IReadOnlyList<AccuracyRecord> SearchEvaluations =>
        new[] { Sensitivity.Fp32 }.Concat(Sensitivity.Cells.Select(c => c.Accuracy))
            .Concat([BSettingHAccuracy, BSettingLAccuracy]).Concat(Guided.Steps.Select(s => s.Accuracy)).Append(Search.Quantized)
            .DistinctBy(a => a.Setting, StringComparer.Ordinal).ToArray();

    public SettingMemory MemoryOf(string name) =>
        Memory.FirstOrDefault(m => m.Name == name) ?? throw new QsvitException($"no memory entry named '{name}'");

    public static string PhaseName(QsvitPhase phase) => phase switch
    {
        QsvitPhase.Sensitivity => "Alg. 1 sensitivity",
        QsvitPhase.BaseSettings => "Alg. 2 base settings",
        QsvitPhase.Guided => "Alg. 3 guided quantization",
        _ => "Alg. 4 final network",
    };
}
