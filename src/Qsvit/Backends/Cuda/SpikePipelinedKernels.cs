using System.Diagnostics;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Pipelined implicit-GEMM int8 convolution of packed spikes for the wide 3×3 layers (issue 13): the int32 sums of
/// <see cref="SpikeMmaKernels"/> (C[GemmRows, Rows] = A · Bᵀ, B's rows the never-written im2col columns) with block tiles
/// of <see cref="BlockRows"/> × <see cref="BlockPixels"/> computed by <see cref="Warps"/> warps of 64 × 64 each (2 × 2
/// sub-tiles of <see cref="SpikeMmaKernels"/>'s 32 × 32 register layout: 128 accumulators a lane, four A and four B
/// fragment quads per sub-tile, so 16 shared 16-byte loads feed 64 mma per stage where the 32 × 32 warp tiles of
/// <see cref="SpikeTiledKernels"/> needed 8 for 16). The four sub-tiles' zero, step and store methods are
/// <see cref="SpikeMmaKernels"/>'s with their own register names (ILGPU's inline PTX takes literal strings).
/// <para>
/// A stage is 64 channels of one tap of the block's 128 A rows and 128 B pixels (<see cref="SpikeTiledKernels"/>'s
/// stage layout and gather: the packed input is [pixel, Cp] int8, so a stage element is one 16-byte copy). Stages go
/// global → shared by <c>cp.async.cg</c> (16 bytes, zero-filled outside the map or past Cp by a source size of 0),
/// <see cref="Depth"/> buffers deep: stage s + Depth − 1 is in flight while the warps multiply stage s, one
/// <c>cp.async.wait_group</c> and one barrier per stage, no registers held for the copies. Eight lanes' fragment
/// loads cover 128 contiguous shared bytes (two rows of four quads), so the plain layout has no bank conflicts
/// (<see cref="Slot"/>; the wgmma kernel, <see cref="ConvWgmma{TFma}"/>, stages the same elements in its own layout).
/// </para>
/// <para>
/// Where inline PTX does not exist (ILGPU's CPU accelerator in tests) the same copies land in the same buffers
/// synchronously, and each of the 128 logical lanes adds its sub-tiles' products over the stage (read from shared memory
/// as its fragments are) to the sums in memory, so the staging, the ring of buffers and the tile indexing are checked there too.
/// </para>
/// <para>
/// The fused epilogue stages the accumulators in the ring in two rounds of 64 rows × 128 columns and writes them pixels
/// fastest across the threads (<see cref="EpilogueRound{TFma}"/>, which the fallback runs on the same layout copied from
/// its sums). cp.async needs the ring's shared-window address, which ILGPU has no in-kernel way to give: the kernel names
/// ILGPU's PTX symbol for its only shared allocation, <c>__shared_alloca0</c> (checked in the generated PTX of ILGPU 1.5.3).
/// </para>
/// </summary>
internal static partial class SpikePipelinedKernels
{
    /// <summary>Warps per group: 2 along the rows × 2 along the pixels, 64 × 64 each.</summary>
    public const int Warps = 4;

    /// <summary>Threads per group on CUDA.</summary>
    public const int GroupThreads = Warps * SpikeMmaKernels.Lanes;

    /// <summary>Rows (output channels × digits) and output pixels of a block tile.</summary>
    public const int BlockRows = 128, BlockPixels = 128;

    /// <summary>Rows and pixels of a warp tile.</summary>
    private const int WarpRows = 64, WarpPixels = 64;

    /// <summary>16-byte quads of one stage: 4 per A row and per B pixel (64 channels), 8 copies per thread on CUDA.</summary>
    public const int StageQuads = 4 * (BlockRows + BlockPixels);

    /// <summary>Shared-memory stages in the ring: 3 × 16 KB, the static limit of 48 KB.</summary>
    public const int Depth = 3;

    /// <summary>Copies per thread per stage on CUDA.</summary>
    private const int CopiesPerThread = StageQuads / GroupThreads;

    /// <summary>
    /// Groups that cover a chunk: one per block tile; with a fused LIF over <paramref name="timesteps"/> steps a block's
    /// columns are <see cref="BlockPixels"/> / T pixels of the chunk's images × their T steps (<see cref="Columns"/>), so
    /// <paramref name="pixels"/> is images × OH·OW; else the chunk's GEMM columns (timesteps 0).
    /// </summary>
    public static int Groups(int gemmRows, int pixels, int timesteps = 0)
    {
        int perStep = BlockPixels / Math.Max(1, timesteps);
        return (gemmRows + BlockRows - 1) / BlockRows * ((pixels + perStep - 1) / perStep);
    }

    /// <summary>Whether the fused LIF epilogue takes T steps: a block holds at least one pixel's T steps (T ≤ 128).</summary>
    public static bool StepsFit(int timesteps) => timesteps is > 0 and <= BlockPixels;

    /// <summary>Epilogue kinds (the kernel's <c>fused</c> argument): the sums to memory, the conv's outputs, or the LIF's spikes.</summary>
    public const int SumsOut = 0, OutputsOut = 1, SpikesOut = 2;

    /// <summary>
    /// Which GEMM column (output pixel of the chunk) a block's column c is: without a LIF n0 + c; with one (Steps = T) column
    /// c = t·PerStep + q is step t of image pixel N0 + q (images × OH·OW), local frame t·Items + image, n = t·Items·OHW + N0 + q,
    /// so a block holds every step of its pixels. Columns past the pixels (or past T·PerStep) map to Valid (zeros, never stored).
    /// </summary>
    internal readonly struct Columns
    {
        public readonly int N0, Steps, PerStep, StepStride, Limit, Valid;

        public Columns(SpikeGemmArgs p, int pixelTile, bool lif)
        {
            Steps = lif ? p.Timesteps : 1;
            PerStep = BlockPixels / Steps;
            N0 = pixelTile * PerStep;
            StepStride = lif ? p.Items * p.OHW : 0;
            Limit = lif ? p.Items * p.OHW : p.Valid;
            Valid = p.Valid;
        }

        public int N(int c)
        {
            int t = c / PerStep, q = c - t * PerStep;
            return t < Steps && N0 + q < Limit ? t * StepStride + N0 + q : Valid;
        }
    }

    /// <summary>
    /// sums[r, n] = Σ_k weights[r, k]·columns[n, k] for the chunk of <paramref name="p"/> (see <see cref="SpikeMmaKernels.Conv"/>),
    /// one group per block tile, block tiles rows fastest. <paramref name="packedAddress"/> and <paramref name="weightAddress"/>
    /// are the device addresses of <paramref name="packed"/> and <paramref name="weights"/> (cp.async's sources). With
    /// <paramref name="fused"/> ≠ 0 (one int8 digit, no LIF) the sums go through <see cref="SpikeTiledKernels"/>'s fused
    /// epilogue (<see cref="SpikeGemmKernels.Scaled{TFma}"/>'s arithmetic) straight into <paramref name="output"/>; with
    /// <see cref="SpikesOut"/> (one digit, a LIF over p.Timesteps steps) each block's sums go through shared memory to
    /// <see cref="SpikeGemmKernels.EpilogueIntLif{TFma}"/>'s arithmetic, and only the spikes reach <paramref name="output"/>.
    /// </summary>
    public static void Conv<TFma>(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p, int gemmRows, int fused, long packedAddress, long weightAddress) where TFma : struct, IFma
    {
        if (fused == SpikesOut) Debug.Assert(p.Parts == 1 && StepsFit(p.Timesteps) && gemmRows == p.M);
        var stage = SharedMemory.Allocate<Words4>(Depth * StageQuads);
        int rowTiles = (gemmRows + BlockRows - 1) / BlockRows, pixelTile = Grid.IdxX / rowTiles;
        int r0 = (Grid.IdxX - pixelTile * rowTiles) * BlockRows;
        var columns = new Columns(p, pixelTile, fused == SpikesOut);
        var epilogue = new SpikeTiledKernels.Epilogue(output, scales, bias, bn, p, fused == OutputsOut);
        var src = new Sources(packed.Cast<Words4>(), weights.Cast<Words4>(), packedAddress, weightAddress);
        if (CudaAsm.IsSupported) MmaBlock<TFma>(src, sums, epilogue, stage, p, gemmRows, r0, columns, fused == SpikesOut);
        else ScalarBlock<TFma>(src, sums, epilogue, stage, p, gemmRows, r0, columns, fused == SpikesOut, layout: RowLayout);
    }

    /// <summary>The operands as views (the fallback's loads) and as device addresses (cp.async's sources).</summary>
    private readonly struct Sources(ArrayView<Words4> packed, ArrayView<Words4> weights, long packedAddress, long weightAddress)
    {
        public readonly ArrayView<Words4> Packed = packed, Weights = weights;
        public readonly long PackedAddress = packedAddress, WeightAddress = weightAddress;
    }

    /// <summary>Where a reduction stage starts: its tap (ky, kx), A's quad of the tap, B's pixel offset of the tap, the channel quad.</summary>
    private struct Tap
    {
        public int Ky, Kx, TapQuad, TapPixel, Cq;

        public void Advance(SpikeGemmArgs p) => SpikeTiledKernels.Advance(p, ref Ky, ref Kx, ref TapQuad, ref TapPixel, ref Cq);
    }

    /// <summary>One stage element's source: A row or B pixel, its quad of tap 0 (<see cref="SpikeTiledKernels.Source"/>).</summary>
    private readonly struct Element
    {
        public readonly bool IsA;
        public readonly int At, Iy0, Ix0, Quad;

        public Element(int i, SpikeGemmArgs p, int gemmRows, int r0, Columns columns, int layout)
        {
            Quad = SlotQuad(i, layout);
            int line = SlotLine(i);
            IsA = line < BlockRows;
            Iy0 = Ix0 = 0;
            if (IsA) At = RowQuad(r0 + line, gemmRows, p.Kp / 16, Quad);
            else At = PixelQuad(p, columns.N(line - BlockRows), Quad, out Iy0, out Ix0);
        }

        /// <summary>The element's source quad at <paramref name="tap"/>, or −1 where it is zero (outside the map, past Cp or the rows).</summary>
        public long Index(SpikeGemmArgs p, in Tap tap)
        {
            if (tap.Cq + Quad >= p.Cp / 16) return -1;
            if (IsA) return At < 0 ? -1 : At + tap.TapQuad + tap.Cq;
            return (uint)(Iy0 + tap.Ky) < (uint)p.H && (uint)(Ix0 + tap.Kx) < (uint)p.W ? At + tap.TapPixel + tap.Cq : -1;
        }
    }

    /// <summary>Stage layouts (<see cref="Slot"/>): mma.sync's lines, wgmma's 64-byte swizzle.</summary>
    internal const int RowLayout = 0, Swizzle64Layout = 1;

    /// <summary>
    /// Where line <paramref name="line"/>'s quad <paramref name="quad"/> lies in a stage (16-byte slots); lines 0..127 are A's
    /// block rows, 128..255 B's block pixels, 64 bytes each. <see cref="RowLayout"/> (mma.sync) keeps a line's quads in
    /// order: a fragment load's 8 lanes (2 lines × 4 quads) read 128 contiguous bytes. <see cref="Swizzle64Layout"/> (wgmma)
    /// puts quad q of line l at q XOR (l / 2) mod 4, the pattern the tensor cores apply to address bits 4–5 from bits 7–8
    /// (the stage 512-byte aligned), so their reads of one quad of 8 lines meet no bank conflict.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Slot(int line, int quad, int layout) => line * 4 + (layout == Swizzle64Layout ? quad ^ ((line >> 1) & 3) : quad);

    /// <summary>The line of stage slot <paramref name="slot"/> (<see cref="Slot"/>'s inverse).</summary>
    internal static int SlotLine(int slot) => slot >> 2;

    /// <summary>The quad of stage slot <paramref name="slot"/> (<see cref="Slot"/>'s inverse).</summary>
    internal static int SlotQuad(int slot, int layout) => layout == Swizzle64Layout ? (slot & 3) ^ ((slot >> 3) & 3) : slot & 3;

    /// <summary>
    /// A CUDA thread's 8 copies of a stage: slots tid + 128j in either layout (<see cref="Slot"/>), i.e. A rows line + 32j
    /// (j &lt; 4) and B pixels line + 32(j − 4) of the line and quad slot tid is. Consecutive threads fill consecutive slots
    /// (no bank conflicts on the copies' stores) and a warp reads 8 lines' 64 bytes each (whole sectors). The sources stay in
    /// scalars, so a stage's copies cost a few integer operations each.
    /// </summary>
    private readonly struct StageCopies
    {
        private readonly int _quad, _a0, _a1, _a2, _a3, _b0, _b1, _b2, _b3, _y0, _y1, _y2, _y3, _x0, _x1, _x2, _x3, _pixelQuads;

        public StageCopies(int tid, SpikeGemmArgs p, int gemmRows, int r0, Columns columns, int layout)
        {
            _quad = SlotQuad(tid, layout);
            int line = SlotLine(tid), rowQuads = p.Kp / 16;
            _pixelQuads = p.Cp / 16;
            _a0 = RowQuad(r0 + line, gemmRows, rowQuads, _quad);
            _a1 = RowQuad(r0 + line + 32, gemmRows, rowQuads, _quad);
            _a2 = RowQuad(r0 + line + 64, gemmRows, rowQuads, _quad);
            _a3 = RowQuad(r0 + line + 96, gemmRows, rowQuads, _quad);
            _b0 = PixelQuad(p, columns.N(line), _quad, out _y0, out _x0);
            _b1 = PixelQuad(p, columns.N(line + 32), _quad, out _y1, out _x1);
            _b2 = PixelQuad(p, columns.N(line + 64), _quad, out _y2, out _x2);
            _b3 = PixelQuad(p, columns.N(line + 96), _quad, out _y3, out _x3);
        }

        /// <summary>The cp.async of this thread's 8 slots of the stage at tap (ky, kx), channel quad cq, into shared address <paramref name="at"/> (slot tid's).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Issue(int at, long weightAddress, long packedAddress, SpikeGemmArgs p, int ky, int kx, int aOff, int bOff, int cq)
        {
            bool chan = cq + _quad < _pixelQuads;
            AsyncCopy(at, weightAddress, _a0 + aOff, chan && _a0 >= 0);
            AsyncCopy(at + 2048, weightAddress, _a1 + aOff, chan && _a1 >= 0);
            AsyncCopy(at + 4096, weightAddress, _a2 + aOff, chan && _a2 >= 0);
            AsyncCopy(at + 6144, weightAddress, _a3 + aOff, chan && _a3 >= 0);
            AsyncCopy(at + 8192, packedAddress, _b0 + bOff, chan && Inside(p, _y0 + ky, _x0 + kx));
            AsyncCopy(at + 10240, packedAddress, _b1 + bOff, chan && Inside(p, _y1 + ky, _x1 + kx));
            AsyncCopy(at + 12288, packedAddress, _b2 + bOff, chan && Inside(p, _y2 + ky, _x2 + kx));
            AsyncCopy(at + 14336, packedAddress, _b3 + bOff, chan && Inside(p, _y3 + ky, _x3 + kx));
        }

        /// <summary>The copies of the stage at <paramref name="tap"/> into shared address <paramref name="at"/>; the tap then moves to the next stage.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void IssueAndAdvance(int at, long weightAddress, long packedAddress, SpikeGemmArgs p, ref Tap tap)
        {
            Issue(at, weightAddress, packedAddress, p, tap.Ky, tap.Kx, tap.TapQuad + tap.Cq, tap.TapPixel + tap.Cq, tap.Cq);
            tap.Advance(p);
        }

        /// <summary>The first <paramref name="ahead"/> stages' copies into buffers 0 .. ahead − 1, one commit group each (empty past the last stage).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void IssuePrologue(int sharedBase, int tid, long weightAddress, long packedAddress, SpikeGemmArgs p, int stages, int ahead, ref Tap tap)
        {
            for (int s = 0; s < ahead; s++)
            {
                if (s < stages) IssueAndAdvance(sharedBase + 16 * (s * StageQuads + tid), weightAddress, packedAddress, p, ref tap);
                CudaAsm.Emit("cp.async.commit_group;");
            }
        }
    }

    /// <summary>int32 words per row of the LIF epilogue's shared sums: 128 columns + 4 (rows start in other banks).</summary>
    private const int SharedRow = BlockPixels + 4;

    /// <summary>A warp sub-tile's sums into shared memory: pair (i, j) at local row <paramref name="localRow"/> + 8i, columns <paramref name="column"/> + 8j, + 1.</summary>
    private readonly struct SharedSink(ArrayView<int> shared, int localRow, int column) : ITileSink
    {
        public void Pair(int i, int j, int v0, int v1)
        {
            int at = (localRow + 8 * i) * SharedRow + column + 8 * j;
            shared[at] = v0;
            shared[at + 1] = v1;
        }
    }

    /// <summary>
    /// One round of the fused epilogue: local rows 0..63 of the shared sums are block rows (row / 32)·64 + <paramref name="half"/>
    /// + row mod 32. Thread k takes column pixel q = k mod PerStep (consecutive threads write consecutive pixels) and every
    /// (128 / PerStep)-th local row from k / PerStep, so its pixel's image, frames and output offsets are found once.
    /// Without a LIF <see cref="SpikeGemmKernels.Scaled{TFma}"/> into output[frame, oc, pix] (<see cref="SpikeGemmKernels.EpilogueInt{TFma}"/>'s
    /// values); with one the T steps (local frames t·Items + image) through Scaled and <see cref="SpikeGemmKernels.LifSpike"/>
    /// in order (<see cref="SpikeGemmKernels.EpilogueIntLif{TFma}"/>'s arithmetic), each spike written at its frame; where the
    /// spikes go out packed (p.OutWords &gt; 0) <see cref="PackedLifRound{TFma}"/> runs instead.
    /// </summary>
    private static void EpilogueRound<TFma>(ArrayView<int> shared, SpikeTiledKernels.Epilogue e, SpikeGemmArgs p, int r0, int half, Columns columns,
        bool lif, int thread) where TFma : struct, IFma
    {
        if (lif && p.OutWords > 0)
        {
            PackedLifRound<TFma>(shared, e, p, r0, half, columns, thread);
            return;
        }
        int perStep = columns.PerStep, rowLanes = GroupThreads / perStep, rowLane = thread / perStep, q = thread - rowLane * perStep;
        int pixel = columns.N0 + q;
        if (rowLane >= rowLanes || pixel >= columns.Limit) return;
        int image = pixel / p.OHW, pix = pixel - image * p.OHW, steps = lif ? p.Timesteps : 1;
        long plane = (long)p.M * p.OHW;
        // Step t's frame is Frame(t·Items + image) = Frame(image) + t·FrameStride, so its outputs lie a fixed stride apart.
        long o0 = (long)p.Frame(image) * plane + pix, stepStride = (long)p.FrameStride * plane;
        for (int localRow = rowLane; localRow < 64; localRow += rowLanes)
        {
            int oc = r0 + (localRow >> 5) * WarpRows + half + (localRow & 31);
            if (oc >= p.M) continue;
            // The row's scale, bias and first BN once for its T steps (Scaled's operations, in its order).
            var row = new SpikeTiledKernels.Row(e, oc);
            int at = localRow * SharedRow + q;
            long o = o0 + (long)oc * p.OHW;
            if (!lif)
            {
                e.Output[o] = row.Value<TFma>(shared[at], oc, e);
                continue;
            }
            float v = 0f;
            for (int t = 0; t < steps; t++, at += perStep, o += stepStride)
            {
                v = SpikeGemmKernels.LifSpike(row.Value<TFma>(shared[at], oc, e), v, p.Threshold, out float spike);
                e.Output[o] = spike;
            }
        }
    }

    /// <summary>ints before the packed epilogue's spike words in the ring: the round's shared sums (64 rows of <see cref="SharedRow"/>).</summary>
    private const int PackedWordsAt = 64 * SharedRow;

    /// <summary>
    /// Spike words a staged block column: 16 (its 64 local rows, four a word, row 4w + i in byte i) and one more, so the
    /// columns of a warp's neighbouring pixels start in distinct banks.
    /// </summary>
    private const int PackedWordPitch = 17;

    /// <summary>floats after the spike words: the round's 64 rows' constants (<see cref="StageRows"/>), 16-byte aligned.</summary>
    private const int PackedRowsAt = PackedWordsAt + BlockPixels * PackedWordPitch;

    /// <summary>
    /// Before a round of <see cref="PackedLifRound{TFma}"/> (a barrier before it): thread k &lt; 64 stages local row k's
    /// scale, bias and first BN (<see cref="SpikeTiledKernels.Row"/>) as one 16-byte vector, so the round reads each with a
    /// shared load. Held in registers, four rows' constants for the T steps spilled to local memory under the kernel's
    /// 168-register bound (ncu: LDL/STL in the LIF's inner loop).
    /// </summary>
    private static void StageRows(ArrayView<int> shared, SpikeTiledKernels.Epilogue e, int r0, int half, int thread)
    {
        if (thread >= 64) return;
        int oc = r0 + (thread >> 5) * WarpRows + half + (thread & 31);
        shared.SubView(PackedRowsAt).Cast<F4>()[thread] = new SpikeTiledKernels.Row(e, oc).Stage();
    }

    /// <summary>
    /// <see cref="EpilogueRound{TFma}"/>'s LIF where the spikes go out packed (p.OutWords &gt; 0): thread k takes column pixel
    /// q = k mod PerStep and every (128 / PerStep)-th word of four local rows from k / PerStep; for each of the T steps its
    /// four rows' values go through Scaled (their constants from <see cref="StageRows"/>) and the LIF (the same arithmetic
    /// per neuron, in step order) and their spikes become one word, staged at [block column, word]
    /// (<see cref="PackedWordPitch"/>; rows past M zero) for <see cref="PackedRound"/>. One 32-bit store per four spikes: a
    /// byte each, 64 bytes apart across the lanes, made the stores 16-way bank conflicts (ncu: 65 % of the kernel's shared
    /// wavefronts excessive) and most of its instructions.
    /// </summary>
    private static void PackedLifRound<TFma>(ArrayView<int> shared, SpikeTiledKernels.Epilogue e, SpikeGemmArgs p, int r0, int half, Columns columns,
        int thread) where TFma : struct, IFma
    {
        int perStep = columns.PerStep, wordLanes = GroupThreads / perStep, wordLane = thread / perStep, q = thread - wordLane * perStep;
        if (wordLane >= wordLanes || columns.N0 + q >= columns.Limit) return;
        var words = shared.SubView(PackedWordsAt);
        var rows = shared.SubView(PackedRowsAt).Cast<F4>();
        for (int word = wordLane; word < 16; word += wordLanes)
        {
            // Local rows 4·word .. + 3 never straddle a warp's 32 rows: output channels oc0 .. oc0 + 3.
            int localRow = 4 * word, oc0 = r0 + (localRow >> 5) * WarpRows + half + (localRow & 31);
            int live = p.M - oc0, at = localRow * SharedRow + q, to = q * PackedWordPitch + word;
            float v0 = 0f, v1 = 0f, v2 = 0f, v3 = 0f;
            for (int t = 0; t < columns.Steps; t++, at += perStep, to += perStep * PackedWordPitch)
            {
                float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
                if (live > 0) v0 = SpikeGemmKernels.LifSpike(StagedValue<TFma>(rows, shared, localRow, at, oc0, e), v0, p.Threshold, out s0);
                if (live > 1) v1 = SpikeGemmKernels.LifSpike(StagedValue<TFma>(rows, shared, localRow + 1, at + SharedRow, oc0 + 1, e), v1, p.Threshold, out s1);
                if (live > 2) v2 = SpikeGemmKernels.LifSpike(StagedValue<TFma>(rows, shared, localRow + 2, at + 2 * SharedRow, oc0 + 2, e), v2, p.Threshold, out s2);
                if (live > 3) v3 = SpikeGemmKernels.LifSpike(StagedValue<TFma>(rows, shared, localRow + 3, at + 3 * SharedRow, oc0 + 3, e), v3, p.Threshold, out s3);
                words[to] = SpikeGemmKernels.SpikeWord(s0, s1, s2, s3);
            }
        }
    }

    /// <summary>Local row <paramref name="localRow"/>'s output at shared sum <paramref name="at"/>, with its constants staged by <see cref="StageRows"/>.</summary>
    private static float StagedValue<TFma>(ArrayView<F4> rows, ArrayView<int> shared, int localRow, int at, int oc, SpikeTiledKernels.Epilogue e)
        where TFma : struct, IFma => SpikeTiledKernels.Row.Staged(rows[localRow]).Value<TFma>(shared[at], oc, e);

    /// <summary>
    /// A round's spikes (<see cref="PackedLifRound{TFma}"/>'s words, [block column, 16 words]) stored as the next layer's
    /// packed int8 input, packed[frame, pixel, OutWords·4]: thread k's items k + 128m are (block column, 16 local rows), so
    /// four neighbouring threads store one column's 64 channels as 16-byte vectors. Past the chunk's pixels and past the
    /// packed channels nothing is stored. Runs after every thread's round (a barrier apart). A thread's columns are 32
    /// apart: its step and pixel advance by that (no division per item), and its pixel's image only where the pixel changes.
    /// </summary>
    private static void PackedRound(ArrayView<int> shared, SpikeTiledKernels.Epilogue e, SpikeGemmArgs p, int r0, int half, Columns columns, int thread)
    {
        var words = shared.SubView(PackedWordsAt);
        var packed = e.Output.Cast<Words4>();
        int pixelQuads = p.OutWords / 4, chunk = thread & 3, c = thread >> 2, t = c / columns.PerStep, q = c - t * columns.PerStep;
        int oc0 = r0 + (chunk >> 1) * WarpRows + half + 16 * (chunk & 1);
        if (oc0 >= 4 * p.OutWords) return;
        int imageOf = -1, image = 0, pix = 0;
        for (; c < BlockPixels; c += GroupThreads / 4)
        {
            if (t < columns.Steps && columns.N0 + q < columns.Limit)
            {
                if (q != imageOf)
                {
                    imageOf = q;
                    image = (columns.N0 + q) / p.OHW;
                    pix = columns.N0 + q - image * p.OHW;
                }
                int at = c * PackedWordPitch + 4 * chunk;
                packed[((long)p.Frame(t * p.Items + image) * p.OHW + pix) * pixelQuads + oc0 / 16] =
                    new Words4 { X = words[at], Y = words[at + 1], Z = words[at + 2], W = words[at + 3] };
            }
            for (q += GroupThreads / 4; q >= columns.PerStep; q -= columns.PerStep) t++;
        }
    }

    /// <summary>A row's quad <paramref name="quad"/> of tap 0 in A (quads), −1 past the rows.</summary>
    private static int RowQuad(int r, int gemmRows, int rowQuads, int quad) => r < gemmRows ? r * rowQuads + quad : -1;

    /// <summary>
    /// Output pixel <paramref name="n"/>'s quad <paramref name="quad"/> at its window's top-left input pixel (iy0, ix0)
    /// in the packed input (quads; 0 for a pixel past the valid ones, whose iy0 lies far outside).
    /// </summary>
    private static int PixelQuad(SpikeGemmArgs p, int n, int quad, out int iy0, out int ix0)
    {
        SpikeMmaKernels.Window(p, n, out int frameBase, out iy0, out ix0);
        return iy0 < -p.H ? 0 : (frameBase + iy0 * p.W + ix0) * (p.Cp / 16) + quad;
    }

    /// <summary>Whether input pixel (iy, ix) lies on the map (else the conv's zero padding).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Inside(SpikeGemmArgs p, int iy, int ix) => (uint)iy < (uint)p.H && (uint)ix < (uint)p.W;

    /// <summary>
    /// cp.async of the 16 bytes at quad <paramref name="index"/> from <paramref name="baseAddress"/> to shared address
    /// <paramref name="shared"/>, or 16 zero bytes (source size 0, nothing read) where not <paramref name="valid"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AsyncCopy(int shared, long baseAddress, int index, bool valid)
    {
        long address = valid ? baseAddress + 16L * index : baseAddress;
        CudaAsm.Emit("cp.async.cg.shared.global [%0], [%1], 16, %2;", shared, address, valid ? 16 : 0);
    }

    /// <summary>Stages of the reduction: taps × 64-channel chunks of Cp.</summary>
    private static int Stages(SpikeGemmArgs p) => SpikeTiledKernels.Stages(p);

    /// <summary>
    /// The tensor-core body: thread i copies stage elements i + 128j, j = 0..7: A rows r0 + i / 4 + 32j (j &lt; 4) and B pixels
    /// n0 + i / 4 + 32(j − 4), quad i mod 4 of each (<see cref="SpikeTiledKernels.Source"/>'s elements, its sources kept in
    /// scalar locals so the copies cost a few integer operations each); warp w multiplies rows 64·(w mod 2) .. and pixels
    /// 64·(w / 2) .. of the block from the ring with 2 × 2 sub-tiles of accumulators.
    /// </summary>
    private static void MmaBlock<TFma>(in Sources src, ArrayView<int> sums, SpikeTiledKernels.Epilogue epilogue, ArrayView<Words4> stage,
        SpikeGemmArgs p, int gemmRows, int r0, Columns columns, bool lif) where TFma : struct, IFma
    {
        int tid = Group.IdxX, lane = tid & 31, warp = tid >> 5, group = lane >> 2, t = lane & 3;
        int warpRow = warp & 1, warpPixel = warp >> 1;
        // The ring's address in the shared window (cp.async's destination space): ILGPU names a kernel's first shared
        // allocation __shared_alloca0 in its PTX and has no in-kernel view address; the ring is this kernel's only one.
        CudaAsm.Emit("mov.u32 %0, __shared_alloca0;", out int sharedBase);
        var copies = new StageCopies(tid, p, gemmRows, r0, columns, layout: RowLayout);
        long weightAddress = src.WeightAddress, packedAddress = src.PackedAddress;
        int stages = Stages(p);
        // Prologue: stages 0 .. Depth − 2 in flight.
        var tap = default(Tap);
        copies.IssuePrologue(sharedBase, tid, weightAddress, packedAddress, p, stages, Depth - 1, ref tap);
        Zero00();
        Zero01();
        Zero10();
        Zero11();
        // This lane's fragment quads in a buffer: A rows warpRow·64 + group + 8i, B pixels warpPixel·64 + group + 8j (32 slots apart).
        int aAt = Slot(warpRow * WarpRows + group, t, layout: RowLayout), bAt = Slot(BlockRows + warpPixel * WarpPixels + group, t, layout: RowLayout);
        int read = 0, write = (Depth - 1) * StageQuads;
        for (int s = 0; s < stages; s++)
        {
            // Stage s has landed (at most Depth − 2 younger groups pending); the barrier also retires stage s − 1's reads.
            CudaAsm.Emit("cp.async.wait_group 1;");
            Group.Barrier();
            if (s + Depth - 1 < stages) copies.IssueAndAdvance(sharedBase + 16 * (write + tid), weightAddress, packedAddress, p, ref tap);
            CudaAsm.Emit("cp.async.commit_group;");
            int a = read + aAt, bq = read + bAt;
            var a0 = stage[a];
            var a1 = stage[a + 32];
            var a2 = stage[a + 64];
            var a3 = stage[a + 96];
            var b0 = stage[bq];
            var b1 = stage[bq + 32];
            var b2 = stage[bq + 64];
            var b3 = stage[bq + 96];
            Step00(a0, a1, a2, a3, b0, b1, b2, b3);
            var a4 = stage[a + 128];
            var a5 = stage[a + 160];
            var a6 = stage[a + 192];
            var a7 = stage[a + 224];
            Step10(a4, a5, a6, a7, b0, b1, b2, b3);
            var b4 = stage[bq + 128];
            var b5 = stage[bq + 160];
            var b6 = stage[bq + 192];
            var b7 = stage[bq + 224];
            Step01(a0, a1, a2, a3, b4, b5, b6, b7);
            Step11(a4, a5, a6, a7, b4, b5, b6, b7);
            read = read == (Depth - 1) * StageQuads ? 0 : read + StageQuads;
            write = write == (Depth - 1) * StageQuads ? 0 : write + StageQuads;
        }
        CudaAsm.Emit("cp.async.wait_group 0;");
        int n0 = columns.N0, rowGroup = r0 + warpRow * WarpRows + group, pixelPair = n0 + warpPixel * WarpPixels + 2 * t;
        if (lif || epilogue.Fused)
        {
            // Two rounds through the ring (64 rows × 128 columns of int32 each): sub-tiles (0, ·) of every warp, then (1, ·);
            // each round's outputs are written pixels fastest across the threads (coalesced), its LIF steps in one thread.
            var shared = stage.Cast<int>();
            int localRow = warpRow * 32 + group, column = warpPixel * WarpPixels + 2 * t;
            Group.Barrier();
            Store00(new SharedSink(shared, localRow, column));
            Store01(new SharedSink(shared, localRow, column + 32));
            if (lif && p.OutWords > 0) StageRows(shared, epilogue, r0, 0, tid);
            Group.Barrier();
            EpilogueRound<TFma>(shared, epilogue, p, r0, 0, columns, lif, tid);
            Group.Barrier();
            if (lif && p.OutWords > 0)
            {
                PackedRound(shared, epilogue, p, r0, 0, columns, tid);
                Group.Barrier();
            }
            Store10(new SharedSink(shared, localRow, column));
            Store11(new SharedSink(shared, localRow, column + 32));
            if (lif && p.OutWords > 0) StageRows(shared, epilogue, r0, 32, tid);
            Group.Barrier();
            EpilogueRound<TFma>(shared, epilogue, p, r0, 32, columns, lif, tid);
            if (lif && p.OutWords > 0)
            {
                Group.Barrier();
                PackedRound(shared, epilogue, p, r0, 32, columns, tid);
            }
        }
        else
        {
            Store00(new SumsSink(sums, p, gemmRows, rowGroup, pixelPair));
            Store01(new SumsSink(sums, p, gemmRows, rowGroup, pixelPair + 32));
            Store10(new SumsSink(sums, p, gemmRows, rowGroup + 32, pixelPair));
            Store11(new SumsSink(sums, p, gemmRows, rowGroup + 32, pixelPair + 32));
        }
    }

    /// <summary>
    /// The fallback: the same ring (stage s + Depth − 1 copied into its buffer before stage s is read, the buffers in the
    /// same turn), copies done at once; every logical lane of the 4 warps adds its 4 sub-tiles' products over the stage
    /// (the C registers' rows and pixels, the fragments' shared quads) to the sums, which stage 0 writes; a fused epilogue
    /// then reads each lane's sums back.
    /// </summary>
    private static void ScalarBlock<TFma>(in Sources src, ArrayView<int> sums, SpikeTiledKernels.Epilogue epilogue, ArrayView<Words4> stage,
        SpikeGemmArgs p, int gemmRows, int r0, Columns columns, bool lif, int layout) where TFma : struct, IFma
    {
        int stages = Stages(p);
        var tap = default(Tap);
        for (int s = 0; s < Depth - 1 && s < stages; s++)
        {
            CopyStage(src, stage, p, gemmRows, r0, columns, tap, s * StageQuads, layout);
            tap.Advance(p);
        }
        int read = 0, write = (Depth - 1) * StageQuads;
        for (int s = 0; s < stages; s++)
        {
            Group.Barrier();
            if (s + Depth - 1 < stages)
            {
                CopyStage(src, stage, p, gemmRows, r0, columns, tap, write, layout);
                tap.Advance(p);
            }
            Group.Barrier();
            for (int lane = Group.IdxX; lane < GroupThreads; lane += Group.DimX)
            {
                int warp = lane >> 5, group = (lane & 31) >> 2, t = lane & 3;
                int warpRow = warp & 1, warpPixel = warp >> 1;
                for (int i = 0; i < 8; i++)
                    for (int j = 0; j < 8; j++)
                    {
                        int row = warpRow * WarpRows + group + 8 * i, pixel = warpPixel * WarpPixels + 8 * j + 2 * t;
                        int r = r0 + row;
                        if (r >= gemmRows) continue;
                        for (int k = 0; k < 2; k++)
                        {
                            // Each of the pair's columns on its own: with a LIF, neighbours may be other steps or pixels.
                            int n = columns.N(pixel + k);
                            if (n >= p.Valid) continue;
                            int sum = 0;
                            for (int quad = 0; quad < 4; quad++)
                                sum += Dot16(stage[read + Slot(row, quad, layout)], stage[read + Slot(BlockRows + pixel + k, quad, layout)]);
                            long at = (long)r * p.Rows + n;
                            sums[at] = s == 0 ? sum : sums[at] + sum;
                        }
                    }
            }
            read = read == (Depth - 1) * StageQuads ? 0 : read + StageQuads;
            write = write == (Depth - 1) * StageQuads ? 0 : write + StageQuads;
        }
        Group.Barrier();
        if (!lif && !epilogue.Fused) return;
        // The tensor-core body's epilogue rounds: each round's sums copied from memory into the ring's layout, then the
        // 128 threads' round in turn.
        var shared = stage.Cast<int>();
        for (int half = 0; half < 64; half += 32)
        {
            Group.Barrier();
            for (int k = Group.IdxX; k < 64 * BlockPixels; k += Group.DimX)
            {
                int localRow = k / BlockPixels, c = k - localRow * BlockPixels;
                int r = r0 + (localRow >> 5) * WarpRows + half + (localRow & 31), n = columns.N(c);
                shared[localRow * SharedRow + c] = r < gemmRows && n < p.Valid ? sums[(long)r * p.Rows + n] : 0;
            }
            if (lif && p.OutWords > 0)
                for (int thread = Group.IdxX; thread < GroupThreads; thread += Group.DimX)
                    StageRows(shared, epilogue, r0, half, thread);
            Group.Barrier();
            for (int thread = Group.IdxX; thread < GroupThreads; thread += Group.DimX)
                EpilogueRound<TFma>(shared, epilogue, p, r0, half, columns, lif, thread);
            if (!lif || p.OutWords == 0) continue;
            Group.Barrier();
            for (int thread = Group.IdxX; thread < GroupThreads; thread += Group.DimX)
                PackedRound(shared, epilogue, p, r0, half, columns, thread);
        }
    }

    /// <summary>The fallback's copy of one stage into the buffer at <paramref name="buffer"/>: every element, as the threads' cp.async would.</summary>
    private static void CopyStage(in Sources src, ArrayView<Words4> stage, SpikeGemmArgs p, int gemmRows, int r0, Columns columns, in Tap tap, int buffer,
        int layout)
    {
        for (int i = Group.IdxX; i < StageQuads; i += Group.DimX)
        {
            var e = new Element(i, p, gemmRows, r0, columns, layout);
            long at = e.Index(p, tap);
            stage[buffer + i] = at < 0 ? default : e.IsA ? src.Weights[at] : src.Packed[at];
        }
    }

    /// <summary>Σ of the 16 signed byte products of two quads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Dot16(Words4 a, Words4 b) =>
        SpikeMmaKernels.Dot4(a.X, b.X) + SpikeMmaKernels.Dot4(a.Y, b.Y) + SpikeMmaKernels.Dot4(a.Z, b.Z) + SpikeMmaKernels.Dot4(a.W, b.W);

    /// <summary>Zeroes sub-tile (0, 0)'s 32 accumulators pa0..pa31 (PTX registers only the inline PTX names).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zero00() => CudaAsm.Emit(".reg .b32 pa<32>; mov.b32 pa0, 0; mov.b32 pa1, 0; mov.b32 pa2, 0; mov.b32 pa3, 0; mov.b32 pa4, 0; mov.b32 pa5, 0; mov.b32 pa6, 0; mov.b32 pa7, 0; mov.b32 pa8, 0; mov.b32 pa9, 0; mov.b32 pa10, 0; mov.b32 pa11, 0; mov.b32 pa12, 0; mov.b32 pa13, 0; mov.b32 pa14, 0; mov.b32 pa15, 0; mov.b32 pa16, 0; mov.b32 pa17, 0; mov.b32 pa18, 0; mov.b32 pa19, 0; mov.b32 pa20, 0; mov.b32 pa21, 0; mov.b32 pa22, 0; mov.b32 pa23, 0; mov.b32 pa24, 0; mov.b32 pa25, 0; mov.b32 pa26, 0; mov.b32 pa27, 0; mov.b32 pa28, 0; mov.b32 pa29, 0; mov.b32 pa30, 0; mov.b32 pa31, 0;");

    /// <summary>Two k-steps of sub-tile (0, 0) (<see cref="SpikeMmaKernels.MmaStep"/>'s fragments and order, accumulators pa).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step00(Words4 a0, Words4 a1, Words4 a2, Words4 a3, Words4 b0, Words4 b1, Words4 b2, Words4 b3)
    {
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa0,pa1,pa2,pa3}, {%0,%1,%2,%3}, {%4,%5}, {pa0,pa1,pa2,pa3};", a0.X, a1.X, a0.Y, a1.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa4,pa5,pa6,pa7}, {%0,%1,%2,%3}, {%4,%5}, {pa4,pa5,pa6,pa7};", a0.X, a1.X, a0.Y, a1.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa8,pa9,pa10,pa11}, {%0,%1,%2,%3}, {%4,%5}, {pa8,pa9,pa10,pa11};", a0.X, a1.X, a0.Y, a1.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa12,pa13,pa14,pa15}, {%0,%1,%2,%3}, {%4,%5}, {pa12,pa13,pa14,pa15};", a0.X, a1.X, a0.Y, a1.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa16,pa17,pa18,pa19}, {%0,%1,%2,%3}, {%4,%5}, {pa16,pa17,pa18,pa19};", a2.X, a3.X, a2.Y, a3.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa20,pa21,pa22,pa23}, {%0,%1,%2,%3}, {%4,%5}, {pa20,pa21,pa22,pa23};", a2.X, a3.X, a2.Y, a3.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa24,pa25,pa26,pa27}, {%0,%1,%2,%3}, {%4,%5}, {pa24,pa25,pa26,pa27};", a2.X, a3.X, a2.Y, a3.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa28,pa29,pa30,pa31}, {%0,%1,%2,%3}, {%4,%5}, {pa28,pa29,pa30,pa31};", a2.X, a3.X, a2.Y, a3.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa0,pa1,pa2,pa3}, {%0,%1,%2,%3}, {%4,%5}, {pa0,pa1,pa2,pa3};", a0.Z, a1.Z, a0.W, a1.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa4,pa5,pa6,pa7}, {%0,%1,%2,%3}, {%4,%5}, {pa4,pa5,pa6,pa7};", a0.Z, a1.Z, a0.W, a1.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa8,pa9,pa10,pa11}, {%0,%1,%2,%3}, {%4,%5}, {pa8,pa9,pa10,pa11};", a0.Z, a1.Z, a0.W, a1.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa12,pa13,pa14,pa15}, {%0,%1,%2,%3}, {%4,%5}, {pa12,pa13,pa14,pa15};", a0.Z, a1.Z, a0.W, a1.W, b3.Z, b3.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa16,pa17,pa18,pa19}, {%0,%1,%2,%3}, {%4,%5}, {pa16,pa17,pa18,pa19};", a2.Z, a3.Z, a2.W, a3.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa20,pa21,pa22,pa23}, {%0,%1,%2,%3}, {%4,%5}, {pa20,pa21,pa22,pa23};", a2.Z, a3.Z, a2.W, a3.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa24,pa25,pa26,pa27}, {%0,%1,%2,%3}, {%4,%5}, {pa24,pa25,pa26,pa27};", a2.Z, a3.Z, a2.W, a3.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pa28,pa29,pa30,pa31}, {%0,%1,%2,%3}, {%4,%5}, {pa28,pa29,pa30,pa31};", a2.Z, a3.Z, a2.W, a3.W, b3.Z, b3.W);
    }

    /// <summary>Sub-tile (0, 0)'s accumulators into <paramref name="sink"/> (<see cref="SpikeMmaKernels.StoreAccumulators{TSink}"/>'s pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store00<TSink>(TSink sink) where TSink : struct, ITileSink
    {
        CudaAsm.Emit("mov.b32 %0, pa0;", out int s000);
        CudaAsm.Emit("mov.b32 %0, pa1;", out int s001);
        CudaAsm.Emit("mov.b32 %0, pa2;", out int s002);
        CudaAsm.Emit("mov.b32 %0, pa3;", out int s003);
        CudaAsm.Emit("mov.b32 %0, pa4;", out int s010);
        CudaAsm.Emit("mov.b32 %0, pa5;", out int s011);
        CudaAsm.Emit("mov.b32 %0, pa6;", out int s012);
        CudaAsm.Emit("mov.b32 %0, pa7;", out int s013);
        CudaAsm.Emit("mov.b32 %0, pa8;", out int s020);
        CudaAsm.Emit("mov.b32 %0, pa9;", out int s021);
        CudaAsm.Emit("mov.b32 %0, pa10;", out int s022);
        CudaAsm.Emit("mov.b32 %0, pa11;", out int s023);
        CudaAsm.Emit("mov.b32 %0, pa12;", out int s030);
        CudaAsm.Emit("mov.b32 %0, pa13;", out int s031);
        CudaAsm.Emit("mov.b32 %0, pa14;", out int s032);
        CudaAsm.Emit("mov.b32 %0, pa15;", out int s033);
        CudaAsm.Emit("mov.b32 %0, pa16;", out int s100);
        CudaAsm.Emit("mov.b32 %0, pa17;", out int s101);
        CudaAsm.Emit("mov.b32 %0, pa18;", out int s102);
        CudaAsm.Emit("mov.b32 %0, pa19;", out int s103);
        CudaAsm.Emit("mov.b32 %0, pa20;", out int s110);
        CudaAsm.Emit("mov.b32 %0, pa21;", out int s111);
        CudaAsm.Emit("mov.b32 %0, pa22;", out int s112);
        CudaAsm.Emit("mov.b32 %0, pa23;", out int s113);
        CudaAsm.Emit("mov.b32 %0, pa24;", out int s120);
        CudaAsm.Emit("mov.b32 %0, pa25;", out int s121);
        CudaAsm.Emit("mov.b32 %0, pa26;", out int s122);
        CudaAsm.Emit("mov.b32 %0, pa27;", out int s123);
        CudaAsm.Emit("mov.b32 %0, pa28;", out int s130);
        CudaAsm.Emit("mov.b32 %0, pa29;", out int s131);
        CudaAsm.Emit("mov.b32 %0, pa30;", out int s132);
        CudaAsm.Emit("mov.b32 %0, pa31;", out int s133);
        sink.Pair(0, 0, s000, s001);
        sink.Pair(1, 0, s002, s003);
        sink.Pair(0, 1, s010, s011);
        sink.Pair(1, 1, s012, s013);
        sink.Pair(0, 2, s020, s021);
        sink.Pair(1, 2, s022, s023);
        sink.Pair(0, 3, s030, s031);
        sink.Pair(1, 3, s032, s033);
        sink.Pair(2, 0, s100, s101);
        sink.Pair(3, 0, s102, s103);
        sink.Pair(2, 1, s110, s111);
        sink.Pair(3, 1, s112, s113);
        sink.Pair(2, 2, s120, s121);
        sink.Pair(3, 2, s122, s123);
        sink.Pair(2, 3, s130, s131);
        sink.Pair(3, 3, s132, s133);
    }

    /// <summary>Zeroes sub-tile (0, 1)'s 32 accumulators pb0..pb31 (PTX registers only the inline PTX names).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zero01() => CudaAsm.Emit(".reg .b32 pb<32>; mov.b32 pb0, 0; mov.b32 pb1, 0; mov.b32 pb2, 0; mov.b32 pb3, 0; mov.b32 pb4, 0; mov.b32 pb5, 0; mov.b32 pb6, 0; mov.b32 pb7, 0; mov.b32 pb8, 0; mov.b32 pb9, 0; mov.b32 pb10, 0; mov.b32 pb11, 0; mov.b32 pb12, 0; mov.b32 pb13, 0; mov.b32 pb14, 0; mov.b32 pb15, 0; mov.b32 pb16, 0; mov.b32 pb17, 0; mov.b32 pb18, 0; mov.b32 pb19, 0; mov.b32 pb20, 0; mov.b32 pb21, 0; mov.b32 pb22, 0; mov.b32 pb23, 0; mov.b32 pb24, 0; mov.b32 pb25, 0; mov.b32 pb26, 0; mov.b32 pb27, 0; mov.b32 pb28, 0; mov.b32 pb29, 0; mov.b32 pb30, 0; mov.b32 pb31, 0;");

    /// <summary>Two k-steps of sub-tile (0, 1) (<see cref="SpikeMmaKernels.MmaStep"/>'s fragments and order, accumulators pb).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step01(Words4 a0, Words4 a1, Words4 a2, Words4 a3, Words4 b0, Words4 b1, Words4 b2, Words4 b3)
    {
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb0,pb1,pb2,pb3}, {%0,%1,%2,%3}, {%4,%5}, {pb0,pb1,pb2,pb3};", a0.X, a1.X, a0.Y, a1.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb4,pb5,pb6,pb7}, {%0,%1,%2,%3}, {%4,%5}, {pb4,pb5,pb6,pb7};", a0.X, a1.X, a0.Y, a1.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb8,pb9,pb10,pb11}, {%0,%1,%2,%3}, {%4,%5}, {pb8,pb9,pb10,pb11};", a0.X, a1.X, a0.Y, a1.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb12,pb13,pb14,pb15}, {%0,%1,%2,%3}, {%4,%5}, {pb12,pb13,pb14,pb15};", a0.X, a1.X, a0.Y, a1.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb16,pb17,pb18,pb19}, {%0,%1,%2,%3}, {%4,%5}, {pb16,pb17,pb18,pb19};", a2.X, a3.X, a2.Y, a3.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb20,pb21,pb22,pb23}, {%0,%1,%2,%3}, {%4,%5}, {pb20,pb21,pb22,pb23};", a2.X, a3.X, a2.Y, a3.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb24,pb25,pb26,pb27}, {%0,%1,%2,%3}, {%4,%5}, {pb24,pb25,pb26,pb27};", a2.X, a3.X, a2.Y, a3.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb28,pb29,pb30,pb31}, {%0,%1,%2,%3}, {%4,%5}, {pb28,pb29,pb30,pb31};", a2.X, a3.X, a2.Y, a3.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb0,pb1,pb2,pb3}, {%0,%1,%2,%3}, {%4,%5}, {pb0,pb1,pb2,pb3};", a0.Z, a1.Z, a0.W, a1.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb4,pb5,pb6,pb7}, {%0,%1,%2,%3}, {%4,%5}, {pb4,pb5,pb6,pb7};", a0.Z, a1.Z, a0.W, a1.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb8,pb9,pb10,pb11}, {%0,%1,%2,%3}, {%4,%5}, {pb8,pb9,pb10,pb11};", a0.Z, a1.Z, a0.W, a1.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb12,pb13,pb14,pb15}, {%0,%1,%2,%3}, {%4,%5}, {pb12,pb13,pb14,pb15};", a0.Z, a1.Z, a0.W, a1.W, b3.Z, b3.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb16,pb17,pb18,pb19}, {%0,%1,%2,%3}, {%4,%5}, {pb16,pb17,pb18,pb19};", a2.Z, a3.Z, a2.W, a3.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb20,pb21,pb22,pb23}, {%0,%1,%2,%3}, {%4,%5}, {pb20,pb21,pb22,pb23};", a2.Z, a3.Z, a2.W, a3.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb24,pb25,pb26,pb27}, {%0,%1,%2,%3}, {%4,%5}, {pb24,pb25,pb26,pb27};", a2.Z, a3.Z, a2.W, a3.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pb28,pb29,pb30,pb31}, {%0,%1,%2,%3}, {%4,%5}, {pb28,pb29,pb30,pb31};", a2.Z, a3.Z, a2.W, a3.W, b3.Z, b3.W);
    }

    /// <summary>Sub-tile (0, 1)'s accumulators into <paramref name="sink"/> (<see cref="SpikeMmaKernels.StoreAccumulators{TSink}"/>'s pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store01<TSink>(TSink sink) where TSink : struct, ITileSink
    {
        CudaAsm.Emit("mov.b32 %0, pb0;", out int s000);
        CudaAsm.Emit("mov.b32 %0, pb1;", out int s001);
        CudaAsm.Emit("mov.b32 %0, pb2;", out int s002);
        CudaAsm.Emit("mov.b32 %0, pb3;", out int s003);
        CudaAsm.Emit("mov.b32 %0, pb4;", out int s010);
        CudaAsm.Emit("mov.b32 %0, pb5;", out int s011);
        CudaAsm.Emit("mov.b32 %0, pb6;", out int s012);
        CudaAsm.Emit("mov.b32 %0, pb7;", out int s013);
        CudaAsm.Emit("mov.b32 %0, pb8;", out int s020);
        CudaAsm.Emit("mov.b32 %0, pb9;", out int s021);
        CudaAsm.Emit("mov.b32 %0, pb10;", out int s022);
        CudaAsm.Emit("mov.b32 %0, pb11;", out int s023);
        CudaAsm.Emit("mov.b32 %0, pb12;", out int s030);
        CudaAsm.Emit("mov.b32 %0, pb13;", out int s031);
        CudaAsm.Emit("mov.b32 %0, pb14;", out int s032);
        CudaAsm.Emit("mov.b32 %0, pb15;", out int s033);
        CudaAsm.Emit("mov.b32 %0, pb16;", out int s100);
        CudaAsm.Emit("mov.b32 %0, pb17;", out int s101);
        CudaAsm.Emit("mov.b32 %0, pb18;", out int s102);
        CudaAsm.Emit("mov.b32 %0, pb19;", out int s103);
        CudaAsm.Emit("mov.b32 %0, pb20;", out int s110);
        CudaAsm.Emit("mov.b32 %0, pb21;", out int s111);
        CudaAsm.Emit("mov.b32 %0, pb22;", out int s112);
        CudaAsm.Emit("mov.b32 %0, pb23;", out int s113);
        CudaAsm.Emit("mov.b32 %0, pb24;", out int s120);
        CudaAsm.Emit("mov.b32 %0, pb25;", out int s121);
        CudaAsm.Emit("mov.b32 %0, pb26;", out int s122);
        CudaAsm.Emit("mov.b32 %0, pb27;", out int s123);
        CudaAsm.Emit("mov.b32 %0, pb28;", out int s130);
        CudaAsm.Emit("mov.b32 %0, pb29;", out int s131);
        CudaAsm.Emit("mov.b32 %0, pb30;", out int s132);
        CudaAsm.Emit("mov.b32 %0, pb31;", out int s133);
        sink.Pair(0, 0, s000, s001);
        sink.Pair(1, 0, s002, s003);
        sink.Pair(0, 1, s010, s011);
        sink.Pair(1, 1, s012, s013);
        sink.Pair(0, 2, s020, s021);
        sink.Pair(1, 2, s022, s023);
        sink.Pair(0, 3, s030, s031);
        sink.Pair(1, 3, s032, s033);
        sink.Pair(2, 0, s100, s101);
        sink.Pair(3, 0, s102, s103);
        sink.Pair(2, 1, s110, s111);
        sink.Pair(3, 1, s112, s113);
        sink.Pair(2, 2, s120, s121);
        sink.Pair(3, 2, s122, s123);
        sink.Pair(2, 3, s130, s131);
        sink.Pair(3, 3, s132, s133);
    }

    /// <summary>Zeroes sub-tile (1, 0)'s 32 accumulators pc0..pc31 (PTX registers only the inline PTX names).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zero10() => CudaAsm.Emit(".reg .b32 pc<32>; mov.b32 pc0, 0; mov.b32 pc1, 0; mov.b32 pc2, 0; mov.b32 pc3, 0; mov.b32 pc4, 0; mov.b32 pc5, 0; mov.b32 pc6, 0; mov.b32 pc7, 0; mov.b32 pc8, 0; mov.b32 pc9, 0; mov.b32 pc10, 0; mov.b32 pc11, 0; mov.b32 pc12, 0; mov.b32 pc13, 0; mov.b32 pc14, 0; mov.b32 pc15, 0; mov.b32 pc16, 0; mov.b32 pc17, 0; mov.b32 pc18, 0; mov.b32 pc19, 0; mov.b32 pc20, 0; mov.b32 pc21, 0; mov.b32 pc22, 0; mov.b32 pc23, 0; mov.b32 pc24, 0; mov.b32 pc25, 0; mov.b32 pc26, 0; mov.b32 pc27, 0; mov.b32 pc28, 0; mov.b32 pc29, 0; mov.b32 pc30, 0; mov.b32 pc31, 0;");

    /// <summary>Two k-steps of sub-tile (1, 0) (<see cref="SpikeMmaKernels.MmaStep"/>'s fragments and order, accumulators pc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step10(Words4 a0, Words4 a1, Words4 a2, Words4 a3, Words4 b0, Words4 b1, Words4 b2, Words4 b3)
    {
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc0,pc1,pc2,pc3}, {%0,%1,%2,%3}, {%4,%5}, {pc0,pc1,pc2,pc3};", a0.X, a1.X, a0.Y, a1.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc4,pc5,pc6,pc7}, {%0,%1,%2,%3}, {%4,%5}, {pc4,pc5,pc6,pc7};", a0.X, a1.X, a0.Y, a1.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc8,pc9,pc10,pc11}, {%0,%1,%2,%3}, {%4,%5}, {pc8,pc9,pc10,pc11};", a0.X, a1.X, a0.Y, a1.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc12,pc13,pc14,pc15}, {%0,%1,%2,%3}, {%4,%5}, {pc12,pc13,pc14,pc15};", a0.X, a1.X, a0.Y, a1.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc16,pc17,pc18,pc19}, {%0,%1,%2,%3}, {%4,%5}, {pc16,pc17,pc18,pc19};", a2.X, a3.X, a2.Y, a3.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc20,pc21,pc22,pc23}, {%0,%1,%2,%3}, {%4,%5}, {pc20,pc21,pc22,pc23};", a2.X, a3.X, a2.Y, a3.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc24,pc25,pc26,pc27}, {%0,%1,%2,%3}, {%4,%5}, {pc24,pc25,pc26,pc27};", a2.X, a3.X, a2.Y, a3.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc28,pc29,pc30,pc31}, {%0,%1,%2,%3}, {%4,%5}, {pc28,pc29,pc30,pc31};", a2.X, a3.X, a2.Y, a3.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc0,pc1,pc2,pc3}, {%0,%1,%2,%3}, {%4,%5}, {pc0,pc1,pc2,pc3};", a0.Z, a1.Z, a0.W, a1.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc4,pc5,pc6,pc7}, {%0,%1,%2,%3}, {%4,%5}, {pc4,pc5,pc6,pc7};", a0.Z, a1.Z, a0.W, a1.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc8,pc9,pc10,pc11}, {%0,%1,%2,%3}, {%4,%5}, {pc8,pc9,pc10,pc11};", a0.Z, a1.Z, a0.W, a1.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc12,pc13,pc14,pc15}, {%0,%1,%2,%3}, {%4,%5}, {pc12,pc13,pc14,pc15};", a0.Z, a1.Z, a0.W, a1.W, b3.Z, b3.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc16,pc17,pc18,pc19}, {%0,%1,%2,%3}, {%4,%5}, {pc16,pc17,pc18,pc19};", a2.Z, a3.Z, a2.W, a3.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc20,pc21,pc22,pc23}, {%0,%1,%2,%3}, {%4,%5}, {pc20,pc21,pc22,pc23};", a2.Z, a3.Z, a2.W, a3.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc24,pc25,pc26,pc27}, {%0,%1,%2,%3}, {%4,%5}, {pc24,pc25,pc26,pc27};", a2.Z, a3.Z, a2.W, a3.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pc28,pc29,pc30,pc31}, {%0,%1,%2,%3}, {%4,%5}, {pc28,pc29,pc30,pc31};", a2.Z, a3.Z, a2.W, a3.W, b3.Z, b3.W);
    }

    /// <summary>Sub-tile (1, 0)'s accumulators into <paramref name="sink"/> (<see cref="SpikeMmaKernels.StoreAccumulators{TSink}"/>'s pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store10<TSink>(TSink sink) where TSink : struct, ITileSink
    {
        CudaAsm.Emit("mov.b32 %0, pc0;", out int s000);
        CudaAsm.Emit("mov.b32 %0, pc1;", out int s001);
        CudaAsm.Emit("mov.b32 %0, pc2;", out int s002);
        CudaAsm.Emit("mov.b32 %0, pc3;", out int s003);
        CudaAsm.Emit("mov.b32 %0, pc4;", out int s010);
        CudaAsm.Emit("mov.b32 %0, pc5;", out int s011);
        CudaAsm.Emit("mov.b32 %0, pc6;", out int s012);
        CudaAsm.Emit("mov.b32 %0, pc7;", out int s013);
        CudaAsm.Emit("mov.b32 %0, pc8;", out int s020);
        CudaAsm.Emit("mov.b32 %0, pc9;", out int s021);
        CudaAsm.Emit("mov.b32 %0, pc10;", out int s022);
        CudaAsm.Emit("mov.b32 %0, pc11;", out int s023);
        CudaAsm.Emit("mov.b32 %0, pc12;", out int s030);
        CudaAsm.Emit("mov.b32 %0, pc13;", out int s031);
        CudaAsm.Emit("mov.b32 %0, pc14;", out int s032);
        CudaAsm.Emit("mov.b32 %0, pc15;", out int s033);
        CudaAsm.Emit("mov.b32 %0, pc16;", out int s100);
        CudaAsm.Emit("mov.b32 %0, pc17;", out int s101);
        CudaAsm.Emit("mov.b32 %0, pc18;", out int s102);
        CudaAsm.Emit("mov.b32 %0, pc19;", out int s103);
        CudaAsm.Emit("mov.b32 %0, pc20;", out int s110);
        CudaAsm.Emit("mov.b32 %0, pc21;", out int s111);
        CudaAsm.Emit("mov.b32 %0, pc22;", out int s112);
        CudaAsm.Emit("mov.b32 %0, pc23;", out int s113);
        CudaAsm.Emit("mov.b32 %0, pc24;", out int s120);
        CudaAsm.Emit("mov.b32 %0, pc25;", out int s121);
        CudaAsm.Emit("mov.b32 %0, pc26;", out int s122);
        CudaAsm.Emit("mov.b32 %0, pc27;", out int s123);
        CudaAsm.Emit("mov.b32 %0, pc28;", out int s130);
        CudaAsm.Emit("mov.b32 %0, pc29;", out int s131);
        CudaAsm.Emit("mov.b32 %0, pc30;", out int s132);
        CudaAsm.Emit("mov.b32 %0, pc31;", out int s133);
        sink.Pair(0, 0, s000, s001);
        sink.Pair(1, 0, s002, s003);
        sink.Pair(0, 1, s010, s011);
        sink.Pair(1, 1, s012, s013);
        sink.Pair(0, 2, s020, s021);
        sink.Pair(1, 2, s022, s023);
        sink.Pair(0, 3, s030, s031);
        sink.Pair(1, 3, s032, s033);
        sink.Pair(2, 0, s100, s101);
        sink.Pair(3, 0, s102, s103);
        sink.Pair(2, 1, s110, s111);
        sink.Pair(3, 1, s112, s113);
        sink.Pair(2, 2, s120, s121);
        sink.Pair(3, 2, s122, s123);
        sink.Pair(2, 3, s130, s131);
        sink.Pair(3, 3, s132, s133);
    }

    /// <summary>Zeroes sub-tile (1, 1)'s 32 accumulators pd0..pd31 (PTX registers only the inline PTX names).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Zero11() => CudaAsm.Emit(".reg .b32 pd<32>; mov.b32 pd0, 0; mov.b32 pd1, 0; mov.b32 pd2, 0; mov.b32 pd3, 0; mov.b32 pd4, 0; mov.b32 pd5, 0; mov.b32 pd6, 0; mov.b32 pd7, 0; mov.b32 pd8, 0; mov.b32 pd9, 0; mov.b32 pd10, 0; mov.b32 pd11, 0; mov.b32 pd12, 0; mov.b32 pd13, 0; mov.b32 pd14, 0; mov.b32 pd15, 0; mov.b32 pd16, 0; mov.b32 pd17, 0; mov.b32 pd18, 0; mov.b32 pd19, 0; mov.b32 pd20, 0; mov.b32 pd21, 0; mov.b32 pd22, 0; mov.b32 pd23, 0; mov.b32 pd24, 0; mov.b32 pd25, 0; mov.b32 pd26, 0; mov.b32 pd27, 0; mov.b32 pd28, 0; mov.b32 pd29, 0; mov.b32 pd30, 0; mov.b32 pd31, 0;");

    /// <summary>Two k-steps of sub-tile (1, 1) (<see cref="SpikeMmaKernels.MmaStep"/>'s fragments and order, accumulators pd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step11(Words4 a0, Words4 a1, Words4 a2, Words4 a3, Words4 b0, Words4 b1, Words4 b2, Words4 b3)
    {
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd0,pd1,pd2,pd3}, {%0,%1,%2,%3}, {%4,%5}, {pd0,pd1,pd2,pd3};", a0.X, a1.X, a0.Y, a1.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd4,pd5,pd6,pd7}, {%0,%1,%2,%3}, {%4,%5}, {pd4,pd5,pd6,pd7};", a0.X, a1.X, a0.Y, a1.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd8,pd9,pd10,pd11}, {%0,%1,%2,%3}, {%4,%5}, {pd8,pd9,pd10,pd11};", a0.X, a1.X, a0.Y, a1.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd12,pd13,pd14,pd15}, {%0,%1,%2,%3}, {%4,%5}, {pd12,pd13,pd14,pd15};", a0.X, a1.X, a0.Y, a1.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd16,pd17,pd18,pd19}, {%0,%1,%2,%3}, {%4,%5}, {pd16,pd17,pd18,pd19};", a2.X, a3.X, a2.Y, a3.Y, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd20,pd21,pd22,pd23}, {%0,%1,%2,%3}, {%4,%5}, {pd20,pd21,pd22,pd23};", a2.X, a3.X, a2.Y, a3.Y, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd24,pd25,pd26,pd27}, {%0,%1,%2,%3}, {%4,%5}, {pd24,pd25,pd26,pd27};", a2.X, a3.X, a2.Y, a3.Y, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd28,pd29,pd30,pd31}, {%0,%1,%2,%3}, {%4,%5}, {pd28,pd29,pd30,pd31};", a2.X, a3.X, a2.Y, a3.Y, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd0,pd1,pd2,pd3}, {%0,%1,%2,%3}, {%4,%5}, {pd0,pd1,pd2,pd3};", a0.Z, a1.Z, a0.W, a1.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd4,pd5,pd6,pd7}, {%0,%1,%2,%3}, {%4,%5}, {pd4,pd5,pd6,pd7};", a0.Z, a1.Z, a0.W, a1.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd8,pd9,pd10,pd11}, {%0,%1,%2,%3}, {%4,%5}, {pd8,pd9,pd10,pd11};", a0.Z, a1.Z, a0.W, a1.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd12,pd13,pd14,pd15}, {%0,%1,%2,%3}, {%4,%5}, {pd12,pd13,pd14,pd15};", a0.Z, a1.Z, a0.W, a1.W, b3.Z, b3.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd16,pd17,pd18,pd19}, {%0,%1,%2,%3}, {%4,%5}, {pd16,pd17,pd18,pd19};", a2.Z, a3.Z, a2.W, a3.W, b0.Z, b0.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd20,pd21,pd22,pd23}, {%0,%1,%2,%3}, {%4,%5}, {pd20,pd21,pd22,pd23};", a2.Z, a3.Z, a2.W, a3.W, b1.Z, b1.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd24,pd25,pd26,pd27}, {%0,%1,%2,%3}, {%4,%5}, {pd24,pd25,pd26,pd27};", a2.Z, a3.Z, a2.W, a3.W, b2.Z, b2.W);
        CudaAsm.Emit("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {pd28,pd29,pd30,pd31}, {%0,%1,%2,%3}, {%4,%5}, {pd28,pd29,pd30,pd31};", a2.Z, a3.Z, a2.W, a3.W, b3.Z, b3.W);
    }

    /// <summary>Sub-tile (1, 1)'s accumulators into <paramref name="sink"/> (<see cref="SpikeMmaKernels.StoreAccumulators{TSink}"/>'s pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store11<TSink>(TSink sink) where TSink : struct, ITileSink
    {
        CudaAsm.Emit("mov.b32 %0, pd0;", out int s000);
        CudaAsm.Emit("mov.b32 %0, pd1;", out int s001);
        CudaAsm.Emit("mov.b32 %0, pd2;", out int s002);
        CudaAsm.Emit("mov.b32 %0, pd3;", out int s003);
        CudaAsm.Emit("mov.b32 %0, pd4;", out int s010);
        CudaAsm.Emit("mov.b32 %0, pd5;", out int s011);
        CudaAsm.Emit("mov.b32 %0, pd6;", out int s012);
        CudaAsm.Emit("mov.b32 %0, pd7;", out int s013);
        CudaAsm.Emit("mov.b32 %0, pd8;", out int s020);
        CudaAsm.Emit("mov.b32 %0, pd9;", out int s021);
        CudaAsm.Emit("mov.b32 %0, pd10;", out int s022);
        CudaAsm.Emit("mov.b32 %0, pd11;", out int s023);
        CudaAsm.Emit("mov.b32 %0, pd12;", out int s030);
        CudaAsm.Emit("mov.b32 %0, pd13;", out int s031);
        CudaAsm.Emit("mov.b32 %0, pd14;", out int s032);
        CudaAsm.Emit("mov.b32 %0, pd15;", out int s033);
        CudaAsm.Emit("mov.b32 %0, pd16;", out int s100);
        CudaAsm.Emit("mov.b32 %0, pd17;", out int s101);
        CudaAsm.Emit("mov.b32 %0, pd18;", out int s102);
        CudaAsm.Emit("mov.b32 %0, pd19;", out int s103);
        CudaAsm.Emit("mov.b32 %0, pd20;", out int s110);
        CudaAsm.Emit("mov.b32 %0, pd21;", out int s111);
        CudaAsm.Emit("mov.b32 %0, pd22;", out int s112);
        CudaAsm.Emit("mov.b32 %0, pd23;", out int s113);
        CudaAsm.Emit("mov.b32 %0, pd24;", out int s120);
        CudaAsm.Emit("mov.b32 %0, pd25;", out int s121);
        CudaAsm.Emit("mov.b32 %0, pd26;", out int s122);
        CudaAsm.Emit("mov.b32 %0, pd27;", out int s123);
        CudaAsm.Emit("mov.b32 %0, pd28;", out int s130);
        CudaAsm.Emit("mov.b32 %0, pd29;", out int s131);
        CudaAsm.Emit("mov.b32 %0, pd30;", out int s132);
        CudaAsm.Emit("mov.b32 %0, pd31;", out int s133);
        sink.Pair(0, 0, s000, s001);
        sink.Pair(1, 0, s002, s003);
        sink.Pair(0, 1, s010, s011);
        sink.Pair(1, 1, s012, s013);
        sink.Pair(0, 2, s020, s021);
        sink.Pair(1, 2, s022, s023);
        sink.Pair(0, 3, s030, s031);
        sink.Pair(1, 3, s032, s033);
        sink.Pair(2, 0, s100, s101);
        sink.Pair(3, 0, s102, s103);
        sink.Pair(2, 1, s110, s111);
        sink.Pair(3, 1, s112, s113);
        sink.Pair(2, 2, s120, s121);
        sink.Pair(3, 2, s122, s123);
        sink.Pair(2, 3, s130, s131);
        sink.Pair(3, 3, s132, s133);
    }
}
