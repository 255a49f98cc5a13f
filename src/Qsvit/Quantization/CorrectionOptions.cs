namespace Qsvit.Quantization;

/// <summary>
/// Error correction after post-training quantization (AIMET's, not the papers'), applied by <see cref="QuantizationCorrector"/>:
/// <see cref="Bias"/> removes each conv output channel's expected weight-quantization error, <see cref="BatchNorm"/>
/// re-estimates every BatchNorm's running statistics on the quantized network. Both use <see cref="CalibrationImages"/>
/// images of the search split or of calibration data, never of a test split. Text form: "none", "bias", "bn", "bias,bn".
/// </summary>
public sealed record CorrectionOptions
{
    public const int DefaultCalibrationImages = 256;
    public static readonly CorrectionOptions None = new();

    /// <summary>Every valid correction in its text form, in a stable order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["none", "bias", "bn", "bias,bn"];

    /// <summary>Empirical bias correction: E[(W_q − W)·x] per output channel, with x the fp32 network's layer input.</summary>
    public bool Bias { get; init; }
    /// <summary>BatchNorm running mean and variance replaced by their input's statistics on the quantized network, in network order.</summary>
    public bool BatchNorm { get; init; }
    /// <summary>Images the corrections are computed on (spread evenly over the calibration data).</summary>
    public int CalibrationImages { get; init; } = DefaultCalibrationImages;

    public bool IsNone => !Bias && !BatchNorm;

    /// <summary>"none", or "bias", "bn" and both joined by commas in any order ("bn,bias" is "bias,bn").</summary>
    public static CorrectionOptions Parse(string text, int calibrationImages = DefaultCalibrationImages)
    {
        string t = (text ?? "").Trim().ToLowerInvariant();
        var tokens = t.Split(',', StringSplitOptions.TrimEntries);
        string Expected() => $"expected one of: {string.Join(", ", Names)}";
        if (t == "none") return None with { CalibrationImages = calibrationImages };
        bool bias = false, bn = false;
        foreach (var token in tokens)
        {
            switch (token)
            {
                case "bias" when !bias: bias = true; break;
                case "bn" when !bn: bn = true; break;
                case "bias" or "bn": throw new QsvitException($"correction '{text}' names '{token}' twice; {Expected()}");
                default: throw new QsvitException($"unknown correction '{text}'; {Expected()}");
            }
        }
        var options = new CorrectionOptions { Bias = bias, BatchNorm = bn, CalibrationImages = calibrationImages };
        options.Validate();
        return options;
    }

    public void Validate()
    {
        if (CalibrationImages < 1) throw new QsvitException($"corrections need at least one calibration image, got {CalibrationImages}");
    }

    /// <summary>What decides the corrected model: the corrections and, unless none, the number of calibration images.</summary>
    public string Identity => IsNone ? "none" : $"{this} on {CalibrationImages} images";

    public override string ToString() => IsNone ? "none" : Bias && BatchNorm ? "bias,bn" : Bias ? "bias" : "bn";
}
