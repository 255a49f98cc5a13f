namespace Qsvit.Quantization;

/// <summary>How a weight tensor is mapped onto integers.</summary>
public enum QuantizerKind
{
    /// <summary>QSViT Eq. 1-3: per-tensor, S = (max - min) / (Qmax - Qmin), signed codes, no zero point.</summary>
    Paper,
    /// <summary>S = max|W| / Qmax, signed codes in the restricted range [-Qmax, Qmax], no zero point.</summary>
    Symmetric,
    /// <summary>Affine: S = (max - min) / (2^b - 1) over a range widened to include 0, unsigned codes, integer zero point.</summary>
    Asymmetric,
}

/// <summary>
/// A weight quantizer: kind, per-tensor or per-output-channel (axis 0) scales, and whether the clipping range is searched
/// for the least squared error instead of taken from the extremes. Text form: "paper", "symmetric", "symmetric-channel",
/// "symmetric-mse", "symmetric-channel-mse", and the same four for "asymmetric".
/// </summary>
public sealed record QuantizerSpec(QuantizerKind Kind, bool PerChannel = false, bool MseClipping = false)
{
    public static readonly QuantizerSpec Paper = new(QuantizerKind.Paper);

    /// <summary>Every valid spec in its text form, in a stable order.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "paper",
        "symmetric", "symmetric-channel", "symmetric-mse", "symmetric-channel-mse",
        "asymmetric", "asymmetric-channel", "asymmetric-mse", "asymmetric-channel-mse",
    ];

    public static QuantizerSpec Parse(string text)
    {
        string t = (text ?? "").Trim().ToLowerInvariant();
        if (!Names.Contains(t))
            throw new QsvitException($"unknown quantizer '{text}'; expected one of: {string.Join(", ", Names)}");
        string[] parts = t.Split('-');
        var kind = parts[0] switch
        {
            "paper" => QuantizerKind.Paper,
            "symmetric" => QuantizerKind.Symmetric,
            _ => QuantizerKind.Asymmetric,
        };
        return new QuantizerSpec(kind, parts.Contains("channel"), parts.Contains("mse"));
    }

    /// <summary>Throws unless this is one of <see cref="Names"/> (the paper's quantizer is per-tensor, max-range only).</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Kind)) throw new QsvitException($"unknown quantizer kind {(int)Kind}");
        if (Kind == QuantizerKind.Paper && (PerChannel || MseClipping))
            throw new QsvitException("the paper quantizer (Eq. 1-3) is per-tensor with the full min/max range; " +
                                     "use symmetric or asymmetric for per-channel scales or MSE clipping");
    }

    public override string ToString()
    {
        string s = Kind.ToString().ToLowerInvariant();
        if (PerChannel) s += "-channel";
        if (MseClipping) s += "-mse";
        return s;
    }
}
