using System.CommandLine;
using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;

namespace Qsvit.Cli.Commands;

/// <summary><c>qsvit search --method qsvit</c>: the paper's Alg. 1-4, then the report and the quantized network.</summary>
internal sealed class QsvitMethod : ISearchMethod
{
    public SearchMethod Method => SearchMethod.Qsvit;
    public string Description => "QSViT (sensitivity, base settings, guided quantization)";
    public IReadOnlyList<Option> Options => [];
    public int? CalibrationImages(ParseResult r) => null;

    /// <summary>The QSViT options of an opened run (<c>qsvit sensitivity</c> reads them the same way).</summary>
    public static QsvitOptions OptionsOf(SearchRun run) => new()
    {
        Granularity = run.Granularity.OfSetting(),
        Bits = run.Bits,
        TolerancePoints = run.TolerancePoints,
        SearchSplit = SearchRun.SearchSplit,
        ReportSplit = run.TestSplitName,
        Sequential = run.Spec.Sequential,
    };

    public int Run(SearchRun run, ParseResult r, SearchCommand.Shared shared)
    {
        var options = OptionsOf(run);
        var result = SearchProgress.Run(run.Evaluator, bar => QsvitSearch.Run(run.Evaluator, run.Layout, options, bar.Report));

        Console.Error.WriteLine($"Alg. 4: saving bSettingG {result.BSettingG} and writing the report…");
        var saved = run.SaveModel(result.BSettingG, Method.Name);
        var input = new QsvitReportInput(result, run.Layout)
        {
            Model = run.Model.CheckpointPath,
            Quantizer = run.Quantizer,
            Correction = run.Correction.IsNone ? run.Correction : run.Correction with { CalibrationImages = run.Evaluator.CorrectionImagesUsed },
            Device = run.Backend.Description,
            Splits = run.SplitDescriptions,
            WeightErrors = UnitWeightError.Compute(run.Evaluator.QuantizeWeights, options),
            Energy = run.Energy(result.BSettingG, r.GetValue(shared.EnergyImages)),
            MeasuredEnergy = shared.MeasureEnergy(run, result.BSettingG, r),
            QuantizedModelPath = saved,
            OracleEvaluations = run.Evaluator.FullEvaluations,
        };
        var reportDir = shared.ReportDirectory(run, r);
        Console.Error.WriteLine($"packed model (qsvit eval/bench run it on the integer path): {run.SavePackedModel(result.BSettingG, reportDir)}");
        QsvitReport.Write(reportDir, input);
        return shared.Finish(run, r, reportDir, QsvitReport.ComparisonRows(input), () => QsvitReport.ToJson(input), () => Print(result, run, saved, reportDir));
    }

    private static void Print(QsvitResult r, SearchRun run, string saved, string reportDir)
    {
        string F(double v) => v.ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
        Console.WriteLine($"bSettingH  {r.BSettingH}");
        Console.WriteLine($"bSettingL  {r.BSettingL}");
        Console.WriteLine($"bSettingG  {r.BSettingG}{(r.WithinTolerance ? "" : "   (NOT within tolerance on the search split)")}");
        foreach (var f in new[] { r.Search, r.Report }.OfType<FinalAccuracy>())
            Console.WriteLine($"{f.Split,-10} fp32 {f.Fp32.Top1} %  bSettingG {f.Quantized.Top1} %  Δ {f.Difference} points (paired 95% CI), n = {f.Fp32.Count}");
        var g = r.MemoryOf("bSettingG").Memory;
        Console.WriteLine($"memory     {F(g.MiB)} MiB vs {F(g.Fp32MiB)} MiB fp32 ({F(g.SavingPercent)} % saving)");
        Console.WriteLine($"cost       {r.Cost.Evaluations} evaluations ({run.Evaluator.FullEvaluations} run now on the whole split; the rest decided on chunks or replayed from {run.Directory}), " +
                          $"{F(r.Cost.EvaluationSeconds)} s evaluating in all, {F(r.Cost.WallSeconds)} s now; {F(r.Cost.FullEquivalents)} full-evaluation equivalents");
        Console.WriteLine($"reuse      {PrefixReuseStats.Describe(run.Evaluator.Reuse, null)}");
        Console.WriteLine($"model      {saved}");
        Console.WriteLine($"report     {Path.Combine(reportDir, QsvitReport.Markdown)}");
    }
}
