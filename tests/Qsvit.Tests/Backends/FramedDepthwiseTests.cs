using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Backends;

/// <summary>
/// The CPU backend's ConvPadded of a depthwise layer reads the border straight into its plane copies: the bits of Pad then
/// Conv, for fp32 and packed (dequantized) layers, with and without a bias and BNs, at 1 and 2 threads.
/// </summary>
public class FramedDepthwiseTests
{
    [Theory]
    [InlineData(8, 4, 4, false)]    // CIFAR's RepConv planes
    [InlineData(5, 8, 8, true)]
    [InlineData(3, 7, 5, true)]
    [InlineData(16, 1, 1, false)]
    public void EqualsPadThenConv(int channels, int height, int width, bool packed)
    {
        var rng = new Random(channels * 100 + height * 10 + width);
        var g = new ConvGeometry(channels, channels, 3, 3, 1, 1, 0, 0, channels);
        float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var weight = R(g.WeightLength);
        ConvWeightData data = packed
            ? new PackedConvWeights(PackedWeight.Quantize("w", weight, [channels, 1, 3, 3], 4, QuantizerSpec.Paper))
            : new DenseConvWeights(weight);
        var spec = new ConvLayerSpec(g, data, packed ? [] : R(channels), [new ChannelAffine(R(channels), R(channels))]);
        const int frames = 3;
        foreach (int threads in new[] { 1, 2 })
        {
            using var backend = new CpuBackend(new ComputeOptions { Threads = threads });
            using var layer = backend.CreateConv(spec);
            var input = backend.Allocate((long)frames * channels * height * width);
            var border = backend.Allocate(channels);
            backend.Upload(R(frames * channels * height * width), input);
            backend.Upload(R(channels), border);
            long length = (long)frames * channels * height * width;
            var expected = new float[length];
            var padded = backend.Allocate((long)frames * channels * (height + 2) * (width + 2));
            var reference = backend.Allocate(length);
            backend.Pad(input, frames, channels, height, width, 1, border, padded);
            backend.Conv(layer, padded, frames, height + 2, width + 2, reference);
            backend.Download(reference, 0, expected);
            var framed = backend.Allocate(length);
            backend.ConvPadded(layer, input, frames, height, width, 1, border, framed);
            var actual = new float[length];
            backend.Download(framed, 0, actual);
            for (int i = 0; i < length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                    $"{threads}T packed={packed}: element {i} is {actual[i]}, expected {expected[i]}");
        }
    }
}
