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
/// Stages are double-buffered in shared memory and prefetched two ahead in registers: each thread loads its share
/// (3 × 16 bytes) of stage s + 2 while the warps multiply stage s, and stores stage s + 1 (loaded an iteration earlier)
/// into the other buffer; one barrier per stage. Shared layout of a stage
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
    /// run rows fastest, so the groups that read the same pixels run side by side. With <paramref name="fused"/> ≠ 0 (one
    /// int8 digit, no LIF) the sums never reach memory: each goes through <see cref="SpikeGemmKernels.EpilogueInt{TFma}"/>'s
    /// arithmetic (<see cref="SpikeGemmKernels.Scaled{TFma}"/>) straight into <paramref name="output"/>[frame, oc, pixel].
    /// </summary>
    public static void Conv<TFma>(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p, int gemmRows, int rowWarps, int fused) where TFma : struct, IFma
    {
        var stage = SharedMemory.Allocate<Words4>(2 * StageQuads);
        int blockRows = SpikeMmaKernels.Lanes * rowWarps, blockPixels = SpikeMmaKernels.Lanes * (Warps / rowWarps);
        int rowTiles = (gemmRows + blockRows - 1) / blockRows, pixelTile = Grid.IdxX / rowTiles;
        int r0 = (Grid.IdxX - pixelTile * rowTiles) * blockRows, n0 = pixelTile * blockPixels;
        var epilogue = new Epilogue(output, scales, bias, bn, p, fused != 0);
        if (CudaAsm.IsSupported) MmaBlock<TFma>(packed, weights, sums, epilogue, stage, p, gemmRows, rowWarps, r0, n0);
        else ScalarBlock<TFma>(packed, weights, sums, epilogue, stage, p, gemmRows, rowWarps, r0, n0);
    }

    /// <summary>The fused epilogue's views, or none (<see cref="Fused"/> false: the sums go to memory).</summary>
    internal readonly struct Epilogue(ArrayView<float> output, ArrayView<float> scales, ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p, bool fused)
    {
        public readonly ArrayView<float> Output = output, Scales = scales, Bias = bias, Bn = bn;
        public readonly SpikeGemmArgs P = p;
        public readonly bool Fused = fused;
    }

    /// <summary>
    /// A lane's outputs through the fused epilogue: rows (output channels) <paramref name="rowGroup"/> + 8i, and the eight
    /// pixels 8j + 2t (+1) from <paramref name="pixelPair"/>, whose output offsets (frame·M·OHW + pixel, −1 past the valid
    /// pixels) are found once per lane, as are each row's scale, bias and first BN (the arithmetic of
    /// <see cref="SpikeGemmKernels.Scaled{TFma}"/>, so the values are the same bit for bit).
    /// </summary>
    private readonly struct FusedSink<TFma> : ITileSink where TFma : struct, IFma
    {
        private readonly Epilogue _e;
        private readonly int _rowGroup;
        private readonly long _o0, _o1, _o2, _o3, _o4, _o5, _o6, _o7;
        private readonly Row _r0, _r1, _r2, _r3;

        public FusedSink(Epilogue e, int rowGroup, int pixelPair)
        {
            _e = e;
            _rowGroup = rowGroup;
            _o0 = Offset(e.P, pixelPair);
            _o1 = Offset(e.P, pixelPair + 1);
            _o2 = Offset(e.P, pixelPair + 8);
            _o3 = Offset(e.P, pixelPair + 9);
            _o4 = Offset(e.P, pixelPair + 16);
            _o5 = Offset(e.P, pixelPair + 17);
            _o6 = Offset(e.P, pixelPair + 24);
            _o7 = Offset(e.P, pixelPair + 25);
            _r0 = new Row(e, rowGroup);
            _r1 = new Row(e, rowGroup + 8);
            _r2 = new Row(e, rowGroup + 16);
            _r3 = new Row(e, rowGroup + 24);
        }

        private static long Offset(SpikeGemmArgs p, int n)
        {
            if (n >= p.Valid) return -1;
            int f = n / p.OHW;
            return (long)(p.Frame0 + f) * p.M * p.OHW + n - f * p.OHW;
        }

        public void Pair(int i, int j, int v0, int v1)
        {
            int oc = _rowGroup + 8 * i;
            if (oc >= _e.P.M) return;
            var row = i == 0 ? _r0 : i == 1 ? _r1 : i == 2 ? _r2 : _r3;
            long first = j == 0 ? _o0 : j == 1 ? _o2 : j == 2 ? _o4 : _o6, second = j == 0 ? _o1 : j == 1 ? _o3 : j == 2 ? _o5 : _o7;
            long plane = (long)oc * _e.P.OHW;
            if (first >= 0) _e.Output[first + plane] = row.Value<TFma>(v0, oc, _e);
            if (second >= 0) _e.Output[second + plane] = row.Value<TFma>(v1, oc, _e);
        }
    }

    /// <summary>An output channel's scale, bias (0 without) and first BN (identity without), loaded once.</summary>
    internal readonly struct Row
    {
        private readonly float _scale, _bias, _bnScale, _bnShift;

        public Row(Epilogue e, int oc)
        {
            var p = e.P;
            bool inside = oc < p.M;
            _scale = inside ? e.Scales[oc] : 0f;
            _bias = inside && p.HasBias != 0 ? e.Bias[oc] : 0f;
            _bnScale = inside && p.BnCount > 0 ? e.Bn[oc] : 1f;
            _bnShift = inside && p.BnCount > 0 ? e.Bn[p.M + oc] : 0f;
        }

        private Row(F4 staged)
        {
            _scale = staged.X;
            _bias = staged.Y;
            _bnScale = staged.Z;
            _bnShift = staged.W;
        }

        /// <summary>This row's values as one 16-byte vector (<see cref="Staged"/> reads them back).</summary>
        public F4 Stage() => new(_scale, _bias, _bnScale, _bnShift);

        /// <summary>A row from its <see cref="Stage"/>d values.</summary>
        public static Row Staged(F4 staged) => new(staged);

        /// <summary><see cref="SpikeGemmKernels.Scaled{TFma}"/> of <paramref name="sum"/> with this row's values: the same operations in the same order.</summary>
        public float Value<TFma>(int sum, int oc, Epilogue e) where TFma : struct, IFma
        {
            var p = e.P;
            float v = p.HasBias != 0 ? default(TFma).Fma(sum, _scale, _bias) : sum * _scale;
            if (p.BnCount == 0) return v;
            v = default(TFma).Fma(v, _bnScale, _bnShift);
            for (int b = 1; b < p.BnCount; b++) v = default(TFma).Fma(v, e.Bn[2 * b * p.M + oc], e.Bn[(2 * b + 1) * p.M + oc]);
            return v;
        }
    }

    /// <summary>
    /// Where stage element <paramref name="i"/> comes from: A row r0 + i / 4 (<paramref name="isA"/>; <paramref name="at"/>
    /// its quad <paramref name="quad"/> of tap 0, −1 past the rows) or B pixel n0 + i / 4 − blockRows (<paramref name="at"/>
    /// its quad at the window's top-left input pixel (iy0, ix0), which may lie outside the map; a pixel past the valid ones
    /// gets iy0 far outside).
    /// </summary>
    internal static void Source(int i, SpikeGemmArgs p, int gemmRows, int r0, int n0, int blockRows, out bool isA, out int at, out int iy0, out int ix0, out int quad)
    {
        quad = i & 3;
        int line = i >> 2;
        iy0 = 0;
        ix0 = 0;
        isA = line < blockRows;
        if (isA)
        {
            int r = r0 + line;
            at = r < gemmRows ? r * (p.Kp / 16) + quad : -1;
            return;
        }
        SpikeMmaKernels.Window(p, n0 + line - blockRows, out int frameBase, out iy0, out ix0);
        at = iy0 < -p.H ? 0 : (frameBase + iy0 * p.W + ix0) * (p.Cp / 16) + quad;
    }

    /// <summary>
    /// The 16 bytes of a stage element at tap (ky, kx) (A's quads from <paramref name="tapQuad"/>, B's pixel
    /// <paramref name="tapPixel"/> quads from the window's corner), channels from quad <paramref name="cq"/>; zeros outside.
    /// </summary>
    private static Words4 Fetch(ArrayView<Words4> packedQuads, ArrayView<Words4> weightQuads, SpikeGemmArgs p, bool isA, int at, int iy0, int ix0, int quad,
        int ky, int kx, int tapQuad, int tapPixel, int cq)
    {
        if (cq + quad >= p.Cp / 16) return default;
        if (isA) return at < 0 ? default : weightQuads[at + tapQuad + cq];
        return (uint)(iy0 + ky) < (uint)p.H && (uint)(ix0 + kx) < (uint)p.W ? packedQuads[at + tapPixel + cq] : default;
    }

    /// <summary>The next stage: 64 channels further, or the next tap's first (<paramref name="tapPixel"/>: its offset in input quads).</summary>
    internal static void Advance(SpikeGemmArgs p, ref int ky, ref int kx, ref int tapQuad, ref int tapPixel, ref int cq)
    {
        int pixelQuads = p.Cp / 16;
        cq += 4;
        if (cq < pixelQuads) return;
        cq = 0;
        tapQuad += pixelQuads;
        tapPixel += pixelQuads;
        if (++kx < p.KW) return;
        kx = 0;
        ky++;
        tapPixel += (p.W - p.KW) * pixelQuads;
    }

    /// <summary>Stages of the reduction: taps × 64-channel chunks of Cp.</summary>
    internal static int Stages(SpikeGemmArgs p) => p.KH * p.KW * ((p.Cp / 16 + 3) / 4);

    /// <summary>
    /// The tensor-core body: thread i gathers stage elements i, i + 256, i + 512 (A rows, then B pixels: 768 for both block
    /// shapes); warp w multiplies rows 32·(w mod RW) .. and pixels 32·(w / RW) .. of the block from shared memory with the
    /// accumulators and mma sequence of <see cref="SpikeMmaKernels"/>.
    /// </summary>
    private static void MmaBlock<TFma>(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, Epilogue epilogue, ArrayView<Words4> stage,
        SpikeGemmArgs p, int gemmRows, int rowWarps, int r0, int n0) where TFma : struct, IFma
    {
        var packedQuads = packed.Cast<Words4>();
        var weightQuads = weights.Cast<Words4>();
        int tid = Group.IdxX, lane = tid & 31, warp = tid >> 5, group = lane >> 2, t = lane & 3;
        int warpRow = warp % rowWarps, warpPixel = warp / rowWarps, blockRows = SpikeMmaKernels.Lanes * rowWarps;
        int i0 = tid, i1 = tid + GroupThreads, i2 = tid + 2 * GroupThreads;
        Source(i0, p, gemmRows, r0, n0, blockRows, out bool a0, out int at0, out int y0, out int x0, out int q0);
        Source(i1, p, gemmRows, r0, n0, blockRows, out bool a1, out int at1, out int y1, out int x1, out int q1);
        Source(i2, p, gemmRows, r0, n0, blockRows, out bool a2, out int at2, out int y2, out int x2, out int q2);
        // Stage 0 goes straight to buffer 0; stage 1 waits in registers (u), and each iteration loads stage s + 2 (v)
        // before multiplying stage s, so a load has a whole stage of mma to arrive before it is stored.
        int ky = 0, kx = 0, tapQuad = 0, tapPixel = 0, cq = 0, stages = Stages(p);
        stage[i0] = Fetch(packedQuads, weightQuads, p, a0, at0, y0, x0, q0, ky, kx, tapQuad, tapPixel, cq);
        stage[i1] = Fetch(packedQuads, weightQuads, p, a1, at1, y1, x1, q1, ky, kx, tapQuad, tapPixel, cq);
        stage[i2] = Fetch(packedQuads, weightQuads, p, a2, at2, y2, x2, q2, ky, kx, tapQuad, tapPixel, cq);
        var u0 = default(Words4);
        var u1 = default(Words4);
        var u2 = default(Words4);
        if (stages > 1)
        {
            Advance(p, ref ky, ref kx, ref tapQuad, ref tapPixel, ref cq);
            u0 = Fetch(packedQuads, weightQuads, p, a0, at0, y0, x0, q0, ky, kx, tapQuad, tapPixel, cq);
            u1 = Fetch(packedQuads, weightQuads, p, a1, at1, y1, x1, q1, ky, kx, tapQuad, tapPixel, cq);
            u2 = Fetch(packedQuads, weightQuads, p, a2, at2, y2, x2, q2, ky, kx, tapQuad, tapPixel, cq);
        }
        SpikeMmaKernels.ZeroAccumulators();
        Group.Barrier();
        // This lane's fragment quads in a buffer: A rows warpRow·32 + group (+8, +16, +24), B pixels warpPixel·32 + group (+8, …).
        int aAt = (warpRow * SpikeMmaKernels.Lanes + group) * 4 + t, bAt = (blockRows + warpPixel * SpikeMmaKernels.Lanes + group) * 4 + t;
        int buffer = 0;
        for (int s = 0; s < stages; s++)
        {
            var v0 = default(Words4);
            var v1 = default(Words4);
            var v2 = default(Words4);
            if (s + 2 < stages)
            {
                Advance(p, ref ky, ref kx, ref tapQuad, ref tapPixel, ref cq);
                v0 = Fetch(packedQuads, weightQuads, p, a0, at0, y0, x0, q0, ky, kx, tapQuad, tapPixel, cq);
                v1 = Fetch(packedQuads, weightQuads, p, a1, at1, y1, x1, q1, ky, kx, tapQuad, tapPixel, cq);
                v2 = Fetch(packedQuads, weightQuads, p, a2, at2, y2, x2, q2, ky, kx, tapQuad, tapPixel, cq);
            }
            int a = buffer + aAt, b = buffer + bAt;
            SpikeMmaKernels.MmaStep(stage[a], stage[a + 32], stage[a + 64], stage[a + 96], stage[b], stage[b + 32], stage[b + 64], stage[b + 96]);
            if (s + 1 < stages)
            {
                int next = StageQuads - buffer;
                stage[next + i0] = u0;
                stage[next + i1] = u1;
                stage[next + i2] = u2;
            }
            Group.Barrier();
            buffer = StageQuads - buffer;
            u0 = v0;
            u1 = v1;
            u2 = v2;
        }
        int rowGroup = r0 + warpRow * SpikeMmaKernels.Lanes + group, pixelPair = n0 + warpPixel * SpikeMmaKernels.Lanes + 2 * t;
        if (epilogue.Fused) SpikeMmaKernels.StoreAccumulators(new FusedSink<TFma>(epilogue, rowGroup, pixelPair));
        else SpikeMmaKernels.StoreAccumulators(new SumsSink(sums, p, gemmRows, rowGroup, pixelPair));
    }

    /// <summary>
    /// The fallback: the group stages each stage's elements into buffer 0 as <see cref="MmaBlock{TFma}"/> does, then every
    /// logical lane of the 8 warps adds its 32 outputs' products over the stage (the C registers' rows and pixels, the
    /// fragments' shared quads) to the sums, which stage 0 writes; a fused epilogue then reads each lane's sums back.
    /// </summary>
    private static void ScalarBlock<TFma>(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, Epilogue epilogue, ArrayView<Words4> stage,
        SpikeGemmArgs p, int gemmRows, int rowWarps, int r0, int n0) where TFma : struct, IFma
    {
        var packedQuads = packed.Cast<Words4>();
        var weightQuads = weights.Cast<Words4>();
        int blockRows = SpikeMmaKernels.Lanes * rowWarps, stages = Stages(p);
        int ky = 0, kx = 0, tapQuad = 0, tapPixel = 0, cq = 0;
        for (int s = 0; s < stages; s++)
        {
            for (int i = Group.IdxX; i < StageQuads; i += Group.DimX)
            {
                Source(i, p, gemmRows, r0, n0, blockRows, out bool isA, out int at, out int y, out int x, out int q);
                stage[i] = Fetch(packedQuads, weightQuads, p, isA, at, y, x, q, ky, kx, tapQuad, tapPixel, cq);
            }
            Group.Barrier();
            for (int lane = Group.IdxX; lane < GroupThreads; lane += Group.DimX)
            {
                int warp = lane >> 5, group = (lane & 31) >> 2, t = lane & 3;
                int warpRow = warp % rowWarps, warpPixel = warp / rowWarps;
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                    {
                        int row = warpRow * SpikeMmaKernels.Lanes + group + 8 * i, pixel = warpPixel * SpikeMmaKernels.Lanes + 8 * j + 2 * t;
                        int r = r0 + row, n = n0 + pixel;
                        if (r >= gemmRows || n >= p.Rows) continue;
                        int sa = 0, sb = 0;
                        for (int quad = 0; quad < 4; quad++)
                        {
                            var av = stage[row * 4 + quad];
                            sa += Dot16(av, stage[(blockRows + pixel) * 4 + quad]);
                            sb += Dot16(av, stage[(blockRows + pixel + 1) * 4 + quad]);
                        }
                        long at = (long)r * p.Rows + n;
                        sums[at] = s == 0 ? sa : sums[at] + sa;
                        sums[at + 1] = s == 0 ? sb : sums[at + 1] + sb;
                    }
            }
            Group.Barrier();
            Advance(p, ref ky, ref kx, ref tapQuad, ref tapPixel, ref cq);
        }
        if (!epilogue.Fused) return;
        for (int lane = Group.IdxX; lane < GroupThreads; lane += Group.DimX)
        {
            int warp = lane >> 5, group = (lane & 31) >> 2, t = lane & 3;
            int rowGroup = r0 + warp % rowWarps * SpikeMmaKernels.Lanes + group, pixelPair = n0 + warp / rowWarps * SpikeMmaKernels.Lanes + 2 * t;
            var sink = new FusedSink<TFma>(epilogue, rowGroup, pixelPair);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                {
                    int r = rowGroup + 8 * i, n = pixelPair + 8 * j;
                    if (r >= gemmRows || n >= p.Rows) continue;
                    long at = (long)r * p.Rows + n;
                    sink.Pair(i, j, sums[at], sums[at + 1]);
                }
        }
    }

    /// <summary>Σ of the 16 signed byte products of two quads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Dot16(Words4 a, Words4 b) =>
        SpikeMmaKernels.Dot4(a.X, b.X) + SpikeMmaKernels.Dot4(a.Y, b.Y) + SpikeMmaKernels.Dot4(a.Z, b.Z) + SpikeMmaKernels.Dot4(a.W, b.W);
}
