using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Tests.Search;

/// <summary>
/// An oracle with known surfaces: accuracy (percent) and drift as functions of the setting. Caches like the real evaluator,
/// counts what it actually computes, and charges fixed seconds per evaluation.
/// </summary>
internal sealed class FakeDriftOracle(Func<QuantizationSetting, double> accuracy, Func<QuantizationSetting, double> drift, int images = 10_000)
    : ISettingOracle
{
    public const double FullSecondsEach = 10, DriftSecondsEach = 0.25;

    private readonly Dictionary<(QuantizationSetting, string), AccuracyRecord> _accuracy = new();
    private readonly Dictionary<QuantizationSetting, DriftResult> _drift = new();

    public int FullEvaluations { get; private set; }
    public int DriftEvaluations { get; private set; }
    public IEnumerable<QuantizationSetting> Evaluated => _accuracy.Keys.Select(k => k.Item1);

    public AccuracyRecord Accuracy(QuantizationSetting setting, string split)
    {
        if (_accuracy.TryGetValue((setting, split), out var cached)) return cached;
        long correct = (long)Math.Round(accuracy(setting) * images / 100);
        var mask = Enumerable.Range(0, images).Select(i => i < correct).ToArray();
        FullEvaluations++;
        return _accuracy[(setting, split)] = new AccuracyRecord(setting.ToString(), split, images, correct, mask, FullSecondsEach);
    }

    public DriftResult Drift(QuantizationSetting setting)
    {
        if (_drift.TryGetValue(setting, out var cached)) return cached;
        DriftEvaluations++;
        return _drift[setting] = new DriftResult(drift(setting), 0, [], DriftSecondsEach);
    }

    /// <summary>The accuracy this oracle reports (after rounding to whole images).</summary>
    public double Reported(QuantizationSetting setting) => Math.Round(accuracy(setting) * images / 100) * 100.0 / images;
}

internal static class Aq4Fixtures
{
    /// <summary>Reproducible noise in [-0.5, 0.5) per setting (string hashes are randomized per process).</summary>
    public static double Noise(QuantizationSetting setting, int seed)
    {
        uint h = 2166136261u ^ (uint)seed;
        foreach (char c in setting.ToString()) h = (h ^ c) * 16777619u;
        return new Random((int)(h & 0x7fffffff)).NextDouble() - 0.5;
    }

    /// <summary>A tiny SDTv2 for 32x32 inputs that runs in milliseconds.</summary>
    public static readonly Sdtv2Config Tiny = new()
    {
        EmbedDim = [8, 16, 16, 16],
        NumHeads = 2,
        StemStride = 1,
        NumClasses = 10,
        Timesteps = 2,
        ImageHeight = 32,
        ImageWidth = 32,
    };

    public static readonly Sdtv2Layout TinyLayout = new(Tiny);

    /// <summary>Every point of a space, as ladder levels.</summary>
    public static IEnumerable<int[]> AllLevels(Aq4Space space)
    {
        var levels = new int[space.Units.Count];
        while (true)
        {
            yield return (int[])levels.Clone();
            int u = 0;
            while (u < levels.Length && ++levels[u] == space.Ladder.Count) levels[u++] = 0;
            if (u == levels.Length) yield break;
        }
    }

    /// <summary>Exhaustive optimum: least memory within the drop (ties: higher accuracy), as (bits, accuracy).</summary>
    public static (long Bits, double Accuracy) BruteForce(Aq4Space space, FakeDriftOracle oracle, double maxDrop)
    {
        double fp32 = oracle.Reported(space.Setting(new int[space.Units.Count]));
        return AllLevels(space)
            .Select(l => space.Setting(l))
            .Select(s => (Bits: MemoryFootprint.Compute(space.Layout, s).Bits, Accuracy: oracle.Reported(s)))
            .Where(p => fp32 - p.Accuracy <= maxDrop + 1e-9)
            .OrderBy(p => p.Bits).ThenByDescending(p => p.Accuracy)
            .First();
    }

    /// <summary>
    /// A CIFAR-10 binary file (records of label + 3072 pixel bytes) of random images labelled with the fp32 tiny model's
    /// own predictions: fp32 scores 100 % and quantization can only lose.
    /// </summary>
    public static string WriteCifar(string directory, string name, int count, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[count * 3073];
        rng.NextBytes(bytes);
        for (int i = 0; i < count; i++) bytes[i * 3073] = 0;
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, bytes);
        var data = DatasetLoader.Open(path, new DatasetOptions { Normalization = Normalization.Cifar10 });
        var predictions = Evaluator.Run(TinyModel().CreateModel(), data, new EvalOptions { BatchSize = 8 }).Predictions;
        for (int i = 0; i < count; i++) bytes[i * 3073] = (byte)predictions[i];
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>
    /// The tiny model with random weights as a loaded model. Plain He-normal weights leave it silent after stage 1 (LIF
    /// threshold 1, τ = 2), so no later unit's weights would matter; tripled BatchNorm gains keep every layer firing.
    /// </summary>
    public static LoadedModel TinyModel(int seed = 1) =>
        new(Tiny, LivelyWeights(seed), Normalization.Cifar10, null, "random", null, new Dictionary<string, string>());

    public static Qsvit.IO.StateDict LivelyWeights(int seed)
    {
        var state = RandomWeights.Create(Tiny, seed);
        foreach (var p in TinyLayout.Parameters.Where(p => p.Role == ParameterRole.BnWeight))
        {
            var data = state[p.Key].Data;
            for (int i = 0; i < data.Length; i++) data[i] *= 3;
        }
        return state;
    }

    /// <summary>A real evaluator on the tiny model with a "val" split (search) and a "test" split, optionally persistent.</summary>
    public static SettingEvaluator TinyEvaluator(string directory, int images = 8, int? calibration = 4, RunStore? store = null,
        QuantizerSpec? spec = null, long cacheMegabytes = 0, Qsvit.Backends.IBackend? backend = null)
    {
        var options = new DatasetOptions { Normalization = Normalization.Cifar10 };
        var val = DatasetLoader.Open(File.Exists(Path.Combine(directory, "val.bin")) ? Path.Combine(directory, "val.bin")
            : WriteCifar(directory, "val.bin", images, 11), options);
        var test = DatasetLoader.Open(File.Exists(Path.Combine(directory, "test.bin")) ? Path.Combine(directory, "test.bin")
            : WriteCifar(directory, "test.bin", images, 12), options);
        return new SettingEvaluator(TinyModel(), spec ?? QuantizerSpec.Parse("symmetric"),
            new Dictionary<string, IImageDataset> { ["val"] = val, ["test"] = test }, new EvalOptions { BatchSize = 4 }, store, calibration, backend,
            cacheMegabytes);
    }
}
