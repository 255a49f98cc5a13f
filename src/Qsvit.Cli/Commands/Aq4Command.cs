using System.CommandLine;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Search;

namespace Qsvit.Cli.Commands;

/// <summary>
/// <c>qsvit aq4</c>: a stand-alone AQ4SViT search, until it is folded into <c>qsvit search --method</c>.
/// </summary>
internal static class Aq4Command
{
    public static Command Create()
    {
        var model = new ModelOptions();
        var data = new DataOptions("--data", "Search split: CIFAR .bin, MNIST idx or an image folder (e.g. data/cifar10/val.bin)");
        var test = new Option<string?>("--test-data") { Description = "Held-out split the chosen setting is checked on (e.g. data/cifar10/test.bin)" };
        var method = new Option<string>("--method") { Description = "greedy or beam", DefaultValueFactory = _ => "greedy" };
        var output = new Option<string>("--out", "-o") { Description = "Report directory", DefaultValueFactory = _ => "aq4-report" };
        var runDir = new Option<string?>("--run-dir") { Description = "Resumable evaluation log (default: <out>/run); rerun with the same arguments to resume" };
        var threads = new Option<int?>("--threads") { Description = "Worker threads (default: all cores)" };
        var aq4 = new Aq4Search.Options();
        var command = new Command("aq4", "AQ4SViT mixed-precision search: drift-gated greedy or beam search under an accuracy constraint");
        model.AddTo(command);
        data.AddTo(command);
        aq4.AddTo(command);
        foreach (var o in new Option[] { test, method, output, runDir, threads }) command.Add(o);
        command.SetAction(r =>
        {
            Cli.ApplyThreads(r.GetValue(threads));
            var searchMethod = r.GetValue(method)!.Trim().ToLowerInvariant() switch
            {
                "greedy" => Aq4Method.Greedy,
                "beam" => Aq4Method.Beam,
                var m => throw new QsvitException($"unknown --method '{m}'; expected greedy or beam"),
            };
            var loaded = model.Load(r);
            var splits = new Dictionary<string, IImageDataset> { ["search"] = data.Open(r, loaded) };
            if (r.GetValue(test) is { } testPath) splits["held-out"] = data.Open(r, loaded, test!);
            var spec = aq4.Spec(r);
            int calibration = r.GetValue(aq4.CalibrationImages);
            var evalOptions = new EvalOptions { BatchSize = r.GetValue(data.Batch), Limit = r.GetValue(data.Limit) };
            string outDir = r.GetValue(output)!;

            // Everything that decides an evaluation's result; search options (method, max drop…) may change between runs
            // that share a log.
            var identity = new Dictionary<string, string>
            {
                ["model"] = Path.GetFullPath(loaded.CheckpointPath),
                ["config"] = loaded.Config.ToString(),
                ["search_data"] = splits["search"].Name,
                ["held_out_data"] = splits.TryGetValue("held-out", out var h) ? h.Name : "",
                ["limit"] = evalOptions.Limit?.ToString() ?? "",
                ["quantizer"] = spec.ToString(),
                ["calibration_images"] = calibration.ToString(),
            };
            var store = RunStore.Open(r.GetValue(runDir) ?? Path.Combine(outDir, "run"), identity);
            var evaluator = new SettingEvaluator(loaded, spec, splits, evalOptions, store, calibration);
            var space = aq4.Space(r, evaluator.Layout);
            var context = new List<KeyValuePair<string, string>>
            {
                new("model", loaded.CheckpointPath),
                new("architecture", loaded.Config.ToString()),
                new("search split", $"{splits["search"].Name}, {evaluator.SplitSize("search")} images"),
                new("quantizer", spec.ToString()),
                new("calibration", $"{evaluator.CalibrationImages} images"),
            };
            if (h is not null) context.Add(new("held-out split", $"{h.Name}, {evaluator.SplitSize("held-out")} images"));
            Aq4Search.Run(evaluator, space, aq4.Read(r, searchMethod, "search"), h is null ? null : "held-out", outDir, context);
            return 0;
        });
        return command;
    }
}
