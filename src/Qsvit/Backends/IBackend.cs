namespace Qsvit.Backends;

/// <summary>
/// The operations the SDTv2 wiring (<see cref="Models.Sdtv2Model"/>) runs on, and nothing more. One implementation per
/// device kind: <see cref="Cpu.CpuBackend"/> (today's kernels, bit-identical to PyTorch on CPU) and the CUDA backend.
/// <para>Layouts: activations are time-first frames [T·B, C, H, W] (PyTorch's x.flatten(0, 1)), so frame f = t·B + b;
/// LIF data is time-major [T, n] with n = length / T. All element types are float32 (spikes are 0 or 1).</para>
/// <para>Ordering: ops run in call order as if synchronous; a GPU backend may queue them on one stream, and every method
/// that returns data to the host (<see cref="Download"/>, recorder reads) waits for what came before. Results must be
/// identical from run to run (no float atomics; fixed reduction orders).</para>
/// <para>Not thread-safe: one thread drives a backend at a time. Workspace buffers are shared by every model on the backend.</para>
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>The device this backend runs on, resolved (cpu or cuda:N, never auto).</summary>
    DeviceSpec Device { get; }
    /// <summary>What the device is, for printing and reports, e.g. "cpu (16 threads, Vector512)" or "cuda:0 NVIDIA H100 80GB HBM3".</summary>
    string Description { get; }
    /// <summary>
    /// A batch that fills the device for images of this size, for a model whose passes need
    /// <paramref name="activationBytesPerImage"/> of workspace per image (<see cref="Models.Sdtv2Model.ActivationBytesPerImage(int, int)"/>):
    /// 32 on the CPU; on a GPU what its free memory holds (<see cref="BatchSizing"/>).
    /// </summary>
    int DefaultBatchSize(int height, int width, long activationBytesPerImage);

    // ---- memory ------------------------------------------------------------------------------------------------------

    /// <summary>
    /// A workspace buffer of at least <paramref name="length"/> floats, contents undefined. The workspace is a stack: the
    /// same sequence of Rent/Mark/Release rents the same storage, so after the first pass nothing is allocated.
    /// </summary>
    DeviceBuffer Rent(long length);
    /// <summary>The workspace position, for <see cref="Release"/>.</summary>
    int Mark();
    /// <summary>Returns every buffer rented since <paramref name="mark"/> to the workspace.</summary>
    void Release(int mark);
    /// <summary>A buffer outside the workspace (for data that outlives a pass: streams kept for prefix reuse, constants); the caller disposes it.</summary>
    DeviceBuffer Allocate(long length);
    /// <summary>destination[offset ..] = source.</summary>
    void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, long offset = 0);
    /// <summary>
    /// destination[0 ..] = source for the ops queued after this call, where <paramref name="destination"/> is a buffer from
    /// <see cref="Allocate"/> that no queued op reads or writes (the images of the next pass while this one computes). A GPU
    /// backend copies on a second stream, alongside the ops queued before, and returns once the copy is done; this
    /// default is <see cref="Upload"/>.
    /// </summary>
    void UploadAhead(ReadOnlySpan<float> source, DeviceBuffer destination) => Upload(source, destination);
    /// <summary>destination = source[offset .. offset + destination.Length]; waits for queued work.</summary>
    void Download(DeviceBuffer source, long offset, Span<float> destination);
    /// <summary>destination[dstOffset ..+length] = source[srcOffset ..+length] (the ranges may not overlap).</summary>
    void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length);
    /// <summary>Waits until every queued op has finished (nothing to wait for where ops run synchronously); for timing ops (<see cref="ProfilingBackend"/>).</summary>
    void Synchronize();

    // ---- layers: weights live on the device from creation until Dispose ----------------------------------------------

    /// <summary>Uploads (and packs) a conv layer. Throws <see cref="QsvitException"/> for a weight kind the backend lacks.</summary>
    ConvLayer CreateConv(ConvLayerSpec spec);
    /// <summary>Uploads the classifier head(s), each [classes, features] with bias [classes].</summary>
    HeadLayer CreateHead(IReadOnlyList<LinearWeights> heads, int features, int classes);

    // ---- ops -----------------------------------------------------------------------------------------------------------

    /// <summary>
    /// output[frames, Cout, OutH, OutW] = the layer (<see cref="ConvLayerSpec"/>: conv, bias, then each affine as one FMA)
    /// of input[frames, Cin, height, width]. input and output are distinct buffers.
    /// </summary>
    void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output);

    /// <summary>
    /// BN padding (BNAndPadLayer): output[frames, C, height + 2·pad, width + 2·pad] is input[frames, C, height, width] in the
    /// centre and <paramref name="padValues"/>[c] (C floats) in the border of every channel-c plane.
    /// </summary>
    void Pad(DeviceBuffer input, int frames, int channels, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output);

    /// <summary>
    /// The layer applied to the BN-padded input (RepConv's depthwise 3×3 after BNAndPadLayer): <see cref="Pad"/>, then
    /// <see cref="Conv"/> over [frames, Cin, height + 2·pad, width + 2·pad]. This default runs exactly those two ops on a
    /// workspace buffer (the CPU backend's bit-identical result); a device backend may read the border from
    /// <paramref name="padValues"/> inside the conv instead of writing the padded map.
    /// </summary>
    void ConvPadded(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output) =>
        RunConvPadded(this, layer, input, frames, height, width, pad, padValues, output);

    /// <summary><see cref="ConvPadded"/> as <see cref="Pad"/> then <see cref="Conv"/> on <paramref name="backend"/>.</summary>
    static void RunConvPadded(IBackend backend, ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues,
        DeviceBuffer output)
    {
        int mark = backend.Mark(), channels = layer.Geometry.InChannels;
        var padded = backend.Rent((long)frames * channels * (height + 2 * pad) * (width + 2 * pad));
        backend.Pad(input, frames, channels, height, width, pad, padValues, padded);
        backend.Conv(layer, padded, frames, height + 2 * pad, width + 2 * pad, output);
        backend.Release(mark);
    }

    /// <summary>
    /// RepConv's body: <see cref="Conv"/> of <paramref name="first"/> (the spike-input 1×1, BNAndPadLayer's BN folded in) over
    /// <paramref name="input"/> [frames, C, height, width], <see cref="ConvPadded"/> of <paramref name="depthwise"/> (3×3,
    /// pad 1, border <paramref name="padValues"/>), then <see cref="Conv"/> of <paramref name="pointwise"/> (the real-input
    /// 1×1 and its BNs) into <paramref name="output"/>. This default runs the three ops on workspace maps; a backend may fuse
    /// them so the inner maps never reach memory, leaving the output that of the ops, bit for bit.
    /// </summary>
    void RepConv(ConvLayer first, DeviceBuffer padValues, ConvLayer depthwise, ConvLayer pointwise, DeviceBuffer input, int frames, int height, int width,
        DeviceBuffer output) =>
        RunRepConv(this, first, padValues, depthwise, pointwise, input, frames, height, width, output);

    /// <summary>
    /// <see cref="RepConv"/> of each of <paramref name="convs"/> over the same spikes <paramref name="input"/> into the
    /// output of the same index (an attention block's q_conv, k_conv and v_conv). This default runs them one by one; a
    /// backend may share their work on the input (the CUDA backend packs the spikes once), leaving each output
    /// <see cref="RepConv"/>'s, bit for bit.
    /// </summary>
    void RepConvs(ReadOnlySpan<RepConvLayers> convs, DeviceBuffer input, int frames, int height, int width, ReadOnlySpan<DeviceBuffer> outputs) =>
        RunRepConvs(this, convs, input, frames, height, width, outputs);

    /// <summary><see cref="RepConvs"/> as <see cref="RepConv"/> of each conv on <paramref name="backend"/>, one by one.</summary>
    static void RunRepConvs(IBackend backend, ReadOnlySpan<RepConvLayers> convs, DeviceBuffer input, int frames, int height, int width,
        ReadOnlySpan<DeviceBuffer> outputs)
    {
        RequireOutputEach(convs, outputs);
        for (int i = 0; i < convs.Length; i++)
            backend.RepConv(convs[i].First, convs[i].PadValues, convs[i].Depthwise, convs[i].Pointwise, input, frames, height, width, outputs[i]);
    }

    /// <summary>Throws unless <see cref="RepConvs"/> has one output for each conv.</summary>
    static void RequireOutputEach(ReadOnlySpan<RepConvLayers> convs, ReadOnlySpan<DeviceBuffer> outputs)
    {
        if (outputs.Length != convs.Length) throw new ArgumentException($"{convs.Length} RepConvs need as many outputs, not {outputs.Length}", nameof(outputs));
    }

    /// <summary>
    /// What runs <see cref="RepConv"/> of these layers where the backend runs it other than as its three ops (profiles name
    /// it); null where it runs the three ops (profiles name their engines).
    /// </summary>
    string? RepConvEngine(ConvLayer first, ConvLayer depthwise, ConvLayer pointwise, int height, int width) => null;

    /// <summary><see cref="RepConv"/> as its three ops on <paramref name="backend"/>.</summary>
    static void RunRepConv(IBackend backend, ConvLayer first, DeviceBuffer padValues, ConvLayer depthwise, ConvLayer pointwise, DeviceBuffer input,
        int frames, int height, int width, DeviceBuffer output)
    {
        int mark = backend.Mark();
        long length = (long)frames * depthwise.Geometry.InChannels * height * width;
        var inner = backend.Rent(length);
        backend.Conv(first, input, frames, height, width, inner);
        var dw = backend.Rent(length);
        backend.ConvPadded(depthwise, inner, frames, height, width, 1, padValues, dw);
        backend.Conv(pointwise, dw, frames, height, width, output);
        backend.Release(mark);
    }

    /// <summary>
    /// The stem: <see cref="Conv"/> into output[0 .. block), block = frames·Cout·OH·OW, then <see cref="RepeatBlock"/> of it
    /// <paramref name="times"/> times. This default runs the two ops; a backend may write the copies from the conv.
    /// </summary>
    void ConvRepeat(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output, int times)
    {
        Conv(layer, input, frames, height, width, output);
        var g = layer.Geometry;
        RepeatBlock(output, (long)frames * g.OutChannels * g.OutH(height) * g.OutW(width), times);
    }

    /// <summary>Repeat over T: x[t·block .. (t+1)·block) = x[0 .. block) for t = 1 .. times − 1.</summary>
    void RepeatBlock(DeviceBuffer x, long block, int times);

    /// <summary>x[i] += y[i] for i &lt; length (the residual add, one float rounding per element).</summary>
    void Add(DeviceBuffer x, DeviceBuffer y, long length);

    /// <summary>
    /// spikingjelly MultiStepLIFNode(tau = 2, v_reset = 0, decay_input = True) over time-major input [T, n], n = length / T:
    /// from V = 0, for t = 0 .. T − 1: H = V + (X − V)·0.5 (float: subtract, multiply, add); S = H ≥ threshold ? 1 : 0;
    /// V = S ? 0 : H. Writes S into <paramref name="spikes"/>. When <paramref name="recorder"/> is given, records layer
    /// <paramref name="layer"/> (its call index in the pass) into it: spike counts, or H against/into a drift reference,
    /// or the data for a host observer. With <paramref name="next"/> (the op that reads the spikes next) and no recorder, the
    /// spikes may be written in the form that op packs them into, for it alone (<see cref="SpikeReader"/>).
    /// </summary>
    void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer, SpikeReader? next = null);

    /// <summary>
    /// The residual add and the LIF layer after it: <see cref="Add"/> of <paramref name="y"/> into <paramref name="x"/>, then
    /// <see cref="Lif"/> of <paramref name="x"/> into <paramref name="spikes"/> as LIF layer <paramref name="layer"/> with
    /// <paramref name="recorder"/>. This default runs the two ops; a backend may fuse them, leaving x, the spikes and what the
    /// recorder sees as the two ops do, bit for bit; with <paramref name="next"/>, the spikes as <see cref="Lif"/> leaves them.
    /// </summary>
    void AddLif(DeviceBuffer x, DeviceBuffer y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null)
    {
        Add(x, y, length);
        Lif(x, spikes, length, timesteps, threshold, recorder, layer, next);
    }

    /// <summary>
    /// <see cref="Conv"/> into <paramref name="preActivation"/>, then <see cref="Lif"/> of its output into
    /// <paramref name="spikes"/> as LIF layer <paramref name="lifLayer"/> with <paramref name="recorder"/>. A backend may fuse
    /// the two (the CPU backend does for integer spike-input layers, without a recorder or with its spike counter) and leave
    /// <paramref name="preActivation"/> unwritten; the spikes and what the recorder sees are those of the two ops, bit for bit.
    /// </summary>
    void ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
        int timesteps, float threshold, int lifLayer, LifRecorder? recorder)
    {
        Conv(layer, input, frames, height, width, preActivation);
        var g = layer.Geometry;
        Lif(preActivation, spikes, (long)frames * g.OutChannels * g.OutH(height) * g.OutW(width), timesteps, threshold, recorder, lifLayer);
    }

    /// <summary>
    /// <see cref="ConvLif"/> of <paramref name="first"/>, then <see cref="Conv"/> of <paramref name="second"/> over its spikes
    /// into <paramref name="output"/> (ConvBlock's conv1 → lif → conv2, the MLP's fc1 → lif → fc2; same height and width).
    /// A backend may pass the spikes to the second conv in its own form (the CPU backend does for integer layers, as
    /// packed words; the CUDA backend as int8 bytes in <paramref name="spikes"/>) and leave <paramref name="preActivation"/>
    /// and <paramref name="spikes"/> unwritten or holding that form; the output is that of the ops, bit for bit.
    /// </summary>
    void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
        int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output) =>
        RunConvLifConv(this, first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder, second, output);

    /// <summary><see cref="ConvLifConv"/> as its two ops on <paramref name="backend"/> (<see cref="ConvLif"/>, then <see cref="Conv"/>).</summary>
    static void RunConvLifConv(IBackend backend, ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
        DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output)
    {
        backend.ConvLif(first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder);
        backend.Conv(second, spikes, frames, height, width, output);
    }

    /// <summary>
    /// What runs <see cref="ConvLifConv"/> of these layers where the backend runs it as one engine (profiles name it); null
    /// where it runs the ops apart (profiles name the first layer's engine).
    /// </summary>
    string? ConvLifConvEngine(ConvLayer first, ConvLayer second, int frames, int height, int width, int timesteps, LifRecorder? recorder) => null;

    /// <summary>
    /// Spike-driven self-attention on channel-major spikes (0 or 1) q, k, v [frames, C, N] with heads of d = C / heads rows: for every
    /// frame and head, with Q, K, V the [d, N] slices, kv = K·Vᵀ ([d, d], summed over N), out = (kvᵀ·Q)·scale ([d, N],
    /// summed over d, then one multiply), written to the same slice of output [frames, C, N], a buffer distinct from q, k
    /// and v. The sums are of small integers, so every summation order gives the same bits.
    /// </summary>
    void SpikeDrivenAttention(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output, int frames, int channels, int tokens, int heads, float scale);

    /// <summary>
    /// MS_Block's attention core: LIF layers <paramref name="lifLayer"/>, + 1 and + 2 (q_lif, k_lif, v_lif at
    /// <paramref name="threshold"/>) over the pre-activations q, k, v [frames, C, N] (time-major frames), then
    /// <see cref="SpikeDrivenAttention"/> of their spikes, then LIF layer <paramref name="lifLayer"/> + 3 (attn_lif at
    /// <paramref name="attentionThreshold"/>) of its result into <paramref name="spikes"/>, each LIF recorded by
    /// <paramref name="recorder"/>. This default runs the five ops (<see cref="RunLifAttentionLif"/>); a backend may fuse them
    /// and leave q, k and v undefined; the spikes and what the recorder sees are those of the ops, bit for bit.
    /// </summary>
    void LifAttentionLif(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, int frames, int channels, int tokens, int heads, float scale, int timesteps,
        float threshold, float attentionThreshold, DeviceBuffer spikes, LifRecorder? recorder, int lifLayer) =>
        RunLifAttentionLif(this, q, k, v, frames, channels, tokens, heads, scale, timesteps, threshold, attentionThreshold, spikes, recorder, lifLayer);

    /// <summary><see cref="LifAttentionLif"/> as its five ops on <paramref name="backend"/> (the attention's result written into q).</summary>
    static void RunLifAttentionLif(IBackend backend, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, int frames, int channels, int tokens, int heads,
        float scale, int timesteps, float threshold, float attentionThreshold, DeviceBuffer spikes, LifRecorder? recorder, int lifLayer)
    {
        long n = (long)frames * channels * tokens;
        int mark = backend.Mark();
        var sq = backend.Rent(n);
        backend.Lif(q, sq, n, timesteps, threshold, recorder, lifLayer);
        var sk = backend.Rent(n);
        backend.Lif(k, sk, n, timesteps, threshold, recorder, lifLayer + 1);
        var sv = backend.Rent(n);
        backend.Lif(v, sv, n, timesteps, threshold, recorder, lifLayer + 2);
        backend.SpikeDrivenAttention(sq, sk, sv, q, frames, channels, tokens, heads, scale);
        backend.Lif(q, spikes, n, timesteps, attentionThreshold, recorder, lifLayer + 3);
        backend.Release(mark);
    }

    /// <summary>output[r] = (Σ_s x[r, s])·(1/spatial) for the rows r of x [rows, spatial]; the sum in the backend's fixed order.</summary>
    void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output);

    /// <summary>
    /// The kd head's logits for features [T·B, F] (time-first): per head k, y = features·W_kᵀ + b_k ([T·B, classes]) and
    /// z_k[b] = (0 + y[0, b] + … + y[T−1, b]) / T; logits[B, classes] = z_0, or (z_0 + z_1) / 2 with two heads.
    /// </summary>
    void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits);

    // ---- calibration statistics (corrections after quantization): reduced on the device in double, results to the host ----

    /// <summary>
    /// sums[i] += weight·x[f·length + i] for f = 0 .. frames − 1 in that order (double arithmetic), for i &lt; length:
    /// the per-position sums over frames that bias correction needs of a conv's input. <paramref name="sums"/> lives on
    /// the host; waits for queued work.
    /// </summary>
    void AccumulateFrames(DeviceBuffer x, int frames, long length, double weight, Span<double> sums);

    /// <summary>
    /// Per channel c of x [frames, channels, plane], over all frames·plane values in double: mean[c] = Σ x / (frames·plane)
    /// and squares[c] = Σ (x − mean[c])² (two passes), each in the backend's fixed order. Only the 2·channels results
    /// come back; waits for queued work.
    /// </summary>
    void ChannelMoments(DeviceBuffer x, int frames, int channels, int plane, Span<double> mean, Span<double> squares);

    /// <summary>
    /// x [frames, channels, plane] in place through a chain of <paramref name="count"/> per-channel affines v·scale + shift,
    /// given as <paramref name="affines"/> = scale₀, shift₀, scale₁, shift₁, … (each <paramref name="channels"/> floats).
    /// Forward: each affine as one float FMA, first to last (as a conv layer applies its BatchNorms). Inverse: undoes the
    /// chain last to first in double, v = (v − shift) / scale, rounded to float once at the end.
    /// </summary>
    void ChannelAffines(DeviceBuffer x, int frames, int channels, int plane, DeviceBuffer affines, int count, bool inverse);

    // ---- observers ----------------------------------------------------------------------------------------------------

    /// <summary>A spike counter for up to <paramref name="layers"/> LIF layers, kept on the device.</summary>
    SpikeCounter CreateSpikeCounter(int layers);
    /// <summary>An empty fp32 membrane reference for up to <paramref name="layers"/> LIF layers; run the reference passes with it, then Seal.</summary>
    MembraneReference CreateMembraneReference(int layers);
    /// <summary>A drift meter against a sealed reference made by this backend.</summary>
    DriftMeter CreateDriftMeter(MembraneReference reference);
}
