using System.Text.Json.Nodes;
using Qsvit.Evaluation;
using Qsvit.Search;

namespace Qsvit.Reports;

/// <summary>
/// The stable top-level <c>summary</c> object of every method's report.json, for tools: the same keys for every method,
/// accuracies in percent, differences as quantized minus fp32 (a drop is negative), null where not evaluated.
/// </summary>
public static class ReportSummary
{
    /// <param name="method">"qsvit", "greedy" or "beam".</param>
    /// <param name="search">The chosen setting's whole-search-split result and fp32's.</param>
    /// <param name="test">The same on the held-out split, when evaluated.</param>
    /// <param name="device">Where the evaluations ran (the backend's description).</param>
    /// <param name="fullEquivalents">The search's cost in whole search-split evaluations (images evaluated / split size,
    /// drift measurements included by time, corrections' calibration passes in images).</param>
    /// <param name="correction">Corrections after quantization (<see cref="Quantization.CorrectionOptions"/>'s text), beside the quantizer.</param>
    public static JsonObject Create(string method, string quantizer, string setting, double memorySavingPercent,
        FinalAccuracy search, FinalAccuracy? test, double fullEquivalents, double wallSeconds, SequentialOptions? sequential, string device,
        string correction = "none")
    {
        var delta = test?.Difference;
        return new JsonObject
        {
            ["method"] = method,
            ["quantizer"] = quantizer,
            ["correction"] = correction,
            ["setting"] = setting,
            ["memory_saving_percent"] = memorySavingPercent,
            ["search_top1"] = search.Quantized.Accuracy,
            ["test_top1"] = test?.Quantized.Accuracy,
            ["test_delta_points"] = delta?.Value,
            ["test_delta_ci95"] = delta is { } d ? new JsonArray(d.Low, d.High) : null,
            ["full_eval_equivalents"] = double.IsFinite(fullEquivalents) ? fullEquivalents : null,
            ["wall_seconds"] = wallSeconds,
            ["device"] = device,
            ["error_budget"] = sequential?.ErrorBudget,
        };
    }

    /// <summary>One line for a report: how decisions were taken.</summary>
    public static string DecisionRule(SequentialOptions? sequential, double maxDrop, string split) => sequential is { } s
        ? $"sequential on growing chunks of `{split}` ({s.FirstImages} images first, ×{s.Growth:G3} after): paired test by betting, each early " +
          $"decision wrong with probability ≤ {s.ErrorBudget:G3} (error budget); undecided ones go to the whole split and decide on its " +
          $"accuracy (drop ≤ {maxDrop:G4} points)"
        : $"every candidate on the whole of `{split}` (drop ≤ {maxDrop:G4} points)";
}
