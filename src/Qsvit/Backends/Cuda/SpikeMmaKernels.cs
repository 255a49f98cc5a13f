using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Implicit-GEMM int8 convolution of packed spikes on tensor cores (issue 13): the int32 sums
/// C[GemmRows, Rows] = A[GemmRows, Kp] · B[Rows, Kp]ᵀ of <see cref="SpikeGemmOps"/>, with B's rows (the im2col columns)
/// never written: each k-step reads the packed input pixel under its tap (<see cref="SpikeGemmKernels.PackS8"/>,
/// [pixel, Cp] int8, zero outside the map) straight into the mma fragments. The sums are exact integers, so they equal
/// cuBLAS's bit for bit and the same epilogues (scale, bias, BNs, fused LIF) run after them.
/// <para>
/// One warp computes a tile of 32 rows × 32 output pixels as 2 × 4 <c>mma.sync.m16n8k32.s8.s8.s32</c> per k-step of 32
/// channels of one tap, two k-steps per 16-byte load (64 channels; zeros past Cp). The fragments are scalar locals (a
/// local array spills to memory), the accumulators PTX registers (<see cref="MmaTile"/>). Fragment layout (PTX ISA,
/// m16n8k32 integer; lane = 4·group + t): A regs 0..3 = rows group, group + 8, group, group + 8 at k bytes 4t.., 4t..,
/// 16 + 4t.., 16 + 4t.. of the step; B regs 0..1 = pixel group at k bytes 4t.., 16 + 4t..; C regs 0..3 = rows group,
/// group, group + 8, group + 8 at pixels 2t, 2t + 1, 2t, 2t + 1. Which channels fill which k bytes is free as long as A
/// and B agree, so each lane's 16 loaded bytes feed both k-steps.
/// </para>
/// <para>
/// Where inline PTX does not exist (ILGPU's CPU accelerator in tests) each thread computes the same 32 outputs of its warp
/// tile with scalar multiply-adds over the same words, so the tile, pixel and tap indexing are checked there too.
/// </para>
/// </summary>
internal static class SpikeMmaKernels
{
    /// <summary>Lanes per warp tile: a hardware warp on CUDA (the group size is a multiple of it).</summary>
    public const int Lanes = 32;

    /// <summary>Rows of A (output channels, int8 digits stacked along M) and output pixels per warp tile.</summary>
    public const int TileRows = 32, TilePixels = 32;

    /// <summary>Threads that cover a chunk's sums: one warp per tile of <see cref="TileRows"/> × <see cref="TilePixels"/>.</summary>
    public static long Threads(int gemmRows, int rows) =>
        (long)Lanes * ((gemmRows + TileRows - 1) / TileRows) * ((rows + TilePixels - 1) / TilePixels);

    /// <summary>
    /// sums[r, n] = Σ_k weights[r, k]·columns[n, k] for the chunk of <paramref name="p"/>, with columns[n, tap·Cp + c] read
    /// from <paramref name="packed"/> (int8 in 4-byte words) and <paramref name="weights"/> A's int8 digits in words.
    /// One warp per tile; tiles run rows fastest, so the warps that read the same pixels run side by side.
    /// </summary>
    public static void Conv(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, SpikeGemmArgs p, int gemmRows)
    {
        int thread = Grid.IdxX * Group.DimX + Group.IdxX, tile = thread / Lanes, lane = thread - tile * Lanes;
        int rowTiles = (gemmRows + TileRows - 1) / TileRows, pixelTile = tile / rowTiles;
        int r0 = (tile - pixelTile * rowTiles) * TileRows, n0 = pixelTile * TilePixels;
        if (n0 >= p.Rows) return; // the whole warp: launches are rounded up to whole groups
        if (CudaAsm.IsSupported) MmaTile(packed, weights, sums, p, gemmRows, r0, n0, lane >> 2, lane & 3);
        else ScalarTile(packed, weights, sums, p, gemmRows, r0, n0, lane >> 2, lane & 3);
    }

    /// <summary>Output pixel n of the chunk: its frame's first packed pixel and the top-left input pixel of its window (far outside for n ≥ Valid).</summary>
    internal static void Window(SpikeGemmArgs p, int n, out int frameBase, out int iy0, out int ix0)
    {
        if (n >= p.Valid)
        {
            frameBase = 0;
            iy0 = -(1 << 24);
            ix0 = 0;
            return;
        }
        int f = n / p.OHW, pix = n - f * p.OHW, oy = pix / p.OW;
        frameBase = f * p.H * p.W;
        iy0 = oy * p.StrideH - p.PadH;
        ix0 = (pix - oy * p.OW) * p.StrideW - p.PadW;
    }

    /// <summary>
    /// Index of the packed input pixel (iy, ix) in units of which a pixel holds <paramref name="perPixel"/> (4-byte words,
    /// or 16-byte <see cref="Words4"/>), or −1 outside the map (the conv's zero padding).
    /// </summary>
    private static int PixelStart(SpikeGemmArgs p, int frameBase, int iy, int ix, int perPixel) =>
        iy >= 0 && iy < p.H && ix >= 0 && ix < p.W ? (frameBase + iy * p.W + ix) * perPixel : -1;

    /// <summary>The word at <paramref name="at"/> + <paramref name="offset"/>, zero for a missing row or pixel (<paramref name="at"/> &lt; 0).</summary>
    private static int Word(ArrayView<int> view, int at, int offset) => at < 0 ? 0 : view[at + offset];

    /// <summary>Index of A's row r in units of which a row holds <paramref name="perRow"/>, or −1 past the rows.</summary>
    internal static int RowStart(int r, int gemmRows, int perRow) => r < gemmRows ? r * perRow : -1;

    /// <summary>
    /// The tensor-core body. Each lane loads 16 bytes (one <see cref="Words4"/>, a vector load) per A row and B pixel for a
    /// pair of k-steps, 64 channels: words 4t, 4t + 1 feed the first mma's two register slots, 4t + 2, 4t + 3 the second's
    /// (the same words for A and B, so the pairs multiply as they should). Channels past Cp load as zeros. The 32
    /// accumulators live in PTX registers mq0..mq31 that only the inline PTX names (declared and zeroed before the loop,
    /// read out after it): ILGPU passes <c>EmitRef</c> operands and <c>Emit</c>'s output through local memory, plain
    /// <c>Emit</c> inputs through registers. mq[4(4m + j) + i] is C register i of m16 tile m (rows r0 + 16m ..) and n8
    /// tile j (pixels n0 + 8j ..).
    /// </summary>
    private static void MmaTile(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, SpikeGemmArgs p, int gemmRows,
        int r0, int n0, int group, int t)
    {
        var packedQuads = packed.Cast<Words4>();
        var weightQuads = weights.Cast<Words4>();
        int pixelQuads = p.Cp / 16, rowQuads = p.Kp / 16;
        int w0 = RowStart(r0 + group, gemmRows, rowQuads), w1 = RowStart(r0 + group + 8, gemmRows, rowQuads);
        int w2 = RowStart(r0 + group + 16, gemmRows, rowQuads), w3 = RowStart(r0 + group + 24, gemmRows, rowQuads);
        // This lane's B pixels: n0 + 8j + group, j = 0..3.
        Window(p, n0 + group, out int f0, out int y0, out int x0);
        Window(p, n0 + 8 + group, out int f1, out int y1, out int x1);
        Window(p, n0 + 16 + group, out int f2, out int y2, out int x2);
        Window(p, n0 + 24 + group, out int f3, out int y3, out int x3);
        ZeroAccumulators();
        int tapQuad = 0;
        for (int ky = 0; ky < p.KH; ky++)
        {
            for (int kx = 0; kx < p.KW; kx++, tapQuad += pixelQuads)
            {
                int b0 = PixelStart(p, f0, y0 + ky, x0 + kx, pixelQuads), b1 = PixelStart(p, f1, y1 + ky, x1 + kx, pixelQuads);
                int b2 = PixelStart(p, f2, y2 + ky, x2 + kx, pixelQuads), b3 = PixelStart(p, f3, y3 + ky, x3 + kx, pixelQuads);
                for (int cq = 0; cq < pixelQuads; cq += 4)
                {
                    int q = cq + t;
                    bool inside = q < pixelQuads;
                    var A0 = Quad(weightQuads, inside ? w0 : -1, tapQuad + q);
                    var A1 = Quad(weightQuads, inside ? w1 : -1, tapQuad + q);
                    var A2 = Quad(weightQuads, inside ? w2 : -1, tapQuad + q);
                    var A3 = Quad(weightQuads, inside ? w3 : -1, tapQuad + q);
                    var B0 = Quad(packedQuads, inside ? b0 : -1, q);
                    var B1 = Quad(packedQuads, inside ? b1 : -1, q);
                    var B2 = Quad(packedQuads, inside ? b2 : -1, q);
                    var B3 = Quad(packedQuads, inside ? b3 : -1, q);
                    MmaStep(A0, A1, A2, A3, B0, B1, B2, B3);
                }
            }
        }
        StoreAccumulators(new SumsSink(sums, p, gemmRows, r0 + group, n0 + 2 * t));
    }

    /// <summary>
    /// Declares and zeroes the 32 accumulators mq0..mq31 of a warp tile (PTX registers that only the inline PTX names).
    /// Inlined, as <see cref="MmaStep"/> and <see cref="StoreAccumulators"/>, so all three name the kernel's registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ZeroAccumulators()
    {
        DeclareAccumulators();
        ClearAccumulators();
    }

    /// <summary>Declares mq0..mq31 (once per kernel): <see cref="ClearAccumulators"/> may then zero them later, where they become live.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void DeclareAccumulators() => CudaAsm.Emit(".reg .b32 mq<32>;");

    /// <summary>Zeroes the accumulators that <see cref="DeclareAccumulators"/> declared.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ClearAccumulators()
    {
        CudaAsm.Emit("mov.b32 mq0, 0; mov.b32 mq1, 0; mov.b32 mq2, 0; mov.b32 mq3, 0; mov.b32 mq4, 0; mov.b32 mq5, 0; mov.b32 mq6, 0; mov.b32 mq7, 0; mov.b32 mq8, 0; mov.b32 mq9, 0; mov.b32 mq10, 0; mov.b32 mq11, 0; mov.b32 mq12, 0; mov.b32 mq13, 0; mov.b32 mq14, 0; mov.b32 mq15, 0; mov.b32 mq16, 0; mov.b32 mq17, 0; mov.b32 mq18, 0; mov.b32 mq19, 0; mov.b32 mq20, 0; mov.b32 mq21, 0; mov.b32 mq22, 0; mov.b32 mq23, 0; mov.b32 mq24, 0; mov.b32 mq25, 0; mov.b32 mq26, 0; mov.b32 mq27, 0; mov.b32 mq28, 0; mov.b32 mq29, 0; mov.b32 mq30, 0; mov.b32 mq31, 0;");
    }

    /// <summary>Shifts the 32 accumulators left by 8 bits (× 256): between the int8 digits of wider codes, which are summed high digit first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ShiftAccumulators()
    {
        CudaAsm.Emit("shl.b32 mq0, mq0, 8; shl.b32 mq1, mq1, 8; shl.b32 mq2, mq2, 8; shl.b32 mq3, mq3, 8; shl.b32 mq4, mq4, 8; shl.b32 mq5, mq5, 8; shl.b32 mq6, mq6, 8; shl.b32 mq7, mq7, 8; shl.b32 mq8, mq8, 8; shl.b32 mq9, mq9, 8; shl.b32 mq10, mq10, 8; shl.b32 mq11, mq11, 8; shl.b32 mq12, mq12, 8; shl.b32 mq13, mq13, 8; shl.b32 mq14, mq14, 8; shl.b32 mq15, mq15, 8; shl.b32 mq16, mq16, 8; shl.b32 mq17, mq17, 8; shl.b32 mq18, mq18, 8; shl.b32 mq19, mq19, 8; shl.b32 mq20, mq20, 8; shl.b32 mq21, mq21, 8; shl.b32 mq22, mq22, 8; shl.b32 mq23, mq23, 8; shl.b32 mq24, mq24, 8; shl.b32 mq25, mq25, 8; shl.b32 mq26, mq26, 8; shl.b32 mq27, mq27, 8; shl.b32 mq28, mq28, 8; shl.b32 mq29, mq29, 8; shl.b32 mq30, mq30, 8; shl.b32 mq31, mq31, 8;");
    }

    /// <summary>
    /// Two k-steps of a warp tile: 2 × 4 mma per k-step from this lane's 16 bytes of A rows group, group + 8, group + 16,
    /// group + 24 (<paramref name="a0"/>..<paramref name="a3"/>) and B pixels group, group + 8, … (<paramref name="b0"/>..<paramref name="b3"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void MmaStep(Words4 a0, Words4 a1, Words4 a2, Words4 a3, Words4 b0, Words4 b1, Words4 b2, Words4 b3)
    {
        // k-step 1: words 4t, 4t + 1 of each lane's 16 bytes
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq0,mq1,mq2,mq3}, {%0,%1,%2,%3}, {%4,%5}, {mq0,mq1,mq2,mq3};", a0.X, a1.X, a0.Y, a1.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq4,mq5,mq6,mq7}, {%0,%1,%2,%3}, {%4,%5}, {mq4,mq5,mq6,mq7};", a0.X, a1.X, a0.Y, a1.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq8,mq9,mq10,mq11}, {%0,%1,%2,%3}, {%4,%5}, {mq8,mq9,mq10,mq11};", a0.X, a1.X, a0.Y, a1.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq12,mq13,mq14,mq15}, {%0,%1,%2,%3}, {%4,%5}, {mq12,mq13,mq14,mq15};", a0.X, a1.X, a0.Y, a1.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq16,mq17,mq18,mq19}, {%0,%1,%2,%3}, {%4,%5}, {mq16,mq17,mq18,mq19};", a2.X, a3.X, a2.Y, a3.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq20,mq21,mq22,mq23}, {%0,%1,%2,%3}, {%4,%5}, {mq20,mq21,mq22,mq23};", a2.X, a3.X, a2.Y, a3.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq24,mq25,mq26,mq27}, {%0,%1,%2,%3}, {%4,%5}, {mq24,mq25,mq26,mq27};", a2.X, a3.X, a2.Y, a3.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq28,mq29,mq30,mq31}, {%0,%1,%2,%3}, {%4,%5}, {mq28,mq29,mq30,mq31};", a2.X, a3.X, a2.Y, a3.Y, b3.X, b3.Y);
        // k-step 2: words 4t + 2, 4t + 3 of each lane's 16 bytes
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq0,mq1,mq2,mq3}, {%0,%1,%2,%3}, {%4,%5}, {mq0,mq1,mq2,mq3};", a0.Z, a1.Z, a0.W, a1.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq4,mq5,mq6,mq7}, {%0,%1,%2,%3}, {%4,%5}, {mq4,mq5,mq6,mq7};", a0.Z, a1.Z, a0.W, a1.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq8,mq9,mq10,mq11}, {%0,%1,%2,%3}, {%4,%5}, {mq8,mq9,mq10,mq11};", a0.Z, a1.Z, a0.W, a1.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq12,mq13,mq14,mq15}, {%0,%1,%2,%3}, {%4,%5}, {mq12,mq13,mq14,mq15};", a0.Z, a1.Z, a0.W, a1.W, b3.Z, b3.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq16,mq17,mq18,mq19}, {%0,%1,%2,%3}, {%4,%5}, {mq16,mq17,mq18,mq19};", a2.Z, a3.Z, a2.W, a3.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq20,mq21,mq22,mq23}, {%0,%1,%2,%3}, {%4,%5}, {mq20,mq21,mq22,mq23};", a2.Z, a3.Z, a2.W, a3.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq24,mq25,mq26,mq27}, {%0,%1,%2,%3}, {%4,%5}, {mq24,mq25,mq26,mq27};", a2.Z, a3.Z, a2.W, a3.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mq28,mq29,mq30,mq31}, {%0,%1,%2,%3}, {%4,%5}, {mq28,mq29,mq30,mq31};", a2.Z, a3.Z, a2.W, a3.W, b3.Z, b3.W);
    }

    /// <summary>
    /// Reads the accumulators out into <paramref name="sink"/>: pair (i, j) is rows group + 8i, pixels 8j + 2t and 8j + 2t + 1
    /// of the warp tile (the C registers' layout).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StoreAccumulators<TSink>(TSink sink) where TSink : struct, ITileSink
    {
        CudaAsm.Emit("mov.b32 %0, mq0;", out int s000);
        CudaAsm.Emit("mov.b32 %0, mq1;", out int s001);
        CudaAsm.Emit("mov.b32 %0, mq2;", out int s002);
        CudaAsm.Emit("mov.b32 %0, mq3;", out int s003);
        CudaAsm.Emit("mov.b32 %0, mq4;", out int s010);
        CudaAsm.Emit("mov.b32 %0, mq5;", out int s011);
        CudaAsm.Emit("mov.b32 %0, mq6;", out int s012);
        CudaAsm.Emit("mov.b32 %0, mq7;", out int s013);
        CudaAsm.Emit("mov.b32 %0, mq8;", out int s020);
        CudaAsm.Emit("mov.b32 %0, mq9;", out int s021);
        CudaAsm.Emit("mov.b32 %0, mq10;", out int s022);
        CudaAsm.Emit("mov.b32 %0, mq11;", out int s023);
        CudaAsm.Emit("mov.b32 %0, mq12;", out int s030);
        CudaAsm.Emit("mov.b32 %0, mq13;", out int s031);
        CudaAsm.Emit("mov.b32 %0, mq14;", out int s032);
        CudaAsm.Emit("mov.b32 %0, mq15;", out int s033);
        CudaAsm.Emit("mov.b32 %0, mq16;", out int s100);
        CudaAsm.Emit("mov.b32 %0, mq17;", out int s101);
        CudaAsm.Emit("mov.b32 %0, mq18;", out int s102);
        CudaAsm.Emit("mov.b32 %0, mq19;", out int s103);
        CudaAsm.Emit("mov.b32 %0, mq20;", out int s110);
        CudaAsm.Emit("mov.b32 %0, mq21;", out int s111);
        CudaAsm.Emit("mov.b32 %0, mq22;", out int s112);
        CudaAsm.Emit("mov.b32 %0, mq23;", out int s113);
        CudaAsm.Emit("mov.b32 %0, mq24;", out int s120);
        CudaAsm.Emit("mov.b32 %0, mq25;", out int s121);
        CudaAsm.Emit("mov.b32 %0, mq26;", out int s122);
        CudaAsm.Emit("mov.b32 %0, mq27;", out int s123);
        CudaAsm.Emit("mov.b32 %0, mq28;", out int s130);
        CudaAsm.Emit("mov.b32 %0, mq29;", out int s131);
        CudaAsm.Emit("mov.b32 %0, mq30;", out int s132);
        CudaAsm.Emit("mov.b32 %0, mq31;", out int s133);
        sink.Pair(0, 0, s000, s001);
        sink.Pair(1, 0, s002, s003);
        sink.Pair(0, 1, s010, s011);
        sink.Pair(1, 1, s012, s013);
        sink.Pair(0, 2, s020, s021);
        sink.Pair(1, 2, s022, s023);
        sink.Pair(0, 3, s030, s031);
        sink.Pair(1, 3, s032, s033);
        sink.Pair(2, 0, s100, s101);
        sink.Pair(3, 0, s102, s103);
        sink.Pair(2, 1, s110, s111);
        sink.Pair(3, 1, s112, s113);
        sink.Pair(2, 2, s120, s121);
        sink.Pair(3, 2, s122, s123);
        sink.Pair(2, 3, s130, s131);
        sink.Pair(3, 3, s132, s133);
    }

    /// <summary>The 16 bytes at <paramref name="at"/> + <paramref name="offset"/>, zeros for a missing row or pixel (<paramref name="at"/> &lt; 0).</summary>
    private static Words4 Quad(ArrayView<Words4> view, int at, int offset) => at < 0 ? default : view[at + offset];

    /// <summary>
    /// The fallback: this lane's 32 outputs of the warp tile (the C registers' rows and pixels), each summed over the same
    /// k-steps and words as <see cref="MmaTile"/>, four int8 products per word.
    /// </summary>
    private static void ScalarTile(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, SpikeGemmArgs p, int gemmRows,
        int r0, int n0, int group, int t)
    {
        int pixelWords = p.Cp / 4, rowWords = p.Kp / 4;
        for (int m = 0; m < 2; m++)
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 4; i += 2)
                {
                    int r = r0 + 16 * m + group + 4 * i, n = n0 + 8 * j + 2 * t;
                    if (r >= gemmRows || n >= p.Rows) continue;
                    int wa = RowStart(r, gemmRows, rowWords);
                    Window(p, n, out int fa, out int ya, out int xa);
                    Window(p, n + 1, out int fb, out int yb, out int xb);
                    int sa = 0, sb = 0, tapWord = 0;
                    for (int ky = 0; ky < p.KH; ky++)
                        for (int kx = 0; kx < p.KW; kx++, tapWord += pixelWords)
                        {
                            int ba = PixelStart(p, fa, ya + ky, xa + kx, pixelWords), bb = PixelStart(p, fb, yb + ky, xb + kx, pixelWords);
                            for (int cw = 0; cw < pixelWords; cw += 16)
                                for (int q = 0; q < 16 && cw + q < pixelWords; q++)
                                {
                                    int a = Word(weights, wa, tapWord + cw + q);
                                    sa += Dot4(a, Word(packed, ba, cw + q));
                                    sb += Dot4(a, Word(packed, bb, cw + q));
                                }
                        }
                    new SumsSink(sums, p, gemmRows, r, n).Pair(0, 0, sa, sb);
                }
    }

    /// <summary>Σ of the four signed byte products of two words.</summary>
    internal static int Dot4(int a, int b) =>
        (sbyte)a * (sbyte)b + (sbyte)(a >> 8) * (sbyte)(b >> 8) + (sbyte)(a >> 16) * (sbyte)(b >> 16) + (sbyte)(a >> 24) * (sbyte)(b >> 24);
}

/// <summary>Where a warp tile's sums go: pair (i, j) holds rows group + 8i, pixels 8j + 2t, 8j + 2t + 1 of the tile (<see cref="SpikeMmaKernels.StoreAccumulators{TSink}"/>).</summary>
internal interface ITileSink
{
    void Pair(int i, int j, int v0, int v1);
}

/// <summary>The int32 sums, C[r, n], for the epilogue kernels; <paramref name="rowGroup"/> = r0 + group, <paramref name="pixelPair"/> = n0 + 2t.</summary>
internal readonly struct SumsSink(ArrayView<int> sums, SpikeGemmArgs p, int gemmRows, int rowGroup, int pixelPair) : ITileSink
{
    public void Pair(int i, int j, int v0, int v1)
    {
        int r = rowGroup + 8 * i, n = pixelPair + 8 * j;
        if (r >= gemmRows || n >= p.Rows) return; // Rows is a multiple of 4, so n + 1 is inside with n
        long at = (long)r * p.Rows + n;
        sums[at] = v0;
        sums[at + 1] = v1;
    }
}

/// <summary>16 bytes of int8 codes or spikes: ILGPU loads this struct with one <c>ld.global.v4</c>.</summary>
internal struct Words4
{
    public int X, Y, Z, W;
}
