using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Tests.Search;

public class QsvitSearchTests
{
    internal static readonly Sdtv2Layout Layout = new(new Sdtv2Config { EmbedDim = [8, 16, 16, 16], NumHeads = 2, NumClasses = 10 });

    private static IReadOnlyDictionary<int, double> D(double b16, double b12, double b8, double b4) =>
        new Dictionary<int, double> { [16] = b16, [12] = b12, [8] = b8, [4] = b4 };

    /// <summary>
    /// Single-unit drops (points) at 16/12/8/4 bits; combined settings drop the sum. fp32 = 90 %, tolerance 5: pass at ≥ 85 %.
    /// TRAN_S3 passes only at 32; TRAN_S4 is non-monotone (16 and 8 fail, 12 and 4 pass).
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, IReadOnlyDictionary<int, double>> Drops = new Dictionary<string, IReadOnlyDictionary<int, double>>
    {
        ["DS_S1_B1"] = D(0, 0, 1, 6),
        ["CONV_S1_B1"] = D(0, 0, 0, 2),
        ["DS_S1_B2"] = D(0, 0, 0, 0.5),
        ["CONV_S1_B2"] = D(0, 0, 0.5, 1),
        ["DS_S2"] = D(0, 0, 0, 0),
        ["CONV_S2_B1"] = D(0, 0, 0, 1),
        ["CONV_S2_B2"] = D(0, 0, 0, 1),
        ["DS_S3"] = D(0, 0, 0, 0),
        ["TRAN_S3"] = D(6, 7, 9, 20),
        ["DS_S4"] = D(0, 0, 0, 0),
        ["TRAN_S4"] = D(6, 1, 7, 1),
    };

    internal static QsvitResult PaperLikeRun(out FakeOracle oracle, List<QsvitProgress>? progress = null)
    {
        oracle = FakeOracle.Additive(90, Drops);
        return QsvitSearch.Run(oracle, Layout, new QsvitOptions(), progress is null ? null : progress.Add);
    }

    [Fact]
    public void BaseSettingsTakeTheHighestAndLowestPassingWidths()
    {
        var r = PaperLikeRun(out _);
        Assert.Equal(90, r.Sensitivity.Fp32.Accuracy);
        Assert.Equal(85, r.Sensitivity.Threshold);
        Assert.Equal("16,16,16,16|16,16,16|16,32|16,12", r.BSettingH.ToString());
        Assert.Equal("8,4,4,4|4,4,4|4,32|4,4", r.BSettingL.ToString());
        Assert.Equal(89, r.BSettingHAccuracy.Accuracy);      // TRAN_S4 at 12 drops 1
        Assert.Equal(82.5, r.BSettingLAccuracy.Accuracy);    // 1 + 2 + 0.5 + 1 + 1 + 1 + 1

        Assert.False(r.Sensitivity.Cell("DS_S1_B1", 4).WithinTolerance);
        Assert.True(r.Sensitivity.Cell("TRAN_S4", 4).WithinTolerance);
        Assert.Equal(-6, r.Sensitivity.Cell("TRAN_S4", 16).Difference.Value, 9);
        Assert.Equal(r.Sensitivity.Fp32, r.Sensitivity.Cell("TRAN_S3", 32).Accuracy);
        Assert.Equal([32, 16, 12, 8, 4], r.Sensitivity.Bits);
        Assert.Equal([12, 8, 4], r.Base.GuidedWidths("CONV_S1_B1", r.Options.QuantizedBits));
        Assert.Equal([12, 8], r.Base.GuidedWidths("DS_S1_B1", r.Options.QuantizedBits));
        Assert.Empty(r.Base.GuidedWidths("TRAN_S3", r.Options.QuantizedBits));
        Assert.Equal([8, 4], r.Base.GuidedWidths("TRAN_S4", r.Options.QuantizedBits));
    }

    [Fact]
    public void GuidedQuantizationKeepsTheLowestWidthWithinTolerance()
    {
        var r = PaperLikeRun(out _);
        string Step(GuidedStep s) => $"{s.Unit}@{s.Bits}={s.Accuracy.Accuracy:0.0}{(s.WithinTolerance ? "" : " fail")}{(s.Kept ? " kept" : "")}";
        Assert.Equal(
        [
            "DS_S1_B1@12=89.0", "DS_S1_B1@8=88.0 kept",
            "CONV_S1_B1@12=88.0", "CONV_S1_B1@8=88.0", "CONV_S1_B1@4=86.0 kept",
            "DS_S1_B2@12=86.0", "DS_S1_B2@8=86.0", "DS_S1_B2@4=85.5 kept",
            "CONV_S1_B2@12=85.5", "CONV_S1_B2@8=85.0 kept", "CONV_S1_B2@4=84.5 fail",     // 85.0 is exactly at the threshold
            "DS_S2@12=85.0", "DS_S2@8=85.0", "DS_S2@4=85.0 kept",
            "CONV_S2_B1@12=85.0", "CONV_S2_B1@8=85.0 kept", "CONV_S2_B1@4=84.0 fail",
            "CONV_S2_B2@12=85.0", "CONV_S2_B2@8=85.0 kept", "CONV_S2_B2@4=84.0 fail",
            "DS_S3@12=85.0", "DS_S3@8=85.0", "DS_S3@4=85.0 kept",
            // TRAN_S3: bSettingH = bSettingL = 32, nothing to try.
            "DS_S4@12=85.0", "DS_S4@8=85.0", "DS_S4@4=85.0 kept",
            "TRAN_S4@8=79.0 fail", "TRAN_S4@4=85.0 kept",                                 // a failure does not stop the descent
        ], r.Guided.Steps.Select(Step));
        Assert.Equal(Enumerable.Range(0, 28), r.Guided.Steps.Select(s => s.Index));
        Assert.Equal(r.BSettingHAccuracy, r.Guided.Start);
        Assert.Equal("8,4,4,8|4,8,8|4,32|4,4", r.BSettingG.ToString());
        Assert.Equal(r.BSettingG, r.Guided.Steps[^1].Setting);
        Assert.True(r.WithinTolerance);

        // Each step changes only its unit, from the state the previous units left.
        Assert.Equal("16,16,16,16|16,16,16|16,32|16,12", r.Guided.Steps[0].Setting.With("DS_S1_B1", 16).ToString());
        Assert.Equal("8,12,16,16|16,16,16|16,32|16,12", r.Guided.Steps[2].Setting.ToString());
    }

    [Fact]
    public void FinalAccuraciesMemoryAndCost()
    {
        var r = PaperLikeRun(out var oracle);
        Assert.Equal(("search", 90.0, 85.0), (r.Search.Split, r.Search.Fp32.Accuracy, r.Search.Quantized.Accuracy));
        Assert.Equal(-5, r.Search.Difference.Value, 9);
        Assert.True(r.Search.Difference.High < 0);
        Assert.NotNull(r.Report);
        Assert.Equal(("test", 90.0, 85.0), (r.Report!.Split, r.Report.Fp32.Accuracy, r.Report.Quantized.Accuracy));

        Assert.Equal(["fp32", "bSettingH", "bSettingL", "bSettingG"], r.Memory.Select(m => m.Name));
        Assert.Equal(MemoryFootprint.Compute(Layout, r.BSettingG).Bits, r.MemoryOf("bSettingG").Memory.Bits);
        Assert.Equal(0, r.MemoryOf("fp32").Memory.SavingPercent, 9);
        Assert.True(r.MemoryOf("bSettingL").Memory.Bits < r.MemoryOf("bSettingG").Memory.Bits);
        Assert.True(r.MemoryOf("bSettingG").Memory.Bits < r.MemoryOf("bSettingH").Memory.Bits);

        // 1 + 11 x 4 sensitivity, bSettingH and bSettingL, 28 guided steps, fp32 and bSettingG on test (bSettingG on search is step 28).
        Assert.Equal(45 + 2 + 28 + 2, oracle.Calls.Count);
        Assert.Equal(oracle.Calls.Count, oracle.Calls.Distinct().Count());
        Assert.Equal(oracle.Calls.Count, r.Cost.Evaluations);
        Assert.Equal(oracle.Calls.Count, r.Cost.Run);
        Assert.Equal(0, r.Cost.Replayed);
        Assert.Equal(0.5 * 77, r.Cost.EvaluationSeconds, 9);       // the fake says each evaluation took 0.5 s
        Assert.Equal(r.Cost.EvaluationSeconds, r.Cost.SearchSeconds);
        Assert.Equal([45, 2, 28, 2], r.Cost.Phases.Select(p => p.Evaluations));
        Assert.Equal(2, oracle.Calls.Count(c => c.Split == "test"));
    }

    [Fact]
    public void AlgorithmOneEvaluatesEachUnitAtEachWidthExactlyOnce()
    {
        var oracle = FakeOracle.Additive(90, Drops);
        var table = QsvitSearch.Sensitivity(oracle, new QsvitOptions());
        var fp32 = new QsvitOptions().Fp32;
        var expected = new[] { (fp32.ToString(), "search") }
            .Concat(Sdtv2Layout.PaperUnits.SelectMany(u => new[] { 16, 12, 8, 4 }.Select(b => (fp32.With(u, b).ToString(), "search"))));
        Assert.Equal(expected, oracle.Calls);                       // fp32 first, then unit by unit, widths highest first
        Assert.Equal(1 + 11 * 4, oracle.Calls.Distinct().Count());
        Assert.Equal(11 * 5, table.Cells.Count);                    // the 32 column is fp32 itself, not re-evaluated

        var tb = FakeOracle.Additive(90, Drops);
        var tbTable = QsvitSearch.Sensitivity(tb, new QsvitOptions { Granularity = Granularity.TransformerBlock, Bits = [4, 32, 8, 8] });
        Assert.Equal(1 + 17 * 2, tb.Calls.Count);
        Assert.Equal(tb.Calls.Count, tb.Calls.Distinct().Count());
        Assert.Equal([32, 8, 4], tbTable.Bits);
        Assert.Contains(tb.Calls, c => c.Setting == "32,32,32,32|32,32,32|32,32,32,8,32,32,32|32,32,32");
    }

    [Fact]
    public void UnitsThatPassOnlyAtFullPrecisionStayThere()
    {
        var oracle = new FakeOracle((s, _) => s.Entries.All(e => e.Value == 32) ? 90 : 50);
        var r = QsvitSearch.Run(oracle, Layout, new QsvitOptions());
        var fp32 = r.Fp32.ToString();
        Assert.Equal(fp32, r.BSettingH.ToString());
        Assert.Equal(fp32, r.BSettingL.ToString());
        Assert.Equal(fp32, r.BSettingG.ToString());
        Assert.Empty(r.Guided.Steps);
        Assert.True(r.WithinTolerance);
        Assert.Equal(45 + 1, oracle.Calls.Count);                  // bSettingH/L/G are fp32: only fp32 on test is new
        Assert.Equal(0, r.MemoryOf("bSettingG").Memory.SavingPercent, 9);
    }

    [Fact]
    public void WhenEvenBSettingHFailsTheResultSaysSo()
    {
        // Each unit passes alone at 8 bits, but any two quantized units together fall below the threshold.
        var oracle = new FakeOracle((s, _) => s.Entries.Count(e => e.Value != 32) switch { 0 => 90, 1 => s.Entries.Any(e => e.Value < 8) ? 70 : 88, _ => 70 });
        var r = QsvitSearch.Run(oracle, Layout, new QsvitOptions { Bits = [32, 8, 4], ReportSplit = null });
        Assert.Equal("8,8,8,8|8,8,8|8,8|8,8", r.BSettingH.ToString());
        Assert.Equal(r.BSettingH, r.BSettingL);
        Assert.Equal(r.BSettingH, r.BSettingG);
        Assert.False(r.WithinTolerance);
        Assert.Null(r.Report);
        Assert.DoesNotContain(oracle.Calls, c => c.Split != "search");
    }

    [Fact]
    public void ProgressCountsUpToTheTotalAndRunsAreDeterministic()
    {
        var progress = new List<QsvitProgress>();
        var first = PaperLikeRun(out var a, progress);
        var second = PaperLikeRun(out var b);
        Assert.Equal(a.Calls, b.Calls);
        Assert.Equal(first.BSettingG, second.BSettingG);

        // 78 requests (the memoized bSettingG on search included) of the 83 announced before Alg. 2, when every unit may
        // try three widths: the total never changes, the 5 guided steps Alg. 2 rules out count as done.
        Assert.Equal(83, progress[^1].Done);
        Assert.All(progress, p => Assert.Equal(83, p.Total));
        Assert.All(progress.Zip(progress.Skip(1)), p => Assert.True(p.Second.Done >= p.First.Done));
        Assert.Equal(78, a.Calls.Count + 1);
        Assert.Equal([QsvitPhase.Sensitivity, QsvitPhase.BaseSettings, QsvitPhase.Guided, QsvitPhase.Final], progress.Select(p => p.Phase).Distinct());
        Assert.Contains(progress, p => p.Detail == "CONV_S2_B1 at 8 bits on search");
        Assert.Equal("Alg. 3 guided quantization", progress.First(p => p.Phase == QsvitPhase.Guided).PhaseName);
    }

    [Fact]
    public void OptionsAreChecked()
    {
        var oracle = FakeOracle.Additive(90, Drops);
        Assert.Throws<QsvitException>(() => QsvitSearch.Run(oracle, Layout, new QsvitOptions { Granularity = Granularity.Layer }));
        Assert.Throws<QsvitException>(() => QsvitSearch.Run(oracle, Layout, new QsvitOptions { Bits = [32] }));
        Assert.Throws<QsvitException>(() => QsvitSearch.Run(oracle, Layout, new QsvitOptions { Bits = [16, 1] }));
        Assert.Throws<QsvitException>(() => QsvitSearch.Run(oracle, Layout, new QsvitOptions { TolerancePoints = -1 }));
        Assert.Throws<QsvitException>(() => QsvitSearch.Run(oracle, Layout, new QsvitOptions { ReportSplit = "search" }));
        Assert.Empty(oracle.Calls);
    }
}
