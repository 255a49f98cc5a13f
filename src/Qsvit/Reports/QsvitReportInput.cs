using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Reports;

/// <summary>What a QSViT report shows besides the search result itself.</summary>
public sealed record QsvitReportInput(QsvitResult Result, Sdtv2Layout Layout)
{
    /// <summary>The fp32 checkpoint (path or name).</summary>
    public string Model { get; init; } = "";
    public QuantizerSpec Quantizer { get; init; } = QuantizerSpec.Paper;
    /// <summary>Corrections after quantization every evaluated setting got.</summary>
    public CorrectionOptions Correction { get; init; } = CorrectionOptions.None;
    /// <summary>Where the evaluations ran (the run's --device).</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Split name → what it is (file, image count).</summary>
    public IReadOnlyDictionary<string, string> Splits { get; init; } = new Dictionary<string, string>();
    /// <summary>Per-unit clipping and SQNR (<see cref="UnitWeightError.Compute"/>); the section is left out without it.</summary>
    public IReadOnlyList<UnitWeightError>? WeightErrors { get; init; }
    public EnergyComparison? Energy { get; init; }
    /// <summary>Board energy measured on the device (NVML), or why it was not; the section says "not measured" without it.</summary>
    public Evaluation.MeasuredEnergyComparison? MeasuredEnergy { get; init; }
    /// <summary>Where Alg. 4 saved the quantized network, if it did.</summary>
    public string? QuantizedModelPath { get; init; }
    /// <summary>Full evaluations actually run by this process (the oracle's count); defaults to the search's own count.</summary>
    public int? OracleEvaluations { get; init; }
}
