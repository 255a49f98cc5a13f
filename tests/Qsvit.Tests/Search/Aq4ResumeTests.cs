using Qsvit.Search;
using Qsvit.Quantization;
using Qsvit.Tests.IO.Datasets;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Search;

public sealed class Aq4ResumeTests
{
    private sealed class Interrupted : Exception;

    [Fact]
    public void Resume_AfterAnInterruption_EvaluatesNothingTwice_AndEndsTheSame()
    {
        using var dir = new TempDir();
        var space = Aq4Space.Create(Aq4Fixtures.TinyLayout, Granularity.Stage, [8, 2]);
        // 8 images: fp32 is right on all of them (labels are its predictions); one lost image is 12.5 points.
        var options = new Aq4Options { Method = Aq4Method.Beam, BeamWidth = 2, MaxDrop = 13, SearchSplit = SearchRun.SearchSplit };
        var runs = new List<SearchRun>();
        SettingEvaluator Evaluator(string run)
        {
            foreach (var open in runs) open.Dispose();   // one process at a time per run directory
            runs.Add(SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Beam, run)));
            return runs[^1].Evaluator;
        }

        int reports = 0;
        var reference = Aq4Searcher.Run(Evaluator("straight"), space, options, _ => reports++);
        Assert.Contains(reference.Candidates, c => c.Outcome == Aq4Outcome.Failed);
        Assert.Contains(reference.Candidates, c => c.Step > 1 && c.Outcome == Aq4Outcome.Passed);

        var first = Evaluator("interrupted");
        int seen = 0;
        Assert.Throws<Interrupted>(() => Aq4Searcher.Run(first, space, options, _ => { if (++seen == reports / 2) throw new Interrupted(); }));
        int doneBefore = first.FullEvaluations + first.DriftEvaluations;
        Assert.InRange(doneBefore, 1, reference.NewFullEvaluations + reference.NewDriftEvaluations - 1);

        var second = Evaluator("interrupted");
        var resumed = Aq4Searcher.Run(second, space, options);
        Assert.Equal(reference.NewFullEvaluations + reference.NewDriftEvaluations, doneBefore + second.FullEvaluations + second.DriftEvaluations);
        Assert.Equal(reference.FullEvaluations, resumed.FullEvaluations);   // the search's own counts include replays
        Assert.Equal(reference.DriftEvaluations, resumed.DriftEvaluations);

        Assert.Equal(reference.Setting, resumed.Setting);
        Assert.Equal(reference.Accuracy.Correct, resumed.Accuracy.Correct);
        Assert.Equal(reference.Candidates.Select(c => (c.Setting, c.Outcome, c.Drift, c.Accuracy)),
            resumed.Candidates.Select(c => (c.Setting, c.Outcome, c.Drift, c.Accuracy)));

        // The log holds each (kind, setting, split) once.
        var keys = runs[^1].Store.Log.Entries.Select(r => $"{r.What}|{r.Setting}").ToArray();
        Assert.Equal(keys.Length, keys.Distinct().Count());

        // A third run replays everything.
        var third = Evaluator("interrupted");
        Assert.Equal(reference.Setting, Aq4Searcher.Run(third, space, options).Setting);
        Assert.Equal((0, 0), (third.FullEvaluations, third.DriftEvaluations));
        runs[^1].Dispose();
    }
}
