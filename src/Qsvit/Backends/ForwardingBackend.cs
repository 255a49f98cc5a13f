namespace Qsvit.Backends;

/// <summary>
/// A backend that hands every call to another (<see cref="Inner"/>): the base of decorators, which override only what
/// they change (<see cref="ProfilingBackend"/> times ops, <see cref="DeviceGroup"/> runs single passes on its first
/// device). Layers, buffers and recorders are the inner backend's.
/// </summary>
public abstract class ForwardingBackend(IBackend inner) : IBackend
{
    /// <summary>The backend every call not overridden goes to.</summary>
    public IBackend Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    public virtual DeviceSpec Device => Inner.Device;
    public virtual string Description => Inner.Description;
    public virtual int DefaultBatchSize(int height, int width, long activationBytesPerImage) =>
        Inner.DefaultBatchSize(height, width, activationBytesPerImage);

    public virtual DeviceBuffer Rent(long length) => Inner.Rent(length);
    public virtual int Mark() => Inner.Mark();
    public virtual void Release(int mark) => Inner.Release(mark);
    public virtual DeviceBuffer Allocate(long length) => Inner.Allocate(length);
    public virtual void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, long offset = 0) => Inner.Upload(source, destination, offset);
    public virtual void UploadAhead(ReadOnlySpan<float> source, DeviceBuffer destination) => Inner.UploadAhead(source, destination);
    public virtual void Download(DeviceBuffer source, long offset, Span<float> destination) => Inner.Download(source, offset, destination);
    public virtual void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length) =>
        Inner.Copy(source, srcOffset, destination, dstOffset, length);
    public virtual void Synchronize() => Inner.Synchronize();

    public virtual ConvLayer CreateConv(ConvLayerSpec spec) => Inner.CreateConv(spec);
    public virtual HeadLayer CreateHead(IReadOnlyList<LinearWeights> heads, int features, int classes) => Inner.CreateHead(heads, features, classes);

    public virtual void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output) =>
        Inner.Conv(layer, input, frames, height, width, output);
    public virtual void Pad(DeviceBuffer input, int frames, int channels, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output) =>
        Inner.Pad(input, frames, channels, height, width, pad, padValues, output);
    public virtual void ConvPadded(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output) =>
        Inner.ConvPadded(layer, input, frames, height, width, pad, padValues, output);
    public virtual void RepConv(ConvLayer first, DeviceBuffer padValues, ConvLayer depthwise, ConvLayer pointwise, DeviceBuffer input, int frames,
        int height, int width, DeviceBuffer output) =>
        Inner.RepConv(first, padValues, depthwise, pointwise, input, frames, height, width, output);
    public virtual void RepConvs(ReadOnlySpan<RepConvLayers> convs, DeviceBuffer input, int frames, int height, int width, ReadOnlySpan<DeviceBuffer> outputs) =>
        Inner.RepConvs(convs, input, frames, height, width, outputs);
    public virtual string? RepConvEngine(ConvLayer first, ConvLayer depthwise, ConvLayer pointwise, int height, int width) =>
        Inner.RepConvEngine(first, depthwise, pointwise, height, width);
    public virtual void ConvRepeat(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output, int times) =>
        Inner.ConvRepeat(layer, input, frames, height, width, output, times);
    public virtual void RepeatBlock(DeviceBuffer x, long block, int times) => Inner.RepeatBlock(x, block, times);
    public virtual void Add(DeviceBuffer x, DeviceBuffer y, long length) => Inner.Add(x, y, length);
    public virtual void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null) =>
        Inner.Lif(input, spikes, length, timesteps, threshold, recorder, layer, next);
    public virtual void AddLif(DeviceBuffer x, DeviceBuffer y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null) =>
        Inner.AddLif(x, y, length, spikes, timesteps, threshold, recorder, layer, next);
    public virtual void ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
        DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder) =>
        Inner.ConvLif(layer, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder);
    public virtual void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
        DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output) =>
        Inner.ConvLifConv(first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder, second, output);
    public virtual string? ConvLifConvEngine(ConvLayer first, ConvLayer second, int frames, int height, int width, int timesteps, LifRecorder? recorder) =>
        Inner.ConvLifConvEngine(first, second, frames, height, width, timesteps, recorder);
    public virtual void SpikeDrivenAttention(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output, int frames, int channels, int tokens, int heads, float scale) =>
        Inner.SpikeDrivenAttention(q, k, v, output, frames, channels, tokens, heads, scale);
    public virtual void LifAttentionLif(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, int frames, int channels, int tokens, int heads, float scale,
        int timesteps, float threshold, float attentionThreshold, DeviceBuffer spikes, LifRecorder? recorder, int lifLayer) =>
        Inner.LifAttentionLif(q, k, v, frames, channels, tokens, heads, scale, timesteps, threshold, attentionThreshold, spikes, recorder, lifLayer);
    public virtual void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output) => Inner.SpatialMean(x, rows, spatial, output);
    public virtual void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits) =>
        Inner.Head(head, features, batch, timesteps, logits);

    public virtual void AccumulateFrames(DeviceBuffer x, int frames, long length, double weight, Span<double> sums) =>
        Inner.AccumulateFrames(x, frames, length, weight, sums);
    public virtual void ChannelMoments(DeviceBuffer x, int frames, int channels, int plane, Span<double> mean, Span<double> squares) =>
        Inner.ChannelMoments(x, frames, channels, plane, mean, squares);
    public virtual void ChannelAffines(DeviceBuffer x, int frames, int channels, int plane, DeviceBuffer affines, int count, bool inverse) =>
        Inner.ChannelAffines(x, frames, channels, plane, affines, count, inverse);

    public virtual SpikeCounter CreateSpikeCounter(int layers) => Inner.CreateSpikeCounter(layers);
    public virtual MembraneReference CreateMembraneReference(int layers) => Inner.CreateMembraneReference(layers);
    public virtual DriftMeter CreateDriftMeter(MembraneReference reference) => Inner.CreateDriftMeter(reference);

    /// <summary>Disposes the inner backend (the decorator owns it); a decorator that does not own it overrides this.</summary>
    public virtual void Dispose() => Inner.Dispose();
}
