using System.Globalization;
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qsvit.Reports;
using Qsvit.Search;
using Spectre.Console;
using Qsvit.IO;

namespace Qsvit.Cli.Commands;

/// <summary><c>qsvit sensitivity</c>: QSViT's Alg. 1 alone, as a table (and the Fig. 7-style figure in the run directory).</summary>
internal static class SensitivityCommand
{
    public static Command Create()
    {
        var options = new SearchOptions(withTest: false, "32 16 12 8 4");
        var command = new Command("sensitivity", "Layer-wise sensitivity (QSViT Alg. 1): each unit quantized alone at each bit width, accuracy vs fp32");
        options.AddTo(command);
        command.SetAction(r =>
        {
            using var c = options.Open(r, SearchMethod.Sensitivity);
            var qsvit = QsvitMethod.OptionsOf(c);
            var table = SearchProgress.Run(c.Evaluator, bar => QsvitSearch.Sensitivity(c.Evaluator, qsvit, bar.Report));
            var figure = Path.Combine(c.Directory, QsvitReport.SensitivityFigure);
            TextFiles.WriteAtomically(figure, QsvitReport.SensitivityChart(table));

            if (r.GetValue(options.Json))
            {
                var json = new JsonObject
                {
                    ["fp32"] = table.Fp32.Accuracy,
                    ["fp32_ci95"] = new JsonArray(table.Fp32.Top1.Low, table.Fp32.Top1.High),
                    ["images"] = table.Fp32.Count,
                    ["threshold"] = table.Threshold,
                    ["cells"] = new JsonArray(table.Cells.Select(cell => (JsonNode)new JsonObject
                    {
                        ["unit"] = cell.Unit,
                        ["bits"] = cell.Bits,
                        ["top1"] = cell.Accuracy.Accuracy,
                        ["top1_ci95"] = new JsonArray(cell.Accuracy.Top1.Low, cell.Accuracy.Top1.High),
                        ["difference"] = cell.Difference.Value,
                        ["difference_ci95"] = new JsonArray(cell.Difference.Low, cell.Difference.High),
                        ["within_tolerance"] = cell.WithinTolerance,
                    }).ToArray()),
                    ["device"] = c.Evaluator.Backend.Description,
                    ["evaluations_run"] = c.Evaluator.FullEvaluations,
                    ["run_dir"] = c.Directory,
                    ["figure"] = figure,
                };
                Console.WriteLine(json.ToJsonString(TextFiles.Json));
                return 0;
            }

            string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
            var grid = new Table().AddColumn("unit");
            foreach (var b in table.Bits) grid.AddColumn(new TableColumn($"{b}-bit").RightAligned());
            foreach (var unit in table.Units)
                grid.AddRow([unit, .. table.Bits.Select(b =>
                {
                    var cell = table.Cell(unit, b);
                    if (b == Qsvit.Quantization.Quantizer.FullPrecision) return $"{F(cell.Accuracy.Accuracy)}";
                    string mark = cell.WithinTolerance ? "[green]✓[/]" : "[red]✗[/]";
                    return $"{F(cell.Accuracy.Accuracy)} ({(cell.Difference.Value > 0 ? "+" : "")}{F(cell.Difference.Value)}) {mark}";
                })]);
            Cli.Out.Write(grid);
            Console.WriteLine($"fp32       {table.Fp32.Top1} % on {table.Fp32.Count} images; ✓ = within {F(c.TolerancePoints)} points (≥ {F(table.Threshold)} %)");
            int total = 1 + table.Units.Count * qsvit.QuantizedBits.Count;
            Console.WriteLine($"cost       {total} evaluations ({c.Evaluator.FullEvaluations} run now, {total - c.Evaluator.FullEvaluations} replayed from {c.Directory})");
            Console.WriteLine($"reuse      {PrefixReuseStats.Describe(c.Evaluator.Reuse, null)}");
            Console.WriteLine($"figure     {figure}");
            return 0;
        });
        return command;
    }
}
