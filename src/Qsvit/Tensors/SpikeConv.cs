using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>Integer weights of a dense convolution ([OutChannels, InChannels, kH, kW] flattened to rows of K) with one
/// output scale per channel: output = Σ spikes · q · scale[oc] + bias[oc].</summary>
internal sealed class SpikeConvWeights(ConvGeometry geometry, IntMatrix matrix, float[] scales)
{
    public ConvGeometry Geometry { get; } = geometry;
    public IntMatrix Matrix { get; } = matrix;
    /// <summary>One scale per output channel.</summary>
    public float[] Scales { get; } = scales;

    private EventRows? _events;

    /// <summary>The codes as event rows (<see cref="SpikeEvents"/>), built on first use; null for 16-bit codes (dense only).</summary>
    public EventRows? Events => Matrix.IsWide ? null : LazyInitializer.EnsureInitialized(ref _events, () => new EventRows(Matrix));
}

/// <summary>
/// Spikes handed over by the LIF that made them (<see cref="SpikeConv.LifWords"/>) as the input words a direct layer's
/// interleave would write: the lane-group grid of <see cref="Group"/> fields a word for pad (PadH, PadW) over [Frames,
/// Channels, Height, Width], and their count. Any direct layer with that input shape, pad and word width may read them.
/// </summary>
internal sealed class HandedSpikes(int[] words, long spikes, int group, int channels, int frames, int height, int width, int padH, int padW)
{
    public int[] Words { get; } = words;
    public long Spikes { get; } = spikes;
    public int Group { get; } = group;
    public int Channels { get; } = channels;
    public int Frames { get; } = frames;
    public int Height { get; } = height;
    public int Width { get; } = width;
    public int PadH { get; } = padH;
    public int PadW { get; } = padW;

    /// <summary>Whether <paramref name="w"/> over [frames, ·, height, width] reads exactly these words.</summary>
    public bool Fit(SpikeConvWeights w, int frames, int height, int width) =>
        SpikeConv.IsDirect(w.Geometry) && w.Matrix.Group == Group && w.Geometry.InChannels == Channels && frames == Frames
        && height == Height && width == Width && w.Geometry.PadH == PadH && w.Geometry.PadW == PadW;
}

/// <summary>
/// Dense convolution of spike inputs (0/1) with integer weights: the spikes are interleaved into 32-bit lane-group words
/// (4 channels as bytes for 8-bit weights, 2 as shorts for 16-bit), the products are summed exactly in int32 by
/// <see cref="SpikeGemm"/>, and each output is scaled once: y = fma(acc, scale[oc], bias[oc]).
/// Stride-1 "same" convolutions (k = 2·pad + 1, the 3×3 and 1×1 layers) run directly on the interleaved input: each
/// channel group's frames are stored as one flat grid whose rows and frames are separated by zero gaps of the padding's
/// width, so that tap (ky, kx) of every output is the word at a fixed offset from it, and no im2col copy is made; the
/// outputs that fall on the gaps are computed and dropped (6 % of the columns at 32×32, 27 % at 8×8). Other geometries
/// (the stride-2 downsampling) gather an im2col matrix chunk by chunk. Direct layers with 8-bit codes whose input fires
/// little sum by events instead (<see cref="SpikeEvents"/>: only the weight rows of the spikes that fired, the same int32
/// sums), chosen per call from the counted firing rate (<see cref="SpikeAccumulation"/>).
/// </summary>
internal static unsafe class SpikeConv
{
    /// <summary>
    /// output = conv(input) · scale + bias, then each of <paramref name="affines"/> (per-channel scale and shift, e.g. eval
    /// BatchNorm) as its own fused multiply-add, in the epilogue: the same roundings as applying them in separate passes.
    /// </summary>
    /// Direct geometries with 0/1 inputs pick dense or event-driven sums by <paramref name="accumulation"/> and the firing
    /// rate the interleave counts (<see cref="SpikeEvents.Pays"/>); inputs other than 0/1 always run dense.
    /// With <paramref name="handed"/> (its <see cref="HandedSpikes.Fit"/> checked) the layer reads those words, not input.
    public static void Forward(ReadOnlySpan<float> input, int frames, int height, int width, SpikeConvWeights w,
        ReadOnlySpan<float> bias, Span<float> output, IntIsa isa, int threads, IReadOnlyList<(float[] Scale, float[] Shift)>? affines = null,
        SpikeAccumulation accumulation = SpikeAccumulation.Auto, HandedSpikes? handed = null) =>
        Run(input, frames, height, width, w, bias, output, isa, threads, affines, timesteps: 1, threshold: float.NaN, accumulation, handed: handed);

    /// <summary>
    /// Benchmarks only: <see cref="Forward"/> of a direct layer that skips the interleave and reads the words this thread's
    /// previous direct call left (same input shape), so that the GEMM (dense or by events) is timed alone, as a chained
    /// consumer runs it.
    /// </summary>
    internal static void ForwardOnPreviousWords(ReadOnlySpan<float> input, int frames, int height, int width, SpikeConvWeights w,
        ReadOnlySpan<float> bias, Span<float> output, IntIsa isa, int threads, SpikeAccumulation accumulation) =>
        Run(input, frames, height, width, w, bias, output, isa, threads, null, timesteps: 1, threshold: float.NaN, accumulation, reuseWords: true);

    /// <summary>
    /// The layer as <see cref="Forward"/> computes it, then the LIF neuron over its output (<see cref="Snn.MultiStepLif"/>:
    /// from V = 0, for t in order H = V + (X − V)·0.5, S = H ≥ threshold, V = S ? 0 : H) in the same epilogue, writing
    /// only the spikes: bit-identical to Forward followed by MultiStepLif.Forward, without the pre-activation ever
    /// leaving the cache. Frames are time-first (frame t·B + b); each block of columns runs its T steps in order on one
    /// thread, which keeps the block's membrane. Direct geometries only (<see cref="IsDirect"/>). Returns the number of spikes.
    /// </summary>
    public static long ForwardLif(ReadOnlySpan<float> input, int frames, int height, int width, SpikeConvWeights w,
        ReadOnlySpan<float> bias, Span<float> spikes, int timesteps, float threshold, IntIsa isa, int threads,
        IReadOnlyList<(float[] Scale, float[] Shift)>? affines = null, HandedSpikes? handed = null)
    {
        if (!IsDirect(w.Geometry)) throw new ArgumentException("the fused LIF runs on direct geometries (stride 1, kernel 2·pad + 1)", nameof(w));
        if (timesteps < 1 || frames % timesteps != 0) throw new ArgumentException($"{frames} frames are not T = {timesteps} steps", nameof(timesteps));
        if (float.IsNaN(threshold)) throw new ArgumentException("the threshold is NaN", nameof(threshold));
        return Run(input, frames, height, width, w, bias, spikes, isa, threads, affines, timesteps, threshold, SpikeAccumulation.Dense, handed: handed);
    }

    /// <summary>Forward (threshold NaN: no LIF, T = 1) or ForwardLif (returns the spike count; 0 without LIF).</summary>
    private static long Run(ReadOnlySpan<float> input, int frames, int height, int width, SpikeConvWeights w, ReadOnlySpan<float> bias,
        Span<float> output, IntIsa isa, int threads, IReadOnlyList<(float[] Scale, float[] Shift)>? affines, int timesteps, float threshold,
        SpikeAccumulation accumulation, bool reuseWords = false, HandedSpikes? handed = null)
    {
        var g = w.Geometry;
        if (g.Groups != 1) throw new ArgumentException("spike convolutions are dense (groups = 1)");
        if (handed is not null && !handed.Fit(w, frames, height, width)) throw new ArgumentException("the handed spikes are not this layer's input words", nameof(handed));
        if (reuseWords && !IsDirect(g)) throw new ArgumentException("only direct layers reuse their words", nameof(w));
        int oh = g.OutH(height), ow = g.OutW(width), spatial = oh * ow;
        if (input.Length < (long)frames * g.InChannels * height * width) throw new ArgumentException("input too short", nameof(input));
        if (output.Length < (long)frames * g.OutChannels * spatial) throw new ArgumentException("output too short", nameof(output));
        foreach (var (sc, sh) in affines ?? [])
            if (sc.Length < g.OutChannels || sh.Length < g.OutChannels) throw new ArgumentException("an affine has fewer values than output channels", nameof(affines));
        long fired = 0;
        fixed (float* px = input)
        fixed (float* po = output, pbias = bias)
        {
            var epilogue = new Epilogue(w.Scales, bias.IsEmpty ? null : pbias, po, g.OutChannels, oh, ow, affines ?? [])
            {
                Threshold = threshold,
                StepOutput = (long)frames / timesteps * g.OutChannels * spatial,
                Fired = &fired,
            };
            if (IsDirect(g)) Direct(px, frames, height, width, w, epilogue, isa, threads, timesteps, accumulation, reuseWords, handed);
            else Im2Col(px, frames, height, width, w, epilogue, isa, threads);
        }
        return fired;
    }

    /// <summary>Whether the convolution runs in place on the gapped input (stride 1, kernel 2·pad + 1 in both directions).</summary>
    internal static bool IsDirect(ConvGeometry g) =>
        g.StrideH == 1 && g.StrideW == 1 && g.KernelH == 2 * g.PadH + 1 && g.KernelW == 2 * g.PadW + 1;

    /// <summary>
    /// The gapped input grid of a direct geometry (see <see cref="Interleave"/>): rows RowStride words apart (the width plus
    /// the pad's gap), frames FrameStride apart (the height plus the pad's gap rows), Count output columns in all, padded to
    /// Columns; each channel group's grid starts Lead words into its GroupStride (the zero rows above frame 0) and ends with
    /// a tail for the reads of the padded columns. Two layers with the same pad over the same maps share it.
    /// </summary>
    private readonly record struct Grid(int RowStride, int FrameRows, long FrameStride, long Count, int Columns, long Lead, long GroupStride)
    {
        public static Grid For(ConvGeometry g, int frames, int height, int width)
        {
            int rowStride = width + g.PadW, frameRows = height + g.PadH;
            long frameStride = (long)frameRows * rowStride, n = frames * frameStride;
            if (n > int.MaxValue / 2) throw new QsvitException($"{n} output positions are too many for one call; use a smaller batch");
            int columns = SpikeGemm.PaddedColumns((int)n);
            long lead = (long)g.PadH * rowStride + g.PadW;
            return new Grid(rowStride, frameRows, frameStride, n, columns, lead, lead + columns + lead + SpikeGemm.ColumnAlign);
        }
    }

    private static void Direct(float* x, int frames, int height, int width, SpikeConvWeights w, Epilogue epilogue, IntIsa isa, int threads,
        int steps, SpikeAccumulation accumulation, bool reuseWords = false, HandedSpikes? handed = null)
    {
        var g = w.Geometry;
        var grid = Grid.For(g, frames, height, width);
        int cg = (g.InChannels + w.Matrix.Group - 1) / w.Matrix.Group;
        var words = handed?.Words ?? Scratch(ref t_words, cg * grid.GroupStride);
        fixed (int* pw0 = words)
        {
            long spikes = handed is not null ? handed.Spikes : reuseWords ? t_spikes
                : Interleave(x, frames, g.InChannels, height, width, w.Matrix.Group, pw0, grid.GroupStride, grid.Lead, grid.RowStride, grid.FrameRows, threads);
            if (handed is null) t_spikes = spikes;
            Gemm(w, grid, pw0, epilogue, isa, threads, steps, UseEvents(w, steps, spikes, (long)frames * g.InChannels * height * width, accumulation, isa));
        }
    }

    /// <summary>
    /// Whether a direct layer sums by events: single-step calls (no fused LIF) of 8-bit codes over spike inputs
    /// (<paramref name="spikes"/> ≥ 0 of <paramref name="values"/>), when forced or when <see cref="SpikeEvents.Pays"/>.
    /// </summary>
    private static bool UseEvents(SpikeConvWeights w, int steps, long spikes, long values, SpikeAccumulation accumulation, IntIsa isa) =>
        steps == 1 && spikes >= 0 && !w.Matrix.IsWide && accumulation switch
        {
            SpikeAccumulation.Events => true,
            SpikeAccumulation.Auto => SpikeEvents.Pays((double)spikes / Math.Max(1, values), w.Geometry.OutChannels, isa),
            _ => false,
        };

    /// <summary>The direct layer's GEMM over an interleaved grid (group c's words at words + c·GroupStride).</summary>
    private static void Gemm(SpikeConvWeights w, Grid grid, int* words, Epilogue epilogue, IntIsa isa, int threads, int steps, bool events = false)
    {
        var g = w.Geometry;
        var m = w.Matrix;
        int cg = (g.InChannels + m.Group - 1) / m.Group;
        if (events)
        {
            // Event-driven sums list fired (tap, channel) pairs from the words themselves: one offset per tap, no per-group table.
            Debug.Assert(steps == 1);
            var taps = Scratch(ref t_taps, g.KernelH * g.KernelW);
            for (int ky = 0, t = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++, t++)
                taps[t] = (ky - g.PadH) * grid.RowStride + (kx - g.PadW);
            fixed (long* pt = taps)
                SpikeEvents.Multiply(w.Events!, g.OutChannels, cg, words + grid.Lead, grid.GroupStride, grid.Lead, grid.GroupStride, pt, g.KernelH * g.KernelW,
                    new SpikeEvents.Valid(grid.RowStride, grid.RowStride - g.PadW, grid.FrameStride, grid.FrameRows - g.PadH), grid.Columns, (int)grid.Count,
                    SingleStep(epilogue, grid).Run, isa, threads);
            return;
        }
        var offsets = Scratch(ref t_offsets, (long)g.KernelH * g.KernelW * cg);
        for (int ky = 0, gi = 0; ky < g.KernelH; ky++)
        for (int kx = 0; kx < g.KernelW; kx++)
        for (int c = 0; c < cg; c++, gi++)
            offsets[gi] = c * grid.GroupStride + (ky - g.PadH) * grid.RowStride + (kx - g.PadW);
        fixed (long* po = offsets)
        {
            if (steps == 1) SpikeGemm.Multiply(m, words + grid.Lead, po, grid.Columns, SingleStep(epilogue, grid).Run, isa, threads);
            else
            {
                // One step's frames are n / steps columns; step t's start t·n / steps columns later in the same grid (the
                // last step's padded columns read at most ColumnAlign words into the tail).
                int perStep = (int)(grid.Count / steps);
                var e = epilogue with { Count = perStep, FrameStride = grid.FrameStride, RowStride = grid.RowStride, StepColumns = perStep };
                SpikeGemm.Multiply(m, words + grid.Lead, po, SpikeGemm.PaddedColumns(perStep), steps, perStep, e.Run, isa, threads);
            }
        }
    }

    /// <summary>The epilogue over a whole grid as one step (the dense single-step GEMM and event-driven sums alike).</summary>
    private static Epilogue SingleStep(Epilogue epilogue, Grid grid) =>
        epilogue with { Count = (int)grid.Count, FrameStride = grid.FrameStride, RowStride = grid.RowStride };

    /// <summary>
    /// Whether <see cref="ForwardLifConv"/> can pass the first layer's spikes to the second as words: both direct, the first's
    /// outputs the second's inputs, the same pad (so both read and write the same grid).
    /// </summary>
    internal static bool CanChain(ConvGeometry first, ConvGeometry second) =>
        IsDirect(first) && IsDirect(second) && first.Groups == 1 && second.Groups == 1 && first.OutChannels == second.InChannels
        && first.PadH == second.PadH && first.PadW == second.PadW;

    /// <summary>
    /// <see cref="ForwardLif"/> of <paramref name="first"/> feeding <see cref="Forward"/> of <paramref name="second"/>
    /// (ConvBlock's conv1 → lif → conv2, the MLP's fc1 → lif → fc2): bit-identical to the two calls, but the fused epilogue
    /// writes the spikes straight into the second layer's interleaved grid (4 spikes per word for 8-bit codes, 2 for
    /// 16-bit), so the spikes never exist as floats and the second layer skips its interleave. Requires
    /// <see cref="CanChain"/>. Returns the number of spikes of the first layer's LIF.
    /// </summary>
    public static long ForwardLifConv(ReadOnlySpan<float> input, int frames, int height, int width, SpikeConvWeights first,
        ReadOnlySpan<float> firstBias, IReadOnlyList<(float[] Scale, float[] Shift)>? firstAffines, int timesteps, float threshold,
        SpikeConvWeights second, ReadOnlySpan<float> secondBias, IReadOnlyList<(float[] Scale, float[] Shift)>? secondAffines,
        Span<float> output, IntIsa isa, int threads, SpikeAccumulation accumulation = SpikeAccumulation.Auto, HandedSpikes? handed = null)
    {
        var g1 = first.Geometry;
        var g2 = second.Geometry;
        if (!CanChain(g1, g2)) throw new ArgumentException("the layers do not chain (both direct, matching channels and pad)", nameof(second));
        if (handed is not null && !handed.Fit(first, frames, height, width)) throw new ArgumentException("the handed spikes are not the first layer's input words", nameof(handed));
        if (timesteps < 1 || frames % timesteps != 0) throw new ArgumentException($"{frames} frames are not T = {timesteps} steps", nameof(timesteps));
        if (float.IsNaN(threshold)) throw new ArgumentException("the threshold is NaN", nameof(threshold));
        int spatial = height * width;
        if (input.Length < (long)frames * g1.InChannels * spatial) throw new ArgumentException("input too short", nameof(input));
        if (output.Length < (long)frames * g2.OutChannels * spatial) throw new ArgumentException("output too short", nameof(output));
        foreach (var (sc, sh) in firstAffines ?? [])
            if (sc.Length < g1.OutChannels || sh.Length < g1.OutChannels) throw new ArgumentException("an affine has fewer values than output channels", nameof(firstAffines));
        foreach (var (sc, sh) in secondAffines ?? [])
            if (sc.Length < g2.OutChannels || sh.Length < g2.OutChannels) throw new ArgumentException("an affine has fewer values than output channels", nameof(secondAffines));
        var grid = Grid.For(g2, frames, height, width);
        int group = second.Matrix.Group, cg = (g2.InChannels + group - 1) / group;
        var chain = Scratch(ref t_chain, cg * grid.GroupStride);
        long fired = 0;
        fixed (float* px = input)
        fixed (float* po = output, pb1 = firstBias, pb2 = secondBias)
        fixed (int* pc = chain)
        {
            for (int c = 0; c < cg; c++) new Span<int>(pc + c * grid.GroupStride, (int)grid.Lead).Clear(); // the zero rows above frame 0
            var producer = new Epilogue(first.Scales, firstBias.IsEmpty ? null : pb1, null, g1.OutChannels, height, width, firstAffines ?? [])
            {
                Threshold = threshold,
                Words = pc + grid.Lead,
                WordGroupStride = grid.GroupStride,
                WordGroup = group,
                Fired = &fired,
            };
            Direct(px, frames, height, width, first, producer, isa, threads, timesteps, SpikeAccumulation.Dense, handed: handed);
            var consumer = new Epilogue(second.Scales, secondBias.IsEmpty ? null : pb2, po, g2.OutChannels, height, width, secondAffines ?? []);
            // The producer counted its spikes: the firing rate of the consumer's input picks dense or event-driven sums.
            Gemm(second, grid, pc, consumer, isa, threads, 1, UseEvents(second, 1, fired, (long)frames * g1.OutChannels * spatial, accumulation, isa));
        }
        return fired;
    }

    private static void Im2Col(float* x, int frames, int height, int width, SpikeConvWeights w, Epilogue epilogue, IntIsa isa, int threads)
    {
        var g = w.Geometry;
        var m = w.Matrix;
        int oh = g.OutH(height), ow = g.OutW(width), spatial = oh * ow;
        long n = (long)frames * spatial;
        if (n > int.MaxValue / 4) throw new QsvitException($"{n} output positions are too many for one call; use a smaller batch");
        int groups = m.PaddedCols / m.Group, total = (int)n, cg = (g.InChannels + m.Group - 1) / m.Group;
        // im2col B is bounded: columns are processed in chunks of whole blocks, at most ChunkBytes of B each.
        int chunk = (int)Math.Min(Math.Max(ChunkBytes / (4L * groups) / SpikeGemm.BlockColumns * SpikeGemm.BlockColumns, SpikeGemm.BlockColumns),
            SpikeGemm.PaddedColumns(total));
        var bBuf = Scratch(ref t_b, (long)groups * chunk + SpikeGemm.ColumnAlign);
        long planeWords = (long)frames * height * width;
        var words = Scratch(ref t_words, cg * planeWords);
        var offsets = Scratch(ref t_offsets, groups);
        for (int gi = 0; gi < groups; gi++) offsets[gi] = (long)gi * chunk;
        fixed (int* pb = bBuf, pw = words)
        fixed (long* po = offsets)
        {
            Interleave(x, frames, g.InChannels, height, width, m.Group, pw, planeWords, 0, width, height, threads);
            for (int start = 0; start < total; start += chunk)
            {
                int count = Math.Min(chunk, total - start), columns = SpikeGemm.PaddedColumns(count);
                Gather(pw, planeWords, frames, height, width, g, m.Group, pb, chunk, start, count, columns, threads);
                var e = epilogue with { First = start, Count = count, FrameStride = spatial, RowStride = ow };
                SpikeGemm.Multiply(m, pb, po, columns, e.Run, isa, threads);
            }
        }
    }

    /// <summary>
    /// Writes finished blocks of C as y = fma(acc, scale[oc], bias[oc]) into [frame, oc, oh, ow]. Column n of C is output
    /// position First + n of a grid of frames FrameStride apart and rows RowStride apart; columns past the output's
    /// height or width (the direct path's gaps) and past Count are dropped.
    /// </summary>
    private readonly struct Epilogue(float[] scales, float* bias, float* output, int outChannels, int outH, int outW,
        IReadOnlyList<(float[] Scale, float[] Shift)> affines)
    {
        private IReadOnlyList<(float[] Scale, float[] Shift)> Affines { get; } = affines;
        private float[] Scales { get; } = scales;
        private float* Bias { get; } = bias;
        private float* Output { get; } = output;
        private int OutChannels { get; } = outChannels;
        private int OutH { get; } = outH;
        private int OutW { get; } = outW;
        public int First { get; init; }
        public int Count { get; init; } = int.MaxValue;
        public long FrameStride { get; init; }
        public int RowStride { get; init; }
        /// <summary>Fused LIF (<see cref="ForwardLif"/>): the threshold, or NaN for a plain layer that writes y.</summary>
        public float Threshold { get; init; } = float.NaN;
        /// <summary>Fused LIF: floats between the outputs of consecutive steps (B·OutChannels·spatial).</summary>
        public long StepOutput { get; init; }
        /// <summary>Fused LIF: columns between the blocks of consecutive steps (the same block of the next step's frames).</summary>
        public long StepColumns { get; init; }
        /// <summary>
        /// Fused LIF into the next layer's grid (<see cref="ForwardLifConv"/>), or null to write float spikes: spike (oc, column
        /// n) is field oc % WordGroup of word Words[oc / WordGroup · WordGroupStride + n]; gap columns are written as zero.
        /// </summary>
        public int* Words { get; init; }
        public long WordGroupStride { get; init; }
        public int WordGroup { get; init; } = 4;
        /// <summary>Fused LIF: the call's spike count, to which each block adds its own.</summary>
        public long* Fired { get; init; }

        public void Run(int n0, int n1, int m0, int m1, int* tile) => Run(n0, n1, m0, m1, 0, tile);

        /// <summary>
        /// Step <paramref name="step"/> of a block's output channels [m0, m1) (always 0 without LIF); a block's steps arrive in
        /// order on one thread.
        /// </summary>
        public void Run(int n0, int n1, int m0, int m1, int step, int* tile)
        {
            n1 = Math.Min(n1, Count);
            m1 = Math.Min(m1, OutChannels);
            int spatial = OutH * OutW, runs = 0;
            // The block's runs of valid outputs, found once for all channels (at most one per column).
            Span<int> from = stackalloc int[SpikeGemm.BlockColumns], length = stackalloc int[SpikeGemm.BlockColumns];
            Span<long> to = stackalloc long[SpikeGemm.BlockColumns];
            for (int nn = n0; nn < n1;)
            {
                long at = First + nn, f = at / FrameStride, r = at % FrameStride;
                int oy = (int)(r / RowStride), ox = (int)(r % RowStride);
                if (oy >= OutH) { nn += (int)(FrameStride - r); continue; }
                if (ox >= OutW) { nn += RowStride - ox; continue; }
                int run = Math.Min(n1 - nn, OutW - ox);
                long dst = f * OutChannels * spatial + oy * OutW + ox;
                if (runs > 0 && from[runs - 1] + length[runs - 1] == nn - n0 && to[runs - 1] + length[runs - 1] == dst) length[runs - 1] += run;
                else { from[runs] = nn - n0; to[runs] = dst; length[runs] = run; runs++; }
                nn += run;
            }
            int chain = Affines.Count;
            Span<float> alpha = stackalloc float[chain], beta = stackalloc float[chain];
            bool lif = !float.IsNaN(Threshold);
            float* membrane = lif ? Membrane(OutChannels) : null;
            long fired = 0;
            if (Words != null)
            {
                // Spikes into the next layer's words: the block's columns of each channel group are cleared (gaps stay zero),
                // then each channel ORs its spikes into its field. Both layers address the same gapped grid, so a channel's
                // whole row of the block is one vector run with the gaps masked off (no spike, membrane garbage no output
                // reads), rather than one call per run: 8×8 maps make 25 runs of 8 in a block.
                int bits = 32 / WordGroup, width = n1 - n0;
                int* valid = null; // null: the block has no gaps
                if (runs != 1 || length[0] != width)
                {
                    int* mask = stackalloc int[width];
                    new Span<int>(mask, width).Clear();
                    for (int i = 0; i < runs; i++) new Span<int>(mask + from[i], length[i]).Fill(-1);
                    valid = mask;
                }
                Debug.Assert(m0 % WordGroup == 0);
                for (int c = m0 / WordGroup; c * WordGroup < m1; c++)
                {
                    int* words = Words + c * WordGroupStride + step * StepColumns + n0;
                    new Span<int>(words, n1 - n0).Clear();
                    for (int e = 0, oc = c * WordGroup; e < WordGroup && oc < m1; e++, oc++)
                    {
                        float s = Scales[oc], bb = Bias == null ? 0f : Bias[oc];
                        for (int k = 0; k < chain; k++) { alpha[k] = Affines[k].Scale[oc]; beta[k] = Affines[k].Shift[oc]; }
                        int* row = tile + oc * SpikeGemm.BlockColumns;
                        float* v = membrane + oc * SpikeGemm.BlockColumns;
                        fired += ScaleLifRun(row, null, words, e * bits, v, width, s, bb, Bias != null, alpha, beta, Threshold, step == 0, valid);
                    }
                }
                if (Fired != null) Interlocked.Add(ref *Fired, fired);
                return;
            }
            // Each run is scaled (and fired) straight into the output: one pass over the tile, no staging row and copy. A
            // column keeps its place in the block over the steps, so its membrane is v[from + j] on every step.
            for (int oc = m0; oc < m1; oc++)
            {
                float s = Scales[oc], bb = Bias == null ? 0f : Bias[oc];
                for (int k = 0; k < chain; k++) { alpha[k] = Affines[k].Scale[oc]; beta[k] = Affines[k].Shift[oc]; }
                int* row = tile + oc * SpikeGemm.BlockColumns;
                float* plane = Output + (long)oc * spatial + step * StepOutput;
                float* v = membrane + oc * SpikeGemm.BlockColumns;
                for (int i = 0; i < runs; i++)
                    if (lif) fired += ScaleLifRun(row + from[i], plane + to[i], null, 0, v + from[i], length[i], s, bb, Bias != null, alpha, beta, Threshold, step == 0);
                    else ScaleRun(row + from[i], plane + to[i], length[i], s, bb, Bias != null, alpha, beta);
            }
            if (lif && Fired != null) Interlocked.Add(ref *Fired, fired);
        }
    }

    /// <summary>This thread's membrane of one block: rows of <see cref="SpikeGemm.BlockColumns"/> floats, one per output channel.</summary>
    private static float* Membrane(int rows)
    {
        int length = rows * SpikeGemm.BlockColumns;
        if (t_membrane is null || t_membrane.Length < length) t_membrane = GC.AllocateUninitializedArray<float>(length, pinned: true);
        return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(t_membrane));
    }

    [ThreadStatic] private static float[]? t_membrane;

    /// <summary>
    /// <see cref="ScaleRun"/>'s y for src[0..run), then one LIF step with membrane v (zero first when <paramref name="first"/>),
    /// spikes into s: the operations of <see cref="Snn.MultiStepLif"/>'s step, element for element (H = V + (X − V)·0.5;
    /// S = H ≥ threshold; V = S ? 0 : H), without storing y. With <paramref name="words"/>, each spike is ORed into bit
    /// <paramref name="shift"/> of words[j] instead of written to s[j] as a float; with <paramref name="valid"/> too, a column
    /// whose valid[j] is 0 (a gap) fires nothing. Returns the number of spikes.
    /// </summary>
    private static int ScaleLifRun(int* src, float* s, int* words, int shift, float* v, int run, float scale, float bias, bool hasBias,
        ReadOnlySpan<float> alpha, ReadOnlySpan<float> beta, float threshold, bool first, int* valid = null)
    {
        Debug.Assert(valid == null || words != null);
        int j = 0, count = 0;
        if (Vector512.IsHardwareAccelerated && run >= 16)
        {
            var vs = Vector512.Create(scale);
            var vb = Vector512.Create(bias);
            var half = Vector512.Create(0.5f);
            var th = Vector512.Create(threshold);
            var bit512 = Vector512.Create(1 << shift);
            for (; j <= run - 16; j += 16)
            {
                var x = Vector512.ConvertToSingle(Vector512.Load(src + j));
                var y = hasBias ? Vector512.FusedMultiplyAdd(x, vs, vb) : x * vs;
                for (int k = 0; k < alpha.Length; k++) y = Vector512.FusedMultiplyAdd(y, Vector512.Create(alpha[k]), Vector512.Create(beta[k]));
                var vj = first ? Vector512<float>.Zero : Vector512.Load(v + j);
                var h = vj + (y - vj) * half;
                var fire = Vector512.GreaterThanOrEqual(h, th);
                if (valid != null) fire &= Vector512.Load(valid + j).AsSingle();
                if (words == null) Vector512.ConditionalSelect(fire, Vector512<float>.One, Vector512<float>.Zero).Store(s + j);
                else (Vector512.Load(words + j) | (fire.AsInt32() & bit512)).Store(words + j);
                Vector512.ConditionalSelect(fire, Vector512<float>.Zero, h).Store(v + j);
                count += BitOperations.PopCount(fire.ExtractMostSignificantBits());
            }
        }
        if (Vector256.IsHardwareAccelerated && run - j >= 8)
        {
            var vs = Vector256.Create(scale);
            var vb = Vector256.Create(bias);
            var half = Vector256.Create(0.5f);
            var th = Vector256.Create(threshold);
            var bit256 = Vector256.Create(1 << shift);
            for (; j <= run - 8; j += 8)
            {
                var x = Vector256.ConvertToSingle(Vector256.Load(src + j));
                var y = hasBias ? Vector256.FusedMultiplyAdd(x, vs, vb) : x * vs;
                for (int k = 0; k < alpha.Length; k++) y = Vector256.FusedMultiplyAdd(y, Vector256.Create(alpha[k]), Vector256.Create(beta[k]));
                var vj = first ? Vector256<float>.Zero : Vector256.Load(v + j);
                var h = vj + (y - vj) * half;
                var fire = Vector256.GreaterThanOrEqual(h, th);
                if (valid != null) fire &= Vector256.Load(valid + j).AsSingle();
                if (words == null) Vector256.ConditionalSelect(fire, Vector256<float>.One, Vector256<float>.Zero).Store(s + j);
                else (Vector256.Load(words + j) | (fire.AsInt32() & bit256)).Store(words + j);
                Vector256.ConditionalSelect(fire, Vector256<float>.Zero, h).Store(v + j);
                count += BitOperations.PopCount(fire.ExtractMostSignificantBits());
            }
        }
        for (; j < run; j++)
        {
            float y = hasBias ? MathF.FusedMultiplyAdd(src[j], scale, bias) : src[j] * scale;
            for (int k = 0; k < alpha.Length; k++) y = MathF.FusedMultiplyAdd(y, alpha[k], beta[k]);
            float vj = first ? 0f : v[j];
            float h = vj + (y - vj) * 0.5f;
            bool fire = h >= threshold && (valid == null || valid[j] != 0);
            if (words == null) s[j] = fire ? 1f : 0f;
            else words[j] |= fire ? 1 << shift : 0;
            v[j] = fire ? 0f : h;
            count += fire ? 1 : 0;
        }
        return count;
    }

    /// <summary>
    /// dst[j] = fma(src[j], scale, bias) (or src[j]·scale): one rounding after the exact integer sum; then
    /// dst[j] = fma(dst[j], alpha[k], beta[k]) for each affine k, as separate BatchNorm passes would round.
    /// </summary>
    private static void ScaleRun(int* src, float* dst, int run, float scale, float bias, bool hasBias, ReadOnlySpan<float> alpha,
        ReadOnlySpan<float> beta)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated && run >= 16)
        {
            var vs = Vector512.Create(scale);
            var vb = Vector512.Create(bias);
            for (; j <= run - 16; j += 16)
            {
                var x = Vector512.ConvertToSingle(Vector512.Load(src + j));
                var y = hasBias ? Vector512.FusedMultiplyAdd(x, vs, vb) : x * vs;
                for (int k = 0; k < alpha.Length; k++) y = Vector512.FusedMultiplyAdd(y, Vector512.Create(alpha[k]), Vector512.Create(beta[k]));
                y.Store(dst + j);
            }
        }
        if (Vector256.IsHardwareAccelerated && run - j >= 8)
        {
            var vs = Vector256.Create(scale);
            var vb = Vector256.Create(bias);
            for (; j <= run - 8; j += 8)
            {
                var x = Vector256.ConvertToSingle(Vector256.Load(src + j));
                var y = hasBias ? Vector256.FusedMultiplyAdd(x, vs, vb) : x * vs;
                for (int k = 0; k < alpha.Length; k++) y = Vector256.FusedMultiplyAdd(y, Vector256.Create(alpha[k]), Vector256.Create(beta[k]));
                y.Store(dst + j);
            }
        }
        for (; j < run; j++)
        {
            float y = hasBias ? MathF.FusedMultiplyAdd(src[j], scale, bias) : src[j] * scale;
            for (int k = 0; k < alpha.Length; k++) y = MathF.FusedMultiplyAdd(y, alpha[k], beta[k]);
            dst[j] = y;
        }
    }

    /// <summary>Bound on one chunk's im2col buffer (at least one block of columns is gathered at a time).</summary>
    internal static long ChunkBytes { get; set; } = 4 << 20;

    /// <summary>
    /// Spikes [frames, C, h, w] (0/1 floats) into lane-group words: field e of the word of channel group c is channel
    /// group·c + e. Group c's grid starts at c·groupStride + lead; frame f's row y starts rowStride·(f·frameRows + y) after
    /// it. Everything else in [c·groupStride, (c + 1)·groupStride) — the lead, the columns past w, the rows past h — is zero.
    /// Returns the number of spikes, or −1 when a value is not 0 or 1 (then only the dense GEMM may read the words).
    /// </summary>
    private static long Interleave(float* x, int frames, int channels, int h, int w, int group, int* words, long groupStride, long lead,
        int rowStride, int frameRows, int threads)
    {
        long spikes = 0;
        int notSpikes = 0;
        int cg = (channels + group - 1) / group, bits = 32 / group, plane = h * w;
        long frameWords = (long)frameRows * rowStride;
        nint px = (nint)x, pw = (nint)words;
        int items = frames * cg, parts = Math.Max(1, Math.Min(threads, items));
        Compute.ForRanges(items, parts, (start, end) =>
        {
            long sum = 0;
            int any = 0;
            for (int item = start; item < end; item++) sum += InterleaveOne(item, ref any);
            Interlocked.Add(ref spikes, sum);
            Interlocked.Or(ref notSpikes, any & ~1);
        });
        return notSpikes != 0 ? -1 : spikes;

        long InterleaveOne(int item, ref int any)
        {
            int c = item / frames, f = item % frames, c0 = c * group, fields = Math.Min(group, channels - c0);
            int* dst = ClearFrameGaps((int*)pw + c * groupStride, lead, groupStride, frameWords, f, frames, h, w, rowStride);
            float* src = (float*)px + ((long)f * channels + c0) * plane;
            long sum = 0;
            if (rowStride == w) sum = Words(src, plane, fields, bits, dst, plane, ref any); // no gap columns: the frame is one run
            else
                for (int y = 0; y < h; y++)
                    sum += Words(src + y * w, plane, fields, bits, dst + (long)y * rowStride, w, ref any);
            return sum;
        }
    }

    /// <summary>
    /// Zeroes what frame <paramref name="f"/> of one channel group's grid holds besides its rows (<see cref="Interleave"/>'s
    /// layout): the lead before frame 0, each row's gap columns, the gap rows after the frame (after the last frame, up to
    /// the group's end). Returns where the frame's first row starts.
    /// </summary>
    private static int* ClearFrameGaps(int* grid, long lead, long groupStride, long frameWords, int f, int frames, int h, int w, int rowStride)
    {
        int* dst = grid + lead + f * frameWords;
        if (f == 0) new Span<int>(grid, (int)lead).Clear();
        if (rowStride != w)
            for (int y = 0; y < h; y++) new Span<int>(dst + (long)y * rowStride + w, rowStride - w).Clear();
        long end = f == frames - 1 ? groupStride - lead - f * frameWords : frameWords;
        long gapWords = end - (long)h * rowStride;
        if (gapWords > 0) new Span<int>(dst + (long)h * rowStride, (int)gapWords).Clear();
        return dst;
    }

    /// <summary>
    /// The LIF neuron (<see cref="Snn.MultiStepLif"/>: from V = 0, for t in order H = V + (X − V)·0.5, S = H ≥ threshold,
    /// V = S ? 0 : H; after x += addend where given, the sum kept in x) over x [T·B, C, h, w] (time-major frames), its spikes
    /// written as the input words of a direct layer of pad (padH, padW) with <paramref name="group"/> fields a word
    /// (<see cref="Interleave"/>'s grid, its gaps zero) into <paramref name="buffer"/> (grown as needed), not as floats: the
    /// float spikes and the interleave's pass over them never exist, and the layer's sums are those over them. Work is
    /// split by (image, channel group), whose T frames and fields one thread owns.
    /// </summary>
    public static HandedSpikes LifWords(float[] x, float[]? addend, int frames, int channels, int height, int width, int timesteps, float threshold,
        int padH, int padW, int group, ref int[]? buffer, int threads)
    {
        if (timesteps < 1 || frames % timesteps != 0) throw new ArgumentException($"{frames} frames are not T = {timesteps} steps", nameof(timesteps));
        if (group is not (2 or 4)) throw new ArgumentException($"words hold 2 or 4 fields, not {group}", nameof(group));
        int hw = height * width, batch = frames / timesteps, cg = (channels + group - 1) / group, bits = 32 / group;
        long n = (long)frames * channels * hw;
        if (x.Length < n || (addend is not null && addend.Length < n)) throw new ArgumentException($"the LIF's input needs {n} floats");
        var grid = Grid.For(new ConvGeometry(channels, channels, 2 * padH + 1, 2 * padW + 1, 1, 1, padH, padW), frames, height, width);
        var words = Scratch(ref buffer, cg * grid.GroupStride);
        long fired = 0;
        int units = batch * cg, parts = (int)Math.Clamp(n / (1 << 14), 1, Math.Min(threads, units));
        fixed (float* px = x, pa = addend)
        fixed (int* pw = words)
        {
            float* xs = px, ys = pa;
            int* ws = pw;
            Compute.ForRanges(units, parts, (u0, u1) =>
            {
                var stage = System.Buffers.ArrayPool<int>.Shared.Rent(timesteps * hw);
                var membrane = System.Buffers.ArrayPool<float>.Shared.Rent(group * hw);
                long count = 0, step = (long)batch * channels * hw;
                fixed (int* st = stage)
                fixed (float* v = membrane)
                    for (int u = u0; u < u1; u++)
                    {
                        int b = u % batch, c = u / batch, c0 = c * group, fields = Math.Min(group, channels - c0);
                        long off = ((long)b * channels + c0) * hw;
                        count += LifUnitWords(xs + off, ys == null ? null : ys + off, step, v, st, hw, fields, bits, timesteps, threshold);
                        for (int t = 0; t < timesteps; t++)
                        {
                            int* dst = ClearFrameGaps(ws + c * grid.GroupStride, grid.Lead, grid.GroupStride, grid.FrameStride, t * batch + b, frames,
                                height, width, grid.RowStride);
                            if (grid.RowStride == width) new ReadOnlySpan<int>(st + t * hw, hw).CopyTo(new Span<int>(dst, hw)); // no row gaps
                            else
                                for (int y = 0; y < height; y++)
                                    new ReadOnlySpan<int>(st + t * hw + y * width, width).CopyTo(new Span<int>(dst + (long)y * grid.RowStride, width));
                        }
                    }
                System.Buffers.ArrayPool<int>.Shared.Return(stage);
                System.Buffers.ArrayPool<float>.Shared.Return(membrane);
                Interlocked.Add(ref fired, count);
            });
        }
        return new HandedSpikes(words, fired, group, channels, frames, height, width, padH, padW);
    }

    /// <summary>
    /// The LIF over one (image, channel group): <paramref name="fields"/> planes of <paramref name="hw"/> neurons, contiguous at
    /// x (and y), over <paramref name="timesteps"/> steps <paramref name="step"/> floats apart, field e's spikes ORed into
    /// stage[t·hw + i] at bit e·bits (stage cleared here). One call a unit, not one a field and step: on 4 × 4 maps a plane is
    /// one vector, and the calls had cost more than the neurons.
    /// </summary>
    private static int LifUnitWords(float* x, float* y, long step, float* v, int* stage, int hw, int fields, int bits, int timesteps, float threshold)
    {
        new Span<int>(stage, timesteps * hw).Clear();
        new Span<float>(v, fields * hw).Clear();
        int count = 0;
        for (int t = 0; t < timesteps; t++)
            for (int e = 0; e < fields; e++)
            {
                long off = t * step + (long)e * hw;
                count += LifStepWords(x + off, y == null ? null : y + off, v + e * hw, stage + t * hw, hw, 1 << (e * bits), threshold);
            }
        return count;
    }

    /// <summary>
    /// One LIF step over n neurons (x += y first where y is given), each spike ORed into stage[i] as <paramref name="bit"/>:
    /// <see cref="Snn.MultiStepLif"/>'s step, op for op. Returns the number of spikes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int LifStepWords(float* x, float* y, float* v, int* stage, int n, int bit, float threshold)
    {
        int i = 0, count = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var half = Vector512.Create(0.5f);
            var th = Vector512.Create(threshold);
            var b = Vector512.Create(bit);
            for (; i <= n - 16; i += 16)
            {
                var xi = Vector512.Load(x + i);
                if (y != null) (xi += Vector512.Load(y + i)).Store(x + i);
                var vi = Vector512.Load(v + i);
                var h = vi + (xi - vi) * half;
                var fire = Vector512.GreaterThanOrEqual(h, th);
                (Vector512.Load(stage + i) | (fire.AsInt32() & b)).Store(stage + i);
                Vector512.ConditionalSelect(fire, Vector512<float>.Zero, h).Store(v + i);
                count += BitOperations.PopCount(fire.ExtractMostSignificantBits());
            }
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var half = Vector256.Create(0.5f);
            var th = Vector256.Create(threshold);
            var b = Vector256.Create(bit);
            for (; i <= n - 8; i += 8)
            {
                var xi = Vector256.Load(x + i);
                if (y != null) (xi += Vector256.Load(y + i)).Store(x + i);
                var vi = Vector256.Load(v + i);
                var h = vi + (xi - vi) * half;
                var fire = Vector256.GreaterThanOrEqual(h, th);
                (Vector256.Load(stage + i) | (fire.AsInt32() & b)).Store(stage + i);
                Vector256.ConditionalSelect(fire, Vector256<float>.Zero, h).Store(v + i);
                count += BitOperations.PopCount(fire.ExtractMostSignificantBits());
            }
        }
        for (; i < n; i++)
        {
            float xi = x[i];
            if (y != null) x[i] = xi += y[i];
            float h = v[i] + (xi - v[i]) * 0.5f;
            bool fire = h >= threshold;
            if (fire) { stage[i] |= bit; count++; }
            v[i] = fire ? 0f : h;
        }
        return count;
    }

    /// <summary>
    /// d[i] = the word of spikes src[e·plane + i] (field e at bit e·bits) for i &lt; length. Returns the sum of the values
    /// (the spikes, for 0/1 inputs) and ORs every value into <paramref name="any"/> (above 1: not spikes).
    /// </summary>
    private static long Words(float* src, long plane, int fields, int bits, int* d, int length, ref int any)
    {
        int i = 0;
        long sum = 0;
        if (fields == 4 && Vector512.IsHardwareAccelerated && length >= 16)
        {
            Vector512<int> total = default, or = default;
            for (; i <= length - 16; i += 16)
            {
                var f0 = Vector512.ConvertToInt32(Vector512.Load(src + i));
                var f1 = Vector512.ConvertToInt32(Vector512.Load(src + plane + i));
                var f2 = Vector512.ConvertToInt32(Vector512.Load(src + 2 * plane + i));
                var f3 = Vector512.ConvertToInt32(Vector512.Load(src + 3 * plane + i));
                total += (f0 + f1) + (f2 + f3);
                or |= (f0 | f1) | (f2 | f3);
                (f0 | f1 << 8 | f2 << 16 | f3 << 24).Store(d + i);
            }
            sum += Vector512.Sum(total); // each lane at most 4·length / 16: no overflow
            if (!Vector512.EqualsAll(or & Vector512.Create(~1), Vector512<int>.Zero)) any |= 2;
        }
        if (Vector256.IsHardwareAccelerated && length - i >= 8)
        {
            Vector256<int> total = default, or = default;
            for (; i <= length - 8; i += 8)
            {
                var acc = Vector256.ConvertToInt32(Vector256.Load(src + i));
                total += acc;
                or |= acc;
                for (int e = 1; e < fields; e++)
                {
                    var f = Vector256.ConvertToInt32(Vector256.Load(src + e * plane + i));
                    total += f;
                    or |= f;
                    acc |= f << (e * bits);
                }
                acc.Store(d + i);
            }
            sum += Vector256.Sum(total);
            if (!Vector256.EqualsAll(or & Vector256.Create(~1), Vector256<int>.Zero)) any |= 2;
        }
        for (; i < length; i++)
        {
            int word = 0;
            for (int e = 0; e < fields; e++)
            {
                int f = (int)src[e * plane + i];
                sum += f;
                any |= f;
                word |= f << (e * bits);
            }
            d[i] = word;
        }
        return sum;
    }

    /// <summary>
    /// im2col of interleaved spike words (see <see cref="Interleave"/>, without gaps) for output positions [start, start +
    /// count) into B, lane group gi's columns at b + gi·ldb (<paramref name="columns"/> ≥ count, the rest zero). K runs over
    /// (tap, channel group), the column order of a conv <see cref="IntMatrix"/>.
    /// </summary>
    private static void Gather(int* words, long groupStride, int frames, int h, int w, ConvGeometry g, int group, int* b, int ldb,
        int start, int count, int columns, int threads)
    {
        int oh = g.OutH(h), ow = g.OutW(w), spatial = oh * ow, taps = g.KernelH * g.KernelW;
        int cg = (g.InChannels + group - 1) / group, groups = taps * cg, plane = h * w;
        nint pw = (nint)words, pb = (nint)b;
        Compute.For(groups, threads, gi =>
        {
            int tap = gi / cg, c = gi % cg, ky = tap / g.KernelW, kx = tap % g.KernelW;
            int* dst = (int*)pb + (long)gi * ldb;
            new Span<int>(dst + count, columns - count).Clear();
            for (int nn = 0; nn < count;)
            {
                int at = start + nn, f = at / spatial, p = at % spatial, oy = p / ow, ox = p % ow;
                int run = Math.Min(ow - ox, count - nn);
                int* d = dst + nn;
                nn += run;
                int iy = oy * g.StrideH - g.PadH + ky;
                if ((uint)iy >= (uint)h) { new Span<int>(d, run).Clear(); continue; }
                int* row = (int*)pw + c * groupStride + ((long)f * h + iy) * w;
                int ix0 = ox * g.StrideW - g.PadW + kx;
                for (int j = 0; j < run; j++)
                {
                    int ix = ix0 + j * g.StrideW;
                    d[j] = (uint)ix < (uint)w ? row[ix] : 0;
                }
            }
        });
    }

    [ThreadStatic] private static int[]? t_words, t_b, t_chain;
    [ThreadStatic] private static long t_spikes;

    [ThreadStatic] private static long[]? t_offsets, t_taps;

    /// <summary>A per-thread scratch array of at least <paramref name="length"/> elements (grown, never shrunk): no allocation per call.</summary>
    private static T[] Scratch<T>(ref T[]? slot, long length)
    {
        if (length > Array.MaxLength) throw new QsvitException($"a scratch buffer of {length:N0} elements exceeds .NET's array limit; use a smaller batch");
        if (slot is null || slot.Length < length) slot = GC.AllocateUninitializedArray<T>((int)length, pinned: true);
        return slot;
    }
}
