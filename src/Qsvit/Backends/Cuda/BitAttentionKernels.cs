using ILGPU;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// MS_Block's attention core (q/k/v LIFs, SDSA, attn_lif) on planes too large for <see cref="GpuKernels.SmallAttentionLif"/>
/// (the 55M's 196 tokens, d = 64 or 80), in two launches. <see cref="SpikeBits"/> runs the three LIFs over T and packs their
/// spikes into 32-token words; <see cref="Attention"/> takes one (image, head, token tile) per group over the T frames:
/// kv[i, j] = Σ_w popcount(K[i, w] AND V[j, w]) from the packed rows, out[j, n] = Σ_{i: Q[i, n] = 1} kv[i, j] over the set bits
/// of token n's column, then the scale and attn_lif. Every sum is of 0/1 products (an integer below 2²⁴), so it is exact
/// in any order; the scale is one float multiply and each LIF step the LIF kernel's arithmetic: the spikes are those of
/// the five ops bit for bit, while the only traffic is reading q, k, v once and writing the spikes once.
/// </summary>
internal static class BitAttentionKernels
{
    /// <summary>Elements (rows × tokens) of one <see cref="SpikeBits"/> group: three membranes each in shared memory.</summary>
    public const int BitsElements = 2048;

    /// <summary>Packed words of one of K, V, Q in an <see cref="Attention"/> group: d rows at <see cref="WordPitch"/>.</summary>
    public const int WordsCapacity = 720;

    /// <summary>kv entries (d × d, 16-bit counts) of an <see cref="Attention"/> group.</summary>
    public const int KvCapacity = 6400;

    /// <summary>Tile elements (d × tile pitch) of an <see cref="Attention"/> group: an attn_lif membrane and a spike each.</summary>
    public const int TileCapacity = 4800;

    /// <summary>Tokens of one <see cref="Attention"/> tile at most (their channel masks sit in shared memory).</summary>
    public const int MaxTileTokens = 128;

    /// <summary>Channel-mask words per token: d ≤ 32 · 3.</summary>
    public const int MaskWords = 3;

    /// <summary>Row pitch (in words) of the packed K, V, Q rows in shared memory: odd, so the threads of a warp reading rows j, j + 1, … hit distinct banks.</summary>
    public static int WordPitch(int words) => words | 1;

    /// <summary>
    /// q_lif, k_lif, v_lif over T (threshold <paramref name="threshold"/>) of q, k, v [T·rows, tokens] (time-major frames,
    /// rows = batch·C), their spikes packed into bits [3][T·rows, words] (tensor q, k, v; bit l of word w is token 32w + l;
    /// bits past the last token stay 0). A group takes <paramref name="rowsPerGroup"/> rows with their membranes in shared
    /// memory; each step loads the three inputs coalesced, steps the membranes, then packs the group's words. With
    /// <paramref name="countSlot"/> ≥ 0 the spikes of q, k, v are added to counts[countSlot + 0 … 2].
    /// </summary>
    public static void SpikeBits(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<int> bits, ArrayView<long> counts,
        int rows, int tokens, int words, int rowsPerGroup, int timesteps, float threshold, int countSlot)
    {
        var membranes = SharedMemory.Allocate<float>(3 * BitsElements);
        var fired = SharedMemory.Allocate<byte>(BitsElements);
        var totals = SharedMemory.Allocate<int>(3);
        int tid = Group.IdxX, threads = Group.DimX, r0 = Grid.IdxX * rowsPerGroup;
        int groupRows = Math.Min(rowsPerGroup, rows - r0), n = groupRows * tokens, groupWords = groupRows * words;
        int tensorWords = timesteps * rows * words;
        for (int i = tid; i < 3 * BitsElements; i += threads) membranes[i] = 0f;
        for (int i = tid; i < 3; i += threads) totals[i] = 0;
        Group.Barrier();
        int firedQ = 0, firedK = 0, firedV = 0;
        for (int t = 0; t < timesteps; t++)
        {
            int at = (t * rows + r0) * tokens;
            for (int i = tid; i < n; i += threads)
            {
                float qq = q[at + i], kk = k[at + i], vv = v[at + i]; // three loads in flight before the steps
                float sq = GpuKernels.LifStep(membranes, i, qq, threshold, ref firedQ);
                float sk = GpuKernels.LifStep(membranes, BitsElements + i, kk, threshold, ref firedK);
                float sv = GpuKernels.LifStep(membranes, 2 * BitsElements + i, vv, threshold, ref firedV);
                fired[i] = (byte)((int)sq | (int)sk << 1 | (int)sv << 2);
            }
            Group.Barrier();
            for (int e = tid; e < 3 * groupWords; e += threads)
            {
                int s = e / groupWords, rest = e - s * groupWords, row = rest / words, w = rest - row * words;
                int first = w * 32, count = Math.Min(32, tokens - first), from = row * tokens + first, word = 0;
                for (int l = 0; l < count; l++) word |= ((fired[from + l] >> s) & 1) << l;
                bits[s * tensorWords + (t * rows + r0 + row) * words + w] = word;
            }
            Group.Barrier(); // the next step overwrites the flags
        }
        if (countSlot < 0) return;
        if (firedQ != 0) Atomic.Add(ref totals[0], firedQ);
        if (firedK != 0) Atomic.Add(ref totals[1], firedK);
        if (firedV != 0) Atomic.Add(ref totals[2], firedV);
        Group.Barrier();
        for (int j = tid; j < 3; j += threads)
            if (totals[j] != 0) Atomic.Add(ref counts[countSlot + j], (long)totals[j]);
    }

    /// <summary>
    /// SDSA and attn_lif from <see cref="SpikeBits"/>'s packed spikes: one group per (image, head, tile of
    /// <paramref name="tileTokens"/> tokens), its T frames in turn. Per frame: the head's K, V, Q rows to shared memory;
    /// kv (d × d counts, every tile of the head computes it: a few popcounts per entry) and each tile token's channel mask;
    /// out[j, n] as the sum of kv[i, j] over the set bits i of token n's mask (the threads of a warp take consecutive j of
    /// one token, so the loop is the same for all of them), times <paramref name="scale"/>, through attn_lif
    /// (<paramref name="attentionThreshold"/>, membranes in shared memory); the spikes staged and written token-contiguous
    /// to spikes [T·batch, C, tokens]. With <paramref name="countSlot"/> ≥ 0 they are added to counts[countSlot].
    /// </summary>
    public static void Attention(ArrayView<int> bits, ArrayView<float> spikes, ArrayView<long> counts, int batch, int heads, int d, int tokens,
        int words, int tiles, int tileTokens, int timesteps, float scale, float attentionThreshold, int countSlot)
    {
        var rows = SharedMemory.Allocate<int>(3 * WordsCapacity); // the head's Q, K, V rows, in the order of bits
        var kv = SharedMemory.Allocate<ushort>(KvCapacity);
        var masks = SharedMemory.Allocate<int>(MaskWords * MaxTileTokens);
        var membranes = SharedMemory.Allocate<float>(TileCapacity);
        var fired = SharedMemory.Allocate<byte>(TileCapacity);
        var total = SharedMemory.Allocate<int>(1);
        int tid = Group.IdxX, threads = Group.DimX;
        int tile = Grid.IdxX % tiles, bh = Grid.IdxX / tiles, b = bh / heads, head = bh - b * heads;
        int n0 = tile * tileTokens, count = Math.Min(tileTokens, tokens - n0), pitch = tileTokens | 1, wordPitch = WordPitch(words);
        int channels = heads * d, tensorRows = timesteps * batch * channels, maskWords = (d + 31) / 32;
        float invD = 1f / d, invCount = 1f / count;
        for (int i = tid; i < d * pitch; i += threads) membranes[i] = 0f;
        if (tid == 0) total[0] = 0;
        Group.Barrier();
        int firedA = 0;
        for (int t = 0; t < timesteps; t++)
        {
            int row0 = (t * batch + b) * channels + head * d; // the head's first row in this frame
            for (int e = tid; e < 3 * d * words; e += threads)
            {
                int s = e / (d * words), rest = e - s * d * words, i = rest / words, w = rest - i * words;
                rows[s * WordsCapacity + i * wordPitch + w] = bits[(s * tensorRows + row0 + i) * words + w];
            }
            Group.Barrier();
            for (int e = tid; e < d * d; e += threads)
            {
                int i = GpuKernels.SmallDiv(e, invD), j = e - i * d, sum = 0;
                for (int w = 0; w < words; w++)
                    sum += IntrinsicMath.PopCount(rows[WordsCapacity + i * wordPitch + w] & rows[2 * WordsCapacity + j * wordPitch + w]);
                kv[e] = (ushort)sum;
            }
            for (int e = tid; e < maskWords * count; e += threads)
            {
                // Token n's channel bits i = 32·block … of Q, gathered from the token-packed rows.
                int nn = e / maskWords, block = e - nn * maskWords, n = n0 + nn, w = n >> 5, shift = n & 31;
                int from = 32 * block * wordPitch + w, last = Math.Min(32, d - 32 * block), mask = 0;
                for (int l = 0; l < last; l++) mask |= ((rows[from + l * wordPitch] >> shift) & 1) << l;
                masks[nn * MaskWords + block] = mask;
            }
            Group.Barrier();
            for (int e = tid; e < d * count; e += threads)
            {
                int nn = GpuKernels.SmallDiv(e, invD), j = e - nn * d, sum = 0;
                for (int block = 0; block < maskWords; block++)
                {
                    int mask = masks[nn * MaskWords + block], at = 32 * block * d + j;
                    while (mask != 0)
                    {
                        // The lowest set bit's index as popc(lowest − 1): one popc where ILGPU's trailing-zero count is a bit-twiddling sequence.
                        int lowest = mask & -mask;
                        sum += kv[at + IntrinsicMath.PopCount(lowest - 1) * d];
                        mask ^= lowest;
                    }
                }
                float spike = GpuKernels.LifStep(membranes, j * pitch + nn, sum * scale, attentionThreshold, ref firedA);
                fired[j * pitch + nn] = (byte)spike;
            }
            Group.Barrier();
            for (int e = tid; e < d * count; e += threads)
            {
                int j = GpuKernels.SmallDiv(e, invCount), nn = e - j * count;
                spikes[(row0 + j) * tokens + n0 + nn] = fired[j * pitch + nn];
            }
            // No barrier: the next frame writes fired only after two more.
        }
        if (countSlot < 0) return;
        if (firedA != 0) Atomic.Add(ref total[0], firedA);
        Group.Barrier();
        if (tid == 0 && total[0] != 0) Atomic.Add(ref counts[countSlot], (long)total[0]);
    }
}
