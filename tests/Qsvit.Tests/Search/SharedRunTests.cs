using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;
using Qsvit.Tests.IO.Datasets;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Search;

/// <summary>QSViT and AQ4SViT searching from one run directory, as <c>qsvit search --method qsvit|greedy|beam</c> may.</summary>
public sealed class SharedRunTests
{
    /// <summary>A run identity as <see cref="RunStore"/> takes it: the calibration images only for a method that measures drift.</summary>
    private static Dictionary<string, string?> Identity(string? calibration, string? test = "test.bin first 8") => new()
    {
        ["model"] = "tiny",
        ["quantizer"] = "symmetric",
        ["search"] = "val.bin first 8",
        ["test"] = test,
        ["calibration_images"] = calibration,
    };

    [Fact]
    public void Fp32_HasOneKey_WhateverMethodOrGranularityAsksForIt()
    {
        using var dir = new TempDir();
        var evaluator = Aq4Fixtures.TinyEvaluator(dir.Path);
        string key = evaluator.Key(QuantizationSetting.Uniform(Quantizer.FullPrecision));
        Assert.Equal(key, evaluator.Key(new QsvitOptions { Granularity = Granularity.TransformerBlock }.Fp32));
        Assert.Equal(key, evaluator.Key(new QsvitOptions().Fp32));
        foreach (var g in Granularities.All)
        {
            var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, g, [8]);
            Assert.Equal(key, evaluator.Key(space.Setting(new int[space.Units.Count])));
        }
    }

    [Fact]
    public void Methods_SharingARunDirectory_ReuseEachOthersEvaluations()
    {
        using var dir = new TempDir();
        const string search = SearchRun.SearchSplit, test = SearchRun.TestSplit;

        // QSViT first: no drift, so its identity leaves the calibration unset.
        QsvitResult qsvit;
        using (var run = SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit) with { Granularity = Granularity.TransformerBlock, Bits = [32, 8], TolerancePoints = 13 }))
        {
            Assert.Null(run.Identity["calibration_images"]);
            qsvit = QsvitSearch.Run(run.Evaluator, run.Layout,
                new QsvitOptions { Granularity = Granularity.TransformerBlock, Bits = run.Bits, TolerancePoints = run.TolerancePoints, ReportSplit = test });
            Assert.Equal(qsvit.Cost.Evaluations, run.Evaluator.FullEvaluations);
            Assert.Throws<InvalidOperationException>(() => run.Evaluator.Drift(qsvit.BSettingG));   // it may not log drift
        }

        // Greedy next, in the same directory: it pins the calibration and replays fp32 on both splits.
        var greedySpec = RunFixtures.Spec(dir.Path, SearchMethod.Greedy) with { Granularity = Granularity.Stage, Bits = [8, 4], TolerancePoints = 13 };
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [8, 4]);
        var options = new Aq4Options { MaxDrop = 13, SearchSplit = search };
        using (var run = SearchRun.Open(greedySpec))
        {
            var evaluator = run.Evaluator;
            var greedy = Aq4Searcher.Run(evaluator, space, options);
            Assert.Equal(greedy.FullEvaluations - 1 - Reused(qsvit, greedy), greedy.NewFullEvaluations);
            int before = evaluator.FullEvaluations;
            var fp32Test = evaluator.Accuracy(QuantizationSetting.Uniform(Quantizer.FullPrecision), test);
            Assert.Equal(before, evaluator.FullEvaluations);
            Assert.Same(fp32Test, evaluator.Accuracy(qsvit.Fp32, test));
            var rows = Aq4Report.ComparisonRows(greedy, new Aq4HeldOut(fp32Test, evaluator.Accuracy(greedy.Setting, test)));
            Assert.Equal(qsvit.Report!.Fp32.Top1, rows[0].TestAccuracy);
            // Both fp32 rows are one row of a merged table, whatever granularity each method searched at.
            var qsvitRows = QsvitReport.ComparisonRows(new QsvitReportInput(qsvit, Aq4Fixtures.TinyLayout));
            Assert.Equal(["fp32", "AQ4SViT-Greedy (stage)", "QSViT (transformer-block)"], ComparisonTable.Merge([.. rows, .. qsvitRows]).Select(x => x.Method));
        }

        // The pinned calibration now holds for every drift method; a run without drift still opens the directory.
        var e = Assert.Throws<QsvitException>(() => SearchRun.Open(greedySpec with { Method = SearchMethod.Beam, CalibrationImages = 6 }));
        Assert.Contains("calibration_images was '4', now '6'", e.Message);
        SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit)).Dispose();
        // The same search again replays everything.
        using (var again = SearchRun.Open(greedySpec))
        {
            Aq4Searcher.Run(again.Evaluator, space, options);
            Assert.Equal((0, 0), (again.Evaluator.FullEvaluations, again.Evaluator.DriftEvaluations));
        }
    }

    /// <summary>Settings greedy verified that QSViT had already evaluated on the search split (fp32 aside).</summary>
    private static int Reused(QsvitResult qsvit, Aq4Result greedy)
    {
        var seen = qsvit.SearchEvaluations.Select(a => a.Setting).ToHashSet();
        return greedy.Candidates.Where(c => c.Step > 0 && c.Verified).Count(c => seen.Contains(c.Setting.ToString()));
    }

    [Fact]
    public void RunStore_UnusedFieldsAreNeitherCheckedNorPinned_UntilARunUsesThem()
    {
        using var dir = new TempDir();
        RunStore.Open(dir.Path, Identity(calibration: null, test: null)).Dispose();
        RunStore.Open(dir.Path, Identity(calibration: null, test: null)).Dispose();
        RunStore.Open(dir.Path, Identity(calibration: null, test: "test.bin first 8")).Dispose();        // pins the test split
        RunStore.Open(dir.Path, Identity(calibration: null, test: null)).Dispose();                      // a run without one still fits
        var e = Assert.Throws<QsvitException>(() => RunStore.Open(dir.Path, Identity(calibration: null, test: "test.bin first 16")));
        Assert.Contains("test was 'test.bin first 8', now 'test.bin first 16'", e.Message);

        // Fields a manifest never had are not pinned silently: that manifest was written by another version.
        var other = new Dictionary<string, string?>(Identity(calibration: null)) { ["new_field"] = "x" };
        Assert.Contains("new_field was '(unset)'", Assert.Throws<QsvitException>(() => RunStore.Open(dir.Path, other)).Message);
    }

    [Fact]
    public void FiringRates_AreCachedAndReplayed_LikeEveryEvaluation()
    {
        using var dir = new TempDir();
        var spec = RunFixtures.Spec(dir.Path, SearchMethod.Qsvit);
        var setting = QuantizationSetting.Uniform(4);
        IReadOnlyList<Qsvit.Evaluation.LifRate> rates;
        using (var run = SearchRun.Open(spec))
        {
            rates = run.Evaluator.FiringRates(setting, 6);
            Assert.Same(rates, run.Evaluator.FiringRates(setting, 6));
            Assert.Equal(0, run.Evaluator.FullEvaluations);                  // report extras, not search cost
            Assert.Single(run.Store.Log.Entries);
            // More images than the split holds are the whole split: one entry for both.
            Assert.Same(run.Evaluator.FiringRates(setting, 8), run.Evaluator.FiringRates(setting, 100));
        }
        using var reopened = SearchRun.Open(spec);
        var replayed = reopened.Evaluator.FiringRates(setting, 6);
        Assert.Equal(2, reopened.Store.Log.Entries.Count);                  // nothing run again
        Assert.Equal(rates, replayed);
        Assert.Contains(rates, r => r.Rate > 0);
    }
}
