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
internal sealed unsafe class EventRows
{
    private readonly short[] _data;

    /// <summary>Row k at Rows + k·Stride; every row starts on a 64-byte boundary (a 512-bit load never splits a cache line).</summary>
    public short* Rows { get; }
    /// <summary>int16 values per row: M rounded up to <see cref="SpikeEvents.Lanes"/>.</summary>
    public int Stride { get; }

    public EventRows(IntMatrix a)
    {
        if (a.Narrow is not { } codes) throw new ArgumentException("event rows are built from 8-bit codes", nameof(a));
        Stride = (a.Rows + SpikeEvents.Lanes - 1) / SpikeEvents.Lanes * SpikeEvents.Lanes;
        // Pinned for the object's lifetime (the pinned heap), so the aligned pointer stays valid.
        _data = GC.AllocateArray<short>(a.PaddedCols * Stride + 32, pinned: true);
        short* p = (short*)Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(_data));
        Rows = (short*)(((nint)p + 63) & ~(nint)63);
        for (int m = 0; m < a.Rows; m++)
            for (int k = 0; k < a.PaddedCols; k++) Rows[(long)k * Stride + m] = codes[(long)m * a.PaddedCols + k];
    }
}

/// <summary>
/// Event-driven (sparse) integer accumulation for spike inputs held as lane-group words (4 fields of 0 or 1 per word, the
/// layout <see cref="SpikeGemm"/> reads): the words are first folded into bit planes (one 64-bit word per 64 input channels
/// and grid position: a vectorised pass over the input, once, not once per tap), then for each output column the
/// (tap, channel) pairs that fired are found by bit scans of the planes at the tap's offset, and their rows of
/// <see cref="EventRows"/> (all output channels) are added. The work is proportional to the spikes that fired, against K·M
/// for the dense GEMM, so it pays where few fire and M is large enough to hide the scans (the chained consumers conv2 and
/// fc2 see about 10 %). Exact: the sums are the dense kernel's int32 sums (integer addition in any order), handed to the
/// same block epilogue in the same tile layout. Adds run in int16 lanes and are flushed into int32 every
/// <see cref="Flush"/> events: a sum of at most 256 codes in [−128, 127] lies in [−32768, 32512], inside int16.
/// One driver (<see cref="Column{T}"/>) runs any <see cref="IRowSum"/> (Vector512, Vector256, Vector128 or scalar bodies).
/// </summary>
internal static unsafe class SpikeEvents
{
    /// <summary>Output channels per row are padded to this many (the widest body's int16 lanes).</summary>
    public const int Lanes = 32;
    /// <summary>Bytes of rows one segment of the accumulation keeps in cache (half of this Xeon's 2 MB L2 per core).</summary>
    private const int SegmentBytes = 1 << 20;
    /// <summary>Events summed in int16 before a flush into int32 (see the class remarks for the bound).</summary>
    public const int Flush = 256;

    /// <summary>
    /// Whether event-driven accumulation beats the dense GEMM on path <paramref name="isa"/> for a layer of
    /// <paramref name="outChannels"/> outputs at an input firing rate (spikes per input value) of <paramref name="rate"/>.
    /// Measured on the 2-vCPU Xeon (AVX-512, AVX-VNNI), one thread, with `spike-events` (bench/Qsvit.Bench/SpikeEventSweep.cs;
    /// BENCHMARKS.md "Event-driven accumulation for the chained consumers" and, for the 512-bit tiles, the sixteenth
    /// session): the bit scans and the column's flush cost a fixed amount per output column and 64 input channels, which the
    /// dense GEMM spends on a few output channels, so the crossover rises with M.
    /// <list type="bullet">
    /// <item>256-bit dense tiles and the portable paths: at 16 and 32 outputs events lose even at 2 % (0.35x, 0.7x); at 64
    /// they pay below 12–20 %; at 128 below 12–25 %; at 256 and 512 below 25–30 %.</item>
    /// <item>512-bit VNNI tiles (<see cref="IntIsa.Vnni512"/>, 1.8x the 256-bit ones): at 64 outputs and at 128 on 4 × 4 maps
    /// events lose even at 2 % (0.55–0.73x); at 128 on 28 × 28 they barely pay below 5 % (1.04x at 5 %, 0.82x at 10 %), so
    /// not at all below 256 outputs; at 256 and 512 below 10–15 % (1.4x at 10 %, 0.8x at 20 %).</item>
    /// </list>
    /// The rule takes the lower end of each range (a wrong choice costs more above the crossover than below it).
    /// </summary>
    public static bool Pays(double rate, int outChannels, IntIsa isa) => rate < Crossover(outChannels, isa);

    /// <summary>The firing rate below which events pay (see <see cref="Pays"/>).</summary>
    public static double Crossover(int outChannels, IntIsa isa) => isa == IntIsa.Vnni512
        ? outChannels < 256 ? 0 : 0.10
        : outChannels < 64 ? 0 : outChannels < 128 ? 0.10 : outChannels < 256 ? 0.12 : 0.25;

    /// <summary>
    /// C = A · B as <see cref="SpikeGemm.Multiply(IntMatrix, int*, long*, int, SpikeGemm.BlockEpilogue, IntIsa, int)"/> computes
    /// it for a direct convolution, by events. Lane group (tap t, channel group c) of column n is the word
    /// b[c·groupStride + n + taps[t]]; fields are 0 or 1 (spikes); the words of every group are readable over
    /// [−lead, positions − lead). Columns [0, <paramref name="count"/>) are summed, the rest of <paramref name="columns"/>
    /// are left undefined (the epilogue drops them). Blocks of columns are split over threads as the dense GEMM splits them.
    /// </summary>
    public static void Multiply(EventRows a, int rows, int channelGroups, int* b, long groupStride, long lead, long positions, long* taps, int tapCount,
        Valid valid, int columns, int count, SpikeGemm.BlockEpilogue epilogue, IntIsa isa, int threads)
    {
        Debug.Assert(columns % SpikeGemm.ColumnAlign == 0 && count <= columns);
        if (!SpikeGemm.IsSupported(isa)) throw new ArgumentException($"{isa} is not supported on this machine");
        int chunks = (channelGroups + 15) / 16; // 64 channels per plane word
        var planes = Planes(ref t_planes, chunks * positions);
        fixed (ulong* pp = planes)
        {
            nint pl = (nint)pp, pb = (nint)b;
            int units = (int)((positions + 15) / 16), parts = Math.Max(1, Math.Min(threads, units / 256));
            Compute.ForRanges(units, parts, (s0, s1) =>
                Fold((int*)pb - lead, groupStride, channelGroups, (ulong*)pl, positions, 16 * s0, (int)Math.Min(positions, 16L * s1)));
        }
        int width = SpikeGemm.BlockWidth(columns, threads), blocks = (columns + width - 1) / width;
        int tileRows = (rows + SpikeGemm.Mr - 1) / SpikeGemm.Mr * SpikeGemm.Mr, stride = a.Stride, tapRows = channelGroups * 4;
        fixed (ulong* pp = planes)
        {
            nint pr = (nint)a.Rows, pl = (nint)(pp + lead), pt0 = (nint)taps;
            void Block(int blk)
            {
                int n0 = blk * width, n1 = Math.Min(columns, n0 + width), last = Math.Min(n1, count);
                var tile = Scratch(ref t_tile, tileRows * SpikeGemm.BlockColumns);
                var events = Scratch(ref t_events, tapCount * tapRows + 8); // Extract writes up to 8 past the last event
                var sums = Scratch(ref t_sums, width * stride);
                var outputColumns = Scratch(ref t_columns, width);
                fixed (int* pt = tile, pe = events, ps = sums, pc = outputColumns)
                {
                    // Each column's sums stay in its row of the column-major buffer ps (int32, added to per segment). The block's
                    // output columns (the gaps' outputs are dropped) are found once for all segments.
                    int outputs = valid.List(n0, last, pc);
                    // Segments of (tap, 64-channel chunk) pairs whose rows fit in half of L2 (a 1x1 layer of 2048 channels × 512
                    // outputs has 2 MB of rows): each segment's rows serve every column of the block while they are cached, and
                    // a small layer is one segment (one pass of sums per column).
                    int pairs = tapCount * chunks, perSegment = Math.Max(1, SegmentBytes / (64 * 2 * stride));
                    for (int s0 = 0; s0 < pairs; s0 += perSegment)
                    {
                        int s1 = Math.Min(pairs, s0 + perSegment);
                        for (int i = 0; i < outputs; i++)
                        {
                            int n = pc[i], found = 0;
                            for (int sp = s0; sp < s1; sp++)
                            {
                                int t = sp / chunks, q = sp - t * chunks;
                                ulong u = ((ulong*)pl)[n + ((long*)pt0)[t] + q * positions];
                                if (u != 0) found = Extract(u, t * tapRows + 64 * q, pe, found);
                            }
                            int* dst = ps + (n - n0) * stride;
                            short* r0 = (short*)pr;
                            bool add = s0 > 0;
                            switch (isa)
                            {
                                case IntIsa.Vector512: Column<Sum512>(r0, stride, pe, found, dst, add); break;
                                case IntIsa.Vector256: Column<Sum256>(r0, stride, pe, found, dst, add); break;
                                case IntIsa.Vector128: Column<Sum128>(r0, stride, pe, found, dst, add); break;
                                case IntIsa.Scalar: Column<SumScalar>(r0, stride, pe, found, dst, add); break;
                                default: Widest(r0, stride, pe, found, dst, add); break;
                            }
                        }
                    }
                    // Into the epilogue's layout (rows of output channels) in 16 × 16 tiles: whole cache lines of each tile row
                    // are written, and the 16 column sums read stay in L1 across the tile's channels. Gap columns carry garbage.
                    for (int j0 = 0; j0 < last - n0; j0 += 16)
                    {
                        int j1 = Math.Min(last - n0, j0 + 16);
                        for (int m = 0; m < rows; m++)
                        {
                            int* c = pt + m * SpikeGemm.BlockColumns;
                            for (int j = j0; j < j1; j++) c[j] = ps[j * stride + m];
                        }
                    }
                    epilogue(n0, n1, 0, tileRows, pt);
                }
            }
            Compute.For(blocks, threads, Block);
        }
    }

    /// <summary>
    /// Appends the set bits of <paramref name="u"/> as row indices first + bit to events[found..] and returns the new count.
    /// Branch-free (a data-dependent bit-scan loop mispredicts once per word, which cost more than the adds it feeds): each
    /// byte stores the 8 indices its pattern lists in <see cref="s_bits"/> at found plus the population count of the bits below it; up to 8
    /// values past the end are written and ignored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Extract(ulong u, int first, int* events, int found)
    {
        fixed (int* bits = s_bits)
        {
            // Few bits (firing of a few per cent): a bit-scan loop, whose trip count is then predictable and short.
            if (!Vector256.IsHardwareAccelerated || BitOperations.PopCount(u) <= 2)
                while (u != 0)
                {
                    events[found++] = first + BitOperations.TrailingZeroCount(u);
                    u &= u - 1;
                }
            else
            {
                // Each byte's place is found + the population count below it: eight independent counts, no chain through found.
                for (int i = 0; i < 8; i++)
                {
                    int b = (int)(u >> (8 * i)) & 0xFF;
                    int at = found + BitOperations.PopCount(u & ((1UL << (8 * i)) - 1));
                    (Vector256.Load(bits + 8 * b) + Vector256.Create(first + 8 * i)).Store(events + at);
                }
                found += BitOperations.PopCount(u);
            }
        }
        return found;
    }

    /// <summary>For each byte pattern, the positions of its set bits in order, padded with zeros to 8.</summary>
    private static readonly int[] s_bits = BitTable();

    private static int[] BitTable()
    {
        var table = GC.AllocateArray<int>(256 * 8, pinned: true);
        for (int b = 0; b < 256; b++)
            for (int bit = 0, k = 0; bit < 8; bit++)
                if ((b >> bit & 1) != 0) table[8 * b + k++] = bit;
        return table;
    }

    /// <summary>
    /// Which columns of the grid are outputs: column n is frame n / FrameStride, row (n % FrameStride) / RowStride and
    /// column n % RowStride, an output when the row is below Height and the column below Width (the rest are the gaps).
    /// </summary>
    public readonly record struct Valid(int RowStride, int Width, long FrameStride, int Height)
    {
        /// <summary>The output columns among [n0, n1) into list; returns their number (two divisions, then counters).</summary>
        public int List(int n0, int n1, int* list)
        {
            long r = n0 % FrameStride;
            int y = (int)(r / RowStride), x = (int)(r % RowStride), count = 0;
            for (int n = n0; n < n1; n++)
            {
                if (y < Height && x < Width) list[count++] = n;
                if (++x == RowStride)
                {
                    x = 0;
                    if (++y * (long)RowStride == FrameStride) y = 0;
                }
            }
            return count;
        }
    }

    /// <summary>The VNNI paths name the dense kernel's instructions; events take the widest vectors the machine has.</summary>
    private static void Widest(short* rows, int stride, int* events, int count, int* dst, bool add)
    {
        if (Vector512.IsHardwareAccelerated) Column<Sum512>(rows, stride, events, count, dst, add);
        else if (Vector256.IsHardwareAccelerated) Column<Sum256>(rows, stride, events, count, dst, add);
        else if (Vector128.IsHardwareAccelerated) Column<Sum128>(rows, stride, events, count, dst, add);
        else Column<SumScalar>(rows, stride, events, count, dst, add);
    }

    /// <summary>
    /// Bit planes of positions [p0, p1): plane q's word at position p holds, at bit 4·(c − 16q) + e, field e of channel
    /// group c's word w[c·groupStride + p]. A word's four fields (bits 0, 8, 16, 24) fold into a nibble by one multiply:
    /// (w · 0x01020408) >> 24 puts bit 8e at bit e (the other partial products land on distinct bits outside 24–27).
    /// </summary>
    private static void Fold(int* w, long groupStride, int channelGroups, ulong* planes, long positions, int p0, int p1)
    {
        int chunks = (channelGroups + 15) / 16, p = p0;
        const uint magic = 0x01020408;
        if (Vector512.IsHardwareAccelerated)
            for (; p <= p1 - 16; p += 16)
                for (int q = 0; q < chunks; q++)
                {
                    Vector512<ulong> lo = default, hi = default;
                    for (int c = 16 * q, e = 0; c < Math.Min(channelGroups, 16 * q + 16); c++, e += 4)
                    {
                        var nib = (Vector512.Load((uint*)(w + c * groupStride + p)) * magic) >>> 24;
                        var (l, h) = Vector512.Widen(nib);
                        lo |= l << e;
                        hi |= h << e;
                    }
                    lo.Store(planes + q * positions + p);
                    hi.Store(planes + q * positions + p + 8);
                }
        else if (Vector256.IsHardwareAccelerated)
            for (; p <= p1 - 8; p += 8)
                for (int q = 0; q < chunks; q++)
                {
                    Vector256<ulong> lo = default, hi = default;
                    for (int c = 16 * q, e = 0; c < Math.Min(channelGroups, 16 * q + 16); c++, e += 4)
                    {
                        var nib = (Vector256.Load((uint*)(w + c * groupStride + p)) * magic) >>> 24;
                        var (l, h) = Vector256.Widen(nib);
                        lo |= l << e;
                        hi |= h << e;
                    }
                    lo.Store(planes + q * positions + p);
                    hi.Store(planes + q * positions + p + 4);
                }
        for (; p < p1; p++)
            for (int q = 0; q < chunks; q++)
            {
                ulong word = 0;
                for (int c = 16 * q, e = 0; c < Math.Min(channelGroups, 16 * q + 16); c++, e += 4)
                    word |= (ulong)(((uint)w[c * groupStride + p] * magic) >> 24) << e;
                planes[q * positions + p] = word;
            }
    }

    /// <summary>
    /// Adds rows of int16 codes: dst (int32) = Σ over the events of rows[event + lanes], or += when <paramref name="add"/>;
    /// <see cref="Sum4"/> covers 4·<see cref="Width"/> lanes in four registers, <see cref="Sum2"/> two, <see cref="Sum1"/>
    /// <see cref="Width"/> lanes in one. At most <see cref="Flush"/> events per call.
    /// </summary>
    private interface IRowSum
    {
        /// <summary>int16 lanes per register (divides <see cref="Lanes"/>).</summary>
        static abstract int Width { get; }
        static abstract void Sum4(short* rows, int stride, int* events, int count, int* dst, bool add);
        static abstract void Sum2(short* rows, int stride, int* events, int count, int* dst, bool add);
        static abstract void Sum1(short* rows, int stride, int* events, int count, int* dst, bool add);
    }

    /// <summary>
    /// One column's sums over all <paramref name="stride"/> lanes, into dst or added to it: the events in pieces of
    /// <see cref="Flush"/> (int16 adds, flushed into int32), four registers of lanes at a time, then two, then one.
    /// </summary>
    private static void Column<T>(short* rows, int stride, int* events, int count, int* dst, bool add) where T : struct, IRowSum
    {
        if (count == 0)
        {
            if (!add) new Span<int>(dst, stride).Clear();
            return;
        }
        int lane = 0;
        for (; lane + 4 * T.Width <= stride; lane += 4 * T.Width)
            for (int e0 = 0; e0 < count; e0 += Flush)
                T.Sum4(rows + lane, stride, events + e0, Math.Min(Flush, count - e0), dst + lane, add || e0 > 0);
        for (; lane + 2 * T.Width <= stride; lane += 2 * T.Width)
            for (int e0 = 0; e0 < count; e0 += Flush)
                T.Sum2(rows + lane, stride, events + e0, Math.Min(Flush, count - e0), dst + lane, add || e0 > 0);
        for (; lane < stride; lane += T.Width)
            for (int e0 = 0; e0 < count; e0 += Flush)
                T.Sum1(rows + lane, stride, events + e0, Math.Min(Flush, count - e0), dst + lane, add || e0 > 0);
    }

    private readonly struct Sum512 : IRowSum
    {
        public static int Width => 32;
        public static void Sum4(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector512<short> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e] * stride;
                a0 += Vector512.Load(r); a1 += Vector512.Load(r + 32); a2 += Vector512.Load(r + 64); a3 += Vector512.Load(r + 96);
            }
            Store(a0, dst, add); Store(a1, dst + 32, add); Store(a2, dst + 64, add); Store(a3, dst + 96, add);
        }

        public static void Sum2(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector512<short> a0 = default, a1 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e] * stride;
                a0 += Vector512.Load(r); a1 += Vector512.Load(r + 32);
            }
            Store(a0, dst, add); Store(a1, dst + 32, add);
        }

        public static void Sum1(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector512<short> a0 = default, a1 = default;
            int e = 0;
            for (; e <= count - 2; e += 2) { a0 += Vector512.Load(rows + events[e] * stride); a1 += Vector512.Load(rows + events[e + 1] * stride); }
            if (e < count) a0 += Vector512.Load(rows + events[e] * stride);
            Store(a0 + a1, dst, add);
        }

        private static void Store(Vector512<short> acc, int* dst, bool add)
        {
            var (lo, hi) = Vector512.Widen(acc);
            if (add) { lo += Vector512.Load(dst); hi += Vector512.Load(dst + 16); }
            lo.Store(dst);
            hi.Store(dst + 16);
        }
    }

    private readonly struct Sum256 : IRowSum
    {
        public static int Width => 16;
        public static void Sum4(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector256<short> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e] * stride;
                a0 += Vector256.Load(r); a1 += Vector256.Load(r + 16); a2 += Vector256.Load(r + 32); a3 += Vector256.Load(r + 48);
            }
            Store(a0, dst, add); Store(a1, dst + 16, add); Store(a2, dst + 32, add); Store(a3, dst + 48, add);
        }

        public static void Sum2(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector256<short> a0 = default, a1 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e] * stride;
                a0 += Vector256.Load(r); a1 += Vector256.Load(r + 16);
            }
            Store(a0, dst, add); Store(a1, dst + 16, add);
        }

        public static void Sum1(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector256<short> a0 = default;
            for (int e = 0; e < count; e++) a0 += Vector256.Load(rows + events[e] * stride);
            Store(a0, dst, add);
        }

        private static void Store(Vector256<short> acc, int* dst, bool add)
        {
            var (lo, hi) = Vector256.Widen(acc);
            if (add) { lo += Vector256.Load(dst); hi += Vector256.Load(dst + 8); }
            lo.Store(dst);
            hi.Store(dst + 8);
        }
    }

    private readonly struct Sum128 : IRowSum
    {
        public static int Width => 8;
        public static void Sum4(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector128<short> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e] * stride;
                a0 += Vector128.Load(r); a1 += Vector128.Load(r + 8); a2 += Vector128.Load(r + 16); a3 += Vector128.Load(r + 24);
            }
            Store(a0, dst, add); Store(a1, dst + 8, add); Store(a2, dst + 16, add); Store(a3, dst + 24, add);
        }

        public static void Sum2(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector128<short> a0 = default, a1 = default;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e] * stride;
                a0 += Vector128.Load(r); a1 += Vector128.Load(r + 8);
            }
            Store(a0, dst, add); Store(a1, dst + 8, add);
        }

        public static void Sum1(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            Vector128<short> a0 = default;
            for (int e = 0; e < count; e++) a0 += Vector128.Load(rows + events[e] * stride);
            Store(a0, dst, add);
        }

        private static void Store(Vector128<short> acc, int* dst, bool add)
        {
            var (lo, hi) = Vector128.Widen(acc);
            if (add) { lo += Vector128.Load(dst); hi += Vector128.Load(dst + 4); }
            lo.Store(dst);
            hi.Store(dst + 4);
        }
    }

    // Scalar int32 sums (no int16 stage; the pieces only bound the loop), 4 lanes per "register".
    private readonly struct SumScalar : IRowSum
    {
        public static int Width => 4;
        public static void Sum4(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            for (int i = 0; i < 4; i++) Sum1(rows + 4 * i, stride, events, count, dst + 4 * i, add);
        }

        public static void Sum2(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            for (int i = 0; i < 2; i++) Sum1(rows + 4 * i, stride, events, count, dst + 4 * i, add);
        }

        public static void Sum1(short* rows, int stride, int* events, int count, int* dst, bool add)
        {
            int s0 = add ? dst[0] : 0, s1 = add ? dst[1] : 0, s2 = add ? dst[2] : 0, s3 = add ? dst[3] : 0;
            for (int e = 0; e < count; e++)
            {
                short* r = rows + events[e] * stride;
                s0 += r[0]; s1 += r[1]; s2 += r[2]; s3 += r[3];
            }
            dst[0] = s0; dst[1] = s1; dst[2] = s2; dst[3] = s3;
        }
    }

    [ThreadStatic] private static int[]? t_tile, t_events, t_sums, t_columns;
    [ThreadStatic] private static ulong[]? t_planes;

    // Shared by the call's threads (written by the fold, read by the blocks): one per calling thread.
    private static ulong[] Planes(ref ulong[]? slot, long length)
    {
        if (length > Array.MaxLength) throw new QsvitException($"a scratch buffer of {length:N0} elements exceeds .NET's array limit; use a smaller batch");
        if (slot is null || slot.Length < length) slot = GC.AllocateUninitializedArray<ulong>((int)length, pinned: true);
        return slot;
    }

    private static int[] Scratch(ref int[]? slot, int length)
    {
        if (slot is null || slot.Length < length) slot = GC.AllocateUninitializedArray<int>(length, pinned: true);
        return slot;
    }
}
