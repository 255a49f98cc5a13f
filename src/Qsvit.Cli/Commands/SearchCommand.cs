using System.CommandLine;
using Qsvit.Reports;

namespace Qsvit.Cli.Commands;

/// <summary>
/// A search method behind <c>qsvit search --method NAME</c>. It gets the opened run (model, splits, cached evaluator, run
/// directory) and writes its own report; its extra options are added to the command and refused for other methods.
/// </summary>
internal interface ISearchMethod
{
    string Name { get; }
    string Description { get; }
    IReadOnlyList<Option> Options { get; }
    int Run(SearchContext context, SearchCommand.Shared shared);
}

/// <summary><c>qsvit search</c>: mixed-precision search with the method named by --method.</summary>
internal static class SearchCommand
{
    /// <summary>Every method --method offers (AQ4SViT's greedy and beam join here).</summary>
    private static readonly ISearchMethod[] Methods = [new QsvitMethod()];

    /// <summary>Options of the command itself that every method reads.</summary>
    internal sealed class Shared
    {
        public readonly SearchOptions Search = new(withTest: true);
        public readonly Option<string?> ReportDir = new("--report-dir") { Description = "Report directory (default: <run-dir>/report)" };
        public readonly Option<int> EnergyImages = new("--energy-images")
        {
            Description = "Search images whose firing rates feed the energy estimate (0: skip)",
            DefaultValueFactory = _ => 64,
        };
        public readonly Option<string[]> Compare = new("--compare")
        {
            Description = "comparison.json files (or report directories) of other runs to tabulate with this one",
            AllowMultipleArgumentsPerToken = true,
        };

        public string ReportDirectory(SearchContext c) => c.Parse.GetValue(ReportDir) ?? Path.Combine(c.RunDir, "report");

        /// <summary>Merges this run's rows with --compare's, writes comparison.md beside the report and returns the markdown.</summary>
        public string? WriteComparison(SearchContext c, IReadOnlyList<ComparisonRow> rows)
        {
            var others = c.Parse.GetValue(Compare) ?? [];
            if (others.Length == 0) return null;
            var merged = ComparisonTable.Merge(rows.Concat(others.SelectMany(ComparisonTable.Read)));
            var markdown = ComparisonTable.ToMarkdown(merged);
            Directory.CreateDirectory(ReportDirectory(c));
            Qsvit.Search.RunStore.WriteAtomically(Path.Combine(ReportDirectory(c), "comparison.md"), markdown);
            return markdown;
        }
    }

    public static Command Create()
    {
        var shared = new Shared();
        var method = new Option<string>("--method")
        {
            Description = string.Join("; ", Methods.Select(m => $"{m.Name}: {m.Description}")),
            DefaultValueFactory = _ => Methods[0].Name,
        };
        method.AcceptOnlyFromAmong(Methods.Select(m => m.Name).ToArray());
        var command = new Command("search", "Search a mixed-precision weight quantization setting; resumable, writes a report") { method };
        shared.Search.AddTo(command);
        command.Add(shared.ReportDir);
        command.Add(shared.EnergyImages);
        command.Add(shared.Compare);
        foreach (var o in Methods.SelectMany(m => m.Options)) command.Add(o);
        command.SetAction(r =>
        {
            var chosen = Methods.Single(m => m.Name == r.GetValue(method));
            foreach (var other in Methods.Where(m => m != chosen))
                foreach (var o in other.Options)
                    if (r.GetResult(o) is { Implicit: false })
                        throw new QsvitException($"{o.Name} belongs to --method {other.Name}, not {chosen.Name}");
            var context = shared.Search.Open(r, chosen.Name);
            return chosen.Run(context, shared);
        });
        return command;
    }
}
