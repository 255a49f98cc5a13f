using System.CommandLine;
using System.Text.Json;
using Qsvit.Reports;
using Qsvit.Search;

namespace Qsvit.Cli.Commands;

/// <summary><c>qsvit search --method qsvit</c>: the paper's Alg. 1-4, then the report and the quantized network.</summary>
internal sealed class QsvitMethod : ISearchMethod
{
    public string Name => "qsvit";
    public string Description => "QSViT (sensitivity, base settings, guided quantization)";
    public IReadOnlyList<Option> Options => [];
    public MethodTraits Traits => Qsvit;

    /// <summary>QSViT searches the paper's units (or transformer blocks apart); <c>qsvit sensitivity</c> reads options the same way.</summary>
    public static readonly MethodTraits Qsvit = new("qsvit", "--method qsvit", _ => QsvitOptions.DefaultBits, QsvitOptions.DefaultTolerancePoints)
    {
        Granularities = [Aq4Granularity.Block, Aq4Granularity.TransformerBlock],
    };

    public int Run(SearchContext c, SearchCommand.Shared shared)
    {
        var options = new QsvitOptions
        {
            Granularity = c.SettingGranularity,
            Bits = c.Bits,
            TolerancePoints = c.TolerancePoints,
            SearchSplit = SearchOptions.SearchSplit,
            ReportSplit = c.TestSplit,
            Sequential = c.Sequential,
        };
        var result = SearchProgress.Run(c.Evaluator, bar => QsvitSearch.Run(c.Evaluator, c.Layout, options, bar.Report));

        Console.Error.WriteLine($"Alg. 4: saving bSettingG {result.BSettingG} and writing the report…");
        var saved = c.SaveModel(result.BSettingG, Name);
        int energyImages = c.Parse.GetValue(shared.EnergyImages);
        var input = new QsvitReportInput(result, c.Layout)
        {
            Model = c.Model.CheckpointPath,
            Quantizer = c.Quantizer,
            Splits = c.SplitDescriptions,
            WeightErrors = UnitWeightError.Compute(c.Evaluator.Quantize, options),
            Energy = c.Energy(result.BSettingG, energyImages),
            QuantizedModelPath = saved,
            OracleEvaluations = c.Evaluator.FullEvaluations,
        };
        var reportDir = shared.ReportDirectory(c);
        QsvitReport.Write(reportDir, input);
        var comparison = shared.WriteComparison(c, QsvitReport.ComparisonRows(input));

        if (c.Json)
        {
            var json = QsvitReport.ToJson(input);
            json["report_dir"] = reportDir;
            json["run_dir"] = c.RunDir;
            Console.WriteLine(json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        Print(result, c, saved, reportDir);
        if (comparison is not null) Console.WriteLine(Environment.NewLine + comparison);
        return 0;
    }

    private static void Print(QsvitResult r, SearchContext c, string saved, string reportDir)
    {
        string F(double v) => v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
        Console.WriteLine($"bSettingH  {r.BSettingH}");
        Console.WriteLine($"bSettingL  {r.BSettingL}");
        Console.WriteLine($"bSettingG  {r.BSettingG}{(r.WithinTolerance ? "" : "   (NOT within tolerance on the search split)")}");
        foreach (var f in new[] { r.Search, r.Report }.OfType<FinalAccuracy>())
            Console.WriteLine($"{f.Split,-10} fp32 {f.Fp32.Top1} %  bSettingG {f.Quantized.Top1} %  Δ {f.Difference} points (paired 95% CI), n = {f.Fp32.Count}");
        var g = r.MemoryOf("bSettingG").Memory;
        Console.WriteLine($"memory     {F(g.MiB)} MiB vs {F(g.Fp32MiB)} MiB fp32 ({F(g.SavingPercent)} % saving)");
        Console.WriteLine($"cost       {r.Cost.Evaluations} evaluations ({c.Evaluator.FullEvaluations} run now, {r.Cost.Replayed} replayed from {c.RunDir}), " +
                          $"{F(r.Cost.EvaluationSeconds)} s evaluating in all, {F(r.Cost.WallSeconds)} s now");
        Console.WriteLine($"model      {saved}");
        Console.WriteLine($"report     {Path.Combine(reportDir, QsvitReport.Markdown)}");
    }
}
