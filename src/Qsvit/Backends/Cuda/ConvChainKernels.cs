using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Scalars of one fused 3×3 → LIF → 3×3 launch (<see cref="ConvChainKernels"/>). <see cref="First"/> holds conv1's
/// epilogue and LIF constants (InChannels C, Cp, M = hidden channels H, Steps = T, Batch, HW, Threshold), <see cref="Second"/>
/// conv2's (InChannels H, Cp = H padded to 16, M = output channels). Frames are time-first (step s of image b is frame s·Batch + b).
/// </summary>
internal struct ConvChainArgs
{
    public PointwiseArgs First, Second;
    public int H, W, TilesX, TilesY;
    /// <summary>log2 T: a column n of a block is (position n &gt;&gt; StepShift, step n &amp; (T − 1)).</summary>
    public int StepShift;
    /// <summary>16-byte quads per staged (step, position) of the input and of the hidden chunk, and where the hidden staging starts.</summary>
    public int InStride, HiddenStride, HiddenAt;
    /// <summary>Hidden channels per chunk (16, 32 or 64) and warps of a block (<see cref="ConvChainKernels.WarpsFor"/>).</summary>
    public int Chunk, Warps;
    /// <summary>The spike counter's slot that receives the hidden spikes (integer atomics, once per block), or −1: none.</summary>
    public int CountSlot;
}

/// <summary>
/// ConvBlock's conv 3×3 → LIF → conv 3×3 (two integer 3×3 stride-1 pad-1 layers of one int8 digit each,
/// IBackend.ConvLifConv) as one kernel whose hidden spikes never leave the chip (issue 13), as
/// <see cref="MlpMmaKernels"/> does for the MLP's 1×1 layers. A block takes one image, an 8 × 8 tile of output pixels and
/// all T steps: GEMM column n of conv2 is (tile pixel n / T, step n % T), so a lane's eight C columns are whole T-step runs.
/// <para>
/// The block stages the input spikes of the hidden positions it needs ± 1 (the tile plus a 2-pixel halo, clipped to the
/// image plus its zero ring) as int8 in shared memory, [step][position][channel] with <see cref="ConvChainArgs.InStride"/>
/// quads per (step, position): step-major, so the eight lanes of a fragment load (two columns' neighbouring positions ×
/// four quads) hit distinct banks. Per chunk of <see cref="ConvChainArgs.Chunk"/> hidden channels, the warps share conv1's 16 ×
/// 32 tiles over the hidden positions inside the image (the tile plus a 1-pixel halo): K = 9·Cp quads enumerated flat
/// (tap-major, as the codes are), a shared table giving each quad's offset under its tap, mh0..mh15 accumulators and
/// <see cref="MlpMmaKernels.HiddenStep"/>; conv1's epilogue and the LIF over the T steps a lane holds
/// (<see cref="HiddenRow{TFma}"/>: <see cref="SpikeGemmKernels.Scaled{TFma}"/>'s and
/// <see cref="SpikeGemmKernels.LifSpike"/>'s arithmetic) write the spikes as bytes into a 10 × 10-position hidden staging
/// whose positions outside the image stay zero (conv2's zero padding). After a barrier each warp adds its 32 conv2 rows ×
/// 32 columns (accumulators mq0..mq31, <see cref="SpikeMmaKernels.MmaStep"/>) over the chunk's 9 taps × channels, again
/// through a table. At the end conv2's epilogue writes fp32 NCHW once. The sums are exact integers and the float ops those
/// of today's kernels, so the output equals ConvLif then Conv bit for bit.
/// </para>
/// <para>
/// Fragment layout as in <see cref="MlpMmaKernels"/>: n8 tile j's column c is the warp's column 4c + j; lane (group g, t)
/// loads B for columns 4g + j at quad kq + t of a step and holds C columns 8t .. 8t + 7. Without inline PTX (ILGPU's CPU
/// accelerator in tests, one thread a group) the thread plays every lane: the same staging and tables, each lane's rows
/// and columns summed from the staged bytes with scalar multiply-adds, then the same epilogues.
/// </para>
/// </summary>
internal static class ConvChainKernels
{
    /// <summary>Output pixels per tile side, hidden positions per staged side (the tile ± 1).</summary>
    public const int TileSide = 8, HiddenSide = TileSide + 2;

    /// <summary>Shared 16-byte quads for both stagings (46 KB: static shared memory is at most 48 KB with the tables).</summary>
    public const int SharedQuads = 2944;

    /// <summary>Input channels at most (conv1's table: 9 taps × 8 quads), warps a block at most (512 threads).</summary>
    public const int MaxInChannels = 128, MaxWarps = 16;

    private const int Lanes = PointwiseMmaKernels.Lanes, MaxTable1 = 9 * MaxInChannels / 16 + 4, MaxTable2 = 9 * 4 + 4, MaxPositions = HiddenSide * HiddenSide;

    /// <summary>
    /// Whether the fused kernel pays over today's ops (conv1 with its LIF on the tiled implicit GEMM or cuBLAS's int8 GEMM,
    /// then conv2 on the implicit GEMM) on h × w maps: from 16 × 16 to 32 × 32. Measured on an H200 (BENCHMARKS.md, tenth
    /// session, branch <c>chain3</c>), CIFAR at batch 1000, ms a pass: 16→64→16 at 32 × 32 2.98 against 3.95, 32→128→32 at
    /// 16 × 16 1.54 against 1.67, but 64→256→64 at 8 × 8 (two calls) 2.03 against 1.93: a block of 16 warps alone on its
    /// multiprocessor (128 registers a thread) waits at every chunk's barriers. Larger maps were not measured (the 55M's
    /// 64→256→64 at 112 × 112 would run hidden chunks of 16 channels).
    /// </summary>
    public static bool FusedPays(int h, int w) => h is >= FusedMinSide and <= FusedMaxSide && w is >= FusedMinSide and <= FusedMaxSide;

    /// <summary>Map sides between which <see cref="FusedPays"/>.</summary>
    public const int FusedMinSide = 16, FusedMaxSide = 32;

    /// <summary>Warps of a block: one per 32 conv2 rows × 32 of the tile's 64·T columns.</summary>
    public static int WarpsFor(int outChannels, int timesteps) => (outChannels + 31) / 32 * (TileSide * TileSide * timesteps / Lanes);

    /// <summary>
    /// The shared layout for input channels padded to <paramref name="cp"/>, hidden ones to <paramref name="hp"/> on h × w
    /// maps: the widest hidden chunk (64, 32, 16 channels) whose staging fits beside the input's, a (step, position) taking
    /// its channels' quads (no padding: the stagings are step-major, so the eight lanes of a 16-byte shared load read
    /// neighbouring positions' quads, which lie in distinct banks; padding the hidden one to an odd number of quads, which
    /// spares its byte stores a 2-way bank conflict, measured no faster on an H200). False where nothing fits.
    /// </summary>
    public static bool Plan(int cp, int hp, int h, int w, int timesteps, out int inStride, out int hiddenStride, out int chunk)
    {
        int inPositions = (Math.Min(HiddenSide, h) + 2) * (Math.Min(HiddenSide, w) + 2), cq = cp / 16;
        inStride = hiddenStride = chunk = 0;
        if (cp > MaxInChannels) return false;
        for (int c = 64; c >= 16; c /= 2)
        {
            int size = Math.Min(c, hp);
            if (inPositions * timesteps * cq + MaxPositions * timesteps * (size / 16) > SharedQuads) continue;
            inStride = cq;
            hiddenStride = size / 16;
            chunk = size;
            return true;
        }
        return false;
    }

    public static void Chain<TFma>(ArrayView<float> input, ArrayView<int> w1, ArrayView<float> scales1, ArrayView<float> bias1, ArrayView<float> bn1,
        ArrayView<int> w2, ArrayView<float> scales2, ArrayView<float> bias2, ArrayView<float> bn2, ArrayView<float> output, ArrayView<long> counts, ConvChainArgs a)
        where TFma : struct, IFma
    {
        var staged = SharedMemory.Allocate<Words4>(SharedQuads);
        var table1 = SharedMemory.Allocate<int>(MaxTable1);
        var table2 = SharedMemory.Allocate<int>(2 * MaxTable2);
        var positions = SharedMemory.Allocate<int>(2 * MaxPositions);
        var groupCount = SharedMemory.Allocate<int>(1);
        var tile = new ChainTile(a, Grid.IdxX);
        if (Group.IdxX == 0) groupCount[0] = 0;
        Prepare(input, a, tile, staged, table1, positions);
        Group.Barrier();
        int fired = CudaAsm.IsSupported
            ? MmaBlock<TFma>(w1, scales1, bias1, bn1, w2, scales2, bias2, bn2, output, a, tile, staged, table1, table2, positions)
            : ScalarBlock<TFma>(w1, scales1, bias1, bn1, w2, scales2, bias2, bn2, output, a, tile, staged, table1, table2, positions);
        if (a.CountSlot < 0) return; // the same for the whole block, so the barrier below is reached by all its threads
        if (fired != 0) Atomic.Add(ref groupCount[0], fired);
        Group.Barrier();
        if (Group.IdxX == 0 && groupCount[0] != 0) Atomic.Add(ref counts[a.CountSlot], (long)groupCount[0]);
    }

    /// <summary>
    /// Stages the input spikes (x ≠ 0) of the input region — the hidden positions inside the image ± 1, zeros outside it — one
    /// word of four channels per work item, neighbouring items along a row of the region; zeroes the hidden staging; fills
    /// conv1's table (quad q of K: tap q / Cq, channel quad q % Cq, as its offset in the input staging) and the hidden
    /// positions' places: positions[p] in the input region, positions[MaxPositions + p] in the hidden one (bit 16: inside the
    /// block's own tile, whose spikes the block counts).
    /// </summary>
    private static void Prepare(ArrayView<float> input, ConvChainArgs a, ChainTile tile, ArrayView<Words4> staged, ArrayView<int> table1, ArrayView<int> positions)
    {
        var p = a.First;
        int steps = p.Steps, cw = p.Cp / 4, inWidth = tile.InWidth, inPositions = tile.InPositions, hw = a.H * a.W;
        var words = staged.Cast<int>();
        int items = steps * cw * inPositions;
        for (int i = Group.IdxX; i < items; i += Group.DimX)
        {
            int rest = i / inPositions, pos = i - rest * inPositions, s = rest / cw, c4 = rest - s * cw;
            int iy = pos / inWidth, y = tile.Top - 1 + iy, x = tile.Left - 1 + pos - iy * inWidth, c = 4 * c4, word = 0;
            if ((uint)y < (uint)a.H && (uint)x < (uint)a.W)
            {
                long at = ((long)(s * p.Batch + tile.Image) * p.InChannels + c) * hw + y * a.W + x;
                word = Bit(input, at, c < p.InChannels, 0) | Bit(input, at + hw, c + 1 < p.InChannels, 8)
                    | Bit(input, at + 2 * hw, c + 2 < p.InChannels, 16) | Bit(input, at + 3 * hw, c + 3 < p.InChannels, 24);
            }
            words[((s * inPositions + pos) * a.InStride) * 4 + c4] = word;
        }
        int hiddenQuads = MaxPositions * steps * a.HiddenStride;
        for (int i = Group.IdxX; i < hiddenQuads; i += Group.DimX) staged[a.HiddenAt + i] = default;
        int cq = p.Cp / 16, k1 = 9 * cq;
        for (int q = Group.IdxX; q < Round4(k1); q += Group.DimX)
        {
            int tap = q / cq;
            table1[q] = q < k1 ? TapOffset(tap, inWidth, a.InStride) + q - tap * cq : 0;
        }
        for (int i = Group.IdxX; i < tile.Positions; i += Group.DimX)
        {
            int py = i / tile.Cols, px = i - py * tile.Cols, hy = py + tile.Dy, hx = px + tile.Dx;
            bool own = hy >= 1 && hy <= TileSide && hx >= 1 && hx <= TileSide;
            positions[i] = py * inWidth + px;
            positions[MaxPositions + i] = hy * HiddenSide + hx | (own ? 1 << 16 : 0);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Bit(ArrayView<float> x, long at, bool inside, int shift) => inside && x[at] != 0f ? 1 << shift : 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Round4(int n) => (n + 3) & ~3;

    /// <summary>Offset in quads of tap (ky, kx) = (tap / 3, tap % 3) in a staging of <paramref name="width"/> positions a row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int TapOffset(int tap, int width, int stride)
    {
        int ky = tap / 3;
        return (ky * width + tap - 3 * ky) * stride;
    }

    /// <summary>
    /// conv2's table for the chunk at <paramref name="h0"/> of <paramref name="cq"/> channel quads: quad q of its K (tap q / cq,
    /// channel quad q % cq) as its offset in the hidden staging (table2[q]) and as the codes' quad (table2[MaxTable2 + q], −1 past K).
    /// </summary>
    private static void ChunkTable(ConvChainArgs a, ArrayView<int> table2, int h0, int cq)
    {
        int k2 = 9 * cq, rowQuads = a.Second.Cp / 16;
        for (int q = Group.IdxX; q < Round4(k2); q += Group.DimX)
        {
            int tap = q / cq, c = q - tap * cq;
            bool inside = q < k2;
            table2[q] = inside ? TapOffset(tap, HiddenSide, a.HiddenStride) + c : 0;
            table2[MaxTable2 + q] = inside ? tap * rowQuads + h0 / 16 + c : -1;
        }
    }

    /// <summary>Conv1's column n (a hidden position inside the image and a step) in the input staging, in quads (0 past the columns: its sums are dropped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int InputColumn(ConvChainArgs a, ArrayView<int> positions, int n, int columns, int inPositions) =>
        n < columns ? ((n & (a.First.Steps - 1)) * inPositions + positions[n >> a.StepShift]) * a.InStride : 0;

    /// <summary>Conv2's column n (tile pixel n / T, step n % T) at tap (0, 0) in the hidden staging, in quads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int HiddenColumn(ConvChainArgs a, int n)
    {
        int pixel = n >> a.StepShift;
        return ((n & (a.First.Steps - 1)) * MaxPositions + (pixel >> 3) * HiddenSide + (pixel & 7)) * a.HiddenStride;
    }

    /// <summary>Where conv1's columns n .. n + 7 go in the hidden staging (bytes; −1 past the columns) and which of them the block counts.</summary>
    private static HiddenColumns Hidden(ConvChainArgs a, ArrayView<int> positions, int n, int columns)
    {
        var c = new HiddenColumns
        {
            O0 = HiddenByte(a, positions, n, columns, out int k0), O1 = HiddenByte(a, positions, n + 1, columns, out int k1),
            O2 = HiddenByte(a, positions, n + 2, columns, out int k2), O3 = HiddenByte(a, positions, n + 3, columns, out int k3),
            O4 = HiddenByte(a, positions, n + 4, columns, out int k4), O5 = HiddenByte(a, positions, n + 5, columns, out int k5),
            O6 = HiddenByte(a, positions, n + 6, columns, out int k6), O7 = HiddenByte(a, positions, n + 7, columns, out int k7),
        };
        c.Counted = k0 | k1 << 1 | k2 << 2 | k3 << 3 | k4 << 4 | k5 << 5 | k6 << 6 | k7 << 7;
        return c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int HiddenByte(ConvChainArgs a, ArrayView<int> positions, int n, int columns, out int own)
    {
        own = 0;
        if (n >= columns) return -1;
        int place = positions[MaxPositions + (n >> a.StepShift)];
        own = place >> 16;
        return ((n & (a.First.Steps - 1)) * MaxPositions + (place & 0xFFFF)) * a.HiddenStride * 16;
    }

    /// <summary>Offset of conv2's column n at channel 0 ((frame·M)·HW + pixel), or −1 outside the image.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long Place(ConvChainArgs a, ChainTile tile, int n)
    {
        int pixel = n >> a.StepShift, y = tile.Y0 + (pixel >> 3), x = tile.X0 + (pixel & 7);
        if (y >= a.H || x >= a.W) return -1;
        return (long)((n & (a.First.Steps - 1)) * a.First.Batch + tile.Image) * a.Second.M * a.H * a.W + y * a.W + x;
    }

    /// <summary>
    /// Hidden channel r at a lane's eight conv1 columns (sums v0..v7): the epilogue (<paramref name="affine"/>: row r's
    /// constants) and the LIF over each run of T columns (one pixel's steps, in step order: the membrane restarts at 0 where
    /// k &amp; (T − 1) = 0), the spikes as bytes at <paramref name="at"/> + <paramref name="columns"/>' offsets (none where
    /// an offset is negative). Straight-line code, one neuron step per column (a loop over runs and a select chain cost ~5x
    /// the instructions). Rows past the hidden channels meet zero codes in conv2 and are not counted. Returns the
    /// spikes of the columns <paramref name="columns"/> counts.
    /// <para>
    /// MlpMmaKernels' HiddenRow with its columns' places given rather than computed (this kernel's columns are not evenly
    /// spaced in its staging). The MLP kernel keeps its own: with this one shared (the branch's first build) its rows read
    /// 1.18 / 0.71 ms a pass (CIFAR's 128→512→128 and 192→768→192, H200) against 1.06 / 0.65 in main's profile of the same
    /// day, every other row within 1 %.
    /// </para>
    /// </summary>
    internal static int HiddenRow<TFma>(ArrayView<sbyte> hidden, ArrayView<float> bn, PointwiseArgs p, RowAffine affine, int r, int at, HiddenColumns columns,
        float v0, float v1, float v2, float v3, float v4, float v5, float v6, float v7) where TFma : struct, IFma
    {
        int mask = p.Steps - 1, counted = r < p.M ? columns.Counted : 0;
        float thr = p.Threshold;
        int fired = 0;
        float m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v0, bn, p, r), 0f, thr, out float s);
        fired += Spike(hidden, at, columns.O0, s, counted & 1);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v1, bn, p, r), (1 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at, columns.O1, s, counted & 2);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v2, bn, p, r), (2 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at, columns.O2, s, counted & 4);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v3, bn, p, r), (3 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at, columns.O3, s, counted & 8);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v4, bn, p, r), (4 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at, columns.O4, s, counted & 16);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v5, bn, p, r), (5 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at, columns.O5, s, counted & 32);
        m = SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v6, bn, p, r), (6 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at, columns.O6, s, counted & 64);
        SpikeGemmKernels.LifSpike(affine.Apply<TFma>(v7, bn, p, r), (7 & mask) == 0 ? 0f : m, thr, out s);
        fired += Spike(hidden, at, columns.O7, s, counted & 128);
        return fired;
    }

    /// <summary>Stores a spike as a byte at <paramref name="at"/> + <paramref name="offset"/> (none where the offset is negative); 1 where it fired and is counted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Spike(ArrayView<sbyte> hidden, int at, int offset, float spike, int counted)
    {
        bool fire = spike != 0f;
        if (offset >= 0) hidden[at + offset] = fire ? (sbyte)1 : (sbyte)0;
        return fire && counted != 0 ? 1 : 0;
    }

    /// <summary>
    /// Reads conv1's accumulators mh0..mh15 (<see cref="MlpMmaKernels.HiddenStep"/>) out to <paramref name="rows"/>: rows group, group + 8 (x, y) at columns 8t .. 8t + 7
    /// (mh[4j + i] is n8 tile j; i = 0, 1: row group at columns 8t + j, 8t + 4 + j; i = 2, 3: row group + 8).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int ReadHidden<TRows>(TRows rows) where TRows : struct, IHiddenRows
    {
        CudaAsm.Emit("mov.b32 %0, mh0;", out int x0); CudaAsm.Emit("mov.b32 %0, mh1;", out int x4);
        CudaAsm.Emit("mov.b32 %0, mh2;", out int y0); CudaAsm.Emit("mov.b32 %0, mh3;", out int y4);
        CudaAsm.Emit("mov.b32 %0, mh4;", out int x1); CudaAsm.Emit("mov.b32 %0, mh5;", out int x5);
        CudaAsm.Emit("mov.b32 %0, mh6;", out int y1); CudaAsm.Emit("mov.b32 %0, mh7;", out int y5);
        CudaAsm.Emit("mov.b32 %0, mh8;", out int x2); CudaAsm.Emit("mov.b32 %0, mh9;", out int x6);
        CudaAsm.Emit("mov.b32 %0, mh10;", out int y2); CudaAsm.Emit("mov.b32 %0, mh11;", out int y6);
        CudaAsm.Emit("mov.b32 %0, mh12;", out int x3); CudaAsm.Emit("mov.b32 %0, mh13;", out int x7);
        CudaAsm.Emit("mov.b32 %0, mh14;", out int y3); CudaAsm.Emit("mov.b32 %0, mh15;", out int y7);
        return rows.Rows(x0, x1, x2, x3, x4, x5, x6, x7, y0, y1, y2, y3, y4, y5, y6, y7);
    }

    /// <summary>
    /// conv2's output channels r, r + 8, r + 16, r + 24 (of <paramref name="p"/>'s M) at eight columns whose offsets at
    /// channel 0 ((frame·M)·HW + pixel, −1: none) are <paramref name="o0"/>..<paramref name="o7"/>: the epilogue into
    /// output[frame, M, HW], each row through <see cref="MlpMmaKernels"/>' OutputRow.
    /// </summary>
    internal static void OutputRows<TFma>(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, PointwiseArgs p, int r,
        long o0, long o1, long o2, long o3, long o4, long o5, long o6, long o7,
        float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7,
        float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7, float d0, float d1, float d2, float d3, float d4, float d5, float d6, float d7) where TFma : struct, IFma
    {
        // Each row's constants in registers before any store (stores could alias these loads).
        var ra = RowAffine.Load(scales, bias, bn, p, r);
        var rb = RowAffine.Load(scales, bias, bn, p, r + 8);
        var rc = RowAffine.Load(scales, bias, bn, p, r + 16);
        var rd = RowAffine.Load(scales, bias, bn, p, r + 24);
        MlpMmaKernels.OutputRow<TFma>(output, bn, p, r, ra, o0, o1, o2, o3, o4, o5, o6, o7, a0, a1, a2, a3, a4, a5, a6, a7);
        MlpMmaKernels.OutputRow<TFma>(output, bn, p, r + 8, rb, o0, o1, o2, o3, o4, o5, o6, o7, b0, b1, b2, b3, b4, b5, b6, b7);
        MlpMmaKernels.OutputRow<TFma>(output, bn, p, r + 16, rc, o0, o1, o2, o3, o4, o5, o6, o7, c0, c1, c2, c3, c4, c5, c6, c7);
        MlpMmaKernels.OutputRow<TFma>(output, bn, p, r + 24, rd, o0, o1, o2, o3, o4, o5, o6, o7, d0, d1, d2, d3, d4, d5, d6, d7);
    }

    /// <summary>The tensor-core body (see the class remarks); returns the hidden spikes this lane fired.</summary>
    private static int MmaBlock<TFma>(ArrayView<int> w1, ArrayView<float> scales1, ArrayView<float> bias1, ArrayView<float> bn1,
        ArrayView<int> w2, ArrayView<float> scales2, ArrayView<float> bias2, ArrayView<float> bn2, ArrayView<float> output, ConvChainArgs a, ChainTile tile,
        ArrayView<Words4> staged, ArrayView<int> table1, ArrayView<int> table2, ArrayView<int> positions) where TFma : struct, IFma
    {
        var q1 = w1.Cast<Words4>();
        var q2 = w2.Cast<Words4>();
        var hs = staged.SubView(a.HiddenAt, SharedQuads - a.HiddenAt);
        var hidden = hs.Cast<int>().Cast<sbyte>();
        int warp = Group.IdxX / Lanes, lane = Group.IdxX - warp * Lanes, group = lane >> 2, t = lane & 3;
        int hiddenM = a.First.M, outM = a.Second.M, k1 = 9 * a.First.Cp / 16, rowQuads2 = 9 * a.Second.Cp / 16;
        int columns1 = tile.Positions << a.StepShift, columnTiles1 = (columns1 + 31) / 32, inPositions = tile.InPositions;
        // This warp's conv2 tile: rows 32·rowTile + group (+8, +16, +24), columns 32·columnTile + 4·group + j (B) and 8t .. 8t + 7 (C).
        int columnTiles2 = 2 * a.First.Steps, rowTile = warp / columnTiles2, columnTile = warp - rowTile * columnTiles2;
        int r2 = 32 * rowTile + group, n2 = 32 * columnTile;
        int v0 = SpikeMmaKernels.RowStart(r2, outM, rowQuads2), v1 = SpikeMmaKernels.RowStart(r2 + 8, outM, rowQuads2);
        int v2 = SpikeMmaKernels.RowStart(r2 + 16, outM, rowQuads2), v3 = SpikeMmaKernels.RowStart(r2 + 24, outM, rowQuads2);
        int c0 = HiddenColumn(a, n2 + 4 * group), c1 = HiddenColumn(a, n2 + 4 * group + 1), c2 = HiddenColumn(a, n2 + 4 * group + 2), c3 = HiddenColumn(a, n2 + 4 * group + 3);
        SpikeMmaKernels.ZeroAccumulators();
        MlpMmaKernels.DeclareHidden();
        int fired = 0;
        for (int h0 = 0; h0 < a.Second.Cp; h0 += a.Chunk)
        {
            int cq = Math.Min(a.Chunk, a.Second.Cp - h0) / 16, k2 = 9 * cq;
            ChunkTable(a, table2, h0, cq); // read after the barrier below
            // conv1 + LIF: the chunk's 16-row tiles × the hidden positions' 32-column tiles, shared among the warps.
            int rowTiles1 = (Math.Min(a.Chunk, hiddenM - h0) + 15) / 16, jobs = rowTiles1 * columnTiles1;
            for (int job = warp; job < jobs; job += a.Warps)
            {
                int columnTile1 = job / rowTiles1, r = h0 + 16 * (job - columnTile1 * rowTiles1) + group, n = 32 * columnTile1 + 4 * group;
                int u0 = SpikeMmaKernels.RowStart(r, hiddenM, k1), u1 = SpikeMmaKernels.RowStart(r + 8, hiddenM, k1);
                int b0 = InputColumn(a, positions, n, columns1, inPositions), b1 = InputColumn(a, positions, n + 1, columns1, inPositions);
                int b2 = InputColumn(a, positions, n + 2, columns1, inPositions), b3 = InputColumn(a, positions, n + 3, columns1, inPositions);
                // The rows' epilogue constants load while the mma run.
                var ra = RowAffine.Load(scales1, bias1, bn1, a.First, r);
                var rb = RowAffine.Load(scales1, bias1, bn1, a.First, r + 8);
                MlpMmaKernels.ZeroHidden();
                // The next step's codes are loaded before this step's mma (their latency hides behind it).
                var A0 = PointwiseMmaKernels.Quad(q1, t < k1 ? u0 : -1, t);
                var A1 = PointwiseMmaKernels.Quad(q1, t < k1 ? u1 : -1, t);
                for (int kq = 0; kq < k1; kq += 4)
                {
                    int q = kq + 4 + t, off = table1[kq + t];
                    bool inside = q < k1;
                    var N0 = PointwiseMmaKernels.Quad(q1, inside ? u0 : -1, q);
                    var N1 = PointwiseMmaKernels.Quad(q1, inside ? u1 : -1, q);
                    MlpMmaKernels.HiddenStep(A0, A1, staged[b0 + off], staged[b1 + off], staged[b2 + off], staged[b3 + off]);
                    A0 = N0;
                    A1 = N1;
                }
                int at = r - h0;
                fired += ReadHidden(new HiddenPair<TFma>(hidden, bn1, a.First, ra, rb, r, at, at + 8, Hidden(a, positions, 32 * columnTile1 + 8 * t, columns1)));
            }
            Group.Barrier(); // the chunk's spikes and table are staged
            // conv2: this warp's 32 rows × the chunk's 9 taps × channels, added to the accumulators.
            int aq = t < k2 ? table2[MaxTable2 + t] : -1;
            var C0 = PointwiseMmaKernels.Quad(q2, aq < 0 ? -1 : v0, aq);
            var C1 = PointwiseMmaKernels.Quad(q2, aq < 0 ? -1 : v1, aq);
            var C2 = PointwiseMmaKernels.Quad(q2, aq < 0 ? -1 : v2, aq);
            var C3 = PointwiseMmaKernels.Quad(q2, aq < 0 ? -1 : v3, aq);
            for (int kq = 0; kq < k2; kq += 4)
            {
                int q = kq + 4 + t, off = table2[kq + t];
                int next = q < k2 ? table2[MaxTable2 + q] : -1;
                var N0 = PointwiseMmaKernels.Quad(q2, next < 0 ? -1 : v0, next);
                var N1 = PointwiseMmaKernels.Quad(q2, next < 0 ? -1 : v1, next);
                var N2 = PointwiseMmaKernels.Quad(q2, next < 0 ? -1 : v2, next);
                var N3 = PointwiseMmaKernels.Quad(q2, next < 0 ? -1 : v3, next);
                SpikeMmaKernels.MmaStep(C0, C1, C2, C3, hs[c0 + off], hs[c1 + off], hs[c2 + off], hs[c3 + off]);
                C0 = N0;
                C1 = N1;
                C2 = N2;
                C3 = N3;
            }
            Group.Barrier(); // the next chunk may overwrite the spikes and the table
        }
        PointwiseMmaKernels.ReadLaneRows(new ChainOutputRows<TFma>(output, scales2, bias2, bn2, a, tile, r2, n2 + 8 * t));
        return fired;
    }

    /// <summary>The fallback: one thread plays every lane of the block over the same staging, tables and epilogues; returns the hidden spikes counted.</summary>
    private static int ScalarBlock<TFma>(ArrayView<int> w1, ArrayView<float> scales1, ArrayView<float> bias1, ArrayView<float> bn1,
        ArrayView<int> w2, ArrayView<float> scales2, ArrayView<float> bias2, ArrayView<float> bn2, ArrayView<float> output, ConvChainArgs a, ChainTile tile,
        ArrayView<Words4> staged, ArrayView<int> table1, ArrayView<int> table2, ArrayView<int> positions) where TFma : struct, IFma
    {
        var codes1 = w1.Cast<sbyte>();
        var codes2 = w2.Cast<sbyte>();
        var xs = staged.Cast<int>().Cast<sbyte>();
        var hs = staged.SubView(a.HiddenAt, SharedQuads - a.HiddenAt).Cast<int>().Cast<sbyte>();
        var sums1 = LocalMemory.Allocate<int>(16); // [row m][column k]: rows r + 8m, columns 8t + k
        var sums2 = LocalMemory.Allocate<int>(MaxWarps * Lanes * 32); // [lane][row m][column k]: rows r2 + 8m
        int lanes = a.Warps * Lanes, hiddenM = a.First.M, outM = a.Second.M, k1 = 9 * a.First.Cp / 16, kp1 = 9 * a.First.Cp, kp2 = 9 * a.Second.Cp;
        int columns1 = tile.Positions << a.StepShift, columnTiles1 = (columns1 + 31) / 32, columnTiles2 = 2 * a.First.Steps, inPositions = tile.InPositions, fired = 0;
        for (int i = 0; i < lanes * 32; i++) sums2[i] = 0;
        for (int h0 = 0; h0 < a.Second.Cp; h0 += a.Chunk)
        {
            int cq = Math.Min(a.Chunk, a.Second.Cp - h0) / 16, k2 = 9 * cq;
            ChunkTable(a, table2, h0, cq);
            int rowTiles1 = (Math.Min(a.Chunk, hiddenM - h0) + 15) / 16, jobs = rowTiles1 * columnTiles1;
            for (int lane = Group.IdxX; lane < lanes; lane += Group.DimX)
            {
                int warp = lane / Lanes, group = (lane & 31) >> 2, t = lane & 3;
                for (int job = warp; job < jobs; job += a.Warps)
                {
                    int columnTile1 = job / rowTiles1, r = h0 + 16 * (job - columnTile1 * rowTiles1) + group, n = 32 * columnTile1 + 8 * t;
                    for (int m = 0; m < 2; m++)
                        for (int k = 0; k < 8; k++)
                        {
                            int s = 0, row = r + 8 * m, column = InputColumn(a, positions, n + k, columns1, inPositions);
                            if (row < hiddenM)
                                for (int q = 0; q < k1; q++)
                                    for (int b = 0; b < 16; b++)
                                        s += codes1[(long)row * kp1 + 16 * q + b] * xs[(column + table1[q]) * 16 + b];
                            sums1[8 * m + k] = s;
                        }
                    int at = r - h0;
                    fired += new HiddenPair<TFma>(hs, bn1, a.First, RowAffine.Load(scales1, bias1, bn1, a.First, r), RowAffine.Load(scales1, bias1, bn1, a.First, r + 8),
                        r, at, at + 8, Hidden(a, positions, n, columns1)).Rows(sums1[0], sums1[1], sums1[2], sums1[3], sums1[4], sums1[5], sums1[6], sums1[7],
                        sums1[8], sums1[9], sums1[10], sums1[11], sums1[12], sums1[13], sums1[14], sums1[15]);
                }
            }
            Group.Barrier();
            for (int lane = Group.IdxX; lane < lanes; lane += Group.DimX)
            {
                int warp = lane / Lanes, group = (lane & 31) >> 2, t = lane & 3, rowTile = warp / columnTiles2;
                int r2 = 32 * rowTile + group, n2 = 32 * (warp - rowTile * columnTiles2) + 8 * t;
                for (int m = 0; m < 4; m++)
                {
                    int row = r2 + 8 * m;
                    if (row >= outM) continue;
                    for (int k = 0; k < 8; k++)
                    {
                        int s = sums2[lane * 32 + 8 * m + k], column = HiddenColumn(a, n2 + k);
                        for (int q = 0; q < k2; q++)
                            for (int b = 0; b < 16; b++)
                                s += codes2[(long)row * kp2 + 16 * table2[MaxTable2 + q] + b] * hs[(column + table2[q]) * 16 + b];
                        sums2[lane * 32 + 8 * m + k] = s;
                    }
                }
            }
            Group.Barrier();
        }
        for (int lane = Group.IdxX; lane < lanes; lane += Group.DimX)
        {
            int warp = lane / Lanes, group = (lane & 31) >> 2, t = lane & 3, rowTile = warp / columnTiles2, o = lane * 32;
            new ChainOutputRows<TFma>(output, scales2, bias2, bn2, a, tile, 32 * rowTile + group, 32 * (warp - rowTile * columnTiles2) + 8 * t).Rows(
                sums2[o], sums2[o + 1], sums2[o + 2], sums2[o + 3], sums2[o + 4], sums2[o + 5], sums2[o + 6], sums2[o + 7],
                sums2[o + 8], sums2[o + 9], sums2[o + 10], sums2[o + 11], sums2[o + 12], sums2[o + 13], sums2[o + 14], sums2[o + 15],
                sums2[o + 16], sums2[o + 17], sums2[o + 18], sums2[o + 19], sums2[o + 20], sums2[o + 21], sums2[o + 22], sums2[o + 23],
                sums2[o + 24], sums2[o + 25], sums2[o + 26], sums2[o + 27], sums2[o + 28], sums2[o + 29], sums2[o + 30], sums2[o + 31]);
        }
        return fired;
    }
}

/// <summary>
/// A block's place (<see cref="ConvChainKernels"/>): its image, its tile's first output pixel (<see cref="Y0"/>,
/// <see cref="X0"/>), and the hidden positions it computes — the tile ± 1 clipped to the image: <see cref="Rows"/> ×
/// <see cref="Cols"/> from image pixel (<see cref="Top"/>, <see cref="Left"/>), which is hidden staging position
/// (<see cref="Dy"/>, <see cref="Dx"/>). The input region is those positions ± 1: <see cref="InWidth"/> a row.
/// </summary>
internal readonly struct ChainTile
{
    public readonly int Image, Y0, X0, Top, Left, Rows, Cols, Dy, Dx;

    public ChainTile(ConvChainArgs a, int block)
    {
        int perImage = a.TilesX * a.TilesY;
        Image = block / perImage;
        int rest = block - Image * perImage, ty = rest / a.TilesX;
        Y0 = ty * ConvChainKernels.TileSide;
        X0 = (rest - ty * a.TilesX) * ConvChainKernels.TileSide;
        Top = Math.Max(Y0 - 1, 0);
        Left = Math.Max(X0 - 1, 0);
        Rows = Math.Min(Y0 + ConvChainKernels.TileSide + 1, a.H) - Top;
        Cols = Math.Min(X0 + ConvChainKernels.TileSide + 1, a.W) - Left;
        Dy = Top - (Y0 - 1);
        Dx = Left - (X0 - 1);
    }

    public int Positions => Rows * Cols;
    public int InWidth => Cols + 2;
    public int InPositions => (Rows + 2) * (Cols + 2);
}

/// <summary>conv2's epilogue of a lane's rows (<see cref="ConvChainKernels"/>): columns n .. n + 7 of the block's tile.</summary>
internal readonly struct ChainOutputRows<TFma>(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, ConvChainArgs a,
    ChainTile tile, int r, int n) : ILaneRows where TFma : struct, IFma
{
    public void Rows(float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7, float b0, float b1, float b2, float b3, float b4, float b5, float b6, float b7,
        float c0, float c1, float c2, float c3, float c4, float c5, float c6, float c7, float d0, float d1, float d2, float d3, float d4, float d5, float d6, float d7) =>
        ConvChainKernels.OutputRows<TFma>(output, scales, bias, bn, a.Second, r, ConvChainKernels.Place(a, tile, n), ConvChainKernels.Place(a, tile, n + 1),
            ConvChainKernels.Place(a, tile, n + 2), ConvChainKernels.Place(a, tile, n + 3), ConvChainKernels.Place(a, tile, n + 4), ConvChainKernels.Place(a, tile, n + 5),
            ConvChainKernels.Place(a, tile, n + 6), ConvChainKernels.Place(a, tile, n + 7),
            a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7, c0, c1, c2, c3, c4, c5, c6, c7, d0, d1, d2, d3, d4, d5, d6, d7);
}

/// <summary>A lane's two rows of conv1 sums (<see cref="ConvChainKernels.ReadHidden{TRows}"/>): rows group, group + 8 as x, y at its eight columns; returns the spikes counted.</summary>
internal interface IHiddenRows
{
    int Rows(float x0, float x1, float x2, float x3, float x4, float x5, float x6, float x7, float y0, float y1, float y2, float y3, float y4, float y5, float y6, float y7);
}

/// <summary>
/// Where a lane's eight hidden columns go: byte offsets <see cref="O0"/>..<see cref="O7"/> (added to a row's place; −1:
/// not stored) and a mask of the columns whose spikes are counted (bit k: column k).
/// </summary>
internal struct HiddenColumns
{
    public int O0, O1, O2, O3, O4, O5, O6, O7, Counted;

    /// <summary>Columns <paramref name="step"/> bytes apart, the first <paramref name="valid"/> counted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HiddenColumns Linear(int step, int valid) => new()
    {
        O0 = 0, O1 = step, O2 = 2 * step, O3 = 3 * step, O4 = 4 * step, O5 = 5 * step, O6 = 6 * step, O7 = 7 * step,
        Counted = valid <= 0 ? 0 : valid >= 8 ? 255 : (1 << valid) - 1,
    };
}

/// <summary>conv1's epilogue and LIF of a lane's two rows r, r + 8 (<see cref="ConvChainKernels.HiddenRow{TFma}"/>), their bytes at <paramref name="atA"/>, <paramref name="atB"/> + the columns' offsets.</summary>
internal readonly struct HiddenPair<TFma>(ArrayView<sbyte> hidden, ArrayView<float> bn, PointwiseArgs p, RowAffine ra, RowAffine rb, int r, int atA, int atB,
    HiddenColumns columns) : IHiddenRows where TFma : struct, IFma
{
    public int Rows(float x0, float x1, float x2, float x3, float x4, float x5, float x6, float x7, float y0, float y1, float y2, float y3, float y4, float y5, float y6, float y7) =>
        ConvChainKernels.HiddenRow<TFma>(hidden, bn, p, ra, r, atA, columns, x0, x1, x2, x3, x4, x5, x6, x7)
        + ConvChainKernels.HiddenRow<TFma>(hidden, bn, p, rb, r + 8, atB, columns, y0, y1, y2, y3, y4, y5, y6, y7);
}
