using Qsvit.Evaluation;
using Qsvit.Quantization;
using Qsvit.Search;

using Qsvit.Tests.IO.Datasets;

namespace Qsvit.Tests.Search;

public sealed class SequentialSearchTests
{
    /// <summary>
    /// An oracle whose settings are right on a pseudo-random subset of images with the given accuracy, nested so that a
    /// less accurate setting's right images are a subset of a more accurate one's (paired differences are all losses); it
    /// answers prefixes and counts the images it was asked to evaluate.
    /// </summary>
    private sealed class PrefixOracle(Func<QuantizationSetting, double> accuracy, int images) : ISettingOracle
    {
        private readonly double[] _rank = Enumerable.Range(0, images).Select(i => new Random(i * 7919 + 1).NextDouble()).ToArray();
        public long Images;
        public int FullEvaluations { get; private set; }
        public int DriftEvaluations { get; private set; }

        public AccuracyRecord Accuracy(QuantizationSetting setting, string split) => Accuracy(setting, split, images);

        public AccuracyRecord Accuracy(QuantizationSetting setting, string split, int count)
        {
            count = Math.Min(count, images);
            if (count == images) FullEvaluations++;
            Images += count;
            double a = accuracy(setting) / 100;
            var mask = _rank.Take(count).Select(r => r < a).ToArray();
            return new AccuracyRecord(setting.ToString(), split, count, mask.Count(m => m), mask, 0.001 * count);
        }

        public DriftResult Drift(QuantizationSetting setting)
        {
            DriftEvaluations++;
            return new DriftResult(100 - accuracy(setting), 0, [], 0.01);
        }
    }

    private static readonly IReadOnlyDictionary<string, IReadOnlyDictionary<int, double>> Drops = QsvitSearchTests.Drops;

    private static double Additive(QuantizationSetting s) =>
        90 - s.Entries.Sum(e => Drops.TryGetValue(e.Key, out var d) && d.TryGetValue(e.Value, out var x) ? x : 0);

    [Fact]
    public void Qsvit_decides_clear_cases_early_and_ends_where_the_whole_split_does()
    {
        var full = QsvitSearch.Run(new PrefixOracle(Additive, 5000), QsvitSearchTests.Layout, new QsvitOptions { ReferenceSetting = null });
        var oracle = new PrefixOracle(Additive, 5000);
        var seq = QsvitSearch.Run(oracle, QsvitSearchTests.Layout,
            new QsvitOptions { ReferenceSetting = null, Sequential = new SequentialOptions() });

        Assert.Equal(full.BSettingG, seq.BSettingG);
        Assert.Equal(full.BSettingH, seq.BSettingH);
        Assert.Equal(5000, seq.Search.Quantized.Count);                        // the final setting on the whole split
        Assert.Contains(seq.Sensitivity.Cells, c => c.Early && c.Accuracy.Count < 5000);
        Assert.All(seq.Sensitivity.Cells.Where(c => c.Early), c => Assert.Equal(full.Sensitivity.Cell(c.Unit, c.Bits).WithinTolerance, c.WithinTolerance));
        // Cost counts images: every early decision evaluated fewer than the split.
        Assert.True(seq.Cost.FullEquivalents < full.Cost.FullEquivalents / 2, $"{seq.Cost.FullEquivalents} vs {full.Cost.FullEquivalents}");
        Assert.Equal(seq.Cost.SearchImages, (long)Math.Round(seq.Cost.FullEquivalents * 5000));
    }

    [Fact]
    public void Aq4_verifies_sequentially_and_reports_the_chosen_setting_on_the_whole_split()
    {
        var space = Aq4Space.Create(QsvitSearchTests.Layout, Granularity.Stage, [8, 4]);
        double Stagewise(QuantizationSetting s) => 90 - s.Entries.Sum(e => e.Value switch { 32 => 0, 8 => 0.1, _ => 4.0 });
        var full = Aq4Searcher.Run(new PrefixOracle(Stagewise, 5000), space, new Aq4Options { MaxDrop = 3 });
        var seq = Aq4Searcher.Run(new PrefixOracle(Stagewise, 5000), space,
            new Aq4Options { MaxDrop = 3, Sequential = new SequentialOptions() });
        Assert.Equal(full.Setting, seq.Setting);
        Assert.Equal(5000, seq.Accuracy.Count);
        Assert.Contains(seq.Candidates, c => c.Verified && c.Early && c.Images < 5000);
        Assert.True(seq.SearchImages < full.SearchImages);
        Assert.True(seq.CostFullEquivalents < full.CostFullEquivalents);
    }

    [Fact]
    public void A_prefix_then_the_rest_is_bit_identical_to_one_whole_evaluation_and_resumes()
    {
        using var dir = new TempDir();
        string data = Directory.CreateDirectory(dir.File("data")).FullName;
        var identity = new Dictionary<string, string?> { ["model"] = "tiny" };
        var setting = QuantizationSetting.Parse("8,8,8,8|4,4,4|4,4|4,4");
        var whole = Aq4Fixtures.TinyEvaluator(data, images: 12).Accuracy(setting, "val");

        using (var store = RunStore.Open(dir.File("run"), identity))
        {
            var chunked = Aq4Fixtures.TinyEvaluator(data, images: 12, store: store);
            var prefix = chunked.Accuracy(setting, "val", 5);
            Assert.Equal(5, prefix.Count);
            Assert.Equal(whole.CorrectMask.Take(5), prefix.CorrectMask);
            Assert.Same(prefix, chunked.Accuracy(setting, "val", 3));          // already covered
            Assert.Equal(0, chunked.FullEvaluations);
        }

        // Resumed: the logged chunk is replayed and only images 5..11 run.
        using var reopened = RunStore.Open(dir.File("run"), identity);
        var resumed = Aq4Fixtures.TinyEvaluator(data, images: 12, store: reopened);
        var rest = resumed.Accuracy(setting, "val");
        Assert.Equal(whole.CorrectMask, rest.CorrectMask);
        Assert.Equal(whole.Correct, rest.Correct);
        Assert.Equal(7, resumed.ImagesEvaluated["val"]);
        Assert.Same(rest, resumed.Accuracy(setting, "val", 5));                // a whole-split result answers any prefix
    }
}
