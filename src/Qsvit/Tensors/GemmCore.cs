using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>
/// One GEMM problem as seen by the blocked driver: C[M,N] (+)= A·B with A already packed into MR-row panels and B read
/// through a row-offset table (row p of B starts at <see cref="B"/> + <see cref="BOffs"/>[p]; columns are contiguous),
/// either in place or, when <see cref="PackB"/> is set, copied block by block into contiguous NR-wide panels first;
/// a transposed plain matrix (<see cref="TransB"/>) is always packed.
/// </summary>
internal unsafe struct GemmProblem
{
    public int M, N, K;
    /// <summary>Packed A: panel i (rows i·MR..) is K×MR floats, k-major, at A + i·K·MR; rows past M are zero.</summary>
    public float* A;
    /// <summary>Column 0 of B: row p at B + BOffs[p] (in place, or the source of packing); with TransB, B is stored [N, Ldb].</summary>
    public float* B;
    public int* BOffs;
    public int Ldb;
    public bool PackB, TransB;
    /// <summary>In place only: reading B columns [N, roundup(N, NR)) stays inside the buffer (edge tiles need no copy).</summary>
    public bool BReadPastN;
    public float* C;
    public nint Ldc;
    /// <summary>Optional per-row initial value of C (a bias) when not accumulating; null means zero.</summary>
    public float* RowInit;
    public bool Accumulate;
    /// <summary>
    /// When positive, K is summed in segments of this length: each segment after the first from zero, then added to C
    /// (see <see cref="ReductionOrder"/>). Zero: one running sum over all of K.
    /// </summary>
    public int KSegment;
    /// <summary>Add <see cref="RowInit"/> after the first K segment instead of starting from it.</summary>
    public bool BiasAfterFirstSegment;
}

/// <summary>Blocked, register-tiled SGEMM driver shared by <see cref="Gemm"/> and <see cref="Conv2d"/>.</summary>
internal static unsafe class GemmCore
{
    /// <summary>Depth of one K block (A panel slice kept in L1 while B tiles stream from L2).</summary>
    public const int Kc = 256;
    /// <summary>Columns of one B block (Kc×Nc floats sized to stay in L2).</summary>
    public const int Nc = 512;

    private static readonly int[][] StrideTables = BuildStrideTables();

    private static int[][] BuildStrideTables()
    {
        var t = new int[4][];
        for (int i = 0; i < 4; i++)
        {
            int nr = IsaInfo.Nr((Isa)i);
            t[i] = GC.AllocateArray<int>(Kc, pinned: true);
            for (int p = 0; p < Kc; p++) t[i][p] = p * nr;
        }
        return t;
    }

    /// <summary>
    /// Whether copying B blocks into contiguous panels pays for a B read in place with row stride <paramref name="ldb"/>.
    /// The copy costs about a load and a store per B element, shared by every A panel; in-place rows cost extra cache
    /// lines when misaligned, L1 set conflicts when 4 KiB apart, and TLB misses when far apart. Measured on Zen 4: a win
    /// from M ≈ 256 up, or from M ≈ 128 with awkward strides; a loss for small M (16–64 rows).
    /// </summary>
    public static bool ShouldPackB(int m, int n, int k, int ldb, Isa isa)
        => n >= 2 * IsaInfo.Nr(isa) && k > 16
           && (m >= 256 || (m >= 128 && (ldb % 16 != 0 || ldb % 1024 == 0 || ldb >= 4096)));

    /// <summary>Floats needed to pack an m×k A operand for <paramref name="isa"/>.</summary>
    public static long PackedALength(int m, int k, Isa isa)
    {
        int mr = IsaInfo.Mr(isa);
        return (long)((m + mr - 1) / mr) * mr * k;
    }

    /// <summary>Packs A ([m,k] row-major with row stride lda, or [k,m] with stride lda when trans) into MR-row panels.</summary>
    public static void PackA(float* a, int m, int k, int lda, bool trans, Isa isa, float* dst)
    {
        int mr = IsaInfo.Mr(isa);
        int panels = (m + mr - 1) / mr;
        float** src = stackalloc float*[mr];
        for (int ip = 0; ip < panels; ip++)
        {
            int i0 = ip * mr, rows = Math.Min(mr, m - i0);
            float* d = dst + (long)ip * k * mr;
            if (trans)
            {
                for (int p = 0; p < k; p++)
                {
                    float* s = a + (long)p * lda + i0;
                    float* dp = d + (long)p * mr;
                    int r = 0;
                    for (; r < rows; r++) dp[r] = s[r];
                    for (; r < mr; r++) dp[r] = 0f;
                }
            }
            else
            {
                // Walk k in the outer loop: MR read streams, one contiguous write stream.
                for (int r = 0; r < mr; r++) src[r] = a + (long)(i0 + Math.Min(r, rows - 1)) * lda;
                for (int p = 0; p < k; p++)
                {
                    float* dp = d + (long)p * mr;
                    int r = 0;
                    for (; r < rows; r++) dp[r] = src[r][p];
                    for (; r < mr; r++) dp[r] = 0f;
                }
            }
        }
    }

    /// <summary>Scratch floats one <see cref="Run"/> call needs (C tile, an edge B panel, a packed B block, alignment slack).</summary>
    public static int ScratchLength(Isa isa) => IsaInfo.Mr(isa) * IsaInfo.Nr(isa) + Kc * IsaInfo.Nr(isa) + Kc * (Nc + IsaInfo.Nr(isa)) + 64;

    private static delegate*<int, float*, float*, int*, float*, nint, float*, bool, bool, void> KernelFor(Isa isa) => isa switch
    {
        Isa.Vector512 => &MicroKernels.V512x8x32,
        Isa.Vector256 => &MicroKernels.V256x6x16,
        Isa.Vector128 => &MicroKernels.V128x6x8,
        _ => &MicroKernels.Scalar4x4,
    };

    /// <summary>Runs the whole problem single-threaded with pooled scratch.</summary>
    public static void Run(in GemmProblem pr, Isa isa)
    {
        int mr = IsaInfo.Mr(isa);
        Run(pr, 0, (pr.M + mr - 1) / mr, 0, pr.N, isa);
    }

    /// <summary>Runs A panels [p0,p1) against columns [j0,j1) (j0 a multiple of NR) with pooled scratch.</summary>
    public static void Run(in GemmProblem pr, int p0, int p1, int j0, int j1, Isa isa)
    {
        var buf = ArrayPool<float>.Shared.Rent(ScratchLength(isa));
        fixed (float* s = buf)
            Run(pr, p0, p1, j0, j1, isa, Align64(s));
        ArrayPool<float>.Shared.Return(buf);
    }

    /// <summary>First 64-byte aligned address at or after p (scratch buffers carry 16 floats of slack for this).</summary>
    public static float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    /// <summary>How one K block's products meet C.</summary>
    private enum Combine
    {
        /// <summary>Start the sum (from the row's initial value or zero).</summary>
        Start,
        /// <summary>Continue the running sum held in C.</summary>
        Chain,
        /// <summary>Sum from zero, then add to C (a new K segment).</summary>
        Add,
    }

    /// <summary>
    /// The blocked loop nest: column blocks of Nc, K blocks of Kc (never crossing a K segment), A panels, then NR-wide
    /// column tiles. The A panel slice (Kc×MR) stays in L1 across the tiles of a block; the B block streams from L2.
    /// Every element of C is the same chain of FMAs whether its tile is whole or at an edge.
    /// </summary>
    public static void Run(in GemmProblem pr, int p0, int p1, int j0, int j1, Isa isa, float* scratch)
    {
        if (p0 >= p1 || j0 >= j1) return;
        int mr = IsaInfo.Mr(isa), nr = IsaInfo.Nr(isa);
        var kern = KernelFor(isa);
        float* tile = scratch;                       // MR×NR
        float* edgeB = tile + mr * nr;               // Kc×NR
        float* packB = edgeB + Kc * nr;              // Kc×(Nc+NR)
        float* rowInit = stackalloc float[mr];       // a partial panel's initial values, padded to MR
        int m = pr.M, n = pr.N, k = pr.K;
        int seg = pr.KSegment > 0 ? pr.KSegment : Math.Max(k, 1);
        bool biasAfter = pr.BiasAfterFirstSegment && pr.RowInit != null && !pr.Accumulate;
        fixed (int* strideOffs = StrideTables[(int)isa])
        {
            if (k == 0)
            {
                if (!pr.Accumulate) InitRows(pr, p0 * mr, Math.Min(m, p1 * mr), j0, j1);
                return;
            }
            for (int jc = j0; jc < j1; jc += Nc)
            {
                int nc = Math.Min(Nc, j1 - jc);
                for (int pc = 0, kc; pc < k; pc += kc)
                {
                    int segEnd = Math.Min(k, (pc / seg + 1) * seg);
                    kc = Math.Min(Kc, segEnd - pc);
                    var mode = pc == 0 ? (pr.Accumulate ? Combine.Chain : Combine.Start) : pc % seg == 0 ? Combine.Add : Combine.Chain;
                    float* init = mode == Combine.Start && !biasAfter ? pr.RowInit : null;
                    bool addBias = biasAfter && pc + kc == Math.Min(k, seg);
                    if (pr.PackB) PackBBlock(pr, pc, kc, jc, nc, nr, packB);
                    for (int ip = p0; ip < p1; ip++)
                    {
                        int i0 = ip * mr, rows = Math.Min(mr, m - i0);
                        float* ap = pr.A + (long)ip * k * mr + (long)pc * mr;
                        float* cRow = pr.C + i0 * pr.Ldc;
                        float* initRow = null;
                        if (init != null)
                        {
                            initRow = init + i0;
                            if (rows < mr)
                            {
                                for (int r = 0; r < mr; r++) rowInit[r] = r < rows ? initRow[r] : 0f;
                                initRow = rowInit;
                            }
                        }
                        float* biasRow = addBias ? pr.RowInit + i0 : null;
                        for (int jt = 0; jt < nc; jt += nr)
                        {
                            int j = jc + jt, cols = Math.Min(nr, nc - jt);
                            float* bp;
                            int* offs;
                            if (pr.PackB)
                            {
                                bp = packB + (long)(jt / nr) * kc * nr;
                                offs = strideOffs;
                            }
                            else if (cols == nr || pr.BReadPastN)
                            {
                                bp = pr.B + j;
                                offs = pr.BOffs + pc;
                            }
                            else
                            {
                                CopyEdgeB(pr.B + j, pr.BOffs + pc, kc, cols, nr, edgeB);
                                bp = edgeB;
                                offs = strideOffs;
                            }
                            float* c = cRow + j;
                            bool chain = mode == Combine.Chain, add = mode == Combine.Add;
                            if (rows == mr && cols == nr)
                                kern(kc, ap, bp, offs, c, pr.Ldc, initRow, chain, add);
                            else
                            {
                                // Edge tiles go through the scratch tile, with the same arithmetic.
                                if (chain || add) CopyTile(c, pr.Ldc, tile, nr, rows, cols);
                                kern(kc, ap, bp, offs, tile, nr, initRow, chain, add);
                                CopyTile(tile, nr, c, pr.Ldc, rows, cols);
                            }
                            if (biasRow != null)
                                for (int r = 0; r < rows; r++)
                                {
                                    var cr = new Span<float>(c + r * pr.Ldc, cols);
                                    TensorPrimitives.Add(cr, biasRow[r], cr);
                                }
                        }
                    }
                }
            }
        }
    }

    private static void InitRows(in GemmProblem pr, int i0, int i1, int j0, int j1)
    {
        for (int i = i0; i < i1; i++)
            new Span<float>(pr.C + i * pr.Ldc + j0, j1 - j0).Fill(pr.RowInit == null ? 0f : pr.RowInit[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyTile(float* src, nint lds, float* dst, nint ldd, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
            Buffer.MemoryCopy(src + r * lds, dst + r * ldd, cols * sizeof(float), cols * sizeof(float));
    }

    private static void CopyEdgeB(float* b, int* offs, int kc, int cols, int nr, float* dst)
    {
        for (int p = 0; p < kc; p++)
        {
            float* s = b + offs[p];
            float* d = dst + p * nr;
            int j = 0;
            for (; j < cols; j++) d[j] = s[j];
            for (; j < nr; j++) d[j] = 0f;
        }
    }

    /// <summary>Copies B[pc..pc+kc, jc..jc+nc] into NR-wide panels (kc×NR each, zero padded past nc).</summary>
    private static void PackBBlock(in GemmProblem pr, int pc, int kc, int jc, int nc, int nr, float* dst)
    {
        int ldb = pr.Ldb;
        for (int jt = 0; jt < nc; jt += nr)
        {
            int cols = Math.Min(nr, nc - jt);
            float* d = dst + (long)(jt / nr) * kc * nr;
            if (pr.TransB)
            {
                // B stored [N, ldb]: column j of op(B) is row j of storage; read rows, scatter with stride NR.
                int c = 0;
                for (; c < cols; c++)
                {
                    float* s = pr.B + (long)(jc + jt + c) * ldb + pc;
                    for (int p = 0; p < kc; p++) d[p * nr + c] = s[p];
                }
                for (; c < nr; c++)
                    for (int p = 0; p < kc; p++) d[p * nr + c] = 0f;
            }
            else if (cols == nr || pr.BReadPastN)
            {
                // Whole tiles: straight row copies (past N only where the buffer allows it).
                int* offs = pr.BOffs + pc;
                float* b = pr.B + jc + jt;
                for (int p = 0; p < kc; p++)
                    CopyRow(b + offs[p], d + p * nr, nr);
            }
            else
                CopyEdgeB(pr.B + jc + jt, pr.BOffs + pc, kc, cols, nr, d);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRow(float* s, float* d, int nr)
    {
        if (Vector512.IsHardwareAccelerated && nr == 32)
        {
            Vector512.Store(Vector512.Load(s), d);
            Vector512.Store(Vector512.Load(s + 16), d + 16);
        }
        else if (Vector256.IsHardwareAccelerated && nr == 16)
        {
            Vector256.Store(Vector256.Load(s), d);
            Vector256.Store(Vector256.Load(s + 8), d + 8);
        }
        else
            Buffer.MemoryCopy(s, d, nr * sizeof(float), nr * sizeof(float));
    }
}
