using System.Diagnostics;
using Qsvit.Search;
using Qsvit.Tests.IO.Datasets;

namespace Qsvit.Tests.Search;

/// <summary>The run directory's log and lock: damaged lines cost a re-evaluation, conflicts and a second process are refused.</summary>
public sealed class RunStoreTests
{
    private static readonly Dictionary<string, string?> Identity = new() { ["model"] = "m" };

    private static AccuracyRecord Record(string setting = "8", int count = 10, int correct = 7) =>
        new(setting, "search", count, correct, Enumerable.Range(0, count).Select(i => i < correct).ToArray(), 1.5);

    private static string LogPath(TempDir dir) => Path.Combine(dir.Path, RunStore.LogFile);

    [Fact]
    public void Records_RoundTrip_WithTheirChecksum()
    {
        using var dir = new TempDir();
        using (var store = RunStore.Open(dir.Path, Identity))
        {
            store.Log.Append(new LoggedAccuracy(Record()));
            store.Log.Append(new LoggedDrift("8", new DriftResult(0.25, 0.01, [0.5, 0.125], 0.2)));
        }
        var line = File.ReadLines(LogPath(dir)).First();
        Assert.Matches("\"sum\":\"[0-9a-f]{8}\"}$", line);
        using var reopened = RunStore.Open(dir.Path, Identity);
        Assert.Empty(reopened.Log.Warnings);
        var accuracy = Assert.IsType<LoggedAccuracy>(reopened.Log.Entries[0]);
        Assert.Equal(Record().CorrectMask, accuracy.Record.CorrectMask);
        Assert.Equal((1, 2), (reopened.Log.Entries[0].Line, reopened.Log.Entries[1].Line));
        Assert.Equal([0.5, 0.125], Assert.IsType<LoggedDrift>(reopened.Log.Entries[1]).Result.PerLayer);
    }

    [Fact]
    public void APartialLastLine_IsCut_SoTheNextAppendSurvives()
    {
        using var dir = new TempDir();
        using (var store = RunStore.Open(dir.Path, Identity)) store.Log.Append(new LoggedAccuracy(Record("8")));
        File.AppendAllText(LogPath(dir), "{\"kind\":\"dri");   // killed mid-write
        using (var store = RunStore.Open(dir.Path, Identity))
        {
            Assert.Single(store.Log.Entries);
            store.Log.Append(new LoggedAccuracy(Record("4")));
        }
        using var reopened = RunStore.Open(dir.Path, Identity);
        Assert.Equal(["8", "4"], reopened.Log.Entries.Select(e => e.Setting));
    }

    // Issue 9.14/9.15: each damaged line is skipped with a warning naming the file and line; the evaluation then runs again.
    [Theory]
    [InlineData("""{"kind":"accuracy","setting":"8","split":"search","correct":1,"mask":"AQ=="}""", "\"count\" is missing")]
    [InlineData("""{"kind":"accuracy","setting":"8","split":"search","count":2,"correct":1,"mask":"not base64!"}""", "mask is not base64")]
    [InlineData("""{"kind":"accuracy","setting":"8","split":"search","count":100,"correct":1,"mask":"AQ=="}""", "mask holds 8 images, count says 100")]
    [InlineData("""{"kind":"accuracy","setting":"8","split":"search","count":2,"correct":2,"mask":"AQ=="}""", "the mask holds 1 correct images, not 2")]
    [InlineData("""{"kind":5,"setting":"8"}""", "\"kind\" = 5 is not a string")]
    [InlineData("""{"kind":"drift","setting":"8"}""", "\"drift\" is missing")]
    [InlineData("""{"kind":"rates","setting":"8","images":4,"layers":[3]}""", "layers[0] is not an object")]
    [InlineData("""[1,2]""", "not a JSON object")]
    [InlineData("""not json at all""", "invalid")]
    public void ADamagedLine_IsSkippedWithAWarning_NamingFileAndLine(string line, string why)
    {
        using var dir = new TempDir();
        using (var store = RunStore.Open(dir.Path, Identity)) store.Log.Append(new LoggedAccuracy(Record("4")));
        File.AppendAllText(LogPath(dir), line + "\n");
        using var reopened = RunStore.Open(dir.Path, Identity);
        Assert.Single(reopened.Log.Entries);
        var warning = Assert.Single(reopened.Log.Warnings);
        Assert.Contains($"{LogPath(dir)}:2: skipped", warning);
        Assert.Contains(why, warning);
    }

    [Fact]
    public void ALineThatFailsItsChecksum_IsSkipped()
    {
        using var dir = new TempDir();
        using (var store = RunStore.Open(dir.Path, Identity)) store.Log.Append(new LoggedAccuracy(Record(correct: 7)));
        File.WriteAllText(LogPath(dir), File.ReadAllText(LogPath(dir)).Replace("\"correct\":7", "\"correct\":6"));
        using var reopened = RunStore.Open(dir.Path, Identity);
        Assert.Empty(reopened.Log.Entries);
        Assert.Contains("checksum does not match", Assert.Single(reopened.Log.Warnings));
    }

    [Fact]
    public void TwoConflictingRecordsOfOneEvaluation_AreAnError_NamingBothLines()
    {
        using var dir = new TempDir();
        var spec = RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 4);
        var fp32 = Qsvit.Quantization.QuantizationSetting.Uniform(32);
        AccuracyRecord first;
        using (var run = SearchRun.Open(spec)) first = run.Evaluator.Accuracy(fp32, SearchRun.SearchSplit);
        string log = Path.Combine(spec.RunDirectory!, RunStore.LogFile);
        // The same result again (two runs that raced) is harmless; a different one is not.
        File.AppendAllText(log, EvaluationLog.Format(new LoggedAccuracy(first with { Seconds = 9 })) + "\n");
        using (SearchRun.Open(spec)) { }
        var flipped = first.CorrectMask.Select((c, i) => i == 0 ? !c : c).ToArray();
        File.AppendAllText(log, EvaluationLog.Format(new LoggedAccuracy(first with { CorrectMask = flipped, Correct = flipped.Count(c => c) })) + "\n");
        var e = Assert.Throws<QsvitException>(() => SearchRun.Open(spec));
        Assert.Contains($"{log}: lines 1 and 3 record different results for the accuracy on search", e.Message);
    }

    // A fresh run's report directory does not exist yet when the packed model is written beside the report.
    [Fact]
    public void SavePackedModel_MakesTheReportDirectory()
    {
        using var dir = new TempDir();
        using var run = SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 4));
        string reports = Path.Combine(dir.Path, "reports", "qsvit");
        string path = run.SavePackedModel(Qsvit.Quantization.QuantizationSetting.Uniform(8), reports);
        Assert.True(File.Exists(path));
        Assert.Equal(reports, Path.GetDirectoryName(path));
    }

    // Issue 9.16: one process per run directory.
    [Fact]
    public void ASecondOpen_IsRefused_NamingThePid_UntilTheFirstIsClosed()
    {
        using var dir = new TempDir();
        var first = RunStore.Open(dir.Path, Identity);
        var e = Assert.Throws<QsvitException>(() => RunStore.Open(dir.Path, Identity));
        Assert.Contains($"is in use by PID {Environment.ProcessId}", e.Message);
        first.Dispose();
        RunStore.Open(dir.Path, Identity).Dispose();
    }

    [Fact]
    public void AnotherProcess_IsRefused_WhileTheDirectoryIsLocked()
    {
        using var dir = new TempDir();
        using var store = RunStore.Open(dir.Path, Identity);
        // flock(1) asks the kernel for the same exclusive lock from another process, without waiting.
        if (!File.Exists("/usr/bin/flock")) return;
        var flock = Process.Start(new ProcessStartInfo("/usr/bin/flock", ["--nonblock", "--exclusive", Path.Combine(dir.Path, RunStore.LockFile), "true"])
        {
            RedirectStandardError = true,
        })!;
        Assert.True(flock.WaitForExit(10_000));
        Assert.Equal(1, flock.ExitCode);
    }
}
