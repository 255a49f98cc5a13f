using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Tests.Quantization;

public class MemoryFootprintTests
{
    private static readonly Sdtv2Layout Model55M = new(Presets.Get("metaspikformer_8_512"));

    [Fact]
    public void Fp32MatchesThePaper()
    {
        var m = MemoryFootprint.Compute(Model55M, QuantizationSetting.Uniform(32));
        Assert.Equal(221_400_992L, m.Fp32Bytes);
        Assert.Equal(221_400_992L, m.Bytes);
        Assert.Equal(211.14, Math.Round(m.MiB, 2));
        Assert.Equal(0, m.SavingPercent);
        Assert.Equal(Model55M.LearnedParameterCount, m.Blocks.Sum(b => b.Parameters));
    }

    [Fact]
    public void PaperSettingMatchesThePaper()
    {
        var m = MemoryFootprint.Compute(Model55M, QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32"));
        Assert.Equal(170_896_544L, m.Bytes);
        Assert.Equal(162.98, Math.Round(m.MiB, 2));
        Assert.Equal(22.81, Math.Round(m.SavingPercent, 2));
        Assert.Equal(221_400_992L, m.Fp32Bytes);

        // Units: the paper's 11 plus the head; TRAN_S3 sums its six blocks and, at 32 bits, saves nothing.
        Assert.Equal([.. Sdtv2Layout.PaperUnits, Sdtv2Layout.Head], m.Units.Select(u => u.Name));
        var tran3 = m.Units.Single(u => u.Name == "TRAN_S3");
        Assert.Equal(m.Blocks.Where(b => b.Name.StartsWith("TRAN_S3_")).Sum(b => b.Bits), tran3.Bits);
        Assert.Equal(0, tran3.SavingPercent);
        Assert.Equal(m.Bits, m.Units.Sum(u => u.Bits));
        Assert.Equal(m.Bits / 8.0 / (1 << 20), m.Units.Sum(u => u.MiB), 9);
    }

    [Fact]
    public void ExactModeAddsScalesAndZeroPoints()
    {
        var setting = QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32");
        var paper = MemoryFootprint.Compute(Model55M, setting);
        var quantized = Model55M.Weights.Where(w => setting.BitsFor(w) < 32).ToArray();
        Assert.Equal(25, quantized.Length); // 5 downsampling convs + 4 conv blocks x 5 convs

        var perTensor = MemoryFootprint.Compute(Model55M, setting, QuantizerSpec.Paper);
        Assert.Equal(paper.Bits + 25 * 32, perTensor.Bits);
        Assert.Equal(paper.Bytes + 100, perTensor.Bytes);

        long channels = quantized.Sum(w => (long)w.OutChannels);
        var perChannel = MemoryFootprint.Compute(Model55M, setting, QuantizerSpec.Parse("symmetric-channel-mse"));
        Assert.Equal(paper.Bits + 32 * channels, perChannel.Bits);

        var asym = MemoryFootprint.Compute(Model55M, setting, QuantizerSpec.Parse("asymmetric-channel"));
        Assert.Equal(paper.Bits + 32 * channels + quantized.Sum(w => (long)w.OutChannels * setting.BitsFor(w)), asym.Bits);
    }

    [Fact]
    public void BitsAreRoundedToBytesOnlyAtTheTotal()
    {
        // One 3-bit stem weight of 3x3x7x7 x 4 = 1764 elements: 5292 bits = 661.5 bytes in its block.
        var layout = new Sdtv2Layout(new Sdtv2Config { EmbedDim = [8, 16, 32, 48], NumClasses = 10 });
        var fp = MemoryFootprint.Compute(layout, QuantizationSetting.Uniform(32));
        var setting = QuantizationSetting.Uniform(32).With("DS_S1_B1", 3);
        var m = MemoryFootprint.Compute(layout, setting);
        var stem = m.Blocks.Single(b => b.Name == "DS_S1_B1");
        Assert.Equal(588 * 3 + 4 * 32 * 3, stem.Bits); // weight [4,3,7,7], bias and BN weight/bias at 32 bits
        Assert.Equal(fp.Bits - 588 * 29, m.Bits);
        Assert.Equal((m.Bits + 7) / 8, m.Bytes);
        Assert.Equal(220.5 + 48, stem.Bytes);
    }
}
