using System.Diagnostics;
using System.Numerics.Tensors;

namespace Qsvit.Tensors;

/// <summary>
/// Spike-driven self-attention of one (frame, head) plane, event by event: out = scale · (k · vᵀ)ᵀ · q with q, k, v the
/// [d, tokens] spike maps of the plane. Every sum is of 0/1 products, so it is an integer below 2^24 and exact in fp32 in
/// any order: the result is bit for bit that of the two GEMMs (then one multiply by scale), without their packing, which
/// dominates at CIFAR's 16 × 16 planes. A plane whose inputs hold any other value is left to the GEMMs.
/// </summary>
internal static class SpikeAttention
{
    /// <summary>Floats of scratch <see cref="TryPlane"/> needs.</summary>
    public static int ScratchLength(int d, int tokens) => 2 * tokens * d + d * d;

    /// <summary>
    /// Writes the plane's attention into <paramref name="output"/> ([d, tokens]) and returns true; returns false, writing
    /// nothing, when q, k or v holds a value other than 0 or 1.
    /// </summary>
    public static bool TryPlane(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output, int d, int tokens,
        float scale, Span<float> scratch)
    {
        Debug.Assert(scratch.Length >= ScratchLength(d, tokens));
        var vt = scratch[..(tokens * d)];            // vᵀ: row s holds token s of every channel
        var kv = scratch.Slice(tokens * d, d * d);    // row i: Σ over the tokens where k[i] fired of vᵀ's rows
        var outT = scratch.Slice(tokens * d + d * d, tokens * d);
        for (int j = 0; j < d; j++)
        for (int s = 0; s < tokens; s++)
        {
            float x = v[j * tokens + s];
            if (x != 0f && x != 1f) return false;
            vt[s * d + j] = x;
        }
        if (!IsSpikes(q[..(d * tokens)]) || !IsSpikes(k[..(d * tokens)])) return false;
        kv.Clear();
        for (int i = 0; i < d; i++)
        {
            var row = kv.Slice(i * d, d);
            for (int s = 0; s < tokens; s++)
                if (k[i * tokens + s] != 0f) TensorPrimitives.Add(row, vt.Slice(s * d, d), row);
        }
        outT.Clear();
        for (int i = 0; i < d; i++)
        for (int t = 0; t < tokens; t++)
            if (q[i * tokens + t] != 0f)
            {
                var row = outT.Slice(t * d, d);
                TensorPrimitives.Add(row, kv.Slice(i * d, d), row);
            }
        for (int j = 0; j < d; j++)
        for (int t = 0; t < tokens; t++)
            output[j * tokens + t] = outT[t * d + j] * scale;
        return true;
    }

    private static bool IsSpikes(ReadOnlySpan<float> x)
    {
        foreach (float value in x)
            if (value != 0f && value != 1f) return false;
        return true;
    }
}
