using System.Diagnostics;

namespace Qsvit.Backends;

/// <summary>
/// A decorator that times every op of another backend while <see cref="Enabled"/>: it waits for queued work before and
/// after each op (<see cref="IBackend.Synchronize"/>) and adds the time to the op's row, keyed by op kind, layer shape
/// and engine. Results are those of the inner backend; only the overlap between ops is lost (each op is timed alone,
/// so the sum of the rows is at least the unprofiled pass). Disabled, it only forwards. Layers, buffers and recorders
/// are the inner backend's; disposing the profiler leaves the inner backend open.
/// </summary>
public sealed class ProfilingBackend(IBackend inner) : ForwardingBackend(inner)
{
    private readonly Dictionary<(string Op, string Shape, string Engine), (long Calls, long Ticks)> _rows = new();

    /// <summary>Time ops (true) or only forward them.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Forgets what was timed so far.</summary>
    public void Reset() => _rows.Clear();

    /// <summary>What was timed since the last <see cref="Reset"/>, over <paramref name="passes"/> passes that took <paramref name="wallSeconds"/> in all.</summary>
    public BackendProfile Read(int passes, double wallSeconds) => new(
        _rows.Select(r => new ProfileRow(r.Key.Op, r.Key.Shape, r.Key.Engine, r.Value.Calls, r.Value.Ticks * 1000.0 / Stopwatch.Frequency))
            .OrderByDescending(r => r.Milliseconds).ToArray(),
        passes, wallSeconds * 1000);

    private void Time(string op, string shape, string engine, Action run)
    {
        if (!Enabled)
        {
            run();
            return;
        }
        long start = Start();
        run();
        Stop(op, shape, engine, start);
    }

    /// <summary>Waits for queued work, then reads the clock.</summary>
    private long Start()
    {
        Inner.Synchronize();
        return Stopwatch.GetTimestamp();
    }

    /// <summary>Waits for the op, then adds its time to its row.</summary>
    private void Stop(string op, string shape, string engine, long start)
    {
        Inner.Synchronize();
        long ticks = Stopwatch.GetTimestamp() - start;
        var key = (op, shape, engine);
        _rows[key] = _rows.TryGetValue(key, out var r) ? (r.Calls + 1, r.Ticks + ticks) : (1, ticks);
    }

    // Spans cannot enter a lambda: uploads and downloads are timed here.
    public override void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, long offset = 0)
    {
        long start = Enabled ? Start() : 0;
        Inner.Upload(source, destination, offset);
        if (Enabled) Stop("upload", Floats(source.Length), "", start);
    }

    /// <summary>Timed alone like every op, though unprofiled it overlaps the ops queued before it.</summary>
    public override void UploadAhead(ReadOnlySpan<float> source, DeviceBuffer destination)
    {
        long start = Enabled ? Start() : 0;
        Inner.UploadAhead(source, destination);
        if (Enabled) Stop("upload ahead", Floats(source.Length), "", start);
    }

    public override void Download(DeviceBuffer source, long offset, Span<float> destination)
    {
        long start = Enabled ? Start() : 0;
        Inner.Download(source, offset, destination);
        if (Enabled) Stop("download", Floats(destination.Length), "", start);
    }

    public override void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length) =>
        Time("copy", Floats(length), "", () => Inner.Copy(source, srcOffset, destination, dstOffset, length));

    public override void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output)
    {
        var (op, shape) = Describe(layer, height, width, frames);
        Time(op, shape, layer.EngineAt(height, width), () => Inner.Conv(layer, input, frames, height, width, output));
    }

    /// <summary>Timed as one op ("conv 3x3 + lif"): the inner backend may fuse the two.</summary>
    public override void ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
        DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder)
    {
        var (op, shape) = Describe(layer, height, width, frames);
        Time($"{op} + lif", shape, layer.EngineAt(height, width),
            () => Inner.ConvLif(layer, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder));
    }

    /// <summary>Timed as one op ("conv 7x7 + repeat over T"): the inner backend may fuse the two.</summary>
    public override void ConvRepeat(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output, int times)
    {
        var (op, shape) = Describe(layer, height, width, frames);
        Time($"{op} + repeat over T", $"{shape} x{times}", layer.EngineAt(height, width),
            () => Inner.ConvRepeat(layer, input, frames, height, width, output, times));
    }

    public override void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
        DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output)
    {
        var (op1, shape1) = Describe(first, height, width, frames);
        var (op2, shape2) = Describe(second, height, width, frames);
        string engine1 = first.EngineAt(height, width), engine2 = second.EngineAt(height, width);
        Time($"{op1} + lif + {op2}", $"{shape1}; {shape2}",
            Inner.ConvLifConvEngine(first, second, frames, height, width, timesteps, recorder) ?? (engine1 == engine2 ? engine1 : $"{engine1}; {engine2}"),
            () => Inner.ConvLifConv(first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder, second, output));
    }

    private static (string Op, string Shape) Describe(ConvLayer layer, int height, int width, int frames)
    {
        var g = layer.Geometry;
        string op = g.IsDepthwise ? $"depthwise {g.KernelH}x{g.KernelW}" : $"conv {g.KernelH}x{g.KernelW}";
        string shape = g.IsDepthwise
            ? $"{g.InChannels}ch s{g.StrideH} @{height}x{width} x{frames}"
            : $"{g.InChannels}->{g.OutChannels}{(g.Groups == 1 ? "" : $" g{g.Groups}")} s{g.StrideH} @{height}x{width} x{frames}";
        return (op, shape);
    }

    public override void ConvPadded(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output)
    {
        var g = layer.Geometry;
        Time($"bn-padded {(g.IsDepthwise ? "depthwise" : "conv")} {g.KernelH}x{g.KernelW}", $"{g.InChannels}->{g.OutChannels} @{height}x{width} +{pad} x{frames}",
            layer.EngineAt(height + 2 * pad, width + 2 * pad), () => Inner.ConvPadded(layer, input, frames, height, width, pad, padValues, output));
    }

    /// <summary>
    /// Timed as one op ("repconv") where the inner backend fuses its three convs (<see cref="IBackend.RepConvEngine"/>);
    /// otherwise it runs the three ops, so they are timed one by one.
    /// </summary>
    public override void RepConv(ConvLayer first, DeviceBuffer padValues, ConvLayer depthwise, ConvLayer pointwise, DeviceBuffer input, int frames,
        int height, int width, DeviceBuffer output)
    {
        var g = pointwise.Geometry;
        if (Inner.RepConvEngine(first, depthwise, pointwise, height, width) is not { } engine)
        {
            IBackend.RunRepConv(this, first, padValues, depthwise, pointwise, input, frames, height, width, output);
            return;
        }
        Time("repconv", $"{g.InChannels}->{g.OutChannels} @{height}x{width} x{frames}", engine,
            () => Inner.RepConv(first, padValues, depthwise, pointwise, input, frames, height, width, output));
    }

    /// <summary>
    /// Timed as one op ("repconvs"), its shape one conv's and how many, where the inner backend fuses them (it may share
    /// their work); otherwise each conv's three ops are timed one by one.
    /// </summary>
    public override void RepConvs(ReadOnlySpan<RepConvLayers> convs, DeviceBuffer input, int frames, int height, int width, ReadOnlySpan<DeviceBuffer> outputs)
    {
        var c = convs[0];
        var g = c.Pointwise.Geometry;
        if (Inner.RepConvEngine(c.First, c.Depthwise, c.Pointwise, height, width) is not { } engine)
        {
            IBackend.RunRepConvs(this, convs, input, frames, height, width, outputs);
            return;
        }
        var layers = convs.ToArray();
        var outs = outputs.ToArray();
        Time("repconvs", $"{layers.Length} x {g.InChannels}->{g.OutChannels} @{height}x{width} x{frames}", engine,
            () => Inner.RepConvs(layers, input, frames, height, width, outs));
    }

    public override void Pad(DeviceBuffer input, int frames, int channels, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output) =>
        Time("pad", $"{channels}ch @{height}x{width} +{pad} x{frames}", "", () => Inner.Pad(input, frames, channels, height, width, pad, padValues, output));

    public override void RepeatBlock(DeviceBuffer x, long block, int times) =>
        Time("repeat over T", $"{Floats(block)} x {times}", "", () => Inner.RepeatBlock(x, block, times));

    public override void Add(DeviceBuffer x, DeviceBuffer y, long length) => Time("add", Floats(length), "", () => Inner.Add(x, y, length));

    public override void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null) =>
        Time("lif", $"T={timesteps} x {Floats(length / timesteps)}", recorder is null ? "" : $"recording ({recorder.GetType().Name})",
            () => Inner.Lif(input, spikes, length, timesteps, threshold, recorder, layer, next));

    /// <summary>Timed as one op ("add + lif"): the inner backend may fuse the two.</summary>
    public override void AddLif(DeviceBuffer x, DeviceBuffer y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null) =>
        Time("add + lif", $"T={timesteps} x {Floats(length / timesteps)}", recorder is null ? "" : $"recording ({recorder.GetType().Name})",
            () => Inner.AddLif(x, y, length, spikes, timesteps, threshold, recorder, layer, next));

    public override void SpikeDrivenAttention(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output, int frames, int channels, int tokens, int heads, float scale) =>
        Time("sdsa", $"{channels}ch {heads} heads {tokens} tokens x{frames}", "",
            () => Inner.SpikeDrivenAttention(q, k, v, output, frames, channels, tokens, heads, scale));

    /// <summary>Timed as one op ("lif + sdsa + lif"): the inner backend may fuse the five.</summary>
    public override void LifAttentionLif(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, int frames, int channels, int tokens, int heads, float scale,
        int timesteps, float threshold, float attentionThreshold, DeviceBuffer spikes, LifRecorder? recorder, int lifLayer) =>
        Time("lif + sdsa + lif", $"{channels}ch {heads} heads {tokens} tokens x{frames}", recorder is null ? "" : $"recording ({recorder.GetType().Name})",
            () => Inner.LifAttentionLif(q, k, v, frames, channels, tokens, heads, scale, timesteps, threshold, attentionThreshold, spikes, recorder, lifLayer));

    public override void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output) =>
        Time("spatial mean", $"{rows} rows x {spatial}", "", () => Inner.SpatialMean(x, rows, spatial, output));

    public override void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits) =>
        Time("head", $"{head.Heads.Count} x {head.Features}->{head.Classes} x{batch * timesteps}", "",
            () => Inner.Head(head, features, batch, timesteps, logits));

    // Spans again: the calibration reductions are timed here too.
    public override void AccumulateFrames(DeviceBuffer x, int frames, long length, double weight, Span<double> sums)
    {
        long start = Enabled ? Start() : 0;
        Inner.AccumulateFrames(x, frames, length, weight, sums);
        if (Enabled) Stop("frame sums", $"{Floats(length)} x {frames}", "", start);
    }

    public override void ChannelMoments(DeviceBuffer x, int frames, int channels, int plane, Span<double> mean, Span<double> squares)
    {
        long start = Enabled ? Start() : 0;
        Inner.ChannelMoments(x, frames, channels, plane, mean, squares);
        if (Enabled) Stop("channel moments", $"{channels}ch x {Floats((long)frames * plane)}", "", start);
    }

    public override void ChannelAffines(DeviceBuffer x, int frames, int channels, int plane, DeviceBuffer affines, int count, bool inverse) =>
        Time(inverse ? "undo channel affines" : "channel affines", $"{count} x {channels}ch x {Floats((long)frames * plane)}", "",
            () => Inner.ChannelAffines(x, frames, channels, plane, affines, count, inverse));

    /// <summary>Leaves the inner backend open (its owner disposes it).</summary>
    public override void Dispose() { }

    private static string Floats(long n) => n >= 1 << 20 ? $"{n / (double)(1 << 20):0.#}M floats" : n >= 1024 ? $"{n / 1024.0:0.#}K floats" : $"{n} floats";
}

/// <summary>One op kind and shape: calls and total milliseconds over the profiled passes.</summary>
public sealed record ProfileRow(string Op, string Shape, string Engine, long Calls, double Milliseconds);

/// <summary>Where passes spent their time (<see cref="ProfilingBackend"/>): rows by op and shape, busiest first.</summary>
/// <param name="WallMilliseconds">The profiled passes end to end (ops, host work between them and the synchronisation).</param>
public sealed record BackendProfile(IReadOnlyList<ProfileRow> Rows, int Passes, double WallMilliseconds)
{
    /// <summary>Milliseconds of one pass, end to end.</summary>
    public double PassMilliseconds => Passes == 0 ? 0 : WallMilliseconds / Passes;
    /// <summary>Milliseconds per pass outside the timed ops (host work between ops, the profiler itself).</summary>
    public double OtherMilliseconds => PassMilliseconds - Rows.Sum(r => r.Milliseconds) / Math.Max(1, Passes);

    /// <summary>Rows summed per op kind (conv 1x1, depthwise 7x7, lif, …), busiest first.</summary>
    public IReadOnlyList<ProfileRow> ByOp() => Rows.GroupBy(r => r.Op)
        .Select(g => new ProfileRow(g.Key, "", string.Join(", ", g.Select(r => r.Engine).Where(e => e.Length > 0).Distinct()), g.Sum(r => r.Calls), g.Sum(r => r.Milliseconds)))
        .OrderByDescending(r => r.Milliseconds).ToArray();
}
