namespace Qsvit.Backends;

/// <summary>
/// An <see cref="IBackend"/> that computes nothing and measures the workspace: it keeps the stack of
/// <see cref="Rent"/>ed sizes as the device backends keep their storage (a slot per stack position, grown to the largest
/// length rented there), so a pass run on it gives the activation peak a device backend reaches for that pass
/// (<see cref="PeakFloats"/>), before any device memory is spent. Data ops are no-ops; downloads give zeros.
/// </summary>
public sealed class WorkspaceMeter : IBackend
{
    private readonly List<long> _slots = new();
    private int _next;

    /// <summary>Floats the workspace holds: the sum of its slots' largest lengths.</summary>
    public long PeakFloats => _slots.Sum();

    public DeviceSpec Device => DeviceSpec.Cpu;
    public string Description => "workspace meter";
    public int DefaultBatchSize(int height, int width, long activationBytesPerImage) => 1;

    public DeviceBuffer Rent(long length)
    {
        length = Math.Max(1, length);
        if (_next == _slots.Count) _slots.Add(length);
        else _slots[_next] = Math.Max(_slots[_next], length);
        _next++;
        return new Slot(length);
    }

    public int Mark() => _next;
    public void Release(int mark) => _next = mark;
    public DeviceBuffer Allocate(long length) => new Slot(length);
    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, long offset = 0) { }
    public void Download(DeviceBuffer source, long offset, Span<float> destination) => destination.Clear();
    public void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length) { }
    public void Synchronize() { }

    public ConvLayer CreateConv(ConvLayerSpec spec) => new LayerStub(spec);
    public HeadLayer CreateHead(IReadOnlyList<LinearWeights> heads, int features, int classes) => new HeadStub(heads, features, classes);

    public void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output) { }
    public void Pad(DeviceBuffer input, int frames, int channels, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output) { }

    /// <summary>As the CPU and CUDA backends run it: a depthwise layer reads the border itself (no padded map); others pad first.</summary>
    public void ConvPadded(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output)
    {
        if (!layer.Geometry.IsDepthwise) IBackend.RunConvPadded(this, layer, input, frames, height, width, pad, padValues, output);
    }
    public void RepeatBlock(DeviceBuffer x, long block, int times) { }
    public void Add(DeviceBuffer x, DeviceBuffer y, long length) { }
    public void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer, SpikeReader? next = null) { }
    public void SpikeDrivenAttention(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output, int frames, int channels, int tokens, int heads, float scale) { }
    public void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output) { }
    public void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits) { }

    public void AccumulateFrames(DeviceBuffer x, int frames, long length, double weight, Span<double> sums) { }
    public void ChannelMoments(DeviceBuffer x, int frames, int channels, int plane, Span<double> mean, Span<double> squares)
    {
        mean.Clear();
        squares.Clear();
    }
    public void ChannelAffines(DeviceBuffer x, int frames, int channels, int plane, DeviceBuffer affines, int count, bool inverse) { }

    public SpikeCounter CreateSpikeCounter(int layers) => throw new NotSupportedException("the workspace meter records nothing");
    public MembraneReference CreateMembraneReference(int layers) => throw new NotSupportedException("the workspace meter records nothing");
    public DriftMeter CreateDriftMeter(MembraneReference reference) => throw new NotSupportedException("the workspace meter records nothing");

    public void Dispose() { }

    private sealed class Slot(long length) : DeviceBuffer
    {
        public override long Length => length;
    }

    private sealed class LayerStub(ConvLayerSpec spec) : ConvLayer(spec);

    private sealed class HeadStub(IReadOnlyList<LinearWeights> heads, int features, int classes) : HeadLayer(heads, features, classes);
}
