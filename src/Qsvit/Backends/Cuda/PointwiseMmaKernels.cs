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
    /// <summary>Pixels per frame, pixels q (images × HW), steps per q and images (frames / Steps).</summary>
    public int HW, Pixels, Steps, Batch;
    /// <summary>1: the LIF over the Steps steps is fused (output receives spikes); its threshold.</summary>
    public int Lif;
    public float Threshold;
    public int HasBias, BnCount;
    /// <summary>1 where HW is a multiple of 4: four neighbouring pixels of one frame are one 16-byte load or store.</summary>
    public int Vec;
    /// <summary>Warps of a group along the output channels (1, 2 or 4) and along the columns (4 / RowWarps).</summary>
    public int RowWarps, ColumnWarps;
    /// <summary>
    /// 1: where the whole input fits one stage (one int8 digit, Cp ≤ <see cref="PointwiseMmaKernels.ChunkChannels"/>; on the
    /// real-input kernel Cp ≤ <see cref="RealChunk"/>), the group issues all its staging loads before any accumulator is live.
    /// </summary>
    public int Whole;
    /// <summary>Input channels per stage of the real-input kernel (a multiple of 32: <see cref="PointwiseMmaKernels.RealChunkFor"/>).</summary>
    public int RealChunk;

    public readonly int Columns => Pixels * Steps;
}

/// <summary>
/// Fused pointwise convolution of spikes on tensor cores (issue 13): one kernel reads the layer's fp32 input straight from
/// its NCHW frames (no packing pass, no columns), sums int8 codes × spikes with <c>mma.sync.m16n8k32.s8.s8.s32</c> into
/// exact int32 sums, and applies the epilogue in registers (<see cref="SpikeGemmKernels.Scaled{TFma}"/>'s arithmetic:
/// scale, bias, BNs; with <see cref="PointwiseArgs.Lif"/> the LIF over T, <see cref="SpikeGemmKernels.LifStep"/>) before
/// writing fp32 NCHW once. The sums equal cuBLAS's int8 GEMM bit for bit and so do the outputs.
/// <para>
/// A group of four warps covers 32·RowWarps output channels × 32·ColumnWarps GEMM columns; each warp a tile of 32 × 32
/// as 2 × 4 mma tiles per k-step of 32 channels. Per chunk of <see cref="ChunkChannels"/> channels the group stages its
/// columns' spikes once, as int8 in shared memory (<see cref="Stage"/>: 16-byte loads of four neighbouring pixels of a
/// channel plane, coalesced along the plane), so the fp32 input is read once per group rather than once per warp. GEMM
/// column n is (pixel q = n / Steps, step s = n % Steps): with a fused LIF (Steps = T) the T steps of a pixel are
/// neighbouring columns. Fragment columns: n8 tile j's column c is warp column 4c + j, so each lane's C fragment holds
/// warp columns 8t .. 8t + 7 (C column 2t of tile j ↔ 8t + j, 2t + 1 ↔ 8t + 4 + j): whole T-step runs for T in 1, 2, 4,
/// 8 (the LIF runs in registers) or eight neighbouring pixels (two 16-byte stores). Lane t's 16 channels 16t .. 16t + 15
/// of a 64-channel step give words X, Y (first k-step) and Z, W (second), for A (from global, L1-resident) and B (one
/// 16-byte shared load per n8 tile) alike, as in <see cref="SpikeMmaKernels"/>.
/// </para>
/// <para>
/// Codes are <see cref="GpuSpikeConv"/>'s int8 digits, digit planes stacked along M (most significant first): the group
/// runs the channel loop once per digit and shifts its accumulators left by 8 between digits, so each ends with
/// ((hi·256 + mid)·256 + lo), the GEMM epilogue's combination (int32, wrapping alike). Accumulators are PTX registers
/// mq0..mq31, zeroed, stepped and shifted by <see cref="SpikeMmaKernels"/>'s inlined helpers (a local array would spill).
/// Where one int8 digit and one stage cover the input (<see cref="PointwiseArgs.Whole"/>, <see cref="WholeStage"/>: Cp ≤
/// 128) the group stages it with two items' loads in flight per thread (<see cref="StageTwo"/>) before the accumulators
/// are zeroed, so the staging's registers do not add to theirs. Without inline PTX (ILGPU's CPU accelerator in tests) the
/// same staging runs and each lane sums its 4 rows × 8 columns from the staged bytes with scalar multiply-adds, then the
/// same epilogue.
/// </para>
/// </summary>
internal static partial class PointwiseMmaKernels
{
    public const int Lanes = 32, GroupSize = 4 * Lanes;

    /// <summary>Input channels staged per chunk (four 64-channel steps), and a staged column's length in words, padded so the 16-byte fragment loads of a warp hit distinct banks.</summary>
    public const int ChunkChannels = 128, ColumnWords = ChunkChannels / 4 + 4;

    /// <summary>Staged words: up to 128 columns of a group.</summary>
    private const int StageWords = 4 * 32 * ColumnWords;

    /// <summary>
    /// Whether the fused kernel pays over packing, cuBLAS's int8 GEMM and the epilogue pass: where the GEMM has few rows
    /// (output channels × int8 digits), since its mma.sync tiles run well below cuBLAS's rate and each group of 128 rows
    /// reads the input again. Measured on an H200 (BENCHMARKS.md, branch <c>pointwise</c>): every CIFAR 1×1 layer with
    /// ≤ 192 rows ran 1.07–2.5x faster (128→128 at 4×4 x4000 frames 0.058 ms against 0.115, 16→32 + LIF at 32×32
    /// 0.73 against 1.82), the 55M preset's 128-row LIF layer at 112×112 0.95x, its 256-row one 0.87x, and every layer
    /// with ≥ 512 rows 0.43–0.96x (the 55M's 512→512 at 14×14 1.06x, its MLPs 0.43–0.81x).
    /// </summary>
    public static bool FusedPays(int gemmRows, int maxRows = FusedMaxRows) => gemmRows <= maxRows;

    /// <summary>GEMM rows up to which <see cref="FusedPays"/>.</summary>
    public const int FusedMaxRows = 192;

    /// <summary>
    /// Whether the fused kernel pays on maps of <paramref name="pixels"/> a frame (with <see cref="FusedPays"/>): up to
    /// <see cref="FusedMaxPixels"/>. Measured on an H200 (BENCHMARKS.md, twelfth session, with the four-pixel packer on the
    /// cuBLAS side): the 55M's 64→128 + LIF at 112×112 1.62 ms fused against 1.07 through packed columns and cuBLAS's int8
    /// GEMM, while every CIFAR 1×1 (maps up to 32×32) stays faster fused (the CIFAR model 43,691 against 40,133 images/s
    /// with every integer 1×1 on cuBLAS). The bound lies between the two measured sizes.
    /// </summary>
    public static bool FusedPaysAt(int pixels) => pixels <= FusedMaxPixels;

    /// <summary>Pixels a frame up to which <see cref="FusedPaysAt"/> (56×56).</summary>
    public const int FusedMaxPixels = 3136;

    /// <summary>
    /// Whether a real-input 1×1 layer of <paramref name="outChannels"/> runs as the fused bf16 kernel (<see cref="RealConv{TFma}"/>)
    /// rather than the split pass, cuBLAS's bf16 GEMM and the epilogue pass. Measured on an H200 (BENCHMARKS.md, eighth
    /// session): faster at 64 and 128 output channels (0.40 against 0.64 ms and 2.28 against 2.62 ms a pass), slower from 192.
    /// </summary>
    public static bool RealFusedPays(int outChannels, int maxOutChannels = RealFusedMaxOutChannels) => outChannels <= maxOutChannels;

    /// <summary>Output channels up to which <see cref="RealFusedPays"/>.</summary>
    public const int RealFusedMaxOutChannels = 128;

    /// <summary>Fused LIF step counts whose runs fit a lane's eight neighbouring columns.</summary>
    public static bool StepsFit(int timesteps) => timesteps is 1 or 2 or 4 or 8;

    /// <summary>Warps along the output channels for <paramref name="m"/> of them: as many 32-row tiles as there are, up to 4.</summary>
    public static int RowWarpsFor(int m) => m <= 32 ? 1 : m <= 64 ? 2 : 4;

    /// <summary>
    /// Whether the integer kernel stages its whole input at once (<see cref="PointwiseArgs.Whole"/>: all staging loads in
    /// flight before any accumulator is live): one int8 digit and Cp ≤ <see cref="ChunkChannels"/> (the real-input kernel
    /// where Cp ≤ <see cref="RealChunkFor"/>). Measured on an H200 (BENCHMARKS.md, tenth session, repconv4):
    /// the int8 1×1 of CIFAR's 128→128 RepConv at 4×4 x4000 frames 59.1 → 50.8 µs (Nsight Compute); with the real 1×1's
    /// whole stage and the depthwise conv's plane per thread (<see cref="GpuOps.Border3PlanesFit"/>) the 128-channel
    /// RepConvs 4.944 → 4.187 ms a pass (profile); the other fused int8 1×1s within 1 % under Nsight Compute, 0.93–0.97x
    /// in the profile.
    /// </summary>
    public static bool WholeStage(int parts, int cp) => parts == 1 && cp <= ChunkChannels;

    /// <summary>Groups of a launch: one per 32·RowWarps channels × 32·ColumnWarps columns, channel blocks fastest.</summary>
    public static long Groups(PointwiseArgs p) =>
        (long)((p.M + 32 * p.RowWarps - 1) / (32 * p.RowWarps)) * ((p.Columns + 32 * p.ColumnWarps - 1) / (32 * p.ColumnWarps));

    public static void Conv<TFma>(ArrayView<float> input, ArrayView<int> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p) where TFma : struct, IFma
    {
        var stage = SharedMemory.Allocate<Words4>(StageWords / 4);
        bool active = Place(p, out int r0, out int n0, out int warpColumn, out int group, out int t);
        if (CudaAsm.IsSupported) MmaTile<TFma>(input, weights, output, scales, bias, bn, p, stage, r0, n0, warpColumn, active, group, t);
        else ScalarTile<TFma>(input, weights, output, scales, bias, bn, p, stage, r0, n0, warpColumn, active, group, t);
    }

    /// <summary>
    /// This lane's place in the launch: its warp's first output channel r0, the group's first column n0 (a whole number of
    /// pixels: 32 is a multiple of Steps), the warp's first column within the group, the lane's group and thread in group
    /// (mma fragment coordinates); false where the warp's tile lies past the channels or columns.
    /// </summary>
    private static bool Place(PointwiseArgs p, out int r0, out int n0, out int warpColumn, out int group, out int t)
    {
        int warp = Group.IdxX / Lanes, lane = Group.IdxX - warp * Lanes;
        group = lane >> 2;
        t = lane & 3;
        int rowWarp = warp % p.RowWarps, columnWarp = warp / p.RowWarps;
        int rowBlocks = (p.M + 32 * p.RowWarps - 1) / (32 * p.RowWarps), columnBlock = Grid.IdxX / rowBlocks;
        r0 = (Grid.IdxX - columnBlock * rowBlocks) * 32 * p.RowWarps + 32 * rowWarp;
        n0 = columnBlock * 32 * p.ColumnWarps;
        warpColumn = 32 * columnWarp;
        return r0 < p.M && n0 + warpColumn < p.Columns;
    }

    /// <summary>
    /// The group's columns n0 .. n0 + 32·ColumnWarps at channels c0 .. c0 + <see cref="ChunkChannels"/> into shared memory as
    /// int8 spikes: stage word [column · ColumnWords + w] holds channels c0 + 4w .. + 3 (byte i: channel + i). One work item
    /// is four neighbouring pixels of one step × four channels (four 16-byte loads where <see cref="PointwiseArgs.Vec"/>);
    /// neighbouring lanes take neighbouring pixels of one plane. Channels at or past Cp are not staged (their codes are zero).
    /// </summary>
    internal static void Stage(ArrayView<float> x, PointwiseArgs p, ArrayView<int> stage, int n0, int c0)
    {
        int items = StageItems(p, c0);
        for (int it = Group.IdxX; it < items; it += Group.DimX)
        {
            int at = StageItem(x, p, n0, c0, it, out int w0, out int w1, out int w2, out int w3);
            StoreItem(stage, p, at, w0, w1, w2, w3);
        }
    }

    /// <summary>
    /// <see cref="Stage"/> with two work items per thread and round, both items' loads issued before either is stored
    /// (eight 16-byte loads in flight where <see cref="PointwiseArgs.Vec"/>); for <see cref="PointwiseArgs.Whole"/> stages,
    /// where no accumulator is live yet.
    /// </summary>
    internal static void StageTwo(ArrayView<float> x, PointwiseArgs p, ArrayView<int> stage, int n0, int c0)
    {
        int items = StageItems(p, c0);
        for (int it = Group.IdxX; it < items; it += 2 * Group.DimX)
        {
            int next = it + Group.DimX < items ? it + Group.DimX : it; // past the items: item it again (the same words to the same place)
            int at = StageItem(x, p, n0, c0, it, out int w0, out int w1, out int w2, out int w3);
            int at2 = StageItem(x, p, n0, c0, next, out int v0, out int v1, out int v2, out int v3);
            StoreItem(stage, p, at, w0, w1, w2, w3);
            StoreItem(stage, p, at2, v0, v1, v2, v3);
        }
    }

    /// <summary>Work items of <see cref="Stage"/> at channels c0 ..: channel quartets × groups of four pixels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int StageItems(PointwiseArgs p, int c0) => Math.Min(ChunkChannels, p.Cp - c0) / 4 * (32 * p.ColumnWarps / 4);

    /// <summary>Work item <paramref name="it"/> of <see cref="Stage"/>: its four words (one per pixel) and the first one's stage word.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int StageItem(ArrayView<float> x, PointwiseArgs p, int n0, int c0, int it, out int w0, out int w1, out int w2, out int w3)
    {
        int pixelGroups = 32 * p.ColumnWarps / 4, groupsPerStep = pixelGroups / p.Steps, q00 = n0 / p.Steps;
        int cq = it / pixelGroups, pg = it - cq * pixelGroups, s = pg / groupsPerStep, q0 = q00 + 4 * (pg - s * groupsPerStep), c = c0 + 4 * cq;
        if (p.Vec != 0)
        {
            int b = PixelBase(p, q0, s);
            var quads = x.Cast<Floats4>();
            var a = Load4(quads, p, b, c);
            var e = Load4(quads, p, b, c + 1);
            var f = Load4(quads, p, b, c + 2);
            var h = Load4(quads, p, b, c + 3);
            w0 = Bit(a.X, 0) | Bit(e.X, 8) | Bit(f.X, 16) | Bit(h.X, 24);
            w1 = Bit(a.Y, 0) | Bit(e.Y, 8) | Bit(f.Y, 16) | Bit(h.Y, 24);
            w2 = Bit(a.Z, 0) | Bit(e.Z, 8) | Bit(f.Z, 16) | Bit(h.Z, 24);
            w3 = Bit(a.W, 0) | Bit(e.W, 8) | Bit(f.W, 16) | Bit(h.W, 24);
        }
        else
        {
            w0 = Word(x, p, PixelBase(p, q0, s), c);
            w1 = Word(x, p, PixelBase(p, q0 + 1, s), c);
            w2 = Word(x, p, PixelBase(p, q0 + 2, s), c);
            w3 = Word(x, p, PixelBase(p, q0 + 3, s), c);
        }
        return ((q0 - q00) * p.Steps + s) * ColumnWords + cq;
    }

    /// <summary>The four words of a <see cref="Stage"/> item: its pixels are Steps columns apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreItem(ArrayView<int> stage, PointwiseArgs p, int at, int w0, int w1, int w2, int w3)
    {
        int step = p.Steps * ColumnWords;
        stage[at] = w0;
        stage[at + step] = w1;
        stage[at + 2 * step] = w2;
        stage[at + 3 * step] = w3;
    }

    /// <summary>Offset of pixel q's element of channel 0 at step s in the input (add c·HW for channel c), or −1 past the pixels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int PixelBase(PointwiseArgs p, int q, int s)
    {
        if (q >= p.Pixels) return -1;
        int item = q / p.HW;
        return (s * p.Batch + item) * p.InChannels * p.HW + q - item * p.HW;
    }

    /// <summary>Spikes (x ≠ 0, as the packing kernels read them) of channels c .. c + 3 at pixel base b as one word, byte i = channel c + i.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Word(ArrayView<float> x, PointwiseArgs p, int b, int c) =>
        Spike(x, p, b, c) | Spike(x, p, b, c + 1) << 8 | Spike(x, p, b, c + 2) << 16 | Spike(x, p, b, c + 3) << 24;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Spike(ArrayView<float> x, PointwiseArgs p, int b, int c) => b >= 0 && c < p.InChannels && x[(long)b + (long)c * p.HW] != 0f ? 1 : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Bit(float v, int shift) => v != 0f ? 1 << shift : 0;

    /// <summary>Channel c of the four pixels at base b (a multiple of 4 where Vec), zeros past the pixels or channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Floats4 Load4(ArrayView<Floats4> quads, PointwiseArgs p, int b, int c) =>
        b >= 0 && c < p.InChannels ? quads[((long)b + (long)c * p.HW) >> 2] : default;

    /// <summary>Index of A's row r (digit plane <paramref name="digit"/>) in 16-byte quads, or −1 past the output channels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int RowQuad(PointwiseArgs p, int digit, int r) => r < p.M ? (digit * p.M + r) * (p.Cp / 16) : -1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Words4 Quad(ArrayView<Words4> view, int at, int offset) => at < 0 ? default : view[at + offset];

    /// <summary>The tensor-core body (see the class remarks for the fragment layout).</summary>
    private static void MmaTile<TFma>(ArrayView<float> input, ArrayView<int> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, ArrayView<Words4> stage, int r0, int n0, int warpColumn, bool active,
        int group, int t) where TFma : struct, IFma
    {
        var weightQuads = weights.Cast<Words4>();
        var stageWords = stage.Cast<int>();
        int quads = p.Cp / 16;
        // This lane's B columns (warp column 4·group + j): their staged rows, in quads.
        int s0 = (warpColumn + 4 * group) * (ColumnWords / 4) + t, sj = ColumnWords / 4;
        SpikeMmaKernels.DeclareAccumulators();
        if (p.Whole != 0)
        {
            // One stage, one digit: every staging load in flight at once, the accumulators live only from the first mma.
            StageTwo(input, p, stageWords, n0, 0);
            Group.Barrier();
            if (!active) return;
            SpikeMmaKernels.ClearAccumulators();
            int v0 = RowQuad(p, 0, r0 + group), v1 = RowQuad(p, 0, r0 + group + 8);
            int v2 = RowQuad(p, 0, r0 + group + 16), v3 = RowQuad(p, 0, r0 + group + 24);
            for (int kq = 0; kq < quads; kq += 4)
            {
                int q = kq + t;
                bool inside = q < quads;
                SpikeMmaKernels.MmaStep(Quad(weightQuads, inside ? v0 : -1, q), Quad(weightQuads, inside ? v1 : -1, q),
                    Quad(weightQuads, inside ? v2 : -1, q), Quad(weightQuads, inside ? v3 : -1, q),
                    stage[s0 + kq], stage[s0 + sj + kq], stage[s0 + 2 * sj + kq], stage[s0 + 3 * sj + kq]);
            }
            ReadLaneRows(new EpilogueRows<TFma>(output, scales, bias, bn, p, r0 + group, n0 + warpColumn + 8 * t));
            return;
        }
        SpikeMmaKernels.ClearAccumulators();
        for (int digit = 0; digit < p.Parts; digit++)
        {
            if (digit > 0)
                SpikeMmaKernels.ShiftAccumulators(); // the next digit: everything so far × 256
            int w0 = RowQuad(p, digit, r0 + group), w1 = RowQuad(p, digit, r0 + group + 8);
            int w2 = RowQuad(p, digit, r0 + group + 16), w3 = RowQuad(p, digit, r0 + group + 24);
            for (int c0 = 0; c0 < p.Cp; c0 += ChunkChannels)
            {
                Group.Barrier(); // the previous chunk's fragments are read
                Stage(input, p, stageWords, n0, c0);
                Group.Barrier();
                if (!active) continue;
                for (int kq = 0; kq < ChunkChannels / 16 && c0 / 16 + kq < quads; kq += 4)
                {
                    int q = c0 / 16 + kq + t;
                    bool inside = q < quads;
                    var A0 = Quad(weightQuads, inside ? w0 : -1, q);
                    var A1 = Quad(weightQuads, inside ? w1 : -1, q);
                    var A2 = Quad(weightQuads, inside ? w2 : -1, q);
                    var A3 = Quad(weightQuads, inside ? w3 : -1, q);
                    // Bj: column (4·group + j)'s 16 staged channels of this lane (garbage past Cp meets zero codes: integer products stay 0).
                    var B0 = stage[s0 + kq];
                    var B1 = stage[s0 + sj + kq];
                    var B2 = stage[s0 + 2 * sj + kq];
                    var B3 = stage[s0 + 3 * sj + kq];
                    SpikeMmaKernels.MmaStep(A0, A1, A2, A3, B0, B1, B2, B3);
                }
            }
        }
        if (!active) return;
        ReadLaneRows(new EpilogueRows<TFma>(output, scales, bias, bn, p, r0 + group, n0 + warpColumn + 8 * t));
    }

    /// <summary>
    /// Reads the accumulators mq0..mq31 of a warp tile whose n8 tile j holds warp columns 4c + j out to
    /// <paramref name="rows"/>: this lane's rows group, + 8, + 16, + 24 (a, b, c, d) at warp columns 8t .. 8t + 7 (index k).
    /// mq[4(4m + j) + i] is m16 tile m, n8 tile j; i = 0, 1: row group at C columns 2t, 2t + 1 (warp columns 8t + j,
    /// 8t + 4 + j); i = 2, 3: row group + 8.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ReadLaneRows<TRows>(TRows rows) where TRows : struct, ILaneRows
    {
        CudaAsm.Emit("mov.b32 %0, mq0;", out int a00); CudaAsm.Emit("mov.b32 %0, mq1;", out int a04);
        CudaAsm.Emit("mov.b32 %0, mq2;", out int b00); CudaAsm.Emit("mov.b32 %0, mq3;", out int b04);
        CudaAsm.Emit("mov.b32 %0, mq4;", out int a01); CudaAsm.Emit("mov.b32 %0, mq5;", out int a05);
        CudaAsm.Emit("mov.b32 %0, mq6;", out int b01); CudaAsm.Emit("mov.b32 %0, mq7;", out int b05);
        CudaAsm.Emit("mov.b32 %0, mq8;", out int a02); CudaAsm.Emit("mov.b32 %0, mq9;", out int a06);
        CudaAsm.Emit("mov.b32 %0, mq10;", out int b02); CudaAsm.Emit("mov.b32 %0, mq11;", out int b06);
        CudaAsm.Emit("mov.b32 %0, mq12;", out int a03); CudaAsm.Emit("mov.b32 %0, mq13;", out int a07);
        CudaAsm.Emit("mov.b32 %0, mq14;", out int b03); CudaAsm.Emit("mov.b32 %0, mq15;", out int b07);
        CudaAsm.Emit("mov.b32 %0, mq16;", out int c00); CudaAsm.Emit("mov.b32 %0, mq17;", out int c04);
        CudaAsm.Emit("mov.b32 %0, mq18;", out int d00); CudaAsm.Emit("mov.b32 %0, mq19;", out int d04);
        CudaAsm.Emit("mov.b32 %0, mq20;", out int c01); CudaAsm.Emit("mov.b32 %0, mq21;", out int c05);
        CudaAsm.Emit("mov.b32 %0, mq22;", out int d01); CudaAsm.Emit("mov.b32 %0, mq23;", out int d05);
        CudaAsm.Emit("mov.b32 %0, mq24;", out int c02); CudaAsm.Emit("mov.b32 %0, mq25;", out int c06);
        CudaAsm.Emit("mov.b32 %0, mq26;", out int d02); CudaAsm.Emit("mov.b32 %0, mq27;", out int d06);
        CudaAsm.Emit("mov.b32 %0, mq28;", out int c03); CudaAsm.Emit("mov.b32 %0, mq29;", out int c07);
        CudaAsm.Emit("mov.b32 %0, mq30;", out int d03); CudaAsm.Emit("mov.b32 %0, mq31;", out int d07);
        rows.Rows(a00, a01, a02, a03, a04, a05, a06, a07, b00, b01, b02, b03, b04, b05, b06, b07,
            c00, c01, c02, c03, c04, c05, c06, c07, d00, d01, d02, d03, d04, d05, d06, d07);
    }

    /// <summary>The fallback: the same staging, then this lane's 4 rows × 8 columns summed from the staged bytes, digit by digit.</summary>
    private static void ScalarTile<TFma>(ArrayView<float> input, ArrayView<int> weights, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, ArrayView<Words4> stage, int r0, int n0, int warpColumn, bool active,
        int group, int t) where TFma : struct, IFma
    {
        var sums = LocalMemory.Allocate<int>(32); // [row m][column k]: rows r0 + group + 8m, warp columns 8t + k
        for (int i = 0; i < 32; i++) sums[i] = 0;
        var codes = weights.Cast<sbyte>();
        var staged = stage.Cast<int>().Cast<sbyte>();
        for (int digit = 0; digit < p.Parts; digit++)
        {
            for (int i = 0; i < 32; i++) sums[i] <<= 8;
            for (int c0 = 0; c0 < p.Cp; c0 += ChunkChannels)
            {
                Group.Barrier();
                if (p.Whole != 0) StageTwo(input, p, stage.Cast<int>(), n0, c0);
                else Stage(input, p, stage.Cast<int>(), n0, c0);
                Group.Barrier();
                if (!active) continue;
                int channels = Math.Min(ChunkChannels, p.Cp - c0);
                for (int m = 0; m < 4; m++)
                {
                    int r = r0 + group + 8 * m;
                    if (r >= p.M) continue;
                    long row = (long)(digit * p.M + r) * p.Cp + c0;
                    for (int k = 0; k < 8; k++)
                    {
                        int column = warpColumn + 8 * t + k, s = sums[8 * m + k];
                        for (int c = 0; c < channels; c++) s += codes[row + c] * staged[column * ColumnWords * 4 + c];
                        sums[8 * m + k] = s;
                    }
                }
            }
        }
        if (!active) return;
        Epilogue<TFma>(output, scales, bias, bn, p, r0 + group, n0 + warpColumn + 8 * t,
            sums[0], sums[1], sums[2], sums[3], sums[4], sums[5], sums[6], sums[7], sums[8], sums[9], sums[10], sums[11], sums[12], sums[13], sums[14], sums[15],
            sums[16], sums[17], sums[18], sums[19], sums[20], sums[21], sums[22], sums[23], sums[24], sums[25], sums[26], sums[27], sums[28], sums[29], sums[30], sums[31]);
    }

    /// <summary>The four rows r, r + 8, r + 16, r + 24 of a lane at columns n .. n + 7 (sums in fp32: the int32 sums converted as the epilogue's FMA would).</summary>
    internal static void Epilogue<TFma>(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, int r, int n,
        float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7,
        float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7, float d0, float d1, float d2, float d3, float d4, float d5, float d6, float d7) where TFma : struct, IFma
    {
        // Each row's scale, bias and first two BNs in registers before any store (stores could alias these loads).
        var ra = RowAffine.Load(scales, bias, bn, p, r);
        var rb = RowAffine.Load(scales, bias, bn, p, r + 8);
        var rc = RowAffine.Load(scales, bias, bn, p, r + 16);
        var rd = RowAffine.Load(scales, bias, bn, p, r + 24);
        Row8<TFma>(output, bn, p, r, n, ra, a0, a1, a2, a3, a4, a5, a6, a7);
        Row8<TFma>(output, bn, p, r + 8, n, rb, b0, b1, b2, b3, b4, b5, b6, b7);
        Row8<TFma>(output, bn, p, r + 16, n, rc, c0, c1, c2, c3, c4, c5, c6, c7);
        Row8<TFma>(output, bn, p, r + 24, n, rd, d0, d1, d2, d3, d4, d5, d6, d7);
    }

    /// <summary>Lane value k of eight (a select chain: indexing locals would put them in a local array).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Pick(int k, float v0, float v1, float v2, float v3, float v4, float v5, float v6, float v7) =>
        k < 4 ? (k < 2 ? (k == 0 ? v0 : v1) : (k == 2 ? v2 : v3)) : (k < 6 ? (k == 4 ? v4 : v5) : (k == 6 ? v6 : v7));

    /// <summary>
    /// The epilogue of output channel r at columns n .. n + 7 (sums v0..v7): without a LIF, scale/bias/BNs into
    /// output[frame, r, pix] (two 16-byte stores where <see cref="PointwiseArgs.Vec"/>: n is a multiple of 8, so each run of
    /// four is one frame's); with, each run of Steps columns (the T steps of one pixel) through the LIF in step order.
    /// </summary>
    private static void Row8<TFma>(ArrayView<float> output, ArrayView<float> bn, PointwiseArgs p, int r, int n, RowAffine a,
        float v0, float v1, float v2, float v3, float v4, float v5, float v6, float v7) where TFma : struct, IFma
    {
        if (r >= p.M || n >= p.Columns) return;
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
                    float x = a.Apply<TFma>(Pick(k0 + s, v0, v1, v2, v3, v4, v5, v6, v7), bn, p, r);
                    v = SpikeGemmKernels.LifStep(x, v, p.Threshold, output, ((long)(s * p.Batch + item) * p.M + r) * p.HW + pix);
                }
            }
            return;
        }
        if (p.Vec != 0)
        {
            var quads = output.Cast<Floats4>();
            int f = n / p.HW;
            quads[(((long)f * p.M + r) * p.HW + n - f * p.HW) >> 2] = new Floats4
            {
                X = a.Apply<TFma>(v0, bn, p, r), Y = a.Apply<TFma>(v1, bn, p, r), Z = a.Apply<TFma>(v2, bn, p, r), W = a.Apply<TFma>(v3, bn, p, r),
            };
            if (n + 4 >= p.Columns) return;
            f = (n + 4) / p.HW;
            quads[(((long)f * p.M + r) * p.HW + n + 4 - f * p.HW) >> 2] = new Floats4
            {
                X = a.Apply<TFma>(v4, bn, p, r), Y = a.Apply<TFma>(v5, bn, p, r), Z = a.Apply<TFma>(v6, bn, p, r), W = a.Apply<TFma>(v7, bn, p, r),
            };
            return;
        }
        for (int k = 0; k < 8 && n + k < p.Columns; k++)
        {
            int f = (n + k) / p.HW;
            output[((long)f * p.M + r) * p.HW + n + k - f * p.HW] = a.Apply<TFma>(Pick(k, v0, v1, v2, v3, v4, v5, v6, v7), bn, p, r);
        }
    }
}

/// <summary>
/// One output channel's epilogue constants in registers: scale, bias and the first two BNs (zeros past what the layer
/// has). <see cref="Apply{TFma}"/> is <see cref="SpikeGemmKernels.Scaled{TFma}"/>'s arithmetic, operation for operation.
/// </summary>
internal struct RowAffine
{
    public float Scale, Bias, Bn0Scale, Bn0Shift, Bn1Scale, Bn1Shift;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static RowAffine Load(ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, int r)
    {
        if (r >= p.M) return default;
        return new RowAffine
        {
            Scale = scales[r],
            Bias = p.HasBias != 0 ? bias[r] : 0f,
            Bn0Scale = p.BnCount > 0 ? bn[r] : 0f,
            Bn0Shift = p.BnCount > 0 ? bn[p.M + r] : 0f,
            Bn1Scale = p.BnCount > 1 ? bn[2 * p.M + r] : 0f,
            Bn1Shift = p.BnCount > 1 ? bn[3 * p.M + r] : 0f,
        };
    }

    /// <summary>fma(sum, scale, bias) (sum·scale without a bias), then each BN as one FMA (BNs past the second from global memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float Apply<TFma>(float sum, ArrayView<float> bn, PointwiseArgs p, int r) where TFma : struct, IFma
    {
        float v = p.HasBias != 0 ? default(TFma).Fma(sum, Scale, Bias) : sum * Scale;
        if (p.BnCount > 0) v = default(TFma).Fma(v, Bn0Scale, Bn0Shift);
        if (p.BnCount > 1) v = default(TFma).Fma(v, Bn1Scale, Bn1Shift);
        for (int b = 2; b < p.BnCount; b++) v = default(TFma).Fma(v, bn[2 * b * p.M + r], bn[(2 * b + 1) * p.M + r]);
        return v;
    }
}

/// <summary>16 bytes of fp32 values: ILGPU loads and stores this struct with one <c>ld/st.global.v4</c>.</summary>
internal struct Floats4
{
    public float X, Y, Z, W;
}

/// <summary>A lane's 4 rows × 8 columns of sums (<see cref="PointwiseMmaKernels.ReadLaneRows{TRows}"/>): rows r, r + 8, r + 16, r + 24 as a, b, c, d.</summary>
internal interface ILaneRows
{
    void Rows(float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7,
        float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7, float d0, float d1, float d2, float d3, float d4, float d5, float d6, float d7);
}

/// <summary>The fused pointwise kernel's epilogue of a lane's rows (<see cref="PointwiseMmaKernels"/>).</summary>
internal readonly struct EpilogueRows<TFma>(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, int r, int n)
    : ILaneRows where TFma : struct, IFma
{
    public void Rows(float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7,
        float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7, float d0, float d1, float d2, float d3, float d4, float d5, float d6, float d7) =>
        PointwiseMmaKernels.Epilogue<TFma>(output, scales, bias, bn, p, r, n, a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
            c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7);
}
