namespace Qsvit.Search;

/// <summary>
/// The calibrated drift threshold of the AQ4SViT gate. Every fully evaluated candidate adds a point (drift, accuracy drop);
/// an isotonic (non-decreasing, least-squares, pool-adjacent-violators) fit of drop on drift smooths the noise of single
/// points, and <see cref="Threshold"/> is the smallest evaluated drift whose fitted drop exceeds the allowed drop. A candidate
/// at or above it is predicted to fail. With points that are already monotone this is exactly "the smallest drift that
/// failed"; a lone failure at a low drift among passes at higher drifts is pooled with them instead of shutting the gate on
/// everything above it. The gate only ever skips evaluations: nothing is accepted on a prediction.
/// </summary>
public sealed class Aq4DriftGate(double maxDrop)
{
    private readonly List<(double Drift, double Drop)> _points = new();

    /// <summary>Drift at and above which candidates are predicted to fail; +∞ until the fit says anything fails.</summary>
    public double Threshold { get; private set; } = double.PositiveInfinity;

    public int Count => _points.Count;

    public bool PredictsFail(double drift) => drift >= Threshold;

    public void Add(double drift, double drop)
    {
        if (double.IsNaN(drift) || double.IsNaN(drop)) return;
        _points.Add((drift, drop));
        Threshold = double.PositiveInfinity;
        foreach (var (x, fitted) in Fit())
            if (fitted > maxDrop)
            {
                Threshold = x;
                break;
            }
    }

    /// <summary>The isotonic fit at each distinct evaluated drift, ascending (ties are averaged first).</summary>
    public IReadOnlyList<(double Drift, double Drop)> Fit()
    {
        var groups = _points.GroupBy(p => p.Drift).OrderBy(g => g.Key)
            .Select(g => (X: g.Key, Sum: g.Sum(p => p.Drop), Weight: (double)g.Count())).ToArray();
        var blocks = new List<(int First, double Sum, double Weight)>();
        for (int i = 0; i < groups.Length; i++)
        {
            blocks.Add((i, groups[i].Sum, groups[i].Weight));
            while (blocks.Count >= 2 && blocks[^2].Sum / blocks[^2].Weight > blocks[^1].Sum / blocks[^1].Weight)
            {
                var (first, sum, weight) = blocks[^2];
                blocks[^2] = (first, sum + blocks[^1].Sum, weight + blocks[^1].Weight);
                blocks.RemoveAt(blocks.Count - 1);
            }
        }
        var fit = new (double, double)[groups.Length];
        for (int b = 0; b < blocks.Count; b++)
        {
            int end = b + 1 < blocks.Count ? blocks[b + 1].First : groups.Length;
            for (int i = blocks[b].First; i < end; i++) fit[i] = (groups[i].X, blocks[b].Sum / blocks[b].Weight);
        }
        return fit;
    }
}
