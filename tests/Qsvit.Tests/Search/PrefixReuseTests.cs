using Qsvit.Backends;
using Qsvit.Evaluation;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Tests.IO.Datasets;

namespace Qsvit.Tests.Search;

public sealed class PrefixReuseTests
{
    /// <summary>
    /// Greedy (step-by-step verification, whose children continue from their parent's streams; drift-gated, sequential) and
    /// QSViT on the tiny model, once with full passes and once with prefix reuse (a
    /// cache of <paramref name="cacheMegabytes"/> MB, spilling to the run directory): every logged accuracy (per-image
    /// correctness), every drift (per layer) and the chosen settings are identical, and reuse skipped work.
    /// </summary>
    internal static SettingEvaluator AssertSearchesIdentical(IBackend? backend, long cacheMegabytes)
    {
        using var dir = new TempDir();
        string data = Directory.CreateDirectory(dir.File("data")).FullName;
        var identity = new Dictionary<string, string?> { ["model"] = "tiny" };
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Block, [8, 4, 2]);
        var sequential = new SequentialOptions { FirstImages = 6, Growth = 1.5 };
        var aq4 = new Aq4Options { MaxDrop = 12, Sequential = sequential, Verification = Aq4Verification.Step };
        var qsvit = new QsvitOptions { SearchSplit = "val", ReportSplit = "test", Bits = [32, 8, 2], TolerancePoints = 12, Sequential = sequential };

        (Aq4Result Greedy, QsvitResult? Qsvit, LoggedEvaluation[] Log, SettingEvaluator Evaluator) Run(string name, long cache)
        {
            using var store = RunStore.Open(dir.File(name), identity);
            var evaluator = Aq4Fixtures.TinyEvaluator(data, images: 16, calibration: 8, store: store, cacheMegabytes: cache, backend: backend);
            try
            {
                var greedy = Aq4Searcher.Run(evaluator, space, aq4);
                var q = QsvitSearch.Run(evaluator, Aq4Fixtures.TinyLayout, qsvit);
                return (greedy, q, store.Log.Entries.ToArray(), evaluator);
            }
            finally { evaluator.Dispose(); }
        }

        var full = Run("full", 0);
        var reused = Run("reused", cacheMegabytes);

        Assert.Equal(full.Greedy.Setting, reused.Greedy.Setting);
        Assert.Equal(full.Greedy.Candidates.Select(c => (c.Setting, c.Outcome, c.Drift, c.SpikeMismatch, c.Accuracy, c.Images)),
            reused.Greedy.Candidates.Select(c => (c.Setting, c.Outcome, c.Drift, c.SpikeMismatch, c.Accuracy, c.Images)));
        Assert.Equal(full.Qsvit?.BSettingG, reused.Qsvit?.BSettingG);
        Assert.Equal(full.Qsvit?.BSettingH, reused.Qsvit?.BSettingH);
        Assert.Equal(full.Qsvit?.BSettingL, reused.Qsvit?.BSettingL);
        Assert.Equal(full.Log.Select(Content), reused.Log.Select(Content));
        Assert.Contains(full.Log, e => e is LoggedDrift);
        Assert.Contains(full.Log, e => e is LoggedChunk);

        Assert.Null(full.Evaluator.Reuse);
        var stats = reused.Evaluator.Reuse!;
        var drift = reused.Evaluator.DriftReuse!;
        Assert.True(stats.Hits > 0 && stats.ImageUnitsSaved > 0, $"accuracy reuse: {stats}");
        Assert.True(drift.Batches > 0, $"drift reuse: {drift}");
        Assert.True(reused.Evaluator.ImagesSaved("val") > 0);
        Assert.True(reused.Greedy.CostFullEquivalents < full.Greedy.CostFullEquivalents || reused.Greedy.ImagesSaved > 0);
        Assert.True(reused.Qsvit!.Cost.FullEquivalents < full.Qsvit!.Cost.FullEquivalents);
        Assert.False(Directory.Exists(dir.File("reused", "prefix-cache")), "the spilled streams are deleted with the evaluator");
        return reused.Evaluator;
    }

    /// <summary>
    /// Fp32 and three settings that share fp32's widths up to DS_S4 or TRAN_S4 (the last differs from the second only in
    /// TRAN_S4): accuracies (whole split and a sequential chunk) and drifts with prefix reuse equal full passes', and the
    /// later ones continue from cached streams.
    /// </summary>
    /// <param name="images">Images per split (and calibration images); the emulated CUDA device takes a few, since every one costs it seconds.</param>
    /// <param name="settings">How many of the four settings (at least 3: streams are stored once a second setting shares the prefix, so the third is the first to continue from one).</param>
    internal static void AssertEvaluationsIdentical(IBackend? backend, int images = 8, int settings = 4)
    {
        using var dir = new TempDir();
        var candidates = new[] { "32,32,32,32|32,32,32|32,32|32,32", "32,32,32,32|32,32,32|32,32|4,32", "32,32,32,32|32,32,32|32,32|32,4",
            "32,32,32,32|32,32,32|32,32|4,4" }.Take(settings).Select(QuantizationSetting.Parse).ToArray();
        string Results(long cache, out SettingEvaluator evaluator)
        {
            evaluator = Aq4Fixtures.TinyEvaluator(dir.Path, images: images, calibration: images, cacheMegabytes: cache, backend: backend);
            var e = evaluator;
            return string.Join("\n", candidates.Select(s => $"{Mask(e.Accuracy(s, "val", images / 2))} {Mask(e.Accuracy(s, "val"))} " +
                $"{string.Join(",", e.Drift(s).PerLayer.Select(x => x.ToString("R")))} {e.Drift(s).SpikeMismatch:R}"));
        }
        string full = Results(0, out var plain);
        string reused = Results(64, out var cached);
        Assert.Equal(full, reused);
        Assert.True(cached.Reuse!.Hits > 0 && cached.DriftReuse!.Hits > 0, $"{cached.Reuse}; {cached.DriftReuse}");
        plain.Dispose();
        cached.Dispose();
    }

    [Fact]
    public void Evaluations_with_prefix_reuse_are_bit_identical_on_the_cpu_backend() => AssertEvaluationsIdentical(null);

    /// <summary>A logged evaluation without its timing.</summary>
    private static string Content(LoggedEvaluation e) => e switch
    {
        LoggedAccuracy a => $"accuracy {a.Setting} {a.Record.Split} {a.Record.Count} {a.Record.Correct} {Mask(a.Record)}",
        LoggedChunk c => $"chunk {c.Setting} {c.Record.Split} {c.Start} {c.Record.Count} {c.Record.Correct} {Mask(c.Record)}",
        LoggedDrift d => $"drift {d.Setting} {d.Result.Drift:R} {d.Result.SpikeMismatch:R} {string.Join(",", d.Result.PerLayer.Select(x => x.ToString("R")))}",
        _ => e.GetType().Name + " " + e.Setting,
    };

    private static string Mask(AccuracyRecord r) => string.Concat(r.CorrectMask.Select(b => b ? '1' : '0'));

    [Fact]
    public void Searches_with_prefix_reuse_are_bit_identical_on_the_cpu_backend()
    {
        var evaluator = AssertSearchesIdentical(null, cacheMegabytes: 64);
        Assert.True(evaluator.DriftReuse!.Hits > 0 && evaluator.DriftReuse.ImageUnitsSaved > 0, $"drift reuse: {evaluator.DriftReuse}");
        Assert.Equal(0, evaluator.Cache!.Drops);
    }

    [Fact]
    public void A_cache_too_small_for_the_streams_spills_and_drops_and_stays_bit_identical()
    {
        var cache = AssertSearchesIdentical(null, cacheMegabytes: 1).Cache!;
        Assert.True(cache.Spills > 0 && cache.Unspills > 0 && cache.Drops > 0, $"{cache.Spills} spills, {cache.Unspills} read back, {cache.Drops} drops");
    }

    [Fact]
    public void The_cache_keeps_recent_streams_in_memory_spills_older_ones_and_drops_beyond_the_spill_budget()
    {
        using var dir = new TempDir();
        string spill = dir.File("spill");
        using var cache = new PrefixCache(memoryBudget: 2 * 400, spillDirectory: spill, spillBudget: 2 * 400);
        float[] Stream(int i) => Enumerable.Range(0, 100).Select(j => i * 1000f + j).ToArray();   // 400 bytes each
        for (int i = 0; i < 5; i++) cache.Put($"s{i}", Stream(i));
        // s3, s4 in memory; s1, s2 spilled; s0 dropped.
        Assert.Equal((800L, 800L, 3L, 1L), (cache.MemoryBytes, cache.SpilledBytes, cache.Spills, cache.Drops));
        Assert.Null(cache.Get("s0"));
        Assert.Equal(Stream(1), cache.Get("s1"));    // read back from disk, into memory (s3 spills in its place)
        Assert.Equal(1, cache.Unspills);
        Assert.Equal(Stream(3), cache.Get("s3"));
        Assert.Equal(Stream(2), cache.Get("s2"));
        Assert.True(Directory.Exists(spill));
        cache.Dispose();
        Assert.False(Directory.Exists(spill));
        Assert.Throws<QsvitException>(() => new PrefixCache(0));
    }

    [Fact]
    public void Held_out_evaluations_store_no_streams()
    {
        // Two search-split settings share fp32's prefix up to TRAN_S4; on the held-out split the same settings run whole.
        using var dir = new TempDir();
        using var evaluator = Aq4Fixtures.TinyEvaluator(dir.Path, cacheMegabytes: 64);
        var fp32 = QuantizationSetting.Uniform(Quantizer.FullPrecision);
        var late = QuantizationSetting.Parse("32,32,32,32|32,32,32|32,32|32,8");
        foreach (var s in new[] { fp32, late }) evaluator.Accuracy(s, "val");
        var (batches, bytes) = (evaluator.Reuse!.Batches, evaluator.Cache!.MemoryBytes + evaluator.Cache.SpilledBytes);
        Assert.True(bytes > 0);
        foreach (var s in new[] { fp32, late }) evaluator.Accuracy(s, "test");
        Assert.Equal((batches, bytes), (evaluator.Reuse.Batches, evaluator.Cache.MemoryBytes + evaluator.Cache.SpilledBytes));
    }

    [Fact]
    public void A_negative_cache_size_is_refused()
    {
        using var dir = new TempDir();
        Assert.Throws<QsvitException>(() => Aq4Fixtures.TinyEvaluator(dir.Path, cacheMegabytes: -1));
    }
}
