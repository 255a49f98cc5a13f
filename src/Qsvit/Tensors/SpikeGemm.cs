using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Qsvit.Tensors;

/// <summary>How an integer kernel multiplies and adds.</summary>
internal enum IntIsa
{
    /// <summary>Plain scalar loops.</summary>
    Scalar = 0,
    /// <summary>Portable 128-bit vectors (SSE / ARM64 AdvSimd): fields unpacked by shifts and masks, int32 multiply-add.</summary>
    Vector128 = 1,
    /// <summary>Portable 256-bit vectors, as <see cref="Vector128"/>.</summary>
    Vector256 = 2,
    /// <summary>Portable 512-bit vectors, as <see cref="Vector128"/>.</summary>
    Vector512 = 3,
    /// <summary>AVX-VNNI on 128-bit registers: vpdpbusd (u8 × s8) and vpdpwssd (s16 × s16).</summary>
    Vnni128 = 4,
    /// <summary>AVX-VNNI on 256-bit registers.</summary>
    Vnni256 = 5,
    /// <summary>AVX-512 VNNI on 512-bit registers, by machine-code tiles (<see cref="Vnni512Kernels"/>).</summary>
    Vnni512 = 6,
}

/// <summary>
/// Integer weights of a GEMM's left operand (M rows of K), ready for <see cref="SpikeGemm"/>: 8-bit (s8, K padded to a
/// multiple of 4) when every value fits in [−128, 127], else 16-bit (s16, K padded to a multiple of 2). Rows are padded to a
/// multiple of <see cref="SpikeGemm.Mr"/> with zeros. Immutable.
/// </summary>
internal sealed class IntMatrix
{
    public int Rows { get; }
    public int Cols { get; }
    /// <summary>K rounded up to the lane group (4 for 8-bit, 2 for 16-bit).</summary>
    public int PaddedCols { get; }
    public int PaddedRows { get; }
    /// <summary>8-bit codes ([PaddedRows, PaddedCols]) or null.</summary>
    public sbyte[]? Narrow { get; }
    /// <summary>16-bit codes ([PaddedRows, PaddedCols]) or null.</summary>
    public short[]? Wide { get; }
    public bool IsWide => Wide is not null;
    /// <summary>K values per 32-bit lane group: 4 (8-bit) or 2 (16-bit).</summary>
    public int Group => IsWide ? 2 : 4;

    private IntMatrix(int rows, int cols, sbyte[]? narrow, short[]? wide, int paddedCols)
    {
        Rows = rows;
        Cols = cols;
        PaddedCols = paddedCols;
        PaddedRows = (rows + SpikeGemm.Mr - 1) / SpikeGemm.Mr * SpikeGemm.Mr;
        Narrow = narrow;
        Wide = wide;
    }

    /// <summary>
    /// Builds the matrix from integer rows supplied <paramref name="rowsPerCall"/> at a time by <paramref name="fill"/>
    /// (fill(row0, rows, dst[rows·cols])), so a caller never holds more than one tile of int32 values. With
    /// <paramref name="conv"/>, rows are conv filters [Cin, kH, kW] and their columns are reordered to (tap, channel) with
    /// the channels padded to whole lane groups, the order <see cref="SpikeConv"/> gathers spikes in.
    /// </summary>
    public static IntMatrix Create(int rows, int cols, int min, int max, Action<int, int, Span<int>> fill, ConvGeometry? conv = null,
        int rowsPerCall = 64)
    {
        bool wide = min < sbyte.MinValue || max > sbyte.MaxValue;
        if (min < short.MinValue || max > short.MaxValue)
            throw new QsvitException($"integer weights in [{min}, {max}] do not fit 16 bits");
        int group = wide ? 2 : 4;
        int kp = (cols + group - 1) / group * group;
        int taps = 1, channelGroups = 0;
        if (conv is { } g)
        {
            taps = g.KernelH * g.KernelW;
            channelGroups = (g.InChannels + group - 1) / group;
            kp = taps * channelGroups * group;
        }
        int Column(int k) => conv is null ? k : (k % taps * channelGroups + k / taps / group) * group + k / taps % group;
        int mp = (rows + SpikeGemm.Mr - 1) / SpikeGemm.Mr * SpikeGemm.Mr;
        var narrow = wide ? null : new sbyte[(long)mp * kp];
        var wideData = wide ? new short[(long)mp * kp] : null;
        var tile = ArrayPool<int>.Shared.Rent(rowsPerCall * cols);
        try
        {
            for (int r0 = 0; r0 < rows; r0 += rowsPerCall)
            {
                int n = Math.Min(rowsPerCall, rows - r0);
                fill(r0, n, tile.AsSpan(0, n * cols));
                for (int r = 0; r < n; r++)
                for (int k = 0; k < cols; k++)
                {
                    int v = tile[r * cols + k];
                    if (v < min || v > max) throw new ArgumentException($"value {v} outside the declared range [{min}, {max}]");
                    if (wide) wideData![(long)(r0 + r) * kp + Column(k)] = (short)v;
                    else narrow![(long)(r0 + r) * kp + Column(k)] = (sbyte)v;
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(tile);
        }
        return new IntMatrix(rows, cols, narrow, wideData, kp);
    }

    public static IntMatrix FromValues(ReadOnlySpan<int> values, int rows, int cols, ConvGeometry? conv = null)
    {
        int min = 0, max = 0;
        foreach (int v in values) { min = Math.Min(min, v); max = Math.Max(max, v); }
        var copy = values.ToArray();
        return Create(rows, cols, min, max, (r0, n, dst) => copy.AsSpan(r0 * cols, n * cols).CopyTo(dst), conv);
    }
}
/// <summary>
/// Exact integer GEMM for spike inputs: C[M, N] (int32) = A[M, K] · B[K, N], A signed 8- or 16-bit integer weights
/// (<see cref="IntMatrix"/>), B non-negative activations (spikes, 0 or 1; any value up to 127 is exact) packed by lane groups:
/// one 32-bit word holds a group's K values of one column (4 bytes for 8-bit A, 2 shorts for 16-bit A). The word of lane
/// group g and column n is b[offsets[g] + n]: columns are contiguous per group, and the offsets let a convolution address
/// its zero-padded input in place (one offset per (tap, channel group)) instead of copying it into an im2col matrix.
/// Every path sums in int32 and gives identical results (no overflow for |A| ≤ 32767 and K · 127 · 32767 &lt; 2^31).
/// One driver per register shape (<see cref="Tile256{T}"/>, ...) runs any <see cref="IGroupDot"/> (the lane-group
/// multiply-add of 8- or 16-bit A, by VNNI or portable ops), as TensorPrimitives pairs one driver with operator structs.
/// </summary>
internal static unsafe class SpikeGemm
{
    /// <summary>Rows per micro-tile.</summary>
    public const int Mr = 4;
    /// <summary>Columns are processed in multiples of it (the widest tile: two 512-bit vectors of int32); B must be readable up to it.</summary>
    public const int ColumnAlign = 32;
    /// <summary>Lane groups per K block (keeps the B micro-panel in L1).</summary>
    private const int KcGroups = 128;
    /// <summary>Columns per parallel work item.</summary>
    private const int NcColumns = 256;
    /// <summary>Columns per block of C (the tile rows' stride).</summary>
    public const int BlockColumns = NcColumns;

    public static readonly IntIsa Best =
        Vnni512Kernels.IsSupported ? IntIsa.Vnni512 :
        AvxVnni.IsSupported ? IntIsa.Vnni256 :
        Vector512.IsHardwareAccelerated ? IntIsa.Vector512 :
        Vector256.IsHardwareAccelerated ? IntIsa.Vector256 :
        Vector128.IsHardwareAccelerated ? IntIsa.Vector128 : IntIsa.Scalar;

    public static bool IsSupported(IntIsa isa) => isa switch
    {
        IntIsa.Vnni128 or IntIsa.Vnni256 => AvxVnni.IsSupported,
        IntIsa.Vnni512 => Vnni512Kernels.IsSupported,
        IntIsa.Vector512 => Vector512.IsHardwareAccelerated,
        IntIsa.Vector256 => Vector256.IsHardwareAccelerated,
        IntIsa.Vector128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    public static int PaddedColumns(int n) => (n + ColumnAlign - 1) / ColumnAlign * ColumnAlign;

    private static int Nr(IntIsa isa) => isa switch
    {
        IntIsa.Vnni512 => Vnni512Kernels.Columns,
        IntIsa.Vector512 or IntIsa.Vnni256 or IntIsa.Vector256 => 32,
        IntIsa.Vector128 or IntIsa.Vnni128 => 8,
        _ => 4,
    };

    /// <summary>
    /// Receives one finished block of C: columns [n0, n1) of rows [m0, m1) as rows of <see cref="NcColumns"/> ints (row m at
    /// tile + m·NcColumns). Rows are whole unless the columns make fewer blocks than threads (<see cref="RowParts"/>).
    /// </summary>
    public delegate void BlockEpilogue(int n0, int n1, int m0, int m1, int* tile);

    /// <summary>
    /// C = A · B over <paramref name="columns"/> (a multiple of <see cref="ColumnAlign"/>) columns, word (g, n) of B at
    /// b[offsets[g] + n] (offsets: one per lane group of A), one block of <see cref="NcColumns"/> columns at a time in a
    /// per-thread tile, each finished block handed to <paramref name="epilogue"/> (so C never exists whole).
    /// </summary>
    public static void Multiply(IntMatrix a, int* b, long* offsets, int columns, BlockEpilogue epilogue, IntIsa isa, int threads) =>
        Multiply(a, b, offsets, columns, 1, 0, (n0, n1, m0, m1, _, tile) => epilogue(n0, n1, m0, m1, tile), isa, threads);

    /// <summary>Receives step <paramref name="step"/> of one block of C (see <see cref="BlockEpilogue"/>).</summary>
    public delegate void StepEpilogue(int n0, int n1, int m0, int m1, int step, int* tile);

    /// <summary>
    /// <paramref name="steps"/> products over the same <paramref name="columns"/>, step t's B columns
    /// t·<paramref name="stepStride"/> words further on: each block of columns runs its steps in order on one thread, handing
    /// each to <paramref name="epilogue"/> (so an epilogue can carry state across steps, e.g. a LIF membrane over T).
    /// </summary>
    public static void Multiply(IntMatrix a, int* b, long* offsets, int columns, int steps, long stepStride, StepEpilogue epilogue, IntIsa isa, int threads)
    {
        Debug.Assert(columns % ColumnAlign == 0);
        if (!IsSupported(isa)) throw new ArgumentException($"{isa} is not supported on this machine");
        int groups = a.PaddedCols / a.Group;
        int width = BlockWidth(columns, threads), blocks = (columns + width - 1) / width;
        int rowParts = RowParts(a.PaddedRows, blocks, threads), rowUnits = (a.PaddedRows + RowAlign - 1) / RowAlign;
        int nr = Nr(isa), lda = a.PaddedCols * (a.IsWide ? 2 : 1);
        // K blocks of near-equal size: 144 groups as 72 + 72, not 128 + 16 (a 16-group block loads and stores the whole tile
        // of sums for a sixteenth of the multiply-adds).
        int kBlocks = Math.Max(1, (groups + KcGroups - 1) / KcGroups), kc = (groups + kBlocks - 1) / kBlocks;
        // The vector tiles read B from a micro-panel copied per column tile and K block: B's lane-group rows lie a grid's
        // stride apart (often a multiple of 4 KB), so a K block's rows would share a few L1 sets and evict each other
        // between row tiles; copied contiguously, the panel stays in L1 for all of them. Group g sits at row g − g0 of it.
        bool pack = nr >= 32;
        Debug.Assert(!pack || (nr is 32 or 64 && kc <= KcGroups));
        fixed (long* pp = nr == 64 ? PanelRows64 : PanelRows32)
        fixed (sbyte* a8 = a.Narrow)
        fixed (short* a16 = a.Wide)
        {
            nint pa = a.IsWide ? (nint)a16 : (nint)a8, pb = (nint)b, po = (nint)offsets, ppo = (nint)pp;
            void Block(int item)
            {
                int blk = item / rowParts, part = item - blk * rowParts;
                int n0 = blk * width, n1 = Math.Min(columns, n0 + width);
                int m0 = Compute.ChunkStart(rowUnits, rowParts, part) * RowAlign, m1 = Math.Min(a.PaddedRows, Compute.ChunkStart(rowUnits, rowParts, part + 1) * RowAlign);
                if (t_tile is null || t_tile.Length < a.PaddedRows * NcColumns)
                    t_tile = GC.AllocateUninitializedArray<int>(a.PaddedRows * NcColumns, pinned: true);
                if (pack && (t_panel is null || t_panel.Length < kc * nr)) t_panel = GC.AllocateUninitializedArray<int>(kc * nr, pinned: true);
                fixed (int* panel = t_panel)
                fixed (int* tile = t_tile)
                    for (int step = 0; step < steps; step++)
                    {
                        int* bs = (int*)pb + step * stepStride;
                        for (int g0 = 0; g0 < groups; g0 += kc)
                        {
                            int g1 = Math.Min(groups, g0 + kc);
                            // Column tiles outer: a tile's B micro-panel (kc × nr words) stays in L1 across all row tiles.
                            for (int n = n0; n < n1; n += nr)
                            {
                                int* bt = bs + n;
                                long* ot = (long*)po;
                                if (pack)
                                {
                                    CopyPanel(bt, ot, g0, g1, Math.Min(nr, n1 - n), panel, nr);
                                    bt = panel;
                                    ot = (long*)ppo - g0; // ot[g] = (g − g0) · nr
                                }
                                for (int m = m0; m < m1; m += Mr)
                                    Tile(isa, a.IsWide, (byte*)pa + (long)m * lda, lda, bt, ot, g0, g1, tile + m * NcColumns + (n - n0), NcColumns, n1 - n);
                            }
                        }
                        epilogue(n0, n1, m0, m1, step, tile);
                    }
            }
            Compute.For(blocks * rowParts, threads, Block);
        }
    }

    [ThreadStatic] private static int[]? t_tile, t_panel;

    /// <summary>Offsets of a B micro-panel's rows (i · nr words for row i &lt; <see cref="KcGroups"/>), for nr = 32 and 64.</summary>
    private static readonly long[] PanelRows32 = PanelRows(32), PanelRows64 = PanelRows(64);

    private static long[] PanelRows(int nr) => [.. Enumerable.Range(0, KcGroups).Select(i => (long)i * nr)];

    /// <summary>Rows g0..g1 of B's <paramref name="columns"/> (a multiple of 8) words at b + off[g] into panel rows <paramref name="stride"/> apart.</summary>
    private static void CopyPanel(int* b, long* off, int g0, int g1, int columns, int* panel, int stride)
    {
        for (int g = g0; g < g1; g++)
        {
            int* src = b + off[g], dst = panel + (long)(g - g0) * stride;
            int j = 0;
            if (Vector512.IsHardwareAccelerated)
                for (; j + 16 <= columns; j += 16) Vector512.Store(Vector512.Load(src + j), dst + j);
            for (; j < columns; j += 8) Vector256.Store(Vector256.Load(src + j), dst + j);
        }
    }

    /// <summary>Row parts start on multiples of it (of <see cref="Mr"/> and of the 2 or 4 channels of a spike word).</summary>
    private const int RowAlign = 16;
    /// <summary>The fewest rows a part gets: fewer would spend more on the B panel copy than on the sums.</summary>
    private const int MinPartRows = 64;

    /// <summary>
    /// Row parts per column block: one, unless the columns make fewer blocks than threads (4 × 4 maps at batch 32 give a
    /// LIF-fused layer 512 columns a step, four blocks): then the rows are cut so every thread gets work. Every row's
    /// sums are the same whatever the cut, and a fused LIF keeps each row's membrane on one thread over the steps.
    /// </summary>
    internal static int RowParts(int rows, int blocks, int threads) =>
        blocks >= threads ? 1 : Math.Max(1, Math.Min((threads + blocks - 1) / blocks, rows / MinPartRows));

    /// <summary>
    /// Columns per block: at most <see cref="NcColumns"/>, a multiple of <see cref="ColumnAlign"/>, and, when the columns
    /// make only a few blocks (a batch-1 pass), narrow enough that the threads get near-equal shares: 800 columns on two
    /// threads as 4 × 224 rather than 3 × 256 + 32.
    /// </summary>
    internal static int BlockWidth(int columns, int threads)
    {
        int tiles = columns / ColumnAlign, best = NcColumns;
        if (threads <= 1 || tiles == 0) return best;
        long bestLoad = long.MaxValue;
        for (int width = NcColumns; width >= 4 * ColumnAlign; width -= ColumnAlign)
        {
            int perBlock = width / ColumnAlign, blocks = (tiles + perBlock - 1) / perBlock;
            // The busiest thread's columns, with blocks dealt out evenly (ties keep the wider block).
            long load = Math.Min((long)(blocks + threads - 1) / threads * width, (long)tiles * ColumnAlign);
            if (load < bestLoad) (bestLoad, best) = (load, width);
        }
        return best;
    }

    /// <summary>
    /// One Mr × Nr(isa) tile of C += A[rows, groups g0..g1) · B (<paramref name="left"/> columns are left in the block, a
    /// multiple of <see cref="ColumnAlign"/>); a holds 4-byte lane-group words, lda bytes apart.
    /// </summary>
    private static void Tile(IntIsa isa, bool wide, byte* a, int lda, int* b, long* off, int g0, int g1, int* c, int ldc, int left)
    {
        if (isa == IntIsa.Vnni512)
        {
            var args = new Vnni512Kernels.Args { A = a, Lda = lda, B = b, Offsets = off, G0 = g0, G1 = g1, C = c, Ldc = ldc * sizeof(int) };
            Vnni512Kernels.Tile(wide, left < Vnni512Kernels.Columns, ref args);
            return;
        }
        switch (isa, wide)
        {
            case (IntIsa.Vnni256, false): Tile256<Vnni8>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vnni256, true): Tile256<Vnni16>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vnni128, false): Tile128<Vnni8>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vnni128, true): Tile128<Vnni16>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vector512, false): Tile512<Portable8>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vector512, true): Tile512<Portable16>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vector256, false): Tile256<Portable8>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vector256, true): Tile256<Portable16>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vector128, false): Tile128<Portable8>(a, lda, b, off, g0, g1, c, ldc); break;
            case (IntIsa.Vector128, true): Tile128<Portable16>(a, lda, b, off, g0, g1, c, ldc); break;
            case (_, false): TileScalar<Portable8>(a, lda, b, off, g0, g1, c, ldc); break;
            default: TileScalar<Portable16>(a, lda, b, off, g0, g1, c, ldc); break;
        }
    }

    /// <summary>
    /// acc += the lane-group dot products of B words (one column per 32-bit lane) with A's group word broadcast to every lane
    /// (4 × s8 or 2 × s16 weights). Every width and every implementation gives the same int32 sums.
    /// </summary>
    private interface IGroupDot
    {
        static abstract Vector128<int> Dot(Vector128<int> acc, Vector128<int> b, Vector128<int> a);
        static abstract Vector256<int> Dot(Vector256<int> acc, Vector256<int> b, Vector256<int> a);
        static abstract Vector512<int> Dot(Vector512<int> acc, Vector512<int> b, Vector512<int> a);
        static abstract int Dot(int acc, int b, int a);
    }

    /// <summary>u8 spikes × s8 weights: vpdpbusd.</summary>
    private readonly struct Vnni8 : IGroupDot
    {
        public static Vector128<int> Dot(Vector128<int> acc, Vector128<int> b, Vector128<int> a) => AvxVnni.MultiplyWideningAndAdd(acc, b.AsByte(), a.AsSByte());
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<int> b, Vector256<int> a) => AvxVnni.MultiplyWideningAndAdd(acc, b.AsByte(), a.AsSByte());
        // .NET 10 has no 512-bit VNNI class; two 256-bit halves (never dispatched, kept so every width exists).
        public static Vector512<int> Dot(Vector512<int> acc, Vector512<int> b, Vector512<int> a) =>
            Vector512.Create(Dot(acc.GetLower(), b.GetLower(), a.GetLower()), Dot(acc.GetUpper(), b.GetUpper(), a.GetUpper()));
        public static int Dot(int acc, int b, int a) => Portable8.Dot(acc, b, a);
    }

    /// <summary>s16 spikes × s16 weights: vpdpwssd.</summary>
    private readonly struct Vnni16 : IGroupDot
    {
        public static Vector128<int> Dot(Vector128<int> acc, Vector128<int> b, Vector128<int> a) => AvxVnni.MultiplyWideningAndAdd(acc, b.AsInt16(), a.AsInt16());
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<int> b, Vector256<int> a) => AvxVnni.MultiplyWideningAndAdd(acc, b.AsInt16(), a.AsInt16());
        public static Vector512<int> Dot(Vector512<int> acc, Vector512<int> b, Vector512<int> a) =>
            Vector512.Create(Dot(acc.GetLower(), b.GetLower(), a.GetLower()), Dot(acc.GetUpper(), b.GetUpper(), a.GetUpper()));
        public static int Dot(int acc, int b, int a) => Portable16.Dot(acc, b, a);
    }

    /// <summary>8-bit A without VNNI (ARM64, older x86): fields unpacked by shifts and masks, multiplied in int32.</summary>
    private readonly struct Portable8 : IGroupDot
    {
        public static Vector128<int> Dot(Vector128<int> acc, Vector128<int> b, Vector128<int> a)
        {
            var ff = Vector128.Create(0xFF);
            for (int j = 0; j < 4; j++) acc += ((b >>> (8 * j)) & ff) * ((a << (24 - 8 * j)) >> 24);
            return acc;
        }
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<int> b, Vector256<int> a)
        {
            var ff = Vector256.Create(0xFF);
            for (int j = 0; j < 4; j++) acc += ((b >>> (8 * j)) & ff) * ((a << (24 - 8 * j)) >> 24);
            return acc;
        }
        public static Vector512<int> Dot(Vector512<int> acc, Vector512<int> b, Vector512<int> a)
        {
            var ff = Vector512.Create(0xFF);
            for (int j = 0; j < 4; j++) acc += ((b >>> (8 * j)) & ff) * ((a << (24 - 8 * j)) >> 24);
            return acc;
        }
        public static int Dot(int acc, int b, int a)
        {
            for (int j = 0; j < 4; j++) acc += ((b >>> (8 * j)) & 0xFF) * ((a << (24 - 8 * j)) >> 24);
            return acc;
        }
    }

    /// <summary>16-bit A without VNNI: low and high halves sign-extended, multiplied in int32.</summary>
    private readonly struct Portable16 : IGroupDot
    {
        public static Vector128<int> Dot(Vector128<int> acc, Vector128<int> b, Vector128<int> a) =>
            acc + ((b << 16) >> 16) * ((a << 16) >> 16) + (b >> 16) * (a >> 16);
        public static Vector256<int> Dot(Vector256<int> acc, Vector256<int> b, Vector256<int> a) =>
            acc + ((b << 16) >> 16) * ((a << 16) >> 16) + (b >> 16) * (a >> 16);
        public static Vector512<int> Dot(Vector512<int> acc, Vector512<int> b, Vector512<int> a) =>
            acc + ((b << 16) >> 16) * ((a << 16) >> 16) + (b >> 16) * (a >> 16);
        public static int Dot(int acc, int b, int a) => acc + (short)b * (short)a + (b >> 16) * (a >> 16);
    }

    /// <summary>An accumulator of C: zero for the first K block (the tile is never cleared), else the partial sums so far.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Start128(int* c, int g0) => g0 == 0 ? Vector128<int>.Zero : Vector128.Load(c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Start256(int* c, int g0) => g0 == 0 ? Vector256<int>.Zero : Vector256.Load(c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Start512(int* c, int g0) => g0 == 0 ? Vector512<int>.Zero : Vector512.Load(c);

    // 4 rows × 32 columns of 256-bit vectors (16 accumulators): per lane group 4 B loads, 4 broadcasts, 16 dot products.
    private static void Tile256<T>(byte* a, int lda, int* b, long* off, int g0, int g1, int* c, int ldc) where T : struct, IGroupDot
    {
        int* r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
        var c00 = Start256(c, g0); var c01 = Start256(c + 8, g0); var c02 = Start256(c + 16, g0); var c03 = Start256(c + 24, g0);
        var c10 = Start256(r1, g0); var c11 = Start256(r1 + 8, g0); var c12 = Start256(r1 + 16, g0); var c13 = Start256(r1 + 24, g0);
        var c20 = Start256(r2, g0); var c21 = Start256(r2 + 8, g0); var c22 = Start256(r2 + 16, g0); var c23 = Start256(r2 + 24, g0);
        var c30 = Start256(r3, g0); var c31 = Start256(r3 + 8, g0); var c32 = Start256(r3 + 16, g0); var c33 = Start256(r3 + 24, g0);
        for (int g = g0; g < g1; g++)
        {
            int* bp = b + off[g];
            var b0 = Vector256.Load(bp); var b1 = Vector256.Load(bp + 8); var b2 = Vector256.Load(bp + 16); var b3 = Vector256.Load(bp + 24);
            var a0 = Vector256.Create(*(int*)(a + 4 * g));
            c00 = T.Dot(c00, b0, a0); c01 = T.Dot(c01, b1, a0); c02 = T.Dot(c02, b2, a0); c03 = T.Dot(c03, b3, a0);
            var a1 = Vector256.Create(*(int*)(a + lda + 4 * g));
            c10 = T.Dot(c10, b0, a1); c11 = T.Dot(c11, b1, a1); c12 = T.Dot(c12, b2, a1); c13 = T.Dot(c13, b3, a1);
            var a2 = Vector256.Create(*(int*)(a + 2 * lda + 4 * g));
            c20 = T.Dot(c20, b0, a2); c21 = T.Dot(c21, b1, a2); c22 = T.Dot(c22, b2, a2); c23 = T.Dot(c23, b3, a2);
            var a3 = Vector256.Create(*(int*)(a + 3 * lda + 4 * g));
            c30 = T.Dot(c30, b0, a3); c31 = T.Dot(c31, b1, a3); c32 = T.Dot(c32, b2, a3); c33 = T.Dot(c33, b3, a3);
        }
        c00.Store(c); c01.Store(c + 8); c02.Store(c + 16); c03.Store(c + 24);
        c10.Store(r1); c11.Store(r1 + 8); c12.Store(r1 + 16); c13.Store(r1 + 24);
        c20.Store(r2); c21.Store(r2 + 8); c22.Store(r2 + 16); c23.Store(r2 + 24);
        c30.Store(r3); c31.Store(r3 + 8); c32.Store(r3 + 16); c33.Store(r3 + 24);
    }

    // 4 rows × 32 columns of 512-bit vectors (8 accumulators).
    private static void Tile512<T>(byte* a, int lda, int* b, long* off, int g0, int g1, int* c, int ldc) where T : struct, IGroupDot
    {
        int* r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
        var c00 = Start512(c, g0); var c01 = Start512(c + 16, g0);
        var c10 = Start512(r1, g0); var c11 = Start512(r1 + 16, g0);
        var c20 = Start512(r2, g0); var c21 = Start512(r2 + 16, g0);
        var c30 = Start512(r3, g0); var c31 = Start512(r3 + 16, g0);
        for (int g = g0; g < g1; g++)
        {
            int* bp = b + off[g];
            var b0 = Vector512.Load(bp); var b1 = Vector512.Load(bp + 16);
            var a0 = Vector512.Create(*(int*)(a + 4 * g));
            c00 = T.Dot(c00, b0, a0); c01 = T.Dot(c01, b1, a0);
            var a1 = Vector512.Create(*(int*)(a + lda + 4 * g));
            c10 = T.Dot(c10, b0, a1); c11 = T.Dot(c11, b1, a1);
            var a2 = Vector512.Create(*(int*)(a + 2 * lda + 4 * g));
            c20 = T.Dot(c20, b0, a2); c21 = T.Dot(c21, b1, a2);
            var a3 = Vector512.Create(*(int*)(a + 3 * lda + 4 * g));
            c30 = T.Dot(c30, b0, a3); c31 = T.Dot(c31, b1, a3);
        }
        c00.Store(c); c01.Store(c + 16); c10.Store(r1); c11.Store(r1 + 16);
        c20.Store(r2); c21.Store(r2 + 16); c30.Store(r3); c31.Store(r3 + 16);
    }

    // 4 rows × 8 columns of 128-bit vectors (8 accumulators).
    private static void Tile128<T>(byte* a, int lda, int* b, long* off, int g0, int g1, int* c, int ldc) where T : struct, IGroupDot
    {
        int* r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
        var c00 = Start128(c, g0); var c01 = Start128(c + 4, g0);
        var c10 = Start128(r1, g0); var c11 = Start128(r1 + 4, g0);
        var c20 = Start128(r2, g0); var c21 = Start128(r2 + 4, g0);
        var c30 = Start128(r3, g0); var c31 = Start128(r3 + 4, g0);
        for (int g = g0; g < g1; g++)
        {
            int* bp = b + off[g];
            var b0 = Vector128.Load(bp); var b1 = Vector128.Load(bp + 4);
            var a0 = Vector128.Create(*(int*)(a + 4 * g));
            c00 = T.Dot(c00, b0, a0); c01 = T.Dot(c01, b1, a0);
            var a1 = Vector128.Create(*(int*)(a + lda + 4 * g));
            c10 = T.Dot(c10, b0, a1); c11 = T.Dot(c11, b1, a1);
            var a2 = Vector128.Create(*(int*)(a + 2 * lda + 4 * g));
            c20 = T.Dot(c20, b0, a2); c21 = T.Dot(c21, b1, a2);
            var a3 = Vector128.Create(*(int*)(a + 3 * lda + 4 * g));
            c30 = T.Dot(c30, b0, a3); c31 = T.Dot(c31, b1, a3);
        }
        c00.Store(c); c01.Store(c + 4); c10.Store(r1); c11.Store(r1 + 4);
        c20.Store(r2); c21.Store(r2 + 4); c30.Store(r3); c31.Store(r3 + 4);
    }

    // 4 rows × 4 columns, scalar.
    private static void TileScalar<T>(byte* a, int lda, int* b, long* off, int g0, int g1, int* c, int ldc) where T : struct, IGroupDot
    {
        for (int r = 0; r < Mr; r++)
        for (int j = 0; j < 4; j++)
        {
            int acc = g0 == 0 ? 0 : c[r * ldc + j]; // the first K block starts from zero
            for (int g = g0; g < g1; g++) acc = T.Dot(acc, b[off[g] + j], *(int*)(a + r * lda + 4 * g));
            c[r * ldc + j] = acc;
        }
    }
}
