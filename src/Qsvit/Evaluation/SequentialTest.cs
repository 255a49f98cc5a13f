using Qsvit.IO.Datasets;

namespace Qsvit.Evaluation;

/// <summary>What a sequential accuracy-constraint test has concluded so far.</summary>
public enum SequentialVerdict
{
    /// <summary>Not enough evidence yet either way.</summary>
    Undecided,
    /// <summary>The candidate's drop from the reference is within the allowed drop.</summary>
    Pass,
    /// <summary>The candidate's drop exceeds the allowed drop.</summary>
    Fail,
}

/// <summary>
/// How sequential decisions are taken: the error budget α per decision and the chunks the split is evaluated in
/// (<see cref="FirstImages"/>, then growing by <see cref="Growth"/>, up to the whole split).
/// </summary>
public sealed record SequentialOptions
{
    public const double DefaultErrorBudget = 0.05;

    /// <summary>Largest probability that an early decision (one taken before the whole split is evaluated) is wrong.</summary>
    public double ErrorBudget { get; init; } = DefaultErrorBudget;
    /// <summary>Images of the first chunk (a clear decision needs ~100-200 paired images at a 5-point tolerance).</summary>
    public int FirstImages { get; init; } = 100;
    /// <summary>Each later chunk ends at this multiple of the previous end (rounded up), the last at the split's end.</summary>
    public double Growth { get; init; } = 1.5;

    public void Validate()
    {
        if (!(ErrorBudget > 0 && ErrorBudget < 1)) throw new QsvitException($"the error budget must lie in (0, 1), got {ErrorBudget}");
        if (FirstImages < 1) throw new QsvitException($"the first chunk needs at least one image, got {FirstImages}");
        if (!(Growth > 1) || double.IsInfinity(Growth)) throw new QsvitException($"chunk growth must be a finite factor above 1, got {Growth}");
    }

    /// <summary>
    /// Whether the dataset is stored class by class (labels never decrease, more than one class, and some class fills two
    /// images in a row: distinct ascending labels are also how an interleaved file's first images look): its first images are
    /// then no sample of it, which sequential decisions need. CIFAR files interleave classes; image folders do not.
    /// </summary>
    public static bool SortedByClass(IImageDataset data)
    {
        if (data.Count < 2) return false;
        int first = data.Label(0), previous = first;
        bool run = false;
        for (int i = 1; i < data.Count; i++)
        {
            int label = data.Label(i);
            if (label < previous) return false;
            run |= label == previous;
            previous = label;
        }
        return run && previous != first;
    }

    /// <summary>The image counts after each chunk (ascending, the last = <paramref name="total"/>).</summary>
    public IReadOnlyList<int> Looks(int total)
    {
        var looks = new List<int>();
        for (double end = FirstImages; end < total; end = Math.Ceiling(end * Growth)) looks.Add((int)end);
        looks.Add(total);
        return looks;
    }
}

/// <summary>
/// A sequential test of an accuracy constraint on paired per-image results: is the candidate's top-1 at most
/// <c>maxDrop</c> points below the reference's? Each image contributes d = (candidate right) − (reference right) ∈ {−1, 0, 1};
/// the constraint holds when the mean difference δ ≥ m = −maxDrop/100.
/// <para>Method: testing by betting (Shafer, "Testing by betting", JRSS-A 2021; Waudby-Smith and Ramdas, "Estimating
/// means of bounded random variables by betting", JRSS-B 2024). Two wealth processes bet against the two one-sided nulls,
/// K⁺ₜ = ∏(1 + λᵢ(dᵢ − m)) against "δ &lt; m" and K⁻ₜ = ∏(1 − λᵢ(dᵢ − m)) against "δ ≥ m", with predictable bets λᵢ (aGRAPA: the
/// growth-optimal bet for the running mean and variance of the earlier images, truncated so wealth stays positive). Under
/// its null each process is a nonnegative supermartingale, so by Ville's inequality it ever reaches 1/α with probability at
/// most α, at any stopping time and however often it is looked at. The test passes when K⁺ reaches 1/α and fails when K⁻
/// does; as only one null can be true, every early decision is wrong with probability at most α (the error budget). This is
/// equivalent to asking whether m lies outside an always-valid (1 − α) confidence sequence for δ.</para>
/// <para>Stated assumption: the images arrive in an order that makes them a random (or class-stratified) sample of the
/// split's distribution; CIFAR files are interleaved by class, image folders are not (callers refuse those).</para>
/// <para>A test that is still undecided when the last image of the split is in decides on the point estimate (the mean
/// over all images against m), which is exactly the non-sequential rule; <see cref="Curtailed"/> also stops as soon as the
/// remaining images cannot change that final outcome whatever they are (deterministic curtailment, no error at all).</para>
/// </summary>
public sealed class PairedDropTest
{
    /// <summary>Bets are truncated at this fraction of the largest bet that keeps wealth positive (Waudby-Smith and Ramdas use 1/2).</summary>
    private const double Truncation = 0.5;

    private readonly double _boundary, _logThreshold;
    private readonly bool[] _reference;
    private readonly int _total;
    private double _logPass, _logFail, _sum, _mean, _squares;
    private int _count, _referenceRightLeft;

    /// <param name="maxDropPoints">Largest allowed drop of the candidate below the reference, in accuracy points.</param>
    /// <param name="errorBudget">α: largest probability of a wrong early decision.</param>
    /// <param name="reference">The reference's per-image correctness over the whole split, in the order images are added
    /// (the test decides at its last image and curtails before).</param>
    public PairedDropTest(double maxDropPoints, double errorBudget, bool[] reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        int total = reference.Length;
        if (!(maxDropPoints >= 0) || maxDropPoints >= 100) throw new QsvitException($"the allowed drop must lie in [0, 100) points, got {maxDropPoints}");
        if (!(errorBudget > 0 && errorBudget < 1)) throw new QsvitException($"the error budget must lie in (0, 1), got {errorBudget}");
        if (total < 1) throw new QsvitException($"a sequential test needs a split of at least one image, got {total}");
        _boundary = -maxDropPoints / 100;
        _logThreshold = Math.Log(1 / errorBudget);
        _total = total;
        _reference = reference;
        _referenceRightLeft = reference.Count(r => r);
    }

    /// <summary>Images seen so far.</summary>
    public int Count => _count;

    /// <summary>The decision was forced by the remaining images being unable to change the full-split outcome.</summary>
    public bool Curtailed { get; private set; }

    /// <summary>Where the test stands after the images seen so far; final once it is not <see cref="SequentialVerdict.Undecided"/>.</summary>
    public SequentialVerdict Verdict { get; private set; }

    /// <summary>log K⁺ and log K⁻: evidence against failing and against passing.</summary>
    public (double Pass, double Fail) LogWealth => (_logPass, _logFail);

    /// <summary>Adds the next image's result of the candidate; no-op once decided.</summary>
    public SequentialVerdict Add(bool candidateRight)
    {
        if (Verdict != SequentialVerdict.Undecided) return Verdict;
        if (_count == _total) throw new InvalidOperationException($"the split has only {_total} images");
        bool referenceRight = _reference[_count];
        if (referenceRight) _referenceRightLeft--;
        double d = (candidateRight ? 1 : 0) - (referenceRight ? 1 : 0);

        // Predictable plug-ins: running mean (prior 0) and variance (prior 1/4, one pseudo-observation) of the earlier images.
        double mean = _sum / (_count + 1), variance = (0.25 + _squares) / (_count + 1);
        double edge = mean - _boundary;
        double bet = edge / (variance + edge * edge);
        double passBet = Math.Clamp(bet, 0, Truncation / (1 + _boundary));    // d − m ≥ −(1 + m)
        double failBet = Math.Clamp(-bet, 0, Truncation / (1 - _boundary));   // d − m ≤ 1 − m
        _logPass += Math.Log(1 + passBet * (d - _boundary));
        _logFail += Math.Log(1 - failBet * (d - _boundary));

        _count++;
        _sum += d;
        double updated = _sum / _count;
        _squares += (d - _mean) * (d - updated);   // Welford
        _mean = updated;

        if (_logPass >= _logThreshold) Verdict = SequentialVerdict.Pass;
        else if (_logFail >= _logThreshold) Verdict = SequentialVerdict.Fail;
        else
        {
            // Full-split rule: mean ≥ m, i.e. sum ≥ m·N (exact at the boundary, like the non-sequential searches). The
            // remaining images can lose at most where the reference is right and win at most where it is wrong.
            double needed = _boundary * _total - 1e-9;
            int remaining = _total - _count;
            if (_sum - _referenceRightLeft >= needed) Verdict = SequentialVerdict.Pass;
            else if (_sum + (remaining - _referenceRightLeft) < needed) Verdict = SequentialVerdict.Fail;
            Curtailed = Verdict != SequentialVerdict.Undecided && _count < _total;
        }
        return Verdict;
    }

    /// <summary>Adds images [Count, count) of a candidate correctness mask that covers at least <paramref name="count"/> images.</summary>
    public SequentialVerdict AddRange(ReadOnlySpan<bool> candidate, int count)
    {
        while (_count < count && Verdict == SequentialVerdict.Undecided) Add(candidate[_count]);
        return Verdict;
    }
}
