namespace Qsvit.IO.Datasets;

/// <summary>
/// Per-channel normalization applied after scaling 8-bit pixels to [0, 1]: value = (x / 255 - Mean[c]) / Std[c],
/// computed in float32 in that order (torchvision ToTensor followed by Normalize). Mean and Std hold either one
/// entry per channel or a single entry used for every channel. Equality compares the values.
/// </summary>
public sealed record Normalization(float[] Mean, float[] Std)
{
    /// <summary>CIFAR-10 training-set statistics.</summary>
    public static Normalization Cifar10 => new([0.4914f, 0.4822f, 0.4465f], [0.2470f, 0.2435f, 0.2616f]);

    /// <summary>ImageNet training-set statistics.</summary>
    public static Normalization ImageNet => new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>Only x / 255.</summary>
    public static Normalization None => new([0f], [1f]);

    public bool Equals(Normalization? other) =>
        other is not null && Mean.AsSpan().SequenceEqual(other.Mean) && Std.AsSpan().SequenceEqual(other.Std);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var m in Mean) hash.Add(m);
        foreach (var s in Std) hash.Add(s);
        return hash.ToHashCode();
    }

    public override string ToString() => $"Normalization(mean [{string.Join(", ", Mean)}], std [{string.Join(", ", Std)}])";
}
