using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Tests.Search;

public sealed class QsvitResumeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("qsvit-resume-").FullName;
    private readonly LoadedModel _model = TinyModel.Load();
    private readonly Dictionary<string, IImageDataset> _splits;
    private readonly string _modelPath, _val, _test;
    private static readonly QsvitOptions Options = new() { Bits = [32, 8, 4], TolerancePoints = 100 }; // everything passes: 8 → 4 guided steps for every unit

    public QsvitResumeTests()
    {
        _val = TinyModel.WriteCifar(_dir, "val.bin", 4, 1);
        _test = TinyModel.WriteCifar(_dir, "test.bin", 3, 2);
        _splits = new Dictionary<string, IImageDataset> { ["search"] = TinyModel.Open(_val), ["test"] = TinyModel.Open(_test) };
        _modelPath = Path.Combine(_dir, "tiny.safetensors");
        RunFixtures.WriteModel(_modelPath, _model);
    }

    public void Dispose()
    {
        foreach (var run in _runs) run.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private SearchRunSpec Spec(string run, string quantizer = "paper") => new()
    {
        Method = SearchMethod.Qsvit,
        Model = _modelPath,
        Search = new DataSpec(_val),
        Test = new DataSpec(_test),
        Quantizer = QuantizerSpec.Parse(quantizer),
        RunDirectory = Path.Combine(_dir, run),
        BatchSize = 4,
    };

    private SettingEvaluator NewEvaluator() => new(_model, QuantizerSpec.Paper, _splits, new EvalOptions { BatchSize = 4 });

    private readonly List<SearchRun> _runs = new();

    /// <summary>A run's evaluator; the run before it is closed first, as when a process ends.</summary>
    private SettingEvaluator Open(string run)
    {
        foreach (var open in _runs) open.Dispose();
        _runs.Add(SearchRun.Open(Spec(run)));
        return _runs[^1].Evaluator;
    }

    [Fact]
    public void AKilledRunResumesWithoutReEvaluatingAndGivesTheSameResult()
    {
        var reference = Open("whole");
        var expected = QsvitSearch.Run(reference, new Sdtv2Layout(_model.Config), Options);
        Assert.Equal(expected.Cost.Evaluations, reference.FullEvaluations);
        Assert.Equal(11, expected.Guided.Steps.Count);

        // Kill after k finished evaluations: the progress callback throws before the next one starts.
        const int k = 30; // in Alg. 3
        var runDir = Path.Combine(_dir, "killed");
        var first = Open(Path.GetFileName(runDir));
        Assert.Throws<OperationCanceledException>(() => QsvitSearch.Run(first, new Sdtv2Layout(_model.Config), Options,
            p => { if (p.Done == k) throw new OperationCanceledException($"killed in {p.PhaseName}"); }));
        Assert.Equal(k, first.FullEvaluations);
        Assert.Equal(k, File.ReadAllLines(Path.Combine(runDir, RunStore.LogFile)).Length);

        var resumed = Open(Path.GetFileName(runDir));
        var result = QsvitSearch.Run(resumed, new Sdtv2Layout(_model.Config), Options);
        Assert.Equal(expected.Cost.Evaluations - k, resumed.FullEvaluations);
        Assert.Equal(expected.Cost.Evaluations - k, result.Cost.Run);
        Assert.Equal(k, result.Cost.Replayed);
        Assert.Equal(expected.Cost.Evaluations, result.Cost.Evaluations);
        Assert.True(result.Cost.EvaluationSeconds > 0);

        Assert.Equal(expected.BSettingH, result.BSettingH);
        Assert.Equal(expected.BSettingL, result.BSettingL);
        Assert.Equal(expected.BSettingG, result.BSettingG);
        Assert.Equal(expected.Sensitivity.Cells.Select(c => (c.Unit, c.Bits, c.Accuracy.Correct)),
                     result.Sensitivity.Cells.Select(c => (c.Unit, c.Bits, c.Accuracy.Correct)));
        Assert.All(expected.Sensitivity.Cells.Zip(result.Sensitivity.Cells), p => Assert.Equal(p.First.Accuracy.CorrectMask, p.Second.Accuracy.CorrectMask));
        Assert.Equal(expected.Report!.Quantized.CorrectMask, result.Report!.Quantized.CorrectMask);
        Assert.Equal(expected.Guided.Steps.Select(s => (s.Setting, s.Accuracy.Correct, s.Kept)), result.Guided.Steps.Select(s => (s.Setting, s.Accuracy.Correct, s.Kept)));

        // A third run replays everything.
        var again = Open(Path.GetFileName(runDir));
        QsvitSearch.Run(again, new Sdtv2Layout(_model.Config), Options);
        Assert.Equal(0, again.FullEvaluations);
    }

    [Fact]
    public void ARunDirectoryOfAnotherRunIsRefused()
    {
        var runDir = Path.Combine(_dir, "run");
        QsvitSearch.Sensitivity(Open("run"), Options);
        _runs[^1].Dispose();
        var e = Assert.Throws<QsvitException>(() => SearchRun.Open(Spec("run", quantizer: "symmetric")));
        Assert.Contains("belongs to another run", e.Message);
        Assert.Contains("quantizer was 'paper', now 'symmetric'", e.Message);
    }

    [Fact]
    public void TheSavedQuantizedModelLoadsAndEvaluatesLikeTheSearchSawIt()
    {
        var evaluator = NewEvaluator();
        var setting = QuantizationSetting.Parse(QsvitSearch.PaperSetting);
        var path = Path.Combine(_dir, "q.safetensors");
        QsvitCheckpoint.Save(path, _model, evaluator.Quantize(setting));

        var loaded = ModelLoader.Load(path);
        Assert.Equal(_model.Config.ToString(), loaded.Config.ToString());
        Assert.Null(loaded.ConfigPath);
        Assert.Equal(setting.ToString(), loaded.Metadata[QsvitCheckpoint.SettingKey]);
        Assert.Equal("paper", loaded.Metadata[QsvitCheckpoint.QuantizerKey]);
        var quantized = evaluator.Quantize(setting).StateDict;
        foreach (var key in quantized.Keys) Assert.Equal(quantized[key].Data, loaded.State[key].Data);

        var fromFile = Evaluator.Run(loaded.CreateModel(), _splits["search"], new EvalOptions { BatchSize = 4 });
        Assert.Equal(evaluator.Accuracy(setting, "search").CorrectMask, fromFile.Correct);
    }
}
