namespace Qsvit.Cli.Commands;
internal static class BenchCommand
{
    public static System.CommandLine.Command Create() => new("bench", "Throughput benchmark (see BENCHMARKS.md)");
}
