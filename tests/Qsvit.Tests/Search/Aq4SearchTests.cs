using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Tests.Search;

public sealed class Aq4SearchTests
{
    private const double Fp32Accuracy = 90;

    /// <summary>
    /// A knapsack trap at block granularity, one width (8) below 32. Lowering A, B or C costs 0.5, 0.5, 1.4 points, anything
    /// else 10; drift is proportional to the drop. C holds more weights than A and B together, yet B and then C rank first
    /// by drift per MiB. Greedy takes B, then C fails (1.9 points) and it settles for A+B; the optimum is C alone.
    /// </summary>
    private static (Aq4Space Space, FakeDriftOracle Oracle) Trap()
    {
        const string a = "CONV_S1_B2", b = "TRAN_S4", c = "CONV_S2_B1";
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Block, [8]);
        long Weights(string u) => space.Units.Single(x => x.Name == u).Weights;
        Assert.True(Weights(c) > Weights(a) + Weights(b), "C must save more than A and B together");
        Assert.True(0.5 / Weights(b) < 1.4 / Weights(c) && 1.4 / Weights(c) < 0.5 / Weights(a), "rank order B, C, A");
        var cost = new Dictionary<string, double> { [a] = 0.5, [b] = 0.5, [c] = 1.4 };
        double Drop(QuantizationSetting s) => s.Entries.Where(e => e.Value != 32).Sum(e => cost.GetValueOrDefault(e.Key, 10));
        return (space, new FakeDriftOracle(s => Fp32Accuracy - Drop(s), s => 0.01 * Drop(s)));
    }

    private static HashSet<string> Lowered(QuantizationSetting s) => s.Entries.Where(e => e.Value != 32).Select(e => e.Key).ToHashSet();

    [Fact]
    public void Greedy_FallsIntoTheTrap_WideBeamFindsTheOptimum()
    {
        var (space, oracle) = Trap();
        var optimum = Aq4Fixtures.BruteForce(space, oracle, 1.5);

        var greedy = Aq4Searcher.Run(oracle, space, new Aq4Options { Method = Aq4Method.Greedy });
        Assert.Equal(["CONV_S1_B2", "TRAN_S4"], Lowered(greedy.Setting).Order());
        Assert.True(greedy.Memory.Bits > optimum.Bits);
        Assert.Equal(1.0, greedy.Drop, 9);

        var narrow = Aq4Searcher.Run(Trap().Oracle, space, new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 1 });
        Assert.Equal(greedy.Setting, narrow.Setting);

        foreach (int width in new[] { 2, 3, 8 })
        {
            var beam = Aq4Searcher.Run(Trap().Oracle, space, new Aq4Options { Method = Aq4Method.Beam, BeamWidth = width });
            Assert.Equal(["CONV_S2_B1"], Lowered(beam.Setting));
            Assert.Equal(optimum.Bits, beam.Memory.Bits);
            Assert.Equal(optimum.Accuracy, beam.Accuracy.Accuracy, 9);
        }
    }

    [Fact]
    public void Greedy_LogsTheTrap_BlockedUnitIsDominatedAndGateSkipsTheRest()
    {
        var (space, oracle) = Trap();
        var r = Aq4Searcher.Run(oracle, space, new Aq4Options { Verification = Aq4Verification.Step });
        var root = Assert.Single(r.Candidates, c => c.Step == 0);
        Assert.Equal(0, root.Drift);
        Assert.True(root.Accepted);

        // Step 1 verifies B only; step 2 ranks C first, which fails, then accepts A; step 3 has only predicted failures, so
        // it verifies the best-ranked of them (greedy's width: one), which fails, and the search ends.
        Assert.Equal(["TRAN_S4"], r.Candidates.Where(c => c.Step == 1 && c.Verified).Select(c => c.Unit));
        Assert.Equal([("CONV_S2_B1", Aq4Outcome.Failed), ("CONV_S1_B2", Aq4Outcome.Passed)],
            r.Candidates.Where(c => c.Step == 2 && c.Verified).Select(c => (c.Unit, c.Outcome)));
        var step3 = r.Candidates.Where(c => c.Step == 3).ToArray();
        Assert.Equal(Aq4Outcome.Dominated, step3.Single(c => c.Unit == "CONV_S2_B1").Outcome);
        Assert.Null(step3.Single(c => c.Unit == "CONV_S2_B1").Drift);   // blocked units cost no drift measurement
        var ranked = step3.Where(c => c.Unit != "CONV_S2_B1").ToArray();   // logged in rank order
        Assert.Equal(Aq4Outcome.Failed, ranked[0].Outcome);
        Assert.All(ranked.Skip(1), c => Assert.Equal(Aq4Outcome.DriftGated, c.Outcome));
        Assert.Equal(3, r.Steps);

        // fp32 + B + C-fail + A + the last step's try: five full evaluations; cost adds the drift seconds in full-evaluation units.
        Assert.Equal(5, r.FullEvaluations);
        Assert.Equal(oracle.FullEvaluations, r.NewFullEvaluations);
        Assert.Equal(r.Candidates.Count(c => c.Drift is not null), r.DriftEvaluations);
        Assert.Equal(5 + r.DriftEvaluations * FakeDriftOracle.DriftSecondsEach / FakeDriftOracle.FullSecondsEach, r.CostFullEquivalents, 9);
        Assert.Equal(0.019, r.GateThreshold, 12);
        Assert.Equal(1.0, r.ProxySpearman, 9);   // drift is proportional to the drop here
        Assert.Equal(MemoryFootprint.Compute(space.Layout, r.Setting).Bits, r.Memory.Bits);
    }

    /// <summary>Accuracy falls monotonically with bits (with interactions); drift rises strictly with the drop.</summary>
    private static FakeDriftOracle MonotoneSurface(Aq4Space space, int seed)
    {
        var rng = new Random(seed);
        var units = space.Units.Select(u => u.Name).ToArray();
        var penalty = units.ToDictionary(u => u, _ =>
        {
            double total = 0;
            return space.Ladder.Select((_, level) => level == 0 ? 0 : total += Math.Pow(rng.NextDouble(), 2) * 1.2).ToArray();
        });
        double interaction = rng.NextDouble() * 0.3;
        double Drop(QuantizationSetting s)
        {
            var p = space.Units.Select(u => penalty[u.Name][space.Ladder.ToList().IndexOf(s[u.Members[0]])]).ToArray();
            double pairs = 0;
            for (int i = 0; i < p.Length; i++) for (int j = i + 1; j < p.Length; j++) pairs += p[i] * p[j];
            return p.Sum() + interaction * pairs;
        }
        return new FakeDriftOracle(s => Fp32Accuracy - Drop(s), s => 0.02 * Math.Sqrt(Drop(s)) + 0.001 * Drop(s));
    }

    [Fact]
    public void Beam_WideEnough_FindsTheExhaustiveOptimum_GateChangesNothingButCost()
    {
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [16, 8, 4, 2]);
        int gatedFull = 0, ungatedFull = 0;
        for (int seed = 0; seed < 25; seed++)
        {
            var optimum = Aq4Fixtures.BruteForce(space, MonotoneSurface(space, seed), 1.5);
            var beam = Aq4Searcher.Run(MonotoneSurface(space, seed), space, new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 1000 });
            Assert.Equal(optimum.Bits, beam.Memory.Bits);
            Assert.Equal(optimum.Accuracy, beam.Accuracy.Accuracy, 9);

            var ungated = Aq4Searcher.Run(MonotoneSurface(space, seed), space,
                new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 1000, DriftGate = false });
            Assert.Equal(beam.Setting, ungated.Setting);
            gatedFull += beam.FullEvaluations;
            ungatedFull += ungated.FullEvaluations;

            var greedy = Aq4Searcher.Run(MonotoneSurface(space, seed), space, new Aq4Options());
            Assert.True(greedy.Memory.Bits >= optimum.Bits);
            Assert.True(greedy.Drop <= 1.5 + 1e-9);
        }
        Assert.True(gatedFull < ungatedFull, $"the drift gate saved nothing ({gatedFull} vs {ungatedFull} full evaluations)");
    }

    [Fact]
    public void Constraint_IsNeverViolatedOnTheSearchSplit_OnRandomNoisySurfaces()
    {
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Block, Aq4Space.DefaultBits(QuantizerSpec.Parse("symmetric")));
        for (int seed = 0; seed < 30; seed++)
        {
            // Non-monotone accuracy (noise per setting) and a drift that only loosely follows the drop: both predictions err.
            var sensitivity = Enumerable.Range(0, space.Units.Count).Select(i => 0.05 + 0.1 * i).ToArray();
            new Random(seed).Shuffle(sensitivity);
            double Drop(QuantizationSetting s) => space.Units.Select((u, i) =>
                sensitivity[i] * Math.Pow(2, (16 - Math.Min(16, s[u.Members[0]])) / 2.5)).Sum() - 0.3;
            var oracle = new FakeDriftOracle(s => Fp32Accuracy - Math.Max(-1, Drop(s)) + 0.8 * Aq4Fixtures.Noise(s, 2 * seed),
                s => Math.Max(0, Drop(s) + 1.5 * Aq4Fixtures.Noise(s, 2 * seed + 1)));
            foreach (var options in new[] { new Aq4Options(), new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 3, MaxDrop = 0.7 } })
            {
                var r = Aq4Searcher.Run(oracle, space, options);
                double fp32 = oracle.Reported(space.Setting(new int[space.Units.Count]));
                Assert.Equal(fp32, r.Fp32Accuracy.Accuracy, 9);
                Assert.Equal(oracle.Reported(r.Setting), r.Accuracy.Accuracy, 9);   // measured, not predicted
                Assert.True(fp32 - oracle.Reported(r.Setting) <= options.MaxDrop + 1e-9, $"seed {seed}: drop {r.Drop}");
                Assert.Contains(r.Setting, oracle.Evaluated);
                foreach (var c in r.Candidates.Where(c => c.Accepted))
                {
                    Assert.True(c.Verified);
                    Assert.True(fp32 - oracle.Reported(c.Setting) <= options.MaxDrop + 1e-9);
                }
                Assert.All(r.Candidates.Where(c => !c.Verified), c => Assert.Null(c.Accuracy));
                Assert.Equal(r.Candidates.Count(c => c.Verified), r.FullEvaluations);
                Assert.Equal(r.Candidates.Count, r.Candidates.Select(c => c.Setting).Distinct().Count());
            }
        }
    }

    [Fact]
    public void A_gate_that_skips_every_candidate_does_not_end_the_search()
    {
        // Lowering stage 1 costs 2 points at a tiny drift; every other stage 0.3 points at a large drift. Stage 1 ranks
        // first and fails, which puts the gate's threshold below every other candidate: the step must still try them.
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [8]);
        static bool Lower(QuantizationSetting s, int stage) => s.Entries.Any(e => e.Value != 32 && e.Key.Contains($"_S{stage}"));
        static double Drop(QuantizationSetting s) => (Lower(s, 1) ? 2 : 0) + 0.3 * Enumerable.Range(2, 3).Count(i => Lower(s, i));
        static double Drift(QuantizationSetting s) => (Lower(s, 1) ? 0.001 : 0) + 0.5 * Enumerable.Range(2, 3).Count(i => Lower(s, i));
        foreach (var options in new[] { new Aq4Options(), new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 2 } })
        {
            var r = Aq4Searcher.Run(new FakeDriftOracle(s => Fp32Accuracy - Drop(s), Drift), space, options);
            Assert.Equal([false, true, true, true], Enumerable.Range(1, 4).Select(i => Lower(r.Setting, i)));
            Assert.Equal(Aq4Outcome.Failed, r.Candidates.First(c => c.Step == 1 && c.Verified).Outcome);
        }
    }

    [Fact]
    public void Beam_ReturnsTheSmallestVerifiedSetting_NotTheLastKept()
    {
        // Lowering anything past 16 bits fails, so the beam's last step keeps only 16-bit settings of one unit each; the
        // answer must still be the smallest verified-feasible setting over all steps.
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [16, 8]);
        var oracle = new FakeDriftOracle(s => s.Entries.Any(e => e.Value == 8) ? 80 : 90 - 0.1 * s.Entries.Count(e => e.Value == 16),
            s => s.Entries.Sum(e => e.Value == 8 ? 1.0 : e.Value == 16 ? 0.01 : 0));
        var r = Aq4Searcher.Run(oracle, space, new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 2 });
        Assert.All(r.Setting.Entries, e => Assert.Equal(16, e.Value));
        var passed = r.Candidates.Where(c => c.Outcome == Aq4Outcome.Passed).ToArray();
        Assert.Equal(passed.Min(c => c.MiB), r.Memory.MiB, 12);
    }

    /// <summary>
    /// Accuracy falls monotonically with bits, each unit's drops rising along the ladder (gently: most moves pass) and
    /// amplified by what is already lowered; drift is proportional to the drop, so a move's drift per MiB never falls as the setting above it descends
    /// (lazy re-measurement is exact) and the ranking never errs.
    /// </summary>
    private static FakeDriftOracle AmplifyingSurface(Aq4Space space, int seed)
    {
        var rng = new Random(seed);
        var penalty = space.Units.ToDictionary(u => u.Name, _ =>
        {
            double total = 0;
            return space.Ladder.Select((_, level) => level == 0 ? 0 : total += Math.Pow(rng.NextDouble(), 2) * 0.3).ToArray();
        });
        double amplify = 0.1 + rng.NextDouble() * 0.3;
        double Drop(QuantizationSetting s)
        {
            double sum = space.Units.Sum(u => penalty[u.Name][space.Ladder.ToList().IndexOf(s[u.Members[0]])]);
            return sum * (1 + amplify * sum);
        }
        return new FakeDriftOracle(s => Fp32Accuracy - Drop(s), s => 0.01 * Drop(s));
    }

    [Fact]
    public void Lazy_drift_beam_keeps_what_the_eager_beam_keeps_with_fewer_drift_measurements()
    {
        // Additive drops and a drift proportional to them: a move adds the same drift at every parent, so the lazy estimates
        // are exact and the beam must keep, verify and return exactly what the eager one does.
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [16, 8, 4, 2]);
        int eagerDrift = 0, lazyDrift = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            var rng = new Random(seed);
            var penalty = space.Units.ToDictionary(u => u.Name, _ =>
            {
                double total = 0;
                return space.Ladder.Select((_, level) => level == 0 ? 0 : total += Math.Pow(rng.NextDouble(), 2) * 0.6).ToArray();
            });
            double Drop(QuantizationSetting s) => space.Units.Sum(u => penalty[u.Name][space.Ladder.ToList().IndexOf(s[u.Members[0]])]);
            FakeDriftOracle Oracle() => new(s => Fp32Accuracy - Drop(s), s => 0.01 * Drop(s));
            foreach (int width in new[] { 2, 4 })
            {
                var eager = Aq4Searcher.Run(Oracle(), space, new Aq4Options { Method = Aq4Method.Beam, BeamWidth = width });
                var lazy = Aq4Searcher.Run(Oracle(), space, new Aq4Options { Method = Aq4Method.Beam, BeamWidth = width, LazyDrift = true });
                Assert.Equal(eager.Setting, lazy.Setting);
                Assert.Equal(eager.Steps, lazy.Steps);
                Assert.Equal(eager.Candidates.Where(c => c.Accepted).Select(c => c.Setting), lazy.Candidates.Where(c => c.Accepted).Select(c => c.Setting));
                Assert.True(lazy.Drop <= 1.5 + 1e-9);
                // Every child is logged once, those never measured as not reached (nor scored).
                Assert.Equal(eager.Candidates.Count, lazy.Candidates.Count);
                Assert.All(lazy.Candidates.Where(c => c.Drift is null && c.Outcome != Aq4Outcome.Dominated), c =>
                {
                    Assert.Equal(Aq4Outcome.NotReached, c.Outcome);
                    Assert.Null(c.Score);
                });
                Assert.Equal(lazy.Candidates.Count(c => c.Drift is not null), lazy.DriftEvaluations);
                (eagerDrift, lazyDrift) = (eagerDrift + eager.DriftEvaluations, lazyDrift + lazy.DriftEvaluations);
            }
        }
        Assert.True(lazyDrift < 0.6 * eagerDrift, $"lazy beam measured {lazyDrift} drifts, eager {eagerDrift}");
    }

    [Fact]
    public void Path_search_finds_what_step_greedy_finds_with_fewer_evaluations()
    {
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [16, 8, 4, 2]);
        int pathFull = 0, stepFull = 0, pathDrift = 0, stepDrift = 0;
        for (int seed = 0; seed < 25; seed++)
        {
            var path = Aq4Searcher.Run(AmplifyingSurface(space, seed), space, new Aq4Options());
            var step = Aq4Searcher.Run(AmplifyingSurface(space, seed), space,
                new Aq4Options { Verification = Aq4Verification.Step, DriftGate = false });
            Assert.Equal(step.Setting, path.Setting);
            Assert.Equal(step.Accuracy.Accuracy, path.Accuracy.Accuracy, 9);
            Assert.True(path.Drop <= 1.5 + 1e-9);
            (pathFull, stepFull, pathDrift, stepDrift) =
                (pathFull + path.FullEvaluations, stepFull + step.FullEvaluations, pathDrift + path.DriftEvaluations, stepDrift + step.DriftEvaluations);

            // Every candidate is logged once; implied ones sit above a pass on its path and carry no accuracy.
            Assert.Equal(path.Candidates.Count, path.Candidates.Select(c => c.Setting).Distinct().Count());
            Assert.All(path.Candidates.Where(c => c.Outcome == Aq4Outcome.Implied), c => Assert.Null(c.Accuracy));
            Assert.Equal(path.Candidates.Count(c => c.Verified), path.FullEvaluations);
        }
        Assert.True(pathFull < stepFull, $"path search verified {pathFull} settings, step greedy {stepFull}");
        Assert.True(pathDrift < stepDrift, $"lazy descent measured {pathDrift} drifts, step greedy {stepDrift}");
    }

    [Fact]
    public void Path_search_gallops_back_from_a_cliff_at_the_bottom()
    {
        // Every move costs 0.1 points until the last, which costs 1 more: step greedy verifies all 12 moves, the path
        // search the bottom (fails) and the setting one move above it (passes).
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [16, 8, 4]);
        int Lowered(QuantizationSetting s) => space.Units.Sum(u => space.Ladder.ToList().IndexOf(s[u.Members[0]]));
        double Drop(QuantizationSetting s) => 0.1 * Lowered(s) + (Lowered(s) == space.MaxDepth ? 1 : 0);
        var oracle = new FakeDriftOracle(s => Fp32Accuracy - Drop(s), s => 0.01 * Drop(s));
        var r = Aq4Searcher.Run(oracle, space, new Aq4Options());
        Assert.Equal(space.MaxDepth - 1, Lowered(r.Setting));
        Assert.Equal(3, r.FullEvaluations);   // fp32, the bottom, one above
        Assert.Equal([Aq4Outcome.Failed, Aq4Outcome.Passed],
            r.Candidates.Where(c => c.Verified && c.Step > 0).OrderByDescending(c => c.Step).Select(c => c.Outcome));
        Assert.Equal(space.MaxDepth - 2, r.Candidates.Count(c => c.Outcome == Aq4Outcome.Implied));

        var step = Aq4Searcher.Run(new FakeDriftOracle(s => Fp32Accuracy - Drop(s), s => 0.01 * Drop(s)), space,
            new Aq4Options { Verification = Aq4Verification.Step });
        Assert.Equal(r.Setting, step.Setting);
        Assert.Equal(space.MaxDepth + 1, step.FullEvaluations);
    }

    [Fact]
    public void Path_search_resumes_below_the_last_pass_after_a_failure()
    {
        // The trap again: the path B, B+C, B+C+A fails at B+C; the descent resumes from B with C blocked and finds A+B.
        var (space, oracle) = Trap();
        var r = Aq4Searcher.Run(oracle, space, new Aq4Options());
        Assert.Equal(["CONV_S1_B2", "TRAN_S4"], Lowered(r.Setting).Order());
        var failed = Assert.Single(r.Candidates, c => c.Outcome == Aq4Outcome.Failed && c.Step == 2);
        Assert.Equal(["CONV_S2_B1", "TRAN_S4"], Lowered(failed.Setting).Order());
        Assert.Contains(r.Candidates, c => c.Outcome == Aq4Outcome.Passed && Lowered(c.Setting).SetEquals(["CONV_S1_B2", "TRAN_S4"]));
    }

    [Fact]
    public void Path_search_lets_the_gate_skip_the_moves_it_predicts_to_fail_below_the_last_pass()
    {
        // Three cheap units (0.3 points, tiny drift) rank first, then eight that cost 2 points each at a large drift: the path
        // fails from its fourth move. Resumed below the three cheap moves, every remaining move has the drift of that failure:
        // the gate skips all but one try instead of verifying each.
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Block, [8]);
        var cheap = space.Units.Take(3).Select(u => u.Name).ToHashSet();
        int Count(QuantizationSetting s, bool isCheap) => space.Units.Count(u => cheap.Contains(u.Name) == isCheap && s[u.Members[0]] != 32);
        FakeDriftOracle Oracle() => new(s => Fp32Accuracy - 0.3 * Count(s, true) - 2 * Count(s, false),
            s => 0.001 * Count(s, true) + Count(s, false));
        var gated = Aq4Searcher.Run(Oracle(), space, new Aq4Options());
        var ungated = Aq4Searcher.Run(Oracle(), space, new Aq4Options { DriftGate = false });
        foreach (var r in new[] { gated, ungated })
            Assert.Equal((3, 0), (Count(r.Setting, true), Count(r.Setting, false)));
        // fp32, the gallop back (moves 11, 10, 8, 4), the bisection (2, 3), then one try below the last pass.
        Assert.Equal(8, gated.FullEvaluations);
        Assert.Equal(space.Units.Count - 5, gated.Candidates.Count(c => c.Outcome == Aq4Outcome.DriftGated));
        Assert.Equal(gated.FullEvaluations + space.Units.Count - 5, ungated.FullEvaluations);
    }

    [Fact]
    public void Progress_ReportsEveryEvaluation()
    {
        var (space, oracle) = Trap();
        var reports = new List<Aq4Progress>();
        var r = Aq4Searcher.Run(oracle, space, new Aq4Options(), reports.Add);
        Assert.True(reports.Count >= r.FullEvaluations + r.DriftEvaluations);
        Assert.Equal(r.FullEvaluations, reports[^1].FullEvaluations);
        Assert.Equal(r.Memory.MiB, reports[^1].BestMiB, 12);
        Assert.All(reports, p => Assert.Equal(space.MaxDepth, p.MaxSteps));
    }

    [Fact]
    public void Options_AreValidated()
    {
        var (space, oracle) = Trap();
        Assert.Throws<QsvitException>(() => Aq4Searcher.Run(oracle, space, new Aq4Options { BeamWidth = 0 }));
        Assert.Throws<QsvitException>(() => Aq4Searcher.Run(oracle, space, new Aq4Options { MaxDrop = -1 }));
        Assert.Throws<QsvitException>(() => Aq4Searcher.Run(oracle, space, new Aq4Options { MaxDrop = double.NaN }));
    }
}
