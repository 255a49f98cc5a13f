using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Models;

namespace Qsvit.Tests.Backends;

/// <summary>
/// The model keeps <see cref="SpikeReader"/>'s contract: where it names the op that reads a LIF's spikes next, that op is
/// the next call on the backend, over those spikes, with those layers and that map (a backend may have written the spikes
/// in that op's own form). Checked by a decorator on the CPU backend over whole passes of the parity model.
/// </summary>
public sealed class SpikeReaderContractTests
{
    [Fact]
    public void EveryNamedReaderIsTheNextOpOnTheSpikes()
    {
        const int size = 32, batch = 2;
        var (packed, images) = Fixtures.QuantizedParity(timesteps: 2, batch, size, seed: 9);
        var contract = new ReaderContract(new CpuBackend());
        using var model = new Sdtv2Model(packed, backend: contract);
        var logits = model.Forward(images, batch, size, size);
        contract.AssertNothingPending();
        Assert.Equal([SpikeReaderOp.Conv, SpikeReaderOp.ConvLif, SpikeReaderOp.ConvLifConv, SpikeReaderOp.RepConvs], contract.Taken.Distinct().Order());
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>Fails any call but the named reader while one is pending; records the readers taken.</summary>
    private sealed class ReaderContract(IBackend inner) : ForwardingBackend(inner)
    {
        private (DeviceBuffer Spikes, SpikeReader Reader)? _pending;
        public readonly List<SpikeReaderOp> Taken = [];

        public void AssertNothingPending() => Assert.True(_pending is null, $"{_pending?.Reader.Op} named as the reader never ran");

        private void Take(SpikeReaderOp op, ConvLayer layer, DeviceBuffer input, int frames, int height, int width, Func<SpikeReader, bool>? more = null)
        {
            if (_pending is not { } p) return;
            _pending = null;
            Assert.Same(p.Spikes, input);
            Assert.Equal(p.Reader.Op, op);
            Assert.Same(p.Reader.Layer, layer);
            Assert.Equal((p.Reader.Frames, p.Reader.Height, p.Reader.Width), (frames, height, width));
            Assert.True(more?.Invoke(p.Reader) ?? true, $"{op}'s other layers differ from the reader's");
            Taken.Add(op);
        }

        public override void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer,
            SpikeReader? next = null)
        {
            AssertNothingPending();
            base.Lif(input, spikes, length, timesteps, threshold, recorder, layer, next);
            _pending = next is null ? null : (spikes, next);
        }

        public override void AddLif(DeviceBuffer x, DeviceBuffer y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder,
            int layer, SpikeReader? next = null)
        {
            AssertNothingPending();
            base.AddLif(x, y, length, spikes, timesteps, threshold, recorder, layer, next);
            _pending = next is null ? null : (spikes, next);
        }

        public override void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output)
        {
            Take(SpikeReaderOp.Conv, layer, input, frames, height, width);
            base.Conv(layer, input, frames, height, width, output);
        }

        public override void ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
            int timesteps, float threshold, int lifLayer, LifRecorder? recorder)
        {
            Take(SpikeReaderOp.ConvLif, layer, input, frames, height, width);
            base.ConvLif(layer, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder);
        }

        public override void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
            int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output)
        {
            Take(SpikeReaderOp.ConvLifConv, first, input, frames, height, width, r => ReferenceEquals(r.Second, second));
            base.ConvLifConv(first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder, second, output);
        }

        public override void RepConvs(ReadOnlySpan<RepConvLayers> convs, DeviceBuffer input, int frames, int height, int width, ReadOnlySpan<DeviceBuffer> outputs)
        {
            var layers = convs.ToArray();
            Take(SpikeReaderOp.RepConvs, layers[0].First, input, frames, height, width, r => r.Convs!.SequenceEqual(layers));
            base.RepConvs(convs, input, frames, height, width, outputs);
        }

        // Every other op that could read the spikes: none may run while a reader is pending.
        public override void Add(DeviceBuffer x, DeviceBuffer y, long length) { AssertNothingPending(); base.Add(x, y, length); }
        public override void RepConv(ConvLayer first, DeviceBuffer padValues, ConvLayer depthwise, ConvLayer pointwise, DeviceBuffer input, int frames, int height,
            int width, DeviceBuffer output)
        {
            AssertNothingPending();
            base.RepConv(first, padValues, depthwise, pointwise, input, frames, height, width, output);
        }
        public override void ConvPadded(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output)
        {
            AssertNothingPending();
            base.ConvPadded(layer, input, frames, height, width, pad, padValues, output);
        }
        public override void LifAttentionLif(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, int frames, int channels, int tokens, int heads, float scale,
            int timesteps, float threshold, float attentionThreshold, DeviceBuffer spikes, LifRecorder? recorder, int lifLayer)
        {
            AssertNothingPending();
            base.LifAttentionLif(q, k, v, frames, channels, tokens, heads, scale, timesteps, threshold, attentionThreshold, spikes, recorder, lifLayer);
        }
        public override void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output) { AssertNothingPending(); base.SpatialMean(x, rows, spatial, output); }
        public override void Download(DeviceBuffer source, long offset, Span<float> destination) { AssertNothingPending(); base.Download(source, offset, destination); }
        public override void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length)
        {
            AssertNothingPending();
            base.Copy(source, srcOffset, destination, dstOffset, length);
        }
    }
}
