using System.Text.Json.Nodes;
using System.Xml.Linq;
using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;
using Qsvit.Tests.IO.Datasets;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Reports;

public sealed class Aq4ReportTests
{
    /// <summary>A beam search on a noisy block-granularity surface: passes, failures, gated and dominated candidates.</summary>
    private static Aq4Result Search(int seed = 0)
    {
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Block, Aq4Space.DefaultBits(QuantizerSpec.Parse("symmetric")));
        double Drop(QuantizationSetting s) => space.Units.Select((u, i) => (0.05 + 0.04 * i) * Math.Pow(2, (16 - Math.Min(16, s[u.Name])) / 2.5)).Sum() - 0.4;
        double Noise(QuantizationSetting s) => Aq4Fixtures.Noise(s, seed);
        var oracle = new FakeDriftOracle(s => 91.3 - Math.Max(0, Drop(s)) + 0.3 * Noise(s), s => Math.Max(0, 0.1 * Drop(s) + 0.05 * Noise(s)), images: 5000);
        return Aq4Searcher.Run(oracle, space, new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 2, SearchSplit = "val" });
    }

    [Fact]
    public void ParetoFront_HoldsTheChosenSetting_AndOnlyVerifiedUndominatedCandidates()
    {
        for (int seed = 0; seed < 10; seed++)
        {
            var r = Search(seed);
            var verified = r.Candidates.Where(c => c.Verified).ToArray();
            var front = Aq4Report.ParetoFront(r.Candidates);
            Assert.Contains(front, c => c.Setting == r.Setting);
            for (int i = 1; i < front.Count; i++)
                Assert.True(front[i].MiB > front[i - 1].MiB && front[i].Accuracy > front[i - 1].Accuracy);
            bool Beats(Aq4Candidate a, Aq4Candidate b) => a.MiB <= b.MiB && a.Accuracy >= b.Accuracy && (a.MiB < b.MiB || a.Accuracy > b.Accuracy);
            foreach (var c in verified)
                Assert.Equal(!verified.Any(other => Beats(other, c)), front.Contains(c));
        }
    }

    [Fact]
    public void Write_ProducesMarkdownJsonAndAValidSvg()
    {
        using var dir = new TempDir();
        var r = Search();
        var fp32Test = new Qsvit.Search.AccuracyRecord("fp32", "test", 4, 4, [true, true, true, true], 1);
        var chosenTest = new Qsvit.Search.AccuracyRecord("chosen", "test", 4, 3, [true, false, true, true], 1);
        Aq4Report.Write(dir.Path, new Aq4ReportInput(r, [new("model", "tiny | random"), new("device", "cpu (2 threads, Vector512)")])
        {
            HeldOut = new Aq4HeldOut(fp32Test, chosenTest),
            QuantizedModelPath = "runs/tiny/beam.safetensors",
            MeasuredEnergy = new Qsvit.Evaluation.MeasuredEnergyComparison("search", 4, "cpu",
                Qsvit.Evaluation.EnergyMeasurement.NotMeasured("NVML is missing: libnvidia-ml.so.1 not found"),
                Qsvit.Evaluation.EnergyMeasurement.NotMeasured("NVML is missing: libnvidia-ml.so.1 not found")),
        });

        var md = File.ReadAllText(Path.Combine(dir.Path, Aq4Report.MarkdownFile));
        Assert.Contains("AQ4SViT beam (width 2), block granularity", md);
        Assert.Contains(r.Setting.ToString().Replace("|", "\\|"), md);
        Assert.Contains("tiny \\| random", md);
        Assert.Contains($"{r.Memory.SavingPercent:F2} % saved", md);
        Assert.Contains("held-out top-1 (`test`)", md);
        Assert.Contains("## Energy (estimate and measured)", md);
        Assert.Contains("Power was not measured: NVML is missing: libnvidia-ml.so.1 not found.", md);
        Assert.Contains(Aq4Report.ChartFile, md);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, Aq4Report.JsonFile)))!;
        Assert.Equal("beam", json["method"]!.GetValue<string>());
        Assert.Equal(r.Candidates.Count, json["candidates"]!.AsArray().Count);
        Assert.Equal(r.Setting.ToString(), json["chosen"]!["setting"]!.GetValue<string>());
        Assert.Equal(25.0, json["chosen"]!["held_out"]!["drop"]!.GetValue<double>(), 9);
        var summary = json["summary"]!;
        Assert.Equal("beam", summary["method"]!.GetValue<string>());
        Assert.Equal(r.Setting.ToString(), summary["setting"]!.GetValue<string>());
        Assert.Equal(-25.0, summary["test_delta_points"]!.GetValue<double>(), 9);   // quantized minus fp32
        Assert.Equal(r.Memory.SavingPercent, summary["memory_saving_percent"]!.GetValue<double>(), 12);
        Assert.StartsWith("cpu", summary["device"]!.GetValue<string>());
        Assert.Equal(r.FullEvaluations, json["evaluations"]!["full"]!.GetValue<int>());
        Assert.Equal(r.ProxySpearman, json["proxy"]!["spearman_drift_drop"]!.GetValue<double>(), 12);
        Assert.Equal(Aq4Report.ParetoFront(r.Candidates).Count, json["candidates"]!.AsArray().Count(c => c!["pareto"]!.GetValue<bool>()));
        Assert.Contains(json["candidates"]!.AsArray(), c => c!["outcome"]!.GetValue<string>() == "drift-gated" && c["accuracy"] is null);

        Assert.Contains("runs/tiny/beam.safetensors", md);
        Assert.Contains("Not computed for this run.", md);          // no energy given
        Assert.Equal("runs/tiny/beam.safetensors", json["quantized_model"]!.GetValue<string>());

        // The shared chart: every verified candidate, fp32 and the chosen setting as markers with tooltips, the Pareto front
        // as the only polyline (ringed points), the constraint as a rule.
        var svg = XDocument.Load(Path.Combine(dir.Path, Aq4Report.ChartFile));
        XNamespace ns = "http://www.w3.org/2000/svg";
        var tips = svg.Descendants(ns + "circle").Select(c => c.Element(ns + "title")?.Value).OfType<string>().ToArray();
        Assert.Equal(r.Candidates.Count(c => c.Verified && c.Step > 0) + 2, tips.Length);
        Assert.Contains(tips, t => t.StartsWith(r.Setting.ToString(), StringComparison.Ordinal) && t.EndsWith("passed", StringComparison.Ordinal));
        Assert.Contains(tips, t => t.EndsWith("failed", StringComparison.Ordinal));
        Assert.Single(svg.Descendants(ns + "polyline"));
        var front = Aq4Report.ParetoFront(r.Candidates);
        Assert.Equal(front.Count, svg.Descendants(ns + "circle").Count(c => (string?)c.Attribute("r") == "6.5"));
        var texts = svg.Descendants(ns + "text").Select(t => t.Value).ToArray();
        Assert.Contains($"max drop 1.5 points: {r.Fp32Accuracy.Accuracy - 1.5:F2} %", texts);
        Assert.Contains("Pareto front", texts);
        Assert.Contains("chosen", texts);

        var rows = ComparisonTable.Read(dir.Path);
        Assert.Equal(["fp32", "AQ4SViT-Beam (B=2)"], rows.Select(x => x.Method));
        Assert.Equal(r.Setting.ToString(), rows[1].Setting);
        Assert.Equal(75.0, rows[1].TestAccuracy!.Value.Value, 9);
        Assert.Equal(-25.0, rows[1].DifferenceVsFp32!.Value.Value, 9);
        Assert.Equal("test", rows[1].DifferenceSplit);
        Assert.Equal((r.FullEvaluations, r.DriftEvaluations), (rows[1].FullEvaluations, rows[1].DriftEvaluations));
        Assert.Equal(r.FullSeconds + r.DriftSeconds, rows[1].SearchSeconds, 9);
        Assert.Equal(r.CostFullEquivalents, rows[1].FullEquivalents!.Value, 9);
        Assert.Equal(1.5, rows[1].AllowedDrop);
        Assert.True(rows[0].IsBaseline);
        Assert.Equal(100.0, rows[0].TestAccuracy!.Value.Value, 9);
        Assert.Null(rows[0].DifferenceVsFp32);
    }

    [Fact]
    public void MethodName_SaysWhatDiffersFromTheDefaults()
    {
        var r = Search();
        Assert.Equal("AQ4SViT-Beam (B=2)", Aq4Report.MethodName(r));
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [8], quantizeHead: true);
        var greedy = r with { Options = r.Options with { Method = Aq4Method.Greedy, DriftGate = false, Verification = Aq4Verification.Step }, Space = space };
        Assert.Equal("AQ4SViT-Greedy (stage, head searched, no drift gate, step verification)", Aq4Report.MethodName(greedy));
        Assert.Equal("AQ4SViT-Greedy (stage, head searched, no drift gate)",
            Aq4Report.MethodName(greedy with { Options = greedy.Options with { Verification = Aq4Verification.Path } }));
        Assert.Equal("AQ4SViT-Greedy", Aq4Report.MethodName(r with { Options = r.Options with { Method = Aq4Method.Greedy } }));
        // Lazy drift ranking is named where it applies (beam, step greedy), not for path greedy, which is always lazy.
        Assert.Equal("AQ4SViT-Beam (B=2, lazy drift)", Aq4Report.MethodName(r with { Options = r.Options with { LazyDrift = true } }));
        Assert.Equal("AQ4SViT-Greedy", Aq4Report.MethodName(r with { Options = r.Options with { Method = Aq4Method.Greedy, LazyDrift = true } }));
    }
}
