using System.Text.Json.Nodes;
using System.Xml.Linq;
using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;
using Qsvit.Tests.Evaluation;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Reports;

public sealed class QsvitReportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qsvit-report-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static QsvitReportInput Input(QsvitResult result)
    {
        var layout = QsvitSearchTests.Layout;
        var quantizer = new ModelQuantizer(RandomWeights.Create(layout.Config, 3), layout);
        var macs = EnergyEstimate.LayerMacs(layout, 32, 32);
        var rates = layout.Weights.Where(w => !w.IsInputLayer).ToDictionary(w => w.Key, _ => 0.2);
        return new QsvitReportInput(result, layout)
        {
            Model = "models/tiny.pth",
            Quantizer = QuantizerSpec.Paper,
            Splits = new Dictionary<string, string> { ["search"] = "val.bin, 1000 images", ["test"] = "test.bin, 1000 images" },
            WeightErrors = UnitWeightError.Compute(s => quantizer.Apply(s, QuantizerSpec.Paper), result.Options),
            Energy = new EnergyComparison("search", 16, EnergyEstimate.Compute(layout, macs, rates, result.Fp32),
                EnergyEstimate.Compute(layout, macs, rates, result.BSettingG)),
            QuantizedModelPath = "runs/tiny/qsvit.safetensors",
        };
    }

    private static MeasuredEnergyComparison Measured(Func<IPowerSource> source, Qsvit.Backends.IBackend device)
    {
        EnergyMeasurement One(int images) => EnergyMeasurement.Measure(device, source(), () => images, x => x).Energy;
        return new MeasuredEnergyComparison("search", 1000, "2 devices", One(1000), One(1000));
    }

    /// <summary>The energy section keeps the 45 nm estimate and adds the measured board energy, each labelled; or says power was not measured.</summary>
    [Fact]
    public void TheEnergySection_HasTheEstimateAndTheMeasurement_EachLabelled()
    {
        var result = QsvitSearchTests.PaperLikeRun(out _);
        using var group = Qsvit.Backends.DeviceGroup.Open([() => new Qsvit.Backends.Cpu.CpuBackend(), () => new Qsvit.Backends.Cpu.CpuBackend()]);
        QsvitReport.Write(_dir, Input(result) with { MeasuredEnergy = Measured(() => new FakePowerSource(), group) });
        var md = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("## 9. Energy (estimate and measured)", md);
        Assert.Contains("**Estimate (45 nm model, not a measurement).**", md);
        Assert.Contains("Estimated saving:", md);
        Assert.Contains("**Measured (board power through NVML, what the QSViT paper reports).**", md);
        Assert.Contains("| fp32 | 700.0 | 1.4 | 0.7143 | 2.00 |", md);
        Assert.Contains("| bSettingG | 700.0 | 1.4 | 0.7143 | 2.00 |", md);
        Assert.Contains("Per GPU, fp32: cpu Fake GPU 400.0 W, 800.0 J; cpu Fake GPU 300.0 W, 600.0 J.", md);
        Assert.Contains("Measured saving: 0.0 %", md);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "report.json")))!["energy_measured"]!;
        Assert.True(json["measured"]!.GetValue<bool>());
        Assert.Equal(1.4, json["fp32"]!["joules_per_image"]!.GetValue<double>(), 12);
        Assert.Equal(700, json["bSettingG"]!["average_watts"]!.GetValue<double>());
        Assert.Equal(2, json["bSettingG"]!["per_device"]!.AsArray().Count);
        Assert.Contains("runs as fp32 simulation of its codes", md);
        Assert.Equal("fp32 simulation of the codes", json["quantized_arithmetic"]!.GetValue<string>());

        // A backend that sums integer codes (the CUDA tensor-core path) says the arithmetic differs too.
        QsvitReport.Write(_dir, Input(result) with { MeasuredEnergy = Measured(() => new FakePowerSource(), group) with { IntegerCodes = true } });
        md = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("spike-input layers summed its integer codes exactly (int8 tensor cores)", md);
        Assert.DoesNotContain("fp32 simulation of its codes", md);
        json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "report.json")))!["energy_measured"]!;
        Assert.Equal("integer codes (exact int8 sums)", json["quantized_arithmetic"]!.GetValue<string>());
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "report.json")))!["energy_estimate"]);

        using var cpu = new Qsvit.Backends.Cpu.CpuBackend();
        QsvitReport.Write(_dir, Input(result) with { MeasuredEnergy = Measured(() => NvmlPowerSource.Instance, cpu) });
        md = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("Power was not measured: cpu is not an NVIDIA GPU", md);
        Assert.Contains("Only the estimate above is given.", md);
        json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "report.json")))!["energy_measured"]!;
        Assert.False(json["measured"]!.GetValue<bool>());
        Assert.Contains("not an NVIDIA GPU", json["not_measured_reason"]!.GetValue<string>());
    }

    [Fact]
    public void TheReportDirectoryHoldsMarkdownJsonFiguresAndComparisonRows()
    {
        var result = QsvitSearchTests.PaperLikeRun(out _);
        var files = QsvitReport.Write(_dir, Input(result));
        string[] names = ["report.md", "report.json", "sensitivity.svg", "guided.svg", "memory-accuracy.svg", "comparison.json"];
        Assert.Equal(names.Order(), files.Select(Path.GetFileName).Order());
        Assert.All(files, f => Assert.True(new FileInfo(f).Length > 0));
        foreach (var svg in files.Where(f => f.EndsWith(".svg", StringComparison.Ordinal))) XDocument.Load(svg);

        var md = File.ReadAllText(Path.Combine(_dir, "report.md"));
        Assert.Contains("bSettingG = `8,4,4,8|4,8,8|4,32|4,4`", md);
        Assert.Contains("bSettingH = `16,16,16,16|16,16,16|16,32|16,12`", md);
        Assert.Contains("bSettingL = `8,4,4,4|4,4,4|4,32|4,4`", md);
        Assert.Contains("threshold 85.00 %", md);
        Assert.Contains("| TRAN_S3 | none (fp32 only) | 32 | 32 | — |", md);
        Assert.Contains("| TRAN_S4 | 12, 4 | 12 | 4 | 8 → 4 |", md);
        Assert.Contains(@"| 28 | TRAN_S4 | 4 | `8,4,4,8\|4,8,8\|4,32\|4,4` |", md);  // pipes escaped inside table cells
        Assert.Contains("90.00 [", md);                                // fp32 with its interval
        Assert.Contains("-5.00 [", md);                                // bSettingG's paired difference
        Assert.Contains("clamped", md);                                // the paper quantizer's clipping explained
        Assert.Contains("What is noise", md);
        Assert.Contains("not a measurement", md);
        Assert.Contains("Power was not measured for this run.", md);
        Assert.Contains(QsvitSearch.PaperSetting.Replace("|", "\\|"), md);
        Assert.Contains($"{result.MemoryOf("bSettingG").Memory.MiB:F3}", md);
        Assert.Contains("| Alg. 3 guided quantization | 28 | 28 | 0 |", md);
        Assert.Contains("runs/tiny/qsvit.safetensors", md);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "report.json")))!;
        Assert.Equal("8,4,4,8|4,8,8|4,32|4,4", json["bSettingG"]!.GetValue<string>());
        Assert.Equal(55, json["sensitivity"]!.AsArray().Count);
        Assert.Equal(28, json["guided"]!.AsArray().Count);
        Assert.Equal(85.0, json["final"]![0]!["bSettingG"]!["top1"]!["value"]!.GetValue<double>());
        Assert.Equal(79, json["cost"]!["evaluations"]!.GetValue<int>());
        Assert.True(json["within_tolerance"]!.GetValue<bool>());
        Assert.Equal(11 * 4, json["weight_errors"]!.AsArray().Count);

        // The stable summary: quantized minus fp32, so a drop is negative.
        var summary = json["summary"]!;
        Assert.Equal(["method", "quantizer", "correction", "setting", "memory_saving_percent", "search_top1", "test_top1", "test_delta_points",
            "test_delta_ci95", "full_eval_equivalents", "wall_seconds", "device", "error_budget"], summary.AsObject().Select(kv => kv.Key));
        Assert.Equal(("qsvit", "paper", "8,4,4,8|4,8,8|4,32|4,4"), (summary["method"]!.GetValue<string>(), summary["quantizer"]!.GetValue<string>(),
            summary["setting"]!.GetValue<string>()));
        Assert.Equal(-5.0, summary["test_delta_points"]!.GetValue<double>(), 9);
        Assert.True(summary["test_delta_ci95"]![1]!.GetValue<double>() < 0);
        Assert.Equal(75, summary["full_eval_equivalents"]!.GetValue<double>(), 9);
        Assert.Null(summary["error_budget"]);
        // The paper's setting as a reference row on both splits.
        Assert.Equal(QsvitSearch.PaperSetting, json["reference"]!["setting"]!.GetValue<string>());
        Assert.Equal(2, json["reference"]!["final"]!.AsArray().Count);
        Assert.Contains("| reference: paper's published setting |", md);

        var rows = ComparisonTable.Read(_dir);
        Assert.Equal(["fp32", "QSViT"], rows.Select(r => r.Method));
        Assert.Equal(result.BSettingG.ToString(), rows[1].Setting);
        Assert.Equal(result.MemoryOf("bSettingG").Memory.MiB, rows[1].MemoryMiB, 12);
        Assert.Equal(85.0, rows[1].TestAccuracy!.Value.Value, 9);
        Assert.Equal(-5.0, rows[1].DifferenceVsFp32!.Value.Value, 9);
        Assert.Equal("test", rows[1].DifferenceSplit);
        Assert.Null(rows[0].DifferenceVsFp32);
        // The search's own cost: 77 evaluations less Alg. 4's two on the held-out split, 0.5 s each.
        Assert.Equal(75, rows[1].FullEvaluations);
        Assert.Equal(75, rows[1].FullEquivalents);
        Assert.Equal(37.5, rows[1].SearchSeconds, 9);
        Assert.Equal(5, rows[1].AllowedDrop);
    }

    [Fact]
    public void TheSensitivityFigureHasAPanelPerStageAndTheGuidedFigureAPointPerStep()
    {
        XNamespace svg = "http://www.w3.org/2000/svg";
        var result = QsvitSearchTests.PaperLikeRun(out _);
        var fig7 = XDocument.Parse(QsvitReport.SensitivityChart(result.Sensitivity));
        var texts = fig7.Descendants(svg + "text").Select(t => t.Value).ToArray();
        Assert.All(["Stage 1", "Stage 2", "Stage 3", "Stage 4", "fp32 90.00 %", "tolerance 85.00 %", "TRAN_S4", "32 (fp32)"], t => Assert.Contains(t, texts));
        Assert.Equal(11, fig7.Descendants(svg + "polyline").Count());

        var fig8 = XDocument.Parse(QsvitReport.GuidedChart(result));
        var labels = fig8.Descendants(svg + "text").Select(t => t.Value).ToArray();
        Assert.Contains("bSettingH", labels);
        Assert.Contains("TRAN_S4→4", labels);
        // bSettingH + 28 steps, each with its setting as the point's tooltip (twice: the line's marker and the class marker).
        var tooltips = fig8.Descendants(svg + "title").Select(t => t.Value).ToArray();
        Assert.Contains("bSettingH 16,16,16,16|16,16,16|16,32|16,12, 89.00 %", tooltips);
        Assert.Contains(tooltips, t => t.StartsWith("TRAN_S4→4: 8,4,4,8|4,8,8|4,32|4,4", StringComparison.Ordinal));
        Assert.Equal(29, tooltips.Distinct().Count());
    }

    [Fact]
    public void ComparisonTablesMergeAndRenderAsMarkdown()
    {
        var result = QsvitSearchTests.PaperLikeRun(out _);
        var rows = QsvitReport.ComparisonRows(Input(result));
        var path = Path.Combine(_dir, "comparison.json");
        ComparisonTable.Write(path, rows);
        var greedy = rows[1] with { Method = "AQ4SViT-Greedy", Setting = "4,4,4,4|4,4,4|4,8|4,8", DriftEvaluations = 120 };
        // The same method and setting with corrections after quantization is a row of its own, after the plain one.
        var corrected = rows[1] with { Correction = "bias,bn", SearchAccuracy = null };
        var merged = ComparisonTable.Merge([corrected, greedy, .. ComparisonTable.Read(path), rows[0]]);
        Assert.Equal(["fp32", "AQ4SViT-Greedy", "QSViT", "QSViT"], merged.Select(r => r.Method));   // the baseline first, once
        Assert.Equal([null, "none", "none", "bias,bn"], merged.Select(r => r.Correction));
        var md = ComparisonTable.ToMarkdown(merged);
        Assert.Equal(1 + 4, md.Split('\n').Count(l => l.StartsWith("| ", StringComparison.Ordinal)));
        Assert.Contains(@"| AQ4SViT-Greedy | `paper` | `4,4,4,4\|4,4,4\|4,8\|4,8` |", md);
        Assert.Contains("| QSViT | `paper + bias,bn` |", md);
        Assert.Contains("| fp32 | — |", md);
        Assert.Contains("| 75 | 120 | 75.0 | 37.5 s |", md);
        Assert.Contains("| 5.00 |", md);                                 // the allowed drop
        Assert.Contains("| — | — | — | — |", md);                       // the baseline has no search cost
        Assert.Contains("-5.00 [", md);
        Assert.Throws<QsvitException>(() => ComparisonTable.Read(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void EnergyInputsComeFromTheLifLayerFeedingEachWeight()
    {
        var model = TinyModel.Load();
        var data = TinyModel.Open(TinyModel.WriteCifar(_dir, "e.bin", 2, 5));
        var eval = Evaluator.Run(model.CreateModel(), data);
        var layout = new Sdtv2Layout(model.Config);
        var rates = LayerInputRates.FromLif(layout, eval.FiringRates);
        Assert.Equal(layout.Weights.Where(w => !w.IsInputLayer).Select(w => w.Key), rates.Keys);
        double Rate(string lif) => eval.FiringRates.Single(r => r.Name == lif).Rate;
        Assert.Equal(Rate("ConvBlock1_1.0.Conv.lif1"), rates["ConvBlock1_1.0.Conv.pwconv1.weight"]);
        Assert.Equal(Rate("ConvBlock2_2.0.lif2"), rates["ConvBlock2_2.0.conv2.weight"]);
        Assert.Equal(Rate("downsample3.encode_lif"), rates["downsample3.encode_conv.weight"]);
        Assert.Equal(Rate("block3.5.attn.head_lif"), rates["block3.5.attn.v_conv.0.body.2.1.weight"]);
        Assert.Equal(Rate("block4.1.attn.attn_lif"), rates["block4.1.attn.proj_conv.0.body.0.weight"]);
        Assert.Equal(Rate("block4.0.mlp.fc2_lif"), rates["block4.0.mlp.fc2_conv.weight"]);
        Assert.Equal(Rate("lif"), rates["head.weight"]);
        var energy = EnergyEstimate.Compute(layout, EnergyEstimate.LayerMacs(layout, 32, 32), rates, QuantizationSetting.Uniform(8));
        Assert.True(energy.TotalUj > 0);
    }

    // Issue 8's figure defects, checked on the SVG text (rendered to PNG with rsvg-convert while fixing them).
    private static IEnumerable<XElement> Texts(string svg) => XDocument.Parse(svg).Descendants().Where(e => e.Name.LocalName == "text");

    [Fact]
    public void SensitivityFigure_FitsItsYAxisToPointsAboveFp32()
    {
        // One unit at 12 bits scores 4.4 points above fp32 (90 → 94.4): the axis must reach past it.
        var oracle = FakeOracle.Additive(90, new Dictionary<string, IReadOnlyDictionary<int, double>> { ["DS_S2"] = new Dictionary<int, double> { [12] = -4.4 } });
        var table = QsvitSearch.Sensitivity(oracle, new QsvitOptions());
        var ticks = Texts(QsvitReport.SensitivityChart(table)).Select(t => t.Value)
            .Where(v => double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out _)).Select(double.Parse).ToArray();
        Assert.True(ticks.Max() >= 94.4, $"y axis ends at {ticks.Max()}");
    }

    [Fact]
    public void MemoryFigure_DrawsCoincidentSettingsAsOneLabelledMarker()
    {
        // Everything passes: bSettingG is bSettingL.
        var result = QsvitSearch.Run(FakeOracle.Additive(90, new Dictionary<string, IReadOnlyDictionary<int, double>>()), QsvitSearchTests.Layout, new QsvitOptions());
        Assert.Equal(result.BSettingL, result.BSettingG);
        var labels = Texts(QsvitReport.MemoryAccuracyChart(result, QsvitSearchTests.Layout)).Select(t => t.Value).ToArray();
        Assert.Equal(2, labels.Count(l => l == "bSettingL = bSettingG"));   // beside the marker and in the legend
        Assert.DoesNotContain("bSettingL", labels);
        Assert.DoesNotContain("bSettingG", labels);
    }

    [Fact]
    public void GuidedFigure_TickLabelsAreShortAndSpacedForTheirSlant()
    {
        var result = QsvitSearchTests.PaperLikeRun(out _);
        var svg = XDocument.Parse(QsvitReport.GuidedChart(result));
        var ticks = svg.Descendants().Where(e => e.Name.LocalName == "text" && e.Attribute("transform")?.Value.Contains("rotate(-45") == true).ToArray();
        Assert.Equal(result.Guided.Steps.Count + 1, ticks.Length);
        Assert.All(ticks, t => Assert.True(t.Value.Length <= 16, t.Value));              // "TRAN_S4→12", not the whole setting
        var xs = ticks.Select(t => double.Parse(t.Attribute("x")!.Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.All(xs.Zip(xs.Skip(1)), p => Assert.True(p.Second - p.First >= 20, $"ticks {p.First} and {p.Second}"));
        Assert.Contains(svg.Descendants(), e => e.Name.LocalName == "title" && e.Value.StartsWith($"TRAN_S4→4: {result.BSettingG}", StringComparison.Ordinal));
    }
}
