using System.Collections.Concurrent;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.IO;
using Qsvit.Quantization;
using Qsvit.Snn;
using Qsvit.Tensors;

namespace Qsvit.Models;

/// <summary>
/// The one definition of the official SDTv2 forward pass (classification/models.py, Spiking_vit_MetaFormer, eval mode),
/// run on any <see cref="IBackend"/>. Activations are time-first frames [T·B, C, H, W] (PyTorch's x.flatten(0, 1)).
/// BatchNorms run as PyTorch runs them unless <see cref="FoldBatchNorm"/> folds them into the preceding convs.
/// The pass is a sequence of the paper's units (<see cref="Units"/>); <see cref="ForwardUntil"/> and
/// <see cref="ForwardFrom"/> split it at a unit boundary, bit-identical to a full pass.
/// Not thread-safe: one instance per thread (the backend parallelizes internally). On a <see cref="DeviceGroup"/> the
/// model keeps one instance per device (<see cref="Replicas"/>) and <see cref="ForwardBatches"/> runs batches on all of
/// them, each batch exactly as one device runs it.
/// </summary>
public sealed class Sdtv2Model : IDisposable
{
    public Sdtv2Config Config { get; }
    public Sdtv2Layout Layout { get; }
    /// <summary>The weights this instance runs (fp32 or fake-quantized), under the official keys.</summary>
    public StateDict State { get; }
    /// <summary>LIF layers in forward call order.</summary>
    public IReadOnlyList<string> LifNames { get; }
    /// <summary>BatchNorms merged into conv weights: faster, rounding differs from PyTorch in the last bits.</summary>
    public bool FoldBatchNorm { get; }
    /// <summary>The device the model runs on.</summary>
    public IBackend Backend => _cache.Backend;
    /// <summary>The units of the pass in execution order (<see cref="Sdtv2Layout.Blocks"/>: DS_S1_B1 … TRAN_S4_B2, HEAD).</summary>
    public IReadOnlyList<string> Units { get; }

    private readonly LayerCache _cache;
    private readonly bool _ownsBackend;
    private readonly List<IDisposable> _held = new();
    private readonly Unit[] _units;
    private readonly int[] _lifStart;   // LIF call index at the start of each unit
    private readonly ConvBn _stemSpec;
    private readonly PackedModel? _packed;
    private readonly bool _simulate;
    private readonly Sdtv2Model[] _replicas;   // on devices 1 … N−1 of a DeviceGroup; empty otherwise
    private readonly IReadOnlyDictionary<string, PackedWeight>? _codes;

    /// <param name="backend">Where to run; null runs on a CPU backend of its own with <see cref="ComputeOptions.Default"/>.</param>
    public Sdtv2Model(Sdtv2Config config, StateDict state, bool strict = true, bool foldBatchNorm = false, IBackend? backend = null)
        : this(config, state, strict, foldBatchNorm, new LayerCache(backend ?? new CpuBackend()), ownsBackend: backend is null) { }

    /// <summary>
    /// A packed model (<see cref="PackedModel"/>): its codes run on the backend's integer path, or with
    /// <paramref name="simulate"/> dequantized into fp32 weights (fake quantization of the same setting, the reference).
    /// <see cref="State"/> then holds only the fp32 tensors under official keys (biases, 32-bit units, the head).
    /// </summary>
    public Sdtv2Model(PackedModel packed, bool simulate = false, IBackend? backend = null)
        : this(packed.Config, FloatState(packed), strict: false, fold: false, new LayerCache(backend ?? new CpuBackend()),
            ownsBackend: backend is null, packed, simulate) { }

    private Sdtv2Model(Sdtv2Config config, StateDict state, bool strict, bool fold, LayerCache cache, bool ownsBackend,
        PackedModel? packed = null, bool simulate = false, Func<DeviceGroup, Sdtv2Model[]>? replicas = null,
        IReadOnlyDictionary<string, PackedWeight>? codes = null)
    {
        _codes = fold ? null : codes;
        config.Validate();
        FoldBatchNorm = fold;
        Config = config;
        Layout = new Sdtv2Layout(config);
        _packed = packed;
        _simulate = simulate;
        if (packed is null) StateDictCheck.Validate(Layout, state, strict);
        State = state;
        _cache = cache;
        _ownsBackend = ownsBackend;

        int[] d = config.EmbedDim;
        _stemSpec = Conv("downsample1_1.encode_conv.weight", "downsample1_1.encode_conv.bias",
            new ConvGeometry(config.InChannels, d[0] / 2, 7, 7, config.StemStride, config.StemStride, 3, 3), "downsample1_1.encode_bn");
        var units = new List<Unit>
        {
            new Stem(this),
            new ConvBlock(this, "ConvBlock1_1.0", d[0] / 2),
            DownSampling("downsample1_2", d[0] / 2, d[0], 2),
            new ConvBlock(this, "ConvBlock1_2.0", d[0]),
            DownSampling("downsample2", d[0], d[1], 2),
            new ConvBlock(this, "ConvBlock2_1.0", d[1]),
            new ConvBlock(this, "ConvBlock2_2.0", d[1]),
            DownSampling("downsample3", d[1], d[2], 2),
        };
        for (int j = 0; j < Sdtv2Config.Stage3Depth; j++) units.Add(new TransformerBlock(this, $"block3.{j}", d[2]));
        units.Add(DownSampling("downsample4", d[2], d[3], 1));
        for (int j = 0; j < Sdtv2Config.Stage4Depth; j++) units.Add(new TransformerBlock(this, $"block4.{j}", d[3]));
        units.Add(new Head(this));
        _units = units.ToArray();
        Units = Layout.Blocks;
        if (Units.Count != _units.Length) throw new InvalidOperationException($"the wiring has {_units.Length} units, the layout {Units.Count}");

        var names = new List<string>();
        _lifStart = new int[_units.Length + 1];
        for (int u = 0; u < _units.Length; u++)
        {
            _lifStart[u] = names.Count;
            names.AddRange(_units[u].LifNames);
        }
        _lifStart[^1] = names.Count;
        LifNames = names;

        // The same model on every other device of a group, each built (uploaded) on its device's thread, in parallel.
        _replicas = cache.Backend is DeviceGroup { Count: > 1 } group
            ? (replicas ?? (g => g.OnEach((d, b) => d == 0 ? null! :
                new Sdtv2Model(config, state, strict, fold, new LayerCache(b), ownsBackend: false, packed, simulate, codes: codes))[1..]))(group)
            : [];
    }

    /// <summary>This model on each device of its backend: [this] on one device, one instance per device on a <see cref="DeviceGroup"/>.</summary>
    public IReadOnlyList<Sdtv2Model> Replicas => [this, .. _replicas];

    /// <summary>
    /// The same architecture on the same backend running other weights (e.g. a quantized copy of <see cref="State"/>).
    /// Layers built from the same state_dict arrays as this model's are shared, not uploaded again.
    /// </summary>
    /// <param name="codes">Integer codes of some conv weights (<see cref="ModelQuantizer.Codes"/>, dequantizing exactly to
    /// their tensors in <paramref name="state"/>): those layers are built from the codes (<see cref="PackedConvWeights"/>),
    /// so a backend with an integer path sums them exactly. Ignored when folding BatchNorms.</param>
    public Sdtv2Model WithState(StateDict state, IReadOnlyDictionary<string, PackedWeight>? codes = null) =>
        new(Config, state, strict: true, FoldBatchNorm, _cache, ownsBackend: false,
            replicas: g => g.OnEach((d, _) => d == 0 ? null! : _replicas[d - 1].WithState(state, codes))[1..], codes: codes);

    /// <summary>
    /// Workspace bytes one image needs in a pass at this image size: the activation peak (every workspace buffer grows
    /// with the batch), measured by running the wiring on a <see cref="WorkspaceMeter"/>, so no device memory is spent.
    /// A device backend adds its own scratch (e.g. im2col chunks) on top. For <see cref="IBackend.DefaultBatchSize"/>.
    /// </summary>
    public long ActivationBytesPerImage(int height, int width)
    {
        var meter = new WorkspaceMeter();
        using var twin = new Sdtv2Model(Config, State, strict: false, FoldBatchNorm, new LayerCache(meter), ownsBackend: false, _packed, _simulate);
        return Measure(twin, meter, height, width);
    }

    /// <summary>As <see cref="ActivationBytesPerImage(int, int)"/>, for a model not built yet.</summary>
    public static long ActivationBytesPerImage(Sdtv2Config config, StateDict state, int height, int width)
    {
        var meter = new WorkspaceMeter();
        using var probe = new Sdtv2Model(config, state, strict: false, backend: meter);
        return Measure(probe, meter, height, width);
    }

    private static long Measure(Sdtv2Model model, WorkspaceMeter meter, int height, int width)
    {
        model.Forward(new float[model.Config.InChannels * height * width], 1, height, width);
        return meter.PeakFloats * sizeof(float);
    }

    /// <summary>Layers uploaded to the backend by this model and the models derived from it (for tests and diagnostics).</summary>
    public int LayerUploads => _cache.Uploads;

    /// <summary>Releases this model's layers on the backend (those no other model shares), and the backend if it made it.</summary>
    public void Dispose()
    {
        foreach (var layer in _held) _cache.Release(layer);
        _held.Clear();
        if (_replicas.Length > 0 && Backend is DeviceGroup group) group.OnEach(d => { if (d > 0) _replicas[d - 1].Dispose(); });
        if (_ownsBackend) Backend.Dispose();
    }

    private ConvBn Conv(string weightKey, string? biasKey, ConvGeometry g, params string[] bns) =>
        _packed is not null ? ConvBn.FromPacked(_packed, weightKey, biasKey, g, _simulate, bns)
        : _codes?.GetValueOrDefault(weightKey) is { } codes ? new ConvBn(State, weightKey, biasKey, g, FoldBatchNorm, bns).WithCodes(codes)
        : new(State, weightKey, biasKey, g, FoldBatchNorm, bns);

    /// <summary>A packed model's fp32 tensors under official keys; a quantized head is dequantized (it is tiny).</summary>
    private static StateDict FloatState(PackedModel packed)
    {
        var state = new StateDict();
        foreach (var p in packed.Layout.Parameters)
            if (packed.Floats.TryGetValue(p.Key, out var f)) state.Set(p.Key, new Tensor(f, p.Shape));
            else if (packed.Packed.TryGetValue(p.Key, out var w) && p.Key.StartsWith("head", StringComparison.Ordinal))
                state.Set(p.Key, new Tensor(w.Dequantize(), p.Shape));
        return state;
    }

    private (ConvLayer Layer, DeviceBuffer? Pad) Upload(ConvBn conv)
    {
        var r = _cache.Conv(conv);
        _held.Add(r.Layer);
        return r;
    }

    private DownSample DownSampling(string p, int cin, int cout, int stride) =>
        new(this, p, Conv($"{p}.encode_conv.weight", $"{p}.encode_conv.bias", new ConvGeometry(cin, cout, 3, 3, stride, stride, 1, 1), $"{p}.encode_bn"));

    /// <summary>
    /// Logits [batch, classes] for normalized NCHW images [batch, InChannels, H, W], averaged over the T timesteps
    /// (and over head and head_kd with kd). <paramref name="observer"/> sees every LIF layer on the host.
    /// </summary>
    public float[] Forward(ReadOnlySpan<float> images, int batch, int height, int width, ILifObserver? observer = null) =>
        Forward(images, batch, height, width, observer is null ? null : new HostLifObserver(observer, LifNames));

    /// <summary>As above, recording every LIF layer into a recorder made by <see cref="Backend"/> (null: none).</summary>
    public float[] Forward(ReadOnlySpan<float> images, int batch, int height, int width, LifRecorder? recorder)
    {
        if (recorder is IGroupRecorder)
        {
            // A group's recorder runs its passes through the group's queue (it may name the device).
            float[]? logits = null;
            ForwardBatches([new BatchInput(images.ToArray(), batch, height, width)], recorder, (_, l) => logits = l);
            return logits!;
        }
        return Run(images, batch, height, width, _units.Length, recorder).Logits!;
    }

    /// <summary>
    /// Logits of each batch, handed to <paramref name="done"/> (batch index, logits) on the calling thread in batch order.
    /// On one device: Forward of each batch in turn. On a <see cref="DeviceGroup"/> of N devices: a queue (see
    /// <see cref="DeviceGroup.Stream"/>) from which each device takes the next batch as soon as it is free, one host thread
    /// per device, each batch computed exactly as on one device; batch k &lt; N goes to device k, so every device takes
    /// part, and a group drift meter runs each batch where its reference chunk lives. A batch's images need to stay
    /// valid only until the next batch is asked for (each queued batch gets a copy). A recorder not made by the group
    /// runs every batch on the first device.
    /// </summary>
    public void ForwardBatches(IEnumerable<BatchInput> batches, LifRecorder? recorder, Action<int, float[]> done)
    {
        ArgumentNullException.ThrowIfNull(batches);
        ArgumentNullException.ThrowIfNull(done);
        var group = recorder as IGroupRecorder;
        int n = 1 + _replicas.Length;
        if (n == 1 || (recorder is not null && group is null))
        {
            RunPipelined(batches, recorder, group, done);
            return;
        }
        var models = Replicas;
        var copies = new ConcurrentBag<float[]>();
        IEnumerable<((BatchInput Input, float[] Copy), int)> Queued()
        {
            int k = 0;
            foreach (var b in batches)
            {
                long length = (long)b.Batch * Config.InChannels * b.Height * b.Width;
                if (!copies.TryTake(out var copy) || copy.Length < length) copy = new float[length];
                b.Images.Span[..(int)length].CopyTo(copy);
                int pin = group?.NextPass() ?? -1;
                yield return ((b with { Images = copy.AsMemory(0, (int)length) }, copy), pin >= 0 ? pin : k < n ? k : -1);
                k++;
            }
        }
        ((DeviceGroup)Backend).Stream(Queued(), (d, q) =>
        {
            try { return models[d].Run(q.Input.Images.Span, q.Input.Batch, q.Input.Height, q.Input.Width, _units.Length, group?.Part(d)).Logits!; }
            finally { copies.Add(q.Copy); }
        }, (k, logits, d) =>
        {
            group?.Ran(d);
            done(k, logits);
        });
    }

    /// <summary>
    /// Batches on one device, each computed as <see cref="Forward(ReadOnlySpan{float}, int, int, int, LifRecorder?)"/> computes
    /// it: the images of batch k + 1 are asked for and uploaded (<see cref="IBackend.UploadAhead"/>, on a GPU alongside the
    /// compute) once batch k's ops are queued, before its logits are waited for; two input buffers alternate.
    /// </summary>
    private void RunPipelined(IEnumerable<BatchInput> batches, LifRecorder? recorder, IGroupRecorder? group, Action<int, float[]> done)
    {
        var inputs = new DeviceBuffer?[2];
        try
        {
            using var e = batches.GetEnumerator();
            bool more = e.MoveNext();
            var next = more ? e.Current : default;
            if (more) UploadAhead(next, inputs, 0);
            for (int k = 0; more; k++)
            {
                var b = next;
                var input = inputs[k & 1]!;
                group?.NextPass();
                var logits = Run(input, b.Batch, b.Height, b.Width, group?.Part(0) ?? recorder, whileQueued: () =>
                {
                    more = e.MoveNext();
                    if (!more) return;
                    next = e.Current;
                    UploadAhead(next, inputs, (k + 1) & 1);
                }).Logits!;
                group?.Ran(0);
                done(k, logits);
            }
        }
        finally
        {
            if (inputs[0] is not null) Backend.Synchronize(); // a pass left queued by an exception may still read them
            foreach (var buffer in inputs) buffer?.Dispose();
        }
    }

    /// <summary>The images of <paramref name="b"/> into input buffer <paramref name="slot"/> (grown as needed), which no queued op reads.</summary>
    private void UploadAhead(BatchInput b, DeviceBuffer?[] inputs, int slot)
    {
        long length = (long)b.Batch * Config.InChannels * b.Height * b.Width;
        if (b.Batch < 1) throw new ArgumentException($"batch must be at least 1, got {b.Batch}");
        if (b.Images.Length < length)
            throw new ArgumentException($"images hold {b.Images.Length} floats, need {b.Batch}x{Config.InChannels}x{b.Height}x{b.Width}");
        if (inputs[slot] is not { } buffer || buffer.Length < length)
        {
            inputs[slot]?.Dispose();
            inputs[slot] = null;
            inputs[slot] = buffer = Backend.Allocate(length);
        }
        Backend.UploadAhead(b.Images.Span[..(int)length], buffer);
    }

    /// <summary>
    /// Runs the units before <paramref name="unit"/> and returns the residual stream at its start, held on the backend
    /// (the caller disposes it). <see cref="ForwardFrom"/> continues from there, on this model or any other of the same
    /// configuration on the same backend (a candidate that differs only from that unit on), bit-identical to a full pass.
    /// </summary>
    public ResidualStream ForwardUntil(ReadOnlySpan<float> images, int batch, int height, int width, string unit, LifRecorder? recorder = null)
    {
        int u = UnitIndex(unit);
        if (u == 0) throw new QsvitException($"there is no residual stream before {Units[0]}: the images are the input; run Forward");
        return Run(images, batch, height, width, u, recorder).Stream!;
    }

    /// <summary>Runs from the stream's unit to the end: logits [batch, classes]. LIF layers are recorded under their full-pass indices.</summary>
    public float[] ForwardFrom(ResidualStream stream, LifRecorder? recorder = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Forward(default, stream.Batch, stream.ImageHeight, stream.ImageWidth, stream, recorder, null, null);
    }

    /// <summary>
    /// The pass for prefix reuse: from <paramref name="from"/> (null: from the images) to the logits, handing a copy of the
    /// residual stream at the start of every later unit u with <paramref name="capture"/>(u) to <paramref name="captured"/>,
    /// which owns it. Bit-identical to <see cref="Forward(ReadOnlySpan{float}, int, int, int, LifRecorder?)"/>.
    /// </summary>
    public float[] Forward(ReadOnlySpan<float> images, int batch, int height, int width, ResidualStream? from, LifRecorder? recorder,
        Predicate<int>? capture, Action<ResidualStream>? captured)
    {
        if (from is null) return Run(images, batch, height, width, _units.Length, recorder, capture, captured).Logits!;
        if (!ReferenceEquals(from.Backend, Backend)) throw new QsvitException("the residual stream lives on another backend than this model");
        if (from.Timesteps != Config.Timesteps || from.Units != Units.Count)
            throw new QsvitException($"the residual stream was made by another model configuration (T = {from.Timesteps}, {from.Units} units)");
        var pass = Begin(from.Batch, from.ImageHeight, from.ImageWidth, recorder);
        try
        {
            pass.C = from.Channels;
            pass.H = from.Height;
            pass.W = from.Width;
            pass.LifIndex = _lifStart[from.UnitIndex];
            Backend.Copy(from.Buffer, 0, pass.X, 0, from.Length);
            RunUnits(pass, from.UnitIndex, _units.Length, capture, captured);
            return DownloadLogits(pass);
        }
        finally { Backend.Release(pass.Mark); }
    }

    /// <summary>Index of the first LIF layer (in <see cref="LifNames"/>) of unit <paramref name="unit"/>; <see cref="LifNames"/>.Count past the last unit.</summary>
    public int FirstLifOf(int unit) => _lifStart[unit];

    /// <summary>
    /// A stream copied back from the host (<see cref="ResidualStream.CopyTo"/>, e.g. after spilling it to disk): the
    /// residual stream at the start of <paramref name="unit"/> for <paramref name="batch"/> images of the given size.
    /// </summary>
    public ResidualStream LoadStream(string unit, int batch, int imageHeight, int imageWidth, ReadOnlySpan<float> stream)
    {
        int u = UnitIndex(unit);
        if (u == 0) throw new QsvitException($"there is no residual stream before {Units[0]}");
        if (batch < 1) throw new ArgumentException($"batch must be at least 1, got {batch}");
        var shape = (C: 0, H: imageHeight, W: imageWidth);
        for (int i = 0; i < u; i++) shape = _units[i].OutputShape(shape);
        long length = (long)batch * Config.Timesteps * shape.C * shape.H * shape.W;
        if (stream.Length != length)
            throw new QsvitException($"a stream at {unit} for {batch} images of {imageHeight}x{imageWidth} holds {length} floats, got {stream.Length}");
        var buffer = Backend.Allocate(length);
        Backend.Upload(stream, buffer);
        return new ResidualStream(Backend, buffer, u, unit, Units.Count, Config.Timesteps, batch, shape.C, shape.H, shape.W, imageHeight, imageWidth);
    }

    /// <summary>Index of a unit name in <see cref="Units"/>.</summary>
    public int UnitIndex(string unit)
    {
        for (int i = 0; i < Units.Count; i++) if (Units[i] == unit) return i;
        throw new QsvitException($"'{unit}' is not a unit of this model (units: {string.Join(", ", Units)})");
    }

    /// <summary>
    /// Logits of one pass in which <paramref name="probe"/> sees every conv layer on the device and may change its output
    /// (calibration after quantization, <see cref="IConvProbe"/>). Runs on the first device of a group; BatchNorms must not
    /// be folded, since the probe works on them.
    /// </summary>
    public float[] Probe(ReadOnlySpan<float> images, int batch, int height, int width, IConvProbe probe)
    {
        ArgumentNullException.ThrowIfNull(probe);
        if (FoldBatchNorm) throw new QsvitException("a probed pass needs the BatchNorms as they are stored; build the model without folding");
        return Run(images, batch, height, width, _units.Length, null, probe: probe).Logits!;
    }

    private (float[]? Logits, ResidualStream? Stream) Run(ReadOnlySpan<float> images, int batch, int height, int width, int untilUnit,
        LifRecorder? recorder, Predicate<int>? capture = null, Action<ResidualStream>? captured = null, IConvProbe? probe = null)
    {
        int c0 = Config.InChannels;
        if (batch < 1) throw new ArgumentException($"batch must be at least 1, got {batch}");
        if (images.Length < (long)batch * c0 * height * width)
            throw new ArgumentException($"images hold {images.Length} floats, need {batch}x{c0}x{height}x{width}");
        var pass = Begin(batch, height, width, recorder);
        pass.Probe = probe;
        try
        {
            pass.Images = Backend.Rent((long)batch * c0 * height * width);
            Backend.Upload(images[..(batch * c0 * height * width)], pass.Images);
            return Finish(pass, untilUnit, capture, captured, null);
        }
        finally { Backend.Release(pass.Mark); }
    }

    /// <summary>The pass over images already on the device (<see cref="RunPipelined"/>).</summary>
    private (float[]? Logits, ResidualStream? Stream) Run(DeviceBuffer images, int batch, int height, int width, LifRecorder? recorder, Action whileQueued)
    {
        var pass = Begin(batch, height, width, recorder);
        try
        {
            pass.Images = images;
            return Finish(pass, _units.Length, null, null, whileQueued);
        }
        finally { Backend.Release(pass.Mark); }
    }

    /// <summary>Runs the units from the images; <paramref name="whileQueued"/> runs once every op of a full pass is queued, before its logits are waited for.</summary>
    private (float[]? Logits, ResidualStream? Stream) Finish(Pass pass, int untilUnit, Predicate<int>? capture, Action<ResidualStream>? captured,
        Action? whileQueued)
    {
        RunUnits(pass, 0, untilUnit, capture, captured);
        if (untilUnit < _units.Length) return (null, StreamOf(pass, untilUnit));
        whileQueued?.Invoke();
        return (DownloadLogits(pass), null);
    }

    /// <summary>The logits the head left on the device (<see cref="Pass.LogitsOnDevice"/>), waiting for the pass.</summary>
    private float[] DownloadLogits(Pass pass)
    {
        var logits = new float[pass.Batch * Config.NumClasses];
        Backend.Download(pass.LogitsOnDevice!, 0, logits);
        return logits;
    }

    private void RunUnits(Pass pass, int first, int until, Predicate<int>? capture, Action<ResidualStream>? captured)
    {
        for (int u = first; u < until; u++)
        {
            if (u > first && captured is not null && capture is not null && capture(u)) captured(StreamOf(pass, u));
            _units[u].Run(pass);
        }
    }

    /// <summary>A copy of the pass's residual stream, at the start of unit <paramref name="unit"/>.</summary>
    private ResidualStream StreamOf(Pass pass, int unit)
    {
        pass.Flush();
        long length = pass.StreamLength;
        var buffer = Backend.Allocate(length);
        Backend.Copy(pass.X, 0, buffer, 0, length);
        return new ResidualStream(Backend, buffer, unit, Units[unit], Units.Count, Config.Timesteps, pass.Batch, pass.C, pass.H, pass.W,
            pass.ImageHeight, pass.ImageWidth);
    }

    private Pass Begin(int batch, int height, int width, LifRecorder? recorder)
    {
        var pass = new Pass(this, recorder, batch, height, width) { Mark = Backend.Mark() };
        var g = _stemSpec.Geometry;
        long maxStream = MaxStreamLength(batch, g.OutH(height), g.OutW(width));
        pass.X = Backend.Rent(maxStream);
        pass.Y = Backend.Rent(maxStream);
        return pass;
    }

    private long MaxStreamLength(int batch, int h, int w)
    {
        int[] d = Config.EmbedDim;
        long frames = (long)batch * Config.Timesteps;
        int h2 = (h + 1) / 2, w2 = (w + 1) / 2;
        return frames * Math.Max((long)d[0] / 2 * h * w, (long)d[0] * h2 * w2);
    }

    /// <summary>State of one forward pass: the residual stream (X, with Y spare), its shape, the LIF call counter.</summary>
    private sealed class Pass(Sdtv2Model model, LifRecorder? recorder, int batch, int imageHeight, int imageWidth)
    {
        public readonly IBackend B = model.Backend;
        public int Mark;
        public int LifIndex;
        public DeviceBuffer Images = null!, X = null!, Y = null!;
        public int C, H, W;
        /// <summary>[Batch, classes], written by the head, rented until the pass ends.</summary>
        public DeviceBuffer? LogitsOnDevice;
        public int Batch => batch;
        public int ImageHeight => imageHeight;
        public int ImageWidth => imageWidth;
        public int Timesteps => model.Config.Timesteps;
        public int Frames => batch * model.Config.Timesteps;
        public long StreamLength => (long)Frames * C * H * W;

        /// <summary>
        /// Spikes of the next LIF layer over [T, …] data, from the workspace. Over the stream with a residual add pending
        /// (<see cref="AddToStream"/>), the add and the LIF run as one backend op. <paramref name="next"/>: the op the caller
        /// runs next on the spikes, reading them in no other way (the backend may write them in its form); a probe sees floats.
        /// </summary>
        public DeviceBuffer Lif(DeviceBuffer input, long length, float threshold, SpikeReader? next = null)
        {
            var spikes = B.Rent(length);
            if (Probe is not null) next = null;
            if (ReferenceEquals(input, X) && _pendingAdd is { } y)
            {
                _pendingAdd = null;
                B.AddLif(X, y, length, spikes, Timesteps, threshold, recorder, LifIndex++, next);
                return spikes;
            }
            B.Lif(input, spikes, length, Timesteps, threshold, recorder, LifIndex++, next);
            return spikes;
        }

        /// <summary>The branch output (in <see cref="Y"/>) still to be added into X: the add of a unit's last residual branch.</summary>
        private DeviceBuffer? _pendingAdd;

        /// <summary>
        /// X += <see cref="Y"/>, the unit's last residual add, deferred to the next op that reads X: every unit after a
        /// residual branch opens with a LIF over X, which then runs as the fused add + LIF; anything else that reads X
        /// (<see cref="Flush"/>) adds first. Y stays untouched until then (only a downsampling writes it, after its LIF).
        /// </summary>
        public void AddToStream()
        {
            Flush();
            _pendingAdd = Y;
        }

        /// <summary>Runs the deferred residual add, if any (before X is read other than by a LIF, or handed out).</summary>
        public void Flush()
        {
            if (_pendingAdd is not { } y) return;
            _pendingAdd = null;
            B.Add(X, y, StreamLength);
        }

        /// <summary>
        /// The conv into <paramref name="output"/> and the spikes of the next LIF layer over it, from the workspace; the
        /// backend may fuse the two (and leave output unwritten), recording what the separate ops would; a probe sees the ops.
        /// </summary>
        public DeviceBuffer ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output, long length, float threshold)
        {
            if (Probe is not null)
            {
                Conv(layer, input, frames, height, width, output);
                return Lif(output, length, threshold);
            }
            var spikes = B.Rent(length);
            B.ConvLif(layer, input, frames, height, width, output, spikes, Timesteps, threshold, LifIndex++, recorder);
            return spikes;
        }

        /// <summary>
        /// <see cref="ConvLif"/> of <paramref name="first"/>, then <paramref name="second"/> over its spikes into
        /// <paramref name="output"/>, as one backend op (which records as the separate ops would) unless a probe watches.
        /// </summary>
        public void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, long length,
            float threshold, ConvLayer second, DeviceBuffer output)
        {
            if (Probe is not null)
            {
                var s = ConvLif(first, input, frames, height, width, preActivation, length, threshold);
                Conv(second, s, frames, height, width, output);
                return;
            }
            var spikes = B.Rent(length);
            B.ConvLifConv(first, input, frames, height, width, preActivation, spikes, Timesteps, threshold, LifIndex++, recorder, second, output);
        }

        /// <summary>
        /// q_lif, k_lif, v_lif over q, k, v [Frames, C, N], SDSA of their spikes, then attn_lif: its spikes, from the workspace,
        /// as one backend op (which may leave q, k and v undefined).
        /// </summary>
        public DeviceBuffer LifAttentionLif(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, int channels, int tokens, int heads, float scale)
        {
            var spikes = B.Rent((long)Frames * channels * tokens);
            B.LifAttentionLif(q, k, v, Frames, channels, tokens, heads, scale, Timesteps, MultiStepLif.DefaultThreshold, MultiStepLif.AttentionThreshold,
                spikes, recorder, LifIndex);
            LifIndex += 4;
            return spikes;
        }

        /// <summary>
        /// X += y, then the next LIF layer over X into <paramref name="spikes"/> (rented by the caller), as one backend op;
        /// <paramref name="next"/> as for <see cref="Lif"/>.
        /// </summary>
        public DeviceBuffer AddLif(DeviceBuffer y, long length, float threshold, DeviceBuffer spikes, SpikeReader? next = null)
        {
            Flush();
            B.AddLif(X, y, length, spikes, Timesteps, threshold, recorder, LifIndex++, Probe is null ? next : null);
            return spikes;
        }

        public void Swap() => (X, Y) = (Y, X);

        /// <summary>Calibration only (<see cref="Sdtv2Model.Probe"/>); null in every other pass.</summary>
        public IConvProbe? Probe;

        /// <summary>The backend's conv, shown to the probe when there is one (each frame standing for <paramref name="repeat"/>).</summary>
        public void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output, int repeat = 1)
        {
            B.Conv(layer, input, frames, height, width, output);
            if (Probe is null) return;
            var call = new ConvCall(layer.Spec.Keys ?? throw new InvalidOperationException("a model's conv layer carries its keys"),
                layer.Geometry, frames, height, width, repeat);
            int mark = B.Mark();
            Probe.OnConv(call, B, input, output);
            B.Release(mark);
        }

        /// <summary>The pad values of a BN-padded layer: the probe's when it has re-estimated that BatchNorm, else the model's.</summary>
        public DeviceBuffer PadValues(string batchNorm, DeviceBuffer model)
        {
            if (Probe?.PadValues(batchNorm) is not { } values) return model;
            var buffer = B.Rent(values.Length);
            B.Upload(values, buffer);
            return buffer;
        }
    }

    /// <summary>One of the paper's units: a slice of the pass that reads and writes the residual stream.</summary>
    private abstract class Unit
    {
        public abstract IEnumerable<string> LifNames { get; }
        public abstract void Run(Pass p);
        /// <summary>The stream's shape after this unit (channels, height, width); most units keep it.</summary>
        public virtual (int C, int H, int W) OutputShape((int C, int H, int W) input) => input;
    }

    /// <summary>DS_S1_B1, the stem: conv + BN of the images (no LIF before it), then the repeat over T.</summary>
    private sealed class Stem(Sdtv2Model m) : Unit
    {
        private readonly ConvLayer _conv = m.Upload(m._stemSpec).Layer;
        public override IEnumerable<string> LifNames => [];
        public override (int C, int H, int W) OutputShape((int C, int H, int W) image) =>
            (_conv.Geometry.OutChannels, _conv.Geometry.OutH(image.H), _conv.Geometry.OutW(image.W));

        public override void Run(Pass p)
        {
            var g = _conv.Geometry;
            p.C = g.OutChannels;
            p.H = g.OutH(p.ImageHeight);
            p.W = g.OutW(p.ImageWidth);
            // The official model repeats the image over T; the stem sees identical frames, so run it once and replicate
            // (one backend op: the conv may write the copies itself), or show the probe the conv.
            if (p.Probe is null)
            {
                p.B.ConvRepeat(_conv, p.Images, p.Batch, p.ImageHeight, p.ImageWidth, p.X, p.Timesteps);
                return;
            }
            p.Conv(_conv, p.Images, p.Batch, p.ImageHeight, p.ImageWidth, p.X, repeat: p.Timesteps);
            p.B.RepeatBlock(p.X, (long)p.Batch * p.C * p.H * p.W, p.Timesteps);
        }
    }

    /// <summary>MS_DownSampling after the stem: encode_lif, then conv + BN into the spare stream buffer.</summary>
    private sealed class DownSample(Sdtv2Model m, string prefix, ConvBn conv) : Unit
    {
        private readonly ConvLayer _conv = m.Upload(conv).Layer;
        public override IEnumerable<string> LifNames => [$"{prefix}.encode_lif"];
        public override (int C, int H, int W) OutputShape((int C, int H, int W) input) =>
            (_conv.Geometry.OutChannels, _conv.Geometry.OutH(input.H), _conv.Geometry.OutW(input.W));

        public override void Run(Pass p)
        {
            int mark = p.B.Mark();
            var s = p.Lif(p.X, p.StreamLength, MultiStepLif.DefaultThreshold, SpikeReader.Conv(_conv, p.Frames, p.H, p.W));
            p.Conv(_conv, s, p.Frames, p.H, p.W, p.Y);
            p.B.Release(mark);
            p.Swap();
            p.C = _conv.Geometry.OutChannels;
            p.H = _conv.Geometry.OutH(p.H);
            p.W = _conv.Geometry.OutW(p.W);
        }
    }

    /// <summary>MS_ConvBlock: x += SepConv(x); x += bn2(conv2(lif2(bn1(conv1(lif1(x)))))).</summary>
    private sealed class ConvBlock : Unit
    {
        private readonly string _prefix;
        private readonly ConvLayer _pw1, _dw, _pw2, _conv1, _conv2;

        public ConvBlock(Sdtv2Model m, string p, int dim)
        {
            _prefix = p;
            int med = 2 * dim, hidden = dim * m.Config.MlpRatio;
            _pw1 = m.Upload(m.Conv($"{p}.Conv.pwconv1.weight", null, new ConvGeometry(dim, med, 1, 1), $"{p}.Conv.bn1")).Layer;
            _dw = m.Upload(m.Conv($"{p}.Conv.dwconv.weight", null, new ConvGeometry(med, med, 7, 7, 1, 1, 3, 3, med))).Layer;
            _pw2 = m.Upload(m.Conv($"{p}.Conv.pwconv2.weight", null, new ConvGeometry(med, dim, 1, 1), $"{p}.Conv.bn2")).Layer;
            _conv1 = m.Upload(m.Conv($"{p}.conv1.weight", null, new ConvGeometry(dim, hidden, 3, 3, 1, 1, 1, 1), $"{p}.bn1")).Layer;
            _conv2 = m.Upload(m.Conv($"{p}.conv2.weight", null, new ConvGeometry(hidden, dim, 3, 3, 1, 1, 1, 1), $"{p}.bn2")).Layer;
        }

        public override IEnumerable<string> LifNames => [$"{_prefix}.Conv.lif1", $"{_prefix}.Conv.lif2", $"{_prefix}.lif1", $"{_prefix}.lif2"];

        public override void Run(Pass p)
        {
            var b = p.B;
            int frames = p.Frames, h = p.H, w = p.W;
            long n = p.StreamLength;
            int mark = b.Mark();
            // lif1's spikes outlive the first half's buffers: rented first, written by the residual add's fused LIF.
            var s3 = b.Rent(n);
            int half = b.Mark();
            var s1 = p.Lif(p.X, n, MultiStepLif.DefaultThreshold, SpikeReader.ConvLif(_pw1, frames, h, w));
            var a = b.Rent(n * 2);
            var s2 = p.ConvLif(_pw1, s1, frames, h, w, a, n * 2, MultiStepLif.DefaultThreshold);
            p.Conv(_dw, s2, frames, h, w, a);
            var e = b.Rent(n);
            p.Conv(_pw2, a, frames, h, w, e);
            p.AddLif(e, n, MultiStepLif.DefaultThreshold, s3, SpikeReader.ConvLifConv(_conv1, _conv2, frames, h, w));
            b.Release(half);

            long hiddenN = n / p.C * _conv1.Geometry.OutChannels;
            var f = b.Rent(hiddenN);
            p.ConvLifConv(_conv1, s3, frames, h, w, f, hiddenN, MultiStepLif.DefaultThreshold, _conv2, p.Y);
            p.AddToStream();
            b.Release(mark);
        }
    }

    /// <summary>RepConv + BatchNorm: BN-padded 1x1 conv, 3x3 depthwise (no padding), 1x1 conv, two BNs.</summary>
    private sealed class RepConvBn
    {
        private readonly ConvLayer _conv1x1, _dw, _pw;
        private readonly DeviceBuffer _pad;
        private readonly string _padBn;

        public RepConvBn(Sdtv2Model m, string p, int dim)
        {
            // Folding BNAndPadLayer's BN into the 1x1 conv makes its bias equal the pad value BN(0).
            (_conv1x1, var pad) = m.Upload(m.Conv($"{p}.0.body.0.weight", null, new ConvGeometry(dim, dim, 1, 1), $"{p}.0.body.1.bn"));
            _pad = pad!;
            _padBn = $"{p}.0.body.1.bn";
            _dw = m.Upload(m.Conv($"{p}.0.body.2.0.weight", null, new ConvGeometry(dim, dim, 3, 3, 1, 1, 0, 0, dim))).Layer;
            _pw = m.Upload(m.Conv($"{p}.0.body.2.1.weight", null, new ConvGeometry(dim, dim, 1, 1), $"{p}.0.body.2.2", $"{p}.1")).Layer;
        }

        /// <summary>The three layers and the pad values, as the backend takes them.</summary>
        public RepConvLayers Layers => new(_conv1x1, _pad, _dw, _pw);

        public void Run(Pass p, DeviceBuffer spikes, int c, int h, int w, DeviceBuffer output)
        {
            var b = p.B;
            int frames = p.Frames;
            if (p.Probe is null)
            {
                b.RepConv(_conv1x1, _pad, _dw, _pw, spikes, frames, h, w, output);
                return;
            }
            // Calibration shows the probe each conv, and the padded map the depthwise conv reads.
            int mark = b.Mark();
            var inner = b.Rent((long)frames * c * h * w);
            p.Conv(_conv1x1, spikes, frames, h, w, inner);
            var padValues = p.PadValues(_padBn, _pad);
            var dw = b.Rent((long)frames * c * h * w);
            var padded = b.Rent((long)frames * c * (h + 2) * (w + 2));
            b.Pad(inner, frames, c, h, w, 1, padValues, padded);
            p.Conv(_dw, padded, frames, h + 2, w + 2, dw);
            p.Conv(_pw, dw, frames, h, w, output);
            b.Release(mark);
        }
    }

    /// <summary>MS_Block: x += proj(attn_lif(SDSA(q, k, v))); x += MLP(x).</summary>
    private sealed class TransformerBlock : Unit
    {
        private readonly string _prefix;
        private readonly RepConvBn _q, _k, _v, _proj;
        private readonly ConvLayer _fc1, _fc2;
        private readonly int _heads;

        public TransformerBlock(Sdtv2Model m, string p, int dim)
        {
            _prefix = p;
            _q = new RepConvBn(m, $"{p}.attn.q_conv", dim);
            _k = new RepConvBn(m, $"{p}.attn.k_conv", dim);
            _v = new RepConvBn(m, $"{p}.attn.v_conv", dim);
            _proj = new RepConvBn(m, $"{p}.attn.proj_conv", dim);
            int hidden = dim * m.Config.MlpRatio;
            _fc1 = m.Upload(m.Conv($"{p}.mlp.fc1_conv.weight", $"{p}.mlp.fc1_conv.bias", new ConvGeometry(dim, hidden, 1, 1), $"{p}.mlp.fc1_bn")).Layer;
            _fc2 = m.Upload(m.Conv($"{p}.mlp.fc2_conv.weight", $"{p}.mlp.fc2_conv.bias", new ConvGeometry(hidden, dim, 1, 1), $"{p}.mlp.fc2_bn")).Layer;
            _heads = m.Config.NumHeads;
        }

        public override IEnumerable<string> LifNames => [$"{_prefix}.attn.head_lif", $"{_prefix}.attn.q_lif", $"{_prefix}.attn.k_lif",
            $"{_prefix}.attn.v_lif", $"{_prefix}.attn.attn_lif", $"{_prefix}.mlp.fc1_lif", $"{_prefix}.mlp.fc2_lif"];

        public override void Run(Pass p)
        {
            var b = p.B;
            int frames = p.Frames, c = p.C, h = p.H, w = p.W, tokens = h * w;
            long n = p.StreamLength;
            int mark = b.Mark();
            // mlp's fc1_lif spikes outlive the attention's buffers: rented first, written by the residual add's fused LIF.
            var m1 = b.Rent(n);
            int half = b.Mark();
            RepConvLayers[] qkv = [_q.Layers, _k.Layers, _v.Layers];
            var s = p.Lif(p.X, n, MultiStepLif.DefaultThreshold, SpikeReader.RepConvs(qkv, frames, h, w));
            var q = b.Rent(n);
            var k = b.Rent(n);
            var v = b.Rent(n);
            // q, k and v read the same spikes: one backend op (which may pack them once) unless a probe watches each conv.
            if (p.Probe is null) b.RepConvs(qkv, s, frames, h, w, [q, k, v]);
            else
            {
                _q.Run(p, s, c, h, w, q);
                _k.Run(p, s, c, h, w, k);
                _v.Run(p, s, c, h, w, v);
            }
            var sa = p.LifAttentionLif(q, k, v, c, tokens, _heads, 0.125f);
            _proj.Run(p, sa, c, h, w, k);
            p.AddLif(k, n, MultiStepLif.DefaultThreshold, m1, SpikeReader.ConvLifConv(_fc1, _fc2, frames, 1, tokens));
            b.Release(half);

            long hiddenN = n / c * _fc1.Geometry.OutChannels;
            var hid = b.Rent(hiddenN);
            p.ConvLifConv(_fc1, m1, frames, 1, tokens, hid, hiddenN, MultiStepLif.DefaultThreshold, _fc2, p.Y);
            p.AddToStream();
            b.Release(mark);
        }
    }

    /// <summary>HEAD: spatial mean, the final lif, then head (and head_kd) averaged over T.</summary>
    private sealed class Head : Unit
    {
        private readonly HeadLayer _head;

        public Head(Sdtv2Model m)
        {
            var c = m.Config;
            var s = m.State;
            string[] keys = c.Kd ? ["head.weight", "head.bias", "head_kd.weight", "head_kd.bias"] : ["head.weight", "head.bias"];
            var heads = new List<LinearWeights> { new(s["head.weight"].Data, s["head.bias"].Data) { Module = "head" } };
            if (c.Kd) heads.Add(new LinearWeights(s["head_kd.weight"].Data, s["head_kd.bias"].Data) { Module = "head_kd" });
            _head = m._cache.Head("head", keys.Select(k => s[k].Data).ToArray(), heads, c.EmbedDim[3], c.NumClasses);
            m._held.Add(_head);
        }

        public override IEnumerable<string> LifNames => ["lif"];

        public override void Run(Pass p)
        {
            var b = p.B;
            int frames = p.Frames, ch = p.C, classes = _head.Classes;
            // The logits outlive the unit: the pass downloads them (after queuing the next pass's upload).
            var logits = b.Rent((long)p.Batch * classes);
            int mark = b.Mark();
            var pooled = b.Rent((long)frames * ch);
            p.Flush();
            b.SpatialMean(p.X, frames * ch, p.H * p.W, pooled);
            // Both heads read the spikes of the final lif (the reference outputs agree with this, not with head(x)).
            var spikes = p.Lif(pooled, (long)frames * ch, MultiStepLif.DefaultThreshold);
            b.Head(_head, spikes, p.Batch, p.Timesteps, logits);
            p.LogitsOnDevice = logits;
            b.Release(mark);
        }
    }
}

/// <summary>
/// The residual stream [T·B, C, H, W] at the start of a unit, held on the backend (<see cref="Sdtv2Model.ForwardUntil"/>),
/// for prefix reuse: every candidate that differs from the model that made it only from <see cref="Unit"/> on can
/// continue from it (<see cref="Sdtv2Model.ForwardFrom"/>). Dispose to free the device memory.
/// </summary>
public sealed class ResidualStream : IDisposable
{
    internal ResidualStream(IBackend backend, DeviceBuffer buffer, int unitIndex, string unit, int units, int timesteps, int batch,
        int channels, int height, int width, int imageHeight, int imageWidth)
    {
        Backend = backend;
        Buffer = buffer;
        UnitIndex = unitIndex;
        Unit = unit;
        Units = units;
        Timesteps = timesteps;
        Batch = batch;
        Channels = channels;
        Height = height;
        Width = width;
        ImageHeight = imageHeight;
        ImageWidth = imageWidth;
    }

    public IBackend Backend { get; }
    internal DeviceBuffer Buffer { get; }
    internal int Units { get; }
    /// <summary>The unit that runs next, and its index in <see cref="Sdtv2Model.Units"/>.</summary>
    public string Unit { get; }
    public int UnitIndex { get; }
    public int Timesteps { get; }
    public int Batch { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    /// <summary>The size of the images the stream came from.</summary>
    public int ImageHeight { get; }
    public int ImageWidth { get; }
    /// <summary>Floats in the stream: T·B·C·H·W.</summary>
    public long Length => (long)Timesteps * Batch * Channels * Height * Width;

    /// <summary>Copies the stream to the host (time-first [T·B, C, H, W]), e.g. to spill it to disk.</summary>
    public void CopyTo(Span<float> destination)
    {
        if (destination.Length < Length) throw new ArgumentException($"destination holds {destination.Length} floats, the stream {Length}");
        Backend.Download(Buffer, 0, destination[..checked((int)Length)]);
    }

    public void Dispose() => Buffer.Dispose();
}

/// <summary>Normalized NCHW images [Batch, C, Height, Width] of one forward pass.</summary>
public readonly record struct BatchInput(ReadOnlyMemory<float> Images, int Batch, int Height, int Width);
