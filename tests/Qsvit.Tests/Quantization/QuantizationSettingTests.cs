using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Tests.Quantization;

public class QuantizationSettingTests
{
    private const string PaperSetting = "8,4,8,8|8,8,8|4,32|4,32";
    private static readonly Sdtv2Layout Small = new(new Sdtv2Config { EmbedDim = [8, 16, 32, 48], NumClasses = 10 });

    [Fact]
    public void PaperTextParsesInStageOrder()
    {
        var s = QuantizationSetting.Parse(PaperSetting);
        Assert.Equal(Granularity.Block, s.Granularity);
        Assert.Equal(32, s.HeadBits);
        Assert.Equal(Sdtv2Layout.PaperUnits, s.Entries.Select(e => e.Key));
        Assert.Equal([8, 4, 8, 8, 8, 8, 8, 4, 32, 4, 32], s.Entries.Select(e => e.Value));
        Assert.Equal(4, s["CONV_S1_B1"]);
        Assert.Equal(32, s["TRAN_S3"]);
        Assert.Equal(PaperSetting, s.ToString());
    }

    [Theory]
    [InlineData("paper")]
    [InlineData(" PAPER ")]
    [InlineData("Paper")]
    public void PaperNamesThePublishedSetting(string text)
    {
        var s = QuantizationSetting.Parse(text);
        Assert.Equal(QuantizationSetting.Parse(PaperSetting).Entries, s.Entries);
        Assert.Equal(PaperSetting, s.ToString()); // written out as the bit widths, never as the name
        Assert.Equal(PaperSetting, QuantizationSetting.PaperText);
    }

    [Fact]
    public void HeadGroupIsOptionalAndCanonical()
    {
        var withHead = QuantizationSetting.Parse(" 8, 4,8,8 | 8,8,8|4,32|4,32|32 ");
        Assert.Equal(QuantizationSetting.Parse(PaperSetting), withHead);
        Assert.Equal(PaperSetting, withHead.ToString());
        var head8 = QuantizationSetting.Parse(PaperSetting + "|8");
        Assert.Equal(8, head8.HeadBits);
        Assert.Equal(PaperSetting + "|8", head8.ToString());
        Assert.NotEqual(withHead, head8);
    }

    [Fact]
    public void TransformerBlockTextRoundTrips()
    {
        const string text = "8,4,8,8|8,8,8|4,16,16,8,8,8,2|4,8,6|8";
        var s = QuantizationSetting.Parse(text);
        Assert.Equal(Granularity.TransformerBlock, s.Granularity);
        Assert.Equal(16, s["TRAN_S3_B1"]);
        Assert.Equal(2, s["TRAN_S3_B6"]);
        Assert.Equal(6, s["TRAN_S4_B2"]);
        Assert.Equal(8, s.HeadBits);
        Assert.Equal(text, s.ToString());
        Assert.Equal(s, QuantizationSetting.Parse(s.ToJson()));
    }

    [Fact]
    public void JsonRoundTripsAtEveryGranularity()
    {
        var block = QuantizationSetting.Parse(PaperSetting + "|16");
        string json = block.ToJson();
        Assert.StartsWith("{\"granularity\":\"block\",\"bits\":{\"DS_S1_B1\":8,\"CONV_S1_B1\":4,", json);
        Assert.EndsWith("},\"head\":16}", json);
        Assert.Equal(block, QuantizationSetting.FromJson(json));
        Assert.Equal(block, QuantizationSetting.Parse(block.ToJson(indented: true)));

        var tb = block.Refine(Granularity.TransformerBlock, Small).With("TRAN_S3_B2", 3);
        Assert.Equal(tb, QuantizationSetting.FromJson(tb.ToJson()));

        var layer = block.Refine(Granularity.Layer, Small).With("block3.0.mlp.fc1_conv.weight", 5);
        Assert.Equal(layer.ToJson(), layer.ToString());
        Assert.Equal(layer, QuantizationSetting.Parse(layer.ToString()));
        Assert.Equal(layer.GetHashCode(), QuantizationSetting.Parse(layer.ToString()).GetHashCode());
    }

    [Fact]
    public void EqualSettingsAreOneCacheKey()
    {
        var a = QuantizationSetting.Parse(PaperSetting);
        var b = QuantizationSetting.Uniform(8).With("CONV_S1_B1", 4).With("DS_S3", 4).With("TRAN_S3", 32).With("DS_S4", 4).With("TRAN_S4", 32);
        Assert.Equal(a, b);
        Assert.True(a == b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.Single(new HashSet<QuantizationSetting> { a, b, QuantizationSetting.Parse(a.ToJson()) });
        Assert.Equal(a.ToString(), b.ToString());
        Assert.NotEqual(a, a.With("HEAD", 8));
        Assert.Equal(8, a.With("HEAD", 8).HeadBits);
        Assert.Equal(32, a.HeadBits); // With returns a copy
    }

    [Fact]
    public void BitsForResolvesUnitBlockLayerAndHead()
    {
        var block = QuantizationSetting.Parse("8,4,8,8|8,8,8|4,6|4,5|7");
        var tb = QuantizationSetting.Parse("8,4,8,8|8,8,8|4,2,3,4,5,6,7|4,9,10");
        var q = Small.Weight("block3.3.attn.q_conv.0.body.0.weight");
        var fc = Small.Weight("block4.1.mlp.fc2_conv.weight");
        var head = Small.Weight("head.weight");
        var stem = Small.Weight("downsample1_1.encode_conv.weight");
        Assert.Equal(6, block.BitsFor(q));
        Assert.Equal(5, tb.BitsFor(q));
        Assert.Equal(5, block.BitsFor(fc));
        Assert.Equal(10, tb.BitsFor(fc));
        Assert.Equal(7, block.BitsFor(head));
        Assert.Equal(32, tb.BitsFor(head));
        Assert.Equal(8, tb.BitsFor(stem));

        var layer = tb.Refine(Granularity.Layer, Small);
        Assert.All(Small.Weights, w => Assert.Equal(tb.BitsFor(w), layer.BitsFor(w)));
        Assert.Equal(11, layer.With(q.Key, 11).BitsFor(q));
        Assert.Throws<QsvitException>(() => layer.Refine(Granularity.Block, Small));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("8,4,8,8|8,8,8|4,32", "3 '|'-separated group(s)")]
    [InlineData("8,4,8|8,8,8|4,32|4,32", "group 1 (S1) has 3 value(s); expected 4 (DS_S1_B1, CONV_S1_B1, DS_S1_B2, CONV_S1_B2)")]
    [InlineData("8,4,8,8|8,8|4,32|4,32", "group 2 (S2) has 2 value(s)")]
    [InlineData("8,4,8,8|8,8,8|4,32,8|4,32", "group 3 (S3) has 3 value(s); expected 2 (DS_S3, TRAN_S3) at block granularity or 7")]
    [InlineData("8,4,8,8|8,8,8|4,8,8,8,8,8,8|4,32", "mixes granularities")]
    [InlineData("8,4,x,8|8,8,8|4,32|4,32", "group 1 (S1), value 3: 'x' is not a bit width; allowed 2..16 or 32")]
    [InlineData("8,4,8,8|8,8,8|4,1|4,32", "group 3 (S3), value 2: '1' is not a bit width")]
    [InlineData("8,4,8,8|8,8,8|4,32|4,17", "group 4 (S4), value 2: '17'")]
    [InlineData("8,4,8,8|8,8,8|4,32|4,32|-8", "group 5 (HEAD), value 1: '-8'")]
    [InlineData("8,4,8,8|8,8,8|4,32|4,32|8,8", "group 5 (HEAD) must be a single bit width")]
    [InlineData("8,4,8,8|8,8,8|4,32|4,32|", "group 5 (HEAD), value 1: ''")]
    public void BadTextSaysWhatIsWrong(string text, string expected)
    {
        var e = Assert.Throws<QsvitException>(() => QuantizationSetting.Parse(text));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("{\"granularity\":\"unit\",\"bits\":{}}", "granularity \"unit\" is not one of")]
    [InlineData("{\"bits\":{}}", "lacks \"granularity\"")]
    [InlineData("{\"granularity\":\"block\",\"bits\":{\"DS_S1_B1\":8}}", "lacks unit(s) CONV_S1_B1")]
    [InlineData("{\"granularity\":\"block\",\"bits\":{\"DS_S9\":8}}", "unknown block unit(s) DS_S9")]
    [InlineData("{\"granularity\":\"layer\",\"bits\":{\"x.weight\":3.5}}", "\"bits\".\"x.weight\" = 3.5 is not a bit width")]
    [InlineData("{\"granularity\":\"layer\",\"bits\":{\"head.weight\":8}}", "set the head's width with \"head\"")]
    [InlineData("{\"granularity\":\"layer\",\"bits\":{}}", "at least one layer")]
    [InlineData("{\"granularity\":\"layer\",\"bits\":{\"a\":8},\"head\":1}", "\"head\" = 1 is not a bit width")]
    [InlineData("{\"granularity\":\"layer\",\"bits\":{\"a\":8},\"heads\":8}", "unknown property \"heads\"")]
    public void BadJsonSaysWhatIsWrong(string json, string expected)
    {
        var e = Assert.Throws<QsvitException>(() => QuantizationSetting.Parse(json));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void LayerSettingsAreCheckedAgainstTheModel()
    {
        var layer = QuantizationSetting.Uniform(8).Refine(Granularity.Layer, Small);
        var typo = layer.With("block3.0.mlp.fc1_conv.wieght", 4);
        Assert.Contains("not quantizable weights", Assert.Throws<QsvitException>(() => typo.Validate(Small)).Message);
        var partial = QuantizationSetting.Create(Granularity.Layer, [KeyValuePair.Create("downsample1_1.encode_conv.weight", 8)]);
        Assert.Contains("gives no bit width for", Assert.Throws<QsvitException>(() => partial.Validate(Small)).Message);
        Assert.Throws<QsvitException>(() => QuantizationSetting.Uniform(8).With("TRAN_S3_B1", 4));
        Assert.Throws<QsvitException>(() => QuantizationSetting.Uniform(8).With("DS_S3", 33));
    }
}
