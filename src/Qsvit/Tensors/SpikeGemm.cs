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
/// one 32-bit word holds a group's K values of one column (4 bytes for 8-bit A, 2 shorts for 16-bit A), and words are
/// stored in panels of <see cref="Panel"/> columns: word (g, n) at ((n / Panel)·groups + g)·Panel + n % Panel, so a
/// micro-kernel streams its B panel contiguously. Every path sums in int32 and gives identical results (no overflow
/// for |A| ≤ 32767 and K · 127 · 32767 &lt; 2^31).
/// </summary>
internal static unsafe class SpikeGemm
{
    /// <summary>Rows per micro-tile.</summary>
    public const int Mr = 4;
    /// <summary>Columns per B panel; columns are padded to a multiple of it (the widest tile: two 512-bit vectors of int32).</summary>
    public const int Panel = 32;
    public const int ColumnAlign = Panel;
    /// <summary>Lane groups per K block (keeps a B micro-panel in L1).</summary>
    private const int KcGroups = 128;
    /// <summary>Columns per parallel work item.</summary>
    private const int NcColumns = 256;

    /// <summary>Offset of word (g, n) in a B of <paramref name="groups"/> lane groups.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long WordOffset(int g, int n, int groups) => ((long)(n / Panel) * groups + g) * Panel + n % Panel;

    public static readonly IntIsa Best =
        AvxVnni.IsSupported ? IntIsa.Vnni256 :
        Vector512.IsHardwareAccelerated ? IntIsa.Vector512 :
        Vector256.IsHardwareAccelerated ? IntIsa.Vector256 :
        Vector128.IsHardwareAccelerated ? IntIsa.Vector128 : IntIsa.Scalar;

    public static bool IsSupported(IntIsa isa) => isa switch
    {
        IntIsa.Vnni128 or IntIsa.Vnni256 => AvxVnni.IsSupported,
        IntIsa.Vector512 => Vector512.IsHardwareAccelerated,
        IntIsa.Vector256 => Vector256.IsHardwareAccelerated,
        IntIsa.Vector128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    public static int PaddedColumns(int n) => (n + ColumnAlign - 1) / ColumnAlign * ColumnAlign;

    private static int Nr(IntIsa isa) => isa switch
    {
        IntIsa.Vector512 or IntIsa.Vnni256 => 32,
        IntIsa.Vector256 => 16,
        IntIsa.Vector128 or IntIsa.Vnni128 => 8,
        _ => 4,
    };

    /// <summary>Receives one finished block of C: columns [n0, n1) as rows of <see cref="NcColumns"/> ints (row m at tile + m·NcColumns).</summary>
    public delegate void BlockEpilogue(int n0, int n1, int* tile);

    /// <summary>
    /// C = A · B over <paramref name="columns"/> (a multiple of <see cref="ColumnAlign"/>) columns of B, one block of
    /// <see cref="NcColumns"/> columns at a time in a per-thread tile, each finished block handed to <paramref name="epilogue"/>
    /// (so C never exists whole). <paramref name="groupMask"/>, when given, holds one byte per (lane group, column block):
    /// 0 where that part of B is all zeros, so it is skipped.
    /// </summary>
    public static void Multiply(IntMatrix a, void* b, int columns, BlockEpilogue epilogue, IntIsa isa, int threads, byte* groupMask = null)
    {
        Debug.Assert(columns % ColumnAlign == 0);
        if (!IsSupported(isa)) throw new ArgumentException($"{isa} is not supported on this machine");
        int groups = a.PaddedCols / a.Group;
        int blocks = (columns + NcColumns - 1) / NcColumns;
        int nr = Nr(isa);
        fixed (sbyte* a8 = a.Narrow)
        fixed (short* a16 = a.Wide)
        {
            nint pa = a.IsWide ? (nint)a16 : (nint)a8, pb = (nint)b, pm = (nint)groupMask;
            void Block(int blk)
            {
                int n0 = blk * NcColumns, n1 = Math.Min(columns, n0 + NcColumns);
                if (t_tile is null || t_tile.Length < a.PaddedRows * NcColumns)
                    t_tile = GC.AllocateUninitializedArray<int>(a.PaddedRows * NcColumns, pinned: true);
                fixed (int* tile = t_tile)
                {
                    new Span<int>(tile, a.PaddedRows * NcColumns).Clear();
                    for (int g0 = 0; g0 < groups; g0 += KcGroups)
                    {
                        int g1 = Math.Min(groups, g0 + KcGroups);
                        // Column tiles outer: a tile's B micro-panel (KcGroups × 32 words) stays in L1 across all row tiles.
                        for (int n = n0; n < n1; n += nr)
                        for (int m = 0; m < a.PaddedRows; m += Mr)
                        {
                            int* ct = tile + m * NcColumns + (n - n0);
                            if (a.IsWide)
                                Tile16((short*)pa + (long)m * a.PaddedCols, a.PaddedCols, (int*)pb, groups, n, g0, g1, ct, NcColumns, isa,
                                    (byte*)pm, blocks, blk);
                            else
                                Tile8((sbyte*)pa + (long)m * a.PaddedCols, a.PaddedCols, (int*)pb, groups, n, g0, g1, ct, NcColumns, isa,
                                    (byte*)pm, blocks, blk);
                        }
                    }
                    epilogue(n0, n1, tile);
                }
            }
            Compute.For(blocks, threads, Block);
        }
    }

    [ThreadStatic] private static int[]? t_tile;

    /// <summary>Columns per block of C (the tile rows' stride).</summary>
    public const int BlockColumns = NcColumns;

    private static void Tile8(sbyte* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, IntIsa isa,
        byte* mask, int blocks, int blk)
    {
        switch (isa)
        {
            case IntIsa.Vnni256: Vnni8x256(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vnni128: Vnni8x128(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vector512: G8x512(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vector256: G8x256(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vector128: G8x128(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            default: Scalar(a, null, lda, b, groups, n, 4, g0, g1, c, ldc, mask, blocks, blk); break;
        }
    }

    private static void Tile16(short* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, IntIsa isa,
        byte* mask, int blocks, int blk)
    {
        switch (isa)
        {
            case IntIsa.Vnni256: Vnni16x256(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vnni128: Vnni16x128(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vector512: G16x512(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vector256: G16x256(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            case IntIsa.Vector128: G16x128(a, lda, b, groups, n, g0, g1, c, ldc, mask, blocks, blk); break;
            default: Scalar(null, a, lda, b, groups, n, 2, g0, g1, c, ldc, mask, blocks, blk); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Skip(byte* mask, int blocks, int blk, int g) => mask != null && mask[(long)g * blocks + blk] == 0;

    // 4 rows × 32 columns (four vectors, 16 accumulators): per lane group 4 B loads, 4 broadcasts, 16 vpdpbusd.
    private static void Vnni8x256(sbyte* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc,
        byte* mask, int blocks, int blk)
    {
        var c00 = Vector256.Load(c); var c01 = Vector256.Load(c + 8); var c02 = Vector256.Load(c + 16); var c03 = Vector256.Load(c + 24);
        int* r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
        var c10 = Vector256.Load(r1); var c11 = Vector256.Load(r1 + 8); var c12 = Vector256.Load(r1 + 16); var c13 = Vector256.Load(r1 + 24);
        var c20 = Vector256.Load(r2); var c21 = Vector256.Load(r2 + 8); var c22 = Vector256.Load(r2 + 16); var c23 = Vector256.Load(r2 + 24);
        var c30 = Vector256.Load(r3); var c31 = Vector256.Load(r3 + 8); var c32 = Vector256.Load(r3 + 16); var c33 = Vector256.Load(r3 + 24);
        int* panel = b + (long)(n / Panel) * groups * Panel;
        for (int g = g0; g < g1; g++)
        {
            if (Skip(mask, blocks, blk, g)) continue;
            byte* bp = (byte*)(panel + (long)g * Panel);
            var b0 = Vector256.Load(bp); var b1 = Vector256.Load(bp + 32); var b2 = Vector256.Load(bp + 64); var b3 = Vector256.Load(bp + 96);
            var a0 = Vector256.Create(*(int*)(a + 4 * g)).AsSByte();
            c00 = AvxVnni.MultiplyWideningAndAdd(c00, b0, a0); c01 = AvxVnni.MultiplyWideningAndAdd(c01, b1, a0);
            c02 = AvxVnni.MultiplyWideningAndAdd(c02, b2, a0); c03 = AvxVnni.MultiplyWideningAndAdd(c03, b3, a0);
            var a1 = Vector256.Create(*(int*)(a + lda + 4 * g)).AsSByte();
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, b0, a1); c11 = AvxVnni.MultiplyWideningAndAdd(c11, b1, a1);
            c12 = AvxVnni.MultiplyWideningAndAdd(c12, b2, a1); c13 = AvxVnni.MultiplyWideningAndAdd(c13, b3, a1);
            var a2 = Vector256.Create(*(int*)(a + 2 * lda + 4 * g)).AsSByte();
            c20 = AvxVnni.MultiplyWideningAndAdd(c20, b0, a2); c21 = AvxVnni.MultiplyWideningAndAdd(c21, b1, a2);
            c22 = AvxVnni.MultiplyWideningAndAdd(c22, b2, a2); c23 = AvxVnni.MultiplyWideningAndAdd(c23, b3, a2);
            var a3 = Vector256.Create(*(int*)(a + 3 * lda + 4 * g)).AsSByte();
            c30 = AvxVnni.MultiplyWideningAndAdd(c30, b0, a3); c31 = AvxVnni.MultiplyWideningAndAdd(c31, b1, a3);
            c32 = AvxVnni.MultiplyWideningAndAdd(c32, b2, a3); c33 = AvxVnni.MultiplyWideningAndAdd(c33, b3, a3);
        }
        c00.Store(c); c01.Store(c + 8); c02.Store(c + 16); c03.Store(c + 24);
        c10.Store(r1); c11.Store(r1 + 8); c12.Store(r1 + 16); c13.Store(r1 + 24);
        c20.Store(r2); c21.Store(r2 + 8); c22.Store(r2 + 16); c23.Store(r2 + 24);
        c30.Store(r3); c31.Store(r3 + 8); c32.Store(r3 + 16); c33.Store(r3 + 24);
    }

    private static void Vnni8x128(sbyte* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc,
        byte* mask, int blocks, int blk)
    {
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector128.Load(c + r * ldc); var c1 = Vector128.Load(c + r * ldc + 4);
            sbyte* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var av = Vector128.Create(*(int*)(ar + 4 * g)).AsSByte();
                c0 = AvxVnni.MultiplyWideningAndAdd(c0, Vector128.Load((byte*)bp), av);
                c1 = AvxVnni.MultiplyWideningAndAdd(c1, Vector128.Load((byte*)(bp + 4)), av);
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 4);
        }
    }

    // 4 rows × 32 columns (four vectors, 16 accumulators): per lane group 4 B loads, 4 broadcasts, 16 vpdpwssd.
    private static void Vnni16x256(short* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc,
        byte* mask, int blocks, int blk)
    {
        var c00 = Vector256.Load(c); var c01 = Vector256.Load(c + 8); var c02 = Vector256.Load(c + 16); var c03 = Vector256.Load(c + 24);
        int* r1 = c + ldc, r2 = c + 2 * ldc, r3 = c + 3 * ldc;
        var c10 = Vector256.Load(r1); var c11 = Vector256.Load(r1 + 8); var c12 = Vector256.Load(r1 + 16); var c13 = Vector256.Load(r1 + 24);
        var c20 = Vector256.Load(r2); var c21 = Vector256.Load(r2 + 8); var c22 = Vector256.Load(r2 + 16); var c23 = Vector256.Load(r2 + 24);
        var c30 = Vector256.Load(r3); var c31 = Vector256.Load(r3 + 8); var c32 = Vector256.Load(r3 + 16); var c33 = Vector256.Load(r3 + 24);
        int* panel = b + (long)(n / Panel) * groups * Panel;
        for (int g = g0; g < g1; g++)
        {
            if (Skip(mask, blocks, blk, g)) continue;
            short* bp = (short*)(panel + (long)g * Panel);
            var b0 = Vector256.Load(bp); var b1 = Vector256.Load(bp + 16); var b2 = Vector256.Load(bp + 32); var b3 = Vector256.Load(bp + 48);
            var a0 = Vector256.Create(*(int*)(a + 2 * g)).AsInt16();
            c00 = AvxVnni.MultiplyWideningAndAdd(c00, b0, a0); c01 = AvxVnni.MultiplyWideningAndAdd(c01, b1, a0);
            c02 = AvxVnni.MultiplyWideningAndAdd(c02, b2, a0); c03 = AvxVnni.MultiplyWideningAndAdd(c03, b3, a0);
            var a1 = Vector256.Create(*(int*)(a + lda + 2 * g)).AsInt16();
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, b0, a1); c11 = AvxVnni.MultiplyWideningAndAdd(c11, b1, a1);
            c12 = AvxVnni.MultiplyWideningAndAdd(c12, b2, a1); c13 = AvxVnni.MultiplyWideningAndAdd(c13, b3, a1);
            var a2 = Vector256.Create(*(int*)(a + 2 * lda + 2 * g)).AsInt16();
            c20 = AvxVnni.MultiplyWideningAndAdd(c20, b0, a2); c21 = AvxVnni.MultiplyWideningAndAdd(c21, b1, a2);
            c22 = AvxVnni.MultiplyWideningAndAdd(c22, b2, a2); c23 = AvxVnni.MultiplyWideningAndAdd(c23, b3, a2);
            var a3 = Vector256.Create(*(int*)(a + 3 * lda + 2 * g)).AsInt16();
            c30 = AvxVnni.MultiplyWideningAndAdd(c30, b0, a3); c31 = AvxVnni.MultiplyWideningAndAdd(c31, b1, a3);
            c32 = AvxVnni.MultiplyWideningAndAdd(c32, b2, a3); c33 = AvxVnni.MultiplyWideningAndAdd(c33, b3, a3);
        }
        c00.Store(c); c01.Store(c + 8); c02.Store(c + 16); c03.Store(c + 24);
        c10.Store(r1); c11.Store(r1 + 8); c12.Store(r1 + 16); c13.Store(r1 + 24);
        c20.Store(r2); c21.Store(r2 + 8); c22.Store(r2 + 16); c23.Store(r2 + 24);
        c30.Store(r3); c31.Store(r3 + 8); c32.Store(r3 + 16); c33.Store(r3 + 24);
    }

    private static void Vnni16x128(short* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc,
        byte* mask, int blocks, int blk)
    {
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector128.Load(c + r * ldc); var c1 = Vector128.Load(c + r * ldc + 4);
            short* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var av = Vector128.Create(*(int*)(ar + 2 * g)).AsInt16();
                c0 = AvxVnni.MultiplyWideningAndAdd(c0, Vector128.Load((short*)bp), av);
                c1 = AvxVnni.MultiplyWideningAndAdd(c1, Vector128.Load((short*)(bp + 4)), av);
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 4);
        }
    }

    // Portable paths: each 32-bit lane of B holds one column's group; fields are unpacked by shift and mask and
    // multiplied in int32 (ARM64 and x86 without VNNI).
    private static void G8x512(sbyte* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, byte* mask, int blocks, int blk)
    {
        var ff = Vector512.Create(0xFF);
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector512.Load(c + r * ldc); var c1 = Vector512.Load(c + r * ldc + 16);
            sbyte* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var x0 = Vector512.Load(bp); var x1 = Vector512.Load(bp + 16);
                sbyte* w = ar + 4 * g;
                for (int j = 0; j < 4; j++)
                {
                    var wj = Vector512.Create((int)w[j]);
                    c0 += ((x0 >>> (8 * j)) & ff) * wj;
                    c1 += ((x1 >>> (8 * j)) & ff) * wj;
                }
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 16);
        }
    }

    private static void G8x256(sbyte* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, byte* mask, int blocks, int blk)
    {
        var ff = Vector256.Create(0xFF);
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector256.Load(c + r * ldc); var c1 = Vector256.Load(c + r * ldc + 8);
            sbyte* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var x0 = Vector256.Load(bp); var x1 = Vector256.Load(bp + 8);
                sbyte* w = ar + 4 * g;
                for (int j = 0; j < 4; j++)
                {
                    var wj = Vector256.Create((int)w[j]);
                    c0 += ((x0 >>> (8 * j)) & ff) * wj;
                    c1 += ((x1 >>> (8 * j)) & ff) * wj;
                }
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 8);
        }
    }

    private static void G8x128(sbyte* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, byte* mask, int blocks, int blk)
    {
        var ff = Vector128.Create(0xFF);
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector128.Load(c + r * ldc); var c1 = Vector128.Load(c + r * ldc + 4);
            sbyte* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var x0 = Vector128.Load(bp); var x1 = Vector128.Load(bp + 4);
                sbyte* w = ar + 4 * g;
                for (int j = 0; j < 4; j++)
                {
                    var wj = Vector128.Create((int)w[j]);
                    c0 += ((x0 >>> (8 * j)) & ff) * wj;
                    c1 += ((x1 >>> (8 * j)) & ff) * wj;
                }
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 4);
        }
    }

    private static void G16x512(short* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, byte* mask, int blocks, int blk)
    {
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector512.Load(c + r * ldc); var c1 = Vector512.Load(c + r * ldc + 16);
            short* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var x0 = Vector512.Load(bp); var x1 = Vector512.Load(bp + 16);
                var w0 = Vector512.Create((int)ar[2 * g]); var w1 = Vector512.Create((int)ar[2 * g + 1]);
                c0 += ((x0 << 16) >> 16) * w0 + (x0 >> 16) * w1;
                c1 += ((x1 << 16) >> 16) * w0 + (x1 >> 16) * w1;
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 16);
        }
    }

    private static void G16x256(short* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, byte* mask, int blocks, int blk)
    {
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector256.Load(c + r * ldc); var c1 = Vector256.Load(c + r * ldc + 8);
            short* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var x0 = Vector256.Load(bp); var x1 = Vector256.Load(bp + 8);
                var w0 = Vector256.Create((int)ar[2 * g]); var w1 = Vector256.Create((int)ar[2 * g + 1]);
                c0 += ((x0 << 16) >> 16) * w0 + (x0 >> 16) * w1;
                c1 += ((x1 << 16) >> 16) * w0 + (x1 >> 16) * w1;
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 8);
        }
    }

    private static void G16x128(short* a, int lda, int* b, int groups, int n, int g0, int g1, int* c, int ldc, byte* mask, int blocks, int blk)
    {
        for (int r = 0; r < Mr; r++)
        {
            var c0 = Vector128.Load(c + r * ldc); var c1 = Vector128.Load(c + r * ldc + 4);
            short* ar = a + r * lda;
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int* bp = b + WordOffset(g, n, groups);
                var x0 = Vector128.Load(bp); var x1 = Vector128.Load(bp + 4);
                var w0 = Vector128.Create((int)ar[2 * g]); var w1 = Vector128.Create((int)ar[2 * g + 1]);
                c0 += ((x0 << 16) >> 16) * w0 + (x0 >> 16) * w1;
                c1 += ((x1 << 16) >> 16) * w0 + (x1 >> 16) * w1;
            }
            c0.Store(c + r * ldc); c1.Store(c + r * ldc + 4);
        }
    }

    private static void Scalar(sbyte* a8, short* a16, int lda, int* b, int groups, int n, int group, int g0, int g1, int* c, int ldc,
        byte* mask, int blocks, int blk)
    {
        for (int r = 0; r < Mr; r++)
        for (int j = 0; j < 4; j++)
        {
            int acc = c[r * ldc + j];
            for (int g = g0; g < g1; g++)
            {
                if (Skip(mask, blocks, blk, g)) continue;
                int word = b[WordOffset(g, n + j, groups)];
                for (int e = 0; e < group; e++)
                {
                    int x = group == 4 ? (word >>> (8 * e)) & 0xFF : (short)(word >>> (16 * e));
                    int w = group == 4 ? a8[r * lda + 4 * g + e] : a16[r * lda + 2 * g + e];
                    acc += x * w;
                }
            }
            c[r * ldc + j] = acc;
        }
    }

    /// <summary>Column blocks the skip mask is kept for.</summary>
    public static int MaskBlocks(int columns) => (columns + NcColumns - 1) / NcColumns;

    /// <summary>Fills the skip mask for B (lane groups × column blocks): 1 where any word is non-zero.</summary>
    public static void BuildMask(int* b, int groups, int columns, byte* mask)
    {
        int blocks = MaskBlocks(columns);
        for (int blk = 0; blk < blocks; blk++)
        {
            int p0 = blk * NcColumns / Panel, p1 = Math.Min(columns, (blk + 1) * NcColumns) / Panel;
            for (int g = 0; g < groups; g++)
            {
                bool any = false;
                for (int p = p0; p < p1 && !any; p++)
                    any = new ReadOnlySpan<int>(b + ((long)p * groups + g) * Panel, Panel).ContainsAnyExcept(0);
                mask[(long)g * blocks + blk] = any ? (byte)1 : (byte)0;
            }
        }
    }
}
