using System.CommandLine;
using System.Globalization;
using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;
using Qsvit.IO;

namespace Qsvit.Cli.Commands;

/// <summary>
/// <c>qsvit search --method greedy|beam</c>: AQ4SViT's drift-gated search under the accuracy constraint (--tolerance, alias
/// --max-drop), then the chosen setting checked on the test split, its report and the quantized network.
/// </summary>
internal sealed class Aq4SearchMethod : ISearchMethod
{
    // Shared by greedy and beam: one option instance each, so the command holds it once.
    private static readonly Option<int> BeamWidth = new("--beam-width")
    {
        Description = "beam: settings kept per step",
        DefaultValueFactory = _ => new Aq4Options().BeamWidth,
    };
    private static readonly Option<int> Calibration = new("--calibration-images")
    {
        Description = "greedy/beam: search-split images the membrane drift is measured on, spread evenly over it (part of the run identity)",
        DefaultValueFactory = _ => SearchMethod.DefaultCalibrationImages,
    };
    private static readonly Option<bool> QuantizeHead = new("--quantize-head") { Description = "greedy/beam: search the classifier head's width too (default: keep it fp32)" };
    private static readonly Option<bool> NoDriftGate = new("--no-drift-gate")
    {
        Description = "greedy/beam: verify every candidate in rank order instead of skipping predicted failures (ablation)",
    };

    private static readonly Option<bool> LazyDrift = new("--lazy-drift")
    {
        Description = "beam, greedy --verify step: measure a child's drift only once it ranks first on an estimate (its parent's drift " +
                      "plus the least drift the same move added where it was measured): fewer drift measurements and, with --correct, BatchNorm passes",
    };

    private static readonly Option<string> Verify = new("--verify")
    {
        Description = "greedy: path (descend by drift, then search the path for its last passing setting: a few verifications " +
                      "per failure) or step (verify each step's best-ranked move, the paper's, drift-gated)",
        DefaultValueFactory = _ => "path",
    };

    public static readonly Aq4SearchMethod Greedy = new(Aq4Method.Greedy, SearchMethod.Greedy, "AQ4SViT greedy (one setting carried forward, drift-ranked moves)");
    public static readonly Aq4SearchMethod Beam = new(Aq4Method.Beam, SearchMethod.Beam, "AQ4SViT beam (the --beam-width cheapest-drift settings carried forward)");

    private readonly Aq4Method _method;

    private Aq4SearchMethod(Aq4Method method, SearchMethod searchMethod, string description)
    {
        _method = method;
        Method = searchMethod;
        Description = description;
        Options = method == Aq4Method.Beam ? [BeamWidth, Calibration, QuantizeHead, NoDriftGate, LazyDrift]
            : [Verify, Calibration, QuantizeHead, NoDriftGate, LazyDrift];
    }

    public SearchMethod Method { get; }
    private string Name => Method.Name;
    public string Description { get; }
    public IReadOnlyList<Option> Options { get; }
    public int? CalibrationImages(ParseResult r) => r.GetValue(Calibration);

    public int Run(SearchRun c, ParseResult r, SearchCommand.Shared shared)
    {
        var space = Aq4Space.Create(c.Layout, c.Granularity, c.Bits, r.GetValue(QuantizeHead));
        var options = new Aq4Options
        {
            Method = _method,
            BeamWidth = _method == Aq4Method.Beam ? r.GetValue(BeamWidth) : 1,
            MaxDrop = c.TolerancePoints,
            SearchSplit = SearchRun.SearchSplit,
            DriftGate = !r.GetValue(NoDriftGate),
            LazyDrift = r.GetValue(LazyDrift),
            Verification = _method == Aq4Method.Beam ? Aq4Verification.Step : r.GetValue(Verify) switch
            {
                "path" => Aq4Verification.Path,
                "step" => Aq4Verification.Step,
                var other => throw new QsvitException($"--verify takes path or step, got '{other}'"),
            },
            Sequential = c.Spec.Sequential,
        };
        options.Validate();

        var result = SearchProgress.Run(c.Evaluator, bar => Aq4Searcher.Run(c.Evaluator, space, options, p =>
            bar.Step($"{Name} step {p.Step}", Math.Max(0, p.Step - 1), p.MaxSteps,
                Inv($"{p.Activity}; {p.FullEvaluations} full + {p.DriftEvaluations} drift, best {p.BestMiB:F3} MiB ({p.BestSavingPercent:F1} % saved)"))));

        // The held-out check through the same cached evaluator: fp32's result is shared with every method in the run directory.
        Aq4HeldOut? heldOut = null;
        if (c.TestSplitName is { } test)
            heldOut = SearchProgress.Run(c.Evaluator, bar =>
            {
                bar.Step("held-out", 0, 2, $"fp32 on {test}");
                var fp32 = c.Evaluator.Accuracy(QuantizationSetting.Uniform(Quantizer.FullPrecision), test);
                bar.Step("held-out", 1, 2, $"chosen setting on {test}");
                var chosen = c.Evaluator.Accuracy(result.Setting, test);
                bar.Step("held-out", 2, 2, "done");
                return new Aq4HeldOut(fp32, chosen);
            });

        Console.Error.WriteLine($"saving {result.Setting} and writing the report…");
        var saved = c.SaveModel(result.Setting, Name);
        var input = new Aq4ReportInput(result, Context(c))
        {
            HeldOut = heldOut,
            Energy = c.Energy(result.Setting, r.GetValue(shared.EnergyImages)),
            MeasuredEnergy = shared.MeasureEnergy(c, result.Setting, r),
            QuantizedModelPath = saved,
            Quantizer = c.Quantizer,
            Correction = c.Correction,
        };
        var reportDir = shared.ReportDirectory(c, r);
        Console.Error.WriteLine($"packed model (qsvit eval/bench run it on the integer path): {c.SavePackedModel(result.Setting, reportDir)}");
        Aq4Report.Write(reportDir, input);
        return shared.Finish(c, r, reportDir, Aq4Report.ComparisonRows(result, heldOut, c.Quantizer, c.Correction), () => Aq4Report.Json(input), () => Print(input, c, reportDir));
    }

    /// <summary>What was searched, for the report's header.</summary>
    private static IReadOnlyList<KeyValuePair<string, string>> Context(SearchRun c)
    {
        var context = new List<KeyValuePair<string, string>>
        {
            new("model", c.Model.CheckpointPath),
            new("architecture", c.Model.Config.ToString()),
            new("quantizer", c.Quantizer.ToString()),
            new("correction", c.Correction.IsNone ? "none"
                : c.Spec.CorrectsApart
                    ? $"{c.Correction} on {c.Evaluator.CorrectionImagesUsed} images spread evenly over the search data and held apart from the search split (no decision uses them), for every candidate and the result"
                    : $"{c.Correction} on {c.Evaluator.CorrectionImagesUsed} search-split images spread evenly over it, for every candidate and the result"),
            new("device", c.Evaluator.Backend.Description),
        };
        foreach (var (split, description) in c.SplitDescriptions) context.Add(new($"{split} split", description));
        context.Add(new("calibration", $"{c.Evaluator.CalibrationImages} search-split images spread evenly over it"));
        context.Add(new("run directory", c.Directory));
        return context;
    }

    private static void Print(Aq4ReportInput input, SearchRun c, string reportDir)
    {
        var (r, heldOut) = (input.Result, input.HeldOut);
        Console.WriteLine($"setting   {r.Setting}");
        Console.WriteLine(Inv($"memory    {r.Memory.MiB:F3} MiB vs {r.Memory.Fp32MiB:F3} MiB fp32 ({r.Memory.SavingPercent:F2} % saving)"));
        Console.WriteLine(Inv($"{r.Options.SearchSplit,-9} fp32 {r.Fp32Accuracy.Top1} %  chosen {r.Accuracy.Top1} %  Δ {r.Difference} points (paired 95% CI), n = {r.Accuracy.Count}; allowed drop {r.Options.MaxDrop:G4}"));
        if (heldOut is not null)
            Console.WriteLine(Inv($"{heldOut.Chosen.Split,-9} fp32 {heldOut.Fp32.Top1} %  chosen {heldOut.Chosen.Top1} %  Δ {heldOut.Difference} points (paired 95% CI), n = {heldOut.Chosen.Count}"));
        Console.WriteLine(Inv($"cost      {r.FullEvaluations} full + {r.DriftEvaluations} drift evaluations = {r.CostFullEquivalents:F1} full-evaluation equivalents ") +
                          Inv($"({r.NewFullEvaluations} whole-split + {r.NewDriftEvaluations} drift run now; the rest decided on chunks or replayed from {c.Directory}); {r.WallSeconds:F1} s now"));
        Console.WriteLine($"reuse     {PrefixReuseStats.Describe(c.Evaluator.Reuse, c.Evaluator.DriftReuse)}");
        // Fewer than three verified candidates give no rank correlation (path verification often checks two).
        Console.WriteLine(double.IsNaN(r.ProxySpearman)
            ? "proxy     Spearman(drift, drop): too few verified candidates to rank"
            : Inv($"proxy     Spearman(drift, drop) = {r.ProxySpearman:F2}"));
        Console.WriteLine($"model     {input.QuantizedModelPath}");
        Console.WriteLine($"report    {Path.Combine(reportDir, Aq4Report.MarkdownFile)}");
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
