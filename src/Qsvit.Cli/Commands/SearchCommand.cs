using System.CommandLine;
using System.Text.Json.Nodes;
using Qsvit.IO;
using Qsvit.Reports;
using Qsvit.Search;


namespace Qsvit.Cli.Commands;

/// <summary>
/// A search method behind <c>qsvit search --method NAME</c>. It gets the opened run (model, splits, cached evaluator, run
/// directory) and writes its own report; its extra options are added to the command and refused for other methods.
/// </summary>
internal interface ISearchMethod
{
    /// <summary>Its defaults, granularities and whether it measures drift.</summary>
    SearchMethod Method { get; }
    string Description { get; }
    /// <summary>Options of its own; an option may belong to several methods (greedy and beam share theirs).</summary>
    IReadOnlyList<Option> Options { get; }
    /// <summary>The drift calibration images its options ask for (methods that measure drift).</summary>
    int? CalibrationImages(ParseResult r);
    int Run(SearchRun run, ParseResult r, SearchCommand.Shared shared);
}

/// <summary><c>qsvit search</c>: mixed-precision search with the method named by --method.</summary>
internal static class SearchCommand
{
    /// <summary>Every method --method offers.</summary>
    private static readonly ISearchMethod[] Methods = [new QsvitMethod(), Aq4SearchMethod.Greedy, Aq4SearchMethod.Beam];

    /// <summary>Where a method's report goes by default: one directory per method, so methods can share a run directory.</summary>
    public const string ReportsFolder = "reports";

    /// <summary>Options of the command itself that every method reads.</summary>
    internal sealed class Shared
    {
        public readonly SearchOptions Search = new(withTest: true, "qsvit 32 16 12 8 4; greedy/beam 16 12 8 4 with --quantizer paper, else 16 12 8 6 4 3 2");
        public readonly Option<string?> ReportDir = new("--report-dir") { Description = $"Report directory (default: <run-dir>/{ReportsFolder}/<method>)" };
        public readonly Option<int> EnergyImages = new("--energy-images")
        {
            Description = "Search images whose firing rates feed the energy estimate (0: skip the estimate and the power measurement)",
            DefaultValueFactory = _ => 64,
        };
        /// <summary>
        /// Board energy of fp32 and the chosen setting over the search split on a GPU (two more evaluations); on the CPU
        /// or without NVML nothing runs and the report says power was not measured. Skipped with --energy-images 0.
        /// </summary>
        public Evaluation.MeasuredEnergyComparison? MeasureEnergy(SearchRun run, Quantization.QuantizationSetting setting, ParseResult r)
        {
            if (r.GetValue(EnergyImages) <= 0) return null;
            Console.Error.WriteLine("measuring board power of fp32 and the chosen setting on the search split…");
            var measured = run.MeasureEnergy(setting);
            Console.Error.WriteLine(measured.Measured
                ? $"power: fp32 {measured.Fp32.JoulesPerImage:G4} J/image, chosen {measured.Quantized.JoulesPerImage:G4} J/image"
                : $"power not measured: {measured.NotMeasuredReason}");
            return measured;
        }

        public readonly Option<string[]> Compare = new("--compare")
        {
            Description = $"Other runs to tabulate with this one in comparison.md: {ComparisonTable.FileName} files, report directories, " +
                          $"or run directories (every {ReportsFolder}/<method> in them)",
            AllowMultipleArgumentsPerToken = true,
        };

        public string ReportDirectory(SearchRun run, ParseResult r) => r.GetValue(ReportDir) ?? Path.Combine(run.Directory, ReportsFolder, run.Method.Name);

        /// <summary>
        /// The tail every method shares once its report is written: comparison.md, then the JSON (with where things are) or
        /// the method's own summary, then the comparison table when --compare asked for one.
        /// </summary>
        public int Finish(SearchRun run, ParseResult r, string reportDir, IReadOnlyList<ComparisonRow> rows, Func<JsonObject> json, Action print)
        {
            var comparison = WriteComparison(run, r, rows);
            if (r.GetValue(Search.Json))
            {
                var o = json();
                o["report_dir"] = reportDir;
                o["run_dir"] = run.Directory;
                Console.WriteLine(o.ToJsonString(TextFiles.Json));
                return 0;
            }
            print();
            if (comparison is not null) Console.WriteLine(Environment.NewLine + comparison);
            return 0;
        }

        /// <summary>
        /// Writes comparison.md into the report directory: this run's rows, then those of --compare's runs (fp32 first).
        /// Returns the markdown when --compare was given (null otherwise).
        /// </summary>
        private string? WriteComparison(SearchRun run, ParseResult r, IReadOnlyList<ComparisonRow> rows)
        {
            var others = r.GetValue(Compare) ?? [];
            string own = Path.GetFullPath(ReportDirectory(run, r));
            var merged = ComparisonTable.Merge(rows.Concat(others.SelectMany(path => Sources(path, own)).Distinct().SelectMany(ComparisonTable.Read)));
            var markdown = ComparisonTable.ToMarkdown(merged);
            Directory.CreateDirectory(own);
            TextFiles.WriteAtomically(Path.Combine(own, "comparison.md"), markdown);
            return others.Length == 0 ? null : markdown;
        }

        /// <summary>The comparison.json files a --compare path stands for, this run's own report left out.</summary>
        private static IEnumerable<string> Sources(string path, string own)
        {
            bool Own(string directory) => string.Equals(Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar), own.TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal);
            if (File.Exists(path))
                return Own(Path.GetDirectoryName(Path.GetFullPath(path))!) ? [] : [Path.GetFullPath(path)];
            if (!Directory.Exists(path)) throw new QsvitException($"--compare: '{path}' does not exist");
            if (File.Exists(Path.Combine(path, ComparisonTable.FileName)))
                return Own(path) ? [] : [Path.GetFullPath(Path.Combine(path, ComparisonTable.FileName))];
            var reports = Path.Combine(path, ReportsFolder);
            var found = Directory.Exists(reports)
                ? Directory.GetDirectories(reports).Order(StringComparer.Ordinal).Where(d => File.Exists(Path.Combine(d, ComparisonTable.FileName))).ToArray()
                : [];
            if (found.Length == 0)
                throw new QsvitException($"--compare: no {ComparisonTable.FileName} in '{path}' nor in its {ReportsFolder}/<method> directories");
            return found.Where(d => !Own(d)).Select(d => Path.GetFullPath(Path.Combine(d, ComparisonTable.FileName)));
        }
    }

    public static Command Create()
    {
        var shared = new Shared();
        var method = new Option<string>("--method")
        {
            Description = string.Join("; ", Methods.Select(m => $"{m.Method.Name}: {m.Description}")),
            DefaultValueFactory = _ => Methods[0].Method.Name,
        };
        method.AcceptOnlyFromAmong(Methods.Select(m => m.Method.Name).ToArray());
        var command = new Command("search", "Search a mixed-precision weight quantization setting; resumable, writes a report") { method };
        shared.Search.AddTo(command);
        command.Add(shared.ReportDir);
        command.Add(shared.EnergyImages);
        command.Add(shared.Compare);
        var own = Methods.SelectMany(m => m.Options).Distinct().ToArray();
        foreach (var o in own) command.Add(o);
        command.SetAction(r =>
        {
            var chosen = Methods.Single(m => m.Method.Name == r.GetValue(method));
            foreach (var o in own.Except(chosen.Options))
                if (r.GetResult(o) is { Implicit: false })
                    throw new QsvitException($"{o.Name} is for --method {string.Join(" or ", Methods.Where(m => m.Options.Contains(o)).Select(m => m.Method.Name))}, not {chosen.Method.Name}");
            using var run = shared.Search.Open(r, chosen.Method, chosen.CalibrationImages(r));
            return chosen.Run(run, r, shared);
        });
        return command;
    }
}
