using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// The real-valued-input counterpart of the fused pointwise kernel (issue 13): a 1×1 conv of integer codes over an fp32
/// input (<see cref="GpuSpikeConv.RealInput"/>: RepConv's last 1×1, pwconv2) in one launch, replacing the input's split
/// into packed bf16 columns (<see cref="SpikeGemmKernels.PackSplit"/>), cuBLAS's bf16 GEMM and
/// <see cref="SpikeGemmKernels.EpilogueScaled{TFma}"/>. The group, warp tiles and epilogue are the integer kernel's; per
/// chunk of <see cref="RealChunkChannels"/> channels the group stages its columns once as the input's three bf16 pieces
/// (lo, mid, hi: <see cref="SpikeGemmKernels.SplitBf16"/>, exactly <see cref="SpikeGemmKernels.PackSplit"/>'s split), and
/// each warp runs <c>mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32</c> with the codes as bf16 (exact: |q − z| ≤ 256) against
/// each piece, smallest first, into one set of fp32 accumulators.
/// <para>
/// Numerics: every product of a code (≤ 9 significant bits) and a piece (8) is exact, as on the cuBLAS path; only the
/// summation order differs (per 32-channel step lo, mid, hi, each as two k16 mma steps, against cuBLAS's order over
/// [lo | mid | hi] stacked along K). Both sum 3·K exact terms in fp32, so each differs from the exact Σ q·x by at most
/// about 3·K·2^-23·Σ|q·x| (the same bound as today's path; tensor cores truncate inside an mma, hence no 2^-24), before
/// the epilogue's one multiply by the scale and its FMAs. Tests hold both to 1e-5 relative.
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
    /// <summary>
    /// Input channels staged per chunk on the real-input kernel (one 32-channel step), and a staged column piece's length in
    /// words (16 bf16 pairs), padded so the 16-byte fragment loads of a warp hit distinct banks.
    /// </summary>
    public const int RealChunkChannels = 32, RealColumnWords = RealChunkChannels / 2 + 4;

    /// <summary>Columns a group stages (up to 128) per piece; the three pieces take 30 KiB of shared memory.</summary>
    private const int StageColumns = 4 * 32, PieceWords = StageColumns * RealColumnWords;

    public static void RealConv<TFma>(ArrayView<float> input, ArrayView<ushort> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p) where TFma : struct, IFma
    {
        var stage = SharedMemory.Allocate<Words4>(GpuSpikeConv.InputPieces * PieceWords / 4);
        bool active = Place(p, out int r0, out int n0, out int warpColumn, out int group, out int t);
        if (CudaAsm.IsSupported) RealMmaTile<TFma>(input, weights, output, scales, bias, bn, p, stage, r0, n0, warpColumn, active, group, t);
        else RealScalarTile<TFma>(input, weights, output, scales, bias, bn, p, stage, r0, n0, warpColumn, active, group, t);
    }

    /// <summary>
    /// The group's columns (pixels n0 ..) at channels c0 .. c0 + <see cref="RealChunkChannels"/> into shared memory as the
    /// three bf16 pieces: word [piece · PieceWords + column · RealColumnWords + w] holds channels c0 + 2w (low half) and
    /// c0 + 2w + 1 of that piece (0 lo, 1 mid, 2 hi). One work item is four neighbouring pixels × two channels (two
    /// 16-byte loads where <see cref="PointwiseArgs.Vec"/>); neighbouring lanes take neighbouring pixels of one plane. The
    /// whole chunk is staged, zeros past the channels and pixels, so no stale bits (NaN patterns) meet the zero codes.
    /// </summary>
    private static void RealStage(ArrayView<float> x, PointwiseArgs p, ArrayView<int> stage, int n0, int c0)
    {
        int pixelGroups = 32 * p.ColumnWarps / 4, items = RealChunkChannels / 2 * pixelGroups;
        for (int it = Group.IdxX; it < items; it += Group.DimX)
        {
            int pair = it / pixelGroups, pg = it - pair * pixelGroups, q0 = n0 + 4 * pg, c = c0 + 2 * pair;
            Floats4 u, v;
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
            int at = 4 * pg * RealColumnWords + pair;
            StagePair(stage, at, u.X, v.X);
            StagePair(stage, at + RealColumnWords, u.Y, v.Y);
            StagePair(stage, at + 2 * RealColumnWords, u.Z, v.Z);
            StagePair(stage, at + 3 * RealColumnWords, u.W, v.W);
        }
    }

    /// <summary>Channel c at pixel base b, zero past the pixels or channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Value(ArrayView<float> x, PointwiseArgs p, int b, int c) => b >= 0 && c < p.InChannels ? x[(long)b + (long)c * p.HW] : 0f;

    /// <summary>The pieces of two channels' values u (low half) and v of one column: words at, at + PieceWords (mid), at + 2·PieceWords (hi).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StagePair(ArrayView<int> stage, int at, float u, float v)
    {
        uint uHi = SpikeGemmKernels.SplitBf16(u, out uint uMid, out uint uLo);
        uint vHi = SpikeGemmKernels.SplitBf16(v, out uint vMid, out uint vLo);
        stage[at] = (int)(uLo | vLo << 16);
        stage[at + PieceWords] = (int)(uMid | vMid << 16);
        stage[at + 2 * PieceWords] = (int)(uHi | vHi << 16);
    }

    /// <summary>Index of A's row r in 16-byte quads of bf16 codes (the first of the layer's three identical copies, rows 3·Cp apart), or −1 past the output channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RealRowQuad(PointwiseArgs p, int r) => r < p.M ? r * GpuSpikeConv.InputPieces * (p.Cp / 8) : -1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float F(int bits) => Interop.IntAsFloat((uint)bits);

    /// <summary>The tensor-core body (see the remarks above for the fragments).</summary>
    private static void RealMmaTile<TFma>(ArrayView<float> input, ArrayView<ushort> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, ArrayView<Words4> stage, int r0, int n0, int warpColumn, bool active,
        int group, int t) where TFma : struct, IFma
    {
        var weightQuads = weights.Cast<Words4>();
        var stageWords = stage.Cast<int>();
        int quads = p.Cp / 8;
        // This lane's B columns (warp column 4·group + j) in the lo piece, in quads; the next pieces are PieceWords / 4 further.
        int s0 = (warpColumn + 4 * group) * (RealColumnWords / 4) + t, sj = RealColumnWords / 4;
        int w0 = RealRowQuad(p, r0 + group), w1 = RealRowQuad(p, r0 + group + 8);
        int w2 = RealRowQuad(p, r0 + group + 16), w3 = RealRowQuad(p, r0 + group + 24);
        CudaAsm.Emit(".reg .f32 pf<32>; mov.f32 pf0, 0f00000000; mov.f32 pf1, 0f00000000; mov.f32 pf2, 0f00000000; mov.f32 pf3, 0f00000000; mov.f32 pf4, 0f00000000; mov.f32 pf5, 0f00000000; mov.f32 pf6, 0f00000000; mov.f32 pf7, 0f00000000; mov.f32 pf8, 0f00000000; mov.f32 pf9, 0f00000000; mov.f32 pf10, 0f00000000; mov.f32 pf11, 0f00000000; mov.f32 pf12, 0f00000000; mov.f32 pf13, 0f00000000; mov.f32 pf14, 0f00000000; mov.f32 pf15, 0f00000000; mov.f32 pf16, 0f00000000; mov.f32 pf17, 0f00000000; mov.f32 pf18, 0f00000000; mov.f32 pf19, 0f00000000; mov.f32 pf20, 0f00000000; mov.f32 pf21, 0f00000000; mov.f32 pf22, 0f00000000; mov.f32 pf23, 0f00000000; mov.f32 pf24, 0f00000000; mov.f32 pf25, 0f00000000; mov.f32 pf26, 0f00000000; mov.f32 pf27, 0f00000000; mov.f32 pf28, 0f00000000; mov.f32 pf29, 0f00000000; mov.f32 pf30, 0f00000000; mov.f32 pf31, 0f00000000;");
        for (int c0 = 0; c0 < p.Cp; c0 += RealChunkChannels)
        {
            Group.Barrier(); // the previous chunk's fragments are read
            RealStage(input, p, stageWords, n0, c0);
            Group.Barrier();
            if (!active) continue;
            int q = c0 / 8 + t;
            bool inside = q < quads; // Cp is a multiple of 16: the last step may hold only lanes 0 and 1's channels
            var A0 = Quad(weightQuads, inside ? w0 : -1, q);
            var A1 = Quad(weightQuads, inside ? w1 : -1, q);
            var A2 = Quad(weightQuads, inside ? w2 : -1, q);
            var A3 = Quad(weightQuads, inside ? w3 : -1, q);
            for (int piece = 0; piece < GpuSpikeConv.InputPieces; piece++) // lo, mid, hi: smallest first
            {
                int s = s0 + piece * (PieceWords / 4);
                var B0 = stage[s];
                var B1 = stage[s + sj];
                var B2 = stage[s + 2 * sj];
                var B3 = stage[s + 3 * sj];
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
        if (!active) return;
        // pf[4(4m + j) + i] as the integer kernel's pq (its C fragment layout is the same).
        CudaAsm.Emit("mov.b32 %0, pf0;", out int a00); CudaAsm.Emit("mov.b32 %0, pf1;", out int a04);
        CudaAsm.Emit("mov.b32 %0, pf2;", out int b00); CudaAsm.Emit("mov.b32 %0, pf3;", out int b04);
        CudaAsm.Emit("mov.b32 %0, pf4;", out int a01); CudaAsm.Emit("mov.b32 %0, pf5;", out int a05);
        CudaAsm.Emit("mov.b32 %0, pf6;", out int b01); CudaAsm.Emit("mov.b32 %0, pf7;", out int b05);
        CudaAsm.Emit("mov.b32 %0, pf8;", out int a02); CudaAsm.Emit("mov.b32 %0, pf9;", out int a06);
        CudaAsm.Emit("mov.b32 %0, pf10;", out int b02); CudaAsm.Emit("mov.b32 %0, pf11;", out int b06);
        CudaAsm.Emit("mov.b32 %0, pf12;", out int a03); CudaAsm.Emit("mov.b32 %0, pf13;", out int a07);
        CudaAsm.Emit("mov.b32 %0, pf14;", out int b03); CudaAsm.Emit("mov.b32 %0, pf15;", out int b07);
        CudaAsm.Emit("mov.b32 %0, pf16;", out int c00); CudaAsm.Emit("mov.b32 %0, pf17;", out int c04);
        CudaAsm.Emit("mov.b32 %0, pf18;", out int d00); CudaAsm.Emit("mov.b32 %0, pf19;", out int d04);
        CudaAsm.Emit("mov.b32 %0, pf20;", out int c01); CudaAsm.Emit("mov.b32 %0, pf21;", out int c05);
        CudaAsm.Emit("mov.b32 %0, pf22;", out int d01); CudaAsm.Emit("mov.b32 %0, pf23;", out int d05);
        CudaAsm.Emit("mov.b32 %0, pf24;", out int c02); CudaAsm.Emit("mov.b32 %0, pf25;", out int c06);
        CudaAsm.Emit("mov.b32 %0, pf26;", out int d02); CudaAsm.Emit("mov.b32 %0, pf27;", out int d06);
        CudaAsm.Emit("mov.b32 %0, pf28;", out int c03); CudaAsm.Emit("mov.b32 %0, pf29;", out int c07);
        CudaAsm.Emit("mov.b32 %0, pf30;", out int d03); CudaAsm.Emit("mov.b32 %0, pf31;", out int d07);
        Epilogue<TFma>(output, scales, bias, bn, p, r0 + group, n0 + warpColumn + 8 * t,
            F(a00), F(a01), F(a02), F(a03), F(a04), F(a05), F(a06), F(a07), F(b00), F(b01), F(b02), F(b03), F(b04), F(b05), F(b06), F(b07), F(c00), F(c01), F(c02), F(c03), F(c04), F(c05), F(c06), F(c07), F(d00), F(d01), F(d02), F(d03), F(d04), F(d05), F(d06), F(d07));
    }

    /// <summary>The fallback: the same staging, then this lane's 4 rows × 8 columns summed in fp32 from the staged pieces in the mma body's order (per chunk lo, mid, hi).</summary>
    private static void RealScalarTile<TFma>(ArrayView<float> input, ArrayView<ushort> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, ArrayView<Words4> stage, int r0, int n0, int warpColumn, bool active,
        int group, int t) where TFma : struct, IFma
    {
        var sums = LocalMemory.Allocate<float>(32); // [row m][column k]: rows r0 + group + 8m, warp columns 8t + k
        for (int i = 0; i < 32; i++) sums[i] = 0f;
        var staged = stage.Cast<int>().Cast<ushort>();
        for (int c0 = 0; c0 < p.Cp; c0 += RealChunkChannels)
        {
            Group.Barrier();
            RealStage(input, p, stage.Cast<int>(), n0, c0);
            Group.Barrier();
            if (!active) continue;
            int channels = Math.Min(RealChunkChannels, p.Cp - c0);
            for (int m = 0; m < 4; m++)
            {
                int r = r0 + group + 8 * m;
                if (r >= p.M) continue;
                long row = (long)r * GpuSpikeConv.InputPieces * p.Cp + c0;
                for (int k = 0; k < 8; k++)
                {
                    int column = warpColumn + 8 * t + k;
                    float s = sums[8 * m + k];
                    for (int piece = 0; piece < GpuSpikeConv.InputPieces; piece++)
                        for (int c = 0; c < channels; c++)
                            s += Bf16(weights[row + c]) * Bf16(staged[piece * PieceWords * 2 + column * RealColumnWords * 2 + c]);
                    sums[8 * m + k] = s;
                }
            }
        }
        if (!active) return;
        Epilogue<TFma>(output, scales, bias, bn, p, r0 + group, n0 + warpColumn + 8 * t,
            sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], sums[6], sums[7], sums[8], sums[9], sums[10], sums[11], sums[12], sums[13], sums[14], sums[15],
            sums[16], sums[17], sums[18], sums[19], sums[20], sums[21], sums[22], sums[23], sums[24], sums[25], sums[26], sums[27], sums[28], sums[29], sums[30], sums[31]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16(ushort bits) => Interop.IntAsFloat((uint)bits << 16);
}
