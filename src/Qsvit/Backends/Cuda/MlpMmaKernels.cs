using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Scalars of one fused 1×1 → LIF → 1×1 launch (<see cref="MlpMmaKernels"/>). <see cref="First"/> describes fc1 as a
/// fused pointwise call with its LIF (InChannels C, M = hidden channels H, Steps = T, the pixels and batch, ColumnWarps 1:
/// the block's 32 GEMM columns); <see cref="Second"/> describes fc2 (InChannels = H, Cp = H padded to 16, M = output
/// channels) for its epilogue constants. Frames are time-first (step s of image b is frame s·Batch + b).
/// </summary>
internal struct MlpArgs
{
    public PointwiseArgs First, Second;
    /// <summary>Warps of a block (one 32-row tile of fc2's outputs each) and hidden channels per chunk (a multiple of 128).</summary>
    public int Warps, Chunk;
    /// <summary>The spike counter's slot that receives the hidden spikes (integer atomics, once per block), or −1: none.</summary>
    public int CountSlot;
}

/// <summary>
/// The MLP's fc1 → LIF → fc2 (two integer 1×1 layers of one int8 digit each, IBackend.ConvLifConv) as one kernel whose
/// hidden spikes never leave the chip (issue 13). A block takes 32 GEMM columns — 32 / T pixels (tokens) with all T steps
/// of each, column n = (pixel n / T, step n % T) as in <see cref="PointwiseMmaKernels"/> — and W warps, one per 32 output
/// channels of fc2, whose 32 × 32 int32 accumulators stay in PTX registers (mq0..mq31) for the whole block.
/// <para>
/// The block stages its columns' input spikes once, as int8 in shared memory (<see cref="PointwiseMmaKernels.Stage"/>:
/// regions of 128 channels, each 32 columns × <see cref="PointwiseMmaKernels.ColumnWords"/> words), then runs over the
/// hidden channels in chunks of <see cref="MlpArgs.Chunk"/>: the warps share the chunk's 16-row tiles of fc1 (accumulators
/// mh0..mh15, <c>mma.sync.m16n8k32.s8.s8.s32</c>), apply fc1's epilogue (<see cref="RowAffine"/>: the arithmetic of
/// <see cref="SpikeGemmKernels.Scaled{TFma}"/>, op for op) and the LIF over the T steps each lane holds
/// (<see cref="SpikeGemmKernels.LifSpike"/>), and write the spikes as bytes into a second staging area laid out as the
/// first; after a barrier every warp adds its fc2 rows × the chunk's spikes to its accumulators. At the end the fc2
/// epilogue writes fp32 NCHW once. The sums are exact integers and the float ops those of today's kernels, so the output
/// equals the separate ops bit for bit.
/// </para>
/// <para>
/// Fragment layout as in <see cref="SpikeMmaKernels"/> and <see cref="PointwiseMmaKernels"/>: n8 tile j's column c is the
/// block's column 4c + j, so lane (group g, t) holds columns 8t .. 8t + 7 of its rows — whole T-step runs for T in 1, 2,
/// 4, 8. Without inline PTX (ILGPU's CPU accelerator in tests) each lane sums the same rows and columns from the same staged
/// bytes with scalar multiply-adds, then runs the same epilogues.
/// </para>
/// </summary>
internal static class MlpMmaKernels
{
    /// <summary>GEMM columns per block: 32 / T pixels × T steps.</summary>
    public const int Columns = 32;

    /// <summary>Channels per staged region, its 32 columns' words and 16-byte quads (each column padded to distinct banks).</summary>
    private const int RegionChannels = PointwiseMmaKernels.ChunkChannels, ColumnQuads = PointwiseMmaKernels.ColumnWords / 4,
        RegionWords = Columns * PointwiseMmaKernels.ColumnWords, RegionQuads = RegionWords / 4;

    /// <summary>Regions of each staging area: fc1's input channels and a hidden chunk are at most 640 (46 KB of shared memory in all).</summary>
    public const int MaxRegions = 5;

    /// <summary>Input channels and hidden channels per chunk at most (<see cref="MaxRegions"/> regions).</summary>
    public const int MaxChannels = MaxRegions * RegionChannels;

    /// <summary>fc2 output channels at most: one warp per 32, at most 20 warps a block (640 threads).</summary>
    public const int MaxOutChannels = 640;

    /// <summary>
    /// Whether the fused kernel pays over today's ops (fc1 on cuBLAS's int8 GEMM with the LIF in its epilogue, fc2 on the
    /// fused pointwise kernel or cuBLAS): by fc2's output channels. Measured on an H200 (BENCHMARKS.md, ninth session,
    /// branch <c>mlpchain</c>), ms a pass: CIFAR 128→512→128 (6 calls) 1.077 against 1.989, 192→768→192 (2) 0.651 against
    /// 1.134, the 55M's 512→2048→512 (6) 3.440 against 3.579. Once the ops packed spikes four pixels a thread
    /// (<see cref="SpikeGemmKernels.PackS8Quads"/>, twelfth session) the 55M's ops took 2.832 against the kernel's 3.489 ms
    /// and the 55M ran 865 against 850 images/s, while the CIFAR model without the kernel fell from 43,649 to 41,255; so the
    /// bound sits between 192 and 512 outputs. The 55M's 640→2560→640 was never measured: a block of 20 warps needs more
    /// registers than a multiprocessor has (105 a thread), so <see cref="SpikeGemmOps.Mlp"/> refuses it.
    /// </summary>
    public static bool FusedPays(int outChannels) => outChannels <= FusedMaxOutChannels;

    /// <summary>fc2 output channels up to which <see cref="FusedPays"/> (measured: 128 and 192 fused, 512 not).</summary>
    public const int FusedMaxOutChannels = 256;

    /// <summary>Warps of a block for fc2's <paramref name="outChannels"/>: one per 32.</summary>
    public static int WarpsFor(int outChannels) => (outChannels + 31) / 32;

    /// <summary>
    /// Hidden channels per chunk: a multiple of 128 whose 16-row tiles divide evenly among the warps where that fits in
    /// <see cref="MaxChannels"/>, and no more than the hidden channels need.
    /// </summary>
    public static int ChunkFor(int warps, int hidden)
    {
        int regions = 1;
        while (regions < MaxRegions && regions * RegionChannels / 16 % warps != 0) regions++;
        if (regions * RegionChannels / 16 % warps != 0) regions = MaxRegions;
        return Math.Min(regions, (hidden + RegionChannels - 1) / RegionChannels) * RegionChannels;
    }

    public static void Chain<TFma>(ArrayView<float> input, ArrayView<int> w1, ArrayView<float> scales1, ArrayView<float> bias1, ArrayView<float> bn1,
        ArrayView<int> w2, ArrayView<float> scales2, ArrayView<float> bias2, ArrayView<float> bn2, ArrayView<float> output, ArrayView<long> counts, MlpArgs a)
        where TFma : struct, IFma
    {
        var xs = SharedMemory.Allocate<Words4>(MaxRegions * RegionQuads);
        var hs = SharedMemory.Allocate<Words4>(MaxRegions * RegionQuads);
        var groupCount = SharedMemory.Allocate<int>(1);
        int warp = Group.IdxX / Lanes, lane = Group.IdxX - warp * Lanes, n0 = Grid.IdxX * Columns;
        if (Group.IdxX == 0) groupCount[0] = 0;
        var words = xs.Cast<int>();
        for (int c0 = 0; c0 < a.First.Cp; c0 += RegionChannels)
            PointwiseMmaKernels.Stage(input, a.First, words.SubView(c0 / RegionChannels * RegionWords, RegionWords), n0, c0);
        Group.Barrier();
        int fired = CudaAsm.IsSupported
            ? MmaBlock<TFma>(w1, scales1, bias1, bn1, w2, scales2, bias2, bn2, output, a, xs, hs, warp, n0, lane >> 2, lane & 3)
            : ScalarBlock<TFma>(w1, scales1, bias1, bn1, w2, scales2, bias2, bn2, output, a, xs, hs, warp, n0, lane >> 2, lane & 3);
        if (a.CountSlot < 0) return; // the same for the whole block, so the barrier below is reached by all its threads
        if (fired != 0) Atomic.Add(ref groupCount[0], fired);
        Group.Barrier();
        if (Group.IdxX == 0 && groupCount[0] != 0) Atomic.Add(ref counts[a.CountSlot], (long)groupCount[0]);
    }

    private const int Lanes = 32;

    /// <summary>Offset of 16-byte quad <paramref name="kq"/> (of a staging area's channels) within its region's column rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int StagedQuad(int kq) => (kq >> 3) * RegionQuads + (kq & 7);

    /// <summary>Byte of channel <paramref name="c"/> (of a staging area) at column <paramref name="n"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int StagedByte(int n, int c) => (c / RegionChannels) * RegionWords * 4 + n * PointwiseMmaKernels.ColumnWords * 4 + c % RegionChannels;

    /// <summary>The tensor-core body (see the class remarks); returns the hidden spikes this lane fired.</summary>
    private static int MmaBlock<TFma>(ArrayView<int> w1, ArrayView<float> scales1, ArrayView<float> bias1, ArrayView<float> bn1,
        ArrayView<int> w2, ArrayView<float> scales2, ArrayView<float> bias2, ArrayView<float> bn2, ArrayView<float> output, MlpArgs a,
        ArrayView<Words4> xs, ArrayView<Words4> hs, int warp, int n0, int group, int t) where TFma : struct, IFma
    {
        var q1 = w1.Cast<Words4>();
        var q2 = w2.Cast<Words4>();
        var hidden = hs.Cast<int>().Cast<sbyte>();
        int quads1 = a.First.Cp / 16, quads2 = a.Second.Cp / 16, h = a.First.M, m2 = a.Second.M;
        // This lane's B columns 4·group + j: their staged quads (+ j·ColumnQuads).
        int b0 = 4 * group * ColumnQuads + t;
        int r2 = 32 * warp + group;
        int v0 = SpikeMmaKernels.RowStart(r2, m2, quads2), v1 = SpikeMmaKernels.RowStart(r2 + 8, m2, quads2), v2 = SpikeMmaKernels.RowStart(r2 + 16, m2, quads2), v3 = SpikeMmaKernels.RowStart(r2 + 24, m2, quads2);
        SpikeMmaKernels.ZeroAccumulators();
        DeclareHidden();
        int fired = 0;
        for (int h0 = 0; h0 < h; h0 += a.Chunk)
        {
            // fc1 + LIF: the chunk's 16-row tiles, shared among the warps.
            for (int tile = warp; tile < a.Chunk / 16 && h0 + 16 * tile < h; tile += a.Warps)
            {
                int r = h0 + 16 * tile + group, u0 = SpikeMmaKernels.RowStart(r, h, quads1), u1 = SpikeMmaKernels.RowStart(r + 8, h, quads1);
                // The rows' epilogue constants load while the mma run.
                var ra = RowAffine.Load(scales1, bias1, bn1, a.First, r);
                var rb = RowAffine.Load(scales1, bias1, bn1, a.First, r + 8);
                ZeroHidden();
                // The next step's codes are loaded before this step's mma (their latency hides behind it).
                var A0 = PointwiseMmaKernels.Quad(q1, t < quads1 ? u0 : -1, t);
                var A1 = PointwiseMmaKernels.Quad(q1, t < quads1 ? u1 : -1, t);
                for (int kq = 0; kq < quads1; kq += 4)
                {
                    int q = kq + 4 + t, s = StagedQuad(kq) + b0;
                    bool inside = q < quads1;
                    var N0 = PointwiseMmaKernels.Quad(q1, inside ? u0 : -1, q);
                    var N1 = PointwiseMmaKernels.Quad(q1, inside ? u1 : -1, q);
                    HiddenStep(A0, A1, xs[s], xs[s + ColumnQuads], xs[s + 2 * ColumnQuads], xs[s + 3 * ColumnQuads]);
                    A0 = N0;
                    A1 = N1;
                }
                CudaAsm.Emit("mov.b32 %0, mh0;", out int x0); CudaAsm.Emit("mov.b32 %0, mh1;", out int x4);
                CudaAsm.Emit("mov.b32 %0, mh2;", out int y0); CudaAsm.Emit("mov.b32 %0, mh3;", out int y4);
                CudaAsm.Emit("mov.b32 %0, mh4;", out int x1); CudaAsm.Emit("mov.b32 %0, mh5;", out int x5);
                CudaAsm.Emit("mov.b32 %0, mh6;", out int y1); CudaAsm.Emit("mov.b32 %0, mh7;", out int y5);
                CudaAsm.Emit("mov.b32 %0, mh8;", out int x2); CudaAsm.Emit("mov.b32 %0, mh9;", out int x6);
                CudaAsm.Emit("mov.b32 %0, mh10;", out int y2); CudaAsm.Emit("mov.b32 %0, mh11;", out int y6);
                CudaAsm.Emit("mov.b32 %0, mh12;", out int x3); CudaAsm.Emit("mov.b32 %0, mh13;", out int x7);
                CudaAsm.Emit("mov.b32 %0, mh14;", out int y3); CudaAsm.Emit("mov.b32 %0, mh15;", out int y7);
                fired += HiddenRow<TFma>(hidden, bn1, a, ra, h0, r, n0, 8 * t, x0, x1, x2, x3, x4, x5, x6, x7);
                fired += HiddenRow<TFma>(hidden, bn1, a, rb, h0, r + 8, n0, 8 * t, y0, y1, y2, y3, y4, y5, y6, y7);
            }
            Group.Barrier(); // the chunk's spikes are staged
            // fc2: this warp's 32 rows × the chunk's spikes, added to the accumulators.
            int hq0 = h0 / 16, chunkQuads = Math.Min(a.Chunk / 16, quads2 - hq0);
            bool first = t < chunkQuads;
            var C0 = PointwiseMmaKernels.Quad(q2, first ? v0 : -1, hq0 + t);
            var C1 = PointwiseMmaKernels.Quad(q2, first ? v1 : -1, hq0 + t);
            var C2 = PointwiseMmaKernels.Quad(q2, first ? v2 : -1, hq0 + t);
            var C3 = PointwiseMmaKernels.Quad(q2, first ? v3 : -1, hq0 + t);
            for (int kq = 0; kq < chunkQuads; kq += 4)
            {
                int q = kq + 4 + t, s = StagedQuad(kq) + b0;
                bool inside = q < chunkQuads;
                var N0 = PointwiseMmaKernels.Quad(q2, inside ? v0 : -1, hq0 + q);
                var N1 = PointwiseMmaKernels.Quad(q2, inside ? v1 : -1, hq0 + q);
                var N2 = PointwiseMmaKernels.Quad(q2, inside ? v2 : -1, hq0 + q);
                var N3 = PointwiseMmaKernels.Quad(q2, inside ? v3 : -1, hq0 + q);
                SpikeMmaKernels.MmaStep(C0, C1, C2, C3, hs[s], hs[s + ColumnQuads], hs[s + 2 * ColumnQuads], hs[s + 3 * ColumnQuads]);
                C0 = N0;
                C1 = N1;
                C2 = N2;
                C3 = N3;
            }
            Group.Barrier(); // the next chunk may overwrite the spikes
        }
        PointwiseMmaKernels.ReadLaneRows(new OutputLaneRows<TFma>(output, scales2, bias2, bn2, a, r2, n0 + 8 * t));
        return fired;
    }

    /// <summary>Declares fc1's 16 accumulators mh0..mh15 (once per kernel: the declaration must appear once in its PTX).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void DeclareHidden() => CudaAsm.Emit(".reg .b32 mh<16>;");

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ZeroHidden() =>
        CudaAsm.Emit("mov.b32 mh0, 0; mov.b32 mh1, 0; mov.b32 mh2, 0; mov.b32 mh3, 0; mov.b32 mh4, 0; mov.b32 mh5, 0; mov.b32 mh6, 0; mov.b32 mh7, 0; mov.b32 mh8, 0; mov.b32 mh9, 0; mov.b32 mh10, 0; mov.b32 mh11, 0; mov.b32 mh12, 0; mov.b32 mh13, 0; mov.b32 mh14, 0; mov.b32 mh15, 0;");

    /// <summary>
    /// Two k-steps of a 16 × 32 fc1 tile: 4 mma per k-step from this lane's 16 bytes of rows group, group + 8
    /// (<paramref name="a0"/>, <paramref name="a1"/>) and columns 4·group + j (<paramref name="b0"/>..<paramref name="b3"/>),
    /// as the first half of <see cref="SpikeMmaKernels.MmaStep"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void HiddenStep(Words4 a0, Words4 a1, Words4 b0, Words4 b1, Words4 b2, Words4 b3)
    {
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh0,mh1,mh2,mh3}, {%0,%1,%2,%3}, {%4,%5}, {mh0,mh1,mh2,mh3};", a0.X, a1.X, a0.Y, a1.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh4,mh5,mh6,mh7}, {%0,%1,%2,%3}, {%4,%5}, {mh4,mh5,mh6,mh7};", a0.X, a1.X, a0.Y, a1.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh8,mh9,mh10,mh11}, {%0,%1,%2,%3}, {%4,%5}, {mh8,mh9,mh10,mh11};", a0.X, a1.X, a0.Y, a1.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh12,mh13,mh14,mh15}, {%0,%1,%2,%3}, {%4,%5}, {mh12,mh13,mh14,mh15};", a0.X, a1.X, a0.Y, a1.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh0,mh1,mh2,mh3}, {%0,%1,%2,%3}, {%4,%5}, {mh0,mh1,mh2,mh3};", a0.Z, a1.Z, a0.W, a1.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh4,mh5,mh6,mh7}, {%0,%1,%2,%3}, {%4,%5}, {mh4,mh5,mh6,mh7};", a0.Z, a1.Z, a0.W, a1.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh8,mh9,mh10,mh11}, {%0,%1,%2,%3}, {%4,%5}, {mh8,mh9,mh10,mh11};", a0.Z, a1.Z, a0.W, a1.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {mh12,mh13,mh14,mh15}, {%0,%1,%2,%3}, {%4,%5}, {mh12,mh13,mh14,mh15};", a0.Z, a1.Z, a0.W, a1.W, b3.Z, b3.W);
    }

    /// <summary>The fallback: the same staging and chunks, each lane's rows and columns summed from the staged bytes; returns the hidden spikes this lane fired.</summary>
    private static int ScalarBlock<TFma>(ArrayView<int> w1, ArrayView<float> scales1, ArrayView<float> bias1, ArrayView<float> bn1,
        ArrayView<int> w2, ArrayView<float> scales2, ArrayView<float> bias2, ArrayView<float> bn2, ArrayView<float> output, MlpArgs a,
        ArrayView<Words4> xs, ArrayView<Words4> hs, int warp, int n0, int group, int t) where TFma : struct, IFma
    {
        var codes1 = w1.Cast<sbyte>();
        var codes2 = w2.Cast<sbyte>();
        var staged = xs.Cast<int>().Cast<sbyte>();
        var hidden = hs.Cast<int>().Cast<sbyte>();
        var sums1 = LocalMemory.Allocate<int>(16); // [row m][column k]: rows r + 8m, columns 8t + k
        var sums2 = LocalMemory.Allocate<int>(32); // [row m][column k]: rows r2 + 8m
        for (int i = 0; i < 32; i++) sums2[i] = 0;
        int h = a.First.M, m2 = a.Second.M, r2 = 32 * warp + group, fired = 0;
        for (int h0 = 0; h0 < h; h0 += a.Chunk)
        {
            for (int tile = warp; tile < a.Chunk / 16 && h0 + 16 * tile < h; tile += a.Warps)
            {
                int r = h0 + 16 * tile + group;
                for (int m = 0; m < 2; m++)
                    for (int k = 0; k < 8; k++)
                    {
                        int s = 0, row = r + 8 * m;
                        if (row < h)
                            for (int c = 0; c < a.First.Cp; c++) s += codes1[(long)row * a.First.Cp + c] * staged[StagedByte(8 * t + k, c)];
                        sums1[8 * m + k] = s;
                    }
                fired += HiddenRow<TFma>(hidden, bn1, a, RowAffine.Load(scales1, bias1, bn1, a.First, r), h0, r, n0, 8 * t,
                    sums1[0], sums1[1], sums1[2], sums1[3], sums1[4], sums1[5], sums1[6], sums1[7]);
                fired += HiddenRow<TFma>(hidden, bn1, a, RowAffine.Load(scales1, bias1, bn1, a.First, r + 8), h0, r + 8, n0, 8 * t,
                    sums1[8], sums1[9], sums1[10], sums1[11], sums1[12], sums1[13], sums1[14], sums1[15]);
            }
            Group.Barrier();
            int end = Math.Min(h0 + a.Chunk, a.Second.Cp);
            for (int m = 0; m < 4; m++)
            {
                int row = r2 + 8 * m;
                if (row >= m2) continue;
                for (int k = 0; k < 8; k++)
                {
                    int s = sums2[8 * m + k];
                    for (int c = h0; c < end; c++) s += codes2[(long)row * a.Second.Cp + c] * hidden[StagedByte(8 * t + k, c - h0)];
                    sums2[8 * m + k] = s;
                }
            }
            Group.Barrier();
        }
        OutputRows<TFma>(output, scales2, bias2, bn2, a, r2, n0 + 8 * t,
            sums2[0], sums2[1], sums2[2], sums2[3], sums2[4], sums2[5], sums2[6], sums2[7], sums2[8], sums2[9], sums2[10], sums2[11], sums2[12], sums2[13], sums2[14], sums2[15],
            sums2[16], sums2[17], sums2[18], sums2[19], sums2[20], sums2[21], sums2[22], sums2[23], sums2[24], sums2[25], sums2[26], sums2[27], sums2[28], sums2[29], sums2[30], sums2[31]);
        return fired;
    }

    /// <summary>
    /// Hidden channel r (of the chunk at <paramref name="h0"/>) at the block's columns n .. n + 7 (sums v0..v7): fc1's
    /// epilogue (<paramref name="affine"/>: row r's constants) and the LIF over each run of T columns (one pixel's steps, in
    /// step order: the membrane restarts at 0 where k &amp; (T − 1) = 0), the spikes as bytes into the chunk's staging area.
    /// Straight-line code, one neuron step per column (a loop over runs and a select chain cost ~5x the instructions).
    /// Rows past the hidden channels meet zero codes in fc2 and are not counted. Returns the spikes of the block's pixels
    /// (columns past the batch's are not counted).
    /// </summary>
    private static int HiddenRow<TFma>(ArrayView<sbyte> hidden, ArrayView<float> bn, MlpArgs a, RowAffine affine, int h0, int r, int n0, int n,
        float v0, float v1, float v2, float v3, float v4, float v5, float v6, float v7) where TFma : struct, IFma
    {
        var p = a.First;
        int mask = p.Steps - 1, at = StagedByte(n, r - h0), valid = r < p.M ? Math.Min(8, p.Pixels * p.Steps - n0 - n) : 0;
        const int step = PointwiseMmaKernels.ColumnWords * 4;
        float thr = p.Threshold;
        int fired = 0;
        float m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v0, bn, p, r), 0f, thr, out float s);
        fired += Spike(hidden, at, s, 0 < valid);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v1, bn, p, r), (1 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at + step, s, 1 < valid);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v2, bn, p, r), (2 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at + 2 * step, s, 2 < valid);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v3, bn, p, r), (3 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at + 3 * step, s, 3 < valid);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v4, bn, p, r), (4 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at + 4 * step, s, 4 < valid);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v5, bn, p, r), (5 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at + 5 * step, s, 5 < valid);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v6, bn, p, r), (6 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at + 6 * step, s, 6 < valid);
        SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v7, bn, p, r), (7 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at + 7 * step, s, 7 < valid);
        return fired;
    }

    /// <summary>Stores a spike as a byte; 1 where it fired and is <paramref name="counted"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Spike(ArrayView<sbyte> hidden, int at, float spike, bool counted)
    {
        bool fire = spike != 0f;
        hidden[at] = fire ? (sbyte)1 : (sbyte)0;
        return fire && counted ? 1 : 0;
    }

    /// <summary>
    /// fc2's output channels r, r + 8, r + 16, r + 24 at GEMM columns n .. n + 7: the epilogue into output[frame, M, HW].
    /// Each column's place in a frame's plane is found once (divisions), then each row adds its plane offset.
    /// </summary>
    internal static void OutputRows<TFma>(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, MlpArgs a, int r, int n,
        float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7,
        float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7, float d0, float d1, float d2, float d3, float d4, float d5, float d6, float d7) where TFma : struct, IFma
    {
        var p = a.Second;
        // Each row's constants in registers before any store (stores could alias these loads).
        var ra = RowAffine.Load(scales, bias, bn, p, r);
        var rb = RowAffine.Load(scales, bias, bn, p, r + 8);
        var rc = RowAffine.Load(scales, bias, bn, p, r + 16);
        var rd = RowAffine.Load(scales, bias, bn, p, r + 24);
        long o0 = Place(a, n), o1 = Place(a, n + 1), o2 = Place(a, n + 2), o3 = Place(a, n + 3);
        long o4 = Place(a, n + 4), o5 = Place(a, n + 5), o6 = Place(a, n + 6), o7 = Place(a, n + 7);
        OutputRow<TFma>(output, bn, p, r, ra, o0, o1, o2, o3, o4, o5, o6, o7, a0, a1, a2, a3, a4, a5, a6, a7);
        OutputRow<TFma>(output, bn, p, r + 8, rb, o0, o1, o2, o3, o4, o5, o6, o7, b0, b1, b2, b3, b4, b5, b6, b7);
        OutputRow<TFma>(output, bn, p, r + 16, rc, o0, o1, o2, o3, o4, o5, o6, o7, c0, c1, c2, c3, c4, c5, c6, c7);
        OutputRow<TFma>(output, bn, p, r + 24, rd, o0, o1, o2, o3, o4, o5, o6, o7, d0, d1, d2, d3, d4, d5, d6, d7);
    }

    /// <summary>Offset of GEMM column n's output at channel 0 ((frame·M)·HW + pixel), or −1 past the batch's columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Place(MlpArgs a, int n)
    {
        int q = n / a.First.Steps;
        if (q >= a.First.Pixels) return -1;
        int s = n - q * a.First.Steps, item = q / a.First.HW;
        return (long)(s * a.First.Batch + item) * a.Second.M * a.First.HW + q - item * a.First.HW;
    }

    internal static void OutputRow<TFma>(ArrayView<float> output, ArrayView<float> bn, PointwiseArgs p, int r, RowAffine affine,
        long o0, long o1, long o2, long o3, long o4, long o5, long o6, long o7,
        float v0, float v1, float v2, float v3, float v4, float v5, float v6, float v7) where TFma : struct, IFma
    {
        if (r >= p.M) return;
        long plane = (long)r * p.HW;
        Store<TFma>(output, bn, p, r, affine, o0, plane, v0);
        Store<TFma>(output, bn, p, r, affine, o1, plane, v1);
        Store<TFma>(output, bn, p, r, affine, o2, plane, v2);
        Store<TFma>(output, bn, p, r, affine, o3, plane, v3);
        Store<TFma>(output, bn, p, r, affine, o4, plane, v4);
        Store<TFma>(output, bn, p, r, affine, o5, plane, v5);
        Store<TFma>(output, bn, p, r, affine, o6, plane, v6);
        Store<TFma>(output, bn, p, r, affine, o7, plane, v7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TFma>(ArrayView<float> output, ArrayView<float> bn, PointwiseArgs p, int r, RowAffine affine, long at, long plane, float sum)
        where TFma : struct, IFma
    {
        if (at >= 0) output[at + plane] = affine.Apply<TFma>(sum, bn, p, r);
    }
}

/// <summary>fc2's epilogue of a lane's rows (<see cref="MlpMmaKernels"/>).</summary>
internal readonly struct OutputLaneRows<TFma>(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, MlpArgs a, int r, int n)
    : ILaneRows where TFma : struct, IFma
{
    public void Rows(float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7,
        float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7, float d0, float d1, float d2, float d3, float d4, float d5, float d6, float d7) =>
        MlpMmaKernels.OutputRows<TFma>(output, scales, bias, bn, a, r, n, a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
            c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7);
}
