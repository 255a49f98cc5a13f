using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>Shape of a 2-D convolution. Weight layout is [OutChannels, InChannels/Groups, KernelH, KernelW].</summary>
public readonly record struct ConvGeometry(
    int InChannels, int OutChannels, int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1, int PadH = 0, int PadW = 0, int Groups = 1)
{
    public int OutH(int height) => (height + 2 * PadH - KernelH) / StrideH + 1;
    public int OutW(int width) => (width + 2 * PadW - KernelW) / StrideW + 1;
    public int WeightLength => OutChannels * (InChannels / Groups) * KernelH * KernelW;
    public bool IsDepthwise => Groups == InChannels && Groups == OutChannels;
    public bool IsPointwise => KernelH == 1 && KernelW == 1 && StrideH == 1 && StrideW == 1 && PadH == 0 && PadW == 0 && Groups == 1;

    internal void Validate()
    {
        if (InChannels <= 0 || OutChannels <= 0 || KernelH <= 0 || KernelW <= 0 || StrideH <= 0 || StrideW <= 0 || PadH < 0 || PadW < 0 || Groups <= 0)
            throw new ArgumentException($"invalid convolution geometry {this}");
        if (InChannels % Groups != 0 || OutChannels % Groups != 0)
            throw new ArgumentException($"channels ({InChannels}, {OutChannels}) are not divisible by groups {Groups}");
    }
}

/// <summary>How a dense (non-depthwise) convolution is lowered onto the GEMM micro-kernel.</summary>
internal enum ConvAlgo
{
    /// <summary>Pick per shape.</summary>
    Auto,
    /// <summary>
    /// Implicit GEMM, one image at a time: the input is copied once into a zero-padded (and, for strides above one,
    /// phase-split) buffer; the micro-kernel reads its B rows straight from it through a per-tap offset table. Outputs are
    /// computed on the padded width and the extra columns dropped. A 1×1 stride-1 unpadded convolution reads the input
    /// and writes the output in place.
    /// </summary>
    Direct,
    /// <summary>
    /// Explicit im2col over a run of images at once (columns = images × OutH × OutW), one GEMM, then a scatter back to
    /// NCHW. Suits small feature maps, where one image alone gives the GEMM too few columns.
    /// </summary>
    Im2Col,
}

/// <summary>2-D convolution over NCHW float32 data, zero padding.</summary>
public static unsafe class Conv2d
{
    /// <summary>output[batch, OutChannels, OutH, OutW] = conv(input[batch, InChannels, height, width]) + bias (bias may be empty).</summary>
    public static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias, in ConvGeometry g, Span<float> output, ComputeOptions? options = null)
        => Forward(input, batch, height, width, weight, bias, g, output, IsaInfo.Best, (options ?? ComputeOptions.Default).Threads, ConvAlgo.Auto, null);

    /// <summary>As <see cref="Forward(ReadOnlySpan{float}, int, int, int, ReadOnlySpan{float}, ReadOnlySpan{float}, in ConvGeometry, Span{float})"/> with weights packed once by <see cref="ConvWeights.Pack"/>.</summary>
    public static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, ConvWeights weights,
        ReadOnlySpan<float> bias, Span<float> output, ComputeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        Forward(input, batch, height, width, weights, bias, output, (options ?? ComputeOptions.Default).Threads, ConvAlgo.Auto, null);
    }

    internal static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias, in ConvGeometry g, Span<float> output, Isa isa, int threads, ConvAlgo algo, bool? packB = null)
    {
        g.Validate();
        if (weight.Length < g.WeightLength) throw new ArgumentException($"weight has {weight.Length} elements, needs {g.WeightLength}", nameof(weight));
        isa = IsaInfo.Clamp(isa);
        if (g.IsDepthwise)
        {
            CheckIo(input, batch, height, width, bias, g, output);
            fixed (float* pw = weight)
                Depthwise.Forward(input, batch, height, width, pw, bias, g, output, isa, threads);
            return;
        }
        using var w = ConvWeights.Pack(weight, g, isa);
        Forward(input, batch, height, width, w, bias, output, threads, algo, packB);
    }

    internal static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, ConvWeights w,
        ReadOnlySpan<float> bias, Span<float> output, int threads, ConvAlgo algo, bool? packB)
    {
        var g = w.Geometry;
        CheckIo(input, batch, height, width, bias, g, output);
        if (batch == 0) return;
        if (w.IsDepthwise)
        {
            fixed (float* pw = w.Raw)
                Depthwise.Forward(input, batch, height, width, pw, bias, g, output, w.Isa, threads);
            return;
        }
        int oh = g.OutH(height), ow = g.OutW(width);
        if (algo == ConvAlgo.Auto) algo = ChooseAlgo(g, height, width, oh, ow, w.Isa);
        var (segment, biasAfter) = ReductionOrder.Segments(g, height, width);
        fixed (float* px = input, pb = bias, po = output)
        {
            var job = new ConvJob
            {
                X = px, Y = po, Bias = pb, Batch = batch, H = height, W = width, OH = oh, OW = ow,
                G = g, Weights = w, Isa = w.Isa, PackB = packB, KSegment = segment, BiasAfterFirstSegment = biasAfter,
            };
            if (algo == ConvAlgo.Im2Col) RunIm2Col(job, threads);
            else if (g.KernelH == 1 && g.KernelW == 1 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0) RunPointwise(job, threads);
            else RunDirect(job, threads);
        }
    }

    /// <summary>
    /// The unpadded depthwise conv <paramref name="g"/> over the input padded by <paramref name="pad"/> with
    /// <paramref name="border"/>[c] around channel c's plane: BNAndPadLayer, then the conv, without the padded map.
    /// </summary>
    internal static void ForwardBordered(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias,
        in ConvGeometry g, int pad, ReadOnlySpan<float> border, Span<float> output, Isa isa, int threads)
    {
        g.Validate();
        if (!g.IsDepthwise || g.PadH != 0 || g.PadW != 0) throw new ArgumentException($"only unpadded depthwise convs read a border, not {g}", nameof(g));
        ArgumentOutOfRangeException.ThrowIfNegative(pad);
        if (weight.Length < g.WeightLength) throw new ArgumentException($"weight has {weight.Length} elements, needs {g.WeightLength}", nameof(weight));
        var padded = g with { PadH = pad, PadW = pad };
        CheckIo(input, batch, height, width, bias, padded, output);
        if (border.Length < g.InChannels) throw new ArgumentException($"{border.Length} border values for {g.InChannels} channels", nameof(border));
        fixed (float* pw = weight)
            Depthwise.Forward(input, batch, height, width, pw, bias, padded, output, IsaInfo.Clamp(isa), threads, border);
    }

    private static void CheckIo(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> bias, in ConvGeometry g, Span<float> output)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        int oh = g.OutH(height), ow = g.OutW(width);
        if (oh <= 0 || ow <= 0) throw new ArgumentException($"input {height}x{width} is smaller than the kernel {g.KernelH}x{g.KernelW} with padding");
        long inLen = (long)batch * g.InChannels * height * width, outLen = (long)batch * g.OutChannels * oh * ow;
        if (input.Length < inLen) throw new ArgumentException($"input has {input.Length} elements, needs {inLen}", nameof(input));
        if (output.Length < outLen) throw new ArgumentException($"output has {output.Length} elements, needs {outLen}", nameof(output));
        if (!bias.IsEmpty && bias.Length < g.OutChannels) throw new ArgumentException($"bias has {bias.Length} elements, needs {g.OutChannels}", nameof(bias));
    }

    /// <summary>
    /// Per-shape choice between the in-place (padded) implicit GEMM and batched im2col, from measurements on Zen 4.
    /// The padded form computes Wq/OW columns per useful output; im2col instead copies K values per output column,
    /// a cost spread over the Cout rows that reuse it, and needs a column matrix per image that fits in cache.
    /// </summary>
    internal static ConvAlgo ChooseAlgo(in ConvGeometry g, int height, int width, int oh, int ow, Isa isa)
    {
        int nr = IsaInfo.Nr(isa), ohw = oh * ow, coutG = g.OutChannels / g.Groups;
        bool pointwise = g.KernelH == 1 && g.KernelW == 1 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0;
        if (pointwise) return ohw >= 256 || (ohw % nr == 0 && ohw >= 2 * nr) ? ConvAlgo.Direct : ConvAlgo.Im2Col;
        long k = (long)(g.InChannels / g.Groups) * g.KernelH * g.KernelW;
        if (k * ohw > 1 << 19) return ConvAlgo.Direct;
        int wq = (width + 2 * g.PadW + g.StrideW - 1) / g.StrideW;
        double waste = (double)wq / ow;
        return waste >= 1 + 4.0 / coutG ? ConvAlgo.Im2Col : ConvAlgo.Direct;
    }

    /// <summary>Everything one convolution call shares between its workers.</summary>
    private struct ConvJob
    {
        public float* X, Y, Bias;
        public int Batch, H, W, OH, OW;
        public ConvGeometry G;
        public ConvWeights Weights;
        public Isa Isa;
        /// <summary>Force (or forbid) packing B blocks; null: <see cref="GemmCore.ShouldPackB"/>.</summary>
        public bool? PackB;
        /// <summary>The reduction's segments (<see cref="ReductionOrder.Segments"/>).</summary>
        public int KSegment;
        public bool BiasAfterFirstSegment;
    }

    // ---------------------------------------------------------------- 1x1, stride 1, no padding: GEMM in place

    private static void RunPointwise(ConvJob job, int threads)
    {
        var g = job.G;
        int groups = g.Groups, cinG = g.InChannels / groups, coutG = g.OutChannels / groups, hw = job.H * job.W;
        var offs = new int[cinG];
        for (int c = 0; c < cinG; c++) offs[c] = c * hw;
        int mr = IsaInfo.Mr(job.Isa), nr = IsaInfo.Nr(job.Isa), panels = (coutG + mr - 1) / mr;
        // Work items: (image, group, column slice). Columns are sliced only when there are fewer images than threads.
        double flops = 2.0 * job.Batch * g.OutChannels * cinG * hw;
        int t = (int)Math.Clamp(flops / Gemm.MinFlopsPerThread, 1, threads);
        int slices = job.Batch * groups >= t ? 1 : Math.Max(1, Math.Min((t + job.Batch * groups - 1) / (job.Batch * groups), (hw + nr - 1) / nr));
        int items = job.Batch * groups * slices;
        int tiles = (hw + nr - 1) / nr;
        bool pack = job.PackB ?? GemmCore.ShouldPackB(coutG, hw, cinG, hw, job.Isa);
        fixed (int* po = offs)
        {
            int* pOffs = po;
            Compute.For(Math.Min(t, items), t, worker =>
            {
                int i0 = Compute.ChunkStart(items, Math.Min(t, items), worker), i1 = Compute.ChunkStart(items, Math.Min(t, items), worker + 1);
                var scratch = ArrayPool<float>.Shared.Rent(GemmCore.ScratchLength(job.Isa));
                fixed (float* ps = scratch)
                {
                    for (int it = i0; it < i1; it++)
                    {
                        int slice = it % slices, ng = it / slices, grp = ng % groups, n = ng / groups;
                        var pr = new GemmProblem
                        {
                            M = coutG, N = hw, K = cinG, A = job.Weights.GroupPointer(grp),
                            B = job.X + ((long)n * g.InChannels + grp * cinG) * hw, BOffs = pOffs, BReadPastN = false, PackB = pack,
                            C = job.Y + ((long)n * g.OutChannels + grp * coutG) * hw, Ldc = hw,
                            RowInit = job.Bias == null ? null : job.Bias + grp * coutG,
                            KSegment = job.KSegment, BiasAfterFirstSegment = job.BiasAfterFirstSegment,
                        };
                        int t0 = Compute.ChunkStart(tiles, slices, slice) * nr, t1 = Math.Min(hw, Compute.ChunkStart(tiles, slices, slice + 1) * nr);
                        GemmCore.Run(pr, 0, panels, t0, t1, job.Isa, GemmCore.Align64(ps));
                    }
                }
                ArrayPool<float>.Shared.Return(scratch);
            });
        }
    }

    // ---------------------------------------------------------------- implicit GEMM on a padded, phase-split input

    /// <summary>Geometry of the padded, phase-split copy of one image (or one group of its channels).</summary>
    internal readonly struct PaddedLayout
    {
        public readonly int Channels, Sh, Sw, Hq, Wq, PadH, PadW, H, W;
        public PaddedLayout(int channels, int h, int w, int padH, int padW, int sh, int sw)
        {
            Channels = channels; H = h; W = w; PadH = padH; PadW = padW; Sh = sh; Sw = sw;
            Hq = (h + 2 * padH + sh - 1) / sh;
            Wq = (w + 2 * padW + sw - 1) / sw;
        }

        public long Plane => (long)Hq * Wq;
        /// <summary>Floats of the buffer including <paramref name="slack"/> zeroed floats after the last plane.</summary>
        public long Length(int slack) => Plane * Channels * Sh * Sw + slack;

        /// <summary>Offset of tap (c, ky, kx) relative to the output column (oy·Wq + ox).</summary>
        public int TapOffset(int c, int ky, int kx)
            => (int)((((long)(ky % Sh) * Sw + kx % Sw) * Channels + c) * Plane + (ky / Sh) * Wq + kx / Sw);

        /// <summary>
        /// dst[(phase·Channels + c)·Hq·Wq + i·Wq + j] = x[c, Sh·i + ry − PadH, Sw·j + rx − PadW] (<paramref name="border"/>
        /// outside: zero, or BNAndPadLayer's value), phase = ry·Sw + rx; then <paramref name="slack"/> zeros.
        /// </summary>
        public void Fill(float* x, float* dst, int slack, float border = 0f)
        {
            long plane = Plane;
            if (Sh == 1 && Sw == 1)
            {
                for (int c = 0; c < Channels; c++)
                {
                    float* d = dst + c * plane;
                    float* s = x + (long)c * H * W;
                    new Span<float>(d, PadH * Wq).Fill(border);
                    for (int i = 0; i < H; i++)
                    {
                        float* dr = d + (long)(i + PadH) * Wq;
                        new Span<float>(dr, PadW).Fill(border);
                        Buffer.MemoryCopy(s + (long)i * W, dr + PadW, W * sizeof(float), W * sizeof(float));
                        new Span<float>(dr + PadW + W, Wq - PadW - W).Fill(border);
                    }
                    new Span<float>(d + (long)(PadH + H) * Wq, (Hq - PadH - H) * Wq).Fill(border);
                }
            }
            else
            {
                for (int ry = 0; ry < Sh; ry++)
                    for (int rx = 0; rx < Sw; rx++)
                        for (int c = 0; c < Channels; c++)
                        {
                            float* d = dst + ((long)(ry * Sw + rx) * Channels + c) * plane;
                            float* s = x + (long)c * H * W;
                            for (int i = 0; i < Hq; i++)
                            {
                                float* dr = d + (long)i * Wq;
                                int r = Sh * i + ry - PadH;
                                if ((uint)r >= (uint)H)
                                {
                                    new Span<float>(dr, Wq).Fill(border);
                                    continue;
                                }
                                float* sr = s + (long)r * W;
                                // Columns j with 0 <= Sw·j + rx − PadW < W.
                                int jLo = Math.Max(0, (PadW - rx + Sw - 1) / Sw);
                                int jHi = Math.Min(Wq, (W - 1 + PadW - rx) / Sw + 1);
                                if (jHi < jLo) jHi = jLo;
                                int j = 0;
                                for (; j < jLo; j++) dr[j] = border;
                                int col = Sw * j + rx - PadW;
                                for (; j < jHi; j++, col += Sw) dr[j] = sr[col];
                                for (; j < Wq; j++) dr[j] = border;
                            }
                        }
            }
            new Span<float>(dst + plane * Channels * Sh * Sw, slack).Clear();
        }
    }

    private static void RunDirect(ConvJob job, int threads)
    {
        var g = job.G;
        int groups = g.Groups, cinG = g.InChannels / groups, coutG = g.OutChannels / groups;
        int kh = g.KernelH, kw = g.KernelW, k = cinG * kh * kw;
        var lay = new PaddedLayout(cinG, job.H, job.W, g.PadH, g.PadW, g.StrideH, g.StrideW);
        var offs = job.Weights.TapOffsets(lay);
        int mr = IsaInfo.Mr(job.Isa), nr = IsaInfo.Nr(job.Isa), panels = (coutG + mr - 1) / mr;
        int wq = lay.Wq, oh = job.OH, ow = job.OW;
        int nValid = oh * wq, nTot = (nValid + nr - 1) / nr * nr;
        int slack = nr + 2 * wq + kw + 16;
        // Column chunk (multiple of NR): at least one GEMM column block, so that each A panel slice is reused across
        // many tiles; larger when Cout is small (the C slice, coutG × chunk, then still fits in L2).
        int chunk = Math.Clamp(65536 / Math.Max(coutG, 1) / nr * nr, GemmCore.Nc, 4096);
        chunk = Math.Min(chunk, nTot);
        int chunks = (nTot + chunk - 1) / chunk;
        int items = job.Batch * groups * chunks;
        double flops = 2.0 * job.Batch * g.OutChannels * k * oh * ow;
        int t = (int)Math.Clamp(flops / Gemm.MinFlopsPerThread, 1, threads);
        t = Math.Min(t, items);
        long padLen = lay.Length(slack);
        // Tap rows overlap (shifted views of the same channel rows) and stay cached: packing measured as a loss here.
        bool pack = job.PackB ?? false;
        fixed (int* po = offs)
        {
            int* pOffs = po;
            Compute.ForRanges(items, t, (i0, i1) =>
            {
                var xbuf = ArrayPool<float>.Shared.Rent(checked((int)padLen + 16));
                var cbuf = ArrayPool<float>.Shared.Rent(coutG * chunk + 16);
                var scratch = ArrayPool<float>.Shared.Rent(GemmCore.ScratchLength(job.Isa));
                fixed (float* pxb = xbuf, pcb = cbuf, ps = scratch)
                {
                    float* xp = GemmCore.Align64(pxb), cp = GemmCore.Align64(pcb), sp = GemmCore.Align64(ps);
                    int prepared = -1;
                    for (int it = i0; it < i1; it++)
                    {
                        int ci = it % chunks, ng = it / chunks, grp = ng % groups, n = ng / groups;
                        if (ng != prepared)
                        {
                            lay.Fill(job.X + ((long)n * g.InChannels + grp * cinG) * job.H * job.W, xp, slack);
                            prepared = ng;
                        }
                        int c0 = ci * chunk, c1 = Math.Min(nTot, c0 + chunk);
                        var pr = new GemmProblem
                        {
                            M = coutG, N = nTot, K = k, A = job.Weights.GroupPointer(grp),
                            B = xp, BOffs = pOffs, BReadPastN = true, PackB = pack,
                            C = cp - c0, Ldc = chunk,
                            RowInit = job.Bias == null ? null : job.Bias + grp * coutG,
                            KSegment = job.KSegment, BiasAfterFirstSegment = job.BiasAfterFirstSegment,
                        };
                        GemmCore.Run(pr, 0, panels, c0, c1, job.Isa, sp);
                        // Drop the padded columns: column j is output (j / Wq, j % Wq) when j % Wq < OW.
                        float* y = job.Y + ((long)n * g.OutChannels + grp * coutG) * oh * ow;
                        int jEnd = Math.Min(c1, nValid);
                        for (int j = c0; j < jEnd;)
                        {
                            int oy = j / wq, ox = j - oy * wq;
                            int runEnd = Math.Min(jEnd, oy * wq + ow);
                            int len = runEnd - j;
                            if (len > 0)
                            {
                                for (int oc = 0; oc < coutG; oc++)
                                    Buffer.MemoryCopy(cp + (long)oc * chunk + (j - c0), y + ((long)oc * oh + oy) * ow + ox,
                                        len * sizeof(float), len * sizeof(float));
                            }
                            j = (oy + 1) * wq;
                        }
                    }
                }
                ArrayPool<float>.Shared.Return(scratch);
                ArrayPool<float>.Shared.Return(cbuf);
                ArrayPool<float>.Shared.Return(xbuf);
            });
        }
    }

    // ---------------------------------------------------------------- batched im2col

    private static void RunIm2Col(ConvJob job, int threads)
    {
        var g = job.G;
        int groups = g.Groups, cinG = g.InChannels / groups, coutG = g.OutChannels / groups;
        int kh = g.KernelH, kw = g.KernelW, k = cinG * kh * kw;
        int oh = job.OH, ow = job.OW, ohw = oh * ow;
        int mr = IsaInfo.Mr(job.Isa), nr = IsaInfo.Nr(job.Isa), panels = (coutG + mr - 1) / mr;
        // Images per GEMM: enough columns to fill the vectors, a column buffer that stays within ~1 MiB.
        int ipc = Math.Clamp((512 + ohw - 1) / ohw, 1, Math.Max(1, 262144 / Math.Max(1, k * ohw)));
        ipc = Math.Min(ipc, job.Batch);
        double flops = 2.0 * job.Batch * g.OutChannels * k * ohw;
        int t = (int)Math.Clamp(flops / Gemm.MinFlopsPerThread, 1, threads);
        // Keep every thread busy: no more images per chunk than an even share.
        if (t > 1) ipc = Math.Max(1, Math.Min(ipc, (job.Batch + t - 1) / t));
        int chunksPerGroup = (job.Batch + ipc - 1) / ipc;
        int items = chunksPerGroup * groups;
        // Fewer chunks than threads (the 55M preset's batch of one is 4 frames): each chunk's A panels are cut into slices,
        // a work item each (the column matrix is built once per thread and chunk). Every element sums the same either way.
        int slices = items >= t ? 1 : Math.Max(1, Math.Min((t + items - 1) / items, panels / 2));
        int work = items * slices;
        t = Math.Min(t, work);
        int ld = (ipc * ohw + nr - 1) / nr * nr;
        var offs = new int[k];
        for (int p = 0; p < k; p++) offs[p] = p * ld;
        bool pack = job.PackB ?? GemmCore.ShouldPackB(coutG, ld, k, ld, job.Isa);
        var lay = new PaddedLayout(cinG, job.H, job.W, g.PadH, g.PadW, g.StrideH, g.StrideW);
        var taps = job.Weights.TapOffsets(lay);
        int slack = 16;
        long padLen = lay.Length(slack);
        fixed (int* po = offs, pt = taps)
        {
            int* pOffs = po, pTaps = pt;
            Compute.ForRanges(work, t, (i0, i1) =>
            {
                var colBuf = ArrayPool<float>.Shared.Rent(checked(k * ld + 16));
                var padBuf = ArrayPool<float>.Shared.Rent(checked((int)padLen + 16));
                var cbuf = ArrayPool<float>.Shared.Rent(coutG * ld + 16);
                var scratch = ArrayPool<float>.Shared.Rent(GemmCore.ScratchLength(job.Isa));
                fixed (float* pcol = colBuf, pcb = cbuf, ps = scratch, ppad = padBuf)
                {
                    float* col = GemmCore.Align64(pcol), cp = GemmCore.Align64(pcb), sp = GemmCore.Align64(ps), pad = GemmCore.Align64(ppad);
                    int prepared = -1;
                    for (int it = i0; it < i1; it++)
                    {
                        int item = it / slices, slice = it - item * slices;
                        int grp = item % groups, chunk = item / groups;
                        int n0 = chunk * ipc, nImg = Math.Min(ipc, job.Batch - n0);
                        if (item != prepared) Im2Col(job, lay, pTaps, slack, pad, grp, cinG, n0, nImg, col, ld);
                        prepared = item;
                        int p0 = Compute.ChunkStart(panels, slices, slice), p1 = Compute.ChunkStart(panels, slices, slice + 1);
                        var pr = new GemmProblem
                        {
                            M = coutG, N = ld, K = k, A = job.Weights.GroupPointer(grp),
                            B = col, BOffs = pOffs, BReadPastN = true, PackB = pack,
                            C = cp, Ldc = ld,
                            RowInit = job.Bias == null ? null : job.Bias + grp * coutG,
                            KSegment = job.KSegment, BiasAfterFirstSegment = job.BiasAfterFirstSegment,
                        };
                        GemmCore.Run(pr, p0, p1, 0, ld, job.Isa, sp);
                        for (int i = 0; i < nImg; i++)
                        {
                            float* y = job.Y + ((long)(n0 + i) * g.OutChannels + grp * coutG) * ohw;
                            for (int oc = p0 * mr; oc < Math.Min(coutG, p1 * mr); oc++)
                                CopyRun(cp + (long)oc * ld + i * ohw, y + (long)oc * ohw, ohw);
                        }
                    }
                }
                ArrayPool<float>.Shared.Return(scratch);
                ArrayPool<float>.Shared.Return(cbuf);
                ArrayPool<float>.Shared.Return(padBuf);
                ArrayPool<float>.Shared.Return(colBuf);
            });
        }
    }

    /// <summary>
    /// col[p, i·OH·OW + oy·OW + ox] = x[n0 + i, grp·cinG + c, oy·s − pad + ky, ox·s − pad + kx] for reduction position
    /// p = (c, ky, kx) in <see cref="ReductionOrder.TapOrder"/> (zero outside); unused columns zeroed. Each image is first
    /// copied into the padded, phase-split layout, after which every (tap, output row) is one contiguous run of OW floats.
    /// </summary>
    private static void Im2Col(in ConvJob job, in PaddedLayout lay, int* taps, int slack, float* pad, int grp, int cinG, int n0, int nImg,
        float* col, int ld)
    {
        var g = job.G;
        int hw = job.H * job.W, oh = job.OH, ow = job.OW, ohw = oh * ow, wq = lay.Wq;
        int k = cinG * g.KernelH * g.KernelW;
        // Unpadded stride-1 images already have the layout (Hq = H, Wq = W) and every run stays inside its row.
        bool inPlace = lay.PadH == 0 && lay.PadW == 0 && lay.Sh == 1 && lay.Sw == 1;
        for (int i = 0; i < nImg; i++)
        {
            float* img = job.X + ((long)(n0 + i) * g.InChannels + grp * cinG) * hw;
            if (!inPlace)
            {
                lay.Fill(img, pad, slack);
                img = pad;
            }
            for (int p = 0; p < k; p++)
            {
                float* src = img + taps[p];
                float* dst = col + (long)p * ld + i * ohw;
                for (int oy = 0; oy < oh; oy++)
                    CopyRun(src + oy * wq, dst + oy * ow, ow);
            }
        }
        int used = nImg * ohw;
        if (used < ld)
            for (int p = 0; p < k; p++)
                new Span<float>(col + (long)p * ld + used, ld - used).Clear();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRun(float* s, float* d, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= n - 16; i += 16) Vector512.Load(s + i).Store(d + i);
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - 8; i += 8) Vector256.Load(s + i).Store(d + i);
        if (Vector128.IsHardwareAccelerated)
            for (; i <= n - 4; i += 4) Vector128.Load(s + i).Store(d + i);
        for (; i < n; i++) d[i] = s[i];
    }
}

/// <summary>
/// Convolution weights packed once for <see cref="Conv2d.Forward(ReadOnlySpan{float}, int, int, int, ConvWeights, ReadOnlySpan{float}, Span{float})"/>:
/// each group's [Cout/groups, Cin/groups·kH·kW] matrix in GEMM micro-kernel layout (depthwise weights are kept as given).
/// Immutable; share it between threads and calls.
/// </summary>
public sealed unsafe class ConvWeights : IDisposable
{
    private float[]? _packed;
    private GCHandle _pin;          // pooled buffers are pinned for the object's lifetime; owned ones live on the POH
    private readonly float* _base;
    private readonly long _groupStride;

    public ConvGeometry Geometry { get; }
    internal Isa Isa { get; }
    /// <summary>Each packed K position as a flat (channel, ky, kx) index of one group's filter (<see cref="ReductionOrder.TapOrder"/>).</summary>
    internal int[] TapOrder { get; }
    internal bool IsDepthwise => Geometry.IsDepthwise;
    /// <summary>Depthwise weights as given ([C, 1, kH, kW]).</summary>
    internal float[] Raw { get; }

    private ConvWeights(ConvGeometry g, Isa isa, float[] raw, float[]? packed, GCHandle pin, float* basePtr, long groupStride, int[] tapOrder)
    {
        Geometry = g;
        Isa = isa;
        TapOrder = tapOrder;
        Raw = raw;
        _packed = packed;
        _pin = pin;
        _base = basePtr;
        _groupStride = groupStride;
    }

    /// <summary>Packs weights [OutChannels, InChannels/Groups, KernelH, KernelW] for repeated use.</summary>
    public static ConvWeights Pack(ReadOnlySpan<float> weight, in ConvGeometry g) => Pack(weight, g, IsaInfo.Best, pooled: false);

    internal static ConvWeights Pack(ReadOnlySpan<float> weight, in ConvGeometry g, Isa isa) => Pack(weight, g, isa, pooled: true);

    private static ConvWeights Pack(ReadOnlySpan<float> weight, in ConvGeometry g, Isa isa, bool pooled)
    {
        g.Validate();
        if (weight.Length < g.WeightLength) throw new ArgumentException($"weight has {weight.Length} elements, needs {g.WeightLength}", nameof(weight));
        isa = IsaInfo.Clamp(isa);
        if (g.IsDepthwise)
            return new ConvWeights(g, isa, weight[..g.WeightLength].ToArray(), null, default, null, 0, []);
        int groups = g.Groups, coutG = g.OutChannels / groups, k = g.InChannels / groups * g.KernelH * g.KernelW;
        long stride = GemmCore.PackedALength(coutG, k, isa);
        int len = checked((int)(stride * groups) + 16);
        float[] buf;
        GCHandle pin = default;
        float* dst;
        if (pooled)
        {
            buf = ArrayPool<float>.Shared.Rent(len);
            pin = GCHandle.Alloc(buf, GCHandleType.Pinned);
            dst = GemmCore.Align64((float*)pin.AddrOfPinnedObject());
        }
        else
        {
            buf = GC.AllocateUninitializedArray<float>(len, pinned: true);
            dst = GemmCore.Align64((float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buf)));
        }
        var order = ReductionOrder.TapOrder(g.InChannels / groups, g.KernelH, g.KernelW);
        var rows = ArrayPool<float>.Shared.Rent(coutG * k);
        fixed (float* pw = weight, pr = rows)
            for (int grp = 0; grp < groups; grp++)
            {
                float* src = pw + (long)grp * coutG * k;
                for (int oc = 0; oc < coutG; oc++)
                    for (int p = 0; p < k; p++) pr[oc * k + p] = src[(long)oc * k + order[p]];
                GemmCore.PackA(pr, coutG, k, k, false, isa, dst + grp * stride);
            }
        ArrayPool<float>.Shared.Return(rows);
        return new ConvWeights(g, isa, [], buf, pin, dst, stride, order);
    }

    /// <summary>Writes the packed panels of every group: group g's at dst + g·groupStride, K in tapOrder.</summary>
    internal delegate void PanelFill(float* dst, long groupStride, int[] tapOrder);

    /// <summary>
    /// Weights of a dense or grouped (not depthwise) convolution whose packed panels <paramref name="fill"/> writes directly
    /// (e.g. from integer codes, <see cref="CodePanels"/>), in a pooled buffer that Dispose returns.
    /// </summary>
    internal static ConvWeights Rent(in ConvGeometry g, Isa isa, PanelFill fill)
    {
        g.Validate();
        if (g.IsDepthwise) throw new ArgumentException("depthwise weights are not packed into panels", nameof(g));
        isa = IsaInfo.Clamp(isa);
        long stride = GemmCore.PackedALength(g.OutChannels / g.Groups, g.InChannels / g.Groups * g.KernelH * g.KernelW, isa);
        var buf = ArrayPool<float>.Shared.Rent(checked((int)(stride * g.Groups) + 16));
        var pin = GCHandle.Alloc(buf, GCHandleType.Pinned);
        float* dst = GemmCore.Align64((float*)pin.AddrOfPinnedObject());
        var order = ReductionOrder.TapOrder(g.InChannels / g.Groups, g.KernelH, g.KernelW);
        fill(dst, stride, order);
        return new ConvWeights(g, isa, [], buf, pin, dst, stride, order);
    }

    /// <summary>Offsets of the reduction positions, in packed order, within a padded image of layout <paramref name="lay"/>.</summary>
    internal int[] TapOffsets(in Conv2d.PaddedLayout lay)
    {
        var g = Geometry;
        var offs = new int[TapOrder.Length];
        for (int p = 0; p < offs.Length; p++)
        {
            int f = TapOrder[p];
            offs[p] = lay.TapOffset(f / (g.KernelH * g.KernelW), f / g.KernelW % g.KernelH, f % g.KernelW);
        }
        return offs;
    }

    /// <summary>Group <paramref name="grp"/>'s packed panels (pinned for the lifetime of this object).</summary>
    internal float* GroupPointer(int grp)
    {
        ObjectDisposedException.ThrowIf(_packed == null, this);
        return _base + grp * _groupStride;
    }

    /// <summary>Returns the buffer of weights packed internally for a single call to the pool; a no-op otherwise.</summary>
    public void Dispose()
    {
        if (_pin.IsAllocated)
        {
            _pin.Free();
            ArrayPool<float>.Shared.Return(_packed!);
            _packed = null;
        }
    }
}
