using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Scalars of one chunk of a spike-input convolution run as a GEMM with both operands K-contiguous (the layout tensor
/// cores read fastest): C[Parts·M, Rows] = A[Parts·M, Kp] · B[Rows, Kp]ᵀ, where B row n is output pixel n of the chunk
/// (frame Frame0 + n / OHW) and column k = (ky·KW + kx)·Cp + c (taps outer, channels inner, Cp = channels padded to 16),
/// zero for c ≥ InChannels and n ≥ Valid. The spikes are first packed pixel-major ([pixel, Cp], <see cref="SpikeGemmKernels.PackBf16"/>),
/// so B's row is Taps runs of Cp contiguous elements copied whole (<see cref="SpikeGemmKernels.ColumnsFromPacked"/>),
/// or, for a 1×1 stride-1 unpadded conv, the packed spikes themselves. With bf16 pieces stacked along K
/// (<see cref="GpuSpikeConv.StackK"/>) each B row holds its Kp columns Copies times over.
/// </summary>
internal struct SpikeGemmArgs
{
    public int Frame0, Valid, Rows, K, Kp;
    public int InChannels, H, W, OW, OHW, KH, KW, StrideH, StrideW, PadH, PadW;
    /// <summary>Output channels (M) and pieces stacked along M (bf16 split: hi, mid, lo; int8: hi, lo bytes).</summary>
    public int M, Parts;
    public int HasBias, BnCount;
    /// <summary>Channels per packed pixel (InChannels rounded up to 16) and the 8-byte words they fill.</summary>
    public int Cp, Words;
    /// <summary>Packed pixels to write (rows of the packed layout) and how many hold input pixels (the rest are zero); the pixels of one input frame.</summary>
    public int PackRows, PackValid, PackPlane;
    /// <summary>Copies of each B row's Kp columns (1, or Parts with pieces stacked along K), and of each packed pixel (Copies when the packed spikes are B).</summary>
    public int Copies, PackCopies;
    /// <summary>Outputs per epilogue thread: 4 consecutive pixels of one (frame, channel) plane when OHW is a multiple of 4, else 1 (fewer index divisions).</summary>
    public int PerThread;
    /// <summary>
    /// 0: the chunk's frames are Frame0, Frame0 + 1, …. Else the chunk holds whole images for the fused LIF: local frame
    /// j is frame (j / Items)·FrameStride + Frame0 + j % Items (time step j / Items of image Frame0 + j % Items, with
    /// FrameStride = the batch, frames being time-first t·B + b).
    /// </summary>
    public int Items, FrameStride;
    /// <summary>fl(1 / Items) for <see cref="GpuKernels.SmallDiv"/> (local frames stay below 2^21).</summary>
    public float InvItems;
    /// <summary>The fused LIF's time steps and threshold (<see cref="SpikeGemmKernels.EpilogueIntLif{TFma}"/>).</summary>
    public int Timesteps;
    public float Threshold;

    /// <summary>The frame that local frame <paramref name="j"/> of the chunk is (see <see cref="Items"/>).</summary>
    public readonly int Frame(int j)
    {
        if (Items == 0) return Frame0 + j;
        int t = GpuKernels.SmallDiv(j, InvItems);
        return t * FrameStride + Frame0 + j - t * Items;
    }
}

/// <summary>
/// The ILGPU kernels of the spike-input GEMM path (<see cref="GpuSpikeConv"/>): spikes packed pixel-major into bf16 or
/// int8 (the input is exactly 0/1, so the conversion is exact) and copied into columns in 8-byte words, fallback GEMMs
/// for machines without cuBLAS (and for ILGPU's CPU accelerator in tests), and the epilogues that combine the stacked
/// pieces, scale, add the bias and run the BNs.
/// </summary>
internal static class SpikeGemmKernels
{
    /// <summary>Edge of the square tile the packing kernels transpose through shared memory (any group size works).</summary>
    public const int Tile = 32;

    /// <summary>Packed channels are padded to a multiple of this (16 int8 or bf16 values: whole 8-byte words, cuBLAS's int8 K alignment).</summary>
    public const int ChannelAlign = 16;

    /// <summary>bf16 1.0 (the top half of fp32 1.0).</summary>
    public const ushort Bf16One = 0x3F80;

    /// <summary>Spike of channel c at packed pixel n (frame Frame0 + n / PackPlane); zero past the valid pixels and channels.</summary>
    private static float Gather(ArrayView<float> x, SpikeGemmArgs p, int n, int c)
    {
        if (n >= p.PackValid || c >= p.InChannels) return 0f;
        int j = n / p.PackPlane, f = p.Frame(j), pix = n - j * p.PackPlane;
        return x[((long)f * p.InChannels + c) * p.PackPlane + pix];
    }

    /// <summary>
    /// One Tile × Tile block (pixels × channels) per group: read with pixels running fastest, so a warp reads neighbouring
    /// pixels of one channel plane, then written with channels running fastest through shared memory.
    /// </summary>
    private static void LoadTile(ArrayView<float> x, SpikeGemmArgs p, ArrayView<float> tile, out int n0, out int c0)
    {
        int cTiles = (p.Cp + Tile - 1) / Tile;
        n0 = Grid.IdxX / cTiles * Tile;
        c0 = Grid.IdxX % cTiles * Tile;
        for (int e = Group.IdxX; e < Tile * Tile; e += Group.DimX)
        {
            int tx = e % Tile, j = e / Tile;
            tile[j * (Tile + 1) + tx] = Gather(x, p, n0 + tx, c0 + j);
        }
        Group.Barrier();
    }

    /// <summary>
    /// Element <paramref name="e"/> of a staged tile in its written order (channels fastest): packed pixel n, channel c and
    /// the input value; false past the packed rows or channels (nothing to write).
    /// </summary>
    private static bool Transposed(ArrayView<float> tile, int e, int n0, int c0, SpikeGemmArgs p, out int n, out int c, out float v)
    {
        int tx = e % Tile, j = e / Tile;
        c = c0 + tx;
        n = n0 + j;
        v = tile[tx * (Tile + 1) + j];
        return n < p.PackRows && c < p.Cp;
    }

    /// <summary>Spikes packed pixel-major into bf16, dst[n, PackCopies, Cp] (0 → 0x0000, 1 → 0x3F80).</summary>
    public static void PackBf16(ArrayView<float> x, ArrayView<ushort> dst, SpikeGemmArgs p)
    {
        var tile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        LoadTile(x, p, tile, out int n0, out int c0);
        for (int e = Group.IdxX; e < Tile * Tile; e += Group.DimX)
        {
            if (!Transposed(tile, e, n0, c0, p, out int n, out int c, out float x1)) continue;
            ushort v = x1 != 0f ? Bf16One : (ushort)0;
            for (int copy = 0; copy < p.PackCopies; copy++) dst[((long)n * p.PackCopies + copy) * p.Cp + c] = v;
        }
    }

    /// <summary>Spikes packed pixel-major into int8, dst[n, PackCopies, Cp] (0 → 0, 1 → 1).</summary>
    public static void PackS8(ArrayView<float> x, ArrayView<sbyte> dst, SpikeGemmArgs p)
    {
        var tile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        LoadTile(x, p, tile, out int n0, out int c0);
        for (int e = Group.IdxX; e < Tile * Tile; e += Group.DimX)
        {
            if (!Transposed(tile, e, n0, c0, p, out int n, out int c, out float x1)) continue;
            sbyte v = x1 != 0f ? (sbyte)1 : (sbyte)0;
            for (int copy = 0; copy < p.PackCopies; copy++) dst[((long)n * p.PackCopies + copy) * p.Cp + c] = v;
        }
    }

    /// <summary>
    /// A real-valued input packed pixel-major as its three bf16 pieces (<see cref="GpuSpikeConv.RealInput"/>):
    /// dst[n, piece, Cp] = lo, mid, hi of x, each the previous remainder truncated to bf16, so hi + mid + lo = x exactly
    /// (<see cref="Bf16Split"/>). PackCopies is the piece count, 3.
    /// </summary>
    public static void PackSplit(ArrayView<float> x, ArrayView<ushort> dst, SpikeGemmArgs p)
    {
        var tile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        LoadTile(x, p, tile, out int n0, out int c0);
        for (int e = Group.IdxX; e < Tile * Tile; e += Group.DimX)
        {
            if (!Transposed(tile, e, n0, c0, p, out int n, out int c, out float v)) continue;
            uint hi = (uint)Interop.FloatAsInt(v) >> 16;
            float r1 = v - Interop.IntAsFloat(hi << 16);
            uint mid = (uint)Interop.FloatAsInt(r1) >> 16;
            float r2 = r1 - Interop.IntAsFloat(mid << 16);
            long at = (long)n * 3 * p.Cp + c;
            dst[at] = (ushort)((uint)Interop.FloatAsInt(r2) >> 16);
            dst[at + p.Cp] = (ushort)mid;
            dst[at + 2 * p.Cp] = (ushort)hi;
        }
    }

    /// <summary>
    /// im2col from packed spikes, in 8-byte words: one thread per (output pixel n, word w of a packed pixel), looping over
    /// the taps; B[n, copy·Kp + tap·Cp ..] = the packed input pixel under the tap (zero outside the map and for n ≥ Valid).
    /// Neighbouring threads copy neighbouring words, so loads and stores are contiguous.
    /// </summary>
    public static void ColumnsFromPacked(Index1D i, ArrayView<long> packed, ArrayView<long> cols, SpikeGemmArgs p)
    {
        int n = i / p.Words, w = i - n * p.Words, taps = p.KH * p.KW, copyWords = taps * p.Words;
        long at = (long)n * p.Copies * copyWords + w;
        if (n >= p.Valid)
        {
            for (int t = 0; t < p.Copies * taps; t++) cols[at + (long)t * p.Words] = 0L;
            return;
        }
        int f = n / p.OHW, pix = n - f * p.OHW, oy = pix / p.OW, ox = pix - oy * p.OW;
        int iy0 = oy * p.StrideH - p.PadH, ix0 = ox * p.StrideW - p.PadW;
        long frame = (long)f * p.H * p.W;
        for (int ky = 0; ky < p.KH; ky++)
        {
            int iy = iy0 + ky;
            bool rowInside = iy >= 0 && iy < p.H;
            for (int kx = 0; kx < p.KW; kx++)
            {
                int ix = ix0 + kx;
                long v = rowInside && ix >= 0 && ix < p.W ? packed[(frame + iy * p.W + ix) * p.Words + w] : 0L;
                for (int copy = 0; copy < p.Copies; copy++) cols[at + (long)copy * copyWords] = v;
                at += p.Words;
            }
        }
    }

/// <summary>dst[i] = (f16) src[i]: exact for spikes and for integers up to 2048 in magnitude.</summary>
    public static void ToHalf(Index1D i, ArrayView<float> src, ArrayView<Half> dst) => dst[i] = (Half)src[i];

    /// <summary>Fallback int8 GEMM, exact: c[r, n] = Σ_k a[r, k]·b[n, k] in int32 (one thread per element).</summary>
    public static void GemmS8(Index1D i, ArrayView<sbyte> a, ArrayView<sbyte> b, ArrayView<int> c, int columns, int kp)
    {
        int r = i / columns, n = i - r * columns;
        long ar = (long)r * kp, bn = (long)n * kp;
        int s = 0;
        for (int k = 0; k < kp; k++) s += a[ar + k] * b[bn + k];
        c[i] = s;
    }

    /// <summary>Fallback bf16 GEMM: c[r, n] = Σ_k a[r, k]·b[n, k], products exact (b is 0/1), summed in fp32 in k order.</summary>
    public static void GemmBf16(Index1D i, ArrayView<ushort> a, ArrayView<ushort> b, ArrayView<float> c, int columns, int kp)
    {
        int r = i / columns, n = i - r * columns;
        long ar = (long)r * kp, bn = (long)n * kp;
        float s = 0f;
        for (int k = 0; k < kp; k++) s += Interop.IntAsFloat((uint)a[ar + k] << 16) * Interop.IntAsFloat((uint)b[bn + k] << 16);
        c[i] = s;
    }

    /// <summary>
    /// y[Frame0 + f, oc, pix] from int32 sums c[part·M + oc, f·OHW + pix]: the base-256 pieces combined exactly ((hi·256 + mid)·256 + lo), then
    /// fma(sum, scale[oc], bias[oc]) (sum·scale without a bias), as the CPU's SpikeConv, then each BN as one FMA.
    /// </summary>
    public static void EpilogueInt<TFma>(Index1D i, ArrayView<int> c, ArrayView<float> y, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        int first = i * p.PerThread, mo = p.M * p.OHW, f = first / mo, rest = first - f * mo, oc = rest / p.OHW, pix0 = rest - oc * p.OHW;
        int n0 = f * p.OHW + pix0;
        long at = ((long)(p.Frame0 + f) * p.M + oc) * p.OHW + pix0;
        for (int k = 0; k < p.PerThread; k++) y[at + k] = IntValue<TFma>(c, n0 + k, oc, scales, bias, bn, p);
    }

    /// <summary>Output channel oc at GEMM column n of int32 sums: the pieces combined, then <see cref="Scaled{TFma}"/>.</summary>
    private static float IntValue<TFma>(ArrayView<int> c, int n, int oc, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p)
        where TFma : struct, IFma
    {
        int acc = c[(long)oc * p.Rows + n];
        for (int part = 1; part < p.Parts; part++) acc = acc * 256 + c[((long)part * p.M + oc) * p.Rows + n];
        return Scaled<TFma>(acc, oc, scales, bias, bn, p);
    }

    /// <summary>
    /// <see cref="EpilogueInt{TFma}"/> fused with the LIF over it (IBackend.ConvLif): the chunk holds whole images
    /// (<see cref="SpikeGemmArgs.Items"/>), one thread per (image, oc, PerThread pixels) runs the T steps in order with the
    /// LIF kernel's arithmetic (<see cref="GpuKernels.Lif"/>) and writes only the spikes, at their frames t·B + b.
    /// </summary>
    public static void EpilogueIntLif<TFma>(Index1D i, ArrayView<int> c, ArrayView<float> spikes, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        int first = i * p.PerThread, mo = p.M * p.OHW, item = first / mo, rest = first - item * mo, oc = rest / p.OHW, pix0 = rest - oc * p.OHW;
        float v0 = 0f, v1 = 0f, v2 = 0f, v3 = 0f;
        for (int t = 0; t < p.Timesteps; t++)
        {
            // The step's sums are loaded before its spikes are stored, so a thread's four loads are in flight together.
            int j = t * p.Items + item, n = j * p.OHW + pix0;
            long at = ((long)p.Frame(j) * p.M + oc) * p.OHW + pix0;
            if (p.PerThread == 4)
            {
                float x0 = IntValue<TFma>(c, n, oc, scales, bias, bn, p), x1 = IntValue<TFma>(c, n + 1, oc, scales, bias, bn, p);
                float x2 = IntValue<TFma>(c, n + 2, oc, scales, bias, bn, p), x3 = IntValue<TFma>(c, n + 3, oc, scales, bias, bn, p);
                v0 = LifStep(x0, v0, p.Threshold, spikes, at);
                v1 = LifStep(x1, v1, p.Threshold, spikes, at + 1);
                v2 = LifStep(x2, v2, p.Threshold, spikes, at + 2);
                v3 = LifStep(x3, v3, p.Threshold, spikes, at + 3);
            }
            else v0 = LifStep(IntValue<TFma>(c, n, oc, scales, bias, bn, p), v0, p.Threshold, spikes, at);
        }
    }

    /// <summary>One LIF step as <see cref="GpuKernels.Lif"/> computes it: H = V + (X − V)·0.5, S = H ≥ Vth, V = S ? 0 : H; writes S, returns V.</summary>
    internal static float LifStep(float x, float v, float threshold, ArrayView<float> spikes, long at)
    {
        float h = v + (x - v) * 0.5f;
        bool fire = h >= threshold;
        spikes[at] = fire ? 1f : 0f;
        return fire ? 0f : h;
    }

    /// <summary>fma(sum, scale[oc], bias[oc]) (sum·scale without a bias), as the CPU's SpikeConv, then each BN as one FMA.</summary>
    internal static float Scaled<TFma>(float sum, int oc, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p)
        where TFma : struct, IFma
    {
        float v = p.HasBias != 0 ? default(TFma).Fma(sum, scales[oc], bias[oc]) : sum * scales[oc];
        for (int b = 0; b < p.BnCount; b++) v = default(TFma).Fma(v, bn[2 * b * p.M + oc], bn[(2 * b + 1) * p.M + oc]);
        return v;
    }

    /// <summary>
    /// y[Frame0 + f, oc, pix] from the fp32 sums c[oc, f·OHW + pix] of integer codes against a real-valued input's bf16
    /// pieces (<see cref="GpuSpikeConv.RealInput"/>): scale, bias and BNs as <see cref="EpilogueInt{TFma}"/>.
    /// </summary>
    public static void EpilogueScaled<TFma>(Index1D i, ArrayView<float> c, ArrayView<float> y, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        int first = i * p.PerThread, mo = p.M * p.OHW, f = first / mo, rest = first - f * mo, oc = rest / p.OHW, pix0 = rest - oc * p.OHW;
        int n0 = f * p.OHW + pix0;
        long at = ((long)(p.Frame0 + f) * p.M + oc) * p.OHW + pix0;
        for (int k = 0; k < p.PerThread; k++) y[at + k] = Scaled<TFma>(c[(long)oc * p.Rows + n0 + k], oc, scales, bias, bn, p);
    }

    /// <summary>
    /// y[Frame0 + f, oc, pix] from the fp32 sums of the bf16 pieces c[part·M + oc, f·OHW + pix]: hi + (mid + lo), smallest
    /// first, then + bias[oc] and each BN as one FMA (the SGEMM path's epilogue).
    /// </summary>
    public static void EpilogueSplit<TFma>(Index1D i, ArrayView<float> c, ArrayView<float> y, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        int first = i * p.PerThread, mo = p.M * p.OHW, f = first / mo, rest = first - f * mo, oc = rest / p.OHW, pix0 = rest - oc * p.OHW;
        int n0 = f * p.OHW + pix0;
        long at = ((long)(p.Frame0 + f) * p.M + oc) * p.OHW + pix0;
        for (int k = 0; k < p.PerThread; k++) y[at + k] = SplitValue<TFma>(c, n0 + k, oc, bias, bn, p);
    }

    /// <summary>Output channel oc at GEMM column n of the bf16 pieces' fp32 sums: the pieces combined, + bias, the BNs.</summary>
    private static float SplitValue<TFma>(ArrayView<float> c, int n, int oc, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p)
        where TFma : struct, IFma
    {
        float v = p.Parts == 3 ? c[(2L * p.M + oc) * p.Rows + n] : 0f;
        if (p.Parts >= 2) v += c[((long)p.M + oc) * p.Rows + n];
        v = c[(long)oc * p.Rows + n] + v;
        if (p.HasBias != 0) v += bias[oc];
        for (int b = 0; b < p.BnCount; b++) v = default(TFma).Fma(v, bn[2 * b * p.M + oc], bn[(2 * b + 1) * p.M + oc]);
        return v;
    }
}
