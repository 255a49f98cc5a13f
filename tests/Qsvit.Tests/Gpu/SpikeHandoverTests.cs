using ILGPU;
using ILGPU.Runtime;
using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tests.Tensors;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// Spikes a LIF hands to the layer that reads them next as that layer's packed int8 input
/// (<see cref="SpikeGemmOps.LifHandover"/>, <see cref="SpikeReader"/>), on ILGPU's CPU accelerator: the bytes against a
/// host LIF and packing, the reading layer's output against the LIF's fp32 spikes read as floats on every engine and chunking,
/// and each backend op a LIF may name as the reader with the handover on and off.
/// </summary>
/// <summary>The CPU accelerator with CUDA-sized groups: the handover kernel's groups are four warps of 32.</summary>
public sealed class HandoverAcceleratorFixture() : CpuAcceleratorFixture(CudaBackend.OnCpuAcceleratorWithWarps());

public sealed class SpikeHandoverTests(HandoverAcceleratorFixture gpu) : IClassFixture<HandoverAcceleratorFixture>
{
    private const float Threshold = 0.4f;

    /// <summary>
    /// The kernel writes the LIF's spikes as the reading layer's packed pixels (zero past its input channels), frames in
    /// frame order or in the order of chunks of whole images (a last chunk with fewer), and x the residual add's sums,
    /// the LIF kernel's values bit for bit.
    /// </summary>
    [Theory]
    [InlineData(20, 4, 4, 2, 3, 0, true)]     // Cp 32: a word past the channels (a group's last words), frame order, the residual add
    [InlineData(20, 4, 4, 2, 3, 2, true)]     // chunks of 2 images: the last one holds 1
    [InlineData(64, 2, 6, 4, 2, 1, false)]    // the LIF alone, one image a chunk, four groups of channels
    [InlineData(33, 8, 6, 3, 5, 2, true)]     // channels not a multiple of 4, odd T, a partial last group of quads
    public void LifHandoverWritesTheLifsSpikesPacked(int channels, int h, int w, int timesteps, int batch, int chunkImages, bool add)
    {
        var acc = gpu.Device.Accelerator;
        int frames = timesteps * batch, hw = h * w, length = frames * channels * hw;
        var rng = new Random(channels * 100 + hw + chunkImages);
        var x = Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 1.6 - 0.4)).ToArray();
        var y = Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        using var layer = Layer(new ConvGeometry(channels, 8, 3, 3, 1, 1, 1, 1), acc);
        var ops = new SpikeGemmOps(acc, null, SpikeInputGemm.TensorCoresImplicit);
        var form = new SpikeHandover(layer, frames, h, w, chunkImages);
        using var xs = acc.Allocate1D(x);
        using var ys = acc.Allocate1D(y);
        using var packed = acc.Allocate1D(Enumerable.Repeat(float.NaN, length).ToArray()); // every byte must be written
        ops.LifHandover(xs.View, ys.View, add, packed.View, form, timesteps, Threshold);
        acc.Synchronize();

        // Host reference: the add rounded once, the LIF kernel's steps, then the packer's bytes in the chunks' frame order.
        var sums = add ? x.Zip(y, (a, b) => a + b).ToArray() : x;
        var spikes = new float[length];
        int perStep = length / timesteps;
        for (int n = 0; n < perStep; n++)
        {
            float v = 0f;
            for (int t = 0; t < timesteps; t++)
            {
                float hh = v + (sums[t * perStep + n] - v) * 0.5f;
                bool fire = hh >= Threshold;
                spikes[t * perStep + n] = fire ? 1f : 0f;
                v = fire ? 0f : hh;
            }
        }
        int cp = layer.Cp, per = chunkImages > 0 ? chunkImages : batch;
        var want = new sbyte[frames * hw * cp];
        for (int b = 0; b < batch; b++)
        for (int t = 0; t < timesteps; t++)
        {
            int chunk = b / per, items = Math.Min(per, batch - chunk * per), row = chunk * per * timesteps + t * items + b - chunk * per;
            for (int pix = 0; pix < hw; pix++)
            for (int c = 0; c < channels; c++)
                want[(row * hw + pix) * cp + c] = (sbyte)spikes[((t * batch + b) * channels + c) * hw + pix];
        }
        var bytes = new sbyte[want.Length];
        Buffer.BlockCopy(packed.GetAsArray1D(), 0, bytes, 0, bytes.Length);
        Assert.Equal(want, bytes);
        Assert.Equal(sums, xs.GetAsArray1D());
        Assert.InRange(spikes.Count(s => s != 0), length / 10, length * 9 / 10);
    }

    public static TheoryData<ConvGeometry, int, int, int, int, SpikeInputGemm> ReadingLayers => new()
    {
        // geometry, h, w, images a chunk under the LIF (0: the layer without a LIF, chunks of 4 frames), T, engine
        { new ConvGeometry(20, 12, 3, 3, 1, 1, 1, 1), 4, 4, 2, 2, SpikeInputGemm.TensorCoresIm2col },
        { new ConvGeometry(20, 12, 3, 3, 1, 1, 1, 1), 4, 4, 0, 2, SpikeInputGemm.TensorCoresIm2col },
        { new ConvGeometry(16, 24, 3, 3, 2, 2, 1, 1), 6, 6, 0, 4, SpikeInputGemm.TensorCoresImplicit },    // a downsampling conv
        { new ConvGeometry(21, 9, 3, 3, 1, 1, 1, 1), 4, 6, 1, 3, SpikeInputGemm.TensorCoresPipelined },
        { new ConvGeometry(40, 130, 3, 3, 1, 1, 1, 1), 8, 4, 2, 2, SpikeInputGemm.TensorCoresWgmma },     // two row blocks, last chunk of 1
        { new ConvGeometry(24, 48, 1, 1), 3, 4, 2, 4, SpikeInputGemm.TensorCoresPointwiseCublas },        // a 1×1 reads its columns packed
        { new ConvGeometry(24, 48, 1, 1), 3, 4, 0, 4, SpikeInputGemm.TensorCoresPointwiseCublas },
    };

    /// <summary>
    /// A layer reading spikes handed over packed (Conv with inputPacked, under its LIF or not, in chunks) writes what it
    /// writes from the LIF's fp32 spikes, bit for bit, on every engine that packs its input.
    /// </summary>
    [Theory]
    [MemberData(nameof(ReadingLayers))]
    public void LayerOnHandedOverSpikesEqualsTheLayerOnTheLifsSpikes(ConvGeometry g, int h, int w, int chunkImages, int timesteps, SpikeInputGemm mode)
    {
        const int batch = 3;
        int frames = timesteps * batch, length = frames * g.InChannels * h * w;
        bool lif = chunkImages > 0;
        var rng = new Random(g.GetHashCode() + chunkImages);
        using var layer = Layer(g);
        var ops = new SpikeGemmOps(gpu.Device.Accelerator, null, mode);
        Assert.True(ops.TakesHandover(layer, frames, h, w, lif ? timesteps : 0));
        int chunk = lif ? chunkImages * timesteps : 4;
        var (_, columnFloats, sumFloats) = SpikeGemmOps.Plan(layer, frames, h, w, 1L << 30, implicitGemm: ops.Implicit(layer, h, w, lif));
        var x = Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 1.6 - 0.4)).ToArray();
        var y = Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        long outLength = (long)frames * g.OutChannels * g.OutH(h) * g.OutW(w);
        using var cols = gpu.Zeros(columnFloats);
        using var sums = gpu.Zeros(sumFloats);

        float[] Run(bool handover)
        {
            using var xs = gpu.Upload(x);
            using var ys = gpu.Upload(y);
            using var spikes = gpu.Zeros(length);
            using var output = gpu.Upload(Enumerable.Repeat(float.NaN, (int)outLength).ToArray());
            if (handover) ops.LifHandover(xs.View, ys.View, add: true, spikes.View, new SpikeHandover(layer, frames, h, w, lif ? chunkImages : 0), timesteps, Threshold);
            else gpu.Ops.AddLif(xs.View, ys.View, spikes.View, length, timesteps, Threshold);
            ops.Conv(layer, spikes.View, frames, h, w, output.View, cols.View, sums.View, chunk, lif ? timesteps : 0, Threshold, inputPacked: handover);
            return output.GetAsArray1D();
        }

        var expected = Run(handover: false);
        Assert.Equal(expected, Run(handover: true));
        if (lif) Assert.InRange(expected.Count(v => v != 0), outLength / 20, outLength * 19 / 20);
    }

    public enum Reader { Conv, ConvLif, ConvLifConv, RepConvs }

    /// <summary>
    /// Each op a LIF may name as its spikes' reader takes them handed over (the residual add + LIF writing them packed, the
    /// op packing nothing) and writes what it writes from the fp32 spikes of the same LIF without a reader, bit for bit:
    /// a conv, ConvLif, ConvLifConv with the hidden spikes handed over packed too (the chain unfused), and attention's
    /// q, k and v (RepConvs packing once, depthwise-split path).
    /// </summary>
    [Theory]
    [InlineData(Reader.Conv)]
    [InlineData(Reader.ConvLif)]
    [InlineData(Reader.ConvLifConv)]
    [InlineData(Reader.RepConvs)]
    public void ReadersTakeTheSpikesTheLifHandsOver(Reader reader)
    {
        // RepConvs' real 1×1s take 128 channels or more: one image there (the CPU accelerator's groups of 128 threads are slow).
        int timesteps = 2, batch = reader == Reader.RepConvs ? 1 : 2, frames = timesteps * batch;
        using var own = reader switch
        {
            Reader.ConvLifConv => CudaBackend.OnCpuAcceleratorWithWarps(SpikeInputGemm.TensorCoresUnchained),
            Reader.RepConvs => CudaBackend.OnCpuAcceleratorWithWarps(SpikeInputGemm.TensorCoresPointwiseCublas, split: true), // first 1×1s on packed columns
            _ => null,
        };
        var backend = own ?? gpu.Backend;
        var rng = new Random(17 + (int)reader);
        int channels = reader == Reader.RepConvs ? 128 : 16, h = 8, w = reader == Reader.RepConvs ? 8 : 4, length = frames * channels * h * w;
        var layers = new List<ConvLayer>();
        ConvLayer Create(ConvLayerSpec spec)
        {
            var layer = backend.CreateConv(spec);
            layers.Add(layer);
            return layer;
        }
        var (first, second) = ChainLayers.Of(3, channels, 24, 16, 4, "paper");
        var a = Create(first);
        var b = reader == Reader.ConvLifConv ? Create(second) : null;
        var convs = new RepConvLayers[3];
        if (reader == Reader.RepConvs)
        {
            for (int i = 0; i < 3; i++)
            {
                var (f, d, q) = DepthwiseSplitTests.Layers(rng, channels, 4, biases: true, bns: 1, pointwiseCodes: true);
                var pad = backend.Allocate(channels);
                backend.Upload(TestData.Random(rng, channels), pad);
                convs[i] = new RepConvLayers(Create(f), pad, Create(d), Create(q));
            }
            Assert.True(backend.SharesPacking(convs, frames, h, w));
        }
        var spikeReader = reader switch
        {
            Reader.Conv => SpikeReader.Conv(a, frames, h, w),
            Reader.ConvLif => SpikeReader.ConvLif(a, frames, h, w),
            Reader.ConvLifConv => SpikeReader.ConvLifConv(a, b!, frames, h, w),
            _ => SpikeReader.RepConvs(convs, frames, h, w),
        };
        var x = Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() * 1.6 - 0.4)).ToArray();
        var y = Enumerable.Range(0, length).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        int outLength = frames * (reader == Reader.RepConvs ? channels : 24) * h * w;

        float[][] Run(bool handover)
        {
            backend.HandsOverSpikes = handover;
            int before = backend.Handovers, mark = backend.Mark();
            var xs = backend.Rent(length);
            var ys = backend.Rent(length);
            var spikes = backend.Rent(length);
            backend.Upload(x, xs);
            backend.Upload(y, ys);
            var outputs = Enumerable.Range(0, 3).Select(_ => backend.Rent(outLength)).ToArray();
            foreach (var o in outputs) backend.Upload(Enumerable.Repeat(float.NaN, outLength).ToArray(), o);
            var pre = backend.Rent(outLength);
            backend.AddLif(xs, ys, length, spikes, timesteps, Threshold, null, 0, spikeReader);
            switch (reader)
            {
                case Reader.Conv: backend.Conv(a, spikes, frames, h, w, outputs[0]); break;
                case Reader.ConvLif: backend.ConvLif(a, spikes, frames, h, w, pre, outputs[0], timesteps, Threshold, 1, null); break;
                case Reader.ConvLifConv: backend.ConvLifConv(a, spikes, frames, h, w, pre, outputs[1], timesteps, Threshold, 1, null, b!, outputs[0]); break;
                default: ((IBackend)backend).RepConvs(convs, spikes, frames, h, w, outputs); break;
            }
            Assert.Equal(handover ? before + 1 : before, backend.Handovers);
            var result = new float[reader == Reader.RepConvs ? 4 : 2][];
            for (int i = 0; i < result.Length - 1; i++) backend.Download(outputs[i], 0, result[i] = new float[outLength]);
            backend.Download(xs, 0, result[^1] = new float[length]);
            backend.Release(mark);
            return result;
        }

        try
        {
            var expected = Run(handover: false);
            var actual = Run(handover: true);
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i]);
            Assert.Contains(expected[0], v => v != 0 && !float.IsNaN(v));
        }
        finally
        {
            backend.HandsOverSpikes = true;
            foreach (var layer in layers) layer.Dispose();
            foreach (var c in convs.Where(c => c.PadValues is not null)) c.PadValues.Dispose();
        }
    }

    /// <summary>An accelerator whose groups cannot hold the kernel's four warps hands nothing over: its layers read floats.</summary>
    [Fact]
    public void SmallGroupsHandNothingOver()
    {
        using var backend = CudaBackend.OnCpuAccelerator(SpikeInputGemm.TensorCoresImplicit, split: false);
        Assert.True(backend.GpuDevice.Accelerator.MaxNumThreadsPerGroup < SpikeGemmKernels.HandoverGroup);
        var (first, _) = ChainLayers.Of(3, 16, 16, 16, 4, "paper");
        using var layer = (CudaConvLayer)backend.CreateConv(first);
        Assert.False(backend.SpikeOps!.TakesHandover(layer.Spike!, 4, 4, 4, 0));
    }

    /// <summary>A spike reader of RepConvs needs a conv; an AddLif whose length disagrees with its reader's map is refused.</summary>
    [Fact]
    public void ReadersThatDisagreeWithTheLifAreRefused()
    {
        Assert.Throws<ArgumentException>(() => SpikeReader.RepConvs([], 4, 4, 4));
        var backend = gpu.Backend;
        var (first, _) = ChainLayers.Of(3, 16, 16, 16, 4, "paper");
        using var layer = backend.CreateConv(first);
        int mark = backend.Mark();
        var x = backend.Rent(2 * 16 * 16);
        var spikes = backend.Rent(2 * 16 * 16);
        var e = Assert.Throws<ArgumentException>(() => backend.Lif(x, spikes, 2 * 16 * 16, 2, Threshold, null, 0, SpikeReader.Conv(layer, 2, 4, 8)));
        Assert.Contains("cannot feed", e.Message);
        backend.Release(mark);
    }

    /// <summary>An integer spike-input layer of 4-bit codes with a bias and a BN (seeded by its shape).</summary>
    private GpuSpikeConv Layer(ConvGeometry g, Accelerator? acc = null)
    {
        var rng = new Random(g.InChannels * 31 + g.OutChannels);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var bn = new ChannelAffine(bias.Select(b => b + 1.5f).ToArray(), bias.Select(b => 0.1f * b).ToArray());
        return new GpuSpikeConv(acc ?? gpu.Device.Accelerator, new ConvLayerSpec(g, new DenseConvWeights(weight), bias, [bn]) { SpikeInput = true },
            PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], 4, QuantizerSpec.Paper));
    }
}
