using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>
/// Direct depthwise convolution (groups == in == out channels). Each plane is copied once into a zero-padded,
/// phase-split buffer (see <see cref="Conv2d.PaddedLayout"/>), after which every tap of every output row is a contiguous
/// vector load: out[oy, x0..x0+V) = bias + Σ_t w[t] · P[oy·Wq + x0 + tap[t] ..]. Four output vectors share each weight
/// broadcast. The vector width adapts to the row width (4×4 maps use 128-bit vectors, 8×8 use 256-bit).
/// </summary>
internal static unsafe class Depthwise
{
    private const double MinFlopsPerThread = 5e5;

    public static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, float* weight, ReadOnlySpan<float> bias,
        in ConvGeometry g, Span<float> output, Isa isa, int threads)
    {
        if (batch == 0) return;
        int channels = g.InChannels, oh = g.OutH(height), ow = g.OutW(width), kh = g.KernelH, kw = g.KernelW, taps = kh * kw;
        var lay = new Conv2d.PaddedLayout(1, height, width, g.PadH, g.PadW, g.StrideH, g.StrideW);
        var vIsa = isa;
        while (vIsa > Isa.Vector128 && ow <= IsaInfo.Lanes(vIsa) / 2) vIsa--;
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
        fixed (float* px = input, pb = bias, py = output)
        fixed (int* pt = tapOffs)
        {
            float* x = px, b = pb, y = py;
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
                            layout.Fill(src, pad, slack);
                            src = pad;
                        }
                        Plane(src, layout.Wq, tp, weight + (long)c * taps, taps, b == null ? 0f : b[c],
                            y + (long)plane * oh * ow, oh, ow, vIsa, slots, tmp);
                    }
                }
                System.Buffers.ArrayPool<float>.Shared.Return(buf);
            });
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
        where TLanes : struct, ILanes<TVector>
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

    /// <summary>The vector operations <see cref="Kernel{TLanes, TVector}"/> needs, per vector width (specialized by the JIT).</summary>
    private interface ILanes<TVector> where TVector : struct
    {
        static abstract TVector Broadcast(float value);
        static abstract TVector Load(float* p);
        static abstract TVector MultiplyAdd(TVector a, TVector b, TVector c);
        static abstract void Store(TVector v, float* p);
    }

    private readonly struct Lanes512 : ILanes<Vector512<float>>
    {
        public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
        public static Vector512<float> Load(float* p) => Vector512.Load(p);
        public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
        public static void Store(Vector512<float> v, float* p) => v.Store(p);
    }

    // MultiplyAddEstimate: fused where the hardware has FMA (x64 with FMA3, ARM64), as the scalar path's MathF.FusedMultiplyAdd.
    private readonly struct Lanes256 : ILanes<Vector256<float>>
    {
        public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
        public static Vector256<float> Load(float* p) => Vector256.Load(p);
        public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
        public static void Store(Vector256<float> v, float* p) => v.Store(p);
    }

    private readonly struct Lanes128 : ILanes<Vector128<float>>
    {
        public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
        public static Vector128<float> Load(float* p) => Vector128.Load(p);
        public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
        public static void Store(Vector128<float> v, float* p) => v.Store(p);
    }
}
