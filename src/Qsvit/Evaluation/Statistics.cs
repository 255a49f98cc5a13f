namespace Qsvit.Evaluation;

/// <summary>A value with its 95 % confidence interval.</summary>
public readonly record struct Interval(double Value, double Low, double High)
{
    public override string ToString() => $"{Value:F2} [{Low:F2}, {High:F2}]";
}

/// <summary>Intervals for accuracies and for paired accuracy differences over the same images, in percentage points.</summary>
public static class Statistics
{
    public const double Z95 = 1.959963984540054;

    /// <summary>Wilson score interval of a proportion, in percent; sound near 0 % and 100 % and for small n.</summary>
    public static Interval Accuracy(long correct, long n)
    {
        if (n <= 0) return new Interval(double.NaN, double.NaN, double.NaN);
        double p = (double)correct / n, z2 = Z95 * Z95;
        double denom = 1 + z2 / n;
        double centre = (p + z2 / (2 * n)) / denom;
        double half = Z95 * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / denom;
        return new Interval(100 * p, 100 * Math.Max(0, centre - half), 100 * Math.Min(1, centre + half));
    }

    /// <summary>
    /// Paired difference of accuracy (b minus a) on the same images, in points: only discordant images carry information
    /// (aRight = a right / b wrong, bRight = the reverse). Wald interval on the paired difference with a continuity
    /// correction, as for McNemar's test.
    /// </summary>
    public static Interval PairedDifference(long aRightOnly, long bRightOnly, long n)
    {
        if (n <= 0) return new Interval(double.NaN, double.NaN, double.NaN);
        double d = (double)(bRightOnly - aRightOnly) / n;
        double variance = (aRightOnly + bRightOnly - (double)(bRightOnly - aRightOnly) * (bRightOnly - aRightOnly) / n) / ((double)n * n);
        double half = Z95 * Math.Sqrt(Math.Max(0, variance)) + 1.0 / n;
        return new Interval(100 * d, 100 * (d - half), 100 * (d + half));
    }

    /// <summary>Paired difference between two per-image correctness vectors (b − a).</summary>
    public static Interval PairedDifference(ReadOnlySpan<bool> a, ReadOnlySpan<bool> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("paired results must cover the same images");
        long aOnly = 0, bOnly = 0;
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] && !b[i]) aOnly++;
            else if (b[i] && !a[i]) bOnly++;
        }
        return PairedDifference(aOnly, bOnly, a.Length);
    }

    /// <summary>Spearman rank correlation (average ranks for ties); NaN with fewer than 3 points or a constant input.</summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException("x and y differ in length");
        if (x.Count < 3) return double.NaN;
        var rx = Ranks(x);
        var ry = Ranks(y);
        double mx = rx.Average(), my = ry.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < rx.Length; i++)
        {
            sxy += (rx[i] - mx) * (ry[i] - my);
            sxx += (rx[i] - mx) * (rx[i] - mx);
            syy += (ry[i] - my) * (ry[i] - my);
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    private static double[] Ranks(IReadOnlyList<double> v)
    {
        var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
        var ranks = new double[v.Count];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
            double r = (i + j) / 2.0 + 1;
            for (int k = i; k <= j; k++) ranks[order[k]] = r;
            i = j + 1;
        }
        return ranks;
    }
}
