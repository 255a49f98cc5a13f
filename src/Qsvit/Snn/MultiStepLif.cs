using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Qsvit.Tensors;

namespace Qsvit.Snn;

/// <summary>
/// spikingjelly 0.0.0.0.12 MultiStepLIFNode(tau=2, v_reset=0, decay_input=True), the neuron of SDTv2:
/// H = V + (X - V)·0.5; S = H ≥ Vth; V = S ? 0 : H, over t = 0..T-1 from V = 0. Data is time-first [T, n].
/// </summary>
public static class MultiStepLif
{
    public const float DefaultThreshold = 1f;
    /// <summary>The attention output neuron (attn_lif) fires at half the usual threshold.</summary>
    public const float AttentionThreshold = 0.5f;
    // Small enough for the per-chunk membrane state to live on the stack: no allocation per call.
    private const int Chunk = 4096;

    /// <summary>
    /// Runs the neuron over <paramref name="timesteps"/> steps of <c>input.Length / timesteps</c> neurons, writing spikes (0/1)
    /// and, when <paramref name="membrane"/> is non-empty, the pre-spike potential H of every step. Returns the spike count.
    /// With <paramref name="addend"/>, first input[i] += addend[i] (the residual add, one rounding, kept in
    /// <paramref name="input"/>), chunk by chunk so the sum is still in cache when the neuron reads it.
    /// </summary>
    public static long Forward(float[] input, float[] spikes, int length, int timesteps, float threshold, float[]? membrane = null,
        ComputeOptions? options = null, float[]? addend = null)
    {
        options ??= ComputeOptions.Default;
        int n = length / timesteps;
        if (n * timesteps != length) throw new ArgumentException($"length {length} is not a multiple of T = {timesteps}");
        int chunks = (n + Chunk - 1) / Chunk;
        long total = 0;
        if (chunks == 1 || options.Threads == 1)
        {
            for (int c = 0; c < chunks; c++) total += Run(input, addend, spikes, membrane, n, timesteps, threshold, c * Chunk, Math.Min(Chunk, n - c * Chunk));
            return total;
        }
        Compute.For(chunks, options.Threads,
            c => Interlocked.Add(ref total, Run(input, addend, spikes, membrane, n, timesteps, threshold, c * Chunk, Math.Min(Chunk, n - c * Chunk))));
        return total;
    }

    private static long Run(float[] input, float[]? addend, float[] spikes, float[]? membrane, int n, int timesteps, float threshold, int start, int count)
    {
        Span<float> v = stackalloc float[count];
        v.Clear();
        float fired = 0;
        for (int t = 0; t < timesteps; t++)
        {
            int offset = t * n + start;
            var x = input.AsSpan(offset, count);
            if (addend is not null) TensorPrimitives.Add(x, addend.AsSpan(offset, count), x);
            var s = spikes.AsSpan(offset, count);
            var h = membrane is null ? default : membrane.AsSpan(offset, count);
            fired += Step(x, v, s, h, threshold);
        }
        return (long)fired;
    }

    /// <summary>One timestep for a slice: updates <paramref name="v"/> in place. Returns the number of spikes.</summary>
    internal static float Step(ReadOnlySpan<float> x, Span<float> v, Span<float> s, Span<float> h, float threshold)
    {
        int i = 0;
        float fired = 0;
        bool keepH = !h.IsEmpty;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var xs = MemoryMarshal.Cast<float, Vector<float>>(x);
            var vs = MemoryMarshal.Cast<float, Vector<float>>(v);
            var ss = MemoryMarshal.Cast<float, Vector<float>>(s);
            var hs = keepH ? MemoryMarshal.Cast<float, Vector<float>>(h) : default;
            var half = new Vector<float>(0.5f);
            var th = new Vector<float>(threshold);
            var acc = Vector<float>.Zero;
            for (int k = 0; k < xs.Length; k++)
            {
                var hv = vs[k] + (xs[k] - vs[k]) * half;
                var fire = Vector.GreaterThanOrEqual(hv, th);
                var spike = Vector.ConditionalSelect(fire, Vector<float>.One, Vector<float>.Zero);
                ss[k] = spike;
                acc += spike;
                vs[k] = Vector.ConditionalSelect(fire, Vector<float>.Zero, hv);
                if (keepH) hs[k] = hv;
            }
            fired = Vector.Sum(acc);
            i = xs.Length * Vector<float>.Count;
        }
        for (; i < x.Length; i++)
        {
            float hv = v[i] + (x[i] - v[i]) * 0.5f;
            bool fire = hv >= threshold;
            s[i] = fire ? 1f : 0f;
            fired += s[i];
            v[i] = fire ? 0f : hv;
            if (keepH) h[i] = hv;
        }
        return fired;
    }
}
