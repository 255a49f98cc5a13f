using Qsvit.Search;
using Spectre.Console;

namespace Qsvit.Cli.Commands;

/// <summary>
/// Progress of a search on stderr, counted in evaluations and advancing within an evaluation as its images are done, so
/// the remaining-time column has something to go on. Without a terminal: one line per evaluation.
/// </summary>
internal sealed class SearchProgress
{
    private readonly Action<double, double, string> _show;  // value, total, description
    private int _done, _total = 1;
    private string _detail = "";

    private SearchProgress(Action<double, double, string> show) => _show = show;

    /// <summary>Runs <paramref name="work"/> under the bar; the evaluator's image progress feeds it while it runs.</summary>
    public static T Run<T>(SettingEvaluator evaluator, Func<SearchProgress, T> work)
    {
        var previous = evaluator.OnProgress;
        try
        {
            if (Console.IsErrorRedirected)
            {
                var plain = new SearchProgress((_, _, _) => { });
                evaluator.OnProgress = null;
                return work(plain);
            }
            T result = default!;
            Cli.Err.Progress()
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                    new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("search", maxValue: 1);
                    var progress = new SearchProgress((value, total, text) =>
                    {
                        task.MaxValue = total;
                        task.Value = Math.Min(value, total);
                        task.Description = Markup.Escape(text);
                    });
                    evaluator.OnProgress = (_, done, total) => progress.Within(done, total);
                    result = work(progress);
                });
            return result;
        }
        finally
        {
            evaluator.OnProgress = previous;
        }
    }

    /// <summary>A QSViT progress report: the step about to be evaluated.</summary>
    public void Report(QsvitProgress p) => Step(p.PhaseName, p.Done, p.Total, p.Detail);

    /// <summary>Evaluation <paramref name="done"/> + 1 of <paramref name="total"/> starts (any method can call this).</summary>
    public void Step(string phase, int done, int total, string detail)
    {
        _done = done;
        _total = Math.Max(1, total);
        _detail = $"[{Math.Min(done + 1, total)}/{total}] {phase}: {detail}";
        if (Console.IsErrorRedirected && done < total) Console.Error.WriteLine(_detail);
        _show(done, _total, _detail);
    }

    private void Within(int images, int of) => _show(_done + (of == 0 ? 0 : (double)images / of), _total, _detail);
}
