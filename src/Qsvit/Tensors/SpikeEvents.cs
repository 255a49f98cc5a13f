using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>How a spike-input layer whose input arrives as packed words sums its products.</summary>
public enum SpikeAccumulation
{
    /// <summary>Per call, by the input's firing rate (<see cref="SpikeEvents.Pays"/>).</summary>
    Auto = 0,
    /// <summary>Always the dense integer GEMM (<see cref="SpikeGemm"/>).</summary>
    Dense = 1,
    /// <summary>Always event-driven accumulation (<see cref="SpikeEvents"/>) where a layer supports it.</summary>
    Events = 2,
}

/// <summary>
/// The 8-bit codes of an <see cref="IntMatrix"/> transposed and widened for event-driven accumulation: row k (the matrix's
/// column k, in its (tap, channel) order) holds the M output channels' codes as int16, zero-padded to
/// <see cref="SpikeEvents.Lanes"/>. Twice the size of the codes; built once per layer, on first use.
/// </summary>
internal sealed class EventRows
{
    public short[] Data { get; }
    /// <summary>int16 values per row: M rounded up to <see cref="SpikeEvents.Lanes"/>.</summary>
    public int Stride { get; }
    public int OutChannels { get; }

    public EventRows(IntMatrix a)
    {
        if (a.Narrow is not { } codes) throw new ArgumentException("event rows are built from 8-bit codes", nameof(a));
        OutChannels = a.Rows;
        Stride = (a.Rows + SpikeEvents.Lanes - 1) / SpikeEvents.Lanes * SpikeEvents.Lanes;
        Data = GC.AllocateArray<short>(a.PaddedCols * Stride, pinned: true);
        for (int m = 0; m < a.Rows; m++)
            for (int k = 0; k < a.PaddedCols; k++) Data[k * Stride + m] = codes[(long)m * a.PaddedCols + k];
    }
}

/// <summary>
/// Event-driven (sparse) integer accumulation for spike inputs held as lane-group words (4 fields of 0 or 1 per word, the
/// layout <see cref="SpikeGemm"/> reads): for each output column, the (tap, channel) pairs whose spike fired are found by
/// bit scans of the column's words, and their rows of <see cref="EventRows"/> (all output channels) are added. The work is
/// proportional to the spikes that fired, against K·M for the dense GEMM, so it pays where few fire (the chained consumers
/// conv2 and fc2 see about 10 %). Exact: the sums are the dense kernel's int32 sums (integer addition in any order), handed
/// to the same block epilogue in the same tile layout. Adds run in int16 lanes and are flushed into int32 every
/// <see cref="Flush"/> events: a sum of at most 256 codes in [−128, 127] lies in [−32768, 32512], inside int16.
/// One driver (<see cref="Column{T}"/>) runs any <see cref="IRowSum"/> (Vector512, Vector256, Vector128 or scalar bodies).
/// </summary>
internal static unsafe class SpikeEvents
{
    /// <summary>Output channels per row are padded to this many (the widest body's int16 lanes).</summary>
    public const int Lanes = 32;
    /// <summary>Events summed in int16 before a flush into int32 (see the class remarks for the bound).</summary>
    public const int Flush = 256;

    /// <summary>
    /// Whether event-driven accumulation beats the dense VNNI GEMM for a layer of <paramref name="outChannels"/> outputs at a
    /// firing rate (spikes per input value) of <paramref name="rate"/>. Measured on the 2-vCPU Xeon (AVX-512, AVX-VNNI) with
    /// `spike-events` (bench/Qsvit.Bench/SpikeEventSweep.cs, BENCHMARKS.md "Event-driven accumulation"): an event costs
    /// about as much as a dense lane group of 4 channels times 32 outputs, plus a fixed scan cost per event that small
    /// layers cannot hide, so the crossover rises with the output channels: about 8 % at 16 outputs, 20 % at 32–64,
    /// 30 % at 128 and more. Without VNNI the dense kernel is several times slower and events pay up to higher rates still,
    /// but the same rule is kept (never worse than on VNNI).
    /// </summary>
    public static bool Pays(double rate, int outChannels) => rate < Crossover(outChannels);

    /// <summary>The firing rate below which events pay (see <see cref="Pays"/>).</summary>
    public static double Crossover(int outChannels) => outChannels <= 16 ? 0.08 : outChannels <= 64 ? 0.20 : 0.30;

    /// <summary>
    /// C = A · B as <see cref="SpikeGemm.Multiply(IntMatrix, int*, long*, int, SpikeGemm.BlockEpilogue, IntIsa, int)"/> computes
    /// it, by events: word (g, n) of B at b[offsets[g] + n], fields 0 or 1 (spikes); columns [0, <paramref name="count"/>)
    /// are summed, the rest of <paramref name="columns"/> are left undefined (the epilogue drops them). Blocks of columns
    /// are split over threads as the dense GEMM splits them.
    /// </summary>
    public static void Multiply(EventRows a, int rows, int groups, int* b, long* offsets, int columns, int count, SpikeGemm.BlockEpilogue epilogue,
        IntIsa isa, int threads)
    {
        Debug.Assert(columns % SpikeGemm.ColumnAlign == 0 && count <= columns);
        if (!SpikeGemm.IsSupported(isa)) throw new ArgumentException($"{isa} is not supported on this machine");
        int width = SpikeGemm.BlockWidth(columns, threads), blocks = (columns + width - 1) / width;
        int tileRows = (rows + SpikeGemm.Mr - 1) / SpikeGemm.Mr * SpikeGemm.Mr, stride = a.Stride;
        fixed (short* pa = a.Data)
        {
            nint pr = (nint)pa, pb = (nint)b, po = (nint)offsets;
            void Block(int blk)
            {
                int n0 = blk * width, n1 = Math.Min(columns, n0 + width), last = Math.Min(n1, count);
                var tile = Scratch(ref t_tile, tileRows * SpikeGemm.BlockColumns);
                var events = Scratch(ref t_events, groups * 4);
                var sums = Scratch(ref t_sums, stride);
                fixed (int* pt = tile, pe = events, ps = sums)
                {
                    for (int n = n0; n < last; n++)
                    {
                        int found = Find((int*)pb + n, (long*)po, groups, stride, pe);
                        switch (isa)
                        {
                            case IntIsa.Vector512: Column<Sum512>((short*)pr, stride, pe, found, ps); break;
                            case IntIsa.Vector256 or IntIsa.Vnni256: Column<Sum256>((short*)pr, stride, pe, found, ps); break;
                            case IntIsa.Vector128 or IntIsa.Vnni128: Column<Sum128>((short*)pr, stride, pe, found, ps); break;
                            default: Column<SumScalar>((short*)pr, stride, pe, found, ps); break;
                        }
                        int* c = pt + (n - n0);
                        for (int m = 0; m < rows; m++) c[m * SpikeGemm.BlockColumns] = ps[m];
                    }
                    epilogue(n0, n1, pt);
                }
            }
            Compute.For(blocks, threads, Block);
        }
    }

    /// <summary>
    /// The events of one column: for each lane group g with word w = b[offsets[g]], each set field e (bit 8e) gives the row
    /// offset (4g + e)·stride. Returns the number of events.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Find(int* b, long* offsets, int groups, int stride, int* events)
    {
        int found = 0;
        for (int g = 0; g < groups; g++)
        {
            uint w = (uint)b[offsets[g]];
            Debug.Assert((w & ~0x01010101u) == 0, "event accumulation needs spike words (fields 0 or 1)");
            int row = 4 * g * stride;
            while (w != 0)
            {
                events[found++] = row + (BitOperations.TrailingZeroCount(w) >> 3) * stride;
                w &= w - 1;
            }
        }
        return found;
    }

    /// <summary>
    /// Adds rows of int16 codes, <see cref="Width"/> lanes at a time: dst[0..Width) (int32) = Σ over the events of
    /// rows[event + 0..Width), or += when <paramref name="add"/>. At most <see cref="Flush"/> events per call.
    /// </summary>
    private interface IRowSum
    {
        /// <summary>int16 lanes per call (a multiple that divides <see cref="Lanes"/>).</summary>
        static abstract int Width { get; }
        static abstract void Sum(short* rows, int* events, int count, int* dst, bool add);
    }

    /// <summary>
    /// One column's sums over all <paramref name="stride"/> lanes: the events in pieces of <see cref="Flush"/> (int16 adds,
    /// flushed into int32), for each slice of T.Width lanes. No events: zeros.
    /// </summary>
    private static void Column<T>(short* rows, int stride, int* events, int count, int* dst) where T : struct, IRowSum
    {
        if (count == 0) { new Span<int>(dst, stride).Clear(); return; }
        for (int lane = 0; lane < stride; lane += T.Width)
            for (int e0 = 0; e0 < count; e0 += Flush)
                T.Sum(rows + lane, events + e0, Math.Min(Flush, count - e0), dst + lane, e0 > 0);
    }

    // 32 lanes: one 512-bit register.
    private readonly struct Sum512 : IRowSum
    {
        public static int Width => 32;
        public static void Sum(short* rows, int* events, int count, int* dst, bool add)
        {
            var acc = Vector512<short>.Zero;
            int e = 0;
            for (; e <= count - 2; e += 2) acc += Vector512.Load(rows + events[e]) + Vector512.Load(rows + events[e + 1]);
            if (e < count) acc += Vector512.Load(rows + events[e]);
            var (lo, hi) = Vector512.Widen(acc);
            if (add) { lo += Vector512.Load(dst); hi += Vector512.Load(dst + 16); }
            lo.Store(dst);
            hi.Store(dst + 16);
        }
    }

    // 32 lanes: two 256-bit registers.
    private readonly struct Sum256 : IRowSum
    {
        public static int Width => 32;
        public static void Sum(short* rows, int* events, int count, int* dst, bool add)
        {
            Vector256<short> a0 = default, a1 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e];
                a0 += Vector256.Load(r);
                a1 += Vector256.Load(r + 16);
            }
            Store(a0, dst, add);
            Store(a1, dst + 16, add);
        }

        private static void Store(Vector256<short> acc, int* dst, bool add)
        {
            var (lo, hi) = Vector256.Widen(acc);
            if (add) { lo += Vector256.Load(dst); hi += Vector256.Load(dst + 8); }
            lo.Store(dst);
            hi.Store(dst + 8);
        }
    }

    // 16 lanes: two 128-bit registers.
    private readonly struct Sum128 : IRowSum
    {
        public static int Width => 16;
        public static void Sum(short* rows, int* events, int count, int* dst, bool add)
        {
            Vector128<short> a0 = default, a1 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e];
                a0 += Vector128.Load(r);
                a1 += Vector128.Load(r + 8);
            }
            Store(a0, dst, add);
            Store(a1, dst + 8, add);
        }

        private static void Store(Vector128<short> acc, int* dst, bool add)
        {
            var (lo, hi) = Vector128.Widen(acc);
            if (add) { lo += Vector128.Load(dst); hi += Vector128.Load(dst + 4); }
            lo.Store(dst);
            hi.Store(dst + 4);
        }
    }

    // 4 lanes, scalar int32 (no int16 stage needed; the pieces only bound the loop).
    private readonly struct SumScalar : IRowSum
    {
        public static int Width => 4;
        public static void Sum(short* rows, int* events, int count, int* dst, bool add)
        {
            int s0 = add ? dst[0] : 0, s1 = add ? dst[1] : 0, s2 = add ? dst[2] : 0, s3 = add ? dst[3] : 0;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e];
                s0 += r[0]; s1 += r[1]; s2 += r[2]; s3 += r[3];
            }
            dst[0] = s0; dst[1] = s1; dst[2] = s2; dst[3] = s3;
        }
    }

    [ThreadStatic] private static int[]? t_tile, t_events, t_sums;

    private static int[] Scratch(ref int[]? slot, int length)
    {
        if (slot is null || slot.Length < length) slot = GC.AllocateUninitializedArray<int>(length, pinned: true);
        return slot;
    }
}
