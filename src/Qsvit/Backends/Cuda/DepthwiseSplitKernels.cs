using ILGPU;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Scalars of a <see cref="DepthwiseSplitKernels.Run{TFma}"/> launch over one chunk of frames: each group takes one frame
/// and <see cref="BlockChannels"/> channels of the BN-padded depthwise 3×3's input.
/// </summary>
internal struct DepthwiseSplitArgs
{
    /// <summary>Channels (the depthwise conv's, the real 1×1's input), and the packed pixel's length (a multiple of 16).</summary>
    public int Channels, Cp;
    /// <summary>The map (the interior of the BN-padded map), H·W, and the padded map's width and pixels.</summary>
    public int H, W, HW, PaddedW, PaddedHW;
    /// <summary>Shared floats per staged plane (odd, at least PaddedHW), channels per group (32, 16 or 8) and their log2.</summary>
    public int Pitch, BlockChannels, BlockShift;
    /// <summary>Channel blocks per frame (Cp / BlockChannels rounded up) and frames in the chunk.</summary>
    public int Blocks, Frames;
    /// <summary>The chunk's first frame in a map source (<see cref="FromSums"/> = 0).</summary>
    public int Frame0;
    /// <summary>Columns holding pixels (Frames·HW) and columns written (rounded up to 4, the rest zero).</summary>
    public int Valid, Rows;
    /// <summary>1: planes are whole 16-byte quads (HW a multiple of 4, the source aligned), staged four pixels per load.</summary>
    public int Quads;
    /// <summary>1: the source is the first 1×1's int32 sums (Parts·M × its Rows) and its epilogue runs here; 0: its fp32 output map.</summary>
    public int FromSums;
    public int DwBias, DwBnCount;
    /// <summary>fl(1 / PaddedHW), fl(1 / PaddedW), fl(1 / W), fl(1 / (HW / 4)), fl(1 / the plane's border pixels), for <see cref="GpuKernels.SmallDiv"/>.</summary>
    public float InvPaddedHW, InvPaddedW, InvW, InvQuads, InvPerimeter;
}

/// <summary>
/// RepConv's BN-padded depthwise 3×3 computed where the real-input 1×1 after it packs its input (issue 13, the 55M's
/// transformer stages): the depthwise map never reaches memory. Each group stages BlockChannels planes of one frame with
/// their border (BNAndPadLayer's value BN(0)) in shared memory, read either from the first 1×1's int32 GEMM sums with that
/// layer's epilogue applied here (<see cref="SpikeGemmKernels.Scaled{TFma}"/> of <see cref="SpikeGemmKernels.IntValue"/>,
/// so its output map is not written either) or from that map, then computes each depthwise output with
/// <see cref="GpuKernels.DepthwiseBorder3{TFma}"/>'s chain (bias, the nine taps in (ky, kx) order as FMAs, the BNs) and
/// writes its three bf16 pieces as <see cref="SpikeGemmKernels.PackSplit"/> does (lo, mid, hi of pixel n at
/// [n, piece, Cp], zeros past the channels and valid pixels). Every value is the three ops' bit for bit, so the cuBLAS
/// bf16 GEMM that follows sees the same columns.
/// </summary>
internal static class DepthwiseSplitKernels
{
    /// <summary>Shared floats of a group's staged planes (36 KiB): 32 planes of up to 17 × 17 padded pixels.</summary>
    public const int SharedFloats = 32 * 289;

    /// <summary>Threads per group on a GPU.</summary>
    public const int GroupThreads = 256;

    /// <summary>Channels per group for an h × w map (its padded plane at an odd pitch): 32, 16 or 8; 0 where 8 planes do not fit.</summary>
    public static int BlockChannels(int h, int w, out int pitch)
    {
        pitch = (h + 2) * (w + 2) | 1;
        for (int c = 32; c >= 8; c /= 2)
            if ((long)c * pitch <= SharedFloats) return c;
        return 0;
    }

    public static void Run<TFma>(ArrayView<float> source, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs first,
        ArrayView<float> dw, ArrayView<float> dwBias, ArrayView<float> dwBn, ArrayView<float> border, ArrayView<ushort> columns, DepthwiseSplitArgs p)
        where TFma : struct, IFma
    {
        var planes = SharedMemory.Allocate<float>(SharedFloats);
        int f = Grid.IdxX / p.Blocks, c0 = (Grid.IdxX - f * p.Blocks) * p.BlockChannels;
        var sums = source.Cast<int>();
        if (p.Quads != 0) StageQuads<TFma>(planes, source, sums, scales, bias, bn, first, border, p, f, c0);
        else
        {
            // The planes with their border: planes[c·Pitch + py·PaddedW + px], zero past the channels.
            for (int e = Group.IdxX; e < p.BlockChannels * p.PaddedHW; e += Group.DimX)
            {
                int c = GpuKernels.SmallDiv(e, p.InvPaddedHW), r = e - c * p.PaddedHW, y = GpuKernels.SmallDiv(r, p.InvPaddedW), x = r - y * p.PaddedW;
                int ch = c0 + c;
                float v = 0f;
                if (ch < p.Channels)
                {
                    y--;
                    x--;
                    if (y < 0 || y >= p.H || x < 0 || x >= p.W) v = border[ch];
                    else if (p.FromSums != 0)
                        v = SpikeGemmKernels.Scaled<TFma>(SpikeGemmKernels.IntValue(sums, f * p.HW + y * p.W + x, ch, first), ch, scales, bias, bn, first);
                    else v = source[((long)(p.Frame0 + f) * p.Channels + ch) * p.HW + y * p.W + x];
                }
                planes[c * p.Pitch + r] = v;
            }
        }
        Group.Barrier();
        // Channel pairs fastest: a warp writes neighbouring channels of a pixel (contiguous 32-bit words of each piece) and
        // reads distinct banks (odd pitch). A thread walks one output row of its pair, its 3×3 windows sliding along it in
        // registers: three staged loads a channel per output where the whole window took nine (the kernel was bound by
        // shared-memory loads, ncu: SM 67 %, DRAM 26 %).
        int shift = p.BlockShift - 1, loaded = -1;
        var even = default(Taps9);
        var odd = default(Taps9);
        var words = columns.Cast<uint>();
        for (int e = Group.IdxX; e < p.H << shift; e += Group.DimX)
        {
            int y = e >> shift, k = e - (y << shift), c = 2 * k, ch = c0 + c;
            if (ch >= p.Cp) continue;
            if (k != loaded)
            {
                // Once per thread where the group size is a multiple of BlockChannels / 2 (a GPU's).
                loaded = k;
                even = Taps9.Load(dw, dwBias, p, ch);
                odd = Taps9.Load(dw, dwBias, p, ch + 1);
            }
            bool evenLive = ch < p.Channels, oddLive = ch + 1 < p.Channels;
            int at = c * p.Pitch + y * p.PaddedW;
            var a = Window9.Start(planes, at, p.PaddedW);
            var b = Window9.Start(planes, at + p.Pitch, p.PaddedW);
            long to = ((long)(f * p.HW + y * p.W) * 3 * p.Cp + ch) >> 1;
            for (int x = 0; x < p.W; x++, to += 3 * p.Cp >> 1)
            {
                a.Slide(planes, at + x + 2, p.PaddedW);
                b.Slide(planes, at + p.Pitch + x + 2, p.PaddedW);
                WritePair(words, to, p.Cp >> 1, evenLive ? even.Output<TFma>(a, dwBn, p, ch) : 0f, oddLive ? odd.Output<TFma>(b, dwBn, p, ch + 1) : 0f);
            }
        }
        // The last frame's groups zero the columns past the valid pixels (cuBLAS's int8-friendly multiple of 4).
        if (f != p.Frames - 1) return;
        for (int e = Group.IdxX; e < (p.Rows - p.Valid) << shift; e += Group.DimX)
        {
            int n = p.Valid + (e >> shift), ch = c0 + 2 * (e & ((p.BlockChannels >> 1) - 1));
            if (ch < p.Cp) WritePair(words, ((long)n * 3 * p.Cp + ch) >> 1, p.Cp >> 1, 0f, 0f);
        }
    }

    /// <summary>
    /// The staging where a plane is whole 16-byte quads (<see cref="DepthwiseSplitArgs.Quads"/>): the border first, then the
    /// interior four pixels per load (<see cref="SpikeGemmKernels.IntQuad"/> and <see cref="SpikeGemmKernels.ScaledQuad{TFma}"/>,
    /// the epilogue's arithmetic per output), four loads per thread in flight: one small load per thread at a time left
    /// the kernel waiting on memory. Channels past the layer's are not staged (their columns are zero).
    /// </summary>
    private static void StageQuads<TFma>(ArrayView<float> planes, ArrayView<float> source, ArrayView<int> sums, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs first, ArrayView<float> border, DepthwiseSplitArgs p, int f, int c0) where TFma : struct, IFma
    {
        int channels = p.Channels - c0 < p.BlockChannels ? p.Channels - c0 : p.BlockChannels, perimeter = 2 * p.PaddedW + 2 * p.H;
        for (int e = Group.IdxX; e < channels * perimeter; e += Group.DimX)
        {
            int c = GpuKernels.SmallDiv(e, p.InvPerimeter), k = e - c * perimeter, y, x;
            if (k < 2 * p.PaddedW)
            {
                y = k < p.PaddedW ? 0 : p.H + 1;
                x = k < p.PaddedW ? k : k - p.PaddedW;
            }
            else
            {
                y = 1 + ((k - 2 * p.PaddedW) >> 1);
                x = ((k - 2 * p.PaddedW) & 1) != 0 ? p.PaddedW - 1 : 0;
            }
            planes[c * p.Pitch + y * p.PaddedW + x] = border[c0 + c];
        }
        int quads = p.HW >> 2, total = channels * quads, step = Group.DimX;
        for (int e = Group.IdxX; e < total; e += 4 * step)
        {
            var a = Quad(source, sums, first, p, f, c0, e, quads);
            var b = e + step < total ? Quad(source, sums, first, p, f, c0, e + step, quads) : default;
            var c = e + 2 * step < total ? Quad(source, sums, first, p, f, c0, e + 2 * step, quads) : default;
            var d = e + 3 * step < total ? Quad(source, sums, first, p, f, c0, e + 3 * step, quads) : default;
            Scatter<TFma>(planes, a, scales, bias, bn, first, p, c0, e, quads);
            if (e + step < total) Scatter<TFma>(planes, b, scales, bias, bn, first, p, c0, e + step, quads);
            if (e + 2 * step < total) Scatter<TFma>(planes, c, scales, bias, bn, first, p, c0, e + 2 * step, quads);
            if (e + 3 * step < total) Scatter<TFma>(planes, d, scales, bias, bn, first, p, c0, e + 3 * step, quads);
        }
    }

    /// <summary>Quad q of channel c0 + c's plane (e = c·quads + q): the first 1×1's int32 sums as floats, or its map's values.</summary>
    private static F4 Quad(ArrayView<float> source, ArrayView<int> sums, SpikeGemmArgs first, DepthwiseSplitArgs p, int f, int c0, int e, int quads)
    {
        int c = GpuKernels.SmallDiv(e, p.InvQuads), q = e - c * quads;
        return p.FromSums != 0 ? SpikeGemmKernels.IntQuad(sums, f * p.HW + 4 * q, c0 + c, first)
            : source.Cast<F4>()[((long)(p.Frame0 + f) * p.Channels + c0 + c) * quads + q];
    }

    /// <summary>A quad's values (after the first 1×1's epilogue, from sums) into the staged plane's interior; a quad may wrap to the next row.</summary>
    private static void Scatter<TFma>(ArrayView<float> planes, F4 v, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs first,
        DepthwiseSplitArgs p, int c0, int e, int quads) where TFma : struct, IFma
    {
        int c = GpuKernels.SmallDiv(e, p.InvQuads), pix = 4 * (e - c * quads), y = GpuKernels.SmallDiv(pix, p.InvW), x = pix - y * p.W;
        if (p.FromSums != 0) v = SpikeGemmKernels.ScaledQuad<TFma>(v, c0 + c, scales, bias, bn, first);
        int plane = c * p.Pitch + p.PaddedW + 1;
        for (int j = 0; j < 4; j++)
        {
            planes[plane + y * p.PaddedW + x] = v.Get(j);
            if (++x == p.W)
            {
                x = 0;
                y++;
            }
        }
    }

    /// <summary>
    /// The bf16 pieces of two neighbouring channels' values a (the lower address) and b (<see cref="SpikeGemmKernels.SplitBf16"/>):
    /// the lo, mid and hi words at <paramref name="at"/>, + Cp / 2, + Cp (in 32-bit words).
    /// </summary>
    private static void WritePair(ArrayView<uint> words, long at, int half, float a, float b)
    {
        uint hiA = SpikeGemmKernels.SplitBf16(a, out uint midA, out uint loA), hiB = SpikeGemmKernels.SplitBf16(b, out uint midB, out uint loB);
        words[at] = loA | loB << 16;
        words[at + half] = midA | midB << 16;
        words[at + 2 * half] = hiA | hiB << 16;
    }
}

/// <summary>One channel's depthwise 3×3 weights and bias in registers (<see cref="DepthwiseSplitKernels"/>).</summary>
internal struct Taps9
{
    public float W0, W1, W2, W3, W4, W5, W6, W7, W8, Start;

    /// <summary>Channel <paramref name="ch"/>'s weights and bias (zeros past the layer's channels).</summary>
    public static Taps9 Load(ArrayView<float> dw, ArrayView<float> bias, DepthwiseSplitArgs p, int ch)
    {
        var t = default(Taps9);
        if (ch >= p.Channels) return t;
        var w = dw.SubView(ch * 9, 9);
        t.W0 = w[0]; t.W1 = w[1]; t.W2 = w[2]; t.W3 = w[3]; t.W4 = w[4]; t.W5 = w[5]; t.W6 = w[6]; t.W7 = w[7]; t.W8 = w[8];
        t.Start = p.DwBias != 0 ? bias[ch] : 0f;
        return t;
    }

    /// <summary>
    /// The output of padded 3×3 window <paramref name="w"/>: bias, the nine taps in (ky, kx) order as FMAs, then the BNs
    /// (<see cref="GpuKernels.DepthwiseBorder3{TFma}"/>'s chain).
    /// </summary>
    public readonly float Output<TFma>(in Window9 w, ArrayView<float> bn, DepthwiseSplitArgs p, int ch) where TFma : struct, IFma
    {
        var f = default(TFma);
        float v = f.Fma(W0, w.A0, Start);
        v = f.Fma(W1, w.A1, v);
        v = f.Fma(W2, w.A2, v);
        v = f.Fma(W3, w.B0, v);
        v = f.Fma(W4, w.B1, v);
        v = f.Fma(W5, w.B2, v);
        v = f.Fma(W6, w.C0, v);
        v = f.Fma(W7, w.C1, v);
        v = f.Fma(W8, w.C2, v);
        for (int b = 0; b < p.DwBnCount; b++) v = f.Fma(v, bn[2 * b * p.Channels + ch], bn[(2 * b + 1) * p.Channels + ch]);
        return v;
    }
}

/// <summary>A padded 3×3 window in registers: rows A, B, C (top to bottom), columns 0..2, sliding right one column at a time.</summary>
internal struct Window9
{
    public float A0, A1, A2, B0, B1, B2, C0, C1, C2;

    /// <summary>The window left of the one whose top-left staged float is <paramref name="at"/>: its columns 1 and 2 loaded (the first <see cref="Slide"/> completes it).</summary>
    public static Window9 Start(ArrayView<float> planes, int at, int pitch) => new()
    {
        A1 = planes[at], A2 = planes[at + 1],
        B1 = planes[at + pitch], B2 = planes[at + pitch + 1],
        C1 = planes[at + 2 * pitch], C2 = planes[at + 2 * pitch + 1],
    };

    /// <summary>One column right: the new right column's top float at staged float <paramref name="at"/>.</summary>
    public void Slide(ArrayView<float> planes, int at, int pitch)
    {
        A0 = A1; A1 = A2; A2 = planes[at];
        B0 = B1; B1 = B2; B2 = planes[at + pitch];
        C0 = C1; C1 = C2; C2 = planes[at + 2 * pitch];
    }
}
