using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>
/// Spike-driven self-attention (SDSA) over spikes, channel-major q, k, v [frames, C, N] with heads of d = C / heads rows:
/// per frame and head, kv = K·Vᵀ ([d, d]) and out = (kvᵀ·Q)·scale ([d, N]). With 0/1 inputs every partial sum is an
/// integer below 2²⁴, exact in fp32 in any order, so the sums may be regrouped freely and the result is that of two fp32
/// GEMMs and a multiply, bit for bit; two GEMM calls per 16 × 16 plane (CIFAR's 4×4 maps) cost far more in call and
/// packing overhead than in arithmetic. Two forms, by which costs fewer multiply-adds:
/// <list type="bullet">
/// <item>N ≤ d (few tokens): out[j, n'] = Σ_n V[j, n]·A[n, n'] with A = KᵀQ ([N, N]), 2·d·N² vector multiply-adds;</item>
/// <item>N &gt; d: kv[i, j] counted as popcounts of the rows' bit masks (64 tokens a word), then out as 2·d²·N/lanes.</item>
/// </list>
/// </summary>
internal static unsafe class SpikeAttention
{
    /// <summary>Multiply-adds of out's sums per worker below which extra threads cost more than they save.</summary>
    private const double MinWorkPerThread = 2e5;

    /// <param name="q">Query spikes (0 or 1) [frames, channels, tokens].</param>
    /// <param name="k">Key spikes, as q.</param>
    /// <param name="v">Value spikes, as q.</param>
    /// <param name="output">[frames, channels, tokens], overlapping none of q, k and v.</param>
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output, int frames, int channels,
        int tokens, int heads, float scale, Isa isa, int threads)
    {
        if (heads <= 0 || channels % heads != 0) throw new ArgumentException($"{channels} channels do not split into {heads} heads", nameof(heads));
        long n = (long)frames * channels * tokens;
        if (q.Length < n || k.Length < n || v.Length < n || output.Length < n)
            throw new ArgumentException($"q, k, v and output need {n} floats ([{frames}, {channels}, {tokens}])");
        if (n == 0) return;
        int d = channels / heads, planes = frames * heads, words = (tokens + 63) / 64;
        int workers = (int)Math.Clamp((double)planes * d * d * tokens / MinWorkPerThread, 1, Math.Min(threads, planes));
        fixed (float* pq = q, pk = k, pv = v, py = output)
        {
            float* xq = pq, xk = pk, xv = pv, y = py;
            Compute.ForRanges(planes, workers, (p0, p1) =>
            {
                var masks = System.Buffers.ArrayPool<ulong>.Shared.Rent(2 * d * words);
                var kv = System.Buffers.ArrayPool<float>.Shared.Rent(d * d);
                fixed (ulong* m = masks)
                fixed (float* c = kv)
                    for (int p = p0; p < p1; p++)
                    {
                        long off = (long)p * d * tokens;
                        Plane(xq + off, xk + off, xv + off, y + off, d, tokens, words, m, m + d * words, c, scale, isa);
                    }
                System.Buffers.ArrayPool<ulong>.Shared.Return(masks);
                System.Buffers.ArrayPool<float>.Shared.Return(kv);
            });
        }
    }

    private static void Plane(float* q, float* k, float* v, float* y, int d, int tokens, int words, ulong* km, ulong* vm, float* kv,
        float scale, Isa isa)
    {
        if (tokens <= d)
        {
            // kv's buffer (d² floats) holds A (N² ≤ d²).
            int t0 = 0;
            if (isa >= Isa.Vector512) t0 = FewTokens<Lanes512, Vector512<float>>(q, k, v, y, d, tokens, t0, kv, scale);
            if (isa >= Isa.Vector256) t0 = FewTokens<Lanes256, Vector256<float>>(q, k, v, y, d, tokens, t0, kv, scale);
            if (isa >= Isa.Vector128) t0 = FewTokens<Lanes128, Vector128<float>>(q, k, v, y, d, tokens, t0, kv, scale);
            FewTokens<Lanes1, float>(q, k, v, y, d, tokens, t0, kv, scale);
            return;
        }
        for (int r = 0; r < d; r++)
        {
            RowMask(k + (long)r * tokens, tokens, km + r * words, words, isa);
            RowMask(v + (long)r * tokens, tokens, vm + r * words, words, isa);
        }
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                int count = 0;
                for (int w = 0; w < words; w++) count += BitOperations.PopCount(km[i * words + w] & vm[j * words + w]);
                kv[i * d + j] = count;
            }
        // Token columns in the widest vectors first, the rest in narrower ones, the last few one by one.
        int n0 = 0;
        if (isa >= Isa.Vector512) n0 = Columns<Lanes512, Vector512<float>>(q, kv, y, d, tokens, n0, scale);
        if (isa >= Isa.Vector256) n0 = Columns<Lanes256, Vector256<float>>(q, kv, y, d, tokens, n0, scale);
        if (isa >= Isa.Vector128) n0 = Columns<Lanes128, Vector128<float>>(q, kv, y, d, tokens, n0, scale);
        Columns<Lanes1, float>(q, kv, y, d, tokens, n0, scale);
    }

    /// <summary>
    /// The few-token form for the columns n' from <paramref name="t0"/> in whole vectors: A[n, n'] = Σ_i K[i, n]·Q[i, n'] into
    /// <paramref name="a"/> (row n at a + n·N), then out[j, n'] = (Σ_n V[j, n]·A[n, n'])·scale; four rows at a time share each
    /// vector load. Returns the first column left.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int FewTokens<TLanes, TVector>(float* q, float* k, float* v, float* y, int d, int tokens, int t0, float* a, float scale)
        where TLanes : struct, IFloatLanes<TVector>
        where TVector : struct
    {
        int lanes = TLanes.Count;
        for (; t0 + lanes <= tokens; t0 += lanes)
        {
            Rows<TLanes, TVector>(k, 1, tokens, q, d, a, tokens, tokens, t0, 1f); // A[n, ·] = Σ_i K[i, n]·Q[i, ·]
            Rows<TLanes, TVector>(v, tokens, 1, a, tokens, y, d, tokens, t0, scale); // out[j, ·] = Σ_n V[j, n]·A[n, ·]
        }
        return t0;
    }

    /// <summary>
    /// dst[r, t0..t0 + lanes) = (Σ_{s &lt; sums} c[r·rowStep + s·sumStep]·src[s, t0..t0 + lanes))·scale for r &lt; rows, rows
    /// N floats apart; four rows at a time share each src load.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Rows<TLanes, TVector>(float* c, int rowStep, int sumStep, float* src, int sums, float* dst, int rows, int tokens, int t0, float scale)
        where TLanes : struct, IFloatLanes<TVector>
        where TVector : struct
    {
        int r = 0;
        for (; r + 4 <= rows; r += 4)
        {
            TVector a0 = TLanes.Broadcast(0f), a1 = a0, a2 = a0, a3 = a0;
            float* cr = c + (long)r * rowStep;
            for (int s = 0; s < sums; s++, cr += sumStep)
            {
                var x = TLanes.Load(src + (long)s * tokens + t0);
                a0 = TLanes.MultiplyAdd(TLanes.Broadcast(cr[0]), x, a0);
                a1 = TLanes.MultiplyAdd(TLanes.Broadcast(cr[rowStep]), x, a1);
                a2 = TLanes.MultiplyAdd(TLanes.Broadcast(cr[2 * rowStep]), x, a2);
                a3 = TLanes.MultiplyAdd(TLanes.Broadcast(cr[3 * rowStep]), x, a3);
            }
            float* out0 = dst + (long)r * tokens + t0;
            TLanes.Store(TLanes.Multiply(a0, scale), out0);
            TLanes.Store(TLanes.Multiply(a1, scale), out0 + tokens);
            TLanes.Store(TLanes.Multiply(a2, scale), out0 + 2 * tokens);
            TLanes.Store(TLanes.Multiply(a3, scale), out0 + 3 * tokens);
        }
        for (; r < rows; r++)
        {
            TVector acc = TLanes.Broadcast(0f);
            float* cr = c + (long)r * rowStep;
            for (int s = 0; s < sums; s++, cr += sumStep) acc = TLanes.MultiplyAdd(TLanes.Broadcast(*cr), TLanes.Load(src + (long)s * tokens + t0), acc);
            TLanes.Store(TLanes.Multiply(acc, scale), dst + (long)r * tokens + t0);
        }
    }

    /// <summary>Bit t of the mask is set where row[t] is not zero.</summary>
    private static void RowMask(float* row, int tokens, ulong* mask, int words, Isa isa)
    {
        new Span<ulong>(mask, words).Clear();
        int t = 0;
        // Chunks of 16, 8 or 4 start at multiples of their width, so none straddles two words.
        if (isa >= Isa.Vector512)
            for (; t + 16 <= tokens; t += 16)
                mask[t >> 6] |= (ulong)(~Vector512.Equals(Vector512.Load(row + t), Vector512<float>.Zero).ExtractMostSignificantBits() & 0xFFFFu) << (t & 63);
        else if (isa >= Isa.Vector256)
            for (; t + 8 <= tokens; t += 8)
                mask[t >> 6] |= (ulong)(~Vector256.Equals(Vector256.Load(row + t), Vector256<float>.Zero).ExtractMostSignificantBits() & 0xFFu) << (t & 63);
        else if (isa >= Isa.Vector128)
            for (; t + 4 <= tokens; t += 4)
                mask[t >> 6] |= (ulong)(~Vector128.Equals(Vector128.Load(row + t), Vector128<float>.Zero).ExtractMostSignificantBits() & 0xFu) << (t & 63);
        for (; t < tokens; t++)
            if (row[t] != 0f) mask[t >> 6] |= 1UL << (t & 63);
    }

    /// <summary>
    /// out[j, n] = (Σ_i kv[i, j]·q[i, n])·scale for the token columns from <paramref name="n0"/> in whole vectors; returns the
    /// first column left.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Columns<TLanes, TVector>(float* q, float* kv, float* y, int d, int tokens, int n0, float scale)
        where TLanes : struct, IFloatLanes<TVector>
        where TVector : struct
    {
        for (; n0 + TLanes.Count <= tokens; n0 += TLanes.Count) Rows<TLanes, TVector>(kv, 1, d, q, d, y, d, tokens, n0, scale);
        return n0;
    }
}
