using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Tests.IO.Datasets;

namespace Qsvit.Tests.Search;

public sealed class MembraneDriftTests
{
    [Fact]
    public void Drift_IsExactlyZeroForFp32_AndGrowsAsBitsDrop()
    {
        using var dir = new TempDir();
        var evaluator = Aq4Fixtures.TinyEvaluator(dir.Path, images: 8, calibration: 6);
        var fp32 = evaluator.Drift(QuantizationSetting.Uniform(32));
        Assert.Equal(0.0, fp32.Drift);
        Assert.Equal(0.0, fp32.SpikeMismatch);
        Assert.All(fp32.PerLayer, d => Assert.Equal(0.0, d));
        Assert.Equal(new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1)).LifNames.Count, fp32.PerLayer.Count);

        double previous = 0;
        foreach (int bits in new[] { 16, 8, 4, 2 })
        {
            var d = evaluator.Drift(QuantizationSetting.Uniform(bits));
            Assert.True(d.Drift > previous, $"{bits} bits: drift {d.Drift} not above {previous}");
            Assert.InRange(d.SpikeMismatch, 0, 1);
            previous = d.Drift;
        }
        // One unit quantized drifts less than all of them at the same width.
        var one = evaluator.Drift(QuantizationSetting.Uniform(32).With("CONV_S2_B1", 4));
        Assert.InRange(one.Drift, 1e-9, evaluator.Drift(QuantizationSetting.Uniform(4)).Drift);
        Assert.Equal(6, evaluator.DriftEvaluations);   // the second 4-bit request is a cache hit
        Assert.Equal(6, evaluator.CalibrationImages);
    }

    [Fact]
    public void Drift_DoesNotDependOnTheCalibrationBatchSize()
    {
        var model = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(3));
        var rng = new Random(5);
        var images = Enumerable.Range(0, 5 * 3 * 32 * 32).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var quantized = new Sdtv2Model(Aq4Fixtures.Tiny,
            ModelQuantizer.Apply(model.State, model.Layout, QuantizationSetting.Uniform(4), QuantizerSpec.Paper).StateDict);
        var whole = new MembraneDrift(model, images, 5, 32, 32, batch: 5).Measure(quantized);
        var split = new MembraneDrift(model, images, 5, 32, 32, batch: 2).Measure(quantized);
        Assert.Equal(whole.Drift, split.Drift, 6);
        Assert.Equal(whole.SpikeMismatch, split.SpikeMismatch, 12);
        Assert.True(whole.SpikeMismatch > 0);
    }

    [Fact]
    public void Evaluator_SharesResultsBetweenGranularitiesThatNameTheSameModel()
    {
        using var dir = new TempDir();
        var evaluator = Aq4Fixtures.TinyEvaluator(dir.Path);
        var block = QuantizationSetting.Parse("8,8,4,4|8,8,8|4,16|8,8");
        var layer = block.Refine(Granularity.Layer, evaluator.Layout);
        var transformer = block.Refine(Granularity.TransformerBlock, evaluator.Layout);
        Assert.Equal(block.ToString(), evaluator.Key(layer));
        Assert.Equal(block.ToString(), evaluator.Key(transformer));

        var a = evaluator.Drift(block);
        Assert.Same(a, evaluator.Drift(layer));
        var acc = evaluator.Accuracy(transformer, "val");
        Assert.Same(acc, evaluator.Accuracy(layer, "val"));
        Assert.Equal((1, 1), (evaluator.DriftEvaluations, evaluator.FullEvaluations));

        // Truly finer settings keep their own key: the coarsest exact one.
        var finer = transformer.With("TRAN_S3_B2", 2);
        Assert.Equal(finer.ToString(), evaluator.Key(finer.Refine(Granularity.Layer, evaluator.Layout)));
    }
}
