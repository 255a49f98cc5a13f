using Qsvit.Evaluation;

namespace Qsvit.Search;

/// <summary>A setting's top-1 on one split, with per-image correctness for paired comparisons.</summary>
public sealed record AccuracyRecord(string Setting, string Split, int Count, long Correct, bool[] CorrectMask, double Seconds)
{
    public Interval Top1 => Statistics.Accuracy(Correct, Count);
    public double Accuracy => Count == 0 ? 0 : 100.0 * Correct / Count;
    /// <summary>This accuracy minus <paramref name="baseline"/>'s over the same images, in points, with its 95 % interval.</summary>
    public Interval DifferenceFrom(AccuracyRecord baseline) => Statistics.PairedDifference(baseline.CorrectMask, CorrectMask);
}
