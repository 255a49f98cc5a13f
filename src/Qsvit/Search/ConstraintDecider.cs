using Qsvit.Evaluation;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>
/// One pass/fail decision of a search against its accuracy constraint. <see cref="Accuracy"/> covers the images the
/// decision evaluated (<see cref="Images"/> of the split's <see cref="SplitImages"/>); <see cref="Early"/> is a sequential
/// decision taken before the whole split, under the error budget.
/// </summary>
public sealed record ConstraintDecision(bool Passed, AccuracyRecord Accuracy, int Images, int SplitImages, bool Early)
{
    public bool Sequential => Images < SplitImages;
}

/// <summary>
/// Decides whether settings keep a search's accuracy constraint (at most <c>maxDrop</c> points below the reference on the
/// search split). Without <see cref="SequentialOptions"/> each setting is evaluated on the whole split and passes when its
/// accuracy is within the allowed drop of the reference's. With them the split is evaluated in growing chunks and a
/// <see cref="PairedDropTest"/> on the paired differences stops as soon as the decision is clear: an early decision is wrong
/// with probability at most the error budget; one that stays open to the end is the whole-split decision above.
/// </summary>
public sealed class ConstraintDecider
{
    private readonly ISettingOracle _oracle;
    private readonly AccuracyRecord _reference;
    private readonly Dictionary<string, ConstraintDecision> _decided = new(StringComparer.Ordinal);

    public string Split { get; }
    public double MaxDrop { get; }
    public SequentialOptions? Sequential { get; }

    /// <param name="reference">The reference's whole-split result (fp32): every difference is paired with it.</param>
    public ConstraintDecider(ISettingOracle oracle, string split, AccuracyRecord reference, double maxDrop, SequentialOptions? sequential)
    {
        sequential?.Validate();
        _oracle = oracle;
        _reference = reference;
        Split = split;
        MaxDrop = maxDrop;
        Sequential = sequential;
    }

    /// <summary>Decisions taken so far, by setting text.</summary>
    public IReadOnlyDictionary<string, ConstraintDecision> Decisions => _decided;

    /// <summary>Search-split images the decisions evaluated (each setting counted once, at its largest chunk).</summary>
    public long Images => _decided.Values.Sum(d => (long)d.Images);

    public ConstraintDecision Decide(QuantizationSetting setting)
    {
        var key = setting.ToString();
        if (_decided.TryGetValue(key, out var known)) return known;
        int total = _reference.Count;
        ConstraintDecision decision;
        if (Sequential is null)
        {
            var r = _oracle.Accuracy(setting, Split);
            decision = new ConstraintDecision(Within(r), r, r.Count, total, Early: false);
        }
        else
        {
            var test = new PairedDropTest(MaxDrop, Sequential.ErrorBudget, _reference.CorrectMask);
            AccuracyRecord r = null!;
            foreach (int look in Sequential.Looks(total))
            {
                r = _oracle.Accuracy(setting, Split, look);
                if (r.Count < Math.Min(look, total) || r.Count > total)
                    throw new InvalidOperationException($"asked for {look} images of {Split}, got {r.Count} (split of {total})");
                if (test.AddRange(r.CorrectMask, r.Count) != SequentialVerdict.Undecided) break;
            }
            decision = new ConstraintDecision(test.Verdict == SequentialVerdict.Pass, r, r.Count, total,
                Early: r.Count < total && !test.Curtailed);
        }
        _decided[key] = decision;
        return decision;
    }

    /// <summary>The whole-split rule: the accuracy is within the allowed drop of the reference's (exact at the boundary).</summary>
    public bool Within(AccuracyRecord r) => r.Accuracy >= _reference.Accuracy - MaxDrop - 1e-9;
}
