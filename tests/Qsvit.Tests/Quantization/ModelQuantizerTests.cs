using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Quantization;

public class ModelQuantizerTests
{
    private static readonly Sdtv2Layout Small = new(new Sdtv2Config { EmbedDim = [8, 16, 32, 48], NumClasses = 10, Kd = true });

    internal static StateDict RandomStateDict(Sdtv2Layout layout, int seed = 1)
    {
        var rng = new Random(seed);
        var sd = new StateDict();
        foreach (var p in layout.Parameters)
        {
            var t = new Tensor(p.Shape);
            for (int i = 0; i < t.Length; i++) t.Data[i] = (float)(rng.NextDouble() * 0.2 - 0.08);
            sd.Set(p.Key, t);
        }
        return sd;
    }

    [Fact]
    public void TouchesOnlyTheConvAndLinearWeightsOfTheChosenUnits()
    {
        var fp32 = RandomStateDict(Small);
        var setting = QuantizationSetting.Parse("32,4,32,32|32,32,32|32,6|32,32");
        var q = ModelQuantizer.Apply(fp32, Small, setting, QuantizerSpec.Paper);

        Assert.Equal(fp32.Keys, q.StateDict.Keys);
        var expected = Small.Weights.Where(w => w.Unit is "CONV_S1_B1" or "TRAN_S3").Select(w => w.Key).ToHashSet();
        Assert.Equal(5 + 6 * 14, expected.Count);
        foreach (var key in fp32.Keys)
        {
            if (expected.Contains(key))
            {
                Assert.NotSame(fp32[key], q.StateDict[key]);
                Assert.NotEqual(fp32[key].Data, q.StateDict[key].Data);
                int bits = Small.Weight(key).Unit == "CONV_S1_B1" ? 4 : 6;
                Assert.True(q.StateDict[key].Data.Distinct().Count() <= 1 << bits);
            }
            else
                Assert.Same(fp32[key], q.StateDict[key]); // biases, BatchNorm, head, head_kd and 32-bit units are shared
        }
        Assert.True(fp32["head.weight"].Data.SequenceEqual(RandomStateDict(Small)["head.weight"].Data), "the input is not modified");

        Assert.Equal(Small.Weights.Select(w => w.Key), q.Weights.Select(r => r.Key));
        var report = q.Weights.Single(r => r.Key == "ConvBlock1_1.0.Conv.dwconv.weight");
        Assert.Equal((4, 1, LayerKind.DwConv, "CONV_S1_B1"), (report.Bits, report.ScaleCount, report.Kind, report.Block));
        Assert.True(report.Mse > 0);
        Assert.All(q.Weights.Where(r => !expected.Contains(r.Key)), r => Assert.Equal((32, 0, 0.0), (r.Bits, r.ScaleCount, r.Mse)));
    }

    [Fact]
    public void WeightsMatchTheQuantizerAndTheHeadFollowsTheSetting()
    {
        var fp32 = RandomStateDict(Small, 2);
        var spec = QuantizerSpec.Parse("asymmetric-channel");
        var q = ModelQuantizer.Apply(fp32, Small, QuantizationSetting.Uniform(5, headBits: 8), spec);
        foreach (var w in Small.Weights)
        {
            var expected = new float[w.Count];
            var r = Quantizer.Quantize(fp32[w.Key].Data, w.Shape, w.Block == Sdtv2Layout.Head ? 8 : 5, spec, expected);
            Assert.Equal(expected, q.StateDict[w.Key].Data);
            Assert.Equal(w.OutChannels, r.ScaleCount);
        }
        Assert.Equal(8, q.Weights.Single(r => r.Key == "head_kd.weight").Bits);
    }

    [Fact]
    public void CachedTensorsAreReusedAcrossSettings()
    {
        var mq = new ModelQuantizer(RandomStateDict(Small), Small);
        var a = mq.Apply(QuantizationSetting.Uniform(8), QuantizerSpec.Paper);
        int cached = mq.CachedCount;
        Assert.Equal(Small.Weights.Count(w => w.Block != Sdtv2Layout.Head), cached);

        var b = mq.Apply(QuantizationSetting.Uniform(8).With("TRAN_S4", 4), QuantizerSpec.Paper);
        var s4 = Small.Weights.Where(w => w.Unit == "TRAN_S4").ToArray();
        Assert.Equal(cached + s4.Length, mq.CachedCount);
        foreach (var w in Small.Weights.Where(w => w.Unit != "TRAN_S4" && w.Block != Sdtv2Layout.Head))
            Assert.Same(a.StateDict[w.Key], b.StateDict[w.Key]);

        // Layer granularity with the same widths reuses the same tensors; another spec does not.
        var layer = mq.Apply(QuantizationSetting.Uniform(8).Refine(Granularity.Layer, Small), QuantizerSpec.Paper);
        Assert.All(Small.Weights, w => Assert.Same(a.StateDict[w.Key], layer.StateDict[w.Key]));
        mq.Apply(QuantizationSetting.Uniform(8), QuantizerSpec.Parse("symmetric"));
        Assert.Equal(2 * cached + s4.Length, mq.CachedCount);

        Parallel.For(0, 8, i => mq.Apply(QuantizationSetting.Uniform(2 + i % 3), QuantizerSpec.Paper));
        Assert.Equal(5 * cached, mq.CachedCount); // widths 2, 3 and 4 for every weight; TRAN_S4 at 4 bits was cached already
        mq.ClearCache();
        Assert.Equal(0, mq.CachedCount);
    }

    [Fact]
    public void RejectsAStateDictThatDoesNotFitTheModel()
    {
        var sd = RandomStateDict(Small);
        sd.Remove("block3.2.mlp.fc2_conv.weight");
        Assert.Contains("block3.2.mlp.fc2_conv.weight", Assert.Throws<QsvitException>(() => new ModelQuantizer(sd, Small)).Message);
        sd = RandomStateDict(Small);
        sd.Set("downsample2.encode_conv.weight", new Tensor(16, 8, 3, 1));
        Assert.Contains("[16, 8, 3, 1]", Assert.Throws<QsvitException>(() => new ModelQuantizer(sd, Small)).Message);
    }
}
