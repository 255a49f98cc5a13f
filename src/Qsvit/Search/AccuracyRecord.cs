using Qsvit.Evaluation;

namespace Qsvit.Search;

/// <summary>A setting's top-1 on one split, with per-image correctness for paired comparisons.</summary>
public sealed record AccuracyRecord(string Setting, string Split, int Count, long Correct, bool[] CorrectMask, double Seconds)
{
    public Interval Top1 => Statistics.Accuracy(Correct, Count);
    public double Accuracy => Count == 0 ? 0 : 100.0 * Correct / Count;
    /// <summary>
    /// This accuracy minus <paramref name="baseline"/>'s over the same images, in points, with its 95 % interval; a record of
    /// the first images of a split (a sequential decision's) is compared with the baseline's first images.
    /// </summary>
    public Interval DifferenceFrom(AccuracyRecord baseline) =>
        Count <= baseline.Count ? Statistics.PairedDifference(baseline.CorrectMask.AsSpan(0, Count), CorrectMask)
            : throw new ArgumentException($"{Setting} covers {Count} images of {Split}, its baseline only {baseline.Count}");
}
