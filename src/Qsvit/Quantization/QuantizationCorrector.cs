using System.Runtime.InteropServices;
using Qsvit.Backends;
using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Tensors;

namespace Qsvit.Quantization;

/// <summary>
/// Corrects a quantized network with calibration images (<see cref="CorrectionOptions"/>), through the one model wiring
/// (<see cref="Sdtv2Model.Probe"/>), so on any backend. Only biases and BatchNorm parameters change, under their official
/// keys: the corrected state_dict runs, packs and exports like any other.
/// <para><b>Bias correction</b> (empirical, as AIMET's): for each quantized conv, Δ[oc] = E[(W_q − W)·x] over the calibration
/// images and all output positions, computed exactly as (W_q − W) applied to the mean of the layer's im2col input (so
/// zero padding and strides count as the conv sees them). x is the <i>fp32</i> network's input to the layer: then Δ does
/// not depend on the other layers' widths, one calibration pass serves every setting a search tries, and a search
/// decides on the very model it returns at no extra cost. The quantized network's own inputs would add the upstream
/// layers' drift, and centring that is what BatchNorm re-estimation does (the mean it re-measures at each BN is the
/// sequential bias correction). Δ is subtracted where it is exact with how qsvit (and PyTorch) applies BN: from the conv's
/// bias when it has one (the bias is added before the BN), else added to the following BN's running_mean (BN(y − Δ) with
/// mean μ is BN(y) with mean μ + Δ). A conv with neither (the depthwise convs of SepConv and RepConv) passes W_q'·Δ on
/// to the pointwise conv after it, whose BN takes it. RepConv's BNAndPadLayer computes its pad from the same statistics,
/// as in PyTorch, so its pad moves with the correction. The classifier head is not corrected.</para>
/// <para><b>BatchNorm re-estimation</b>: one pass of all calibration images as one batch through the quantized network;
/// at each conv the probe recovers the BN's input, replaces running_mean and running_var by its mean and unbiased variance
/// over N×T×H×W (what PyTorch's BN stores in train mode with momentum 1), and passes the re-normalized output on, so every
/// later BN sees the network as corrected so far: layer by layer in network order, in one pass. It starts at the first
/// quantized conv (the fp32 layers before it keep the statistics of the whole training set). Channels whose BN scale is
/// 0 (their input cannot be recovered) keep their statistics. All images as one batch, on the model's device.</para>
/// <para>Both work on the device through the backend's calibration reductions (<see cref="IConvProbe"/>): on a GPU only
/// per-position input sums and per-channel moments come to the host, all in double, in fixed orders.</para>
/// </summary>
public sealed class QuantizationCorrector : IDisposable
{
    /// <summary>Corrected tensors kept per key for <see cref="Intern"/>: a beam's live candidates and their parents.</summary>
    private const int InternedPerKey = 32;

    private readonly Sdtv2Model _fp32;
    private readonly Dictionary<string, List<float[]>> _interned = new(StringComparer.Ordinal);
    private Sdtv2Model? _probeModel;
    private readonly CalibrationImages _images;
    private readonly int _batchSize;
    private InputMeans? _means;

    public CorrectionOptions Options { get; }
    /// <summary>Calibration passes run so far (each over all calibration images): one for bias correction's means, one per BN re-estimation.</summary>
    public int Passes { get; private set; }
    /// <summary>Images run through a network for calibration so far.</summary>
    public long ImagesRun => (long)Passes * _images.Count;
    public int CalibrationImageCount => _images.Count;

    /// <param name="fp32">The unquantized network, on the backend the corrections run on (not folded).</param>
    /// <param name="batchSize">Images per pass when measuring the fp32 means (BN re-estimation runs all images as one batch).</param>
    public QuantizationCorrector(Sdtv2Model fp32, CalibrationImages images, CorrectionOptions options, int batchSize = 32)
    {
        ArgumentNullException.ThrowIfNull(fp32);
        ArgumentNullException.ThrowIfNull(images);
        options.Validate();
        if (fp32.FoldBatchNorm) throw new QsvitException("corrections need the BatchNorms as stored; build the fp32 model without folding");
        if (images.Channels != fp32.Config.InChannels)
            throw new QsvitException($"calibration images have {images.Channels} channels, the model takes {fp32.Config.InChannels}");
        if (batchSize < 1) throw new QsvitException($"batch size must be at least 1, got {batchSize}");
        _fp32 = fp32;
        _images = images;
        Options = options;
        _batchSize = batchSize;
    }

    /// <summary>The quantized network with the corrections applied (itself when <see cref="CorrectionOptions.IsNone"/>).</summary>
    public QuantizedModel Correct(QuantizedModel quantized)
    {
        if (Options.IsNone) return quantized;
        var state = quantized.StateDict.Copy();
        if (Options.Bias) CorrectBiases(quantized, state);
        if (Options.BatchNorm) ReestimateBatchNorms(state, quantized);
        return quantized with { StateDict = state, Correction = Options };
    }

    /// <summary>
    /// The fp32 state_dict with <paramref name="corrected"/>'s biases and BatchNorm parameters: a network that quantizes
    /// (e.g. packs, <see cref="PackedModel.Create"/>) into the corrected one, since corrections never touch conv/linear weights.
    /// </summary>
    public static StateDict WithCorrections(StateDict fp32, QuantizedModel corrected, Sdtv2Layout layout)
    {
        var result = fp32.Copy();
        foreach (var key in corrected.StateDict.Keys)
            if (!layout.TryGetWeight(key, out _)) result.Set(key, corrected.StateDict[key], corrected.StateDict.StoredType(key));
        return result;
    }

    /// <summary>Each conv's own mean output error Δ = E[(W_q − W)·x] per output channel on the fp32 inputs (keys in pass order).</summary>
    internal IReadOnlyList<(ConvCall Call, double[] Error)> OutputErrors(QuantizedModel quantized)
    {
        var means = Means();
        return means.Calls.Select(call => (call, OwnError(call, means.Taps[call.Keys.Weight], quantized))).ToArray();
    }

    private void CorrectBiases(QuantizedModel quantized, StateDict state)
    {
        double[]? carry = null;   // error of a conv with neither bias nor BN, for the pointwise conv after it
        foreach (var (call, own) in OutputErrors(quantized))
        {
            var error = own;
            if (carry is not null)
            {
                var g = call.Geometry;
                if (!g.IsPointwise || g.InChannels != carry.Length)
                    throw new InvalidOperationException($"'{call.Keys.Weight}' follows a conv without bias or BN but is not pointwise");
                var w = state[call.Keys.Weight].Data;   // the quantized weights the corrected network runs
                for (int oc = 0; oc < g.OutChannels; oc++)
                {
                    double sum = 0;
                    for (int c = 0; c < g.InChannels; c++) sum += w[oc * g.InChannels + c] * carry[c];
                    error[oc] += sum;
                }
                carry = null;
            }
            if (call.Keys.Bias is { } bias) Shift(state, bias, error, -1);
            else if (call.Keys.BatchNorms.Count > 0) Shift(state, call.Keys.BatchNorms[0] + ".running_mean", error, +1);
            else carry = error;
        }
        if (carry is not null) throw new InvalidOperationException("the last conv has neither bias nor BN");
    }

    private void Shift(StateDict state, string key, double[] error, int sign)
    {
        if (error.All(e => e == 0)) return;   // unquantized: leave the fp32 tensor shared
        var t = state[key].Clone();
        for (int i = 0; i < error.Length; i++) t.Data[i] = (float)(t.Data[i] + sign * error[i]);
        SetInterned(state, key, t.Data);   // float32: a half-precision source dtype would round the correction off
    }

    /// <summary>
    /// state[key] = values, as the very array of an earlier correction when one holds the same bits. Corrections of a
    /// layer depend only on the widths up to it, so settings that share a prefix (a search's parent and children) get
    /// the same arrays there, and the backend's layers built from them are shared instead of uploaded again
    /// (<see cref="Sdtv2Model.WithState"/>).
    /// </summary>
    private void SetInterned(StateDict state, string key, float[] values) => state.Set(key, new Tensor(Intern(key, values), values.Length));

    private float[] Intern(string key, float[] values)
    {
        if (!_interned.TryGetValue(key, out var list)) _interned[key] = list = new List<float[]>(InternedPerKey);
        var bits = MemoryMarshal.AsBytes(values.AsSpan());
        foreach (var known in list)
            if (bits.SequenceEqual(MemoryMarshal.AsBytes(known.AsSpan()))) return known;
        if (list.Count == InternedPerKey) list.RemoveAt(0);
        list.Add(values);
        return values;
    }

    /// <summary>Releases the last BN re-estimation's network (kept so that the next one shares its layers).</summary>
    public void Dispose()
    {
        _probeModel?.Dispose();
        _probeModel = null;
    }

    /// <summary>(W_q − W)·E[im2col(x)] per output channel; zeros where the weight is not quantized.</summary>
    private double[] OwnError(ConvCall call, double[] taps, QuantizedModel quantized)
    {
        var g = call.Geometry;
        var error = new double[g.OutChannels];
        var q = quantized.StateDict[call.Keys.Weight].Data;
        var w = _fp32.State[call.Keys.Weight].Data;
        if (ReferenceEquals(q, w)) return error;
        int perGroupIn = g.InChannels / g.Groups, perGroupOut = g.OutChannels / g.Groups, k = g.KernelH * g.KernelW, row = perGroupIn * k;
        Parallel.For(0, g.OutChannels, oc =>
        {
            int firstIn = oc / perGroupOut * perGroupIn;
            double sum = 0;
            for (int i = 0; i < row; i++) sum += ((double)q[oc * row + i] - w[oc * row + i]) * taps[firstIn * k + i];
            error[oc] = sum;
        });
        return error;
    }

    /// <summary>The fp32 network's mean im2col input of every conv, measured once (one calibration pass).</summary>
    private InputMeans Means()
    {
        if (_means is not null) return _means;
        var probe = new InputSumProbe();
        for (int start = 0; start < _images.Count; start += _batchSize)
        {
            int n = Math.Min(_batchSize, _images.Count - start);
            _fp32.Probe(_images.Slice(start, n), n, _images.Height, _images.Width, probe);
            probe.PassDone();
        }
        Passes++;
        return _means = probe.Means();
    }

    /// <summary>
    /// BNs from the first quantized conv on: those before it see exactly the fp32 network, whose statistics came from the
    /// whole training set. So a setting's fp32 prefix stays the fp32 model's, bit for bit, and the stream at a unit's start
    /// depends only on the widths of the units before it, as prefix reuse assumes.
    /// </summary>
    private void ReestimateBatchNorms(StateDict state, QuantizedModel quantized)
    {
        var convs = quantized.Weights.Where(w => w.Bits != Quantizer.FullPrecision && !w.Key.StartsWith("head", StringComparison.Ordinal))
            .Select(w => w.Key).ToHashSet(StringComparer.Ordinal);
        if (convs.Count == 0) return;
        // The previous setting's network stays alive until this one is built: the layers they share (same quantized
        // weights, the fp32 BNs) are not uploaded again.
        var model = _fp32.WithState(state);
        _probeModel?.Dispose();
        _probeModel = model;
        model.Probe(_images.Images, _images.Count, _images.Height, _images.Width, new BatchNormProbe(state, convs, SetInterned));
        Passes++;
    }

    private sealed record InputMeans(IReadOnlyList<ConvCall> Calls, IReadOnlyDictionary<string, double[]> Taps);

    /// <summary>Sums of every conv's input over frames ([InChannels, H, W] per conv), then its mean im2col column.</summary>
    private sealed class InputSumProbe : IConvProbe
    {
        private readonly List<ConvCall> _calls = new();
        private readonly Dictionary<string, (ConvCall Call, double[] Sums, long Frames)> _sums = new(StringComparer.Ordinal);
        private bool _first = true;

        public void PassDone() => _first = false;

        public void OnConv(ConvCall call, IBackend backend, DeviceBuffer input, DeviceBuffer output)
        {
            var g = call.Geometry;
            long length = (long)g.InChannels * call.Height * call.Width;
            if (_first) _calls.Add(call);
            if (!_sums.TryGetValue(call.Keys.Weight, out var s)) s = (call, new double[length], 0);
            backend.AccumulateFrames(input, call.Frames, length, call.Repeat, s.Sums);
            _sums[call.Keys.Weight] = (call, s.Sums, s.Frames + (long)call.Frames * call.Repeat);
        }

        public InputMeans Means()
        {
            var taps = new Dictionary<string, double[]>(StringComparer.Ordinal);
            foreach (var (key, (call, sums, frames)) in _sums)
            {
                var g = call.Geometry;
                int h = call.Height, w = call.Width, oh = call.OutHeight, ow = call.OutWidth, k = g.KernelH * g.KernelW;
                var mean = new double[g.InChannels * k];
                double count = (double)frames * oh * ow;
                Parallel.For(0, g.InChannels, c =>
                {
                    for (int ki = 0; ki < g.KernelH; ki++)
                    for (int kj = 0; kj < g.KernelW; kj++)
                    {
                        double sum = 0;
                        for (int y = 0; y < oh; y++)
                        {
                            int iy = y * g.StrideH - g.PadH + ki;
                            if (iy < 0 || iy >= h) continue;
                            for (int x = 0; x < ow; x++)
                            {
                                int ix = x * g.StrideW - g.PadW + kj;
                                if (ix >= 0 && ix < w) sum += sums[(c * h + iy) * w + ix];
                            }
                        }
                        mean[c * k + ki * g.KernelW + kj] = sum / count;
                    }
                });
                taps[key] = mean;
            }
            return new InputMeans(_calls.ToArray(), taps);
        }
    }

    /// <summary>Re-estimates each conv's BatchNorms from its output as the pass goes, and re-normalizes that output.</summary>
    private sealed class BatchNormProbe(StateDict state, IReadOnlySet<string> quantized, Action<StateDict, string, float[]> set) : IConvProbe
    {
        private readonly HashSet<string> _done = new(StringComparer.Ordinal);
        private bool _started;

        public float[]? PadValues(string batchNorm) => _done.Contains(batchNorm) ? BatchNorm.ZeroInputOutput(state, batchNorm) : null;

        public void OnConv(ConvCall call, IBackend backend, DeviceBuffer input, DeviceBuffer output)
        {
            _started |= quantized.Contains(call.Keys.Weight);
            var bns = call.Keys.BatchNorms;
            if (!_started || bns.Count == 0) return;
            int channels = call.Geometry.OutChannels, plane = call.OutHeight * call.OutWidth, frames = call.Frames;
            var old = bns.Select(Affine).ToArray();   // what the layer applied: the statistics before this probe
            var invertible = new bool[channels];
            for (int c = 0; c < channels; c++) invertible[c] = old.All(a => a.Scale[c] != 0);
            // The conv's output before its BNs, undoing them in reverse order. Channels left alone (identities) keep the
            // values the layer computed, and their statistics.
            var affines = backend.Rent(2L * old.Length * channels);
            backend.Upload(Pack(old, invertible), affines);
            backend.ChannelAffines(output, frames, channels, plane, affines, old.Length, inverse: true);
            var means = new double[channels];
            var squares = new double[channels];
            double n = (double)frames * call.Repeat * plane;
            foreach (var bn in bns)
            {
                backend.ChannelMoments(output, frames, channels, plane, means, squares);
                var mean = (float[])state[bn + ".running_mean"].Data.Clone();
                var variance = (float[])state[bn + ".running_var"].Data.Clone();
                for (int c = 0; c < channels; c++)
                {
                    if (!invertible[c]) continue;
                    mean[c] = (float)means[c];
                    variance[c] = (float)(squares[c] * call.Repeat / (n - 1));   // unbiased, as PyTorch's running_var
                }
                set(state, bn + ".running_mean", mean);
                set(state, bn + ".running_var", variance);
                _done.Add(bn);
                backend.Upload(Pack([Affine(bn)], invertible), affines);
                backend.ChannelAffines(output, frames, channels, plane, affines, 1, inverse: false);
            }
        }

        /// <summary>scale₀, shift₀, scale₁, shift₁, … as <see cref="IBackend.ChannelAffines"/> takes them; identities where a channel is left alone.</summary>
        private static float[] Pack((float[] Scale, float[] Shift)[] affines, bool[] apply)
        {
            int channels = apply.Length;
            var packed = new float[2 * affines.Length * channels];
            for (int b = 0; b < affines.Length; b++)
                for (int c = 0; c < channels; c++)
                {
                    packed[2 * b * channels + c] = apply[c] ? affines[b].Scale[c] : 1f;
                    packed[(2 * b + 1) * channels + c] = apply[c] ? affines[b].Shift[c] : 0f;
                }
            return packed;
        }

        private (float[] Scale, float[] Shift) Affine(string bn) => BatchNorm.Fold(state[bn + ".weight"].Data, state[bn + ".bias"].Data,
            state[bn + ".running_mean"].Data, state[bn + ".running_var"].Data);
    }
}
