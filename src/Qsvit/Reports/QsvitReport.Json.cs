using System.Text.Json.Nodes;
using Qsvit.Evaluation;
using Qsvit.Quantization;
using Qsvit.Search;
using static Qsvit.Reports.ComparisonTable;

namespace Qsvit.Reports;

/// <summary>report.json: the report's numbers for programs.</summary>
public static partial class QsvitReport
{
    public static JsonObject ToJson(QsvitReportInput input)
    {
        var r = input.Result;
        var o = r.Options;
        var t = r.Sensitivity;
        var g = r.MemoryOf("bSettingG").Memory;
        return new JsonObject
        {
            ["summary"] = ReportSummary.Create("qsvit", input.Quantizer.ToString(), r.BSettingG.ToString(), g.SavingPercent, r.Search, r.Report,
                r.Cost.FullEquivalents, r.Cost.SearchSeconds, o.Sequential, input.Device, input.Correction.ToString()),
            ["method"] = "qsvit",
            ["model"] = input.Model,
            ["config"] = input.Layout.Config.ToString(),
            ["quantizer"] = input.Quantizer.ToString(),
            ["correction"] = input.Correction.ToString(),
            ["correction_calibration_images"] = input.Correction.IsNone ? null : input.Correction.CalibrationImages,
            ["device"] = input.Device,
            ["granularity"] = o.Granularity.Name(),
            ["bits"] = JsonList(t.Bits.Select(b => (JsonNode)b)),
            ["tolerance_points"] = o.TolerancePoints,
            ["sequential"] = o.Sequential is { } seq
                ? new JsonObject { ["error_budget"] = seq.ErrorBudget, ["first_images"] = seq.FirstImages, ["growth"] = seq.Growth } : null,
            ["search_split"] = o.SearchSplit,
            ["report_split"] = o.ReportSplit,
            ["splits"] = new JsonObject(input.Splits.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["fp32"] = AccuracyJson(t.Fp32),
            ["threshold"] = t.Threshold,
            ["sensitivity"] = JsonList(t.Cells.Select(c => (JsonNode)new JsonObject
            {
                ["unit"] = c.Unit,
                ["bits"] = c.Bits,
                ["accuracy"] = AccuracyJson(c.Accuracy),
                ["difference"] = IntervalJson(c.Difference),
                ["within_tolerance"] = c.WithinTolerance,
                ["early"] = c.Early,
            })),
            ["weight_errors"] = input.WeightErrors is { } errors ? JsonList(errors.Select(e => (JsonNode)new JsonObject
            {
                ["unit"] = e.Unit,
                ["bits"] = e.Bits,
                ["weights"] = e.Weights,
                ["clipped_fraction"] = e.ClippedFraction,
                ["sqnr_db"] = double.IsFinite(e.SqnrDb) ? e.SqnrDb : null,
            })) : null,
            ["bSettingH"] = SettingJson(r.BSettingH, r.BSettingHAccuracy, t.Fp32),
            ["bSettingL"] = SettingJson(r.BSettingL, r.BSettingLAccuracy, t.Fp32),
            ["guided"] = JsonList(r.Guided.Steps.Select(s => (JsonNode)new JsonObject
            {
                ["step"] = s.Index + 1,
                ["unit"] = s.Unit,
                ["bits"] = s.Bits,
                ["setting"] = s.Setting.ToString(),
                ["accuracy"] = AccuracyJson(s.Accuracy),
                ["difference"] = IntervalJson(s.Difference),
                ["within_tolerance"] = s.WithinTolerance,
                ["early"] = s.Early,
                ["kept"] = s.Kept,
            })),
            ["bSettingG"] = r.BSettingG.ToString(),
            ["within_tolerance"] = r.WithinTolerance,
            ["final"] = JsonList(new[] { r.Search, r.Report }.OfType<FinalAccuracy>().Select(f => (JsonNode)new JsonObject
            {
                ["split"] = f.Split,
                ["fp32"] = AccuracyJson(f.Fp32),
                ["bSettingG"] = AccuracyJson(f.Quantized),
                ["difference"] = IntervalJson(f.Difference),
            })),
            ["memory"] = JsonList(r.Memory.Select(m => (JsonNode)new JsonObject
            {
                ["name"] = m.Name,
                ["setting"] = m.Setting.ToString(),
                ["bytes"] = m.Memory.Bytes,
                ["mib"] = m.Memory.MiB,
                ["saving_percent"] = m.Memory.SavingPercent,
                ["units"] = new JsonObject(m.Memory.Units.Select(u => KeyValuePair.Create(u.Name, (JsonNode?)u.MiB))),
            })),
            ["energy_estimate"] = EnergyJson(input.Energy, "bSettingG_uj"),
            ["energy_measured"] = MeasuredEnergyJson(input.MeasuredEnergy, "bSettingG"),
            ["quantized_model"] = input.QuantizedModelPath,
            ["reference"] = r.Reference is { } reference ? new JsonObject
            {
                ["setting"] = reference.Memory.Setting.ToString(),
                ["saving_percent"] = reference.Memory.Memory.SavingPercent,
                ["final"] = JsonList(new[] { reference.Search, reference.Report }.OfType<FinalAccuracy>().Select(f => (JsonNode)new JsonObject
                {
                    ["split"] = f.Split,
                    ["accuracy"] = AccuracyJson(f.Quantized),
                    ["difference"] = IntervalJson(f.Difference),
                })),
            } : null,
            ["cost"] = new JsonObject
            {
                ["full_eval_equivalents"] = r.Cost.FullEquivalents,
                ["search_images"] = r.Cost.SearchImages,
                ["split_images"] = r.Cost.SplitImages,
                ["images_saved_by_prefix_reuse"] = r.Cost.ImagesSaved,
                ["correction_images"] = r.Cost.CorrectionImages,
                ["prefix_reuse"] = ReuseJson(r.Cost.Reuse),
                ["wall_seconds"] = r.Cost.WallSeconds,
                ["evaluation_seconds"] = r.Cost.EvaluationSeconds,
                ["evaluations"] = r.Cost.Evaluations,
                // Whole-split evaluations run by this process; the rest were decided on chunks (sequential tests) or
                // replayed from the run directory.
                ["run"] = input.OracleEvaluations ?? r.Cost.Run,
                ["decided_on_chunks_or_replayed"] = r.Cost.Replayed,
                ["phases"] = JsonList(r.Cost.Phases.Select(p => (JsonNode)new JsonObject
                {
                    ["phase"] = QsvitResult.PhaseName(p.Phase),
                    ["evaluations"] = p.Evaluations,
                    ["run"] = p.Run,
                })),
            },
        };
    }

    private static JsonArray JsonList(IEnumerable<JsonNode> items) => new(items.ToArray());

    /// <summary>Prefix reuse's counts (null when it was off).</summary>
    internal static JsonObject? ReuseJson(PrefixReuseStats? s) => s is null ? null : new()
    {
        ["batches"] = s.Batches,
        ["hits"] = s.Hits,
        ["hit_rate"] = s.HitRate,
        ["image_units_run"] = s.ImageUnitsRun,
        ["image_units_saved"] = s.ImageUnitsSaved,
        ["units_per_pass"] = s.Units,
    };

    private static JsonObject IntervalJson(Interval i) => new() { ["value"] = Finite(i.Value), ["low"] = Finite(i.Low), ["high"] = Finite(i.High) };

    private static double? Finite(double v) => double.IsFinite(v) ? v : null;

    private static JsonObject AccuracyJson(AccuracyRecord a) => new()
    {
        ["setting"] = a.Setting,
        ["split"] = a.Split,
        ["count"] = a.Count,
        ["correct"] = a.Correct,
        ["top1"] = IntervalJson(a.Top1),
    };

    private static JsonObject SettingJson(QuantizationSetting s, AccuracyRecord a, AccuracyRecord fp32) => new()
    {
        ["setting"] = s.ToString(),
        ["accuracy"] = AccuracyJson(a),
        ["difference"] = IntervalJson(a.DifferenceFrom(fp32)),
    };
}
