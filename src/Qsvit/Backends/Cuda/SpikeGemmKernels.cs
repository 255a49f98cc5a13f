using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Scalars of one chunk of a spike-input convolution run as a GEMM with both operands K-contiguous (the layout tensor
/// cores read fastest): C[Parts·M, Rows] = A[Parts·M, Kp] · B[Rows, Kp]ᵀ, where B row n is output pixel n of the chunk
/// (frame Frame0 + n / OHW) and column k = (ky·KW + kx)·Cp + c (taps outer, channels inner, Cp = channels padded to 16),
/// zero for c ≥ InChannels and n ≥ Valid. The spikes are first packed pixel-major ([pixel, Cp], <see cref="SpikeGemmKernels.PackBf16"/>),
/// so B's row is Taps runs of Cp contiguous elements copied whole (<see cref="SpikeGemmKernels.ColumnsFromPacked"/>),
/// or, for a 1×1 stride-1 unpadded conv, the packed spikes themselves. With bf16 pieces stacked along K
/// (<see cref="GpuSpikeConv.StackK"/>) each B row holds its Kp columns Copies times over.
/// </summary>
internal struct SpikeGemmArgs
{
    public int Frame0, Valid, Rows, K, Kp;
    public int InChannels, H, W, OW, OHW, KH, KW, StrideH, StrideW, PadH, PadW;
    /// <summary>Output channels (M) and pieces stacked along M (bf16 split: hi, mid, lo; int8: hi, lo bytes).</summary>
    public int M, Parts;
    public int HasBias, BnCount;
    /// <summary>Channels per packed pixel (InChannels rounded up to 16) and the 8-byte words they fill.</summary>
    public int Cp, Words;
    /// <summary>Packed pixels to write (rows of the packed layout) and how many hold input pixels (the rest are zero); the pixels of one input frame.</summary>
    public int PackRows, PackValid, PackPlane;
    /// <summary>Copies of each B row's Kp columns (1, or Parts with pieces stacked along K), and of each packed pixel (Copies when the packed spikes are B).</summary>
    public int Copies, PackCopies;
    /// <summary>
    /// Outputs per epilogue thread: 4 consecutive pixels of one (frame, channel) plane, loaded and stored as 16-byte vectors,
    /// when OHW is a multiple of 4 and the sums and output start 16-byte aligned; else 1.
    /// </summary>
    public int PerThread;
    /// <summary>
    /// 0: the chunk's frames are Frame0, Frame0 + 1, …. Else the chunk holds whole images for the fused LIF: local frame
    /// j is frame (j / Items)·FrameStride + Frame0 + j % Items (time step j / Items of image Frame0 + j % Items, with
    /// FrameStride = the batch, frames being time-first t·B + b).
    /// </summary>
    public int Items, FrameStride;
    /// <summary>fl(1 / Items) for <see cref="GpuKernels.SmallDiv"/> (local frames stay below 2^21).</summary>
    public float InvItems;
    /// <summary>The fused LIF's time steps and threshold (<see cref="SpikeGemmKernels.EpilogueIntLif{TFma}"/>).</summary>
    public int Timesteps;
    public float Threshold;
    /// <summary>
    /// With the LIF's spikes packed for the next layer (<see cref="SpikeGemmKernels.EpilogueIntLifPacked{TFma}"/>): int8
    /// words per packed output pixel, M rounded up to 16 over 4.
    /// </summary>
    public int OutWords;

    /// <summary>The frame that local frame <paramref name="j"/> of the chunk is (see <see cref="Items"/>).</summary>
    public readonly int Frame(int j)
    {
        if (Items == 0) return Frame0 + j;
        int t = GpuKernels.SmallDiv(j, InvItems);
        return t * FrameStride + Frame0 + j - t * Items;
    }
}

/// <summary>
/// Scalars of <see cref="SpikeGemmKernels.LifHandover"/>: a LIF layer over [T·B, C, 4·Quads] that hands its spikes to the
/// layer reading them next as that layer's packed int8 input (Words = its packed pixel's channels Cp / 4).
/// </summary>
internal struct HandoverArgs
{
    public int Channels, Words, Quads, Batch, Timesteps;
    /// <summary>Images per chunk of the reading layer: its chunks' frames are packed image-minor per chunk (<see cref="SpikeGemmArgs.Items"/>); the batch for frame order.</summary>
    public int ChunkImages;
    /// <summary>1: x += y before the LIF (the residual add), the sums stored into x; 0: the LIF of x alone (y unread).</summary>
    public int Add;
    public float Threshold;
}

/// <summary>
/// The ILGPU kernels of the spike-input GEMM path (<see cref="GpuSpikeConv"/>): spikes packed pixel-major into bf16 or
/// int8 (the input is exactly 0/1, so the conversion is exact) and copied into columns in 8-byte words, fallback GEMMs
/// for machines without cuBLAS (and for ILGPU's CPU accelerator in tests), and the epilogues that combine the stacked
/// pieces, scale, add the bias and run the BNs.
/// </summary>
internal static class SpikeGemmKernels
{
    /// <summary>Edge of the square tile the packing kernels transpose through shared memory (any group size works).</summary>
    public const int Tile = 32;

    /// <summary>Packed channels are padded to a multiple of this (16 int8 or bf16 values: whole 8-byte words, cuBLAS's int8 K alignment).</summary>
    public const int ChannelAlign = 16;

    /// <summary><paramref name="channels"/> padded to a multiple of <see cref="ChannelAlign"/>: a packed pixel's channels (Cp).</summary>
    public static int PaddedChannels(int channels) => (channels + ChannelAlign - 1) / ChannelAlign * ChannelAlign;

    /// <summary>bf16 1.0 (the top half of fp32 1.0).</summary>
    public const ushort Bf16One = 0x3F80;

    /// <summary>Spike of channel c at packed pixel n (frame Frame0 + n / PackPlane); zero past the valid pixels and channels.</summary>
    private static float Gather(ArrayView<float> x, SpikeGemmArgs p, int n, int c)
    {
        if (n >= p.PackValid || c >= p.InChannels) return 0f;
        int j = n / p.PackPlane, f = p.Frame(j), pix = n - j * p.PackPlane;
        return x[((long)f * p.InChannels + c) * p.PackPlane + pix];
    }

    /// <summary>
    /// One Tile × Tile block (pixels × channels) per group: read with pixels running fastest, so a warp reads neighbouring
    /// pixels of one channel plane, then written with channels running fastest through shared memory.
    /// </summary>
    private static void LoadTile(ArrayView<float> x, SpikeGemmArgs p, ArrayView<float> tile, out int n0, out int c0)
    {
        int cTiles = (p.Cp + Tile - 1) / Tile;
        n0 = Grid.IdxX / cTiles * Tile;
        c0 = Grid.IdxX % cTiles * Tile;
        for (int e = Group.IdxX; e < Tile * Tile; e += Group.DimX)
        {
            int tx = e % Tile, j = e / Tile;
            tile[j * (Tile + 1) + tx] = Gather(x, p, n0 + tx, c0 + j);
        }
        Group.Barrier();
    }

    /// <summary>
    /// Element <paramref name="e"/> of a staged tile in its written order (channels fastest): packed pixel n, channel c and
    /// the input value; false past the packed rows or channels (nothing to write).
    /// </summary>
    private static bool Transposed(ArrayView<float> tile, int e, int n0, int c0, SpikeGemmArgs p, out int n, out int c, out float v)
    {
        int tx = e % Tile, j = e / Tile;
        c = c0 + tx;
        n = n0 + j;
        v = tile[tx * (Tile + 1) + j];
        return n < p.PackRows && c < p.Cp;
    }

    /// <summary>Spikes packed pixel-major into bf16, dst[n, PackCopies, Cp] (0 → 0x0000, 1 → 0x3F80).</summary>
    public static void PackBf16(ArrayView<float> x, ArrayView<ushort> dst, SpikeGemmArgs p)
    {
        var tile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        LoadTile(x, p, tile, out int n0, out int c0);
        for (int e = Group.IdxX; e < Tile * Tile; e += Group.DimX)
        {
            if (!Transposed(tile, e, n0, c0, p, out int n, out int c, out float x1)) continue;
            ushort v = x1 != 0f ? Bf16One : (ushort)0;
            for (int copy = 0; copy < p.PackCopies; copy++) dst[((long)n * p.PackCopies + copy) * p.Cp + c] = v;
        }
    }

    /// <summary>
    /// Spikes packed pixel-major into int8, dst[n, PackCopies, Cp] (0 → 0, 1 → 1): one thread per packed pixel n and block
    /// of 16 channels (blocks fastest), which reads its 16 spikes (a warp reads runs of neighbouring pixels of each plane)
    /// and writes them as one 16-byte store (a warp writes whole packed pixels, contiguous). The pixel's frame and offset
    /// are found once per thread, not per element. dst starts 16-byte aligned (a workspace allocation).
    /// </summary>
    public static void PackS8(Index1D i, ArrayView<float> x, ArrayView<sbyte> dst, SpikeGemmArgs p)
    {
        int blocks = p.Cp / ChannelAlign, n = i / blocks, block = i - n * blocks, c0 = block * ChannelAlign;
        var spikes = default(Words4);
        if (n < p.PackValid)
        {
            int j = n / p.PackPlane, pix = n - j * p.PackPlane;
            long at = ((long)p.Frame(j) * p.InChannels + c0) * p.PackPlane + pix;
            spikes.X = SpikeBytes(x, at, p.PackPlane, p.InChannels - c0);
            spikes.Y = SpikeBytes(x, at + 4L * p.PackPlane, p.PackPlane, p.InChannels - c0 - 4);
            spikes.Z = SpikeBytes(x, at + 8L * p.PackPlane, p.PackPlane, p.InChannels - c0 - 8);
            spikes.W = SpikeBytes(x, at + 12L * p.PackPlane, p.PackPlane, p.InChannels - c0 - 12);
        }
        var quads = dst.Cast<Words4>();
        long row = (long)n * p.PackCopies * blocks + block;
        for (int copy = 0; copy < p.PackCopies; copy++) quads[row + copy * blocks] = spikes;
    }

    /// <summary>Packed pixels a thread of <see cref="PackS8Quads"/> takes, and its lanes' quads a warp (the warp a group's slice).</summary>
    public const int QuadPixels = 4, QuadLanes = 32;

    /// <summary>
    /// Whether <see cref="PackS8Quads"/> packs this chunk: quads of four packed pixels never straddle a frame or the valid
    /// rows (the plane, the valid and the written rows multiples of 4) and the input starts 16-byte aligned, so every
    /// quad of a plane is one aligned 16-byte vector.
    /// </summary>
    public static bool PacksQuads(SpikeGemmArgs p, bool inputAligned16) =>
        inputAligned16 && p.PackPlane % QuadPixels == 0 && p.PackValid % QuadPixels == 0 && p.PackRows % QuadPixels == 0;

    /// <summary>Threads of a <see cref="PackS8Quads"/> launch: whole warps of quads per 16-channel block.</summary>
    public static long QuadThreads(SpikeGemmArgs p) =>
        ((long)p.PackRows / QuadPixels + QuadLanes - 1) / QuadLanes * QuadLanes * (p.Cp / ChannelAlign);

    /// <summary>
    /// <see cref="PackS8"/>'s bytes (dst[n, PackCopies, Cp]), four packed pixels a thread where <see cref="PacksQuads"/>
    /// holds: a warp takes 32 neighbouring quads of one 16-channel block, so each of its 16 loads is a 16-byte vector a
    /// lane, 512 contiguous bytes of one channel plane, where PackS8's lanes load single floats from 16 planes each (on an
    /// H200 it moved 0.9–1.3 TB/s of the 55M's spike maps, a third of the card's bandwidth, and took 15 % of a pass); the
    /// following warps take the other blocks of the same pixels, so the rows' 16-byte stores meet in L2.
    /// </summary>
    public static void PackS8Quads(Index1D i, ArrayView<float> x, ArrayView<sbyte> dst, SpikeGemmArgs p)
    {
        int blocks = p.Cp / ChannelAlign, warp = i / QuadLanes, slice = warp / blocks, block = warp - slice * blocks;
        int n = QuadPixels * (slice * QuadLanes + i - warp * QuadLanes), c0 = block * ChannelAlign;
        if (n >= p.PackRows) return;
        Words4 a = default, b = default, c = default, d = default;
        if (n < p.PackValid)
        {
            int j = n / p.PackPlane, pix = n - j * p.PackPlane, left = p.InChannels - c0;
            var planes = x.Cast<Floats4>();
            long quad = (((long)p.Frame(j) * p.InChannels + c0) * p.PackPlane + pix) / QuadPixels, step = p.PackPlane / QuadPixels;
            QuadBytes(planes, quad, step, left, out a.X, out b.X, out c.X, out d.X);
            QuadBytes(planes, quad + 4 * step, step, left - 4, out a.Y, out b.Y, out c.Y, out d.Y);
            QuadBytes(planes, quad + 8 * step, step, left - 8, out a.Z, out b.Z, out c.Z, out d.Z);
            QuadBytes(planes, quad + 12 * step, step, left - 12, out a.W, out b.W, out c.W, out d.W);
        }
        var quads = dst.Cast<Words4>();
        long pixelWords = (long)p.PackCopies * blocks, row = n * pixelWords + block;
        for (int copy = 0; copy < p.PackCopies; copy++)
        {
            long at = row + copy * blocks;
            quads[at] = a;
            quads[at + pixelWords] = b;
            quads[at + 2 * pixelWords] = c;
            quads[at + 3 * pixelWords] = d;
        }
    }

    /// <summary>
    /// Four channels' spikes at four neighbouring pixels (the channels' quads <paramref name="step"/> vectors apart from
    /// <paramref name="quad"/>) as one int8 word per pixel, channel 0 lowest; zero for the <paramref name="left"/> ≤ c
    /// channels past the input's.
    /// </summary>
    private static void QuadBytes(ArrayView<Floats4> planes, long quad, long step, int left, out int a, out int b, out int c, out int d)
    {
        a = b = c = d = 0;
        for (int k = 0; k < 4 && k < left; k++)
        {
            var v = planes[quad + k * step];
            int shift = 8 * k;
            a |= (v.X != 0f ? 1 : 0) << shift;
            b |= (v.Y != 0f ? 1 : 0) << shift;
            c |= (v.Z != 0f ? 1 : 0) << shift;
            d |= (v.W != 0f ? 1 : 0) << shift;
        }
    }

    /// <summary>Words (of four channels) a group of <see cref="LifHandover"/> takes, one warp each, and its threads.</summary>
    public const int HandoverGroupWords = 4, HandoverGroup = QuadLanes * HandoverGroupWords;

    /// <summary>Groups of a <see cref="LifHandover"/> launch: one per 32 quads and 4 words.</summary>
    public static long HandoverGroups(HandoverArgs a) => ((long)a.Batch * a.Quads + QuadLanes - 1) / QuadLanes * (a.Words / HandoverGroupWords);

    /// <summary>
    /// The LIF over x [T·B, C, 4·Quads] (time-first frames; with Add, x += y first and the sums stored back into x, as the
    /// Add and LIF kernels round them) writing its spikes as the packed int8 input of the layer that reads them next
    /// (<see cref="PackS8"/>'s bytes: packed[frame, pixel, 4·Words], channel c at byte c, zero past C), not as fp32 maps,
    /// with frames in the order that layer's chunks pack them (<see cref="HandoverArgs.ChunkImages"/>). A group takes 32
    /// neighbouring quads of pixels and 16 channels over the T steps, a warp four of them (a word) and a lane a quad, so
    /// the loads and stores of x and y are 16-byte vectors, 512 contiguous bytes of a channel plane a warp; each step's
    /// spike words are staged in shared memory and stored as one 16-byte vector a pixel (its 16 channels' bytes). Lanes
    /// storing their four words 4·Cp bytes apart instead ran the 55M's handovers at 26–53 % of an H200's DRAM peak
    /// (57–81 % staged) and the 55M at 1,016 against 1,063 images/s (BENCHMARKS.md, fourteenth session).
    /// Words must be a multiple of 4 (Cp of 16).
    /// </summary>
    public static void LifHandover(ArrayView<float> x, ArrayView<float> y, ArrayView<int> packed, HandoverArgs a)
    {
        const int pitch = 4 * QuadLanes + 1; // a word's 128 pixels; the odd pitch spreads the four words' rows over the banks
        var staged = SharedMemory.Allocate<int>(HandoverGroupWords * pitch);
        int blocks = a.Words / HandoverGroupWords, slice = Grid.IdxX / blocks, block = Grid.IdxX - slice * blocks;
        int lane = Group.IdxX % QuadLanes, w = Group.IdxX / QuadLanes, word = block * HandoverGroupWords + w, quads = a.Batch * a.Quads;
        // This thread's LIF: four channels (its word) of quad g.
        int g = slice * QuadLanes + lane, c0 = 4 * word, left = g < quads ? a.Channels - c0 : 0;
        int b = g < quads ? g / a.Quads : 0, q = g - b * a.Quads;
        // Its store: packed pixel j of the group's 128 (quad gj, pixel pj of it), the 16 channels' bytes.
        int j = Group.IdxX, gj = slice * QuadLanes + j / 4, bj = gj < quads ? gj / a.Quads : 0;
        int chunk = bj / a.ChunkImages, items = Math.Min(a.ChunkImages, a.Batch - chunk * a.ChunkImages);
        long first = (long)chunk * a.ChunkImages * a.Timesteps + bj - chunk * a.ChunkImages, pixel = 4L * (gj - bj * a.Quads) + j % 4;
        var xs = x.Cast<Floats4>();
        var ys = y.Cast<Floats4>();
        var out4 = packed.Cast<Words4>();
        Floats4 v0 = default, v1 = default, v2 = default, v3 = default;
        for (int t = 0; t < a.Timesteps; t++)
        {
            long at = ((long)(t * a.Batch + b) * a.Channels + c0) * a.Quads + q;
            HandoverStep(xs, ys, at, left, a, ref v0, ref v1, ref v2, ref v3, out int s0, out int s1, out int s2, out int s3);
            for (int p = 0; p < 4; p++)
                staged[w * pitch + 4 * lane + p] = (s0 >> p & 1) | (s1 >> p & 1) << 8 | (s2 >> p & 1) << 16 | (s3 >> p & 1) << 24;
            Group.Barrier();
            if (gj < quads)
            {
                Words4 v;
                v.X = staged[j];
                v.Y = staged[pitch + j];
                v.Z = staged[2 * pitch + j];
                v.W = staged[3 * pitch + j];
                out4[((first + (long)t * items) * 4 * a.Quads + pixel) * blocks + block] = v;
            }
            Group.Barrier();
        }
    }

    /// <summary>
    /// One step of <see cref="LifHandover"/>'s four channels (planes Quads vectors apart from <paramref name="at"/>, those
    /// from <paramref name="left"/> on past the input) of four pixels: the residual add, the LIF, the spikes as bits 0–3 a channel.
    /// </summary>
    private static void HandoverStep(ArrayView<Floats4> xs, ArrayView<Floats4> ys, long at, int left, HandoverArgs a, ref Floats4 v0, ref Floats4 v1,
        ref Floats4 v2, ref Floats4 v3, out int s0, out int s1, out int s2, out int s3)
    {
        // The step's loads before its stores (which might alias them for all the compiler knows), so they overlap.
        long step = a.Quads;
        var x0 = HandoverLoad(xs, at, left > 0);
        var x1 = HandoverLoad(xs, at + step, left > 1);
        var x2 = HandoverLoad(xs, at + 2 * step, left > 2);
        var x3 = HandoverLoad(xs, at + 3 * step, left > 3);
        if (a.Add != 0)
        {
            var y0 = HandoverLoad(ys, at, left > 0);
            var y1 = HandoverLoad(ys, at + step, left > 1);
            var y2 = HandoverLoad(ys, at + 2 * step, left > 2);
            var y3 = HandoverLoad(ys, at + 3 * step, left > 3);
            x0 = HandoverSum(xs, at, x0, y0, left > 0);
            x1 = HandoverSum(xs, at + step, x1, y1, left > 1);
            x2 = HandoverSum(xs, at + 2 * step, x2, y2, left > 2);
            x3 = HandoverSum(xs, at + 3 * step, x3, y3, left > 3);
        }
        s0 = left > 0 ? Fire4(ref v0, x0, a.Threshold) : 0;
        s1 = left > 1 ? Fire4(ref v1, x1, a.Threshold) : 0;
        s2 = left > 2 ? Fire4(ref v2, x2, a.Threshold) : 0;
        s3 = left > 3 ? Fire4(ref v3, x3, a.Threshold) : 0;
    }

    /// <summary>A channel's four pixels of <see cref="LifHandover"/>'s step, or zeros past the channels.</summary>
    private static Floats4 HandoverLoad(ArrayView<Floats4> view, long at, bool inside) => inside ? view[at] : default;

    /// <summary>x + y of a channel's four pixels (one rounding each, the Add kernel's), stored into x.</summary>
    private static Floats4 HandoverSum(ArrayView<Floats4> xs, long at, Floats4 x, Floats4 y, bool inside)
    {
        x.X += y.X;
        x.Y += y.Y;
        x.Z += y.Z;
        x.W += y.W;
        if (inside) xs[at] = x;
        return x;
    }

    /// <summary>One LIF step (<see cref="LifSpike"/>) of a channel's four pixels: their spikes as bits 0–3.</summary>
    private static int Fire4(ref Floats4 v, Floats4 x, float threshold)
    {
        v.X = LifSpike(x.X, v.X, threshold, out float a);
        v.Y = LifSpike(x.Y, v.Y, threshold, out float b);
        v.Z = LifSpike(x.Z, v.Z, threshold, out float c);
        v.W = LifSpike(x.W, v.W, threshold, out float d);
        return (a != 0f ? 1 : 0) | (b != 0f ? 2 : 0) | (c != 0f ? 4 : 0) | (d != 0f ? 8 : 0);
    }

    /// <summary>Four channels' spikes (planes <paramref name="plane"/> floats apart from <paramref name="at"/>) as int8 bytes of one word, channel 0 lowest; zero for the <paramref name="left"/> ≤ c channels past the input's.</summary>
    private static int SpikeBytes(ArrayView<float> x, long at, int plane, int left)
    {
        int word = 0;
        if (left > 0 && x[at] != 0f) word |= 1;
        if (left > 1 && x[at + plane] != 0f) word |= 1 << 8;
        if (left > 2 && x[at + 2L * plane] != 0f) word |= 1 << 16;
        if (left > 3 && x[at + 3L * plane] != 0f) word |= 1 << 24;
        return word;
    }

    /// <summary>
    /// A real-valued input packed pixel-major as its three bf16 pieces (<see cref="GpuSpikeConv.RealInput"/>):
    /// dst[n, piece, Cp] = lo, mid, hi of x, each the previous remainder truncated to bf16, so hi + mid + lo = x exactly
    /// (<see cref="Bf16Split"/>). PackCopies is the piece count, 3.
    /// </summary>
    public static void PackSplit(ArrayView<float> x, ArrayView<ushort> dst, SpikeGemmArgs p)
    {
        var tile = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        LoadTile(x, p, tile, out int n0, out int c0);
        for (int e = Group.IdxX; e < Tile * Tile; e += Group.DimX)
        {
            if (!Transposed(tile, e, n0, c0, p, out int n, out int c, out float v)) continue;
            uint hi = SplitBf16(v, out uint mid, out uint lo);
            long at = (long)n * 3 * p.Cp + c;
            dst[at] = (ushort)lo;
            dst[at + p.Cp] = (ushort)mid;
            dst[at + 2 * p.Cp] = (ushort)hi;
        }
    }

    /// <summary>v's three bf16 pieces (bit patterns), hi returned: each the previous remainder truncated to bf16, hi + mid + lo = v exactly (<see cref="Bf16Split"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint SplitBf16(float v, out uint mid, out uint lo)
    {
        uint hi = (uint)Interop.FloatAsInt(v) >> 16;
        float r1 = v - Interop.IntAsFloat(hi << 16);
        mid = (uint)Interop.FloatAsInt(r1) >> 16;
        float r2 = r1 - Interop.IntAsFloat(mid << 16);
        lo = (uint)Interop.FloatAsInt(r2) >> 16;
        return hi;
    }

    /// <summary>
    /// im2col from packed spikes, in 16-byte quads (a packed pixel is Cp int8 or bf16 values, a multiple of 16 bytes): one
    /// thread per (output pixel n, quad w of a packed pixel), looping over the taps; B[n, copy·Kp + tap·Cp ..] = the packed
    /// input pixel under the tap (zero outside the map and for n ≥ Valid). Neighbouring threads copy neighbouring quads, so
    /// loads and stores are contiguous vector accesses. Both views start 16-byte aligned (workspace allocations).
    /// </summary>
    public static void ColumnsFromPacked(Index1D i, ArrayView<long> packedWords, ArrayView<long> columns, SpikeGemmArgs p)
    {
        var packed = packedWords.Cast<Words4>();
        var cols = columns.Cast<Words4>();
        int quads = p.Words / 2, n = i / quads, w = i - n * quads, taps = p.KH * p.KW, copyQuads = taps * quads;
        long at = (long)n * p.Copies * copyQuads + w;
        if (n >= p.Valid)
        {
            for (int t = 0; t < p.Copies * taps; t++) cols[at + (long)t * quads] = default;
            return;
        }
        int f = n / p.OHW, pix = n - f * p.OHW, oy = pix / p.OW, ox = pix - oy * p.OW;
        int iy0 = oy * p.StrideH - p.PadH, ix0 = ox * p.StrideW - p.PadW;
        long frame = (long)f * p.H * p.W;
        for (int ky = 0; ky < p.KH; ky++)
        {
            int iy = iy0 + ky;
            bool rowInside = iy >= 0 && iy < p.H;
            for (int kx = 0; kx < p.KW; kx++)
            {
                int ix = ix0 + kx;
                var v = rowInside && ix >= 0 && ix < p.W ? packed[(frame + iy * p.W + ix) * quads + w] : default;
                for (int copy = 0; copy < p.Copies; copy++) cols[at + (long)copy * copyQuads] = v;
                at += quads;
            }
        }
    }

/// <summary>dst[i] = (f16) src[i]: exact for spikes and for integers up to 2048 in magnitude.</summary>
    public static void ToHalf(Index1D i, ArrayView<float> src, ArrayView<Half> dst) => dst[i] = (Half)src[i];

    /// <summary>Fallback int8 GEMM, exact: c[r, n] = Σ_k a[r, k]·b[n, k] in int32 (one thread per element).</summary>
    public static void GemmS8(Index1D i, ArrayView<sbyte> a, ArrayView<sbyte> b, ArrayView<int> c, int columns, int kp)
    {
        int r = i / columns, n = i - r * columns;
        long ar = (long)r * kp, bn = (long)n * kp;
        int s = 0;
        for (int k = 0; k < kp; k++) s += a[ar + k] * b[bn + k];
        c[i] = s;
    }

    /// <summary>Fallback bf16 GEMM: c[r, n] = Σ_k a[r, k]·b[n, k], products exact (b is 0/1), summed in fp32 in k order.</summary>
    public static void GemmBf16(Index1D i, ArrayView<ushort> a, ArrayView<ushort> b, ArrayView<float> c, int columns, int kp)
    {
        int r = i / columns, n = i - r * columns;
        long ar = (long)r * kp, bn = (long)n * kp;
        float s = 0f;
        for (int k = 0; k < kp; k++) s += Interop.IntAsFloat((uint)a[ar + k] << 16) * Interop.IntAsFloat((uint)b[bn + k] << 16);
        c[i] = s;
    }

    /// <summary>
    /// y[Frame0 + f, oc, pix] from int32 sums c[part·M + oc, f·OHW + pix]: the base-256 pieces combined exactly ((hi·256 + mid)·256 + lo), then
    /// fma(sum, scale[oc], bias[oc]) (sum·scale without a bias), as the CPU's SpikeConv, then each BN as one FMA. With
    /// PerThread = 4 a thread loads each piece's four sums and stores its four outputs as 16-byte vectors and loads the
    /// channel's constants once (the same arithmetic per output).
    /// </summary>
    public static void EpilogueInt<TFma>(Index1D i, ArrayView<int> c, ArrayView<float> y, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        long at = Output(i, p, out int n0, out int oc);
        if (p.PerThread == 4) y.Cast<F4>()[at / 4] = ScaledQuad<TFma>(IntQuad(c, n0, oc, p), oc, scales, bias, bn, p);
        else y[at] = Scaled<TFma>(IntValue(c, n0, oc, p), oc, scales, bias, bn, p);
    }

    /// <summary>
    /// The thread's first output: its GEMM column n0 and channel oc, and its index in y[Frame0 + f, oc, pix]; with
    /// PerThread = 4 (OHW a multiple of 4) n0 and the index are multiples of 4.
    /// </summary>
    private static long Output(Index1D i, SpikeGemmArgs p, out int n0, out int oc)
    {
        int first = i * p.PerThread, mo = p.M * p.OHW, f = first / mo, rest = first - f * mo;
        oc = rest / p.OHW;
        int pix0 = rest - oc * p.OHW;
        n0 = f * p.OHW + pix0;
        return ((long)(p.Frame0 + f) * p.M + oc) * p.OHW + pix0;
    }

    /// <summary>Output channel oc at GEMM column n of int32 sums: the pieces combined, as a float.</summary>
    internal static float IntValue(ArrayView<int> c, int n, int oc, SpikeGemmArgs p)
    {
        int acc = c[(long)oc * p.Rows + n];
        for (int part = 1; part < p.Parts; part++) acc = acc * 256 + c[((long)part * p.M + oc) * p.Rows + n];
        return acc;
    }

    /// <summary><see cref="IntValue"/> at GEMM columns n .. n + 3 (n a multiple of 4, as Rows is), one 16-byte load per piece.</summary>
    internal static F4 IntQuad(ArrayView<int> c, int n, int oc, SpikeGemmArgs p)
    {
        var quads = c.Cast<Words4>();
        int rowQuads = p.Rows / 4, q = n / 4;
        var acc = quads[(long)oc * rowQuads + q];
        for (int part = 1; part < p.Parts; part++)
        {
            var d = quads[((long)part * p.M + oc) * rowQuads + q];
            acc.X = acc.X * 256 + d.X;
            acc.Y = acc.Y * 256 + d.Y;
            acc.Z = acc.Z * 256 + d.Z;
            acc.W = acc.W * 256 + d.W;
        }
        return new F4(acc.X, acc.Y, acc.Z, acc.W);
    }

    /// <summary>
    /// <see cref="EpilogueInt{TFma}"/> fused with the LIF over it (IBackend.ConvLif): the chunk holds whole images
    /// (<see cref="SpikeGemmArgs.Items"/>), one thread per (image, oc, PerThread pixels) runs the T steps in order with the
    /// LIF kernel's arithmetic (<see cref="GpuKernels.Lif"/>) and writes only the spikes, at their frames t·B + b (16-byte
    /// loads and stores with PerThread = 4).
    /// </summary>
    public static void EpilogueIntLif<TFma>(Index1D i, ArrayView<int> c, ArrayView<float> spikes, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        int first = i * p.PerThread, mo = p.M * p.OHW, item = first / mo, rest = first - item * mo, oc = rest / p.OHW, pix0 = rest - oc * p.OHW;
        var v = default(F4);
        var quads = spikes.Cast<F4>();
        for (int t = 0; t < p.Timesteps; t++)
        {
            int j = t * p.Items + item, n = j * p.OHW + pix0;
            long at = ((long)p.Frame(j) * p.M + oc) * p.OHW + pix0;
            if (p.PerThread == 4)
            {
                v = LifQuad(ScaledQuad<TFma>(IntQuad(c, n, oc, p), oc, scales, bias, bn, p), v, p.Threshold, out var s);
                quads[at / 4] = s;
            }
            else
            {
                v.X = LifSpike(Scaled<TFma>(IntValue(c, n, oc, p), oc, scales, bias, bn, p), v.X, p.Threshold, out float s);
                spikes[at] = s;
            }
        }
    }

    /// <summary>Threads of a <see cref="EpilogueIntLifPacked{TFma}"/> launch over a chunk: one per image, quad of output pixels and word.</summary>
    public static long PackedLifThreads(SpikeGemmArgs p) => (long)p.Items * (p.OHW / 4) * p.OutWords;

    /// <summary>
    /// <see cref="EpilogueIntLif{TFma}"/> writing its spikes as the next layer's packed int8 input (the bytes
    /// <see cref="PackS8"/> would make of them: packed[frame, pixel, OutWords·4], channel c at byte c, zero past M) instead
    /// of fp32 maps, so the next layer skips its packing and the map is a quarter of the bytes. One thread per (image, quad
    /// of 4 output pixels, word of 4 channels), words fastest: it runs the T steps of its 16 neurons with EpilogueIntLif's
    /// four-pixel arithmetic (16-byte loads of each channel's sums), and a warp's store per pixel is 128 contiguous bytes of
    /// one packed pixel. OHW must be a multiple of 4. Frames are global (local frame j is <see cref="SpikeGemmArgs.Frame"/>),
    /// so every chunk writes its part of one packed map.
    /// </summary>
    public static void EpilogueIntLifPacked<TFma>(Index1D i, ArrayView<int> c, ArrayView<int> packed, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        int quads = p.OHW / 4, rest = i / p.OutWords, word = i - rest * p.OutWords, item = rest / quads, pix0 = 4 * (rest - item * quads), oc0 = 4 * word;
        F4 v0 = default, v1 = default, v2 = default, v3 = default;
        for (int t = 0; t < p.Timesteps; t++)
        {
            int j = t * p.Items + item, n = j * p.OHW + pix0;
            var s0 = LifSpikes<TFma>(c, n, oc0, scales, bias, bn, p, ref v0);
            var s1 = LifSpikes<TFma>(c, n, oc0 + 1, scales, bias, bn, p, ref v1);
            var s2 = LifSpikes<TFma>(c, n, oc0 + 2, scales, bias, bn, p, ref v2);
            var s3 = LifSpikes<TFma>(c, n, oc0 + 3, scales, bias, bn, p, ref v3);
            long at = ((long)p.Frame(j) * p.OHW + pix0) * p.OutWords + word;
            packed[at] = SpikeWord(s0.X, s1.X, s2.X, s3.X);
            packed[at + p.OutWords] = SpikeWord(s0.Y, s1.Y, s2.Y, s3.Y);
            packed[at + 2L * p.OutWords] = SpikeWord(s0.Z, s1.Z, s2.Z, s3.Z);
            packed[at + 3L * p.OutWords] = SpikeWord(s0.W, s1.W, s2.W, s3.W);
        }
    }

    /// <summary>One LIF step of output channel <paramref name="oc"/> at GEMM columns n .. n + 3: the spikes (none past M).</summary>
    private static F4 LifSpikes<TFma>(ArrayView<int> c, int n, int oc, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn,
        SpikeGemmArgs p, ref F4 v) where TFma : struct, IFma
    {
        if (oc >= p.M) return default;
        v = LifQuad(ScaledQuad<TFma>(IntQuad(c, n, oc, p), oc, scales, bias, bn, p), v, p.Threshold, out var spikes);
        return spikes;
    }

    /// <summary>Four channels' spikes (0 or 1) as the int8 bytes of one word, the first channel lowest.</summary>
    internal static int SpikeWord(float a, float b, float c, float d) =>
        (a != 0f ? 1 : 0) | (b != 0f ? 1 << 8 : 0) | (c != 0f ? 1 << 16 : 0) | (d != 0f ? 1 << 24 : 0);

    /// <summary>
    /// y[f, oc, pix] = the epilogue of the fp32 sums already there: the TF32 GEMMs of a 1×1 layer (<see cref="GpuSpikeConv.F32"/>,
    /// one per frame) write each frame's sums where its outputs go. The sums are exact integers, so Scaled sees the values
    /// <see cref="EpilogueInt{TFma}"/> does and the outputs are its, bit for bit. Frame0 is 0 (the whole batch in one call).
    /// </summary>
    public static void EpilogueInPlace<TFma>(Index1D i, ArrayView<float> y, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        long at = Output(i, p, out _, out int oc);
        if (p.PerThread == 4)
        {
            var quads = y.Cast<F4>();
            quads[at / 4] = ScaledQuad<TFma>(quads[at / 4], oc, scales, bias, bn, p);
        }
        else y[at] = Scaled<TFma>(y[at], oc, scales, bias, bn, p);
    }

    /// <summary>
    /// <see cref="EpilogueInPlace{TFma}"/> fused with the LIF over it, as <see cref="EpilogueIntLif{TFma}"/>: one thread per
    /// (image, oc, PerThread pixels) runs the T steps at frames t·Items + image and overwrites each step's sums with its spikes.
    /// </summary>
    public static void EpilogueInPlaceLif<TFma>(Index1D i, ArrayView<float> y, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        int first = i * p.PerThread, mo = p.M * p.OHW, item = first / mo, rest = first - item * mo, oc = rest / p.OHW, pix0 = rest - oc * p.OHW;
        var v = default(F4);
        var quads = y.Cast<F4>();
        for (int t = 0; t < p.Timesteps; t++)
        {
            long at = ((long)(t * p.Items + item) * p.M + oc) * p.OHW + pix0;
            if (p.PerThread == 4)
            {
                v = LifQuad(ScaledQuad<TFma>(quads[at / 4], oc, scales, bias, bn, p), v, p.Threshold, out var s);
                quads[at / 4] = s;
            }
            else
            {
                v.X = LifSpike(Scaled<TFma>(y[at], oc, scales, bias, bn, p), v.X, p.Threshold, out float s);
                y[at] = s;
            }
        }
    }

    /// <summary>One LIF step as <see cref="GpuKernels.Lif"/> computes it: H = V + (X − V)·0.5, S = H ≥ Vth, V = S ? 0 : H; gives S, returns V.</summary>
    internal static float LifSpike(float x, float v, float threshold, out float spike)
    {
        float h = v + (x - v) * 0.5f;
        bool fire = h >= threshold;
        spike = fire ? 1f : 0f;
        return fire ? 0f : h;
    }

    /// <summary><see cref="LifSpike"/> on four neurons: their inputs x, potentials v; gives the spikes, returns the new potentials.</summary>
    private static F4 LifQuad(F4 x, F4 v, float threshold, out F4 spikes)
    {
        spikes = default;
        v.X = LifSpike(x.X, v.X, threshold, out spikes.X);
        v.Y = LifSpike(x.Y, v.Y, threshold, out spikes.Y);
        v.Z = LifSpike(x.Z, v.Z, threshold, out spikes.Z);
        v.W = LifSpike(x.W, v.W, threshold, out spikes.W);
        return v;
    }

    /// <summary><see cref="LifSpike"/> writing S to spikes[at].</summary>
    internal static float LifStep(float x, float v, float threshold, ArrayView<float> spikes, long at)
    {
        v = LifSpike(x, v, threshold, out float spike);
        spikes[at] = spike;
        return v;
    }

    /// <summary>fma(sum, scale[oc], bias[oc]) (sum·scale without a bias), as the CPU's SpikeConv, then each BN as one FMA.</summary>
    internal static float Scaled<TFma>(float sum, int oc, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p)
        where TFma : struct, IFma
    {
        float v = p.HasBias != 0 ? default(TFma).Fma(sum, scales[oc], bias[oc]) : sum * scales[oc];
        for (int b = 0; b < p.BnCount; b++) v = default(TFma).Fma(v, bn[2 * b * p.M + oc], bn[(2 * b + 1) * p.M + oc]);
        return v;
    }

    /// <summary>The scalar Scaled of four outputs of one channel, its constants loaded once (the same FMAs per output).</summary>
    internal static F4 ScaledQuad<TFma>(F4 sum, int oc, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p)
        where TFma : struct, IFma
    {
        var f = default(TFma);
        float scale = scales[oc];
        F4 v;
        if (p.HasBias != 0)
        {
            float b = bias[oc];
            v = new F4(f.Fma(sum.X, scale, b), f.Fma(sum.Y, scale, b), f.Fma(sum.Z, scale, b), f.Fma(sum.W, scale, b));
        }
        else v = new F4(sum.X * scale, sum.Y * scale, sum.Z * scale, sum.W * scale);
        return Bns<TFma>(v, oc, bn, p);
    }

    /// <summary>Each BN of channel oc as one FMA on four outputs, its scale and shift loaded once.</summary>
    private static F4 Bns<TFma>(F4 v, int oc, ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        var f = default(TFma);
        for (int b = 0; b < p.BnCount; b++)
        {
            float scale = bn[2 * b * p.M + oc], shift = bn[(2 * b + 1) * p.M + oc];
            v = new F4(f.Fma(v.X, scale, shift), f.Fma(v.Y, scale, shift), f.Fma(v.Z, scale, shift), f.Fma(v.W, scale, shift));
        }
        return v;
    }

    /// <summary>
    /// y[Frame0 + f, oc, pix] from the fp32 sums c[oc, f·OHW + pix] of integer codes against a real-valued input's bf16
    /// pieces (<see cref="GpuSpikeConv.RealInput"/>): scale, bias and BNs as <see cref="EpilogueInt{TFma}"/>.
    /// </summary>
    public static void EpilogueScaled<TFma>(Index1D i, ArrayView<float> c, ArrayView<float> y, ArrayView<float> scales, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        long at = Output(i, p, out int n0, out int oc);
        long sum = (long)oc * p.Rows + n0;
        if (p.PerThread == 4) y.Cast<F4>()[at / 4] = ScaledQuad<TFma>(c.Cast<F4>()[sum / 4], oc, scales, bias, bn, p);
        else y[at] = Scaled<TFma>(c[sum], oc, scales, bias, bn, p);
    }

    /// <summary>
    /// y[Frame0 + f, oc, pix] from the fp32 sums of the bf16 pieces c[part·M + oc, f·OHW + pix]: hi + (mid + lo), smallest
    /// first, then + bias[oc] and each BN as one FMA (the SGEMM path's epilogue).
    /// </summary>
    public static void EpilogueSplit<TFma>(Index1D i, ArrayView<float> c, ArrayView<float> y, ArrayView<float> bias,
        ArrayView<float> bn, SpikeGemmArgs p) where TFma : struct, IFma
    {
        long at = Output(i, p, out int n0, out int oc);
        if (p.PerThread == 4) y.Cast<F4>()[at / 4] = SplitQuad<TFma>(c.Cast<F4>(), n0 / 4, oc, bias, bn, p);
        else y[at] = SplitValue<TFma>(c, n0, oc, bias, bn, p);
    }

    /// <summary>Output channel oc at GEMM column n of the bf16 pieces' fp32 sums: the pieces combined, + bias, the BNs.</summary>
    private static float SplitValue<TFma>(ArrayView<float> c, int n, int oc, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p)
        where TFma : struct, IFma
    {
        float v = p.Parts == 3 ? c[(2L * p.M + oc) * p.Rows + n] : 0f;
        if (p.Parts >= 2) v += c[((long)p.M + oc) * p.Rows + n];
        v = c[(long)oc * p.Rows + n] + v;
        if (p.HasBias != 0) v += bias[oc];
        for (int b = 0; b < p.BnCount; b++) v = default(TFma).Fma(v, bn[2 * b * p.M + oc], bn[(2 * b + 1) * p.M + oc]);
        return v;
    }

    /// <summary><see cref="SplitValue{TFma}"/> at GEMM columns 4q .. 4q + 3, one 16-byte load per piece, the channel's constants loaded once.</summary>
    private static F4 SplitQuad<TFma>(ArrayView<F4> c, int q, int oc, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p)
        where TFma : struct, IFma
    {
        int rowQuads = p.Rows / 4;
        var v = p.Parts == 3 ? c[(2L * p.M + oc) * rowQuads + q] : default;
        if (p.Parts >= 2)
        {
            var mid = c[((long)p.M + oc) * rowQuads + q];
            v = new F4(v.X + mid.X, v.Y + mid.Y, v.Z + mid.Z, v.W + mid.W);
        }
        var hi = c[(long)oc * rowQuads + q];
        v = new F4(hi.X + v.X, hi.Y + v.Y, hi.Z + v.Z, hi.W + v.W);
        if (p.HasBias != 0)
        {
            float b = bias[oc];
            v = new F4(v.X + b, v.Y + b, v.Z + b, v.W + b);
        }
        return Bns<TFma>(v, oc, bn, p);
    }
}
