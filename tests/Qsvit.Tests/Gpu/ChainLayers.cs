using Qsvit.Backends;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>Integer spike-input layers and spike maps for the fused-chain tests (the MLP's 1×1 chain, ConvBlock's 3×3 chain) and the spike GEMM tests.</summary>
internal static class ChainLayers
{
    /// <summary>conv1 (with a BN, before the LIF) and conv2 of a chain of <paramref name="kernel"/>×<paramref name="kernel"/> stride-1 layers, padded to keep the map.</summary>
    public static (ConvLayerSpec First, ConvLayerSpec Second) Of(int kernel, int cin, int hidden, int cout, int bits, string quantizer, bool dense = false) =>
        (Layer(kernel, cin, hidden, bits, quantizer, dense, bn: true), Layer(kernel, hidden, cout, bits, quantizer, dense, bn: false));

    /// <summary>Codes of random weights (seeded by the shape and bits), or their dequantized fp32 weights where <paramref name="dense"/>; a bias, and a BN where asked.</summary>
    public static ConvLayerSpec Layer(int kernel, int cin, int cout, int bits, string quantizer, bool dense, bool bn)
    {
        int pad = kernel / 2;
        var g = new ConvGeometry(cin, cout, kernel, kernel, 1, 1, pad, pad);
        var rng = new Random(cin * 31 + cout * 7 + bits);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [cout, cin, kernel, kernel], bits, QuantizerSpec.Parse(quantizer));
        var bias = Enumerable.Range(0, cout).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var affine = new ChannelAffine(bias.Select(b => b + 1.5f).ToArray(), bias.Select(b => 0.1f * b).ToArray());
        ConvWeightData weights = dense ? new DenseConvWeights(codes.Dequantize()) : new PackedConvWeights(codes);
        return new ConvLayerSpec(g, weights, bias, bn ? [affine] : []) { SpikeInput = true };
    }

    /// <summary>A spike map with about one neuron in three firing.</summary>
    public static float[] Spikes(Random rng, int length) => Enumerable.Range(0, length).Select(_ => rng.Next(3) == 0 ? 1f : 0f).ToArray();
}
