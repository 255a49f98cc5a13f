using System.CommandLine;
using Spectre.Console;
using Qsvit.IO;

namespace Qsvit.Cli;

/// <summary>Console plumbing shared by the commands: error handling, the stderr console for progress, JSON output.</summary>
internal static class Cli
{
    /// <summary>Progress and tables go to stderr so that stdout carries only results (plain text or --json).</summary>
    public static readonly IAnsiConsole Err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
    public static readonly IAnsiConsole Out = AnsiConsole.Console;

    public static int Run(RootCommand root, string[] args)
    {
        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Unwrap(e) is QsvitException q)
        {
            Console.Error.WriteLine($"error: {q.Message}");
            return 2;
        }
    }

    private static Exception Unwrap(Exception e) => e is AggregateException { InnerExceptions.Count: 1 } a ? Unwrap(a.InnerExceptions[0]) : e;

    /// <summary>Runs <paramref name="work"/> under a progress bar on stderr (plain lines when stderr is not a terminal).</summary>
    public static T WithProgress<T>(string label, int total, Func<Action<int, string>, T> work)
    {
        if (Console.IsErrorRedirected)
        {
            int lastPercent = -10;
            return work((done, text) =>
            {
                int percent = total == 0 ? 100 : (int)(100L * done / total);
                if (percent >= lastPercent + 10 || done == total)
                {
                    lastPercent = percent;
                    Console.Error.WriteLine($"{label}: {done}/{total} {text}");
                }
            });
        }
        T result = default!;
        Err.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(label), maxValue: Math.Max(1, total));
                result = work((done, text) =>
                {
                    task.Value = done;
                    task.Description = Markup.Escape($"{label} {text}");
                });
            });
        return result;
    }

    public static void WriteJson(object value) =>
        Console.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(value, TextFiles.Json));
}
