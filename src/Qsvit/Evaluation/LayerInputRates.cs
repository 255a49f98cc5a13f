using Qsvit.Models;

namespace Qsvit.Evaluation;

/// <summary>
/// The input firing rate of every non-input conv/linear weight, from the LIF rates of an evaluation, for
/// <see cref="Quantization.EnergyEstimate.Compute"/>. A weight is charged with the rate of the LIF layer that feeds its
/// module: downsampling convs their encode_lif; SepConv pwconv1 Conv.lif1, its dwconv and pwconv2 Conv.lif2; conv1/conv2
/// lif1/lif2; the q/k/v RepConvs head_lif, proj attn_lif; the MLP fc1_lif/fc2_lif; the heads the final lif. The layers
/// inside SepConv and RepConv after the first read real values, not spikes, so charging them the module's spike rate is
/// the estimate's simplification.
/// </summary>
public static class LayerInputRates
{
    public static IReadOnlyDictionary<string, double> FromLif(Sdtv2Layout layout, IReadOnlyList<LifRate> rates)
    {
        var byName = rates.ToDictionary(r => r.Name, r => r.Rate, StringComparer.Ordinal);
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var w in layout.Weights.Where(w => !w.IsInputLayer))
        {
            var lif = FeedingLif(w.Key);
            result[w.Key] = byName.TryGetValue(lif, out double rate) ? rate
                : throw new QsvitException($"no firing rate for LIF layer '{lif}' feeding '{w.Key}' ({w.Label})");
        }
        return result;
    }

    /// <summary>The module path of the LIF layer whose spikes enter the module owning <paramref name="weightKey"/>.</summary>
    public static string FeedingLif(string weightKey)
    {
        if (weightKey.StartsWith("head", StringComparison.Ordinal)) return "lif";
        if (weightKey.StartsWith("downsample", StringComparison.Ordinal))
            return weightKey[..weightKey.IndexOf('.')] + ".encode_lif";
        string[] parts = weightKey.Split('.');
        string block = $"{parts[0]}.{parts[1]}";
        if (parts[0].StartsWith("ConvBlock", StringComparison.Ordinal))
            return parts[2] switch
            {
                "Conv" => block + (parts[3] == "pwconv1" ? ".Conv.lif1" : ".Conv.lif2"),
                "conv1" => block + ".lif1",
                "conv2" => block + ".lif2",
                _ => throw new QsvitException($"'{weightKey}' is not a ConvBlock weight"),
            };
        return parts[3] switch
        {
            "q_conv" or "k_conv" or "v_conv" => block + ".attn.head_lif",
            "proj_conv" => block + ".attn.attn_lif",
            "fc1_conv" => block + ".mlp.fc1_lif",
            "fc2_conv" => block + ".mlp.fc2_lif",
            _ => throw new QsvitException($"'{weightKey}' is not a transformer block weight"),
        };
    }
}
