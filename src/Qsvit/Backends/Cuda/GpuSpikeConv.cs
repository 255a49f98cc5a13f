using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;
using Qsvit.Backends.Cuda.Native;
using Qsvit.Tensors;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// fp32 → three bf16 pieces, w = hi + mid + lo exactly: each piece is the previous remainder truncated to bf16 (its top 16
/// bits), so each takes the next 8 significant bits of w's 24 and every remainder is exact in fp32. Exact for |w| ≥ 2^-110;
/// below that lo would need bf16 denormals finer than 2^-133, the absolute error bound (no trained weight is that small).
/// </summary>
internal static class Bf16Split
{
    public static (ushort Hi, ushort Mid, ushort Lo) Split(float w)
    {
        ushort hi = Top(w);
        float r1 = w - Value(hi);
        ushort mid = Top(r1);
        float r2 = r1 - Value(mid);
        return (hi, mid, Top(r2));
    }

    public static float Value(ushort bf16) => BitConverter.Int32BitsToSingle(bf16 << 16);

    private static ushort Top(float v) => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16);
}

/// <summary>
/// Spikes a LIF hands to the layer that reads them next as that layer's packed int8 input (<see cref="SpikeGemmOps.LifHandover"/>):
/// <see cref="Layer"/>'s packed pixels ([frame, h·w, Cp], zero past its input channels) of <see cref="Frames"/> frames of
/// <see cref="Height"/> × <see cref="Width"/>, the frames in the order of the layer's chunks of <see cref="ChunkImages"/>
/// whole images under its fused LIF (<see cref="SpikeGemmArgs.Items"/>), or in frame order (0: a layer without a LIF).
/// </summary>
internal readonly record struct SpikeHandover(GpuSpikeConv Layer, int Frames, int Height, int Width, int ChunkImages);

/// <summary>
/// A dense spike-input conv resident on the GPU for <see cref="SpikeGemmOps"/>: its weights as pieces stacked along M,
/// A[Parts·M, Kp] K-contiguous in the columns' order (k = tap·Cp + c, Kp = taps·Cp, the channels padded to Cp, a
/// multiple of 16, with zeros), plus scales, bias and the BN chain.
/// Integer codes: base-256 int8 digits of q − zero point (1 piece for s8 codes, 2 for up to ±32,639, else 3); one scale per
/// output channel. fp32 weights: the bf16 pieces of <see cref="Bf16Split"/> (trailing all-zero pieces dropped).
/// </summary>
internal sealed class GpuSpikeConv : IDisposable
{
    public ConvGeometry Geometry { get; }
    /// <summary>int8 pieces of integer codes (exact); false: bf16 pieces of fp32 weights, or of the input (<see cref="RealInput"/>).</summary>
    public bool Integer { get; }
    /// <summary>
    /// Integer codes of a real-valued-input 1×1 layer as bf16 (exact for |q − z| ≤ 256), against the input split into its
    /// three bf16 pieces, stacked along K: A[M, 3·Kp] = [q | q | q], B[n] = [lo | mid | hi] of the input pixel. Every
    /// product is exact (8 × 8 significant bits), the sum is fp32 (another order than the fp32 simulation's SGEMM of the
    /// dequantized weights), then one multiply by the scale as on the integer path.
    /// </summary>
    public bool RealInput { get; }
    public int Parts { get; }
    /// <summary>
    /// bf16 pieces stacked along K rather than M: A[M, Parts·Kp] = [lo | mid | hi] against columns repeated Parts times,
    /// so one fp32 accumulator sums every exact product (smallest pieces first) and the GEMM writes one fp32 row per
    /// output channel instead of Parts. Chosen where those rows cost more traffic than the repeated columns (2·M &gt; Kp).
    /// </summary>
    public bool StackK { get; }
    /// <summary>Rows of A and of the GEMM's sums: Parts·M stacked along M, or M.</summary>
    public int GemmRows => StackK ? Geometry.OutChannels : Parts * Geometry.OutChannels;
    /// <summary>Length of A's and the columns' rows: Kp, or Parts·Kp stacked along K.</summary>
    public int GemmK => StackK ? Parts * Kp : Kp;
    /// <summary>How many times each column row holds the spikes (Parts when stacked along K).</summary>
    public int Copies => StackK ? Parts : 1;
    public int K { get; }
    public int Kp { get; }
    /// <summary>Input channels padded to a multiple of <see cref="SpikeGemmKernels.ChannelAlign"/>: the packed pixel's length.</summary>
    public int Cp { get; }
    /// <summary>A 1×1 stride-1 unpadded conv: the packed spikes are the GEMM's columns, no im2col.</summary>
    public bool Pointwise => Geometry.IsPointwise;
    public MemoryBuffer1D<sbyte, Stride1D.Dense>? S8 { get; }
    /// <summary>
    /// Integer codes of a 1×1 layer as fp32, A[M, K] unpadded (<see cref="SpikeGemmOps.Tf32"/>), where TF32 holds them
    /// exactly (<see cref="Tf32Exact"/>); else null.
    /// </summary>
    public MemoryBuffer1D<float, Stride1D.Dense>? F32 { get; }
    public MemoryBuffer1D<ushort, Stride1D.Dense>? Bf16 { get; }
    public MemoryBuffer1D<float, Stride1D.Dense>? Scales { get; }
    public MemoryBuffer1D<float, Stride1D.Dense>? Bias { get; }
    /// <summary>scale0, shift0, scale1, shift1, … each OutChannels long; null without BNs.</summary>
    public MemoryBuffer1D<float, Stride1D.Dense>? Bn { get; }
    public int BnCount { get; }

    /// <summary>
    /// Reduction length from which fp32 weights run as bf16 pieces. Measured on an H200 with the packed columns
    /// (BENCHMARKS.md): from K = 128 the CIFAR model ran at 13,806 images/s against 13,459 with every spike-input conv
    /// split and 12,648 from K = 256; the 55M model alike at all three (261–264).
    /// </summary>
    public const int SplitMinK = 128;

    /// <summary>
    /// bf16 pieces pay where the GEMM is compute-bound: three tensor-core products of K terms against one SGEMM, but the
    /// pieces' sums and the K-contiguous columns cost memory traffic that short reductions (small K) cannot hide.
    /// </summary>
    public static bool SplitPays(ConvGeometry g) => g.InChannels * g.KernelH * g.KernelW >= SplitMinK;

    /// <summary>Whether this kind of layer runs here: dense (groups = 1), spikes in.</summary>
    public static bool Accepts(ConvLayerSpec spec) => spec.SpikeInput && spec.Geometry.Groups == 1 && !spec.Geometry.IsDepthwise;

    /// <summary>
    /// Whether integer codes of a real-valued-input layer run here (<see cref="RealInput"/>): a 1×1 stride-1 unpadded layer
    /// (pwconv2, RepConv's last 1×1) whose integer weights q − z are exact in bf16 (|q − z| ≤ 256: codes up to 8 bits).
    /// </summary>
    public static bool AcceptsRealInput(ConvLayerSpec spec, Quantization.PackedWeight codes)
    {
        if (spec.SpikeInput || !spec.Geometry.IsPointwise) return false;
        var (min, max) = codes.IntegerRange();
        return min >= -256 && max <= 256;
    }

    /// <summary>
    /// Whether a real-valued-input layer of codes runs faster on bf16 tensor cores than on the fp32 SGEMM at this map size:
    /// where the SGEMM is compute-bound. Its reduction must be long (K ≥ 128), and on maps the SGEMM reads in place
    /// (<see cref="GpuOps.PixelMajor"/> false) its flops per byte high, K·M/(K + M) ≥ 128; elsewhere the three bf16
    /// pieces (1.5x the input's bytes) and the transposition cost more than they save. Measured on an H200
    /// (BENCHMARKS.md): 512→512 and 640→640 at 14×14 ran 1.9x / 2.1x faster, 512→256 at 28×28 1.25x, CIFAR's
    /// 128→128 and 192→192 at 4×4 1.2x / 1.3x; 256→128 at 56×56, 128→64 at 112×112 and 32→16 at 32×32 ran 1.3–2x slower.
    /// Where the layer runs as the fused kernel (<paramref name="fused"/>: <see cref="SpikeGemmOps.Fused(GpuSpikeConv, int)"/>,
    /// which reads the fp32 input in place, so no pieces or transposition reach memory), every reduction from 16 pays:
    /// measured on an H200 (eighth session) 256→128 at 56×56 0.65 against the SGEMM's 0.93 ms a pass, 128→64 at 112×112
    /// 1.04 against 1.27, 64→32 at 16×16 0.32 against 0.38, 32→16 at 32×32 0.75 against 0.78.
    /// </summary>
    public static bool RealInputPays(ConvGeometry g, int h, int w, bool fused = false)
    {
        long k = g.InChannels, m = g.OutChannels;
        if (fused) return k >= 16;
        return k >= 128 && (GpuOps.PixelMajor(g, h, w) || k * m >= 128 * (k + m));
    }

    /// <summary>
    /// Whether an integer conv wider than 1×1 runs faster as an implicit GEMM (<see cref="SpikeMmaKernels"/>) than as im2col
    /// columns and cuBLAS's int8 GEMM. The implicit kernel saves writing and reading the columns (taps × the packed input)
    /// but runs its mma.sync tiles well below cuBLAS's rate, so it pays where the GEMM has little work per column byte: few
    /// rows (output channels × int8 digits). Measured on an H200 (BENCHMARKS.md, branch <c>mma</c>): every 3×3 layer of the
    /// CIFAR model and the 55M preset with ≤ 64 rows ran 1.2–1.4x faster (one tiny stride-2 layer 0.95x), every one with
    /// ≥ 128 rows 0.35–0.85x; whole models at setting 4 were fastest with the bound at 64 (CIFAR b1000 20,587 images/s
    /// against 19,323 all im2col; 55M b32 456.1 against 444.8), slower with 128, 256, 512.
    /// </summary>
    public static bool ImplicitPays(int gemmRows, int maxRows = ImplicitMaxRows) => gemmRows <= maxRows;

    /// <summary>GEMM rows up to which <see cref="ImplicitPays"/>.</summary>
    public const int ImplicitMaxRows = 64;

    /// <summary>
    /// Whether a call of an integer conv wider than 1×1 runs as the tiled implicit GEMM with its epilogue fused
    /// (<see cref="SpikeTiledKernels"/>: block tiles with operands staged in shared memory, the sums never in memory)
    /// rather than by <see cref="ImplicitPays"/>: one int8 digit, no LIF after it (the fused LIF epilogue needs all T steps
    /// of a pixel, which the tiles do not hold), and <paramref name="minRows"/> to <paramref name="maxRows"/> GEMM rows.
    /// Measured on an H200 (BENCHMARKS.md, branch <c>widemma</c>): with 64 rows (64 × 128 blocks) 1.07–1.24x faster than the
    /// warp tiles (55M 256→64 @112² 4.49 against 4.99 ms, CIFAR 256→64 @8² 0.75 against 0.82, 32→64 s2 @16² 0.37 against
    /// 0.43); with 32 rows 0.86–0.9x; from 128 rows no faster than im2col + cuBLAS (0.44–1.04x), and wide layers before a
    /// LIF (sums through memory) 0.4–0.7x, so whole models with tiles from 64 or more rows for every call ran 3–12 % slower.
    /// </summary>
    public static bool TiledPays(int gemmRows, int digits, bool lif, int minRows = TiledMinRows, int maxRows = TiledMaxRows) =>
        digits == 1 && !lif && gemmRows >= minRows && gemmRows <= maxRows;

    /// <summary>
    /// Whether a call of an integer conv wider than 1×1 runs as the pipelined implicit GEMM (<see cref="SpikePipelinedKernels"/>:
    /// 128 × 128 block tiles, cp.async stages, 64 × 64 warp tiles, the epilogue fused) rather than by <see cref="TiledPays"/>,
    /// <see cref="ImplicitPays"/> or im2col + cuBLAS: one int8 digit, no LIF after it, <see cref="PipelinedMinRows"/> to
    /// <see cref="PipelinedMaxRows"/> GEMM rows and a reduction from <see cref="PipelinedMinK"/>: where the im2col columns
    /// (taps × the input) cost more than the mma.sync kernel loses to cuBLAS's GEMM. Measured on an H200 (BENCHMARKS.md,
    /// branch <c>igemm</c>): the 55M's 512→128 @56² (128 × 4608) 1.84 against 2.47 ms; from 256 rows, and under a LIF, it ran
    /// 0.56–0.97x of im2col + cuBLAS (its mma.sync tiles reach about half the rate of cuBLAS's GEMM), and at 64 rows or a short
    /// reduction no faster than the tiled kernel or im2col.
    /// </summary>
    public static bool PipelinedPays(int gemmRows, int k, int digits, bool lif) =>
        digits == 1 && !lif && gemmRows >= PipelinedMinRows && gemmRows <= PipelinedMaxRows && k >= PipelinedMinK;

    /// <summary>
    /// Whether a call of an integer conv wider than 1×1 runs on the pipelined kernel with wgmma where that loaded
    /// (<see cref="SpikePipelinedKernels.ConvWgmma{TFma}"/>, sm_90), as measured per layer on an H200 against im2col + cuBLAS
    /// and the mma.sync kernels (BENCHMARKS, eleventh session): one int8 digit and up to <see cref="WgmmaMaxRowsLif"/> GEMM
    /// rows under a LIF (its epilogue in the kernel: 1.0–2.0x), <see cref="WgmmaMaxRows"/> without one (the sums out, the
    /// separate epilogue: 1.0–1.9x). Wider layers stay on cuBLAS's GEMM of the materialised columns (0.83–0.97x).
    /// </summary>
    public static bool WgmmaPays(int gemmRows, int k, int digits, bool lif) => digits == 1 && gemmRows <= (lif ? WgmmaMaxRowsLif : WgmmaMaxRows);

    /// <summary>The bounds of <see cref="WgmmaPays"/>.</summary>
    public const int WgmmaMaxRowsLif = 512, WgmmaMaxRows = 256;

    /// <summary>The bounds of <see cref="PipelinedPays"/>: GEMM rows 65–128 (one 128-row block), K from 1152.</summary>
    public const int PipelinedMinRows = 65, PipelinedMaxRows = 128, PipelinedMinK = 1152;

    /// <summary>GEMM rows from which and up to which <see cref="TiledPays"/>.</summary>
    public const int TiledMinRows = 64, TiledMaxRows = 64;

    /// <summary>Warps along the rows of a tiled block (<see cref="SpikeTiledKernels.BlockTile"/>): 128 × 64 for wide layers, 64 × 128 up to 64 rows.</summary>
    public static int TiledRowWarps(int gemmRows) => gemmRows > 64 ? 4 : 2;

    /// <summary>The input's bf16 pieces per pixel (<see cref="RealInput"/>): hi + mid + lo = x exactly (<see cref="Bf16Split"/>).</summary>
    public const int InputPieces = 3;

    /// <summary>fp32 weights [OutChannels, K] as bf16 pieces.</summary>
    public GpuSpikeConv(Accelerator acc, ConvLayerSpec spec, float[] weight) : this(acc, spec, integer: false, out int m, out int k, out int kp)
    {
        if (weight.Length < (long)m * k) throw new ArgumentException($"weight has {weight.Length} elements, needs {(long)m * k}", nameof(weight));
        var pieces = new ushort[3, (long)m * kp];
        bool mid = false, lo = false;
        for (int r = 0; r < m; r++)
            for (int j = 0; j < k; j++)
            {
                var (h, md, l) = Bf16Split.Split(weight[(long)r * k + j]);
                long at = (long)r * kp + Column(j);
                pieces[0, at] = h;
                pieces[1, at] = md;
                pieces[2, at] = l;
                mid |= (md & 0x7FFF) != 0;
                lo |= (l & 0x7FFF) != 0;
            }
        Parts = lo ? 3 : mid ? 2 : 1;
        StackK = Parts > 1 && 2L * m > kp;
        var a = new ushort[Parts * (long)m * kp];
        for (int p = 0; p < Parts; p++)
            for (int r = 0; r < m; r++)
                for (int j = 0; j < kp; j++)
                {
                    // Along M: piece p is rows p·M ..; along K: row r is [piece Parts−1 | … | piece 0] (smallest first).
                    long at = StackK ? ((long)r * Parts + (Parts - 1 - p)) * kp + j : ((long)p * m + r) * kp + j;
                    a[at] = pieces[p, (long)r * kp + j];
                }
        Bf16 = acc.Allocate1D(a);
    }

    /// <summary>Integer codes (q − zero point per <see cref="Quantization.PackedWeight.IntegerRows"/>) and their scales.</summary>
    public GpuSpikeConv(Accelerator acc, ConvLayerSpec spec, Quantization.PackedWeight codes) : this(acc, spec, integer: true, out int m, out int k, out int kp)
    {
        if (codes.Count != (long)m * k) throw new QsvitException($"'{codes.Key}' holds {codes.Count} codes; the layer needs {(long)m * k}");
        var ints = new int[(long)m * k];
        codes.IntegerRows(0, m, ints);
        var (min, max) = codes.IntegerRange();
        Parts = Digits(min, max);
        var a = new sbyte[Parts * (long)m * kp];
        for (int r = 0; r < m; r++)
            for (int j = 0; j < k; j++)
            {
                int v = ints[(long)r * k + j];
                for (int p = Parts - 1; p >= 0; p--)
                {
                    int digit = ((v + 128) & 255) - 128;
                    a[(p * (long)m + r) * kp + Column(j)] = (sbyte)digit;
                    v = (v - digit) >> 8;
                }
                Debug.Assert(v == 0);
            }
        S8 = acc.Allocate1D(a);
        if (Pointwise && Tf32Exact(min, max, k)) F32 = acc.Allocate1D(Array.ConvertAll(ints, v => (float)v));
        Scales = acc.Allocate1D(codes.Groups == 1 ? Enumerable.Repeat(codes.Scales[0], m).ToArray() : codes.Scales.AsSpan(0, m).ToArray());
    }

    /// <summary>
    /// Whether an integer 1×1 layer on maps of <paramref name="pixels"/> per frame runs faster as TF32 GEMMs per frame
    /// (<see cref="SpikeGemmOps.Tf32"/>) than packed into int8 columns for cuBLAS's int8 GEMM: on large maps, where each
    /// frame's GEMM is wide. Measured on an H200 (BENCHMARKS.md, eighth session), per pass: the 55M's 128→256 + LIF at 56×56
    /// 0.43 against 0.56 ms, 256→512 + LIF at 28×28 0.55 against 0.60; at 14×14 (512→512, 640→640, the MLPs) 1.1–1.8x
    /// slower, and so were CIFAR's MLPs at 4×4. Measured again with the quad packer (twelfth session): 0.49 against 0.55 ms
    /// at 56×56, 0.60 against 0.58 at 28×28; at 112×112 (the 55M's 64→128 + LIF) only the int8 path was measured (1.07 ms,
    /// the fused kernel 1.62), so larger maps keep it.
    /// </summary>
    public static bool Tf32Pays(int pixels) => pixels is >= Tf32MinPixels and <= Tf32MaxPixels;

    /// <summary>Pixels per frame from which and up to which <see cref="Tf32Pays"/> (28×28 to 56×56).</summary>
    public const int Tf32MinPixels = 784, Tf32MaxPixels = 3136;

    /// <summary>
    /// Whether TF32 tensor cores sum spikes × codes in [min, max] over K terms exactly: 0/1 and every |q − z| ≤ 2048 are
    /// exact in TF32 (11 significant bits), so every product is an exact integer, and with K·max|q − z| &lt; 2^24 every
    /// partial sum is an integer that fp32 holds exactly, whatever order the GEMM adds them in.
    /// </summary>
    public static bool Tf32Exact(int min, int max, int k)
    {
        long largest = Math.Max(-(long)min, max);
        return largest <= 2048 && largest * k < 1 << 24;
    }

    /// <summary>Integer codes of a real-valued-input 1×1 layer (<see cref="AcceptsRealInput"/>) as bf16, repeated for the input's pieces.</summary>
    public static GpuSpikeConv RealInputCodes(Accelerator acc, ConvLayerSpec spec, Quantization.PackedWeight codes) => new(acc, spec, codes, realInput: true);

    private GpuSpikeConv(Accelerator acc, ConvLayerSpec spec, Quantization.PackedWeight codes, bool realInput) : this(acc, spec, integer: false, out int m, out int k, out int kp)
    {
        if (!realInput || !AcceptsRealInput(spec, codes)) throw new ArgumentException("real-valued-input codes need a 1×1 layer with codes within ±256", nameof(spec));
        if (codes.Count != (long)m * k) throw new QsvitException($"'{codes.Key}' holds {codes.Count} codes; the layer needs {(long)m * k}");
        RealInput = true;
        Parts = InputPieces;
        StackK = true;
        var ints = new int[(long)m * k];
        codes.IntegerRows(0, m, ints);
        var a = new ushort[Parts * (long)m * kp];
        for (int r = 0; r < m; r++)
            for (int j = 0; j < k; j++)
            {
                // |v| ≤ 256 has at most 8 significant bits: exact in bf16 (the top half of its fp32 bits).
                ushort v = (ushort)(BitConverter.SingleToUInt32Bits(ints[(long)r * k + j]) >> 16);
                for (int p = 0; p < Parts; p++) a[((long)r * Parts + p) * kp + Column(j)] = v;
            }
        Bf16 = acc.Allocate1D(a);
        Scales = acc.Allocate1D(codes.Groups == 1 ? Enumerable.Repeat(codes.Scales[0], m).ToArray() : codes.Scales.AsSpan(0, m).ToArray());
    }

    /// <summary>
    /// Balanced base-256 int8 digits that hold every value in [min, max]. The int32 sums stay exact: each digit's sum is at
    /// most 128·K, and the combined sum is the exact Σ q·spike, which the CPU's int32 path also requires to fit.
    /// </summary>
    public static int Digits(int min, int max)
    {
        long lo = -128, hi = 127;
        for (int parts = 1; parts <= 3; parts++, lo = lo * 256 - 128, hi = hi * 256 + 127)
            if (min >= lo && max <= hi) return parts;
        throw new QsvitException($"integer weights in [{min}, {max}] need more than 24 bits");
    }

    private GpuSpikeConv(Accelerator acc, ConvLayerSpec spec, bool integer, out int m, out int k, out int kp)
    {
        var g = spec.Geometry;
        g.Validate();
        if (!Accepts(spec) && !(g.IsPointwise && !spec.SpikeInput))
            throw new ArgumentException("the spike GEMM path takes dense convolutions of spikes and 1×1 layers of integer codes", nameof(spec));
        Geometry = g;
        Integer = integer;
        m = g.OutChannels;
        K = k = g.InChannels * g.KernelH * g.KernelW;
        Cp = SpikeGemmKernels.PaddedChannels(g.InChannels);
        Kp = kp = g.KernelH * g.KernelW * Cp;
        var bias = spec.Bias;
        if (bias.Length != 0 && bias.Length < m) throw new ArgumentException($"bias has {bias.Length} elements, needs {m}", nameof(spec));
        if (bias.Length != 0) Bias = acc.Allocate1D(bias.AsSpan(0, m).ToArray());
        BnCount = spec.Affines.Count;
        if (BnCount > 0)
        {
            var packed = new float[2 * BnCount * m];
            for (int i = 0; i < BnCount; i++)
            {
                spec.Affines[i].Scale.AsSpan(0, m).CopyTo(packed.AsSpan(2 * i * m));
                spec.Affines[i].Shift.AsSpan(0, m).CopyTo(packed.AsSpan((2 * i + 1) * m));
            }
            Bn = acc.Allocate1D(packed);
        }
    }

    /// <summary>Column of weight element j (PyTorch's order c·taps + tap) in A: tap·Cp + c.</summary>
    private int Column(int j)
    {
        int taps = Geometry.KernelH * Geometry.KernelW, c = j / taps;
        return (j - c * taps) * Cp + c;
    }

    public long DeviceBytes => (S8?.Length ?? 0) + 2 * (Bf16?.Length ?? 0) + 4 * ((F32?.Length ?? 0) + (Scales?.Length ?? 0) + (Bias?.Length ?? 0) + (Bn?.Length ?? 0));

    public void Dispose()
    {
        S8?.Dispose();
        F32?.Dispose();
        Bf16?.Dispose();
        Scales?.Dispose();
        Bias?.Dispose();
        Bn?.Dispose();
    }
}

/// <summary>
/// Runs <see cref="GpuSpikeConv"/> layers: per chunk of frames, the spikes are packed pixel-major into bf16/int8 and
/// copied into K-contiguous columns (1×1 stride-1 layers use the packed spikes as they are), one GEMM (cuBLAS GemmEx on tensor cores, or the fallback kernels) computes all stacked pieces, and one
/// epilogue combines them and applies scale, bias and BNs into the output.
/// </summary>
internal sealed partial class SpikeGemmOps
{
    private readonly Accelerator _acc;
    private readonly Cublas? _blas;
    private readonly int _group;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, SpikeGemmArgs> _packBf16;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<sbyte>, SpikeGemmArgs> _packS8, _packS8Quads;
    /// <summary>Null where groups of <see cref="SpikeGemmKernels.HandoverGroup"/> threads do not launch (no LIF hands its spikes over).</summary>
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, HandoverArgs>? _lifHandover;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, SpikeGemmArgs> _packSplit;
    private readonly Action<Index1D, ArrayView<long>, ArrayView<long>, SpikeGemmArgs> _columns;
    private readonly Action<Index1D, ArrayView<sbyte>, ArrayView<sbyte>, ArrayView<int>, int, int> _gemmS8;
    private readonly Action<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, int, int> _gemmBf16;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<Half>> _toHalf;
    private readonly Action<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs> _epilogueInt;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs> _epilogueSplit;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs> _epilogueScaled;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs> _epilogueInPlace, _epilogueInPlaceLif;
    private readonly Action<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs> _epilogueIntLif;
    private readonly Action<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs> _epilogueIntLifPacked;
    /// <summary>The implicit-GEMM kernel (<see cref="SpikeMmaKernels"/>); null on GPUs without int8 mma (before sm_80).</summary>
    private readonly Action<KernelConfig, ArrayView<int>, ArrayView<int>, ArrayView<int>, SpikeGemmArgs, int>? _implicitConv;
    private readonly int _mmaGroup;
    /// <summary>The tiled implicit-GEMM kernel (<see cref="SpikeTiledKernels"/>); null where <see cref="_implicitConv"/> is.</summary>
    private readonly Action<KernelConfig, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, int>? _tiledConv;
    private readonly int _tiledGroup;
    /// <summary>The pipelined implicit-GEMM kernel (<see cref="SpikePipelinedKernels"/>); null where <see cref="_implicitConv"/> is.</summary>
    private readonly Action<KernelConfig, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, long, long>? _pipelinedConv;
    private readonly int _pipelinedGroup;
    /// <summary>
    /// The pipelined kernel on wgmma (<see cref="SpikePipelinedKernels.ConvWgmma{TFma}"/>): on sm_90 GPUs where the sm_90a
    /// build loads (<see cref="Sm90aKernels"/>), and on ILGPU's CPU accelerator (its scalar fallback, for tests); else null.
    /// </summary>
    private readonly Action<KernelConfig, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, long, long>? _wgmmaConv;
    /// <summary>Why <see cref="_wgmmaConv"/> is null on a CUDA GPU (for profiles and benchmarks), or null.</summary>
    public string? WgmmaUnavailable { get; }
    private readonly SpikeInputGemm _mode;
    private readonly int _implicitMaxRows, _tiledMinRows, _tiledMaxRows, _tiledRowWarps;
    /// <summary>Whether the fused 1×1 kernels stage a small input at once (<see cref="PointwiseMmaKernels.WholeStage"/>); false: in chunks, as before.</summary>
    private readonly bool _wholeStages;
    /// <summary>Whether the tiled kernel applies the epilogue itself where it can (one digit, no LIF); benchmarks compare both.</summary>
    private readonly bool _tiledFuses;
    /// <summary>The fused pointwise kernel (<see cref="PointwiseMmaKernels"/>); null before sm_80, with <see cref="SpikeInputGemm.TensorCoresPointwiseCublas"/> and on accelerators with smaller groups.</summary>
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PointwiseArgs>? _pointwise;
    private readonly int _pointwiseMaxRows;
    /// <summary>The fused real-input pointwise kernel (<see cref="PointwiseMmaKernels.RealConv{TFma}"/>); from sm_80, by default (where <see cref="PointwiseMmaKernels.RealFusedPays"/>) and with <see cref="SpikeInputGemm.TensorCoresRealFused"/>.</summary>
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PointwiseArgs>? _pointwiseReal;
    /// <summary>The fused 1×1 → LIF → 1×1 kernel (<see cref="MlpMmaKernels"/>); null where <see cref="_pointwise"/> is.</summary>
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, MlpArgs>? _mlp;
    /// <summary>Whether <see cref="_mlp"/> launches with groups of this many warps (registers and shared memory allow one group per multiprocessor), by warps.</summary>
    private readonly Dictionary<int, bool> _mlpLaunches = new();

    /// <param name="mode">Which integer convs run as implicit GEMMs (<see cref="Implicit"/>).</param>
    /// <param name="implicitMaxRows">The rule's bound (<see cref="GpuSpikeConv.ImplicitPays"/>); benchmarks measure others.</param>
    /// <param name="tiledMinRows">The tiled kernel's bounds (<see cref="GpuSpikeConv.TiledPays"/>); benchmarks measure others.</param>
    /// <param name="tiledMaxRows">See <paramref name="tiledMinRows"/>.</param>
    /// <param name="tiledRowWarps">Benchmarks: one block shape for every tiled layer (2 or 4) instead of <see cref="GpuSpikeConv.TiledRowWarps"/> (0).</param>
    /// <param name="tiledFuses">Benchmarks: false keeps the tiled kernel's sums in memory for the separate epilogue everywhere.</param>
    /// <param name="pointwiseMaxRows">The fused pointwise rule's bound (<see cref="PointwiseMmaKernels.FusedPays"/>); benchmarks measure others.</param>
    /// <param name="wholeStages">Tests and benchmarks: false stages the fused 1×1 kernels' input in chunks everywhere (<see cref="PointwiseMmaKernels.WholeStage"/>).</param>
    public SpikeGemmOps(Accelerator acc, Cublas? blas, SpikeInputGemm mode = SpikeInputGemm.TensorCores, int implicitMaxRows = GpuSpikeConv.ImplicitMaxRows,
        int tiledMinRows = GpuSpikeConv.TiledMinRows, int tiledMaxRows = GpuSpikeConv.TiledMaxRows, int tiledRowWarps = 0, bool tiledFuses = true,
        int pointwiseMaxRows = PointwiseMmaKernels.FusedMaxRows, bool wholeStages = true)
    {
        if (tiledRowWarps != 0 && !SpikeTiledKernels.ValidRowWarps(tiledRowWarps)) throw new ArgumentOutOfRangeException(nameof(tiledRowWarps), "2 or 4 row warps");
        _acc = acc;
        _blas = blas;
        _mode = mode;
        _implicitMaxRows = implicitMaxRows;
        _tiledMinRows = tiledMinRows;
        _tiledMaxRows = tiledMaxRows;
        _tiledRowWarps = tiledRowWarps;
        _tiledFuses = tiledFuses;
        _pointwiseMaxRows = pointwiseMaxRows;
        _wholeStages = wholeStages;
        _group = Math.Min(acc.MaxNumThreadsPerGroup, 256);
        bool cuda = acc.AcceleratorType == AcceleratorType.Cuda;
        // Four warps per group on CUDA (each warp one tile); on the CPU accelerator any group size does (no warp operations).
        _mmaGroup = cuda ? 4 * SpikeMmaKernels.Lanes : acc.MaxNumThreadsPerGroup;
        if (!cuda || ((CudaAccelerator)acc).Architecture >= CudaArchitecture.SM_80)
        {
            _implicitConv = acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, SpikeGemmArgs, int>(SpikeMmaKernels.Conv);
            _tiledConv = cuda
                ? acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, int>(SpikeTiledKernels.Conv<ContractedFma>)
                : acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, int>(SpikeTiledKernels.Conv<ExactFma>);
        }
        if (_tiledConv is not null)
            _pipelinedConv = cuda
                ? acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, long, long>(SpikePipelinedKernels.Conv<ContractedFma>)
                : acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, long, long>(SpikePipelinedKernels.Conv<ExactFma>);
        if (_pipelinedConv is not null && !cuda)
            _wgmmaConv = acc.LoadStreamKernel<ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, long, long>(SpikePipelinedKernels.ConvWgmma<ExactFma>);
        else if (_pipelinedConv is not null)
        {
            var launcher = Sm90aKernels.Load<Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, long, long>>(acc,
                (Action<ArrayView<int>, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs, int, int, long, long>)SpikePipelinedKernels.ConvWgmma<ContractedFma>,
                SpikePipelinedKernels.WgmmaSharedBytes, new KernelSpecialization(SpikePipelinedKernels.GroupThreads, SpikePipelinedKernels.WgmmaBlocksPerMultiprocessor), out string? why);
            WgmmaUnavailable = why;
            if (launcher is not null)
                _wgmmaConv = (config, packed, weights, sums, output, scales, bias, bn, p, rows, fused, packedAddress, weightAddress) =>
                    launcher(acc.DefaultStream, config, packed, weights, sums, output, scales, bias, bn, p, rows, fused, packedAddress, weightAddress);
        }
        // One warp per 32 lanes of the block on CUDA; one thread per group on the CPU accelerator (barriers switch OS threads).
        _tiledGroup = cuda ? SpikeTiledKernels.GroupThreads : 1;
        _pipelinedGroup = cuda ? SpikePipelinedKernels.GroupThreads : 1;
        // Its groups are four warps (tests run it on a CPU accelerator with groups that large).
        if ((!cuda || ((CudaAccelerator)acc).Architecture >= CudaArchitecture.SM_80) && mode != SpikeInputGemm.TensorCoresPointwiseCublas
            && acc.MaxNumThreadsPerGroup >= PointwiseMmaKernels.GroupSize)
            _pointwise = cuda
                ? acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PointwiseArgs>(PointwiseMmaKernels.Conv<ContractedFma>)
                : acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PointwiseArgs>(PointwiseMmaKernels.Conv<ExactFma>);
        if (_pointwise is not null)
            _mlp = cuda
                ? acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, MlpArgs>(MlpMmaKernels.Chain<ContractedFma>)
                : acc.LoadStreamKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>,
                    ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<long>, MlpArgs>(MlpMmaKernels.Chain<ExactFma>);
        if ((!cuda || ((CudaAccelerator)acc).Architecture >= CudaArchitecture.SM_80) && mode != SpikeInputGemm.Fp32
            && acc.MaxNumThreadsPerGroup >= PointwiseMmaKernels.GroupSize)
            _pointwiseReal = cuda
                ? acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PointwiseArgs>(PointwiseMmaKernels.RealConv<ContractedFma>)
                : acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PointwiseArgs>(PointwiseMmaKernels.RealConv<ExactFma>);
        _packBf16 = acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, SpikeGemmArgs>(SpikeGemmKernels.PackBf16);
        _packS8 = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<sbyte>, SpikeGemmArgs>(SpikeGemmKernels.PackS8);
        _packS8Quads = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<sbyte>, SpikeGemmArgs>(SpikeGemmKernels.PackS8Quads);
        if (acc.MaxNumThreadsPerGroup >= SpikeGemmKernels.HandoverGroup)
            _lifHandover = acc.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, HandoverArgs>(SpikeGemmKernels.LifHandover);
        _packSplit = acc.LoadStreamKernel<ArrayView<float>, ArrayView<ushort>, SpikeGemmArgs>(SpikeGemmKernels.PackSplit);
        _columns = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<long>, ArrayView<long>, SpikeGemmArgs>(SpikeGemmKernels.ColumnsFromPacked);
        _gemmS8 = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<sbyte>, ArrayView<sbyte>, ArrayView<int>, int, int>(SpikeGemmKernels.GemmS8);
        _gemmBf16 = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, ArrayView<float>, int, int>(SpikeGemmKernels.GemmBf16);
        _toHalf = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<Half>>(SpikeGemmKernels.ToHalf);
        _epilogueInt = cuda
            ? acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueInt<ContractedFma>)
            : acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueInt<ExactFma>);
        _epilogueSplit = cuda
            ? acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueSplit<ContractedFma>)
            : acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueSplit<ExactFma>);
        _epilogueIntLifPacked = cuda
            ? acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueIntLifPacked<ContractedFma>)
            : acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueIntLifPacked<ExactFma>);
        _epilogueIntLif = cuda
            ? acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueIntLif<ContractedFma>)
            : acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueIntLif<ExactFma>);
        _epilogueScaled = cuda
            ? acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueScaled<ContractedFma>)
            : acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueScaled<ExactFma>);
        _epilogueInPlace = cuda
            ? acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueInPlace<ContractedFma>)
            : acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueInPlace<ExactFma>);
        _epilogueInPlaceLif = cuda
            ? acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueInPlaceLif<ContractedFma>)
            : acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, SpikeGemmArgs>(SpikeGemmKernels.EpilogueInPlaceLif<ExactFma>);
    }

    /// <summary>
    /// Whether <paramref name="layer"/> at this input size runs as an implicit GEMM (with a fused LIF when
    /// <paramref name="lif"/>): integer codes, wider than 1×1, the kernel available, and then as <see cref="SpikeInputGemm"/>
    /// says (by <see cref="Tiled"/> or <see cref="GpuSpikeConv.ImplicitPays"/> by default; always without cuBLAS, whose
    /// stand-in is a plain ILGPU kernel).
    /// </summary>
    public bool Implicit(GpuSpikeConv layer, int h, int w, bool lif = false) => _implicitConv is not null && layer.Integer && !layer.Pointwise && _mode switch
    {
        SpikeInputGemm.TensorCoresIm2col => false,
        SpikeInputGemm.TensorCoresImplicit or SpikeInputGemm.TensorCoresTiled or SpikeInputGemm.TensorCoresPipelined or SpikeInputGemm.TensorCoresWgmma => true,
        _ => _blas is null || Tiled(layer, lif) || Pipelined(layer, lif) || GpuSpikeConv.ImplicitPays(layer.GemmRows, _implicitMaxRows),
    };

    /// <summary>
    /// Whether an implicit GEMM of <paramref name="layer"/> (<see cref="Implicit"/>), with a fused LIF when
    /// <paramref name="lif"/>, runs on the tiled kernel (<see cref="SpikeTiledKernels"/>) rather than the warp-tile one: as
    /// <see cref="GpuSpikeConv.TiledPays"/> says, always with <c>--gemm tensor-tiled</c>.
    /// </summary>
    public bool Tiled(GpuSpikeConv layer, bool lif) => _tiledConv is not null && layer.Integer && !layer.Pointwise && _mode switch
    {
        SpikeInputGemm.TensorCoresTiled => true,
        SpikeInputGemm.TensorCoresIm2col or SpikeInputGemm.TensorCoresImplicit or SpikeInputGemm.TensorCoresPipelined or SpikeInputGemm.TensorCoresWgmma => false,
        // The choices that concern 1×1 layers leave the wider ones to the default rule.
        _ => GpuSpikeConv.TiledPays(layer.GemmRows, layer.Parts, lif, _tiledMinRows, _tiledMaxRows) && !Pipelined(layer, lif),
    };

    /// <summary>
    /// Whether an implicit GEMM of <paramref name="layer"/> (<see cref="Implicit"/>), with a fused LIF when
    /// <paramref name="lif"/>, runs on the pipelined kernel (<see cref="SpikePipelinedKernels"/>): as
    /// <see cref="GpuSpikeConv.PipelinedPays"/> says, always with <c>--gemm tensor-pipelined</c>.
    /// </summary>
    public bool Pipelined(GpuSpikeConv layer, bool lif) => _pipelinedConv is not null && layer.Integer && !layer.Pointwise && _mode switch
    {
        SpikeInputGemm.TensorCoresPipelined or SpikeInputGemm.TensorCoresWgmma => true,
        SpikeInputGemm.TensorCoresIm2col or SpikeInputGemm.TensorCoresImplicit or SpikeInputGemm.TensorCoresTiled => false,
        _ => _blas is not null && (GpuSpikeConv.PipelinedPays(layer.GemmRows, layer.Kp, layer.Parts, lif) || Wgmma(layer, lif)),
    };

    /// <summary>
    /// Whether a pipelined call of <paramref name="layer"/> (<see cref="Pipelined"/>) multiplies its stages with wgmma
    /// (<see cref="SpikePipelinedKernels.ConvWgmma{TFma}"/>): where that kernel loaded, as <see cref="GpuSpikeConv.WgmmaPays"/>
    /// says, always with <c>--gemm tensor-wgmma</c>.
    /// </summary>
    public bool Wgmma(GpuSpikeConv layer, bool lif) => _wgmmaConv is not null && layer.Integer && !layer.Pointwise && _mode switch
    {
        SpikeInputGemm.TensorCoresWgmma => true,
        SpikeInputGemm.TensorCores or SpikeInputGemm.TensorCoresUnchained or SpikeInputGemm.TensorCoresPointwiseCublas or SpikeInputGemm.TensorCoresRealFused
            or SpikeInputGemm.TensorCoresTf32Pointwise => _blas is not null && GpuSpikeConv.WgmmaPays(layer.GemmRows, layer.Kp, layer.Parts, lif),
        _ => false,
    };

    /// <summary>
    /// Whether <paramref name="layer"/> runs as one fused pointwise kernel (<see cref="PointwiseMmaKernels"/>: fp32 input read
    /// in place, mma, epilogue and LIF in registers). Integer codes of a 1×1 layer: the kernel available, a fused LIF's T steps
    /// fitting a lane's columns (<paramref name="timesteps"/> 0 without), and as <see cref="PointwiseMmaKernels.FusedPays"/>
    /// says with cuBLAS (always without: its stand-in is a plain ILGPU kernel). Codes over a real-valued input
    /// (<see cref="GpuSpikeConv.RealInput"/>, never with a LIF): as <see cref="PointwiseMmaKernels.RealFusedPays"/> says with
    /// cuBLAS by default, always with <see cref="SpikeInputGemm.TensorCoresRealFused"/>.
    /// </summary>
    public bool Fused(GpuSpikeConv layer, int timesteps = 0) => layer.Pointwise && (layer.RealInput
        ? _pointwiseReal is not null && timesteps == 0
          && (_mode == SpikeInputGemm.TensorCoresRealFused || (_blas is not null && PointwiseMmaKernels.RealFusedPays(layer.Geometry.OutChannels)))
        : _pointwise is not null && layer.Integer && (timesteps == 0 || PointwiseMmaKernels.StepsFit(timesteps))
          && (_blas is null || PointwiseMmaKernels.FusedPays(layer.GemmRows, _pointwiseMaxRows)));

    /// <summary>
    /// Whether an integer 1×1 layer that <see cref="Fused(GpuSpikeConv, int, int, int, int)"/> does not take runs as cuBLAS TF32
    /// GEMMs, one per frame, reading the fp32 spikes in place and writing the sums where the outputs go, then an epilogue
    /// (with the LIF) in place: no packing, no columns, no workspace. Its codes must be exact in TF32
    /// (<see cref="GpuSpikeConv.F32"/>); then as <see cref="GpuSpikeConv.Tf32Pays"/> says, always with
    /// <see cref="SpikeInputGemm.TensorCoresTf32Pointwise"/>.
    /// </summary>
    public bool Tf32(GpuSpikeConv layer, int frames, int h, int w, int timesteps) =>
        _blas is not null && layer.F32 is not null && !Fused(layer, frames, h, w, timesteps)
        && FitsOneLaunch(layer, frames, h, w)
        && _mode switch
        {
            SpikeInputGemm.TensorCoresTf32Pointwise => true,
            SpikeInputGemm.TensorCoresPointwiseCublas => false,
            _ => GpuSpikeConv.Tf32Pays(h * w),
        };

    /// <summary>
    /// Whether fc1 → LIF → fc2 (<paramref name="first"/>, <paramref name="second"/>: IBackend.ConvLifConv without a recorder)
    /// runs as the fused kernel (<see cref="MlpMmaKernels"/>): two integer 1×1 layers of one int8 digit each that chain
    /// (fc1's outputs are fc2's inputs), at most <see cref="MlpMmaKernels.MaxChannels"/> input channels and
    /// <see cref="MlpMmaKernels.MaxOutChannels"/> outputs, T steps that tile a lane's columns, a call that fits one launch,
    /// groups of one warp per 32 outputs that this accelerator launches, and as <see cref="MlpMmaKernels.FusedPays"/> says
    /// with cuBLAS (always without).
    /// </summary>
    public bool Mlp(GpuSpikeConv first, GpuSpikeConv second, int frames, int h, int w, int timesteps)
    {
        if (_mlp is null || !first.Integer || !second.Integer || !first.Pointwise || !second.Pointwise || first.Parts != 1 || second.Parts != 1
            || first.RealInput || second.RealInput || first.Geometry.OutChannels != second.Geometry.InChannels
            || first.Geometry.InChannels > MlpMmaKernels.MaxChannels || second.Geometry.OutChannels > MlpMmaKernels.MaxOutChannels
            || timesteps <= 0 || !PointwiseMmaKernels.StepsFit(timesteps) || frames % timesteps != 0
            || !FitsOneLaunch(first, frames, h, w) || !FitsOneLaunch(second, frames, h, w))
            return false;
        if (_blas is not null && !MlpMmaKernels.FusedPays(second.Geometry.OutChannels)) return false;
        return MlpLaunches(MlpMmaKernels.WarpsFor(second.Geometry.OutChannels));
    }

    /// <summary>Whether a group of <paramref name="warps"/> warps fits this accelerator (on a GPU: the kernel's registers and shared memory on one multiprocessor).</summary>
    private bool MlpLaunches(int warps) => ChainLaunches(_mlpLaunches, () => _mlp!.GetKernel(), warps);

    /// <summary>
    /// Whether a fused chain kernel's group of <paramref name="warps"/> warps launches
    /// here: on a GPU its registers and shared memory on one multiprocessor, by ILGPU's occupancy estimate; remembered per
    /// warp count in <paramref name="cache"/>.
    /// </summary>
    private bool ChainLaunches(Dictionary<int, bool> cache, Func<Kernel> kernel, int warps)
    {
        lock (cache)
        {
            if (cache.TryGetValue(warps, out bool fits)) return fits;
            int threads = warps * PointwiseMmaKernels.Lanes;
            fits = threads <= _acc.MaxNumThreadsPerGroup
                && (_acc.AcceleratorType != AcceleratorType.Cuda || _acc.EstimateMaxActiveGroupsPerMultiprocessor(kernel(), threads, 0) > 0);
            cache[warps] = fits;
            return fits;
        }
    }

    /// <summary>
    /// The two layers' launch scalars of a fused conv → LIF → conv chain (MLP or ConvBlock): the first with its LIF, the
    /// second for its epilogue; after checking that the views hold the chain's input and output.
    /// </summary>
    private static (PointwiseArgs First, PointwiseArgs Second) ChainArgs(GpuSpikeConv first, GpuSpikeConv second, ArrayView<float> input, ArrayView<float> output,
        int frames, int h, int w, int timesteps, float threshold)
    {
        long needIn = (long)frames * first.Geometry.InChannels * h * w, needOut = (long)frames * second.Geometry.OutChannels * h * w;
        if (input.Length < needIn) throw new ArgumentException($"input has {input.Length} elements, needs {needIn}", nameof(input));
        if (output.Length < needOut) throw new ArgumentException($"output has {output.Length} elements, needs {needOut}", nameof(output));
        int hw = h * w, batch = frames / timesteps, hidden = first.Geometry.OutChannels;
        return (new PointwiseArgs
        {
            InChannels = first.Geometry.InChannels, Cp = first.Cp, M = hidden, Parts = 1, HW = hw, Steps = timesteps, Batch = batch, Pixels = batch * hw,
            Lif = 1, Threshold = threshold, HasBias = first.Bias is null ? 0 : 1, BnCount = first.BnCount, RowWarps = 1, ColumnWarps = 1,
        }, new PointwiseArgs
        {
            InChannels = hidden, Cp = second.Cp, M = second.Geometry.OutChannels, Parts = 1, HW = hw, Steps = timesteps, Batch = batch, Pixels = batch * hw,
            HasBias = second.Bias is null ? 0 : 1, BnCount = second.BnCount, RowWarps = 1, ColumnWarps = 1,
        });
    }

    /// <summary>
    /// fc1 → LIF → fc2 as one launch (<see cref="Mlp"/> must hold): input[frames, C, h·w] (spikes) into output[frames, M, h·w],
    /// the hidden spikes never in memory; the output is that of <see cref="Conv"/> with the fused LIF, then <see cref="Conv"/>, bit for bit.
    /// With <paramref name="countSlot"/> ≥ 0 the hidden spikes are added to <paramref name="counts"/>[countSlot] (a spike counter).
    /// </summary>
    public void RunMlp(GpuSpikeConv first, GpuSpikeConv second, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output,
        int timesteps, float threshold, ArrayView<long> counts = default, int countSlot = -1)
    {
        Debug.Assert(Mlp(first, second, frames, h, w, timesteps));
        var (fc1, fc2) = ChainArgs(first, second, input, output, frames, h, w, timesteps, threshold);
        int hw = h * w, warps = MlpMmaKernels.WarpsFor(second.Geometry.OutChannels);
        var a = new MlpArgs
        {
            First = fc1 with { Vec = hw % 4 == 0 ? 1 : 0 },
            Second = fc2,
            Warps = warps,
            Chunk = MlpMmaKernels.ChunkFor(warps, first.Geometry.OutChannels),
            CountSlot = countSlot,
        };
        long groups = ((long)frames * hw + MlpMmaKernels.Columns - 1) / MlpMmaKernels.Columns;
        var unused1 = first.Scales!.View; // stands in for an absent bias or BN table (never read)
        var unused2 = second.Scales!.View;
        _mlp!(new KernelConfig(new Index1D((int)groups), new Index1D(warps * PointwiseMmaKernels.Lanes)), input, ((ArrayView<sbyte>)first.S8!.View).Cast<int>(),
            first.Scales.View, first.Bias?.View ?? unused1, first.Bn?.View ?? unused1, ((ArrayView<sbyte>)second.S8!.View).Cast<int>(),
            second.Scales.View, second.Bias?.View ?? unused2, second.Bn?.View ?? unused2, output, countSlot < 0 ? default : counts, a);
    }

    /// <summary>Whether a call runs in one launch over the input in place and needs no workspace (<see cref="Plan"/>): fused or TF32.</summary>
    public bool InPlace(GpuSpikeConv layer, int frames, int h, int w, int timesteps) =>
        Fused(layer, frames, h, w, timesteps) || Tf32(layer, frames, h, w, timesteps);

    /// <summary>
    /// <see cref="Fused(GpuSpikeConv, int)"/> for a call on <paramref name="frames"/> frames of h × w: also whether its input
    /// and output fit one launch (else the chunked packed path runs), and for integer codes with cuBLAS whether the map is
    /// one <see cref="PointwiseMmaKernels.FusedPaysAt"/> takes.
    /// </summary>
    public bool Fused(GpuSpikeConv layer, int frames, int h, int w, int timesteps) => Fused(layer, timesteps) && FitsOneLaunch(layer, frames, h, w)
        && (layer.RealInput || _blas is null || PointwiseMmaKernels.FusedPaysAt(h * w));

    /// <summary>Whether a 1×1 call's input and output (frames × channels × h × w) can be indexed by one launch's int offsets.</summary>
    private static bool FitsOneLaunch(GpuSpikeConv layer, int frames, int h, int w) =>
        (long)frames * Math.Max(layer.Geometry.InChannels, layer.Geometry.OutChannels) * h * w <= int.MaxValue;

    /// <summary>Guards a call's input[frames, Cin, h, w] and output[frames, Cout, OH, OW] views against the layer's shape.</summary>
    private static void RequireViews(GpuSpikeConv layer, ArrayView<float> input, ArrayView<float> output, int frames, int h, int w)
    {
        var g = layer.Geometry;
        long needIn = (long)frames * g.InChannels * h * w, needOut = (long)frames * g.OutChannels * g.OutH(h) * g.OutW(w);
        if (input.Length < needIn) throw new ArgumentException($"input has {input.Length} elements, needs {needIn}", nameof(input));
        if (output.Length < needOut) throw new ArgumentException($"output has {output.Length} elements, needs {needOut}", nameof(output));
    }

    /// <summary>
    /// Whether SDSA of this shape runs exactly on f16 tensor cores (<see cref="Attention"/>): kv counts up to
    /// <paramref name="tokens"/> must be exact in f16 (≤ 2048), and out's integer sums (≤ d·tokens) exact in fp32 (&lt; 2^24).
    /// </summary>
    public bool AttentionFits(int d, int tokens) => _blas is not null && tokens <= 2048 && (long)d * tokens < 1 << 24;

    /// <summary>Floats of workspace <see cref="Attention"/> needs: f16 copies of q, k, v and kv, and kv in fp32.</summary>
    public static long AttentionFloats(int planes, int d, int tokens) =>
        3 * HalfSlot((long)planes * d * tokens) + Align((long)planes * d * d) + HalfSlot((long)planes * d * d);

    /// <summary>Floats that hold <paramref name="halves"/> f16 values, rounded up to 256 bytes so every operand starts aligned.</summary>
    private static long HalfSlot(long halves) => Align((halves + 1) / 2);

    private static long Align(long floats) => (floats + 63) / 64 * 64;

    /// <summary>
    /// SDSA on tensor cores, identical to the fp32 SGEMMs: q, k, v are spikes (exact in f16); kv = K·Vᵀ sums at most
    /// <c>tokens</c> ones, an integer exact in the fp32 accumulator and, at ≤ 2048, in f16; out = scale·kvᵀ·Q sums integers
    /// below 2^24, exact in fp32 whatever the order, then one multiply by scale, as the SGEMM's α.
    /// </summary>
    public void Attention(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> output, int planes, int d, int tokens,
        float scale, ArrayView<float> workspace)
    {
        Debug.Assert(AttentionFits(d, tokens));
        long n = (long)planes * d * tokens, kvn = (long)planes * d * d, halves = HalfSlot(n);
        if (n > int.MaxValue) throw new QsvitException($"an attention of {n:N0} elements is too large for one launch; use a smaller batch");
        var q16 = workspace.SubView(0, halves).Cast<Half>();
        var k16 = workspace.SubView(halves, halves).Cast<Half>();
        var v16 = workspace.SubView(2 * halves, halves).Cast<Half>();
        var kv = workspace.SubView(3 * halves, kvn);
        var kv16 = workspace.SubView(3 * halves + Align(kvn), HalfSlot(kvn)).Cast<Half>();
        _toHalf((int)n, q, q16);
        _toHalf((int)n, k, k16);
        _toHalf((int)n, v, v16);
        long slice = (long)d * tokens;
        _blas!.GemmStridedBatchedEx(RowMajorGemm.Dense(d, d, tokens, transB: true), 1, k16.LoadEffectiveAddressAsPtr(), CudaDataType.R16F, slice,
            v16.LoadEffectiveAddressAsPtr(), CudaDataType.R16F, slice, 0, kv.LoadEffectiveAddressAsPtr(), CudaDataType.R32F, (long)d * d, planes, CublasComputeType.F32);
        _toHalf((int)kvn, kv, kv16);
        _blas.GemmStridedBatchedEx(RowMajorGemm.Dense(d, tokens, d, transA: true), scale, kv16.LoadEffectiveAddressAsPtr(), CudaDataType.R16F, (long)d * d,
            q16.LoadEffectiveAddressAsPtr(), CudaDataType.R16F, slice, 0, output.LoadEffectiveAddressAsPtr(), CudaDataType.R32F, slice, planes, CublasComputeType.F32);
    }

    /// <summary>
    /// Frames per chunk and the floats of workspace its packed spikes and columns (one region) and its sums need, within
    /// <paramref name="budget"/> floats each. With a fused LIF over <paramref name="timesteps"/> steps the chunk holds
    /// whole images (a multiple of T frames, at least T). An implicit GEMM (<paramref name="implicitGemm"/>, as
    /// <see cref="Implicit"/> says) needs no columns, only the packed spikes; a call in place (<paramref name="fused"/>, as
    /// <see cref="InPlace"/> says) needs none at all.
    /// </summary>
    public static (int Chunk, long ColumnFloats, long SumFloats) Plan(GpuSpikeConv layer, int frames, int h, int w, long budget, int timesteps = 1,
        bool implicitGemm = false, bool fused = false)
    {
        if (fused) return (Math.Max(1, frames), 0, 0); // one launch over the whole batch, no workspace
        var g = layer.Geometry;
        long ohw = (long)g.OutH(h) * g.OutW(w);
        int bytes = layer.Integer ? 1 : 2;
        long columnBytes = implicitGemm ? 0 : ohw * layer.GemmK * bytes;
        long perFrame = Math.Max((columnBytes + PackedBytes(layer, 1, h, w)) / 4, (long)layer.GemmRows * ohw);
        int chunk = (int)Math.Clamp(budget / Math.Max(1, perFrame), 1, Math.Max(1, frames));
        chunk = Math.Max(timesteps, chunk / timesteps * timesteps);
        long rows = Rows(chunk * ohw);
        return (chunk, PackedFloats(layer, chunk, h, w) + (implicitGemm ? 0 : rows * layer.GemmK * bytes / 4), (long)layer.GemmRows * rows);
    }

    /// <summary>Bytes of <paramref name="frames"/> input frames packed pixel-major (none for a 1×1 layer: its columns are the packed spikes).</summary>
    private static long PackedBytes(GpuSpikeConv layer, int frames, int h, int w) =>
        layer.Pointwise ? 0 : (long)frames * h * w * layer.Cp * (layer.Integer ? 1 : 2);

    /// <summary>Floats the packed input of a chunk takes at the start of the column region, rounded up so the columns start 256-byte aligned.</summary>
    private static long PackedFloats(GpuSpikeConv layer, int chunk, int h, int w) => Align((PackedBytes(layer, chunk, h, w) + 3) / 4);

    /// <summary>Whether a view starts on a 16-byte boundary (its elements can be loaded and stored as 16-byte vectors).</summary>
    internal static bool Aligned16(ArrayView<float> view) => view.LoadEffectiveAddressAsPtr() % 16 == 0;

    /// <summary>GEMM columns (B rows, C's leading dimension) for <paramref name="valid"/> pixels: a multiple of 4, as cuBLAS's int8 kernels want.</summary>
    private static long Rows(long valid) => (valid + 3) / 4 * 4;

    /// <summary>
    /// The layer of input[frames, Cin, h, w] into output[frames, Cout, OH, OW], in chunks of <paramref name="chunk"/> frames;
    /// with <paramref name="timesteps"/> &gt; 0 (integer codes) the LIF over the result instead (IBackend.ConvLif, the LIF
    /// kernel's values bit for bit): output receives the spikes, chunks hold whole images (<paramref name="chunk"/> a multiple of T).
    /// With <paramref name="outputPacked"/> (the LIF fused: <see cref="HiddenPacked"/>) output receives the spikes as the next
    /// layer's packed int8 input ([frames, OH·OW, M rounded up to 16]); with <paramref name="inputPacked"/> input already holds
    /// this layer's packed spikes so ([frames, h·w, Cp], with room for 3 rows past them) and no chunk packs.
    /// </summary>
    public void Conv(GpuSpikeConv layer, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output,
        ArrayView<float> columns, ArrayView<float> sums, int chunk, int timesteps = 0, float threshold = 0f, bool inputPacked = false, bool outputPacked = false)
    {
        if (timesteps > 0 && (!layer.Integer || frames % timesteps != 0 || chunk % timesteps != 0 || chunk >= 1 << 21))
            throw new ArgumentException($"a fused LIF needs integer codes and whole images: {frames} frames and chunks of {chunk} for T = {timesteps}");
        if ((inputPacked && (!layer.Integer || layer.Copies != 1))
            || (outputPacked && (timesteps <= 0 || layer.Geometry.OutH(h) * layer.Geometry.OutW(w) % 4 != 0))
            || ((inputPacked || outputPacked) && InPlace(layer, frames, h, w, timesteps)))
            throw new ArgumentException("packed spikes in or out need an integer layer on the packed path: one copy in, a fused LIF out");
        if (Fused(layer, frames, h, w, timesteps))
        {
            RunFused(layer, input, frames, h, w, output, timesteps, threshold);
            return;
        }
        if (Tf32(layer, frames, h, w, timesteps))
        {
            RunTf32(layer, input, frames, h, w, output, timesteps, threshold);
            return;
        }
        int batch = timesteps > 0 ? frames / timesteps : frames, itemsPerChunk = timesteps > 0 ? chunk / timesteps : chunk;
        var g = layer.Geometry;
        int oh = g.OutH(h), ow = g.OutW(w), ohw = oh * ow, m = g.OutChannels;
        if (oh <= 0 || ow <= 0) throw new ArgumentException($"input {h}x{w} is smaller than the kernel {g.KernelH}x{g.KernelW} with padding");
        RequireViews(layer, input, output, frames, h, w);
        var bias = layer.Bias?.View ?? sums;
        var bn = layer.Bn?.View ?? sums;
        int bytes = layer.Integer ? 1 : 2;
        bool mma = Implicit(layer, h, w, timesteps > 0);
        long packedFloats = PackedFloats(layer, chunk, h, w);
        if (columns.Length < packedFloats + (mma ? 0 : Rows((long)chunk * ohw) * layer.GemmK * bytes / 4))
            throw new ArgumentException($"columns hold {columns.Length} floats, fewer than chunks of {chunk} frames need (Plan)", nameof(columns));
        // The packing and column kernels store 16-byte vectors (workspace allocations start 256-byte aligned).
        Debug.Assert(Aligned16(columns));
        var packed = layer.Pointwise ? default : columns.SubView(0, packedFloats);
        var colRegion = mma ? default : columns.SubView(packedFloats); // an implicit GEMM writes no columns
        for (int f0 = 0; f0 < batch; f0 += itemsPerChunk)
        {
            // Without LIF: frames f0 .. f0 + n. With: images f0 .. f0 + items, all T steps of each (n frames).
            int items = Math.Min(itemsPerChunk, batch - f0), n = timesteps > 0 ? items * timesteps : items;
            long valid = (long)n * ohw, rows = Rows(valid), outputs = (long)n * m * ohw;
            if ((!mma && rows * layer.GemmK > int.MaxValue / 2) || outputs > int.MaxValue || (long)layer.GemmRows * rows > int.MaxValue || (long)n * h * w * layer.Cp > int.MaxValue / 2)
                throw new QsvitException($"a spike convolution chunk of {n} frames is too large for one launch; use a smaller batch");
            var p = new SpikeGemmArgs
            {
                Frame0 = f0, Valid = (int)valid, Rows = (int)rows, K = layer.K, Kp = layer.Kp,
                InChannels = g.InChannels, H = h, W = w, OW = ow, OHW = ohw, KH = g.KernelH, KW = g.KernelW,
                StrideH = g.StrideH, StrideW = g.StrideW, PadH = g.PadH, PadW = g.PadW,
                // The epilogue combines Parts rows per output only when the pieces are stacked along M.
                M = m, Parts = layer.StackK ? 1 : layer.Parts, HasBias = layer.Bias is null ? 0 : 1, BnCount = layer.BnCount,
                Cp = layer.Cp, Words = layer.Cp * bytes / 8, Copies = layer.Copies,
                // A 1×1 layer packs straight into the columns (output pixel = input pixel, rows past the valid ones zero).
                PackRows = layer.Pointwise ? (int)rows : n * h * w, PackValid = layer.Pointwise ? (int)valid : n * h * w, PackPlane = h * w,
                PackCopies = layer.Pointwise ? layer.Copies : 1, PerThread = ohw % 4 == 0 && Aligned16(output) && Aligned16(sums) ? 4 : 1,
                Items = timesteps > 0 ? items : 0, InvItems = 1f / items, FrameStride = batch, Timesteps = timesteps, Threshold = threshold,
                OutWords = outputPacked ? SpikeGemmKernels.PaddedChannels(m) / 4 : 0,
            };
            // Threads of the epilogue: one per PerThread outputs, each over the T steps when the LIF is fused.
            int epilogueThreads = (int)((timesteps > 0 ? outputs / timesteps : outputs) / p.PerThread);
            int tiles = (p.PackRows + SpikeGemmKernels.Tile - 1) / SpikeGemmKernels.Tile * ((layer.Cp + SpikeGemmKernels.Tile - 1) / SpikeGemmKernels.Tile);
            var config = new KernelConfig(new Index1D(tiles), new Index1D(_group));
            // Packed input: this chunk's frames are a slice of it (a 1×1 layer's columns, rows past the valid ones unread in the
            // outputs); under a LIF the chunks' frames in their packing order (image f0's chunk starts at frame f0·T).
            long sliceAt = (timesteps > 0 ? (long)f0 * timesteps : f0) * h * w * layer.Cp / 4;
            var chunkPacked = inputPacked && !layer.Pointwise ? input.SubView(sliceAt) : packed;
            var chunkColumns = inputPacked && layer.Pointwise ? input.SubView(sliceAt) : colRegion;
            var pack = layer.Pointwise ? chunkColumns : chunkPacked;
            int pm = layer.GemmRows;
            if (!inputPacked)
            {
                if (layer.Integer) PackS8(input, pack.Cast<sbyte>(), p);
                else if (layer.RealInput) _packSplit(config, input, pack.Cast<ushort>(), p);
                else _packBf16(config, input, pack.Cast<ushort>(), p);
            }
            if (!layer.Pointwise && !mma) _columns((int)(rows * p.Words / 2), chunkPacked.Cast<long>(), chunkColumns.Cast<long>(), p);
            if (layer.Integer)
            {
                var cols = chunkColumns.Cast<sbyte>();
                var c = sums.Cast<int>();
                bool fused = false;
                if (mma && Pipelined(layer, timesteps > 0))
                {
                    // One digit: the epilogue (and the LIF) runs in the kernel and the sums never reach memory; on wgmma only
                    // under a LIF: without one the coalesced int32 sums and the separate epilogue measured faster than the
                    // in-kernel epilogue at 2 blocks a multiprocessor (1.0–1.4x per layer), and at 3 (the 55M 0.98x, thirteenth session).
                    bool wgmma = Wgmma(layer, timesteps > 0);
                    fused = p.Parts == 1 && _tiledFuses && (timesteps == 0 ? !wgmma : SpikePipelinedKernels.StepsFit(timesteps));
                    int kind = !fused ? SpikePipelinedKernels.SumsOut : timesteps > 0 ? SpikePipelinedKernels.SpikesOut : SpikePipelinedKernels.OutputsOut;
                    int groups = kind == SpikePipelinedKernels.SpikesOut ? SpikePipelinedKernels.Groups(pm, items * ohw, timesteps) : SpikePipelinedKernels.Groups(pm, (int)rows);
                    var weights = ((ArrayView<sbyte>)layer.S8!.View).Cast<int>();
                    var launch = new KernelConfig(new Index1D(groups), new Index1D(_pipelinedGroup));
                    long packedAddress = chunkPacked.LoadEffectiveAddressAsPtr().ToInt64(), weightAddress = weights.LoadEffectiveAddressAsPtr().ToInt64();
                    // The wgmma kernel's ring is dynamic shared memory (more than the 48 KB a static allocation may have).
                    if (wgmma)
                        _wgmmaConv!(new KernelConfig(launch.GridDim, launch.GroupDim, SharedMemoryConfig.RequestDynamic<Words4>(SpikePipelinedKernels.WgmmaSharedBytes / 16)),
                            chunkPacked.Cast<int>(), weights, c, output, layer.Scales!.View, bias, bn, p, pm, kind, packedAddress, weightAddress);
                    else
                        _pipelinedConv!(launch, chunkPacked.Cast<int>(), weights, c, output, layer.Scales!.View, bias, bn, p, pm, kind, packedAddress, weightAddress);
                }
                else if (mma && Tiled(layer, timesteps > 0))
                {
                    // One digit without a LIF: the tiled kernel applies the epilogue itself and the sums never reach memory.
                    fused = p.Parts == 1 && timesteps == 0 && _tiledFuses;
                    int rowWarps = _tiledRowWarps != 0 ? _tiledRowWarps : GpuSpikeConv.TiledRowWarps(pm);
                    _tiledConv!(new KernelConfig(new Index1D(SpikeTiledKernels.Groups(pm, (int)rows, rowWarps)), new Index1D(_tiledGroup)), chunkPacked.Cast<int>(),
                        ((ArrayView<sbyte>)layer.S8!.View).Cast<int>(), c, output, layer.Scales!.View, bias, bn, p, pm, rowWarps, fused ? 1 : 0);
                }
                else if (mma)
                {
                    long groups = (SpikeMmaKernels.Threads(pm, (int)rows) + _mmaGroup - 1) / _mmaGroup;
                    _implicitConv!(new KernelConfig(new Index1D((int)groups), new Index1D(_mmaGroup)), chunkPacked.Cast<int>(),
                        ((ArrayView<sbyte>)layer.S8!.View).Cast<int>(), c, p, pm);
                }
                else GemmS8(layer, cols, c, (int)rows);
                // A fused epilogue wrote the outputs (or the LIF's spikes) already.
                if (!fused && outputPacked) _epilogueIntLifPacked((int)SpikeGemmKernels.PackedLifThreads(p), c, output.Cast<int>(), layer.Scales!.View, bias, bn, p);
                else if (!fused && timesteps > 0) _epilogueIntLif(epilogueThreads, c, output, layer.Scales!.View, bias, bn, p);
                else if (!fused) _epilogueInt(epilogueThreads, c, output, layer.Scales!.View, bias, bn, p);
            }
            else
            {
                GemmBf16(layer, colRegion.Cast<ushort>(), sums, (int)rows);
                if (layer.RealInput) _epilogueScaled(epilogueThreads, sums, output, layer.Scales!.View, bias, bn, p);
                else _epilogueSplit(epilogueThreads, sums, output, bias, bn, p);
            }
        }
    }

    /// <summary>
    /// Whether conv → LIF → conv (<paramref name="first"/>, <paramref name="second"/>: IBackend.ConvLifConv without a
    /// recorder, run as its two ops) hands the hidden spikes over packed (<see cref="Conv"/>'s outputPacked and inputPacked):
    /// two integer spike layers that chain at the same map size, the first's LIF in the separate epilogue
    /// (<see cref="SpikeGemmKernels.EpilogueIntLifPacked{TFma}"/>) or in a pipelined GEMM kernel's (its spikes staged as bytes
    /// and stored as 16-byte vectors), not a fused or TF32 1×1, the second on the packed path with one int8 copy of its
    /// input, maps of whole quads of pixels. The hidden spikes are then written once as int8 in the second layer's layout,
    /// never as fp32 maps, and the second layer packs nothing; its outputs are the two ops' bit for bit. Measured on an H200
    /// (BENCHMARKS.md, twelfth session): the 55M 885.6 → 914.2 images/s with the separate epilogue's, 899.1 → 920.5 with the
    /// pipelined kernels' too.
    /// </summary>
    public bool HiddenPacked(GpuSpikeConv first, GpuSpikeConv second, int frames, int h, int w, int timesteps) =>
        first.Integer && second.Integer && !first.RealInput && !second.RealInput && second.Copies == 1
        && first.Geometry.OutChannels == second.Geometry.InChannels && first.Geometry.OutH(h) == h && first.Geometry.OutW(w) == w
        && timesteps > 0 && frames % timesteps == 0 && frames < 1 << 21 && h * w % 4 == 0
        && !InPlace(first, frames, h, w, timesteps) && !InPlace(second, frames, h, w, 0);

    /// <summary>
    /// Whether a LIF can hand its spikes to <paramref name="layer"/> as its packed input (<see cref="LifHandover"/>), for a call
    /// on <paramref name="frames"/> frames of h × w under a fused LIF of <paramref name="timesteps"/> steps (0 without): integer
    /// codes on the packed path (<see cref="Conv"/> neither fused nor TF32 in place) with one int8 copy of the input, maps
    /// of whole quads of pixels; on an accelerator that launches the kernel's groups.
    /// </summary>
    public bool TakesHandover(GpuSpikeConv layer, int frames, int h, int w, int timesteps) =>
        _lifHandover is not null && layer.Integer && !layer.RealInput && layer.Copies == 1 && h * w % 4 == 0 && !InPlace(layer, frames, h, w, timesteps);

    /// <summary>
    /// The LIF over x [frames, C, h·w] (time-first frames of <paramref name="timesteps"/> steps; with <paramref name="add"/>,
    /// x += y first, the sums stored into x) writing its spikes into <paramref name="packed"/> as <paramref name="form"/>'s
    /// packed int8 input, which that layer's <see cref="Conv"/> then reads with inputPacked: the bytes its chunks would pack
    /// from the LIF's fp32 spikes, which are never written (<see cref="SpikeGemmKernels.LifHandover"/>). x and y are the
    /// LIF's, bit for bit.
    /// </summary>
    public void LifHandover(ArrayView<float> x, ArrayView<float> y, bool add, ArrayView<float> packed, SpikeHandover form, int timesteps, float threshold)
    {
        var layer = form.Layer;
        int c = layer.Geometry.InChannels, hw = form.Height * form.Width;
        long length = (long)form.Frames * c * hw;
        if (timesteps <= 0 || form.Frames % timesteps != 0 || hw % 4 != 0 || !TakesHandover(layer, form.Frames, form.Height, form.Width, form.ChunkImages > 0 ? timesteps : 0))
            throw new ArgumentException($"spikes of {form.Frames} frames of {form.Height}x{form.Width} cannot be handed over packed to this layer", nameof(form));
        if (x.Length < length || (add && y.Length < length)) throw new ArgumentException($"the LIF's input holds fewer than {length} values", nameof(x));
        if (!PackedFits(layer, form.Frames, form.Height, form.Width, packed.Length))
            throw new ArgumentException($"{packed.Length} floats cannot hold the packed spikes of {form.Frames} frames", nameof(packed));
        if (!Aligned16(x) || (add && !Aligned16(y)) || !Aligned16(packed)) throw new ArgumentException("the LIF's views must start 16-byte aligned", nameof(x));
        int batch = form.Frames / timesteps;
        var a = new HandoverArgs
        {
            Channels = c, Words = layer.Cp / 4, Quads = hw / 4, Batch = batch, Timesteps = timesteps,
            ChunkImages = form.ChunkImages > 0 ? form.ChunkImages : batch, Add = add ? 1 : 0, Threshold = threshold,
        };
        long groups = SpikeGemmKernels.HandoverGroups(a);
        if (groups > int.MaxValue || length > int.MaxValue) throw new QsvitException($"a LIF over {length} values is too large for one launch; use a smaller batch");
        _lifHandover!(new KernelConfig(new Index1D((int)groups), new Index1D(SpikeGemmKernels.HandoverGroup)), x, add ? y : x, packed.Cast<int>(), a);
    }

    /// <summary>
    /// Whether <paramref name="floats"/> of the fp32 spikes buffer hold <paramref name="second"/>'s packed input for
    /// <paramref name="frames"/> frames of h × w ([frames, h·w, Cp] bytes and 3 rows past them, which a 1×1 layer's columns
    /// read): always unless the hidden layer is narrower than a quarter of its 16-channel padding (fewer than 4 channels).
    /// </summary>
    public static bool PackedFits(GpuSpikeConv second, int frames, int h, int w, long floats) =>
        ((long)frames * h * w + 3) * second.Cp <= 4 * floats;

    /// <summary>
    /// Spikes packed pixel-major into int8, dst[PackRows, PackCopies, Cp] (16-byte aligned): four packed pixels a thread where
    /// <see cref="SpikeGemmKernels.PacksQuads"/> holds, else one (the same bytes).
    /// </summary>
    internal void PackS8(ArrayView<float> x, ArrayView<sbyte> dst, SpikeGemmArgs p)
    {
        if (SpikeGemmKernels.PacksQuads(p, Aligned16(x))) _packS8Quads((int)SpikeGemmKernels.QuadThreads(p), x, dst, p);
        else _packS8(p.PackRows * (p.Cp / SpikeGemmKernels.ChannelAlign), x, dst, p);
    }

    /// <summary>sums[GemmRows, rows] = the layer's int8 codes · columnsᵀ (int32, exact): cuBLAS's int8 GEMM, or the ILGPU kernel without cuBLAS.</summary>
    private void GemmS8(GpuSpikeConv layer, ArrayView<sbyte> columns, ArrayView<int> sums, int rows)
    {
        if (_blas is not null)
            _blas.GemmInt8(new RowMajorGemm(false, true, layer.GemmRows, rows, layer.GemmK, layer.GemmK, layer.GemmK, rows), layer.S8!.NativePtr,
                columns.LoadEffectiveAddressAsPtr(), sums.LoadEffectiveAddressAsPtr());
        else _gemmS8((int)((long)layer.GemmRows * rows), layer.S8!.View, columns, sums, rows, layer.GemmK);
    }

    /// <summary>sums[GemmRows, rows] = the layer's bf16 weights · columnsᵀ (fp32 sums): cuBLAS's bf16 GEMM, or the ILGPU kernel without cuBLAS.</summary>
    private void GemmBf16(GpuSpikeConv layer, ArrayView<ushort> columns, ArrayView<float> sums, int rows)
    {
        if (_blas is not null)
            _blas.GemmEx(new RowMajorGemm(false, true, layer.GemmRows, rows, layer.GemmK, layer.GemmK, layer.GemmK, rows), 1, layer.Bf16!.NativePtr,
                CudaDataType.R16BF, columns.LoadEffectiveAddressAsPtr(), CudaDataType.R16BF, 0, sums.LoadEffectiveAddressAsPtr(), CudaDataType.R32F,
                CublasComputeType.F32);
        else _gemmBf16((int)((long)layer.GemmRows * rows), layer.Bf16!.View, columns, sums, rows, layer.GemmK);
    }

    /// <summary>
    /// <see cref="Conv"/> of a layer that <see cref="Tf32"/> takes: out[f] = A · in[f] for every frame f (A the codes as fp32
    /// [M, K], in[f] the frame's [K, h·w] spikes, out[f] its [M, h·w] outputs), exact sums in fp32, then the epilogue in place.
    /// </summary>
    private void RunTf32(GpuSpikeConv layer, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output, int timesteps, float threshold)
    {
        var g = layer.Geometry;
        int hw = h * w, m = g.OutChannels, k = g.InChannels;
        RequireViews(layer, input, output, frames, h, w);
        var shape = new RowMajorGemm(false, false, m, hw, k, k, hw, hw);
        _blas!.GemmStridedBatchedEx(shape, 1, layer.F32!.NativePtr, CudaDataType.R32F, 0, input.LoadEffectiveAddressAsPtr(), CudaDataType.R32F,
            (long)k * hw, 0, output.LoadEffectiveAddressAsPtr(), CudaDataType.R32F, (long)m * hw, frames, CublasComputeType.F32FastTF32);
        int items = timesteps > 0 ? frames / timesteps : frames;
        var p = new SpikeGemmArgs
        {
            M = m, OHW = hw, HasBias = layer.Bias is null ? 0 : 1, BnCount = layer.BnCount,
            PerThread = hw % 4 == 0 && Aligned16(output) ? 4 : 1, Items = items, Timesteps = timesteps, Threshold = threshold,
        };
        var unused = layer.Scales!.View; // stands in for an absent bias or BN table (never read)
        long outputs = (long)frames * m * hw;
        int threads = (int)((timesteps > 0 ? outputs / timesteps : outputs) / p.PerThread);
        if (timesteps > 0) _epilogueInPlaceLif(threads, output, layer.Scales.View, layer.Bias?.View ?? unused, layer.Bn?.View ?? unused, p);
        else _epilogueInPlace(threads, output, layer.Scales.View, layer.Bias?.View ?? unused, layer.Bn?.View ?? unused, p);
    }

    /// <summary>
    /// <see cref="Conv"/> of a layer that <see cref="Fused"/> takes: one launch over all frames, input read in place, output
    /// (or with <paramref name="timesteps"/> &gt; 0 the LIF's spikes) written once; no columns or sums. Integer codes run the
    /// int8 kernel, codes over a real-valued input the bf16 one (<see cref="PointwiseMmaKernels.RealConv{TFma}"/>).
    /// </summary>
    private void RunFused(GpuSpikeConv layer, ArrayView<float> input, int frames, int h, int w, ArrayView<float> output, int timesteps, float threshold)
    {
        var g = layer.Geometry;
        int hw = h * w, steps = Math.Max(1, timesteps);
        RequireViews(layer, input, output, frames, h, w);
        var p = new PointwiseArgs
        {
            InChannels = g.InChannels, Cp = layer.Cp, M = g.OutChannels, Parts = layer.Parts,
            HW = hw, Steps = steps, Batch = frames / steps, Pixels = frames / steps * hw,
            Lif = timesteps > 0 ? 1 : 0, Threshold = threshold, HasBias = layer.Bias is null ? 0 : 1, BnCount = layer.BnCount,
            Vec = hw % 4 == 0 ? 1 : 0, RowWarps = PointwiseMmaKernels.RowWarpsFor(g.OutChannels),
        };
        p.ColumnWarps = 4 / p.RowWarps;
        if (layer.RealInput)
        {
            p.RealChunk = _wholeStages ? PointwiseMmaKernels.RealChunkFor(p.ColumnWarps, layer.Cp) : PointwiseMmaKernels.RealChunkChannels;
            p.Whole = _wholeStages && layer.Cp <= p.RealChunk ? 1 : 0;
        }
        else p.Whole = _wholeStages && PointwiseMmaKernels.WholeStage(layer.Parts, layer.Cp) ? 1 : 0;
        long groups = PointwiseMmaKernels.Groups(p);
        if (groups > int.MaxValue) throw new QsvitException($"a 1×1 convolution of {frames} frames is too large for one launch; use a smaller batch");
        var unused = layer.Scales!.View; // stands in for an absent bias or BN table (never read)
        var config = new KernelConfig(new Index1D((int)groups), new Index1D(PointwiseMmaKernels.GroupSize));
        if (layer.RealInput)
        {
            _pointwiseReal!(config, input, layer.Bf16!.View, output, layer.Scales!.View, layer.Bias?.View ?? unused, layer.Bn?.View ?? unused, p);
            return;
        }
        _pointwise!(config, input, ((ArrayView<sbyte>)layer.S8!.View).Cast<int>(), output,
            layer.Scales!.View, layer.Bias?.View ?? unused, layer.Bn?.View ?? unused, p);
    }
}
