using System.Diagnostics;
using Qsvit.Evaluation;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>AQ4SViT variants: greedy (one setting carried forward) and beam (the best few).</summary>
public enum Aq4Method { Greedy, Beam }

/// <summary>What the search did with a candidate.</summary>
public enum Aq4Outcome
{
    /// <summary>Fully evaluated on the search split and within the accuracy constraint.</summary>
    Passed,
    /// <summary>Fully evaluated and over the constraint.</summary>
    Failed,
    /// <summary>Not fully evaluated: its drift is at or above the gate's threshold (predicted to fail).</summary>
    DriftGated,
    /// <summary>Neither evaluated nor measured: no unit has more bits than in a setting that failed (predicted to fail).</summary>
    Dominated,
    /// <summary>Drift measured (or estimated from an earlier step), but its step had accepted enough candidates before its turn came.</summary>
    NotReached,
    /// <summary>
    /// Greedy's path search: on the drift-ranked path but not evaluated, because a setting further down the path passed
    /// (accuracy does not rise as bits fall; the same assumption as <see cref="Dominated"/>).
    /// </summary>
    Implied,
}

/// <summary>How greedy spends its verifications (beam always verifies step by step).</summary>
public enum Aq4Verification
{
    /// <summary>
    /// Descend by drift alone (lazily re-measuring only the moves that could rank first), then search the path for its last
    /// passing setting: galloping to a bracket, then bisecting. A failure blocks that move and the descent resumes from the
    /// last pass. Same path as <see cref="Step"/> where the lazy ranking is exact and the gate does not err, with
    /// O(log depth) verifications per failure instead of one per step.
    /// </summary>
    Path,
    /// <summary>Verify each step's best-ranked move before taking the next step (the paper's; drift-gated).</summary>
    Step,
}

public sealed record Aq4Options
{
    public const double DefaultMaxDrop = 1.5;

    public Aq4Method Method { get; init; } = Aq4Method.Greedy;
    /// <summary>Beam: settings kept per step (greedy keeps one).</summary>
    public int BeamWidth { get; init; } = 4;
    /// <summary>Largest allowed top-1 drop from fp32 on the search split, in points.</summary>
    public double MaxDrop { get; init; } = DefaultMaxDrop;
    /// <summary>The split accuracy is constrained on (the oracle's name for it).</summary>
    public string SearchSplit { get; init; } = "val";
    /// <summary>Skip full evaluations the drift predicts to fail. Off, every candidate is verified in rank order (an ablation).</summary>
    public bool DriftGate { get; init; } = true;
    /// <summary>Greedy: how candidates are verified (<see cref="Aq4Verification"/>); beam ignores it.</summary>
    public Aq4Verification Verification { get; init; } = Aq4Verification.Path;
    /// <summary>
    /// Step-by-step search (beam; greedy with <see cref="Aq4Verification.Step"/>): measure a child's drift only once it ranks
    /// first on an estimate, its parent's drift plus the least drift the same move (unit and level) added where it was
    /// measured, as greedy's path search ranks lazily. Each step then measures the moves new to it and the few that rank
    /// first, instead of every child (with corrections, each measurement also pays a BatchNorm re-estimation pass). Exact
    /// where a move adds the same drift whatever the other units' widths; elsewhere an estimate above the child's true score
    /// can rank it too late ever to be measured, so the beam may take another path (BENCHMARKS.md: off by default).
    /// </summary>
    public bool LazyDrift { get; init; }
    /// <summary>
    /// Verify candidates sequentially on growing chunks of the search split under this error budget
    /// (<see cref="ConstraintDecider"/>); null evaluates each on the whole split. The chosen setting is always evaluated on
    /// the whole split.
    /// </summary>
    public SequentialOptions? Sequential { get; init; }

    /// <summary>Settings verified-and-kept per step.</summary>
    public int Width => Method == Aq4Method.Greedy ? 1 : BeamWidth;

    /// <summary>Greedy with <see cref="Aq4Verification.Path"/>.</summary>
    public bool PathSearch => Method == Aq4Method.Greedy && Verification == Aq4Verification.Path;

    public void Validate()
    {
        if (!Enum.IsDefined(Method)) throw new QsvitException($"unknown AQ4 method {(int)Method}");
        if (!Enum.IsDefined(Verification)) throw new QsvitException($"unknown AQ4 verification {(int)Verification}");
        if (BeamWidth < 1) throw new QsvitException($"beam width must be at least 1, got {BeamWidth}");
        if (!(MaxDrop >= 0) || double.IsInfinity(MaxDrop)) throw new QsvitException($"max drop must be a finite number of points >= 0, got {MaxDrop}");
        if (string.IsNullOrEmpty(SearchSplit)) throw new QsvitException("name the search split");
        Sequential?.Validate();
    }
}

/// <summary>Where a running search is, after each evaluation.</summary>
public readonly record struct Aq4Progress(int Step, int MaxSteps, int DriftEvaluations, int FullEvaluations,
    double BestMiB, double BestSavingPercent, string Activity);

/// <summary>
/// One setting the search looked at. <see cref="Score"/> is what candidates of a step were ranked by (lower first): drift
/// per MiB saved, by this move (greedy) or since fp32 (beam). Step 0 is the fp32 start.
/// </summary>
public sealed record Aq4Candidate(int Step, QuantizationSetting Setting, string? Parent, string? Unit, int FromBits, int ToBits,
    double MiB, double SavingPercent, double? Drift, double? SpikeMismatch, double? Score, Aq4Outcome Outcome,
    double? Accuracy, double? Drop, bool Accepted)
{
    public bool Verified => Outcome is Aq4Outcome.Passed or Aq4Outcome.Failed;
    /// <summary>Search-split images its verification used (fewer than the split for an early sequential decision).</summary>
    public int? Images { get; init; }
    /// <summary>Decided sequentially before the whole split, under the error budget.</summary>
    public bool Early { get; init; }
}

/// <summary>
/// The outcome of an AQ4SViT search. Evaluation counts are the distinct settings the search needed (the fp32 baseline
/// included), whether run now or replayed from a run store; <c>New*</c> count those this process actually ran.
/// Seconds are those recorded with each evaluation, so a resumed search reports the cost of the whole search.
/// <see cref="Steps"/> counts the steps run, the last being the one that kept nothing (or reached the bottom).
/// </summary>
public sealed record Aq4Result(
    Aq4Options Options,
    Aq4Space Space,
    QuantizationSetting Setting,
    MemoryFootprint Memory,
    AccuracyRecord Fp32Accuracy,
    AccuracyRecord Accuracy,
    IReadOnlyList<Aq4Candidate> Candidates,
    int Steps,
    int DriftEvaluations,
    int FullEvaluations,
    int NewDriftEvaluations,
    int NewFullEvaluations,
    double DriftSeconds,
    double FullSeconds,
    double WallSeconds,
    double GateThreshold)
{
    /// <summary>Search-split images the verifications used (each setting once, at the most it used); 0 when not counted.</summary>
    public long SearchImages { get; init; }
    /// <summary>Images of the whole search split.</summary>
    public int SplitImages { get; init; }
    /// <summary>Search-split work prefix reuse skipped, in images' worth of whole passes.</summary>
    public double ImagesSaved { get; init; }
    /// <summary>Calibration passes of the corrections after quantization, in images (<see cref="ISettingOracle.CorrectionImages"/>), counted as search images.</summary>
    public long CorrectionImages { get; init; }
    /// <summary>What prefix reuse did for accuracies and drift measurements; null when it was off.</summary>
    public PrefixReuseStats? Reuse { get; init; }
    public PrefixReuseStats? DriftReuse { get; init; }

    public Aq4Method Method => Options.Method;

    /// <summary>fp32 minus the chosen setting's top-1 on the search split, in points.</summary>
    public double Drop => Fp32Accuracy.Accuracy - Accuracy.Accuracy;

    /// <summary>The chosen setting's top-1 minus fp32's over the same images, with its 95 % paired interval.</summary>
    public Interval Difference => Accuracy.DifferenceFrom(Fp32Accuracy);

    /// <summary>
    /// Search cost in full-evaluation equivalents: search-split images evaluated (less the work prefix reuse skipped) over
    /// the split's size, plus the drift
    /// measurements' seconds in units of a whole-split evaluation's seconds. Drift in time, not image counts, because a drift
    /// pass also materializes and compares every membrane potential and so costs more per image than a plain evaluation.
    /// </summary>
    public double CostFullEquivalents
    {
        get
        {
            if (!(FullSeconds > 0)) return double.NaN;
            if (SplitImages <= 0 || SearchImages <= 0) return FullEvaluations + DriftSeconds / (FullSeconds / FullEvaluations);
            double full = Math.Max(0, SearchImages - ImagesSaved) / SplitImages;
            return full + DriftSeconds / (FullSeconds / full) + (double)CorrectionImages / SplitImages;
        }
    }

    /// <summary>
    /// Does the proxy work? Spearman rank correlation of drift with the measured drop over the verified candidates (fp32
    /// excluded); near 1 means ranking by drift ranks by accuracy loss. NaN with fewer than 3 points.
    /// </summary>
    public double ProxySpearman
    {
        get
        {
            var verified = Candidates.Where(c => c.Step > 0 && c.Verified && c.Drift is not null).ToArray();
            return Statistics.Spearman(verified.Select(c => c.Drift!.Value).ToArray(), verified.Select(c => c.Drop!.Value).ToArray());
        }
    }
}

/// <summary>
/// AQ4SViT: an accuracy-constrained mixed-precision search that screens candidates by membrane-potential drift and spends
/// full evaluations only where the drift says they can pay off.
/// <para>Both variants walk down from fp32 one move at a time; a move lowers one unit by one ladder step. Each step expands
/// the kept settings (greedy: 1, beam: B) into all their one-move children (deduplicated) and then:</para>
/// <list type="number">
/// <item>Dominance: a child that gives no unit more bits than a setting that already failed is predicted to fail without
/// even a drift measurement (accuracy does not rise as bits fall). In greedy this is the blocking of a unit whose lowering
/// failed: every later base has no more bits anywhere, so that unit stays where it is.</item>
/// <item>Drift: every other child gets one drift measurement and a score, drift per MiB saved. Greedy ranks moves: the drift
/// this move adds per MiB it saves. Beam ranks the resulting settings against each other, whatever parent they came from:
/// drift per MiB saved since fp32, so a beam entry is one that bought its saving cheaply.</item>
/// <item>Gate and verification: children are taken in score order; one whose drift is at or above the calibrated threshold
/// (<see cref="Aq4DriftGate"/>) is skipped, the others get a full evaluation on the search split until the step has kept
/// its width (greedy: the first that passes; beam: the first B that pass). If that keeps nothing, the best-ranked skipped
/// ones (up to the width) are verified in score order until one passes, so a prediction alone never ends the search. Only fully evaluated settings
/// within the constraint are kept, so the constraint can never be violated on the search split.</item>
/// </list>
/// <para>The search stops when a step keeps nothing and returns the smallest-memory setting that passed (ties: higher
/// accuracy). With a beam at least as wide as the number of feasible settings per depth, and an accuracy that falls with
/// bits and a drift that rises with the drop (so neither prediction errs), this is the exact optimum: every feasible
/// setting has a feasible parent one move up.</para>
/// </summary>
public static class Aq4Searcher
{
    public static Aq4Result Run(ISettingOracle oracle, Aq4Space space, Aq4Options options, Action<Aq4Progress>? progress = null)
    {
        options.Validate();
        return new Search(oracle, space, options, progress).Run();
    }

    /// <summary>A point of the space with its setting and memory.</summary>
    private sealed class Node(int[] levels, QuantizationSetting setting, MemoryFootprint memory)
    {
        public int[] Levels => levels;
        public QuantizationSetting Setting => setting;
        public string Key { get; } = setting.ToString();
        public MemoryFootprint Memory => memory;
        public DriftResult? Drift;
        public AccuracyRecord? Accuracy;
    }

    /// <summary>A candidate while its step runs.</summary>
    private sealed class Work(Node node, Node parent, int unit)
    {
        public Node Node => node;
        public Node Parent => parent;
        public int Unit => unit;
        public double Score = double.PositiveInfinity;
        public Aq4Outcome? Outcome;
        /// <summary>The step (depth below fp32) it was a candidate at.</summary>
        public int Step;
    }

    private sealed class Search(ISettingOracle oracle, Aq4Space space, Aq4Options options, Action<Aq4Progress>? progress)
    {
        private readonly Dictionary<string, DriftResult> _drifts = new(StringComparer.Ordinal);
        private readonly Dictionary<string, AccuracyRecord> _accuracies = new(StringComparer.Ordinal);
        private readonly List<int[]> _failed = new();
        private readonly List<Aq4Candidate> _log = new();
        private readonly Aq4DriftGate _gate = new(options.MaxDrop);
        private readonly Dictionary<string, ConstraintDecision> _decisions = new(StringComparer.Ordinal);
        private ConstraintDecider _decider = null!;
        private readonly int _fullBefore = oracle.FullEvaluations, _driftBefore = oracle.DriftEvaluations;
        private AccuracyRecord _fp32 = null!;
        private Node _best = null!;
        private int _step, _steps;
        private readonly HashSet<string> _seen = new(StringComparer.Ordinal);   // path search: children generated so far
        private readonly Dictionary<(int Unit, int Level), double> _added = new();   // step search: the least drift each move added

        public Aq4Result Run()
        {
            var clock = Stopwatch.StartNew();
            var root = NewNode(new int[space.Units.Count]);
            _fp32 = Verify(root);
            _decider = new ConstraintDecider(oracle, options.SearchSplit, _fp32, options.MaxDrop, options.Sequential);
            Measure(root);
            _gate.Add(root.Drift!.Drift, 0);
            _best = root;
            _log.Add(Record(root, null, -1, null, Aq4Outcome.Passed, accepted: true));

            if (options.PathSearch) SearchPaths(root);
            else
            {
                var kept = new List<Node> { root };
                while (kept.Count > 0 && _step < space.MaxDepth)
                {
                    _step++;
                    kept = Step(kept);
                    Report($"step {_step} kept {kept.Count}");
                }
                _steps = _step;
            }

            // A sequential pass leaves the chosen setting evaluated on a few chunks only: the result is on the whole split.
            if (_best.Accuracy!.Count < _fp32.Count) Verify(_best);

            return new Aq4Result(options, space, _best.Setting, _best.Memory, _fp32, _best.Accuracy!, _log, _steps,
                _drifts.Count, _accuracies.Count, oracle.DriftEvaluations - _driftBefore, oracle.FullEvaluations - _fullBefore,
                _drifts.Values.Sum(d => d.Seconds), _accuracies.Values.Sum(a => a.Seconds), clock.Elapsed.TotalSeconds, _gate.Threshold)
            {
                SearchImages = _accuracies.Values.Sum(a => (long)a.Count),
                SplitImages = _fp32.Count,
                ImagesSaved = oracle.ImagesSaved(options.SearchSplit),
                // Every setting run (verified or only drift-measured) is corrected once; fp32 is not.
                CorrectionImages = oracle.CorrectionImages(Math.Max(0, _accuracies.Keys.Union(_drifts.Keys).Count() - 1)),
                Reuse = oracle.Reuse,
                DriftReuse = oracle.DriftReuse,
            };
        }

        private List<Node> Step(List<Node> parents)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var works = parents.SelectMany(parent => Moves(parent, seen)).ToList();

            var open = new List<Work>();
            foreach (var w in works)
            {
                if (Dominated(w.Node)) w.Outcome = Aq4Outcome.Dominated;
                else open.Add(w);
            }
            // Lazy: a move already measured (at any parent, from the same level) is ranked on the least drift it added there,
            // and measured only once it ranks first; every other child is measured now.
            foreach (var w in open)
                if (!options.LazyDrift || !_added.ContainsKey(Move(w))) MeasureAndScore(w);

            var ranked = new List<Work>();   // in rank order, as taken
            var kept = new List<Node>();
            void CheckAndKeep(Work w)
            {
                if (Check(w)) kept.Add(w.Node);
            }
            while (open.Count > 0 && kept.Count < options.Width)
            {
                var best = open.OrderBy(w => w.Node.Drift is null ? Estimate(w) : w.Score).ThenBy(w => w.Node.Drift is null ? 1 : 0)
                    .ThenBy(w => w.Node.Memory.Bits).ThenBy(w => w.Node.Key, StringComparer.Ordinal).First();
                if (best.Node.Drift is null) { MeasureAndScore(best); continue; }
                open.Remove(best);
                ranked.Add(best);
                if (Dominated(best.Node)) best.Outcome = Aq4Outcome.Dominated;   // a failure earlier in this step
                else if (options.DriftGate && _gate.PredictsFail(best.Node.Drift!.Drift)) best.Outcome = Aq4Outcome.DriftGated;
                else CheckAndKeep(best);
            }
            // Not reached: measured ones in rank order, then those only estimated (their drift never measured).
            foreach (var w in open.OrderBy(w => w.Node.Drift is null ? 1 : 0).ThenBy(w => w.Node.Drift is null ? Estimate(w) : w.Score)
                         .ThenBy(w => w.Node.Memory.Bits).ThenBy(w => w.Node.Key, StringComparer.Ordinal))
            {
                w.Outcome = Aq4Outcome.NotReached;
                ranked.Add(w);
            }
            // The gate never ends a search on a prediction alone: a step that would keep nothing while it skipped candidates
            // verifies the best-ranked of those (up to its width) until it keeps one. The threshold is fitted to noisy drops,
            // and settings deep in the search carry the drift of every move before them, so without this a beam that bought
            // early savings with drift stopped far above what greedy reached (54 % against 87 % saving on the bundled model).
            int tries = 0;
            foreach (var w in ranked)
            {
                if (kept.Count > 0 || tries == options.Width) break;
                if (w.Outcome != Aq4Outcome.DriftGated) continue;
                if (Dominated(w.Node)) w.Outcome = Aq4Outcome.Dominated;
                else { tries++; CheckAndKeep(w); }
            }
            // Rank order first, then those dominated before ranking (no drift, no score).
            foreach (var w in ranked.Concat(works.Except(ranked)))
                _log.Add(Record(w.Node, w.Parent, w.Unit, w.Node.Drift is null ? null : w.Score, w.Outcome!.Value,
                    accepted: w.Outcome == Aq4Outcome.Passed));
            return kept;

            // Measures a child's drift, scores it and remembers the least drift its move added (for lazy ranking).
            void MeasureAndScore(Work w)
            {
                Measure(w.Node);
                w.Score = Score(w);
                double added = w.Node.Drift!.Drift - w.Parent.Drift!.Drift;
                _added[Move(w)] = _added.TryGetValue(Move(w), out var known) ? Math.Min(known, added) : added;
            }
        }

        /// <summary>A move as lazy ranking remembers it: the unit and the level it is lowered from.</summary>
        private static (int Unit, int Level) Move(Work w) => (w.Unit, w.Parent.Levels[w.Unit]);

        /// <summary>
        /// A child's score before its drift is measured: its parent's drift plus the least drift the same move added where it
        /// was measured, per MiB saved (as <see cref="Score(Work)"/> ranks it).
        /// </summary>
        private double Estimate(Work w)
        {
            var from = options.Method == Aq4Method.Greedy ? w.Parent : null;
            double savedMiB = ((from?.Memory.Bits ?? w.Node.Memory.Fp32Bits) - w.Node.Memory.Bits) / 8.0 / MemoryFootprint.BytesPerMiB;
            double drift = w.Parent.Drift!.Drift + _added[Move(w)];
            double added = drift - (from?.Drift!.Drift ?? 0);
            return savedMiB > 0 ? added / savedMiB : double.PositiveInfinity;
        }

        /// <summary>
        /// Greedy's path search (<see cref="Aq4Verification.Path"/>). From the last verified pass, descend one drift-ranked
        /// move at a time without verifying; then find the path's last passing setting with O(log depth) sequential
        /// decisions: gallop to a bracket, then bisect to the first failure. The first path runs down to where no move is left
        /// and is galloped back from its end (offsets 0, 1, 3, 7, …: accuracy often holds down to a cliff near the ladder's
        /// bottom, and settings far past the constraint fail on few images). A path resumed after a failure starts near the
        /// constraint: it is probed forward (1, 2, 4, … moves down) and descended only as deep as the probes go, and, as in
        /// step-by-step greedy, a move the drift gate predicts to fail gives way to the next-ranked one. Settings above the
        /// last pass are implied to pass (accuracy does not rise as bits fall), those below the first failure are dominated by
        /// it. The failure blocks its move and the descent resumes from the last pass, as step-by-step greedy would try the
        /// next-ranked move there. With the cliff at the bottom this verifies 2 settings where step-by-step greedy verifies
        /// one per step.
        /// </summary>
        private void SearchPaths(Node root)
        {
            var all = new List<Work>();
            var children = new Dictionary<string, List<Work>>(StringComparer.Ordinal);
            var stale = new Dictionary<(int Unit, int Level), (double Score, int Depth)>();
            var depth = new Dictionary<string, int>(StringComparer.Ordinal) { [root.Key] = 0 };
            var tried = new HashSet<string>(StringComparer.Ordinal);
            for (var start = root; ;)
            {
                var path = new List<Work>();   // path[i - 1] is the setting i moves below start
                // Extends the path by drift alone to at least `length` moves, or as far as moves are left.
                void Extend(int length)
                {
                    while (path.Count < length)
                    {
                        var node = path.Count == 0 ? start : path[^1].Node;
                        _step = depth[node.Key] + 1;
                        _steps++;
                        var next = Descend(node, children, stale, all, tried);
                        if (next is null) return;
                        path.Add(next);
                        depth[next.Node.Key] = _step;
                        Report($"step {_step} took {space.Units[next.Unit].Name}");
                    }
                }
                int lo = 0, hi = int.MaxValue;   // the last known pass (0: start) and the first known failure
                if (start == root)
                {
                    Extend(int.MaxValue);
                    int n = path.Count;
                    for (int back = 0; n - back > lo; back = 2 * back + 1)
                    {
                        if (Check(path[n - back - 1])) { lo = n - back; break; }
                        hi = n - back;
                    }
                }
                else
                    // Only as deep as the probes go: a failure a few moves down ends the descent there.
                    for (int ahead = 1; ; ahead *= 2)
                    {
                        Extend(ahead);
                        int i = Math.Min(ahead, path.Count);
                        if (i <= lo) break;
                        if (!Check(path[i - 1])) { hi = i; break; }
                        lo = i;
                    }
                while (hi <= path.Count && hi - lo > 1)
                {
                    int mid = (lo + hi) / 2;
                    if (Check(path[mid - 1])) lo = mid;
                    else hi = mid;
                }
                for (int i = 1; i <= path.Count; i++) path[i - 1].Outcome ??= i < lo ? Aq4Outcome.Implied : Aq4Outcome.Dominated;
                Report($"path of {path.Count} moves: last pass at {lo}");
                if (hi > path.Count) break;
                start = lo == 0 ? start : path[lo - 1].Node;
                // Scores measured below the new start were on the abandoned path, not above the settings still to rank.
                foreach (var key in stale.Where(kv => kv.Value.Depth > depth[start.Key]).Select(kv => kv.Key).ToArray()) stale.Remove(key);
            }
            foreach (var w in all)
                _log.Add(Record(w.Node, w.Parent, w.Unit, w.Node.Drift is null ? null : w.Score, w.Outcome ?? Aq4Outcome.NotReached,
                    accepted: w.Outcome == Aq4Outcome.Passed, w.Step));
        }

        /// <summary>
        /// The best-ranked open move below <paramref name="node"/>, or null when none is left. Lazy: a move scored at a setting
        /// above this one keeps that score as its estimate and is measured here only once it ranks first, until a measured one
        /// does (exact when a move's score never falls as the setting above it descends).
        /// </summary>
        private Work? Descend(Node node, Dictionary<string, List<Work>> children, Dictionary<(int Unit, int Level), (double Score, int Depth)> stale,
            List<Work> all, HashSet<string> tried)
        {
            if (!children.TryGetValue(node.Key, out var works))
            {
                // A child seen below another parent was on a path abandoned at a failure it inherits (dominated).
                children[node.Key] = works = Moves(node, _seen).ToList();
                all.AddRange(works);
            }
            var open = new List<Work>();
            foreach (var w in works)
            {
                if (w.Outcome is not null) continue;
                if (Dominated(w.Node)) w.Outcome = Aq4Outcome.Dominated;
                else open.Add(w);
            }
            // Measures a child's drift and scores it; the score stands as its move's estimate further down the path.
            void MeasureAndScore(Work w)
            {
                Measure(w.Node);
                w.Score = Score(w);
                stale[(w.Unit, w.Parent.Levels[w.Unit])] = (w.Score, w.Step - 1);
            }
            foreach (var w in open)
                if (w.Node.Drift is null && !stale.ContainsKey((w.Unit, node.Levels[w.Unit]))) MeasureAndScore(w);
            while (open.Count > 0)
            {
                var best = open.OrderBy(w => w.Node.Drift is null ? stale[(w.Unit, node.Levels[w.Unit])].Score : w.Score)
                    .ThenBy(w => w.Node.Drift is null ? 1 : 0).ThenBy(w => w.Node.Memory.Bits).ThenBy(w => w.Node.Key, StringComparer.Ordinal).First();
                if (best.Node.Drift is null) { MeasureAndScore(best); continue; }
                // As in step-by-step greedy: a move the gate predicts to fail gives way to the next-ranked one.
                if (!options.DriftGate || !_gate.PredictsFail(best.Node.Drift.Drift)) return best;
                best.Outcome = Aq4Outcome.DriftGated;
                open.Remove(best);
            }
            // The gate never ends a search on a prediction alone: once per setting, its best-ranked gated move is tried.
            var gated = works.Where(w => w.Outcome == Aq4Outcome.DriftGated && !Dominated(w.Node)).OrderBy(w => w.Score)
                .ThenBy(w => w.Node.Memory.Bits).ThenBy(w => w.Node.Key, StringComparer.Ordinal).FirstOrDefault();
            if (gated is null || !tried.Add(node.Key)) return null;
            gated.Outcome = null;
            return gated;
        }

        /// <summary>A sequential decision on one setting (of a path or a step): kept as the best if it passes, blocks its move if it fails.</summary>
        private bool Check(Work w)
        {
            _step = w.Step;
            var decision = Decide(w.Node);
            _gate.Add(w.Node.Drift!.Drift, Drop(w.Node.Accuracy!));
            if (decision.Passed)
            {
                w.Outcome = Aq4Outcome.Passed;
                if (Better(w.Node, _best)) _best = w.Node;
            }
            else
            {
                w.Outcome = Aq4Outcome.Failed;
                _failed.Add(w.Node.Levels);
            }
            return decision.Passed;
        }

        private double Score(Work w)
        {
            double drift = w.Node.Drift!.Drift;
            var from = options.Method == Aq4Method.Greedy ? w.Parent : null;
            double savedMiB = ((from?.Memory.Bits ?? w.Node.Memory.Fp32Bits) - w.Node.Memory.Bits) / 8.0 / MemoryFootprint.BytesPerMiB;
            double added = drift - (from?.Drift!.Drift ?? 0);
            return savedMiB > 0 ? added / savedMiB : double.PositiveInfinity;
        }

        /// <summary>The one-move children of <paramref name="parent"/> (one unit one ladder step lower) not yet in <paramref name="seen"/>.</summary>
        private IEnumerable<Work> Moves(Node parent, HashSet<string> seen)
        {
            for (int u = 0; u < space.Units.Count; u++)
            {
                if (parent.Levels[u] == space.Ladder.Count - 1) continue;
                var levels = (int[])parent.Levels.Clone();
                levels[u]++;
                var child = NewNode(levels);
                if (seen.Add(child.Key)) yield return new Work(child, parent, u) { Step = _step };
            }
        }

        /// <summary>No unit has more bits than in some setting that failed.</summary>
        private bool Dominated(Node node) =>
            _failed.Any(f => node.Levels.Select((level, u) => level >= f[u]).All(x => x));

        private static bool Better(Node a, Node b) =>
            a.Memory.Bits != b.Memory.Bits ? a.Memory.Bits < b.Memory.Bits
            : a.Accuracy!.Accuracy != b.Accuracy!.Accuracy ? a.Accuracy.Accuracy > b.Accuracy.Accuracy
            : string.CompareOrdinal(a.Key, b.Key) < 0;

        /// <summary>fp32 minus the setting's top-1 over the same images (the first chunks for a sequential decision).</summary>
        private double Drop(AccuracyRecord r) => -r.DifferenceFrom(_fp32).Value;

        private ConstraintDecision Decide(Node node)
        {
            var d = _decider.Decide(node.Setting);
            node.Accuracy = d.Accuracy;
            _accuracies[node.Key] = d.Accuracy;
            _decisions[node.Key] = d;
            Report($"verified {node.Memory.MiB:F3} MiB: {d.Accuracy.Accuracy:F2} % on {d.Images} images, {(d.Passed ? "pass" : "fail")}");
            return d;
        }

        private Node NewNode(int[] levels)
        {
            var setting = space.Setting(levels);
            return new Node(levels, setting, MemoryFootprint.Compute(space.Layout, setting));
        }

        private void Measure(Node node)
        {
            node.Drift = oracle.Drift(node.Setting);
            _drifts[node.Key] = node.Drift;
            Report($"drift {node.Drift.Drift:G3}");
        }

        private AccuracyRecord Verify(Node node)
        {
            var r = oracle.Accuracy(node.Setting, options.SearchSplit);
            if (_accuracies.Count > 0 && r.Count != _fp32.Count)
                throw new InvalidOperationException($"search split gave {r.Count} images for {node.Key}, {_fp32.Count} for fp32");
            node.Accuracy = r;
            _accuracies[node.Key] = r;
            Report($"verified {node.Memory.MiB:F3} MiB: {r.Accuracy:F2} %");
            return r;
        }

        private Aq4Candidate Record(Node node, Node? parent, int unit, double? score, Aq4Outcome outcome, bool accepted, int? step = null) => new(
            step ?? _step, node.Setting, parent?.Key, unit < 0 ? null : space.Units[unit].Name,
            unit < 0 ? Quantizer.FullPrecision : space.Ladder[parent!.Levels[unit]], unit < 0 ? Quantizer.FullPrecision : space.Ladder[node.Levels[unit]],
            node.Memory.MiB, node.Memory.SavingPercent, node.Drift?.Drift, node.Drift?.SpikeMismatch, score, outcome,
            node.Accuracy?.Accuracy, node.Accuracy is null ? null : Drop(node.Accuracy), accepted)
        {
            Images = node.Accuracy?.Count,
            Early = _decisions.TryGetValue(node.Key, out var d) && d.Early,
        };

        private void Report(string activity) =>
            progress?.Invoke(new Aq4Progress(_step, space.MaxDepth, _drifts.Count, _accuracies.Count,
                _best?.Memory.MiB ?? double.NaN, _best?.Memory.SavingPercent ?? 0, activity));
    }
}
