using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// The real-valued-input counterpart of the fused pointwise kernel (issue 13): a 1×1 conv of integer codes over an fp32
/// input (<see cref="GpuSpikeConv.RealInput"/>: RepConv's last 1×1, pwconv2) in one launch, replacing the input's split
/// into packed bf16 columns (<see cref="SpikeGemmKernels.PackSplit"/>), cuBLAS's bf16 GEMM and
/// <see cref="SpikeGemmKernels.EpilogueScaled{TFma}"/>. The group, warp tiles and epilogue are the integer kernel's; per
/// stage of <see cref="PointwiseArgs.RealChunk"/> channels (as many as 30 KiB hold: <see cref="RealChunkFor"/>) the group
/// stages its columns once as the input's three bf16 pieces (lo, mid, hi: <see cref="SpikeGemmKernels.SplitBf16"/>,
/// exactly <see cref="SpikeGemmKernels.PackSplit"/>'s split), and per 32-channel step each warp runs
/// <c>mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32</c> with the codes as bf16 (exact: |q − z| ≤ 256) against each piece,
/// smallest first, into two sets of fp32 accumulators (hi; lo and mid): the same sums in the same order for every stage
/// size. Where the whole input fits one stage (<see cref="PointwiseArgs.Whole"/>) all staging loads are issued before
/// the accumulators are zeroed.
/// <para>
/// Numerics: every product of a code (≤ 9 significant bits) and a piece (8) is exact, as on the cuBLAS path; only the
/// summation order differs. Each lane keeps two sets of fp32 accumulators: the hi piece's products in one, the lo and mid
/// pieces' (at most 2^-8 of the value) in the other, combined as hi + (mid + lo) before the epilogue, as cuBLAS's GEMM
/// over [lo | mid | hi] stacked along K sums the small pieces first. So, as there, about K additions round at the sum's
/// magnitude: |error| ≲ K·2^-23·Σ|q·x| (tensor cores truncate inside an mma, hence not 2^-24), today's path's bound,
/// before the epilogue's one multiply by the scale and its FMAs; one set for all three pieces would round 3·K times at
/// that magnitude. Tests hold the kernel to 1e-5 of Σ|w·x| against today's path and the CPU's fp32 conv.
/// </para>
/// <para>
/// Fragments (m16n8k16, bf16): lane (group g, thread t) holds A rows g, g + 8 and B column g at logical k 2t, 2t + 1
/// (register 0) and 2t + 8, 2t + 9 (register 1). Lane t takes channels 8t .. 8t + 7 of a 32-channel step, one 16-byte
/// load of A's row (global) and of each staged column piece (shared): X, Y are the first k16 step (channels 8t .. 8t + 3),
/// Z, W the second. The C fragment and so the lane's columns are the integer kernel's (warp columns 8t .. 8t + 7).
/// </para>
/// </summary>
internal static partial class PointwiseMmaKernels
{
    /// <summary>Input channels per mma step of the real-input kernel (two k16 steps); stages hold a multiple of it.</summary>
    public const int RealChunkChannels = 32;

    /// <summary>
    /// Shared words the three pieces take (30 KiB): 128 columns × one 32-channel step, 64 × 64 or 32 × 128 channels
    /// (<see cref="RealChunkFor"/>), each column padded by 4 words.
    /// </summary>
    private const int RealStageWords = GpuSpikeConv.InputPieces * 4 * 32 * (RealChunkChannels / 2 + 4);

    /// <summary>
    /// Input channels per stage of the real-input kernel for <paramref name="columnWarps"/> warps along the columns: as many
    /// as the stage holds (128 / ColumnWarps), but no more than <paramref name="cp"/> rounded up to a step. Measured on an
    /// H200 only together with <see cref="WholeStage"/> and the depthwise plane kernel (BENCHMARKS.md, tenth session,
    /// repconv4: CIFAR's fused real 1×1s 0.90–0.99x in the profile); alone under Nsight Compute (caches flushed) the
    /// 128→128 at 4×4 80.7 → 81.5 µs, so the 32-channel stages' serial load rounds are not what bounds it.
    /// </summary>
    public static int RealChunkFor(int columnWarps, int cp) => Math.Min(4 / columnWarps * RealChunkChannels, (cp + RealChunkChannels - 1) / RealChunkChannels * RealChunkChannels);

    /// <summary>
    /// A staged column piece's length in words (chunk / 2 bf16 pairs), padded by 4 so the 16-byte fragment loads of a warp
    /// hit distinct banks (columns 4 apart are 16 banks apart for every chunk that is a multiple of 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RealColumnWords(PointwiseArgs p) => p.RealChunk / 2 + 4;

    /// <summary>Words of one staged piece: the group's 32·ColumnWarps columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int PieceWords(PointwiseArgs p) => 32 * p.ColumnWarps * RealColumnWords(p);

    public static void RealConv<TFma>(ArrayView<float> input, ArrayView<ushort> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p) where TFma : struct, IFma
    {
        var stage = SharedMemory.Allocate<Words4>(RealStageWords / 4);
        bool active = Place(p, out int r0, out int n0, out int warpColumn, out int group, out int t);
        if (CudaAsm.IsSupported) RealMmaTile<TFma>(input, weights, output, scales, bias, bn, p, stage, r0, n0, warpColumn, active, group, t);
        else RealScalarTile<TFma>(input, weights, output, scales, bias, bn, p, stage, r0, n0, warpColumn, active, group, t);
    }

    /// <summary>
    /// The group's columns (pixels n0 ..) at channels c0 .. c0 + <see cref="PointwiseArgs.RealChunk"/> into shared memory as
    /// the three bf16 pieces: word [piece · PieceWords + column · RealColumnWords + w] holds channels c0 + 2w (low half) and
    /// c0 + 2w + 1 of that piece (0 lo, 1 mid, 2 hi). One work item is four neighbouring pixels × two channels (two
    /// 16-byte loads where <see cref="PointwiseArgs.Vec"/>). The whole chunk is staged, zeros past the channels and pixels,
    /// so no stale bits (NaN patterns) meet the zero codes.
    /// </summary>
    private static void RealStage(ArrayView<float> x, PointwiseArgs p, ArrayView<int> stage, int n0, int c0)
    {
        int items = p.RealChunk / 2 * (32 * p.ColumnWarps / 4);
        for (int it = Group.IdxX; it < items; it += Group.DimX)
        {
            int at = RealStageItem(x, p, n0, c0, it, out var u, out var v);
            RealStoreItem(stage, p, at, u, v);
        }
    }

    /// <summary>
    /// <see cref="RealStage"/> with four work items per thread and round, all eight 16-byte loads issued before any piece is
    /// stored: for <see cref="PointwiseArgs.Whole"/> stages, where no accumulator is live yet.
    /// </summary>
    private static void RealStageFour(ArrayView<float> x, PointwiseArgs p, ArrayView<int> stage, int n0, int c0)
    {
        int items = p.RealChunk / 2 * (32 * p.ColumnWarps / 4), d = Group.DimX;
        for (int it = Group.IdxX; it < items; it += 4 * d)
        {
            // Past the items: item it again (the same pieces to the same place).
            int i1 = it + d < items ? it + d : it, i2 = it + 2 * d < items ? it + 2 * d : it, i3 = it + 3 * d < items ? it + 3 * d : it;
            int a0 = RealStageItem(x, p, n0, c0, it, out var u0, out var v0);
            int a1 = RealStageItem(x, p, n0, c0, i1, out var u1, out var v1);
            int a2 = RealStageItem(x, p, n0, c0, i2, out var u2, out var v2);
            int a3 = RealStageItem(x, p, n0, c0, i3, out var u3, out var v3);
            RealStoreItem(stage, p, a0, u0, v0);
            RealStoreItem(stage, p, a1, u1, v1);
            RealStoreItem(stage, p, a2, u2, v2);
            RealStoreItem(stage, p, a3, u3, v3);
        }
    }

    /// <summary>
    /// Work item <paramref name="it"/> of <see cref="RealStage"/>: channels c, c + 1 (<paramref name="u"/>, <paramref name="v"/>)
    /// of four neighbouring pixels, and the first pixel's stage word. Lanes 2k, 2k + 1: one channel pair, neighbouring pixel
    /// groups (one 32-byte sector of each plane); the warp's 16 pairs × 2 groups store to 32 distinct banks (columns 4 apart
    /// are 16 banks apart).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RealStageItem(ArrayView<float> x, PointwiseArgs p, int n0, int c0, int it, out Floats4 u, out Floats4 v)
    {
        int pairs = p.RealChunk / 2;
        int pg = (it & 1) + 2 * (it / (2 * pairs)), pair = (it >> 1) % pairs, q0 = n0 + 4 * pg, c = c0 + 2 * pair;
        if (p.Vec != 0)
        {
            var quads = x.Cast<Floats4>();
            int b = PixelBase(p, q0, 0);
            u = Load4(quads, p, b, c);
            v = Load4(quads, p, b, c + 1);
        }
        else
        {
            int b0 = PixelBase(p, q0, 0), b1 = PixelBase(p, q0 + 1, 0), b2 = PixelBase(p, q0 + 2, 0), b3 = PixelBase(p, q0 + 3, 0);
            u = new Floats4 { X = Value(x, p, b0, c), Y = Value(x, p, b1, c), Z = Value(x, p, b2, c), W = Value(x, p, b3, c) };
            v = new Floats4 { X = Value(x, p, b0, c + 1), Y = Value(x, p, b1, c + 1), Z = Value(x, p, b2, c + 1), W = Value(x, p, b3, c + 1) };
        }
        return 4 * pg * RealColumnWords(p) + pair;
    }

    /// <summary>The pieces of a <see cref="RealStage"/> item's four pixels (neighbouring columns).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RealStoreItem(ArrayView<int> stage, PointwiseArgs p, int at, Floats4 u, Floats4 v)
    {
        int cw = RealColumnWords(p), pw = PieceWords(p);
        StagePair(stage, pw, at, u.X, v.X);
        StagePair(stage, pw, at + cw, u.Y, v.Y);
        StagePair(stage, pw, at + 2 * cw, u.Z, v.Z);
        StagePair(stage, pw, at + 3 * cw, u.W, v.W);
    }

    /// <summary>Channel c at pixel base b, zero past the pixels or channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Value(ArrayView<float> x, PointwiseArgs p, int b, int c) => b >= 0 && c < p.InChannels ? x[(long)b + (long)c * p.HW] : 0f;

    /// <summary>The pieces of two channels' values u (low half) and v of one column: words at, at + pieceWords (mid), at + 2·pieceWords (hi).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StagePair(ArrayView<int> stage, int pieceWords, int at, float u, float v)
    {
        uint uHi = SpikeGemmKernels.SplitBf16(u, out uint uMid, out uint uLo);
        uint vHi = SpikeGemmKernels.SplitBf16(v, out uint vMid, out uint vLo);
        stage[at] = (int)(uLo | vLo << 16);
        stage[at + pieceWords] = (int)(uMid | vMid << 16);
        stage[at + 2 * pieceWords] = (int)(uHi | vHi << 16);
    }

    /// <summary>Index of A's row r in 16-byte quads of bf16 codes (the first of the layer's three identical copies, rows 3·Cp apart), or −1 past the output channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RealRowQuad(PointwiseArgs p, int r) => r < p.M ? r * GpuSpikeConv.InputPieces * (p.Cp / 8) : -1;

    /// <summary>The tensor-core body (see the remarks above for the fragments and the two sets of accumulators).</summary>
    private static void RealMmaTile<TFma>(ArrayView<float> input, ArrayView<ushort> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, ArrayView<Words4> stage, int r0, int n0, int warpColumn, bool active,
        int group, int t) where TFma : struct, IFma
    {
        var weightQuads = weights.Cast<Words4>();
        var stageWords = stage.Cast<int>();
        int quads = p.Cp / 8, columnQuads = RealColumnWords(p) / 4, pieceQuads = PieceWords(p) / 4;
        // This lane's B columns (warp column 4·group + j) in the lo piece, in quads; the next pieces are pieceQuads further.
        int s0 = (warpColumn + 4 * group) * columnQuads + t;
        int w0 = RealRowQuad(p, r0 + group), w1 = RealRowQuad(p, r0 + group + 8);
        int w2 = RealRowQuad(p, r0 + group + 16), w3 = RealRowQuad(p, r0 + group + 24);
        // pf: the hi piece's sums; pl: the lo and mid pieces' (at most 2^-8 of pf's magnitude, so their rounding is negligible).
        CudaAsm.Emit(".reg .f32 pf<32>; .reg .f32 pl<32>;");
        if (p.Whole != 0)
        {
            // The whole input in one stage: every staging load in flight at once, the accumulators live only from the first mma.
            RealStageFour(input, p, stageWords, n0, 0);
            Group.Barrier();
            if (!active) return;
            ClearRealAccumulators();
            for (int k = 0; k < p.Cp; k += RealChunkChannels)
                RealStep(weightQuads, stage, p, w0, w1, w2, w3, k / 8 + t, s0 + k / 8, columnQuads, pieceQuads);
        }
        else
        {
            ClearRealAccumulators();
            for (int c0 = 0; c0 < p.Cp; c0 += p.RealChunk)
            {
                Group.Barrier(); // the previous chunk's fragments are read
                RealStage(input, p, stageWords, n0, c0);
                Group.Barrier();
                if (!active) continue;
                for (int k = 0; k < p.RealChunk && c0 + k < p.Cp; k += RealChunkChannels)
                    RealStep(weightQuads, stage, p, w0, w1, w2, w3, (c0 + k) / 8 + t, s0 + k / 8, columnQuads, pieceQuads);
            }
        }
        if (!active) return;
        // pf/pl[4(4m + j) + i] as the integer kernel's pq (its C fragment layout is the same).
        CudaAsm.Emit("mov.b32 %0, pf0;", out int ha0); CudaAsm.Emit("mov.b32 %0, pf1;", out int ha4);
        CudaAsm.Emit("mov.b32 %0, pf2;", out int hb0); CudaAsm.Emit("mov.b32 %0, pf3;", out int hb4);
        CudaAsm.Emit("mov.b32 %0, pf4;", out int ha1); CudaAsm.Emit("mov.b32 %0, pf5;", out int ha5);
        CudaAsm.Emit("mov.b32 %0, pf6;", out int hb1); CudaAsm.Emit("mov.b32 %0, pf7;", out int hb5);
        CudaAsm.Emit("mov.b32 %0, pf8;", out int ha2); CudaAsm.Emit("mov.b32 %0, pf9;", out int ha6);
        CudaAsm.Emit("mov.b32 %0, pf10;", out int hb2); CudaAsm.Emit("mov.b32 %0, pf11;", out int hb6);
        CudaAsm.Emit("mov.b32 %0, pf12;", out int ha3); CudaAsm.Emit("mov.b32 %0, pf13;", out int ha7);
        CudaAsm.Emit("mov.b32 %0, pf14;", out int hb3); CudaAsm.Emit("mov.b32 %0, pf15;", out int hb7);
        CudaAsm.Emit("mov.b32 %0, pf16;", out int hc0); CudaAsm.Emit("mov.b32 %0, pf17;", out int hc4);
        CudaAsm.Emit("mov.b32 %0, pf18;", out int hd0); CudaAsm.Emit("mov.b32 %0, pf19;", out int hd4);
        CudaAsm.Emit("mov.b32 %0, pf20;", out int hc1); CudaAsm.Emit("mov.b32 %0, pf21;", out int hc5);
        CudaAsm.Emit("mov.b32 %0, pf22;", out int hd1); CudaAsm.Emit("mov.b32 %0, pf23;", out int hd5);
        CudaAsm.Emit("mov.b32 %0, pf24;", out int hc2); CudaAsm.Emit("mov.b32 %0, pf25;", out int hc6);
        CudaAsm.Emit("mov.b32 %0, pf26;", out int hd2); CudaAsm.Emit("mov.b32 %0, pf27;", out int hd6);
        CudaAsm.Emit("mov.b32 %0, pf28;", out int hc3); CudaAsm.Emit("mov.b32 %0, pf29;", out int hc7);
        CudaAsm.Emit("mov.b32 %0, pf30;", out int hd3); CudaAsm.Emit("mov.b32 %0, pf31;", out int hd7);
        CudaAsm.Emit("mov.b32 %0, pl0;", out int la0); CudaAsm.Emit("mov.b32 %0, pl1;", out int la4);
        CudaAsm.Emit("mov.b32 %0, pl2;", out int lb0); CudaAsm.Emit("mov.b32 %0, pl3;", out int lb4);
        CudaAsm.Emit("mov.b32 %0, pl4;", out int la1); CudaAsm.Emit("mov.b32 %0, pl5;", out int la5);
        CudaAsm.Emit("mov.b32 %0, pl6;", out int lb1); CudaAsm.Emit("mov.b32 %0, pl7;", out int lb5);
        CudaAsm.Emit("mov.b32 %0, pl8;", out int la2); CudaAsm.Emit("mov.b32 %0, pl9;", out int la6);
        CudaAsm.Emit("mov.b32 %0, pl10;", out int lb2); CudaAsm.Emit("mov.b32 %0, pl11;", out int lb6);
        CudaAsm.Emit("mov.b32 %0, pl12;", out int la3); CudaAsm.Emit("mov.b32 %0, pl13;", out int la7);
        CudaAsm.Emit("mov.b32 %0, pl14;", out int lb3); CudaAsm.Emit("mov.b32 %0, pl15;", out int lb7);
        CudaAsm.Emit("mov.b32 %0, pl16;", out int lc0); CudaAsm.Emit("mov.b32 %0, pl17;", out int lc4);
        CudaAsm.Emit("mov.b32 %0, pl18;", out int ld0); CudaAsm.Emit("mov.b32 %0, pl19;", out int ld4);
        CudaAsm.Emit("mov.b32 %0, pl20;", out int lc1); CudaAsm.Emit("mov.b32 %0, pl21;", out int lc5);
        CudaAsm.Emit("mov.b32 %0, pl22;", out int ld1); CudaAsm.Emit("mov.b32 %0, pl23;", out int ld5);
        CudaAsm.Emit("mov.b32 %0, pl24;", out int lc2); CudaAsm.Emit("mov.b32 %0, pl25;", out int lc6);
        CudaAsm.Emit("mov.b32 %0, pl26;", out int ld2); CudaAsm.Emit("mov.b32 %0, pl27;", out int ld6);
        CudaAsm.Emit("mov.b32 %0, pl28;", out int lc3); CudaAsm.Emit("mov.b32 %0, pl29;", out int lc7);
        CudaAsm.Emit("mov.b32 %0, pl30;", out int ld3); CudaAsm.Emit("mov.b32 %0, pl31;", out int ld7);
        Epilogue<TFma>(output, scales, bias, bn, p, r0 + group, n0 + warpColumn + 8 * t,
            Sum(ha0, la0), Sum(ha1, la1), Sum(ha2, la2), Sum(ha3, la3), Sum(ha4, la4), Sum(ha5, la5), Sum(ha6, la6), Sum(ha7, la7),
            Sum(hb0, lb0), Sum(hb1, lb1), Sum(hb2, lb2), Sum(hb3, lb3), Sum(hb4, lb4), Sum(hb5, lb5), Sum(hb6, lb6), Sum(hb7, lb7),
            Sum(hc0, lc0), Sum(hc1, lc1), Sum(hc2, lc2), Sum(hc3, lc3), Sum(hc4, lc4), Sum(hc5, lc5), Sum(hc6, lc6), Sum(hc7, lc7),
            Sum(hd0, ld0), Sum(hd1, ld1), Sum(hd2, ld2), Sum(hd3, ld3), Sum(hd4, ld4), Sum(hd5, ld5), Sum(hd6, ld6), Sum(hd7, ld7));
    }

    /// <summary>Zeroes both sets of accumulators (declared once by the kernel body).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ClearRealAccumulators() =>
        CudaAsm.Emit("mov.f32 pf0, 0f00000000; mov.f32 pl0, 0f00000000; mov.f32 pf1, 0f00000000; mov.f32 pl1, 0f00000000; mov.f32 pf2, 0f00000000; mov.f32 pl2, 0f00000000; mov.f32 pf3, 0f00000000; mov.f32 pl3, 0f00000000; mov.f32 pf4, 0f00000000; mov.f32 pl4, 0f00000000; mov.f32 pf5, 0f00000000; mov.f32 pl5, 0f00000000; mov.f32 pf6, 0f00000000; mov.f32 pl6, 0f00000000; mov.f32 pf7, 0f00000000; mov.f32 pl7, 0f00000000; mov.f32 pf8, 0f00000000; mov.f32 pl8, 0f00000000; mov.f32 pf9, 0f00000000; mov.f32 pl9, 0f00000000; mov.f32 pf10, 0f00000000; mov.f32 pl10, 0f00000000; mov.f32 pf11, 0f00000000; mov.f32 pl11, 0f00000000; mov.f32 pf12, 0f00000000; mov.f32 pl12, 0f00000000; mov.f32 pf13, 0f00000000; mov.f32 pl13, 0f00000000; mov.f32 pf14, 0f00000000; mov.f32 pl14, 0f00000000; mov.f32 pf15, 0f00000000; mov.f32 pl15, 0f00000000; mov.f32 pf16, 0f00000000; mov.f32 pl16, 0f00000000; mov.f32 pf17, 0f00000000; mov.f32 pl17, 0f00000000; mov.f32 pf18, 0f00000000; mov.f32 pl18, 0f00000000; mov.f32 pf19, 0f00000000; mov.f32 pl19, 0f00000000; mov.f32 pf20, 0f00000000; mov.f32 pl20, 0f00000000; mov.f32 pf21, 0f00000000; mov.f32 pl21, 0f00000000; mov.f32 pf22, 0f00000000; mov.f32 pl22, 0f00000000; mov.f32 pf23, 0f00000000; mov.f32 pl23, 0f00000000; mov.f32 pf24, 0f00000000; mov.f32 pl24, 0f00000000; mov.f32 pf25, 0f00000000; mov.f32 pl25, 0f00000000; mov.f32 pf26, 0f00000000; mov.f32 pl26, 0f00000000; mov.f32 pf27, 0f00000000; mov.f32 pl27, 0f00000000; mov.f32 pf28, 0f00000000; mov.f32 pl28, 0f00000000; mov.f32 pf29, 0f00000000; mov.f32 pl29, 0f00000000; mov.f32 pf30, 0f00000000; mov.f32 pl30, 0f00000000; mov.f32 pf31, 0f00000000; mov.f32 pl31, 0f00000000;");

    /// <summary>
    /// One 32-channel step of the warp tile: A's 16-byte quad <paramref name="q"/> of rows group, + 8, + 16, + 24 (zeros past
    /// Cp: Cp is a multiple of 16, so the last step may hold only lanes 0 and 1's channels) against the staged pieces at quad
    /// <paramref name="s"/> of this lane's columns, lo and mid into pl, then hi into pf.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RealStep(ArrayView<Words4> weightQuads, ArrayView<Words4> stage, PointwiseArgs p, int w0, int w1, int w2, int w3,
        int q, int s, int sj, int pieceQuads)
    {
        bool inside = q < p.Cp / 8;
        var A0 = Quad(weightQuads, inside ? w0 : -1, q);
        var A1 = Quad(weightQuads, inside ? w1 : -1, q);
        var A2 = Quad(weightQuads, inside ? w2 : -1, q);
        var A3 = Quad(weightQuads, inside ? w3 : -1, q);
        for (int piece = 0; piece < GpuSpikeConv.InputPieces; piece++, s += pieceQuads) // lo, mid into pl; hi into pf
        {
            var B0 = stage[s];
            var B1 = stage[s + sj];
            var B2 = stage[s + 2 * sj];
            var B3 = stage[s + 3 * sj];
            if (piece < GpuSpikeConv.InputPieces - 1)
            {
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl0,pl1,pl2,pl3}, {%0,%1,%2,%3}, {%4,%5}, {pl0,pl1,pl2,pl3};", A0.X, A1.X, A0.Y, A1.Y, B0.X, B0.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl4,pl5,pl6,pl7}, {%0,%1,%2,%3}, {%4,%5}, {pl4,pl5,pl6,pl7};", A0.X, A1.X, A0.Y, A1.Y, B1.X, B1.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl8,pl9,pl10,pl11}, {%0,%1,%2,%3}, {%4,%5}, {pl8,pl9,pl10,pl11};", A0.X, A1.X, A0.Y, A1.Y, B2.X, B2.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl12,pl13,pl14,pl15}, {%0,%1,%2,%3}, {%4,%5}, {pl12,pl13,pl14,pl15};", A0.X, A1.X, A0.Y, A1.Y, B3.X, B3.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl16,pl17,pl18,pl19}, {%0,%1,%2,%3}, {%4,%5}, {pl16,pl17,pl18,pl19};", A2.X, A3.X, A2.Y, A3.Y, B0.X, B0.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl20,pl21,pl22,pl23}, {%0,%1,%2,%3}, {%4,%5}, {pl20,pl21,pl22,pl23};", A2.X, A3.X, A2.Y, A3.Y, B1.X, B1.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl24,pl25,pl26,pl27}, {%0,%1,%2,%3}, {%4,%5}, {pl24,pl25,pl26,pl27};", A2.X, A3.X, A2.Y, A3.Y, B2.X, B2.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl28,pl29,pl30,pl31}, {%0,%1,%2,%3}, {%4,%5}, {pl28,pl29,pl30,pl31};", A2.X, A3.X, A2.Y, A3.Y, B3.X, B3.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl0,pl1,pl2,pl3}, {%0,%1,%2,%3}, {%4,%5}, {pl0,pl1,pl2,pl3};", A0.Z, A1.Z, A0.W, A1.W, B0.Z, B0.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl4,pl5,pl6,pl7}, {%0,%1,%2,%3}, {%4,%5}, {pl4,pl5,pl6,pl7};", A0.Z, A1.Z, A0.W, A1.W, B1.Z, B1.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl8,pl9,pl10,pl11}, {%0,%1,%2,%3}, {%4,%5}, {pl8,pl9,pl10,pl11};", A0.Z, A1.Z, A0.W, A1.W, B2.Z, B2.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl12,pl13,pl14,pl15}, {%0,%1,%2,%3}, {%4,%5}, {pl12,pl13,pl14,pl15};", A0.Z, A1.Z, A0.W, A1.W, B3.Z, B3.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl16,pl17,pl18,pl19}, {%0,%1,%2,%3}, {%4,%5}, {pl16,pl17,pl18,pl19};", A2.Z, A3.Z, A2.W, A3.W, B0.Z, B0.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl20,pl21,pl22,pl23}, {%0,%1,%2,%3}, {%4,%5}, {pl20,pl21,pl22,pl23};", A2.Z, A3.Z, A2.W, A3.W, B1.Z, B1.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl24,pl25,pl26,pl27}, {%0,%1,%2,%3}, {%4,%5}, {pl24,pl25,pl26,pl27};", A2.Z, A3.Z, A2.W, A3.W, B2.Z, B2.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pl28,pl29,pl30,pl31}, {%0,%1,%2,%3}, {%4,%5}, {pl28,pl29,pl30,pl31};", A2.Z, A3.Z, A2.W, A3.W, B3.Z, B3.W);
            }
            else
            {
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf0,pf1,pf2,pf3}, {%0,%1,%2,%3}, {%4,%5}, {pf0,pf1,pf2,pf3};", A0.X, A1.X, A0.Y, A1.Y, B0.X, B0.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf4,pf5,pf6,pf7}, {%0,%1,%2,%3}, {%4,%5}, {pf4,pf5,pf6,pf7};", A0.X, A1.X, A0.Y, A1.Y, B1.X, B1.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf8,pf9,pf10,pf11}, {%0,%1,%2,%3}, {%4,%5}, {pf8,pf9,pf10,pf11};", A0.X, A1.X, A0.Y, A1.Y, B2.X, B2.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf12,pf13,pf14,pf15}, {%0,%1,%2,%3}, {%4,%5}, {pf12,pf13,pf14,pf15};", A0.X, A1.X, A0.Y, A1.Y, B3.X, B3.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf16,pf17,pf18,pf19}, {%0,%1,%2,%3}, {%4,%5}, {pf16,pf17,pf18,pf19};", A2.X, A3.X, A2.Y, A3.Y, B0.X, B0.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf20,pf21,pf22,pf23}, {%0,%1,%2,%3}, {%4,%5}, {pf20,pf21,pf22,pf23};", A2.X, A3.X, A2.Y, A3.Y, B1.X, B1.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf24,pf25,pf26,pf27}, {%0,%1,%2,%3}, {%4,%5}, {pf24,pf25,pf26,pf27};", A2.X, A3.X, A2.Y, A3.Y, B2.X, B2.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf28,pf29,pf30,pf31}, {%0,%1,%2,%3}, {%4,%5}, {pf28,pf29,pf30,pf31};", A2.X, A3.X, A2.Y, A3.Y, B3.X, B3.Y);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf0,pf1,pf2,pf3}, {%0,%1,%2,%3}, {%4,%5}, {pf0,pf1,pf2,pf3};", A0.Z, A1.Z, A0.W, A1.W, B0.Z, B0.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf4,pf5,pf6,pf7}, {%0,%1,%2,%3}, {%4,%5}, {pf4,pf5,pf6,pf7};", A0.Z, A1.Z, A0.W, A1.W, B1.Z, B1.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf8,pf9,pf10,pf11}, {%0,%1,%2,%3}, {%4,%5}, {pf8,pf9,pf10,pf11};", A0.Z, A1.Z, A0.W, A1.W, B2.Z, B2.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf12,pf13,pf14,pf15}, {%0,%1,%2,%3}, {%4,%5}, {pf12,pf13,pf14,pf15};", A0.Z, A1.Z, A0.W, A1.W, B3.Z, B3.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf16,pf17,pf18,pf19}, {%0,%1,%2,%3}, {%4,%5}, {pf16,pf17,pf18,pf19};", A2.Z, A3.Z, A2.W, A3.W, B0.Z, B0.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf20,pf21,pf22,pf23}, {%0,%1,%2,%3}, {%4,%5}, {pf20,pf21,pf22,pf23};", A2.Z, A3.Z, A2.W, A3.W, B1.Z, B1.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf24,pf25,pf26,pf27}, {%0,%1,%2,%3}, {%4,%5}, {pf24,pf25,pf26,pf27};", A2.Z, A3.Z, A2.W, A3.W, B2.Z, B2.W);
                CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {pf28,pf29,pf30,pf31}, {%0,%1,%2,%3}, {%4,%5}, {pf28,pf29,pf30,pf31};", A2.Z, A3.Z, A2.W, A3.W, B3.Z, B3.W);
            }
            }
    }

    /// <summary>hi + (mid + lo): one output's fp32 sum from its two accumulators' bits, the small pieces summed apart as on the cuBLAS path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Sum(int hi, int low) => Interop.IntAsFloat((uint)hi) + Interop.IntAsFloat((uint)low);

    /// <summary>The fallback: the same staging, then this lane's 4 rows × 8 columns summed in fp32 from the staged pieces as the mma body sums them (per chunk lo and mid into one sum, hi into another).</summary>
    private static void RealScalarTile<TFma>(ArrayView<float> input, ArrayView<ushort> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, ArrayView<Words4> stage, int r0, int n0, int warpColumn, bool active,
        int group, int t) where TFma : struct, IFma
    {
        // [row m][column k]: rows r0 + group + 8m, warp columns 8t + k; the hi piece's sums, then the lo and mid pieces' 32 further.
        var sums = LocalMemory.Allocate<float>(64);
        for (int i = 0; i < 64; i++) sums[i] = 0f;
        var staged = stage.Cast<int>().Cast<ushort>();
        int columnHalves = 2 * RealColumnWords(p), pieceHalves = 2 * PieceWords(p);
        for (int c0 = 0; c0 < p.Cp; c0 += p.RealChunk)
        {
            Group.Barrier();
            if (p.Whole != 0) RealStageFour(input, p, stage.Cast<int>(), n0, c0);
            else RealStage(input, p, stage.Cast<int>(), n0, c0);
            Group.Barrier();
            if (!active) continue;
            // Per 32-channel step as the mma body (the same sums for every stage size).
            for (int k0 = 0; k0 < p.RealChunk && c0 + k0 < p.Cp; k0 += RealChunkChannels)
            {
                int channels = Math.Min(RealChunkChannels, p.Cp - c0 - k0);
                for (int m = 0; m < 4; m++)
                {
                    int r = r0 + group + 8 * m;
                    if (r >= p.M) continue;
                    long row = (long)r * GpuSpikeConv.InputPieces * p.Cp + c0 + k0;
                    for (int k = 0; k < 8; k++)
                    {
                        int column = warpColumn + 8 * t + k;
                        for (int piece = 0; piece < GpuSpikeConv.InputPieces; piece++)
                        {
                            int at = piece == GpuSpikeConv.InputPieces - 1 ? 8 * m + k : 32 + 8 * m + k;
                            float s = sums[at];
                            for (int c = 0; c < channels; c++)
                                s += Bf16(weights[row + c]) * Bf16(staged[piece * pieceHalves + column * columnHalves + k0 + c]);
                            sums[at] = s;
                        }
                    }
                }
            }
        }
        if (!active) return;
        Epilogue<TFma>(output, scales, bias, bn, p, r0 + group, n0 + warpColumn + 8 * t,
            sums[0] + sums[32], sums[1] + sums[33], sums[2] + sums[34], sums[3] + sums[35], sums[4] + sums[36], sums[5] + sums[37], sums[6] + sums[38], sums[7] + sums[39],
            sums[8] + sums[40], sums[9] + sums[41], sums[10] + sums[42], sums[11] + sums[43], sums[12] + sums[44], sums[13] + sums[45], sums[14] + sums[46], sums[15] + sums[47],
            sums[16] + sums[48], sums[17] + sums[49], sums[18] + sums[50], sums[19] + sums[51], sums[20] + sums[52], sums[21] + sums[53], sums[22] + sums[54], sums[23] + sums[55],
            sums[24] + sums[56], sums[25] + sums[57], sums[26] + sums[58], sums[27] + sums[59], sums[28] + sums[60], sums[29] + sums[61], sums[30] + sums[62], sums[31] + sums[63]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16(ushort bits) => Interop.IntAsFloat((uint)bits << 16);
}
