using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Qsvit.Bench;

/// <summary>A benchmark parameter that knows how many floating-point operations one invocation performs.</summary>
public interface IFlopCount
{
    double Flops { get; }
}

/// <summary>
/// GFLOP/s from the <see cref="IFlopCount"/> parameter of each case and its mean time or, with <c>best</c>, its fastest
/// iteration (less sensitive to other processes competing for the cores).
/// </summary>
public sealed class GflopsColumn(bool best = false) : IColumn
{
    public string Id => nameof(GflopsColumn) + (best ? ".Best" : "");
    public string ColumnName => best ? "GFLOP/s (best)" : "GFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => best ? 1 : 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => best
        ? "Billions of floating-point operations per second (fastest iteration)"
        : "Billions of floating-point operations per second (mean time)";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        var flops = benchmarkCase.Parameters.Items.Select(p => p.Value).OfType<IFlopCount>().FirstOrDefault();
        var stats = summary[benchmarkCase]?.ResultStatistics;
        double ns = stats == null ? 0 : best ? stats.Min : stats.Mean;
        if (flops == null || ns <= 0) return "-";
        return (flops.Flops / ns).ToString("F1", System.Globalization.CultureInfo.InvariantCulture); // flop/ns = GFLOP/s
    }

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;
}
