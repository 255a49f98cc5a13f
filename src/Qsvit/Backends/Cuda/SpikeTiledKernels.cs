using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Tiled implicit-GEMM int8 convolution of packed spikes for the wide layers (issue 13): the same int32 sums as
/// <see cref="SpikeMmaKernels"/> (C[GemmRows, Rows] = A · Bᵀ, B's rows the never-written im2col columns), but a group of
/// <see cref="Warps"/> warps computes one block tile of 32·RW rows × 32·(8 / RW) output pixels (RW = row warps, 2 or 4:
/// 64 × 128 or 128 × 64) and stages each k-stage's operands in shared memory once for all its warps: the 64 channels of
/// one tap of A's block rows and of the block's pixels' input under that tap (zeros outside the map or past Cp). Every warp
/// then feeds its 32 × 32 warp tile's mma.sync fragments from shared memory (the fragment layout of
/// <see cref="SpikeMmaKernels"/>), so an input pixel is read from global memory once per block rather than once per
/// 32-row warp tile, and a weight row once per block rather than once per 32-pixel warp tile.
/// <para>
/// Stages are double-buffered through registers: each thread loads its share of the next stage (3 × 16 bytes) while the
/// warps multiply the current one, then stores it into the other buffer; one barrier per stage. Shared layout of a stage
/// (<see cref="StageQuads"/> 16-byte quads): A rows first, 4 quads each (the 64 channels), then B pixels, 4 quads each,
/// so a stage element i is quad i of both the global gather and the shared buffer, and eight lanes' fragment loads cover
/// 128 contiguous bytes (no bank conflicts).
/// </para>
/// <para>
/// Where inline PTX does not exist (ILGPU's CPU accelerator in tests) the group stages the same elements into the same
/// shared layout, and each of the 256 logical lanes adds its 32 outputs' products over the stage (read from shared memory
/// as its fragments are) to the sums in global memory, so the staging, tile and tap indexing are checked there too.
/// </para>
/// </summary>
internal static class SpikeTiledKernels
{
    /// <summary>Warps per group (threads per group on CUDA: <see cref="Warps"/> × 32).</summary>
    public const int Warps = 8;

    /// <summary>Threads per group on CUDA.</summary>
    public const int GroupThreads = Warps * SpikeMmaKernels.Lanes;

    /// <summary>Block rows plus block pixels: 32 · (RW + 8 / RW) = 192 for RW ∈ {2, 4}.</summary>
    private const int StageLines = 192;

    /// <summary>16-byte quads of one stage: 4 per A row and per B pixel (64 channels), 3 per thread on CUDA.</summary>
    public const int StageQuads = 4 * StageLines;

    /// <summary>Whether <paramref name="rowWarps"/> is a block shape this kernel has: 64 × 128 (2) or 128 × 64 (4).</summary>
    public static bool ValidRowWarps(int rowWarps) => rowWarps is 2 or 4;

    /// <summary>Rows and pixels of a block tile.</summary>
    public static (int Rows, int Pixels) BlockTile(int rowWarps) => (SpikeMmaKernels.Lanes * rowWarps, SpikeMmaKernels.Lanes * (Warps / rowWarps));

    /// <summary>Groups that cover a chunk's sums: one per block tile.</summary>
    public static int Groups(int gemmRows, int rows, int rowWarps)
    {
        var (br, bp) = BlockTile(rowWarps);
        return (gemmRows + br - 1) / br * ((rows + bp - 1) / bp);
    }

    /// <summary>
    /// sums[r, n] = Σ_k weights[r, k]·columns[n, k] for the chunk of <paramref name="p"/> (see <see cref="SpikeMmaKernels.Conv"/>),
    /// one group per block tile of <paramref name="rowWarps"/> × (8 / <paramref name="rowWarps"/>) warp tiles; block tiles
    /// run rows fastest, so the groups that read the same pixels run side by side.
    /// </summary>
    public static void Conv(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, SpikeGemmArgs p, int gemmRows, int rowWarps)
    {
        var stage = SharedMemory.Allocate<Words4>(2 * StageQuads);
        int blockRows = SpikeMmaKernels.Lanes * rowWarps, blockPixels = SpikeMmaKernels.Lanes * (Warps / rowWarps);
        int rowTiles = (gemmRows + blockRows - 1) / blockRows, pixelTile = Grid.IdxX / rowTiles;
        int r0 = (Grid.IdxX - pixelTile * rowTiles) * blockRows, n0 = pixelTile * blockPixels;
        if (CudaAsm.IsSupported) MmaBlock(packed, weights, sums, stage, p, gemmRows, rowWarps, r0, n0);
        else ScalarBlock(packed, weights, sums, stage, p, gemmRows, rowWarps, r0, n0);
    }

    /// <summary>
    /// Where stage element <paramref name="i"/> comes from: A row r0 + i / 4 (<paramref name="rowStart"/> its first quad,
    /// −1 past the rows) or B pixel n0 + i / 4 − blockRows (its frame and window; <paramref name="rowStart"/> −2), and its
    /// quad within the stage's 64 channels.
    /// </summary>
    private static void Source(int i, SpikeGemmArgs p, int gemmRows, int r0, int n0, int blockRows, out int rowStart, out int frameBase,
        out int iy0, out int ix0, out int quad)
    {
        quad = i & 3;
        int line = i >> 2;
        frameBase = 0;
        iy0 = 0;
        ix0 = 0;
        if (line < blockRows)
        {
            int r = r0 + line;
            rowStart = r < gemmRows ? r * (p.Kp / 16) : -1;
            return;
        }
        rowStart = -2;
        SpikeMmaKernels.Window(p, n0 + line - blockRows, out frameBase, out iy0, out ix0);
    }

    /// <summary>The 16 bytes of a stage element at tap (ky, kx) (A's quads from <paramref name="tapQuad"/>), channels from quad <paramref name="cq"/>; zeros outside.</summary>
    private static Words4 Fetch(ArrayView<Words4> packedQuads, ArrayView<Words4> weightQuads, SpikeGemmArgs p, int rowStart, int frameBase,
        int iy0, int ix0, int quad, int ky, int kx, int tapQuad, int cq)
    {
        int pixelQuads = p.Cp / 16, q = cq + quad;
        if (q >= pixelQuads || rowStart == -1) return default;
        if (rowStart >= 0) return weightQuads[rowStart + tapQuad + q];
        int iy = iy0 + ky, ix = ix0 + kx;
        return iy >= 0 && iy < p.H && ix >= 0 && ix < p.W ? packedQuads[(frameBase + iy * p.W + ix) * pixelQuads + q] : default;
    }

    /// <summary>The next stage: 64 channels further, or the next tap's first.</summary>
    private static void Advance(SpikeGemmArgs p, ref int ky, ref int kx, ref int tapQuad, ref int cq)
    {
        int pixelQuads = p.Cp / 16;
        cq += 4;
        if (cq < pixelQuads) return;
        cq = 0;
        tapQuad += pixelQuads;
        if (++kx < p.KW) return;
        kx = 0;
        ky++;
    }

    /// <summary>Stages of the reduction: taps × 64-channel chunks of Cp.</summary>
    private static int Stages(SpikeGemmArgs p) => p.KH * p.KW * ((p.Cp / 16 + 3) / 4);

    /// <summary>
    /// The tensor-core body: thread i gathers stage elements i, i + 256, i + 512 (A rows, then B pixels: 768 for both block
    /// shapes); warp w multiplies rows 32·(w mod RW) .. and pixels 32·(w / RW) .. of the block from shared memory with the
    /// accumulators and mma sequence of <see cref="SpikeMmaKernels"/>.
    /// </summary>
    private static void MmaBlock(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, ArrayView<Words4> stage, SpikeGemmArgs p,
        int gemmRows, int rowWarps, int r0, int n0)
    {
        var packedQuads = packed.Cast<Words4>();
        var weightQuads = weights.Cast<Words4>();
        int tid = Group.IdxX, lane = tid & 31, warp = tid >> 5, group = lane >> 2, t = lane & 3;
        int warpRow = warp % rowWarps, warpPixel = warp / rowWarps, blockRows = SpikeMmaKernels.Lanes * rowWarps;
        int i0 = tid, i1 = tid + GroupThreads, i2 = tid + 2 * GroupThreads;
        Source(i0, p, gemmRows, r0, n0, blockRows, out int s0, out int f0, out int y0, out int x0, out int q0);
        Source(i1, p, gemmRows, r0, n0, blockRows, out int s1, out int f1, out int y1, out int x1, out int q1);
        Source(i2, p, gemmRows, r0, n0, blockRows, out int s2, out int f2, out int y2, out int x2, out int q2);
        int ky = 0, kx = 0, tapQuad = 0, cq = 0;
        stage[i0] = Fetch(packedQuads, weightQuads, p, s0, f0, y0, x0, q0, ky, kx, tapQuad, cq);
        stage[i1] = Fetch(packedQuads, weightQuads, p, s1, f1, y1, x1, q1, ky, kx, tapQuad, cq);
        stage[i2] = Fetch(packedQuads, weightQuads, p, s2, f2, y2, x2, q2, ky, kx, tapQuad, cq);
        SpikeMmaKernels.ZeroAccumulators();
        Group.Barrier();
        // This lane's fragment quads in a buffer: A rows warpRow·32 + group (+8, +16, +24), B pixels warpPixel·32 + group (+8, …).
        int aAt = (warpRow * SpikeMmaKernels.Lanes + group) * 4 + t, bAt = (blockRows + warpPixel * SpikeMmaKernels.Lanes + group) * 4 + t;
        int stages = Stages(p), buffer = 0;
        for (int s = 0; s < stages; s++)
        {
            bool more = s + 1 < stages;
            var v0 = default(Words4);
            var v1 = default(Words4);
            var v2 = default(Words4);
            if (more)
            {
                Advance(p, ref ky, ref kx, ref tapQuad, ref cq);
                v0 = Fetch(packedQuads, weightQuads, p, s0, f0, y0, x0, q0, ky, kx, tapQuad, cq);
                v1 = Fetch(packedQuads, weightQuads, p, s1, f1, y1, x1, q1, ky, kx, tapQuad, cq);
                v2 = Fetch(packedQuads, weightQuads, p, s2, f2, y2, x2, q2, ky, kx, tapQuad, cq);
            }
            int a = buffer + aAt, b = buffer + bAt;
            SpikeMmaKernels.MmaStep(stage[a], stage[a + 32], stage[a + 64], stage[a + 96], stage[b], stage[b + 32], stage[b + 64], stage[b + 96]);
            if (more)
            {
                int next = StageQuads - buffer;
                stage[next + i0] = v0;
                stage[next + i1] = v1;
                stage[next + i2] = v2;
            }
            Group.Barrier();
            buffer = StageQuads - buffer;
        }
        SpikeMmaKernels.StoreAccumulators(sums, p, gemmRows, r0 + warpRow * SpikeMmaKernels.Lanes, n0 + warpPixel * SpikeMmaKernels.Lanes, group, t);
    }

    /// <summary>
    /// The fallback: the group stages each stage's elements into buffer 0 as <see cref="MmaBlock"/> does, then every
    /// logical lane of the 8 warps adds its 32 outputs' products over the stage (the C registers' rows and pixels, the
    /// fragments' shared quads) to the sums, which stage 0 writes.
    /// </summary>
    private static void ScalarBlock(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, ArrayView<Words4> stage, SpikeGemmArgs p,
        int gemmRows, int rowWarps, int r0, int n0)
    {
        var packedQuads = packed.Cast<Words4>();
        var weightQuads = weights.Cast<Words4>();
        int blockRows = SpikeMmaKernels.Lanes * rowWarps, stages = Stages(p);
        int ky = 0, kx = 0, tapQuad = 0, cq = 0;
        for (int s = 0; s < stages; s++)
        {
            for (int i = Group.IdxX; i < StageQuads; i += Group.DimX)
            {
                Source(i, p, gemmRows, r0, n0, blockRows, out int rs, out int f, out int y, out int x, out int q);
                stage[i] = Fetch(packedQuads, weightQuads, p, rs, f, y, x, q, ky, kx, tapQuad, cq);
            }
            Group.Barrier();
            for (int lane = Group.IdxX; lane < GroupThreads; lane += Group.DimX)
            {
                int warp = lane >> 5, group = (lane & 31) >> 2, t = lane & 3;
                int warpRow = warp % rowWarps, warpPixel = warp / rowWarps;
                for (int m = 0; m < 2; m++)
                    for (int j = 0; j < 4; j++)
                        for (int i = 0; i < 2; i++)
                        {
                            int row = warpRow * SpikeMmaKernels.Lanes + 16 * m + group + 8 * i, pixel = warpPixel * SpikeMmaKernels.Lanes + 8 * j + 2 * t;
                            int r = r0 + row, n = n0 + pixel;
                            if (r >= gemmRows || n >= p.Rows) continue;
                            int sa = 0, sb = 0;
                            for (int quad = 0; quad < 4; quad++)
                            {
                                var av = stage[row * 4 + quad];
                                var ba = stage[(blockRows + pixel) * 4 + quad];
                                var bb = stage[(blockRows + pixel + 1) * 4 + quad];
                                sa += Dot16(av, ba);
                                sb += Dot16(av, bb);
                            }
                            long at = (long)r * p.Rows + n;
                            sums[at] = s == 0 ? sa : sums[at] + sa;
                            sums[at + 1] = s == 0 ? sb : sums[at + 1] + sb;
                        }
            }
            Group.Barrier();
            Advance(p, ref ky, ref kx, ref tapQuad, ref cq);
        }
    }

    /// <summary>Σ of the 16 signed byte products of two quads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Dot16(Words4 a, Words4 b) =>
        SpikeMmaKernels.Dot4(a.X, b.X) + SpikeMmaKernels.Dot4(a.Y, b.Y) + SpikeMmaKernels.Dot4(a.Z, b.Z) + SpikeMmaKernels.Dot4(a.W, b.W);
}
