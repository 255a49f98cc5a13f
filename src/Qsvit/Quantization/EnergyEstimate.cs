using Qsvit.Models;

namespace Qsvit.Quantization;

/// <summary>
/// Energy constants in picojoules. E_AC and E_MAC are the 45 nm float32 add and multiply-add figures (Horowitz, ISSCC 2014)
/// that the Spikformer / Spike-driven Transformer papers use. The weight read cost is Horowitz's ~5 pJ for a 32-bit word from
/// an 8 KB SRAM (10 pJ per 64 bits), scaled linearly with the stored bit width.
/// </summary>
public sealed record EnergyModel(double EacPj = 0.9, double EmacPj = 4.6, double MemReadPjPer32Bit = 5.0);

/// <summary>Energy of one conv/linear layer for one image. <see cref="InputFiringRate"/> is null for the real-valued input layer.</summary>
public sealed record LayerEnergy(string Key, string Block, string Unit, int Bits, long MacsPerTimestep, double? InputFiringRate,
    double Operations, double ComputeUj, double MemoryUj)
{
    public double TotalUj => ComputeUj + MemoryUj;
}

/// <summary>Energy of a block or unit for one image.</summary>
public sealed record EnergyEntry(string Name, double ComputeUj, double MemoryUj)
{
    public double TotalUj => ComputeUj + MemoryUj;
}

/// <summary>
/// A theoretical per-image energy ESTIMATE, not a measurement, in the convention of the spike-driven transformer papers:
/// E = E_MAC · FLOPs(input layer) + E_AC · Σ SOPs(other layers), where a layer's SOPs = dense MACs per timestep · T · the firing
/// rate of its input spikes (non-zero fraction of the input spike tensor over all timesteps). The input layer's FLOPs are
/// counted once: the static image is the same at every timestep. To that it adds weight-memory reads: every conv/linear weight
/// read once per timestep at its bit width. Only conv/linear layers are counted (attention's spike products, BatchNorm,
/// neurons and biases are not), and every non-input layer is charged as spike-driven with the rate the caller gives.
/// </summary>
public sealed record EnergyEstimate(IReadOnlyList<LayerEnergy> Layers, IReadOnlyList<EnergyEntry> Blocks, IReadOnlyList<EnergyEntry> Units,
    int Timesteps, EnergyModel Model)
{
    public const string Caveat = "theoretical estimate (45 nm E_AC/E_MAC, SRAM weight reads), not a measurement";

    public double ComputeUj => Layers.Sum(l => l.ComputeUj);
    public double MemoryUj => Layers.Sum(l => l.MemoryUj);
    public double TotalUj => ComputeUj + MemoryUj;

    /// <summary>
    /// Dense MACs per timestep of every conv/linear weight of <paramref name="layout"/> (layout order) for an
    /// <paramref name="imageHeight"/> x <paramref name="imageWidth"/> input: weight elements (Cout·Cin/groups·kH·kW) times output
    /// positions. Resolutions follow the official model: the 7x7 stem at the configured stride with pad 3, downsample1_2, 2 and 3
    /// at stride 2 pad 1, downsample4 at stride 1; every other conv keeps its block's resolution (SepConv's 7x7 depthwise pads 3,
    /// ConvBlock's 3x3 convs pad 1). In RepConv the BatchNorm pads after the 1x1 conv, so the 1x1 runs on HxW and the valid
    /// 3x3 depthwise conv on the (H+2)x(W+2) padded map yields HxW outputs, as does the final 1x1. MLP layers run on N = H·W
    /// tokens; the head runs once per timestep on the pooled features.
    /// </summary>
    public static IReadOnlyDictionary<string, long> LayerMacs(Sdtv2Layout layout, int imageHeight, int imageWidth)
    {
        if (imageHeight < 1 || imageWidth < 1) throw new QsvitException($"input size {imageHeight}x{imageWidth} must be positive");
        var c = layout.Config;
        // Every conv here has pad >= (k - 1) / 2, so no map shrinks below 1x1.
        static (int H, int W) Down((int H, int W) x, int k, int stride, int pad) =>
            ((x.H + 2 * pad - k) / stride + 1, (x.W + 2 * pad - k) / stride + 1);

        var s11 = Down((imageHeight, imageWidth), 7, c.StemStride, 3);
        var s12 = Down(s11, 3, 2, 1);
        var s2 = Down(s12, 3, 2, 1);
        var s3 = Down(s2, 3, 2, 1);
        var s4 = Down(s3, 3, 1, 1);
        var positions = new Dictionary<string, long>(StringComparer.Ordinal)
        {
            ["DS_S1_B1"] = Area(s11), ["CONV_S1_B1"] = Area(s11),
            ["DS_S1_B2"] = Area(s12), ["CONV_S1_B2"] = Area(s12),
            ["DS_S2"] = Area(s2), ["CONV_S2_B1"] = Area(s2), ["CONV_S2_B2"] = Area(s2),
            ["DS_S3"] = Area(s3), ["TRAN_S3"] = Area(s3),
            ["DS_S4"] = Area(s4), ["TRAN_S4"] = Area(s4),
            [Sdtv2Layout.Head] = 1,
        };
        return layout.Weights.ToDictionary(w => w.Key, w => w.Count * positions[w.Unit], StringComparer.Ordinal);

        static long Area((int H, int W) s) => (long)s.H * s.W;
    }

    /// <summary>
    /// Estimates per-image energy under <paramref name="setting"/> from dense MACs per timestep (e.g. <see cref="LayerMacs"/>) and
    /// the measured input firing rate of every non-input weight layer, both keyed by weight key.
    /// </summary>
    public static EnergyEstimate Compute(Sdtv2Layout layout, IReadOnlyDictionary<string, long> macsPerTimestep,
        IReadOnlyDictionary<string, double> inputFiringRates, QuantizationSetting setting, EnergyModel? model = null)
    {
        model ??= new EnergyModel();
        setting.Validate(layout);
        int T = layout.Config.Timesteps;
        const double PjToUj = 1e-6;
        var layers = new List<LayerEnergy>(layout.Weights.Count);
        foreach (var w in layout.Weights)
        {
            if (!macsPerTimestep.TryGetValue(w.Key, out long macs) || macs < 0)
                throw new QsvitException($"no MAC count for '{w.Key}' ({w.Label})");
            int bits = setting.BitsFor(w);
            double memory = T * (double)w.Count * bits / 32 * model.MemReadPjPer32Bit * PjToUj;
            if (w.IsInputLayer)
            {
                layers.Add(new LayerEnergy(w.Key, w.Block, w.Unit, bits, macs, null, macs, macs * model.EmacPj * PjToUj, memory));
                continue;
            }
            if (!inputFiringRates.TryGetValue(w.Key, out double rate))
                throw new QsvitException($"no input firing rate for '{w.Key}' ({w.Label})");
            if (!double.IsFinite(rate) || rate < 0)
                throw new QsvitException($"input firing rate {rate} for '{w.Key}' must be a finite non-negative number");
            double sops = (double)macs * T * rate;
            layers.Add(new LayerEnergy(w.Key, w.Block, w.Unit, bits, macs, rate, sops, sops * model.EacPj * PjToUj, memory));
        }

        var blocks = layers.GroupBy(l => l.Block).Select(g => new EnergyEntry(g.Key, g.Sum(l => l.ComputeUj), g.Sum(l => l.MemoryUj))).ToArray();
        var units = layers.GroupBy(l => l.Unit).Select(g => new EnergyEntry(g.Key, g.Sum(l => l.ComputeUj), g.Sum(l => l.MemoryUj))).ToArray();
        return new EnergyEstimate(layers, blocks, units, T, model);
    }
}

/// <summary>Energy ESTIMATES of fp32 and a quantized setting from firing rates measured on <see cref="Images"/> images of <see cref="Split"/>.</summary>
public sealed record EnergyComparison(string Split, int Images, EnergyEstimate Fp32, EnergyEstimate Quantized)
{
    public double SavingPercent => Fp32.TotalUj == 0 ? 0 : 100 * (1 - Quantized.TotalUj / Fp32.TotalUj);
}
