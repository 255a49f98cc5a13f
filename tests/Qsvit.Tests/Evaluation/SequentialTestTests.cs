using Qsvit.Evaluation;

namespace Qsvit.Tests.Evaluation;

public class SequentialTestTests
{
    /// <summary>Paired results with true mean difference <paramref name="delta"/> and discordance rate <paramref name="discordant"/>.</summary>
    private static (bool[] Reference, bool[] Candidate) Pairs(Random rng, int n, double delta, double discordant)
    {
        var r = new bool[n];
        var c = new bool[n];
        double up = (discordant + delta) / 2, down = (discordant - delta) / 2;
        for (int i = 0; i < n; i++)
        {
            double u = rng.NextDouble();
            if (u < up) c[i] = true;                       // candidate right, reference wrong
            else if (u < up + down) r[i] = true;          // reference right, candidate wrong
            else r[i] = c[i] = rng.NextDouble() < 0.7;    // concordant
        }
        return (r, c);
    }

    /// <summary>Runs the test on chunk ends only, as the searches do; returns the verdict and whether it came early.</summary>
    private static (SequentialVerdict Verdict, bool Early, int Images) Run(bool[] r, bool[] c, double maxDrop, double alpha, SequentialOptions chunks)
    {
        var test = new PairedDropTest(maxDrop, alpha, r);
        foreach (int end in chunks.Looks(r.Length))
        {
            test.AddRange(c, end);
            if (test.Verdict != SequentialVerdict.Undecided) return (test.Verdict, end < r.Length && !test.Curtailed, end);
        }
        throw new InvalidOperationException("the last image must decide");
    }

    /// <summary>
    /// At the boundary the wrong early decisions stay within the error budget: a candidate whose true drop is exactly the
    /// allowed drop (it should pass) is failed early in at most α of the runs, and one just over it (it should fail) is
    /// passed early in at most α. Simulated, seeded, with a 3-sigma Monte-Carlo margin.
    /// </summary>
    [Theory]
    [InlineData(1.5, 0.05, 0.06)]
    [InlineData(5.0, 0.05, 0.15)]
    [InlineData(1.5, 0.2, 0.04)]
    public void Early_errors_at_the_boundary_stay_within_the_budget(double maxDrop, double alpha, double discordant)
    {
        const int runs = 600, n = 3000;
        var chunks = new SequentialOptions { ErrorBudget = alpha, FirstImages = 100 };
        double margin = 3 * Math.Sqrt(alpha * (1 - alpha) / runs);
        var rng = new Random(1234);
        int wrongFails = 0, wrongPasses = 0;
        for (int run = 0; run < runs; run++)
        {
            var (r, c) = Pairs(rng, n, -maxDrop / 100, discordant);           // exactly at the boundary: should pass
            var a = Run(r, c, maxDrop, alpha, chunks);
            if (a.Early && a.Verdict == SequentialVerdict.Fail) wrongFails++;
            (r, c) = Pairs(rng, n, -maxDrop / 100 - 0.001, discordant);       // just over: should fail
            var b = Run(r, c, maxDrop, alpha, chunks);
            if (b.Early && b.Verdict == SequentialVerdict.Pass) wrongPasses++;
        }
        Assert.True(wrongFails <= (alpha + margin) * runs, $"{wrongFails} of {runs} early fails at the boundary");
        Assert.True(wrongPasses <= (alpha + margin) * runs, $"{wrongPasses} of {runs} early passes over the boundary");
    }

    [Fact]
    public void Clear_cases_stop_at_the_first_chunks()
    {
        var rng = new Random(7);
        var chunks = new SequentialOptions { FirstImages = 250 };
        var (r, c) = Pairs(rng, 5000, -0.25, 0.30);      // 25 points worse, 5 allowed
        var fail = Run(r, c, 5, 0.05, chunks);
        Assert.Equal((SequentialVerdict.Fail, true, 250), fail);
        (r, c) = Pairs(rng, 5000, 0, 0.04);              // unchanged accuracy, 5 allowed
        var pass = Run(r, c, 5, 0.05, chunks);
        Assert.Equal(SequentialVerdict.Pass, pass.Verdict);
        Assert.True(pass.Images <= 563, $"{pass.Images} images");
    }

    [Fact]
    public void Undecided_to_the_end_decides_as_the_full_split_does()
    {
        // 10 images, reference right on all, candidate wrong on exactly 1 (a 10-point drop): passes at 10, fails at 9.99.
        var r = Enumerable.Repeat(true, 10).ToArray();
        var c = r.ToArray();
        c[9] = false;
        var t = new PairedDropTest(10, 0.05, r);
        Assert.Equal(SequentialVerdict.Pass, t.AddRange(c, 10));
        t = new PairedDropTest(9.99, 0.05, r);
        Assert.Equal(SequentialVerdict.Fail, t.AddRange(c, 10));
        Assert.Equal(10, t.Count);
        Assert.False(t.Curtailed);
    }

    [Fact]
    public void Curtails_when_the_rest_cannot_change_the_outcome()
    {
        // The reference is right on all 100 images, so no later image can win back a loss: with 1 point allowed, the
        // second loss decides the full split (a tiny budget keeps the betting side out of it).
        var r = Enumerable.Repeat(true, 100).ToArray();
        var c = r.ToArray();
        c[0] = c[1] = false;
        var t = new PairedDropTest(1, 1e-9, r);
        Assert.Equal(SequentialVerdict.Undecided, t.AddRange(c, 1));
        Assert.Equal(SequentialVerdict.Fail, t.AddRange(c, 2));
        Assert.True(t.Curtailed);
        // Conversely all wrong reference answers: the candidate cannot lose, so it passes at once.
        var wrong = new bool[100];
        t = new PairedDropTest(1, 1e-9, wrong);
        Assert.Equal(SequentialVerdict.Pass, t.Add(false));
        Assert.True(t.Curtailed);
    }

    [Fact]
    public void Chunk_ends_grow_to_the_split()
    {
        Assert.Equal([250, 375, 563, 845, 1268, 1902, 2853, 4280, 5000], new SequentialOptions { FirstImages = 250 }.Looks(5000));
        Assert.Equal([100, 150, 225, 300], new SequentialOptions().Looks(300));
        Assert.Equal([100], new SequentialOptions().Looks(100));
    }

    private sealed class Labels(params int[] labels) : Qsvit.IO.Datasets.IImageDataset
    {
        public string Name => "labels";
        public int Count => labels.Length;
        public int Channels => 1;
        public int Height => 1;
        public int Width => 1;
        public IReadOnlyList<string> ClassNames => ["a", "b", "c"];
        public int Label(int index) => labels[index];
        public void Read(int index, Span<float> destination) => destination[0] = 0;
    }

    [Fact]
    public void Class_sorted_splits_are_recognised()
    {
        Assert.True(SequentialOptions.SortedByClass(new Labels(0, 0, 1, 1, 2)));      // an image folder's order
        Assert.False(SequentialOptions.SortedByClass(new Labels(0, 1, 2, 0, 1, 2)));  // CIFAR's interleaved order
        Assert.False(SequentialOptions.SortedByClass(new Labels(1, 1, 1)));           // one class: any order is a sample
        Assert.False(SequentialOptions.SortedByClass(new Labels(0, 1, 2, 3)));        // the first images of an interleaved file (--limit 4)
        Assert.False(SequentialOptions.SortedByClass(new Labels(2)));
    }

    [Theory]
    [InlineData(0.0, 250, 1.5)]
    [InlineData(1.0, 250, 1.5)]
    [InlineData(0.05, 0, 1.5)]
    [InlineData(0.05, 250, 1.0)]
    public void Bad_options_are_refused(double alpha, int first, double growth) =>
        Assert.Throws<QsvitException>(() => new SequentialOptions { ErrorBudget = alpha, FirstImages = first, Growth = growth }.Validate());
}
