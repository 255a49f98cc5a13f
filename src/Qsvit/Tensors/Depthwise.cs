using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Qsvit.Tensors;

/// <summary>
/// Direct depthwise convolution (groups == in == out channels). Each plane is copied once into a zero-padded,
/// phase-split buffer (see <see cref="Conv2d.PaddedLayout"/>), after which every tap of every output row is a contiguous
/// vector load: out[oy, x0..x0+V) = bias + Σ_t w[t] · P[oy·Wq + x0 + tap[t] ..]. Four output vectors share each weight
/// broadcast. The vector width adapts to the row width (8×8 maps use 256-bit vectors). Maps of at most 16 pixels with
/// 512-bit vectors take <see cref="OneVectorPlanes"/> instead: a whole plane in one register, each tap a permute of it.
/// Padding is zero, or per channel a <c>border</c> value (BNAndPadLayer's BN(0)), as if the map had been padded with it.
/// </summary>
internal static unsafe class Depthwise
{
    private const double MinFlopsPerThread = 5e5;

    public static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, float* weight, ReadOnlySpan<float> bias,
        in ConvGeometry g, Span<float> output, Isa isa, int threads, ReadOnlySpan<float> border = default)
    {
        if (batch == 0) return;
        Debug.Assert(border.IsEmpty || border.Length >= g.InChannels, "a border value per channel (Conv2d.ForwardBordered checks)");
        if (FitsOneVector(g, height, width, isa))
        {
            OneVectorPlanes(input, batch, height, width, weight, bias, g, output, threads, border);
            return;
        }
        int channels = g.InChannels, oh = g.OutH(height), ow = g.OutW(width), kh = g.KernelH, kw = g.KernelW, taps = kh * kw;
        var lay = new Conv2d.PaddedLayout(1, height, width, g.PadH, g.PadW, g.StrideH, g.StrideW);
        var vIsa = isa;
        bool rowBlocks = g.StrideH == 1 && g.StrideW == 1 && oh >= 8;
        // Row blocks need whole vectors within a row; the row kernel lets vectors overhang into the next row.
        if (rowBlocks) while (vIsa > Isa.Scalar && IsaInfo.Lanes(vIsa) > ow) vIsa--;
        else while (vIsa > Isa.Vector128 && ow <= IsaInfo.Lanes(vIsa) / 2) vIsa--;
        int lanes = IsaInfo.Lanes(vIsa);
        var tapOffs = new int[taps];
        int maxTap = 0;
        for (int ky = 0, t = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++)
            {
                tapOffs[t] = lay.TapOffset(0, ky, kx);
                maxTap = Math.Max(maxTap, tapOffs[t++]);
            }
        int slack = lanes + 2 * lay.Wq + kw + 16;
        long planeLen = lay.Length(slack);
        // Unpadded stride-1 planes are read in place; vectors may run past a plane's end (into the next plane), so the
        // planes near the end of the input are still copied.
        bool inPlace = g.PadH == 0 && g.PadW == 0 && g.StrideH == 1 && g.StrideW == 1;
        long hw = (long)height * width;
        long maxRead = (long)(oh - 1) * lay.Wq + (ow + lanes - 1) / lanes * lanes + maxTap;
        int planes = batch * channels;
        double flops = 2.0 * planes * oh * ow * taps;
        int workers = (int)Math.Clamp(flops / MinFlopsPerThread, 1, Math.Min(threads, planes));
        long inputLength = input.Length;
        fixed (float* px = input, pb = bias, py = output, pe = border)
        fixed (int* pt = tapOffs)
        {
            float* x = px, b = pb, y = py, e = pe;
            int* tp = pt;
            var layout = lay;
            Compute.ForRanges(planes, workers, (p0, p1) =>
            {
                var buf = System.Buffers.ArrayPool<float>.Shared.Rent(checked((int)planeLen + 16));
                float* tmp = stackalloc float[4 * 16];
                float** slots = stackalloc float*[8];
                fixed (float* pbuf = buf)
                {
                    float* pad = GemmCore.Align64(pbuf);
                    for (int plane = p0; plane < p1; plane++)
                    {
                        int c = plane % channels;
                        float* src = x + plane * hw;
                        if (!inPlace || plane * hw + maxRead > inputLength)
                        {
                            layout.Fill(src, pad, slack, e == null ? 0f : e[c]);
                            src = pad;
                        }
                        float* wc = weight + (long)c * taps, yc = y + (long)plane * oh * ow;
                        float bc = b == null ? 0f : b[c];
                        switch (rowBlocks ? vIsa : Isa.Scalar)
                        {
                            case Isa.Vector512: RowBlocks<Lanes512, Vector512<float>>(src, layout.Wq, wc, kh, kw, bc, yc, oh, ow); break;
                            case Isa.Vector256: RowBlocks<Lanes256, Vector256<float>>(src, layout.Wq, wc, kh, kw, bc, yc, oh, ow); break;
                            case Isa.Vector128: RowBlocks<Lanes128, Vector128<float>>(src, layout.Wq, wc, kh, kw, bc, yc, oh, ow); break;
                            default: Plane(src, layout.Wq, tp, wc, taps, bc, yc, oh, ow, vIsa, slots, tmp); break;
                        }
                    }
                }
                System.Buffers.ArrayPool<float>.Shared.Return(buf);
            });
        }
    }

    /// <summary>Whether <see cref="OneVectorPlanes"/> runs this layer: stride 1, input and output planes of at most 16 floats, AVX-512.</summary>
    internal static bool FitsOneVector(in ConvGeometry g, int height, int width, Isa isa) =>
        isa == Isa.Vector512 && Avx512F.IsSupported && g.StrideH == 1 && g.StrideW == 1 && height * width <= 16
        && g.OutH(height) > 0 && g.OutW(width) > 0 && g.OutH(height) * g.OutW(width) <= 16;

    /// <summary>
    /// Planes of at most 16 pixels (CIFAR's RepConvs on 4×4 maps), one register each: tap t's inputs are a permute of the
    /// plane with the padded lanes set to the border value, so there is no padded copy, and a plane costs about three
    /// instructions per tap where the row kernel's setup for four 4-float rows cost more than its arithmetic. Each output is
    /// bias + Σ_t w[t]·x_t in tap order, one FMA per tap, as in <see cref="Kernel{TLanes, TVector}"/>: the same bits.
    /// </summary>
    private static void OneVectorPlanes(ReadOnlySpan<float> input, int batch, int height, int width, float* weight, ReadOnlySpan<float> bias,
        in ConvGeometry g, Span<float> output, int threads, ReadOnlySpan<float> border)
    {
        int channels = g.InChannels, oh = g.OutH(height), ow = g.OutW(width), taps = g.KernelH * g.KernelW, hw = height * width, ohw = oh * ow;
        // Per tap: lane o = oy·OW + ox reads input pixel (oy + ky − PadH, ox + kx − PadW), or the border outside the map.
        var index = new int[taps * 16];
        var inside = new int[taps * 16];
        for (int ky = 0, t = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++, t++)
                for (int o = 0; o < ohw; o++)
                {
                    int iy = o / ow + ky - g.PadH, ix = o % ow + kx - g.PadW;
                    if ((uint)iy >= (uint)height || (uint)ix >= (uint)width) continue;
                    index[t * 16 + o] = iy * width + ix;
                    inside[t * 16 + o] = -1;
                }
        int planes = batch * channels;
        int workers = (int)Math.Clamp(2.0 * planes * ohw * taps / MinFlopsPerThread, 1, Math.Min(threads, planes));
        fixed (float* px = input, pb = bias, py = output, pe = border)
        fixed (int* pi = index, pm = inside)
        {
            float* x = px, b = pb, y = py, e = pe;
            int* idx = pi, msk = pm;
            Compute.ForRanges(planes, workers, (p0, p1) =>
            {
                float* tmp = stackalloc float[16];
                new Span<float>(tmp, 16).Clear();
                for (int plane = p0; plane < p1; plane++)
                {
                    int c = plane % channels;
                    float* src = x + (long)plane * hw;
                    if (hw < 16)
                    {
                        Buffer.MemoryCopy(src, tmp, 16 * sizeof(float), hw * sizeof(float));
                        src = tmp;
                    }
                    var v = Vector512.Load(src);
                    var edge = Vector512.Create(e == null ? 0f : e[c]);
                    var acc = Vector512.Create(b == null ? 0f : b[c]);
                    float* w = weight + (long)c * taps;
                    for (int t = 0; t < taps; t++)
                    {
                        var tap = Avx512F.PermuteVar16x32(v, Vector512.Load(idx + t * 16));
                        tap = Vector512.ConditionalSelect(Vector512.Load(msk + t * 16).AsSingle(), tap, edge);
                        acc = Vector512.FusedMultiplyAdd(Vector512.Create(w[t]), tap, acc);
                    }
                    float* dst = y + (long)plane * ohw;
                    if (ohw == 16) acc.Store(dst);
                    else
                    {
                        acc.Store(tmp);
                        Buffer.MemoryCopy(tmp, dst, ohw * sizeof(float), ohw * sizeof(float));
                    }
                }
            });
        }
    }

    /// <summary>
    /// A stride-1 plane in blocks of eight output rows by one vector: per tap one weight broadcast feeds eight FMAs into eight
    /// independent sums (the row kernel's four sums wait on the FMA latency), with no per-vector pointer table. Each output
    /// sums bias + Σ_t w[t]·x_t in tap order, one FMA per tap: the row kernel's bits. The last block and a row's last vector
    /// end at the plane's and the row's end, recomputing outputs they share with the one before (the same bits). Requires
    /// OH ≥ 8 and OW ≥ the lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowBlocks<TLanes, TVector>(float* src, int wq, float* w, int kh, int kw, float bias, float* y, int oh, int ow)
        where TLanes : struct, IFloatLanes<TVector>
        where TVector : struct
    {
        int lanes = TLanes.Count;
        for (int y0 = 0; y0 < oh; y0 += 8)
        {
            int oy = Math.Min(y0, oh - 8);
            for (int x0 = 0; x0 < ow; x0 += lanes)
            {
                int ox = Math.Min(x0, ow - lanes);
                TVector a0 = TLanes.Broadcast(bias), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
                for (int ky = 0; ky < kh; ky++)
                {
                    float* r0 = src + (long)(oy + ky) * wq + ox;
                    float* wt = w + ky * kw;
                    for (int kx = 0; kx < kw; kx++)
                    {
                        var wv = TLanes.Broadcast(wt[kx]);
                        float* p = r0 + kx;
                        a0 = TLanes.MultiplyAdd(wv, TLanes.Load(p), a0);
                        a1 = TLanes.MultiplyAdd(wv, TLanes.Load(p + wq), a1);
                        a2 = TLanes.MultiplyAdd(wv, TLanes.Load(p + 2 * wq), a2);
                        a3 = TLanes.MultiplyAdd(wv, TLanes.Load(p + 3 * wq), a3);
                        a4 = TLanes.MultiplyAdd(wv, TLanes.Load(p + 4 * wq), a4);
                        a5 = TLanes.MultiplyAdd(wv, TLanes.Load(p + 5 * wq), a5);
                        a6 = TLanes.MultiplyAdd(wv, TLanes.Load(p + 6 * wq), a6);
                        a7 = TLanes.MultiplyAdd(wv, TLanes.Load(p + 7 * wq), a7);
                    }
                }
                float* out0 = y + (long)oy * ow + ox;
                TLanes.Store(a0, out0);
                TLanes.Store(a1, out0 + ow);
                TLanes.Store(a2, out0 + 2 * ow);
                TLanes.Store(a3, out0 + 3 * ow);
                TLanes.Store(a4, out0 + 4 * ow);
                TLanes.Store(a5, out0 + 5 * ow);
                TLanes.Store(a6, out0 + 6 * ow);
                TLanes.Store(a7, out0 + 7 * ow);
            }
        }
    }

    /// <summary>
    /// One output plane. Output vectors run along rows; a vector that overhangs the end of a row (OW not a multiple of
    /// the lanes) writes its extra lanes into the start of the next row, which is computed and stored later, so only the
    /// last row's overhang goes through <paramref name="tmp"/>.
    /// </summary>
    private static void Plane(float* src, int wq, int* taps, float* w, int ntaps, float bias, float* y, int oh, int ow, Isa isa,
        float** slots, float* tmp)
    {
        if (isa == Isa.Scalar)
        {
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    float* sp = src + oy * wq + ox;
                    float s = bias;
                    for (int t = 0; t < ntaps; t++) s = MathF.FusedMultiplyAdd(w[t], sp[taps[t]], s);
                    y[oy * ow + ox] = s;
                }
            return;
        }
        int lanes = IsaInfo.Lanes(isa);
        float** ins = slots, outs = slots + 4;
        int n = 0, tail = -1, tailLen = 0;
        float* tailDst = null;
        for (int oy = 0; oy < oh; oy++)
        {
            float* inRow = src + oy * wq, outRow = y + oy * ow;
            for (int x0 = 0; x0 < ow; x0 += lanes)
            {
                ins[n] = inRow + x0;
                if (x0 + lanes <= ow || oy < oh - 1)
                    outs[n] = outRow + x0;
                else
                {
                    outs[n] = tmp;
                    tail = n;
                    tailLen = ow - x0;
                    tailDst = outRow + x0;
                }
                if (++n == 4)
                {
                    Run(isa, ins, outs, taps, w, ntaps, bias);
                    n = 0;
                }
            }
        }
        if (n > 0)
        {
            for (int u = n; u < 4; u++)
            {
                ins[u] = ins[n - 1];
                outs[u] = tmp + 16 * u;
            }
            Run(isa, ins, outs, taps, w, ntaps, bias);
        }
        if (tail >= 0)
            for (int i = 0; i < tailLen; i++) tailDst[i] = tmp[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Run(Isa isa, float** ins, float** outs, int* taps, float* w, int ntaps, float bias)
    {
        switch (isa)
        {
            case Isa.Vector512: Kernel<Lanes512, Vector512<float>>(ins, outs, taps, w, ntaps, bias); break;
            case Isa.Vector256: Kernel<Lanes256, Vector256<float>>(ins, outs, taps, w, ntaps, bias); break;
            default: Kernel<Lanes128, Vector128<float>>(ins, outs, taps, w, ntaps, bias); break;
        }
    }

    /// <summary>Four output vectors of one plane: bias + Σ_t w[t] · src[u][taps[t]], one weight broadcast per tap.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel<TLanes, TVector>(float** src, float** dst, int* taps, float* w, int ntaps, float bias)
        where TLanes : struct, IFloatLanes<TVector>
        where TVector : struct
    {
        float* s0 = src[0], s1 = src[1], s2 = src[2], s3 = src[3];
        var a0 = TLanes.Broadcast(bias);
        TVector a1 = a0, a2 = a0, a3 = a0;
        for (int t = 0; t < ntaps; t++)
        {
            int o = taps[t];
            var wv = TLanes.Broadcast(w[t]);
            a0 = TLanes.MultiplyAdd(wv, TLanes.Load(s0 + o), a0);
            a1 = TLanes.MultiplyAdd(wv, TLanes.Load(s1 + o), a1);
            a2 = TLanes.MultiplyAdd(wv, TLanes.Load(s2 + o), a2);
            a3 = TLanes.MultiplyAdd(wv, TLanes.Load(s3 + o), a3);
        }
        TLanes.Store(a0, dst[0]);
        TLanes.Store(a1, dst[1]);
        TLanes.Store(a2, dst[2]);
        TLanes.Store(a3, dst[3]);
    }
}
