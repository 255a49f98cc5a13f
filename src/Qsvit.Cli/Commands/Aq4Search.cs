using System.CommandLine;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;

namespace Qsvit.Cli.Commands;

/// <summary>
/// AQ4SViT from the command line: its options, and a run that searches with a <see cref="SettingEvaluator"/>, checks the
/// chosen setting on the held-out split and writes the report directory.
/// </summary>
internal static class Aq4Search
{
    /// <summary>The AQ4SViT options. <see cref="Quantizer"/> and <see cref="CalibrationImages"/> decide evaluation results
    /// (they build the evaluator and belong in the run identity); the others only steer the search.</summary>
    public sealed class Options
    {
        public readonly Option<int> BeamWidth = new("--beam-width") { Description = "Beam: settings kept per step (greedy keeps one)", DefaultValueFactory = _ => 4 };
        public readonly Option<double> MaxDrop = new("--max-drop") { Description = "Largest allowed top-1 drop from fp32 on the search split, in points", DefaultValueFactory = _ => 1.5 };
        public readonly Option<string> Granularity = new("--granularity") { Description = "Search unit: network, stage, block (the paper's 11 units), transformer-block or layer", DefaultValueFactory = _ => "block" };
        public readonly Option<int[]?> Bits = new("--bits") { Description = "Widths to search below 32 (default 16 12 8 4 with --quantizer paper, else 16 12 8 6 4 3 2)", AllowMultipleArgumentsPerToken = true };
        public readonly Option<int> CalibrationImages = new("--calibration-images") { Description = "Search-split images the membrane drift is measured on", DefaultValueFactory = _ => 64 };
        public readonly Option<string> Quantizer = new("--quantizer") { Description = $"Weight quantizer: {string.Join(", ", QuantizerSpec.Names)}", DefaultValueFactory = _ => "paper" };
        public readonly Option<bool> QuantizeHead = new("--quantize-head") { Description = "Search the classifier head's width too (default: keep it fp32)" };
        public readonly Option<bool> NoDriftGate = new("--no-drift-gate") { Description = "Verify every candidate in rank order instead of skipping predicted failures (ablation)" };

        public void AddTo(Command command)
        {
            foreach (var o in new Option[] { BeamWidth, MaxDrop, Granularity, Bits, CalibrationImages, Quantizer, QuantizeHead, NoDriftGate }) command.Add(o);
        }

        public QuantizerSpec Spec(ParseResult r)
        {
            var spec = QuantizerSpec.Parse(r.GetValue(Quantizer)!);
            spec.Validate();
            return spec;
        }

        public Aq4Space Space(ParseResult r, Sdtv2Layout layout) =>
            Aq4Space.Create(layout, Aq4Space.ParseGranularity(r.GetValue(Granularity)!),
                r.GetValue(Bits) is { Length: > 0 } bits ? bits : Aq4Space.DefaultBits(Spec(r)), r.GetValue(QuantizeHead));

        public Aq4Options Read(ParseResult r, Aq4Method method, string searchSplit) => new()
        {
            Method = method,
            BeamWidth = r.GetValue(BeamWidth),
            MaxDrop = r.GetValue(MaxDrop),
            SearchSplit = searchSplit,
            DriftGate = !r.GetValue(NoDriftGate),
        };
    }

    /// <summary>
    /// Runs the search under a progress bar, evaluates fp32 and the chosen setting on <paramref name="heldOutSplit"/> (when
    /// given), writes the report to <paramref name="reportDirectory"/> and prints a summary on stdout.
    /// </summary>
    public static Aq4Result Run(SettingEvaluator evaluator, Aq4Space space, Aq4Options options, string? heldOutSplit,
        string reportDirectory, IReadOnlyList<KeyValuePair<string, string>> context)
    {
        var result = Cli.WithProgress($"aq4 {options.Method.ToString().ToLowerInvariant()}", space.MaxDepth, report =>
        {
            var last = new Aq4Progress(0, space.MaxDepth, 0, 0, double.NaN, 0, "fp32");
            string Status(Aq4Progress p) =>
                $"step {p.Step}: {p.FullEvaluations} full, {p.DriftEvaluations} drift, best {p.BestMiB:F2} MiB ({p.BestSavingPercent:F1} % saved)";
            evaluator.OnProgress = (split, done, total) => report(last.Step, $"{Status(last)}; {split} {done}/{total}");
            try
            {
                return Aq4Searcher.Run(evaluator, space, options, p =>
                {
                    last = p;
                    report(p.Step, $"{Status(p)}; {p.Activity}");
                });
            }
            finally { evaluator.OnProgress = null; }
        });

        Aq4HeldOut? heldOut = null;
        if (heldOutSplit is not null)
            heldOut = Cli.WithProgress($"held-out {heldOutSplit}", evaluator.SplitSize(heldOutSplit) * 2, report =>
            {
                evaluator.OnProgress = (_, done, _) => report(done, "fp32");
                var fp32 = evaluator.Accuracy(QuantizationSetting.Uniform(Quantization.Quantizer.FullPrecision), heldOutSplit);
                int offset = evaluator.SplitSize(heldOutSplit);
                evaluator.OnProgress = (_, done, _) => report(offset + done, "chosen");
                try { return new Aq4HeldOut(fp32, evaluator.Accuracy(result.Setting, heldOutSplit)); }
                finally { evaluator.OnProgress = null; }
            });

        Aq4Report.Write(reportDirectory, result, heldOut, context);
        Console.WriteLine($"setting  {result.Setting}");
        Console.WriteLine($"memory   {result.Memory.MiB:F3} MiB of {result.Memory.Fp32MiB:F3} MiB, {result.Memory.SavingPercent:F2} % saved");
        Console.WriteLine($"search   top-1 {result.Accuracy.Top1} % (fp32 {result.Fp32Accuracy.Top1} %), drop {result.Drop:F2} points");
        if (heldOut is not null)
            Console.WriteLine($"held-out top-1 {heldOut.Chosen.Top1} % (fp32 {heldOut.Fp32.Top1} %), difference {heldOut.Difference} points");
        Console.WriteLine($"cost     {result.FullEvaluations} full + {result.DriftEvaluations} drift evaluations = {result.CostFullEquivalents:F1} full-evaluation equivalents, {result.WallSeconds:F0} s");
        Console.WriteLine($"proxy    Spearman(drift, drop) = {result.ProxySpearman:F2}");
        Console.WriteLine($"report   {Path.GetFullPath(reportDirectory)}");
        return result;
    }
}
