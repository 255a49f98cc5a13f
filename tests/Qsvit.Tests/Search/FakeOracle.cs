using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Tests.Search;

/// <summary>An oracle with made-up accuracies that records every question it is asked (it caches nothing).</summary>
internal sealed class FakeOracle(Func<QuantizationSetting, string, double> accuracy, int images = 1000) : ISettingOracle
{
    public readonly List<(string Setting, string Split)> Calls = new();
    public int FullEvaluations => Calls.Count;
    public int DriftEvaluations => 0;

    public AccuracyRecord Accuracy(QuantizationSetting setting, string split)
    {
        Calls.Add((setting.ToString(), split));
        int correct = (int)Math.Round(accuracy(setting, split) * images / 100);
        var mask = Enumerable.Range(0, images).Select(i => i < correct).ToArray();
        return new AccuracyRecord(setting.ToString(), split, images, correct, mask, Seconds: 0.5);
    }

    public DriftResult Drift(QuantizationSetting setting) => throw new NotSupportedException("QSViT never asks for drift");

    /// <summary>
    /// fp32 accuracy minus the sum of each unit's drop at its width (32 = no drop; a unit or width not listed drops nothing),
    /// on every split.
    /// </summary>
    public static FakeOracle Additive(double fp32, IReadOnlyDictionary<string, IReadOnlyDictionary<int, double>> drops, int images = 1000) =>
        new((s, _) => fp32 - s.Entries.Sum(e => drops.TryGetValue(e.Key, out var d) && d.TryGetValue(e.Value, out var x) ? x : 0), images);
}
