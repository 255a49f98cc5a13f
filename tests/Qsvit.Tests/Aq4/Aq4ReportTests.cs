using System.Text.Json.Nodes;
using System.Xml.Linq;
using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;
using Qsvit.Tests.Datasets;

namespace Qsvit.Tests.Aq4;

public sealed class Aq4ReportTests
{
    /// <summary>A beam search on a noisy block-granularity surface: passes, failures, gated and dominated candidates.</summary>
    private static Aq4Result Search(int seed = 0)
    {
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Aq4Granularity.Block, Aq4Space.DefaultBits(QuantizerSpec.Parse("symmetric")));
        double Drop(QuantizationSetting s) => space.Units.Select((u, i) => (0.05 + 0.04 * i) * Math.Pow(2, (16 - Math.Min(16, s[u.Name])) / 2.5)).Sum() - 0.4;
        double Noise(QuantizationSetting s) => Aq4Fixtures.Noise(s, seed);
        var oracle = new FakeOracle(s => 91.3 - Math.Max(0, Drop(s)) + 0.3 * Noise(s), s => Math.Max(0, 0.1 * Drop(s) + 0.05 * Noise(s)), images: 5000);
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
        Aq4Report.Write(dir.Path, r, new Aq4HeldOut(fp32Test, chosenTest), [new("model", "tiny | random")]);

        var md = File.ReadAllText(Path.Combine(dir.Path, Aq4Report.MarkdownFile));
        Assert.Contains("AQ4SViT beam (width 2), block granularity", md);
        Assert.Contains(r.Setting.ToString().Replace("|", "\\|"), md);
        Assert.Contains("tiny \\| random", md);
        Assert.Contains($"{r.Memory.SavingPercent:F2} % saved", md);
        Assert.Contains("held-out top-1 (`test`)", md);
        Assert.Contains(Aq4Report.ChartFile, md);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, Aq4Report.JsonFile)))!;
        Assert.Equal("beam", json["method"]!.GetValue<string>());
        Assert.Equal(r.Candidates.Count, json["candidates"]!.AsArray().Count);
        Assert.Equal(r.Setting.ToString(), json["chosen"]!["setting"]!.GetValue<string>());
        Assert.Equal(25.0, json["chosen"]!["held_out"]!["drop"]!.GetValue<double>(), 9);
        Assert.Equal(r.FullEvaluations, json["evaluations"]!["full"]!.GetValue<int>());
        Assert.Equal(r.ProxySpearman, json["proxy"]!["spearman_drift_drop"]!.GetValue<double>(), 12);
        Assert.Equal(Aq4Report.ParetoFront(r.Candidates).Count, json["candidates"]!.AsArray().Count(c => c!["pareto"]!.GetValue<bool>()));
        Assert.Contains(json["candidates"]!.AsArray(), c => c!["outcome"]!.GetValue<string>() == "drift-gated" && c["accuracy"] is null);

        var svg = XDocument.Load(Path.Combine(dir.Path, Aq4Report.ChartFile));
        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(r.Candidates.Count(c => c.Verified && c.Step > 0), svg.Descendants(ns + "circle").Count(c => c.Element(ns + "title") is not null));
        Assert.Single(svg.Descendants(ns + "polyline"));
    }
}
