using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Scalars of one fused pointwise launch (<see cref="PointwiseMmaKernels"/>): a 1×1 stride-1 integer conv of spikes
/// input[frames, InChannels, HW] into output[frames, M, HW], the whole batch at once. GEMM column n is
/// (q = n / Steps, step s = n % Steps): with a fused LIF (Steps = T) the T steps of one pixel q of image q / HW are
/// neighbouring columns, so one lane holds all of them and runs the LIF in registers; without (Steps = 1) n is the
/// frame-major pixel index. Frames are time-first: step s of image b is frame s·Batch + b.
/// </summary>
internal struct PointwiseArgs
{
    /// <summary>Input channels, their padding to a multiple of 16 (A's row length in bytes), output channels, int8 digits per code.</summary>
    public int InChannels, Cp, M, Parts;
    /// <summary>Pixels per frame, columns q (images × HW), steps per q and images (frames / Steps).</summary>
    public int HW, Pixels, Steps, Batch;
    /// <summary>1: the LIF over the Steps steps is fused (output receives spikes); its threshold.</summary>
    public int Lif;
    public float Threshold;
    public int HasBias, BnCount;
    /// <summary>1 where four neighbouring columns are four neighbouring pixels of one frame (Steps = 1, HW a multiple of 4): 16-byte loads and stores.</summary>
    public int Vec;

    public readonly int Columns => Pixels * Steps;
}

/// <summary>
/// Fused pointwise convolution of spikes on tensor cores (issue 13): one kernel reads the layer's fp32 input straight from
/// its NCHW frames (no packing pass, no columns), sums int8 codes × spikes with <c>mma.sync.m16n8k32.s8.s8.s32</c> into
/// exact int32 sums, and applies the epilogue in registers (<see cref="SpikeGemmKernels.Scaled{TFma}"/>: scale, bias, BNs;
/// with <see cref="PointwiseArgs.Lif"/> the LIF over T, <see cref="SpikeGemmKernels.LifStep"/>) before writing fp32 NCHW
/// once. The sums equal cuBLAS's int8 GEMM bit for bit and so do the outputs (the same epilogue arithmetic).
/// <para>
/// One warp computes 32 output channels × 32 columns as 2 × 4 mma tiles per k-step of 32 channels, two k-steps per
/// 16-channel slice a lane loads. The codes are <see cref="GpuSpikeConv"/>'s int8 digits, digit planes stacked along M
/// (most significant first); the warp runs the channel loop once per digit and multiplies its accumulators by 256 between
/// digits, so the lane ends with the combined sum ((hi·256 + mid)·256 + lo, exact in int32 as the GEMM epilogue's).
/// Columns are assigned so that each lane's B fragment holds four neighbouring columns (n8 tile j, fragment column g ↔
/// warp column 4g + j: one 16-byte load of four pixels per channel where <see cref="PointwiseArgs.Vec"/>) and each lane's C
/// fragment eight neighbouring columns 8t .. 8t + 7 (C column 2t of tile j ↔ 8t + j, 2t + 1 ↔ 8t + 4 + j), which hold
/// whole T-step runs for T in 1, 2, 4, 8. Which channels fill which k bytes is free as long as A and B agree: lane t's
/// 16 channels 16t .. 16t + 15 of a 64-channel slice give words X, Y (first k-step) and Z, W (second), as in
/// <see cref="SpikeMmaKernels"/>. Accumulators are PTX registers pq0..pq31 (a local array would spill).
/// </para>
/// <para>Without inline PTX (ILGPU's CPU accelerator in tests) each lane computes the same 32 sums with scalar multiply-adds
/// over the same digits and columns and runs the same epilogue, so the indexing and the epilogue are checked there.</para>
/// </summary>
internal static class PointwiseMmaKernels
{
    public const int Lanes = 32, TileRows = 32, TileColumns = 32;

    /// <summary>
    /// Whether the fused kernel pays over packing, cuBLAS's int8 GEMM and the epilogue pass: where the GEMM has few rows
    /// (output channels × int8 digits) per input byte, since each warp tile of 32 rows reads the fp32 input again (from L2).
    /// The bound is measured (BENCHMARKS.md, branch <c>pointwise</c>).
    /// </summary>
    public static bool FusedPays(int gemmRows, int maxRows = FusedMaxRows) => gemmRows <= maxRows;

    /// <summary>GEMM rows up to which <see cref="FusedPays"/>.</summary>
    public const int FusedMaxRows = 256;

    /// <summary>Fused LIF step counts whose runs fit a lane's eight neighbouring columns.</summary>
    public static bool StepsFit(int timesteps) => timesteps is 1 or 2 or 4 or 8;

    /// <summary>Threads of a launch: one warp per tile of <see cref="TileRows"/> channels × <see cref="TileColumns"/> columns.</summary>
    public static long Threads(PointwiseArgs p) => (long)Lanes * ((p.M + TileRows - 1) / TileRows) * ((p.Columns + TileColumns - 1) / TileColumns);

    public static void Conv<TFma>(ArrayView<float> input, ArrayView<int> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p) where TFma : struct, IFma
    {
        int thread = Grid.IdxX * Group.DimX + Group.IdxX, tile = thread / Lanes, lane = thread - tile * Lanes;
        int rowTiles = (p.M + TileRows - 1) / TileRows, columnTile = tile / rowTiles;
        int r0 = (tile - columnTile * rowTiles) * TileRows, n0 = columnTile * TileColumns;
        if (n0 >= p.Columns) return; // the whole warp: launches are rounded up to whole groups
        int group = lane >> 2, t = lane & 3;
        if (CudaAsm.IsSupported) MmaTile<TFma>(input, weights, output, scales, bias, bn, p, r0, n0, group, t);
        else ScalarTile<TFma>(input, weights, output, scales, bias, bn, p, r0, n0, group, t);
    }

    /// <summary>Offset of column n's element of channel 0 in the input (add c·HW for channel c), or −1 past the columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ColumnBase(PointwiseArgs p, int n)
    {
        if (n >= p.Columns) return -1;
        int q = n / p.Steps, s = n - q * p.Steps, item = q / p.HW, pix = q - item * p.HW;
        return (s * p.Batch + item) * p.InChannels * p.HW + pix;
    }

    /// <summary>Index of A's row r (digit plane <paramref name="digit"/>) in 16-byte quads, or −1 past the output channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RowQuad(PointwiseArgs p, int digit, int r) => r < p.M ? (digit * p.M + r) * (p.Cp / 16) : -1;

    /// <summary>Spike (0 or 1, as the packing kernels read x ≠ 0) of channel c at column base b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Spike(ArrayView<float> x, PointwiseArgs p, int b, int c) => b >= 0 && c < p.InChannels && x[(long)b + (long)c * p.HW] != 0f ? 1 : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Bit(float v, int shift) => v != 0f ? 1 << shift : 0;

    /// <summary>
    /// Channels c .. c + 3 at four columns packed into one word per column (byte i = channel c + i): where
    /// <see cref="PointwiseArgs.Vec"/>, one 16-byte load per channel of the four neighbouring pixels at <paramref name="b0"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quartet(ArrayView<float> x, PointwiseArgs p, int b0, int b1, int b2, int b3, int c, out int w0, out int w1, out int w2, out int w3)
    {
        if (p.Vec != 0)
        {
            var quads = x.Cast<Floats4>();
            var a = Load4(quads, p, b0, c);
            var b = Load4(quads, p, b0, c + 1);
            var d = Load4(quads, p, b0, c + 2);
            var e = Load4(quads, p, b0, c + 3);
            w0 = Bit(a.X, 0) | Bit(b.X, 8) | Bit(d.X, 16) | Bit(e.X, 24);
            w1 = Bit(a.Y, 0) | Bit(b.Y, 8) | Bit(d.Y, 16) | Bit(e.Y, 24);
            w2 = Bit(a.Z, 0) | Bit(b.Z, 8) | Bit(d.Z, 16) | Bit(e.Z, 24);
            w3 = Bit(a.W, 0) | Bit(b.W, 8) | Bit(d.W, 16) | Bit(e.W, 24);
            return;
        }
        w0 = Spike(x, p, b0, c) | Spike(x, p, b0, c + 1) << 8 | Spike(x, p, b0, c + 2) << 16 | Spike(x, p, b0, c + 3) << 24;
        w1 = Spike(x, p, b1, c) | Spike(x, p, b1, c + 1) << 8 | Spike(x, p, b1, c + 2) << 16 | Spike(x, p, b1, c + 3) << 24;
        w2 = Spike(x, p, b2, c) | Spike(x, p, b2, c + 1) << 8 | Spike(x, p, b2, c + 2) << 16 | Spike(x, p, b2, c + 3) << 24;
        w3 = Spike(x, p, b3, c) | Spike(x, p, b3, c + 1) << 8 | Spike(x, p, b3, c + 2) << 16 | Spike(x, p, b3, c + 3) << 24;
    }

    /// <summary>Channel c of the four pixels at column base b (a multiple of 4 where Vec), zeros past the columns or channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Floats4 Load4(ArrayView<Floats4> quads, PointwiseArgs p, int b, int c) =>
        b >= 0 && c < p.InChannels ? quads[((long)b + (long)c * p.HW) >> 2] : default;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Words4 Quad(ArrayView<Words4> view, int at, int offset) => at < 0 ? default : view[at + offset];

    /// <summary>The tensor-core body (see the class remarks for the fragment layout).</summary>
    private static void MmaTile<TFma>(ArrayView<float> input, ArrayView<int> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, int r0, int n0, int group, int t) where TFma : struct, IFma
    {
        var weightQuads = weights.Cast<Words4>();
        int quads = p.Cp / 16;
        // This lane's B columns n0 + 4·group + j, j = 0..3.
        int nb = n0 + 4 * group;
        int b0 = ColumnBase(p, nb), b1 = ColumnBase(p, nb + 1), b2 = ColumnBase(p, nb + 2), b3 = ColumnBase(p, nb + 3);
        CudaAsm.Emit(".reg .b32 pq<32>; mov.b32 pq0, 0; mov.b32 pq1, 0; mov.b32 pq2, 0; mov.b32 pq3, 0; mov.b32 pq4, 0; mov.b32 pq5, 0; mov.b32 pq6, 0; mov.b32 pq7, 0; mov.b32 pq8, 0; mov.b32 pq9, 0; mov.b32 pq10, 0; mov.b32 pq11, 0; mov.b32 pq12, 0; mov.b32 pq13, 0; mov.b32 pq14, 0; mov.b32 pq15, 0; mov.b32 pq16, 0; mov.b32 pq17, 0; mov.b32 pq18, 0; mov.b32 pq19, 0; mov.b32 pq20, 0; mov.b32 pq21, 0; mov.b32 pq22, 0; mov.b32 pq23, 0; mov.b32 pq24, 0; mov.b32 pq25, 0; mov.b32 pq26, 0; mov.b32 pq27, 0; mov.b32 pq28, 0; mov.b32 pq29, 0; mov.b32 pq30, 0; mov.b32 pq31, 0;");
        for (int digit = 0; digit < p.Parts; digit++)
        {
            if (digit > 0)
                CudaAsm.Emit("shl.b32 pq0, pq0, 8; shl.b32 pq1, pq1, 8; shl.b32 pq2, pq2, 8; shl.b32 pq3, pq3, 8; shl.b32 pq4, pq4, 8; shl.b32 pq5, pq5, 8; shl.b32 pq6, pq6, 8; shl.b32 pq7, pq7, 8; shl.b32 pq8, pq8, 8; shl.b32 pq9, pq9, 8; shl.b32 pq10, pq10, 8; shl.b32 pq11, pq11, 8; shl.b32 pq12, pq12, 8; shl.b32 pq13, pq13, 8; shl.b32 pq14, pq14, 8; shl.b32 pq15, pq15, 8; shl.b32 pq16, pq16, 8; shl.b32 pq17, pq17, 8; shl.b32 pq18, pq18, 8; shl.b32 pq19, pq19, 8; shl.b32 pq20, pq20, 8; shl.b32 pq21, pq21, 8; shl.b32 pq22, pq22, 8; shl.b32 pq23, pq23, 8; shl.b32 pq24, pq24, 8; shl.b32 pq25, pq25, 8; shl.b32 pq26, pq26, 8; shl.b32 pq27, pq27, 8; shl.b32 pq28, pq28, 8; shl.b32 pq29, pq29, 8; shl.b32 pq30, pq30, 8; shl.b32 pq31, pq31, 8;");
            int w0 = RowQuad(p, digit, r0 + group), w1 = RowQuad(p, digit, r0 + group + 8);
            int w2 = RowQuad(p, digit, r0 + group + 16), w3 = RowQuad(p, digit, r0 + group + 24);
            for (int cq = 0; cq < quads; cq += 4)
            {
                int q = cq + t, c = 16 * q;
                bool inside = q < quads;
                var A0 = Quad(weightQuads, inside ? w0 : -1, q);
                var A1 = Quad(weightQuads, inside ? w1 : -1, q);
                var A2 = Quad(weightQuads, inside ? w2 : -1, q);
                var A3 = Quad(weightQuads, inside ? w3 : -1, q);
                // Bxj: column j's words of channels c .. c + 15 (x: c .. c + 3, y: + 4 .., z: + 8 .., w: + 12 ..); past Cp the codes are zero.
                Quartet(input, p, b0, b1, b2, b3, c, out int x0, out int x1, out int x2, out int x3);
                Quartet(input, p, b0, b1, b2, b3, c + 4, out int y0, out int y1, out int y2, out int y3);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq0,pq1,pq2,pq3}, {%0,%1,%2,%3}, {%4,%5}, {pq0,pq1,pq2,pq3};", A0.X, A1.X, A0.Y, A1.Y, x0, y0);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq4,pq5,pq6,pq7}, {%0,%1,%2,%3}, {%4,%5}, {pq4,pq5,pq6,pq7};", A0.X, A1.X, A0.Y, A1.Y, x1, y1);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq8,pq9,pq10,pq11}, {%0,%1,%2,%3}, {%4,%5}, {pq8,pq9,pq10,pq11};", A0.X, A1.X, A0.Y, A1.Y, x2, y2);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq12,pq13,pq14,pq15}, {%0,%1,%2,%3}, {%4,%5}, {pq12,pq13,pq14,pq15};", A0.X, A1.X, A0.Y, A1.Y, x3, y3);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq16,pq17,pq18,pq19}, {%0,%1,%2,%3}, {%4,%5}, {pq16,pq17,pq18,pq19};", A2.X, A3.X, A2.Y, A3.Y, x0, y0);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq20,pq21,pq22,pq23}, {%0,%1,%2,%3}, {%4,%5}, {pq20,pq21,pq22,pq23};", A2.X, A3.X, A2.Y, A3.Y, x1, y1);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq24,pq25,pq26,pq27}, {%0,%1,%2,%3}, {%4,%5}, {pq24,pq25,pq26,pq27};", A2.X, A3.X, A2.Y, A3.Y, x2, y2);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq28,pq29,pq30,pq31}, {%0,%1,%2,%3}, {%4,%5}, {pq28,pq29,pq30,pq31};", A2.X, A3.X, A2.Y, A3.Y, x3, y3);
                Quartet(input, p, b0, b1, b2, b3, c + 8, out int z0, out int z1, out int z2, out int z3);
                Quartet(input, p, b0, b1, b2, b3, c + 12, out int v0, out int v1, out int v2, out int v3);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq0,pq1,pq2,pq3}, {%0,%1,%2,%3}, {%4,%5}, {pq0,pq1,pq2,pq3};", A0.Z, A1.Z, A0.W, A1.W, z0, v0);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq4,pq5,pq6,pq7}, {%0,%1,%2,%3}, {%4,%5}, {pq4,pq5,pq6,pq7};", A0.Z, A1.Z, A0.W, A1.W, z1, v1);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq8,pq9,pq10,pq11}, {%0,%1,%2,%3}, {%4,%5}, {pq8,pq9,pq10,pq11};", A0.Z, A1.Z, A0.W, A1.W, z2, v2);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq12,pq13,pq14,pq15}, {%0,%1,%2,%3}, {%4,%5}, {pq12,pq13,pq14,pq15};", A0.Z, A1.Z, A0.W, A1.W, z3, v3);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq16,pq17,pq18,pq19}, {%0,%1,%2,%3}, {%4,%5}, {pq16,pq17,pq18,pq19};", A2.Z, A3.Z, A2.W, A3.W, z0, v0);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq20,pq21,pq22,pq23}, {%0,%1,%2,%3}, {%4,%5}, {pq20,pq21,pq22,pq23};", A2.Z, A3.Z, A2.W, A3.W, z1, v1);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq24,pq25,pq26,pq27}, {%0,%1,%2,%3}, {%4,%5}, {pq24,pq25,pq26,pq27};", A2.Z, A3.Z, A2.W, A3.W, z2, v2);
                CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pq28,pq29,pq30,pq31}, {%0,%1,%2,%3}, {%4,%5}, {pq28,pq29,pq30,pq31};", A2.Z, A3.Z, A2.W, A3.W, z3, v3);
            }
        }
        // pq[4(4m + j) + i]: m16 tile m, n8 tile j; i = 0, 1: row g at C columns 2t, 2t + 1 (warp columns 8t + j, 8t + 4 + j); i = 2, 3: row g + 8.
        CudaAsm.Emit("mov.b32 %0, pq0;", out int a00); CudaAsm.Emit("mov.b32 %0, pq1;", out int a04);
        CudaAsm.Emit("mov.b32 %0, pq2;", out int b00); CudaAsm.Emit("mov.b32 %0, pq3;", out int b04);
        CudaAsm.Emit("mov.b32 %0, pq4;", out int a01); CudaAsm.Emit("mov.b32 %0, pq5;", out int a05);
        CudaAsm.Emit("mov.b32 %0, pq6;", out int b01); CudaAsm.Emit("mov.b32 %0, pq7;", out int b05);
        CudaAsm.Emit("mov.b32 %0, pq8;", out int a02); CudaAsm.Emit("mov.b32 %0, pq9;", out int a06);
        CudaAsm.Emit("mov.b32 %0, pq10;", out int b02); CudaAsm.Emit("mov.b32 %0, pq11;", out int b06);
        CudaAsm.Emit("mov.b32 %0, pq12;", out int a03); CudaAsm.Emit("mov.b32 %0, pq13;", out int a07);
        CudaAsm.Emit("mov.b32 %0, pq14;", out int b03); CudaAsm.Emit("mov.b32 %0, pq15;", out int b07);
        CudaAsm.Emit("mov.b32 %0, pq16;", out int c00); CudaAsm.Emit("mov.b32 %0, pq17;", out int c04);
        CudaAsm.Emit("mov.b32 %0, pq18;", out int d00); CudaAsm.Emit("mov.b32 %0, pq19;", out int d04);
        CudaAsm.Emit("mov.b32 %0, pq20;", out int c01); CudaAsm.Emit("mov.b32 %0, pq21;", out int c05);
        CudaAsm.Emit("mov.b32 %0, pq22;", out int d01); CudaAsm.Emit("mov.b32 %0, pq23;", out int d05);
        CudaAsm.Emit("mov.b32 %0, pq24;", out int c02); CudaAsm.Emit("mov.b32 %0, pq25;", out int c06);
        CudaAsm.Emit("mov.b32 %0, pq26;", out int d02); CudaAsm.Emit("mov.b32 %0, pq27;", out int d06);
        CudaAsm.Emit("mov.b32 %0, pq28;", out int c03); CudaAsm.Emit("mov.b32 %0, pq29;", out int c07);
        CudaAsm.Emit("mov.b32 %0, pq30;", out int d03); CudaAsm.Emit("mov.b32 %0, pq31;", out int d07);
        int nc = n0 + 8 * t;
        Row8<TFma>(output, scales, bias, bn, p, r0 + group, nc, a00, a01, a02, a03, a04, a05, a06, a07);
        Row8<TFma>(output, scales, bias, bn, p, r0 + group + 8, nc, b00, b01, b02, b03, b04, b05, b06, b07);
        Row8<TFma>(output, scales, bias, bn, p, r0 + group + 16, nc, c00, c01, c02, c03, c04, c05, c06, c07);
        Row8<TFma>(output, scales, bias, bn, p, r0 + group + 24, nc, d00, d01, d02, d03, d04, d05, d06, d07);
    }

    /// <summary>The fallback: this lane's 4 rows × 8 columns (those of its C fragments), summed digit by digit as <see cref="MmaTile{TFma}"/> does.</summary>
    private static void ScalarTile<TFma>(ArrayView<float> input, ArrayView<int> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, int r0, int n0, int group, int t) where TFma : struct, IFma
    {
        int nc = n0 + 8 * t;
        for (int m = 0; m < 4; m++)
        {
            int r = r0 + group + 8 * m;
            Row8<TFma>(output, scales, bias, bn, p, r, nc,
                ScalarSum(input, weights, p, r, nc), ScalarSum(input, weights, p, r, nc + 1), ScalarSum(input, weights, p, r, nc + 2), ScalarSum(input, weights, p, r, nc + 3),
                ScalarSum(input, weights, p, r, nc + 4), ScalarSum(input, weights, p, r, nc + 5), ScalarSum(input, weights, p, r, nc + 6), ScalarSum(input, weights, p, r, nc + 7));
        }
    }

    /// <summary>Σ over digits (most significant first, ·256 between) of Σ_c code·spike for row r, column n (int32, wrapping as the mma's accumulators).</summary>
    private static int ScalarSum(ArrayView<float> input, ArrayView<int> weights, PointwiseArgs p, int r, int n)
    {
        int b = ColumnBase(p, n), acc = 0;
        if (r >= p.M) return 0;
        var codes = weights.Cast<sbyte>();
        for (int digit = 0; digit < p.Parts; digit++)
        {
            acc <<= 8;
            long row = (long)(digit * p.M + r) * p.Cp;
            for (int c = 0; c < p.InChannels; c++) acc += codes[row + c] * Spike(input, p, b, c);
        }
        return acc;
    }

    /// <summary>Lane value k of eight (a select chain: indexing locals would put them in a local array).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Pick(int k, int v0, int v1, int v2, int v3, int v4, int v5, int v6, int v7) =>
        k < 4 ? (k < 2 ? (k == 0 ? v0 : v1) : (k == 2 ? v2 : v3)) : (k < 6 ? (k == 4 ? v4 : v5) : (k == 6 ? v6 : v7));

    /// <summary>
    /// The epilogue of output channel r at columns n .. n + 7 (sums v0..v7): without a LIF, scale/bias/BNs into
    /// output[frame, r, pix] (two 16-byte stores where <see cref="PointwiseArgs.Vec"/>); with, each run of Steps columns
    /// (the T steps of one pixel) through the LIF in step order, spikes to their frames.
    /// </summary>
    private static void Row8<TFma>(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p,
        int r, int n, int v0, int v1, int v2, int v3, int v4, int v5, int v6, int v7) where TFma : struct, IFma
    {
        if (r >= p.M || n >= p.Columns) return;
        var e = new SpikeGemmArgs { M = p.M, HasBias = p.HasBias, BnCount = p.BnCount };
        if (p.Lif != 0)
        {
            for (int k0 = 0; k0 < 8; k0 += p.Steps)
            {
                int q = (n + k0) / p.Steps;
                if (q >= p.Pixels) return;
                int item = q / p.HW, pix = q - item * p.HW;
                float v = 0f;
                for (int s = 0; s < p.Steps; s++)
                {
                    float x = SpikeGemmKernels.Scaled<TFma>(Pick(k0 + s, v0, v1, v2, v3, v4, v5, v6, v7), r, scales, bias, bn, e);
                    v = SpikeGemmKernels.LifStep(x, v, p.Threshold, output, ((long)(s * p.Batch + item) * p.M + r) * p.HW + pix);
                }
            }
            return;
        }
        if (p.Vec != 0)
        {
            // n and n + 4 start runs of four pixels of one frame each (HW a multiple of 4).
            var quads = output.Cast<Floats4>();
            int f = n / p.HW;
            quads[(((long)f * p.M + r) * p.HW + n - f * p.HW) >> 2] = new Floats4
            {
                X = SpikeGemmKernels.Scaled<TFma>(v0, r, scales, bias, bn, e), Y = SpikeGemmKernels.Scaled<TFma>(v1, r, scales, bias, bn, e),
                Z = SpikeGemmKernels.Scaled<TFma>(v2, r, scales, bias, bn, e), W = SpikeGemmKernels.Scaled<TFma>(v3, r, scales, bias, bn, e),
            };
            if (n + 4 >= p.Columns) return;
            f = (n + 4) / p.HW;
            quads[(((long)f * p.M + r) * p.HW + n + 4 - f * p.HW) >> 2] = new Floats4
            {
                X = SpikeGemmKernels.Scaled<TFma>(v4, r, scales, bias, bn, e), Y = SpikeGemmKernels.Scaled<TFma>(v5, r, scales, bias, bn, e),
                Z = SpikeGemmKernels.Scaled<TFma>(v6, r, scales, bias, bn, e), W = SpikeGemmKernels.Scaled<TFma>(v7, r, scales, bias, bn, e),
            };
            return;
        }
        for (int k = 0; k < 8 && n + k < p.Columns; k++)
        {
            int f = (n + k) / p.HW;
            output[((long)f * p.M + r) * p.HW + n + k - f * p.HW] = SpikeGemmKernels.Scaled<TFma>(Pick(k, v0, v1, v2, v3, v4, v5, v6, v7), r, scales, bias, bn, e);
        }
    }
}

/// <summary>16 bytes of fp32 values: ILGPU loads and stores this struct with one <c>ld/st.global.v4</c>.</summary>
internal struct Floats4
{
    public float X, Y, Z, W;
}
