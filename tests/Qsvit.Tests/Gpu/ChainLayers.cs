using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>Integer spike-input layers, spike maps and one ConvLifConv run for the fused-chain tests (the MLP's 1×1 chain, ConvBlock's 3×3 chain); the spike maps for the spike GEMM tests too.</summary>
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

    /// <summary>ConvLifConv on <paramref name="backend"/> (asserting whether it runs as one fused engine): the output, and what the spikes buffer (NaN before) holds after it.</summary>
    public static (float[] Output, float[] Spikes) Run(CudaBackend backend, ConvLayerSpec spec1, ConvLayerSpec spec2, float[] input, int h, int w,
        int timesteps, int batch, bool fused, LifRecorder? recorder = null)
    {
        using var first = backend.CreateConv(spec1);
        using var second = backend.CreateConv(spec2);
        Assert.Equal(fused, backend.ConvLifConvEngine(first, second, timesteps * batch, h, w, timesteps, recorder) is not null);
        int frames = timesteps * batch, hiddenLength = frames * spec1.Geometry.OutChannels * h * w, outLength = frames * spec2.Geometry.OutChannels * h * w;
        int mark = backend.Mark();
        var x = backend.Rent(input.Length);
        backend.Upload(input, x);
        var pre = backend.Rent(hiddenLength);
        var spikes = backend.Rent(hiddenLength);
        backend.Upload(Enumerable.Repeat(float.NaN, hiddenLength).ToArray(), spikes);
        var y = backend.Rent(outLength);
        backend.Upload(Enumerable.Repeat(float.NaN, outLength).ToArray(), y);
        backend.ConvLifConv(first, x, frames, h, w, pre, spikes, timesteps, 0.4f, 1, recorder, second, y);
        var output = new float[outLength];
        var hidden = new float[hiddenLength];
        backend.Download(y, 0, output);
        backend.Download(spikes, 0, hidden);
        backend.Release(mark);
        return (output, hidden);
    }
}
