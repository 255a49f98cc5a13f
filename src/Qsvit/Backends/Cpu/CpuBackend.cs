using System.Numerics.Tensors;
using Qsvit.Snn;
using Qsvit.Tensors;

namespace Qsvit.Backends.Cpu;

/// <summary>
/// The CPU kernels of Qsvit.Tensors and Qsvit.Snn behind <see cref="IBackend"/>: every op sums in the order PyTorch's CPU
/// backend does, so a model on this backend is bit-identical to PyTorch on CPU. Buffers are host arrays; the workspace
/// is a stack of reused arrays.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private readonly List<CpuBuffer> _slots = new();
    private int _next;

    public CpuBackend(ComputeOptions? options = null) => Options = options ?? ComputeOptions.Default;

    /// <summary>Threads and the like, fixed for the backend's lifetime.</summary>
    public ComputeOptions Options { get; }
    private int Threads => Options.Threads;

    public DeviceSpec Device => DeviceSpec.Cpu;
    public string Description => $"cpu ({Threads} threads, {IsaInfo.Best})";
    public int DefaultBatchSize(int height, int width, long activationBytesPerImage) => 32;

    /// <summary>Floats held by the workspace.</summary>
    public long WorkspaceFloats => _slots.Sum(s => (long)s.Array.Length);

    public DeviceBuffer Rent(long length)
    {
        if (length > Array.MaxLength) throw new QsvitException($"a buffer of {length:N0} floats exceeds .NET's array limit; use a smaller batch");
        if (_next == _slots.Count) _slots.Add(new CpuBuffer(new float[length]));
        else if (_slots[_next].Array.Length < length) _slots[_next].Array = new float[length];
        return _slots[_next++];
    }

    public int Mark() => _next;
    public void Release(int mark) => _next = mark;

    public DeviceBuffer Allocate(long length)
    {
        if (length > Array.MaxLength) throw new QsvitException($"a buffer of {length:N0} floats exceeds .NET's array limit; use a smaller batch");
        return new CpuBuffer(new float[length]);
    }

    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, long offset = 0) => source.CopyTo(A(destination).AsSpan(checked((int)offset)));
    public void Download(DeviceBuffer source, long offset, Span<float> destination) => A(source).AsSpan(checked((int)offset), destination.Length).CopyTo(destination);
    public void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length) =>
        Array.Copy(A(source), srcOffset, A(destination), dstOffset, length);

    public void Synchronize() { }

    public ConvLayer CreateConv(ConvLayerSpec spec) =>
        spec.Weights is PackedConvWeights packed ? new CpuPackedConvLayer(spec, packed) : new CpuConvLayer(spec) { Engine = "CPU fp32" };

    public HeadLayer CreateHead(IReadOnlyList<LinearWeights> heads, int features, int classes) => new CpuHeadLayer(heads, features, classes);

    public void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output)
    {
        var g = layer.Geometry;
        int spatial = g.OutH(height) * g.OutW(width);
        var dst = A(output).AsSpan(0, frames * g.OutChannels * spatial);
        var src = A(input).AsSpan(0, frames * g.InChannels * height * width);
        var handed = Handed(input);
        if (layer is CpuPackedConvLayer packed)
        {
            packed.Run(src, frames, height, width, dst, Threads, Options.SpikeAccumulation, handed); // applies the affines itself
            if (handed is not null) EndRead();
            return;
        }
        if (handed is not null) throw new InvalidOperationException($"spikes were handed over as words to {layer.Spec.Keys?.Weight ?? "a layer"}, which reads floats");
        Conv2d.Forward(src, frames, height, width, ((CpuConvLayer)layer).Packed, layer.Spec.Bias, dst, Threads, ConvAlgo.Auto, null);
        ApplyAffines(layer.Spec, dst, frames, spatial, Threads);
    }

    /// <summary>
    /// Integer spike-input layers of direct geometry run the LIF in the conv's epilogue (<see cref="SpikeConv.ForwardLif"/>),
    /// without a recorder or with a spike counter (the epilogue counts); other recorders see the separate ops.
    /// </summary>
    public void ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
        int timesteps, float threshold, int lifLayer, LifRecorder? recorder)
    {
        var g = layer.Geometry;
        long length = (long)frames * g.OutChannels * g.OutH(height) * g.OutW(width);
        if (layer is CpuPackedConvLayer { Integer: not null } packed && SpikeConv.IsDirect(g) && recorder is null or CpuSpikeCounter)
        {
            var handed = Handed(input);
            long fired = packed.RunLif(A(input).AsSpan(0, frames * g.InChannels * height * width), frames, height, width,
                A(spikes).AsSpan(0, checked((int)length)), timesteps, threshold, Threads, handed);
            if (handed is not null) EndRead();
            (recorder as CpuSpikeCounter)?.Add(lifLayer, fired, length);
            return;
        }
        Conv(layer, input, frames, height, width, preActivation);
        Lif(preActivation, spikes, length, timesteps, threshold, recorder, lifLayer);
    }

    /// <summary>
    /// Two integer layers of one grid pass the spikes as words (<see cref="SpikeConv.ForwardLifConv"/>), without a recorder or
    /// with a spike counter; others run the ops.
    /// </summary>
    public void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
        int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output)
    {
        if (first is CpuPackedConvLayer { Integer: not null } a && second is CpuPackedConvLayer { Integer: not null } b
            && SpikeConv.CanChain(first.Geometry, second.Geometry) && recorder is null or CpuSpikeCounter)
        {
            var g = first.Geometry;
            var handed = Handed(input);
            long fired = CpuPackedConvLayer.RunLifConv(a, A(input).AsSpan(0, frames * g.InChannels * height * width), frames, height, width,
                timesteps, threshold, b, A(output).AsSpan(0, frames * second.Geometry.OutChannels * height * width), Threads, Options.SpikeAccumulation,
                handed);
            if (handed is not null) EndRead();
            (recorder as CpuSpikeCounter)?.Add(lifLayer, fired, (long)frames * g.OutChannels * height * width);
            return;
        }
        IBackend.RunConvLifConv(this, first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder, second, output);
    }

    /// <summary>A depthwise layer reads the border values as it copies each plane (<see cref="Conv2d.ForwardBordered"/>): no padded map; others pad first.</summary>
    public void ConvPadded(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output)
    {
        var g = layer.Geometry;
        if (!g.IsDepthwise || g.PadH != 0 || g.PadW != 0)
        {
            IBackend.RunConvPadded(this, layer, input, frames, height, width, pad, padValues, output);
            return;
        }
        var padded = g with { PadH = pad, PadW = pad };
        int spatial = padded.OutH(height) * padded.OutW(width);
        var src = A(input).AsSpan(0, frames * g.InChannels * height * width);
        var dst = A(output).AsSpan(0, frames * g.OutChannels * spatial);
        var border = A(padValues).AsSpan(0, g.InChannels);
        if (layer is CpuPackedConvLayer packed)
        {
            packed.RunDepthwise(src, frames, height, width, pad, border, dst, Threads);
            return;
        }
        var w = ((CpuConvLayer)layer).Packed;
        Conv2d.ForwardBordered(src, frames, height, width, w.Raw, layer.Spec.Bias, g, pad, border, dst, w.Isa, Threads);
        ApplyAffines(layer.Spec, dst, frames, spatial, Threads);
    }

    /// <summary>A conv layer's affines (its BNs), each one FMA per element, after the conv into <paramref name="y"/>.</summary>
    internal static void ApplyAffines(ConvLayerSpec spec, Span<float> y, int frames, int spatial, int threads)
    {
        foreach (var bn in spec.Affines) ChannelOps.ScaleShift(y, frames, spec.Geometry.OutChannels, spatial, bn.Scale, bn.Shift, IsaInfo.Best, threads);
    }

    public void Pad(DeviceBuffer input, int frames, int channels, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output)
    {
        float[] x = A(input), y = A(output), p = A(padValues);
        int ph = height + 2 * pad, pw = width + 2 * pad, planes = frames * channels;
        int parts = Math.Max(1, Math.Min(Threads, planes / 64));
        // Contiguous ranges of planes per thread (a 4x4 map's plane is a few dozen floats: one item each would cost more than the copy).
        Compute.ForRanges(planes, parts, (start, end) =>
        {
            for (int fc = start; fc < end; fc++)
            {
                var plane = y.AsSpan(fc * ph * pw, ph * pw);
                float value = p[fc % channels];
                plane[..(pad * pw + pad)].Fill(value);
                for (int r = 0; r < height; r++)
                {
                    int at = (r + pad) * pw + pad;
                    x.AsSpan((fc * height + r) * width, width).CopyTo(plane.Slice(at, width));
                    plane.Slice(at + width, Math.Min(2 * pad, ph * pw - at - width)).Fill(value); // right border, next row's left
                }
                plane[((height + pad) * pw)..].Fill(value);
            }
        });
    }

    /// <summary>The copies cut into ranges over the threads (<see cref="Compute.MemoryBoundParts"/>; the stem's T − 1 copies are 6 MB at batch 32).</summary>
    public void RepeatBlock(DeviceBuffer x, long block, int times)
    {
        var a = A(x);
        int n = checked((int)block), copies = times - 1;
        if (copies <= 0 || n == 0) return;
        int perCopy = Compute.MemoryBoundParts(n, Threads, n), parts = Math.Max(1, Math.Min(Threads, perCopy * copies));
        Compute.ForRanges(copies * perCopy, parts, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                int t = i / perCopy + 1, part = i % perCopy;
                int from = Compute.ChunkStart(n, perCopy, part), to = Compute.ChunkStart(n, perCopy, part + 1);
                Array.Copy(a, from, a, (long)t * n + from, to - from);
            }
        });
    }

    public void Add(DeviceBuffer x, DeviceBuffer y, long length)
    {
        float[] xa = A(x), ya = A(y);
        int n = checked((int)length), parts = Compute.MemoryBoundParts(n, Threads, n);
        Compute.ForRanges(n, parts, (start, end) =>
        {
            var dst = xa.AsSpan(start, end - start);
            TensorPrimitives.Add(dst, ya.AsSpan(start, end - start), dst);
        });
    }

    /// <summary>
    /// Where <paramref name="next"/>'s first layer sums integer spikes on a direct grid, the spikes go to it as its input
    /// words (<see cref="SpikeConv.LifWords"/>), not as floats (<see cref="HandOver"/>).
    /// </summary>
    public void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer, SpikeReader? next = null)
    {
        if (!HandOver(input, null, length, spikes, timesteps, threshold, recorder, layer, next)) RunLif(input, null, length, spikes, timesteps, threshold, recorder, layer);
    }

    /// <summary>The residual add inside the LIF's pass over each chunk (<see cref="MultiStepLif.Forward"/>'s addend): the same bits as Add, then Lif.</summary>
    public void AddLif(DeviceBuffer x, DeviceBuffer y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null)
    {
        if (!HandOver(x, y, length, spikes, timesteps, threshold, recorder, layer, next)) RunLif(x, y, length, spikes, timesteps, threshold, recorder, layer);
    }

    // Spikes handed over as words: the buffer they stand for, the words, their array (reused from call to call), and the
    // layers still to read them (RepConvs' first 1×1s all read the same words).
    private HandedSpikes? _handed;
    private DeviceBuffer? _handedSource;
    private int[]? _handedWords;
    private int _handedReads;

    /// <summary>
    /// The LIF (after x += y) written as the input words of <paramref name="next"/>'s first layer (every first 1×1 of
    /// RepConvs alike), when that layer sums integer spikes on a direct grid and the recorder only counts (or is absent):
    /// the next op, which per <see cref="SpikeReader"/> is the only reader, takes the words. Returns false (nothing done)
    /// otherwise. Either way the words of an earlier handover are dropped.
    /// </summary>
    private bool HandOver(DeviceBuffer x, DeviceBuffer? y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder,
        int layer, SpikeReader? next)
    {
        (_handed, _handedSource, _handedReads) = (null, null, 0);
        if (next is null || recorder is not (null or CpuSpikeCounter)) return false;
        if (next.Layer is not CpuPackedConvLayer { Integer: { } w } || !SpikeConv.IsDirect(w.Geometry) || w.Matrix.Group is not (2 or 4)) return false;
        var g = w.Geometry;
        if ((long)next.Frames * g.InChannels * next.Height * next.Width != length || next.Frames % timesteps != 0) return false;
        foreach (var c in next.Convs ?? [])
            if (c.First is not CpuPackedConvLayer { Integer: { } o } || o.Matrix.Group != w.Matrix.Group || o.Geometry.InChannels != g.InChannels
                || o.Geometry.PadH != g.PadH || o.Geometry.PadW != g.PadW || !SpikeConv.IsDirect(o.Geometry))
                return false;
        _handed = SpikeConv.LifWords(A(x), y is null ? null : A(y), next.Frames, g.InChannels, next.Height, next.Width, timesteps, threshold,
            g.PadH, g.PadW, w.Matrix.Group, ref _handedWords, Threads);
        _handedSource = spikes;
        _handedReads = next.Convs?.Length ?? 1;
        (recorder as CpuSpikeCounter)?.Add(layer, _handed.Spikes, length);
        return true;
    }

    /// <summary>The handed-over words standing for <paramref name="input"/>, or null.</summary>
    private HandedSpikes? Handed(DeviceBuffer input) => ReferenceEquals(input, _handedSource) ? _handed : null;

    /// <summary>After a layer read handed-over words: once every layer meant to has, they are spent.</summary>
    private void EndRead()
    {
        if (--_handedReads <= 0) (_handed, _handedSource) = (null, null);
    }

    /// <summary>The LIF of x (after x += y where <paramref name="y"/> is given) into the spikes, feeding the recorder.</summary>
    private void RunLif(DeviceBuffer x, DeviceBuffer? y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder, int layer)
    {
        int n = checked((int)length);
        float[] input = A(x), s = A(spikes);
        float[]? addend = y is null ? null : A(y);
        bool wantsH = recorder switch
        {
            HostLifObserver h => h.Observer.WantsMembrane,
            CpuMembraneReference or CpuDriftMeter => true,
            _ => false,
        };
        int mark = Mark();
        float[]? membrane = wantsH ? A(Rent(n)) : null;
        long count = MultiStepLif.Forward(input, s, n, timesteps, threshold, membrane, Options, addend);
        var potentials = membrane is null ? default : membrane.AsSpan(0, n);
        switch (recorder)
        {
            case null: break;
            case CpuSpikeCounter c: c.Add(layer, count, n); break;
            case HostLifObserver o: o.Observer.Observe(layer, o.Names[layer], potentials, s.AsSpan(0, n), count); break;
            case CpuMembraneReference r: r.Capture(layer, potentials, s.AsSpan(0, n)); break;
            case CpuDriftMeter d: d.Compare(layer, potentials, s.AsSpan(0, n)); break;
            default: throw new ArgumentException($"{recorder.GetType().Name} was not made by the CPU backend", nameof(recorder));
        }
        Release(mark);
    }

    public void SpikeDrivenAttention(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output, int frames, int channels, int tokens, int heads, float scale)
    {
        long n = (long)frames * channels * tokens;
        SpikeAttention.Forward(A(q).AsSpan(0, checked((int)n)), A(k).AsSpan(0, (int)n), A(v).AsSpan(0, (int)n), A(output).AsSpan(0, (int)n),
            frames, channels, tokens, heads, scale, IsaInfo.Best, Threads);
    }

    public void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output) =>
        ChannelOps.SpatialMean(A(x).AsSpan(0, rows * spatial), rows, 1, spatial, A(output), IsaInfo.Best, Threads);

    public void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits)
    {
        int frames = batch * timesteps, classes = head.Classes, f = head.Features;
        var x = A(features).AsSpan(0, frames * f);
        int mark = Mark();
        var perStep = A(Rent((long)frames * classes));
        var result = A(logits).AsSpan(0, batch * classes);
        var kd = head.Heads.Count > 1 ? A(Rent((long)batch * classes)).AsSpan(0, batch * classes) : default;
        for (int k = 0; k < head.Heads.Count; k++)
        {
            var dst = k == 0 ? result : kd;
            var (w, bias) = head.Heads[k];
            Gemm.Sgemm(frames, classes, f, x, false, w, true, perStep.AsSpan(0, frames * classes), false, IsaInfo.Best, Threads);
            for (int i = 0; i < frames; i++) TensorPrimitives.Add(perStep.AsSpan(i * classes, classes), bias, perStep.AsSpan(i * classes, classes));
            dst.Clear();
            for (int b = 0; b < batch; b++)
            {
                var row = dst.Slice(b * classes, classes);
                for (int t = 0; t < timesteps; t++) TensorPrimitives.Add(row, perStep.AsSpan((t * batch + b) * classes, classes), row);
                TensorPrimitives.Divide(row, timesteps, row);
            }
        }
        if (head.Heads.Count > 1)
            for (int i = 0; i < result.Length; i++) result[i] = (result[i] + kd[i]) / 2f;
        Release(mark);
    }

    public void AccumulateFrames(DeviceBuffer x, int frames, long length, double weight, Span<double> sums) =>
        ChannelStatistics.AccumulateFrames(A(x), frames, checked((int)length), weight, sums, Threads);

    public void ChannelMoments(DeviceBuffer x, int frames, int channels, int plane, Span<double> mean, Span<double> squares) =>
        ChannelStatistics.Moments(A(x), frames, channels, plane, mean, squares, Threads);

    public void ChannelAffines(DeviceBuffer x, int frames, int channels, int plane, DeviceBuffer affines, int count, bool inverse) =>
        ChannelStatistics.Affines(A(x), frames, channels, plane, A(affines), count, inverse, Threads);

    public SpikeCounter CreateSpikeCounter(int layers) => new CpuSpikeCounter(layers);
    public MembraneReference CreateMembraneReference(int layers) => new CpuMembraneReference(layers);

    public DriftMeter CreateDriftMeter(MembraneReference reference) => reference is CpuMembraneReference { Sealed: true } r
        ? new CpuDriftMeter(r)
        : throw new ArgumentException("the reference must be a sealed MembraneReference of the CPU backend", nameof(reference));

    public void Dispose() => _slots.Clear();

    private static float[] A(DeviceBuffer b) => b is CpuBuffer c ? c.Array
        : throw new ArgumentException($"a {b.GetType().Name} is not a CPU buffer");
}
