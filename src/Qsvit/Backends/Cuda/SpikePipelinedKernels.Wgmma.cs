using System.Diagnostics;
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// The pipelined implicit GEMM on Hopper's warpgroup tensor-core instruction (issue 13): the same block tiles of
/// <see cref="BlockRows"/> × <see cref="BlockPixels"/>, stage elements, cp.async copies and epilogues as the mma.sync kernel,
/// but the four warps, one warpgroup, multiply each stage with <c>wgmma.mma_async.m64n128k32.s32.s8.s8</c> straight from
/// shared memory (two per k-step, one per 64-row half; the upper half skipped where the block has no rows there): no
/// fragment loads, and 128 accumulators a thread that the tensor cores write while the threads go on. The stages use PTX's
/// 64-byte swizzle (<see cref="Swizzle64Layout"/>) in a deeper ring of dynamic shared memory (<see cref="WgmmaDepth"/>).
/// mma.sync (<see cref="MmaBlock{TFma}"/>) issued ~16 instructions per mma and reached about half of cuBLAS's GEMM rate on
/// the wide layers; cuBLAS's own kernels are wgmma ones. Exact as before: int8 × int8 products summed in int32. Needs
/// sm_90a (<see cref="Sm90aKernels"/>); on ILGPU's CPU accelerator the kernel is the pipelined one's scalar fallback on
/// this layout.
/// </summary>
internal static partial class SpikePipelinedKernels
{
    /// <summary>
    /// The constant bits of a stage operand's shared-memory descriptor (<see cref="Swizzle64Layout"/>): swizzle mode 64
    /// bytes (2 in bits 62–63), the leading-dimension byte offset unused under a swizzle (1), the stride-dimension one 8
    /// lines of 64 bytes (512, in 16 bytes, bits 32–45). The start address (bits 0–13, in 16 bytes) is added per operand.
    /// Unswizzled core matrices (the plain K-major layout) ran the same kernel 1.2–2.0x slower per layer on an H200: ncu
    /// counted 73 % of its shared-memory wavefronts as excess.
    /// </summary>
    public const long WgmmaDescriptorBits = (2L << 62) | (1L << 16) | ((512L >> 4) << 32);

    /// <summary>
    /// <see cref="Conv{TFma}"/> with the stages multiplied by <c>wgmma</c>: the same arguments and results, bit for bit
    /// (launched with <see cref="WgmmaSharedBytes"/> of dynamic shared memory).
    /// </summary>
    public static void ConvWgmma<TFma>(ArrayView<int> packed, ArrayView<int> weights, ArrayView<int> sums, ArrayView<float> output, ArrayView<float> scales,
        ArrayView<float> bias, ArrayView<float> bn, SpikeGemmArgs p, int gemmRows, int fused, long packedAddress, long weightAddress)
        where TFma : struct, IFma
    {
        if (fused == SpikesOut) Debug.Assert(p.Parts == 1 && StepsFit(p.Timesteps) && gemmRows == p.M);
        // WgmmaDepth stages (64 KB): dynamic shared memory, the launch asks for WgmmaSharedBytes (the fallback uses Depth of them).
        var stage = SharedMemory.GetDynamic<Words4>();
        int rowTiles = (gemmRows + BlockRows - 1) / BlockRows, pixelTile = Grid.IdxX / rowTiles;
        int r0 = (Grid.IdxX - pixelTile * rowTiles) * BlockRows;
        var columns = new Columns(p, pixelTile, fused == SpikesOut);
        var epilogue = new SpikeTiledKernels.Epilogue(output, scales, bias, bn, p, fused == OutputsOut);
        var src = new Sources(packed.Cast<Words4>(), weights.Cast<Words4>(), packedAddress, weightAddress);
        if (CudaAsm.IsSupported) WgmmaBlock<TFma>(src, sums, epilogue, stage, p, gemmRows, r0, columns, fused == SpikesOut);
        else ScalarBlock<TFma>(src, sums, epilogue, stage, p, gemmRows, r0, columns, fused == SpikesOut, Swizzle64Layout);
    }

    /// <summary>
    /// Stages in the wgmma kernel's ring: 4 × 16 KB of dynamic shared memory, so <see cref="WgmmaBlocksPerMultiprocessor"/>
    /// blocks fit a multiprocessor's 228 KB. Five stages fitted two: the kernels are latency-bound at a few warps a scheduler
    /// (ncu: an instruction issued every 2.6 cycles), and three blocks of four stages ran the 55M 3.2 % faster than two of
    /// five (949 against 920 images/s, one H200, BENCHMARKS.md, thirteenth session); four stages at two blocks ran as five.
    /// </summary>
    public const int WgmmaDepth = 4;

    /// <summary>The wgmma kernel's launch bounds: three blocks a multiprocessor, which holds its registers to 168 a thread (172 unbounded).</summary>
    public const int WgmmaBlocksPerMultiprocessor = 3;

    /// <summary>Dynamic shared memory of a wgmma launch: the ring (the epilogue's shared sums reuse it) and 512 bytes to align it for the swizzle.</summary>
    public const int WgmmaSharedBytes = WgmmaDepth * StageQuads * 16 + 512;

    /// <summary>
    /// The warpgroup body: a ring of <see cref="WgmmaDepth"/> stages, stage s + Depth − 2 copied while stage s is multiplied
    /// and the multiplication of stage s − 1 may still run. Per stage: this thread's copies of stage s landed
    /// (<c>cp.async.wait_group</c>), made visible to the tensor cores' async proxy (<c>fence.proxy.async</c>), stage s − 2's
    /// wgmma complete (<c>wgmma.wait_group 1</c>: only the latest group, s − 1, may pend), one barrier; then the copies of
    /// stage s + Depth − 2 into the buffer stage s − 2 used, and the four wgmma of stage s, queued behind s − 1's.
    /// Warp w's accumulators are rows 16w + group (+ 8) of each 64-row half, columns 8j + 2t (+ 1).
    /// </summary>
    private static void WgmmaBlock<TFma>(in Sources src, ArrayView<int> sums, SpikeTiledKernels.Epilogue epilogue, ArrayView<Words4> stage,
        SpikeGemmArgs p, int gemmRows, int r0, Columns columns, bool lif) where TFma : struct, IFma
    {
        const int ahead = WgmmaDepth - 2, last = (WgmmaDepth - 1) * StageQuads;
        int tid = Group.IdxX, warp = tid >> 5, group = (tid & 31) >> 2, t = tid & 3;
        // The ring's shared-window address: ILGPU names a kernel's dynamic shared memory __dyn_shared_alloca in its PTX (an
        // asm output goes through local memory, so it is read once into a register), aligned up to 512 bytes: the swizzle
        // pattern follows address bits 4–8.
        CudaAsm.Emit("mov.u32 %0, __dyn_shared_alloca;", out int dynamicBase);
        int sharedBase = (dynamicBase + 511) & ~511;
        stage = stage.SubView((sharedBase - dynamicBase) / 16);
        var copies = new StageCopies(tid, p, gemmRows, r0, columns, Swizzle64Layout);
        long weightAddress = src.WeightAddress, packedAddress = src.PackedAddress;
        int stages = Stages(p);
        var tap = default(Tap);
        copies.IssuePrologue(sharedBase, tid, weightAddress, packedAddress, p, stages, ahead, ref tap);
        ZeroWgmma();
        bool upper = r0 + 64 < gemmRows;
        int read = 0, write = ahead * StageQuads;
        for (int s = 0; s < stages; s++)
        {
            // ahead − 1 = 1 younger copy group may pend (one is committed per stage, empty past the last); PTX wants the literal.
            CudaAsm.Emit("cp.async.wait_group 1;");
            CudaAsm.Emit("fence.proxy.async.shared::cta;");
            CudaAsm.Emit("wgmma.wait_group.sync.aligned 1;");
            Group.Barrier();
            if (s + ahead < stages) copies.IssueAndAdvance(sharedBase + 16 * (write + tid), weightAddress, packedAddress, p, ref tap);
            CudaAsm.Emit("cp.async.commit_group;");
            // A's half h starts 4,096 bytes (64 lines) into the stage, B 8,192 bytes; k-step 1 starts 32 bytes into the lines
            // (the tensor cores apply the swizzle to the addresses they form).
            int at = sharedBase + 16 * read;
            long a0 = Descriptor(at), b0 = Descriptor(at + 8192), a1 = Descriptor(at + 32), b1 = Descriptor(at + 8224);
            if (upper) MultiplyStage(a0, b0, a1, b1, Descriptor(at + 4096), Descriptor(at + 4128), stages);
            else MultiplyStageLower(a0, b0, a1, b1, stages);
            read = read == last ? 0 : read + StageQuads;
            write = write == last ? 0 : write + StageQuads;
        }
        CudaAsm.Emit("wgmma.wait_group.sync.aligned 0;");
        CudaAsm.Emit("cp.async.wait_group 0;");
        // MmaBlock's two rounds through the ring: local rows 0..63 of a round are block rows (row / 32)·64 + half + row mod 32,
        // so round 0 takes warps 0 and 1 (rows 0..31 of each half), round 1 warps 2 and 3; then the fused epilogue, or the
        // sums written pixels fastest across the threads.
        var shared = stage.Cast<int>();
        int localRow = 16 * (warp & 1) + group;
        int lower = sharedBase + 4 * (localRow * SharedRow + 2 * t), upperAt = lower + 4 * 32 * SharedRow;
        for (int half = 0; half < 64; half += 32)
        {
            Group.Barrier();
            if ((warp >> 1) == half >> 5)
            {
                SharedStoreLower(lower);
                SharedStoreUpper(upperAt);
            }
            if (lif && p.OutWords > 0) StageRows(shared, epilogue, r0, half, tid);
            Group.Barrier();
            if (lif || epilogue.Fused) EpilogueRound<TFma>(shared, epilogue, p, r0, half, columns, lif, tid);
            else SumsRound(shared, sums, p, gemmRows, r0, half, columns.N0 + tid);
            if (lif && p.OutWords > 0)
            {
                Group.Barrier();
                PackedRound(shared, epilogue, p, r0, half, columns, tid);
            }
        }
    }

    /// <summary>
    /// A round of block sums to memory (<see cref="SumsSink"/>'s places, sums[r, n] for rows below <paramref name="gemmRows"/>
    /// and columns below p.Rows): this thread's column <paramref name="n"/> down the round's 64 local rows.
    /// </summary>
    private static void SumsRound(ArrayView<int> shared, ArrayView<int> sums, SpikeGemmArgs p, int gemmRows, int r0, int half, int n)
    {
        if (n >= p.Rows) return;
        int c = n % BlockPixels;
        for (int localRow = 0; localRow < 64; localRow++)
        {
            int r = r0 + (localRow >> 5) * WarpRows + half + (localRow & 31);
            if (r < gemmRows) sums[(long)r * p.Rows + n] = shared[localRow * SharedRow + c];
        }
    }

    /// <summary>A K-major operand's shared-memory descriptor: the start address in 16 bytes (bits 0–13) and <see cref="WgmmaDescriptorBits"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long Descriptor(int sharedAddress) => WgmmaDescriptorBits | (long)((sharedAddress & 0x3FFFF) >> 4);

    /// <summary>Declares and zeroes the two halves' accumulators wa0..wa63 and wb0..wb63 (PTX registers only the inline PTX names).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ZeroWgmma() => CudaAsm.Emit(".reg .b32 wa<64>; .reg .b32 wb<64>; mov.b32 wa0, 0; mov.b32 wa1, 0; mov.b32 wa2, 0; mov.b32 wa3, 0; mov.b32 wa4, 0; mov.b32 wa5, 0; mov.b32 wa6, 0; mov.b32 wa7, 0; mov.b32 wa8, 0; mov.b32 wa9, 0; mov.b32 wa10, 0; mov.b32 wa11, 0; mov.b32 wa12, 0; mov.b32 wa13, 0; mov.b32 wa14, 0; mov.b32 wa15, 0; mov.b32 wa16, 0; mov.b32 wa17, 0; mov.b32 wa18, 0; mov.b32 wa19, 0; mov.b32 wa20, 0; mov.b32 wa21, 0; mov.b32 wa22, 0; mov.b32 wa23, 0; mov.b32 wa24, 0; mov.b32 wa25, 0; mov.b32 wa26, 0; mov.b32 wa27, 0; mov.b32 wa28, 0; mov.b32 wa29, 0; mov.b32 wa30, 0; mov.b32 wa31, 0; mov.b32 wa32, 0; mov.b32 wa33, 0; mov.b32 wa34, 0; mov.b32 wa35, 0; mov.b32 wa36, 0; mov.b32 wa37, 0; mov.b32 wa38, 0; mov.b32 wa39, 0; mov.b32 wa40, 0; mov.b32 wa41, 0; mov.b32 wa42, 0; mov.b32 wa43, 0; mov.b32 wa44, 0; mov.b32 wa45, 0; mov.b32 wa46, 0; mov.b32 wa47, 0; mov.b32 wa48, 0; mov.b32 wa49, 0; mov.b32 wa50, 0; mov.b32 wa51, 0; mov.b32 wa52, 0; mov.b32 wa53, 0; mov.b32 wa54, 0; mov.b32 wa55, 0; mov.b32 wa56, 0; mov.b32 wa57, 0; mov.b32 wa58, 0; mov.b32 wa59, 0; mov.b32 wa60, 0; mov.b32 wa61, 0; mov.b32 wa62, 0; mov.b32 wa63, 0; mov.b32 wb0, 0; mov.b32 wb1, 0; mov.b32 wb2, 0; mov.b32 wb3, 0; mov.b32 wb4, 0; mov.b32 wb5, 0; mov.b32 wb6, 0; mov.b32 wb7, 0; mov.b32 wb8, 0; mov.b32 wb9, 0; mov.b32 wb10, 0; mov.b32 wb11, 0; mov.b32 wb12, 0; mov.b32 wb13, 0; mov.b32 wb14, 0; mov.b32 wb15, 0; mov.b32 wb16, 0; mov.b32 wb17, 0; mov.b32 wb18, 0; mov.b32 wb19, 0; mov.b32 wb20, 0; mov.b32 wb21, 0; mov.b32 wb22, 0; mov.b32 wb23, 0; mov.b32 wb24, 0; mov.b32 wb25, 0; mov.b32 wb26, 0; mov.b32 wb27, 0; mov.b32 wb28, 0; mov.b32 wb29, 0; mov.b32 wb30, 0; mov.b32 wb31, 0; mov.b32 wb32, 0; mov.b32 wb33, 0; mov.b32 wb34, 0; mov.b32 wb35, 0; mov.b32 wb36, 0; mov.b32 wb37, 0; mov.b32 wb38, 0; mov.b32 wb39, 0; mov.b32 wb40, 0; mov.b32 wb41, 0; mov.b32 wb42, 0; mov.b32 wb43, 0; mov.b32 wb44, 0; mov.b32 wb45, 0; mov.b32 wb46, 0; mov.b32 wb47, 0; mov.b32 wb48, 0; mov.b32 wb49, 0; mov.b32 wb50, 0; mov.b32 wb51, 0; mov.b32 wb52, 0; mov.b32 wb53, 0; mov.b32 wb54, 0; mov.b32 wb55, 0; mov.b32 wb56, 0; mov.b32 wb57, 0; mov.b32 wb58, 0; mov.b32 wb59, 0; mov.b32 wb60, 0; mov.b32 wb61, 0; mov.b32 wb62, 0; mov.b32 wb63, 0;");

    /// <summary>
    /// A stage's four wgmma as one inline block: the accumulate predicate set first (scale-d = 1 from
    /// <paramref name="nonzero"/>, any nonzero value in a register: ILGPU passes a literal as an immediate, which setp does
    /// not take first), then <c>wgmma.fence</c>, k-step 0 of both row halves (A descriptors <paramref name="a0"/> and
    /// <paramref name="upper0"/>, B <paramref name="b0"/>), k-step 1 (<paramref name="a1"/>, <paramref name="upper1"/>,
    /// <paramref name="b1"/>) and the commit, with nothing between them: an instruction that defines a register the
    /// tensor cores read after the fence makes ptxas insert a <c>warpgroup.arrive</c> before each wgmma (measured).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MultiplyStage(long a0, long b0, long a1, long b1, long upper0, long upper1, int nonzero) =>
        CudaAsm.Emit("{ .reg .pred p; setp.ne.b32 p, %6, 0; wgmma.fence.sync.aligned; " +
            "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {wa0, wa1, wa2, wa3, wa4, wa5, wa6, wa7, wa8, wa9, wa10, wa11, wa12, wa13, wa14, wa15, wa16, wa17, wa18, wa19, wa20, wa21, wa22, wa23, wa24, wa25, wa26, wa27, wa28, wa29, wa30, wa31, wa32, wa33, wa34, wa35, wa36, wa37, wa38, wa39, wa40, wa41, wa42, wa43, wa44, wa45, wa46, wa47, wa48, wa49, wa50, wa51, wa52, wa53, wa54, wa55, wa56, wa57, wa58, wa59, wa60, wa61, wa62, wa63}, %0, %1, p; " +
            "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {wb0, wb1, wb2, wb3, wb4, wb5, wb6, wb7, wb8, wb9, wb10, wb11, wb12, wb13, wb14, wb15, wb16, wb17, wb18, wb19, wb20, wb21, wb22, wb23, wb24, wb25, wb26, wb27, wb28, wb29, wb30, wb31, wb32, wb33, wb34, wb35, wb36, wb37, wb38, wb39, wb40, wb41, wb42, wb43, wb44, wb45, wb46, wb47, wb48, wb49, wb50, wb51, wb52, wb53, wb54, wb55, wb56, wb57, wb58, wb59, wb60, wb61, wb62, wb63}, %4, %1, p; " +
            "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {wa0, wa1, wa2, wa3, wa4, wa5, wa6, wa7, wa8, wa9, wa10, wa11, wa12, wa13, wa14, wa15, wa16, wa17, wa18, wa19, wa20, wa21, wa22, wa23, wa24, wa25, wa26, wa27, wa28, wa29, wa30, wa31, wa32, wa33, wa34, wa35, wa36, wa37, wa38, wa39, wa40, wa41, wa42, wa43, wa44, wa45, wa46, wa47, wa48, wa49, wa50, wa51, wa52, wa53, wa54, wa55, wa56, wa57, wa58, wa59, wa60, wa61, wa62, wa63}, %2, %3, p; " +
            "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {wb0, wb1, wb2, wb3, wb4, wb5, wb6, wb7, wb8, wb9, wb10, wb11, wb12, wb13, wb14, wb15, wb16, wb17, wb18, wb19, wb20, wb21, wb22, wb23, wb24, wb25, wb26, wb27, wb28, wb29, wb30, wb31, wb32, wb33, wb34, wb35, wb36, wb37, wb38, wb39, wb40, wb41, wb42, wb43, wb44, wb45, wb46, wb47, wb48, wb49, wb50, wb51, wb52, wb53, wb54, wb55, wb56, wb57, wb58, wb59, wb60, wb61, wb62, wb63}, %5, %3, p; " +
            "wgmma.commit_group.sync.aligned; }", a0, b0, a1, b1, upper0, upper1, nonzero);

    /// <summary><see cref="MultiplyStage"/> for a block without rows past 64: the lower half's two wgmma.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MultiplyStageLower(long a0, long b0, long a1, long b1, int nonzero) =>
        CudaAsm.Emit("{ .reg .pred p; setp.ne.b32 p, %4, 0; wgmma.fence.sync.aligned; " +
            "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {wa0, wa1, wa2, wa3, wa4, wa5, wa6, wa7, wa8, wa9, wa10, wa11, wa12, wa13, wa14, wa15, wa16, wa17, wa18, wa19, wa20, wa21, wa22, wa23, wa24, wa25, wa26, wa27, wa28, wa29, wa30, wa31, wa32, wa33, wa34, wa35, wa36, wa37, wa38, wa39, wa40, wa41, wa42, wa43, wa44, wa45, wa46, wa47, wa48, wa49, wa50, wa51, wa52, wa53, wa54, wa55, wa56, wa57, wa58, wa59, wa60, wa61, wa62, wa63}, %0, %1, p; " +
            "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 {wa0, wa1, wa2, wa3, wa4, wa5, wa6, wa7, wa8, wa9, wa10, wa11, wa12, wa13, wa14, wa15, wa16, wa17, wa18, wa19, wa20, wa21, wa22, wa23, wa24, wa25, wa26, wa27, wa28, wa29, wa30, wa31, wa32, wa33, wa34, wa35, wa36, wa37, wa38, wa39, wa40, wa41, wa42, wa43, wa44, wa45, wa46, wa47, wa48, wa49, wa50, wa51, wa52, wa53, wa54, wa55, wa56, wa57, wa58, wa59, wa60, wa61, wa62, wa63}, %2, %3, p; " +
            "wgmma.commit_group.sync.aligned; }", a0, b0, a1, b1, nonzero);

    /// <summary>
    /// Row half 0's accumulators into the epilogue's shared sums at shared address <paramref name="address"/> (this lane's
    /// local row group, column 2t): rows + 8 are 4224 bytes on (<see cref="SharedRow"/> words a row), n8 tiles 32 bytes.
    /// One inline block of stores from the named registers: passed as outputs they would go through local memory.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SharedStoreLower(int address) => CudaAsm.Emit("st.shared.v2.b32 [%0+0], {wa0, wa1}; st.shared.v2.b32 [%0+4224], {wa2, wa3}; st.shared.v2.b32 [%0+32], {wa4, wa5}; st.shared.v2.b32 [%0+4256], {wa6, wa7}; st.shared.v2.b32 [%0+64], {wa8, wa9}; st.shared.v2.b32 [%0+4288], {wa10, wa11}; st.shared.v2.b32 [%0+96], {wa12, wa13}; st.shared.v2.b32 [%0+4320], {wa14, wa15}; st.shared.v2.b32 [%0+128], {wa16, wa17}; st.shared.v2.b32 [%0+4352], {wa18, wa19}; st.shared.v2.b32 [%0+160], {wa20, wa21}; st.shared.v2.b32 [%0+4384], {wa22, wa23}; st.shared.v2.b32 [%0+192], {wa24, wa25}; st.shared.v2.b32 [%0+4416], {wa26, wa27}; st.shared.v2.b32 [%0+224], {wa28, wa29}; st.shared.v2.b32 [%0+4448], {wa30, wa31}; st.shared.v2.b32 [%0+256], {wa32, wa33}; st.shared.v2.b32 [%0+4480], {wa34, wa35}; st.shared.v2.b32 [%0+288], {wa36, wa37}; st.shared.v2.b32 [%0+4512], {wa38, wa39}; st.shared.v2.b32 [%0+320], {wa40, wa41}; st.shared.v2.b32 [%0+4544], {wa42, wa43}; st.shared.v2.b32 [%0+352], {wa44, wa45}; st.shared.v2.b32 [%0+4576], {wa46, wa47}; st.shared.v2.b32 [%0+384], {wa48, wa49}; st.shared.v2.b32 [%0+4608], {wa50, wa51}; st.shared.v2.b32 [%0+416], {wa52, wa53}; st.shared.v2.b32 [%0+4640], {wa54, wa55}; st.shared.v2.b32 [%0+448], {wa56, wa57}; st.shared.v2.b32 [%0+4672], {wa58, wa59}; st.shared.v2.b32 [%0+480], {wa60, wa61}; st.shared.v2.b32 [%0+4704], {wa62, wa63};", address);

    /// <summary>Row half 1's accumulators as <see cref="SharedStoreLower"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SharedStoreUpper(int address) => CudaAsm.Emit("st.shared.v2.b32 [%0+0], {wb0, wb1}; st.shared.v2.b32 [%0+4224], {wb2, wb3}; st.shared.v2.b32 [%0+32], {wb4, wb5}; st.shared.v2.b32 [%0+4256], {wb6, wb7}; st.shared.v2.b32 [%0+64], {wb8, wb9}; st.shared.v2.b32 [%0+4288], {wb10, wb11}; st.shared.v2.b32 [%0+96], {wb12, wb13}; st.shared.v2.b32 [%0+4320], {wb14, wb15}; st.shared.v2.b32 [%0+128], {wb16, wb17}; st.shared.v2.b32 [%0+4352], {wb18, wb19}; st.shared.v2.b32 [%0+160], {wb20, wb21}; st.shared.v2.b32 [%0+4384], {wb22, wb23}; st.shared.v2.b32 [%0+192], {wb24, wb25}; st.shared.v2.b32 [%0+4416], {wb26, wb27}; st.shared.v2.b32 [%0+224], {wb28, wb29}; st.shared.v2.b32 [%0+4448], {wb30, wb31}; st.shared.v2.b32 [%0+256], {wb32, wb33}; st.shared.v2.b32 [%0+4480], {wb34, wb35}; st.shared.v2.b32 [%0+288], {wb36, wb37}; st.shared.v2.b32 [%0+4512], {wb38, wb39}; st.shared.v2.b32 [%0+320], {wb40, wb41}; st.shared.v2.b32 [%0+4544], {wb42, wb43}; st.shared.v2.b32 [%0+352], {wb44, wb45}; st.shared.v2.b32 [%0+4576], {wb46, wb47}; st.shared.v2.b32 [%0+384], {wb48, wb49}; st.shared.v2.b32 [%0+4608], {wb50, wb51}; st.shared.v2.b32 [%0+416], {wb52, wb53}; st.shared.v2.b32 [%0+4640], {wb54, wb55}; st.shared.v2.b32 [%0+448], {wb56, wb57}; st.shared.v2.b32 [%0+4672], {wb58, wb59}; st.shared.v2.b32 [%0+480], {wb60, wb61}; st.shared.v2.b32 [%0+4704], {wb62, wb63};", address);
}
