using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;
using Qsvit.Tests.Datasets;

namespace Qsvit.Tests.Aq4;

/// <summary>QSViT and AQ4SViT searching from one run directory, as <c>qsvit search --method qsvit|greedy|beam</c> may.</summary>
public sealed class SharedRunTests
{
    /// <summary>What decides evaluations, as the CLI builds it: the calibration images only for a method that measures drift.</summary>
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
        Assert.Equal(key, evaluator.Key(new QsvitOptions { Granularity = SettingGranularity.TransformerBlock }.Fp32));
        Assert.Equal(key, evaluator.Key(new QsvitOptions().Fp32));
        foreach (var g in Enum.GetValues<Aq4Granularity>())
        {
            var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, g, [8]);
            Assert.Equal(key, evaluator.Key(space.Setting(new int[space.Units.Count])));
        }
    }

    [Fact]
    public void Methods_SharingARunDirectory_ReuseEachOthersEvaluations()
    {
        using var dir = new TempDir();
        string data = Directory.CreateDirectory(dir.File("data")).FullName;
        string run = dir.File("run");

        // QSViT first: no drift, so its identity leaves the calibration unset.
        var qsvitEvaluator = Aq4Fixtures.TinyEvaluator(data, calibration: null, store: RunStore.Open(run, Identity(calibration: null)));
        var qsvit = QsvitSearch.Run(qsvitEvaluator, Aq4Fixtures.TinyLayout,
            new QsvitOptions { Granularity = SettingGranularity.TransformerBlock, Bits = [32, 8], TolerancePoints = 13, SearchSplit = "val", ReportSplit = "test" });
        Assert.Equal(qsvit.Cost.Evaluations, qsvitEvaluator.FullEvaluations);
        Assert.Throws<InvalidOperationException>(() => qsvitEvaluator.Drift(qsvit.BSettingG));   // it may not log drift

        // Greedy next, in the same directory: it pins the calibration and replays fp32 on both splits.
        var greedyEvaluator = Aq4Fixtures.TinyEvaluator(data, calibration: 4, store: RunStore.Open(run, Identity(calibration: "4")));
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Aq4Granularity.Stage, [8, 4]);
        var greedy = Aq4Searcher.Run(greedyEvaluator, space, new Aq4Options { MaxDrop = 13, SearchSplit = "val" });
        Assert.Equal(greedy.FullEvaluations - 1 - Reused(qsvit, greedy), greedy.NewFullEvaluations);
        int before = greedyEvaluator.FullEvaluations;
        var fp32Test = greedyEvaluator.Accuracy(QuantizationSetting.Uniform(Quantizer.FullPrecision), "test");
        Assert.Equal(before, greedyEvaluator.FullEvaluations);
        Assert.Same(fp32Test, greedyEvaluator.Accuracy(qsvit.Fp32, "test"));
        var rows = Aq4Report.ComparisonRows(greedy, new Aq4HeldOut(fp32Test, greedyEvaluator.Accuracy(greedy.Setting, "test")));
        Assert.Equal(qsvit.Report!.Fp32.Top1, rows[0].TestAccuracy);
        // Both fp32 rows are one row of a merged table, whatever granularity each method searched at.
        var qsvitRows = QsvitReport.ComparisonRows(new QsvitReportInput(qsvit, Aq4Fixtures.TinyLayout));
        Assert.Equal(["fp32", "AQ4SViT-Greedy (stage)", "QSViT (transformer-block)"], ComparisonTable.Merge([.. rows, .. qsvitRows]).Select(x => x.Method));

        // The pinned calibration now holds for every drift method; a run without drift still opens the directory.
        var e = Assert.Throws<QsvitException>(() => RunStore.Open(run, Identity(calibration: "6")));
        Assert.Contains("calibration_images was '4', now '6'", e.Message);
        RunStore.Open(run, Identity(calibration: null));
        // The same search again replays everything.
        var again = Aq4Fixtures.TinyEvaluator(data, calibration: 4, store: RunStore.Open(run, Identity(calibration: "4")));
        Aq4Searcher.Run(again, space, new Aq4Options { MaxDrop = 13, SearchSplit = "val" });
        Assert.Equal((0, 0), (again.FullEvaluations, again.DriftEvaluations));
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
        RunStore.Open(dir.Path, Identity(calibration: null, test: null));
        RunStore.Open(dir.Path, Identity(calibration: null, test: null));
        RunStore.Open(dir.Path, Identity(calibration: null, test: "test.bin first 8"));        // pins the test split
        RunStore.Open(dir.Path, Identity(calibration: null, test: null));                      // a run without one still fits
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
        string data = Directory.CreateDirectory(dir.File("data")).FullName;
        var store = RunStore.Open(dir.File("run"), Identity(calibration: null));
        var evaluator = Aq4Fixtures.TinyEvaluator(data, calibration: null, store: store);
        var setting = QuantizationSetting.Uniform(4);
        var rates = evaluator.FiringRates(setting, 6);
        Assert.Same(rates, evaluator.FiringRates(setting, 6));
        Assert.Equal(0, evaluator.FullEvaluations);                  // report extras, not search cost
        Assert.Single(store.Records);

        var reopened = RunStore.Open(dir.File("run"), Identity(calibration: null));
        var replayed = Aq4Fixtures.TinyEvaluator(data, calibration: null, store: reopened).FiringRates(setting, 6);
        Assert.Single(reopened.Records);                             // nothing run again
        Assert.Equal(rates, replayed);
        Assert.Contains(rates, r => r.Rate > 0);
        // More images than the split holds are the whole split: one entry for both.
        Assert.Same(evaluator.FiringRates(setting, 8), evaluator.FiringRates(setting, 100));
    }
}
