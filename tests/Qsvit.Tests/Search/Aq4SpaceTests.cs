using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Tests.Search;

public sealed class Aq4SpaceTests
{
    private static readonly Sdtv2Layout Layout = Aq4Fixtures.TinyLayout;

    [Fact]
    public void Granularities_HaveTheirUnits_AndCoverEveryWeightOnce()
    {
        int Units(Granularity g) => Aq4Space.Create(Layout, g, [8]).Units.Count;
        Assert.Equal(1, Units(Granularity.Network));
        Assert.Equal(4, Units(Granularity.Stage));
        Assert.Equal(11, Units(Granularity.Block));
        Assert.Equal(17, Units(Granularity.TransformerBlock));
        Assert.Equal(Layout.Weights.Count(w => w.Block != Sdtv2Layout.Head), Units(Granularity.Layer));

        long quantizable = Layout.Weights.Where(w => w.Block != Sdtv2Layout.Head).Sum(w => w.Count);
        foreach (var g in Granularities.All)
            Assert.Equal(quantizable, Aq4Space.Create(Layout, g, [8]).Units.Sum(u => u.Weights));
    }

    [Fact]
    public void CoarseUnits_MoveTheirPaperUnitsTogether_HeadStaysFp32()
    {
        var stage = Aq4Space.Create(Layout, Granularity.Stage, [16, 8, 4]);
        Assert.Equal([32, 16, 8, 4], stage.Ladder);
        var s = stage.Setting([0, 1, 3, 2]);
        Assert.Equal(Granularity.Block, s.Granularity);
        Assert.Equal("32,32,32,32|16,16,16|4,4|8,8", s.ToString());

        var network = Aq4Space.Create(Layout, Granularity.Network, [4, 16, 8, 32, 8]);
        Assert.Equal([32, 16, 8, 4], network.Ladder);   // sorted, deduplicated, 32 is the start
        Assert.Equal(QuantizationSetting.Uniform(8), network.Setting([2]));
        Assert.Equal(3, network.MaxDepth);
    }

    [Fact]
    public void QuantizeHead_AddsTheHeadAsAUnitOfItsOwn()
    {
        var space = Aq4Space.Create(Layout, Granularity.Network, [8], quantizeHead: true);
        Assert.Equal(["NETWORK", "HEAD"], space.Units.Select(u => u.Name));
        Assert.Equal(QuantizationSetting.Uniform(32, headBits: 8), space.Setting([0, 1]));
        Assert.Equal(Layout.Weight("head.weight").Count, space.Units[1].Weights);
    }

    [Fact]
    public void FineGranularities_BuildValidSettings()
    {
        var tb = Aq4Space.Create(Layout, Granularity.TransformerBlock, [8]);
        var levels = new int[tb.Units.Count];
        levels[tb.Units.ToList().FindIndex(u => u.Name == "TRAN_S3_B2")] = 1;
        Assert.Equal("32,32,32,32|32,32,32|32,32,8,32,32,32,32|32,32,32", tb.Setting(levels).ToString());

        var layer = Aq4Space.Create(Layout, Granularity.Layer, [4]);
        var setting = layer.Setting(Enumerable.Repeat(1, layer.Units.Count).ToArray());
        setting.Validate(Layout);
        Assert.Equal(MemoryFootprint.Compute(Layout, QuantizationSetting.Uniform(4)).Bits, MemoryFootprint.Compute(Layout, setting).Bits);
    }

    [Fact]
    public void Bits_DefaultByQuantizer_AndAreChecked()
    {
        Assert.Equal([16, 12, 8, 4], Aq4Space.DefaultBits(QuantizerSpec.Paper));
        Assert.Equal([16, 12, 8, 6, 4, 3, 2], Aq4Space.DefaultBits(QuantizerSpec.Parse("asymmetric-channel-mse")));
        Assert.Throws<QsvitException>(() => Aq4Space.Create(Layout, Granularity.Block, [32]));
        Assert.Throws<QsvitException>(() => Aq4Space.Create(Layout, Granularity.Block, [8, 1]));
        Assert.Throws<QsvitException>(() => Aq4Space.Create(Layout, Granularity.Block, [17]));
        Assert.Equal(Granularity.TransformerBlock, Granularities.Parse("Transformer-Block"));
        Assert.Throws<QsvitException>(() => Granularities.Parse("unit"));
    }
}
