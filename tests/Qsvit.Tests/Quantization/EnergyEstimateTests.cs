using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Tests.Quantization;

public class EnergyEstimateTests
{
    // 16x16 input, stem stride 1: stage resolutions 16x16 (stem, CONV_S1_B1), 8x8, 4x4, 2x2 (S3), 2x2 (S4).
    private static readonly Sdtv2Layout Tiny = new(new Sdtv2Config
    {
        EmbedDim = [8, 16, 32, 40], NumClasses = 10, StemStride = 1, ImageHeight = 16, ImageWidth = 16,
    });

    [Fact]
    public void LayerMacsByHand()
    {
        var macs = EnergyEstimate.LayerMacs(Tiny, 16, 16);
        Assert.Equal(4L * 3 * 49 * 256, macs["downsample1_1.encode_conv.weight"]);      // 150,528
        Assert.Equal(8L * 4 * 256, macs["ConvBlock1_1.0.Conv.pwconv1.weight"]);         // 8,192
        Assert.Equal(8L * 49 * 256, macs["ConvBlock1_1.0.Conv.dwconv.weight"]);         // 100,352
        Assert.Equal(16L * 4 * 9 * 256, macs["ConvBlock1_1.0.conv1.weight"]);           // 147,456
        Assert.Equal(8L * 4 * 9 * 64, macs["downsample1_2.encode_conv.weight"]);        // 18,432
        Assert.Equal(16L * 8 * 9 * 16, macs["downsample2.encode_conv.weight"]);         // 18,432
        Assert.Equal(32L * 16 * 9 * 4, macs["downsample3.encode_conv.weight"]);         // 18,432
        Assert.Equal(32L * 32 * 4, macs["block3.0.attn.q_conv.0.body.0.weight"]);      // 4,096
        Assert.Equal(32L * 9 * 4, macs["block3.0.attn.q_conv.0.body.2.0.weight"]);     // 1,152
        Assert.Equal(128L * 32 * 4, macs["block3.0.mlp.fc1_conv.weight"]);              // 16,384
        Assert.Equal(40L * 32 * 9 * 4, macs["downsample4.encode_conv.weight"]);         // 46,080
        Assert.Equal(40L * 160 * 4, macs["block4.1.mlp.fc2_conv.weight"]);              // 25,600
        Assert.Equal(10L * 40, macs["head.weight"]);

        // Per block: ConvBlock(d) = (76d² + 98d)·HW, transformer block(d) = (16d² + 36d)·N.
        // 411,648 + 361,472 + 2·336,384 + 6·70,144 + 2·108,160 + downsampling 251,904 + head 400.
        Assert.Equal(2_335_376L, macs.Values.Sum());
        Assert.Equal(Tiny.Weights.Select(w => w.Key), macs.Keys);
    }

    [Fact]
    public void StrideTwoStemAndTinyInputs()
    {
        var layout = new Sdtv2Layout(Presets.Get("55M"));
        var macs = EnergyEstimate.LayerMacs(layout, 224, 224);
        Assert.Equal(64L * 3 * 49 * 112 * 112, macs["downsample1_1.encode_conv.weight"]);
        Assert.Equal(640L * 512 * 9 * 14 * 14, macs["downsample4.encode_conv.weight"]);
        Assert.Equal(2560L * 640 * 14 * 14, macs["block4.0.mlp.fc1_conv.weight"]);
        Assert.Equal(640L * 512 * 9, EnergyEstimate.LayerMacs(layout, 1, 1)["downsample4.encode_conv.weight"]); // padding keeps 1x1 alive
        Assert.Throws<QsvitException>(() => EnergyEstimate.LayerMacs(layout, 0, 224));
    }

    [Fact]
    public void EnergyByHand()
    {
        var macs = EnergyEstimate.LayerMacs(Tiny, 16, 16);
        var rates = Tiny.Weights.Where(w => !w.IsInputLayer).ToDictionary(w => w.Key, _ => 0.25);
        var e = EnergyEstimate.Compute(Tiny, macs, rates, QuantizationSetting.Uniform(8));

        // Compute: 150,528 MACs x 4.6 pJ once, plus (2,335,376 - 150,528) MACs x T=4 x 0.25 x 0.9 pJ.
        Assert.Equal(4, e.Timesteps);
        Assert.Equal(2.658792, e.ComputeUj, 9);
        // Memory: 226,756 weights at 8 bits and the head's 400 at 32, read once per timestep at 5 pJ per 32 bits.
        Assert.Equal(226_756 + 400, Tiny.Weights.Sum(w => w.Count));
        Assert.Equal(4 * (226_756 * 0.25 + 400) * 5 * 1e-6, e.MemoryUj, 12);
        Assert.Equal(e.ComputeUj + e.MemoryUj, e.TotalUj, 12);
        Assert.Equal(e.TotalUj, e.Blocks.Sum(b => b.TotalUj), 9);
        Assert.Equal(e.TotalUj, e.Units.Sum(b => b.TotalUj), 9);
        Assert.Equal([.. Sdtv2Layout.PaperUnits, Sdtv2Layout.Head], e.Units.Select(u => u.Name));

        var stem = e.Layers[0];
        Assert.Null(stem.InputFiringRate);
        Assert.Equal(150_528 * 4.6e-6, stem.ComputeUj, 12);

        // Fewer bits read less memory; silence costs only the input layer.
        var fp = EnergyEstimate.Compute(Tiny, macs, rates, QuantizationSetting.Uniform(32));
        Assert.Equal(e.ComputeUj, fp.ComputeUj, 12);
        Assert.Equal(4 * 227_156 * 5e-6, fp.MemoryUj, 12);
        var silent = EnergyEstimate.Compute(Tiny, macs, rates.ToDictionary(r => r.Key, _ => 0.0), QuantizationSetting.Uniform(8),
            new EnergyModel(MemReadPjPer32Bit: 0));
        Assert.Equal(150_528 * 4.6e-6, silent.TotalUj, 12);
    }

    [Fact]
    public void MissingInputsAreReported()
    {
        var macs = EnergyEstimate.LayerMacs(Tiny, 16, 16);
        var rates = Tiny.Weights.Where(w => !w.IsInputLayer).ToDictionary(w => w.Key, _ => 0.1);
        rates.Remove("block3.1.attn.k_conv.0.body.0.weight");
        var e = Assert.Throws<QsvitException>(() => EnergyEstimate.Compute(Tiny, macs, rates, QuantizationSetting.Uniform(8)));
        Assert.Contains("block3.1.attn.k_conv.0.body.0.weight", e.Message);
        rates["block3.1.attn.k_conv.0.body.0.weight"] = -1;
        Assert.Throws<QsvitException>(() => EnergyEstimate.Compute(Tiny, macs, rates, QuantizationSetting.Uniform(8)));
    }
}
