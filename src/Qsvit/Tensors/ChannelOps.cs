using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>Per-channel elementwise kernels over [batch, channels, spatial] data.</summary>
public static unsafe class ChannelOps
{
    /// <summary>x = x·scale[c] + shift[c] as one fused multiply-add (as torch computes eval BatchNorm on x86).</summary>
    public static void ScaleShift(Span<float> x, int batch, int channels, int spatial, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift,
        ComputeOptions? options = null)
        => ScaleShift(x, batch, channels, spatial, scale, shift, IsaInfo.Best, (options ?? ComputeOptions.Default).Threads);

    /// <summary>output[b, c] = mean over spatial of x[b, c, :].</summary>
    public static void SpatialMean(ReadOnlySpan<float> x, int batch, int channels, int spatial, Span<float> output,
        ComputeOptions? options = null)
        => SpatialMean(x, batch, channels, spatial, output, IsaInfo.Best, (options ?? ComputeOptions.Default).Threads);

    internal static void ScaleShift(Span<float> x, int batch, int channels, int spatial, ReadOnlySpan<float> scale,
        ReadOnlySpan<float> shift, Isa isa, int threads)
    {
        Check(x.Length, batch, channels, spatial, nameof(x));
        if (scale.Length < channels) throw new ArgumentException($"scale has {scale.Length} elements, needs {channels}", nameof(scale));
        if (shift.Length < channels) throw new ArgumentException($"shift has {shift.Length} elements, needs {channels}", nameof(shift));
        int rows = batch * channels;
        if (rows == 0 || spatial == 0) return;
        isa = IsaInfo.Clamp(isa);
        int t = Workers(rows, spatial, threads);
        fixed (float* px = x, ps = scale, pb = shift)
        {
            float* xp = px, sp = ps, bp = pb;
            Compute.ForRanges(rows, t, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    int c = r % channels;
                    ScaleShiftRow(xp + (long)r * spatial, spatial, sp[c], bp[c], isa);
                }
            });
        }
    }

    private static void ScaleShiftRow(float* p, int n, float s, float b, Isa isa)
    {
        int i = 0;
        if (isa == Isa.Vector512)
        {
            var vs = Vector512.Create(s);
            var vb = Vector512.Create(b);
            for (; i <= n - 16; i += 16) Vector512.FusedMultiplyAdd(Vector512.Load(p + i), vs, vb).Store(p + i);
        }
        if (isa >= Isa.Vector256)
        {
            var vs = Vector256.Create(s);
            var vb = Vector256.Create(b);
            for (; i <= n - 8; i += 8) Vector256.MultiplyAddEstimate(Vector256.Load(p + i), vs, vb).Store(p + i);
        }
        if (isa >= Isa.Vector128)
        {
            var vs = Vector128.Create(s);
            var vb = Vector128.Create(b);
            for (; i <= n - 4; i += 4) Vector128.MultiplyAddEstimate(Vector128.Load(p + i), vs, vb).Store(p + i);
        }
        for (; i < n; i++) p[i] = MathF.FusedMultiplyAdd(p[i], s, b);
    }

    internal static void SpatialMean(ReadOnlySpan<float> x, int batch, int channels, int spatial, Span<float> output, Isa isa, int threads)
    {
        Check(x.Length, batch, channels, spatial, nameof(x));
        int rows = batch * channels;
        if (output.Length < rows) throw new ArgumentException($"output has {output.Length} elements, needs {rows}", nameof(output));
        if (rows == 0) return;
        if (spatial == 0)
        {
            output[..rows].Fill(float.NaN); // mean of nothing, as 0/0
            return;
        }
        isa = IsaInfo.Clamp(isa);
        int t = Workers(rows, spatial, threads);
        float inv = 1f / spatial;
        fixed (float* px = x, po = output)
        {
            float* xp = px, op = po;
            Compute.ForRanges(rows, t, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                    op[r] = RowSum(xp + (long)r * spatial, spatial, isa) * inv;
            });
        }
    }

    /// <summary>Sum of a short row, inlined (a library call per 16-float row of a 4×4 map costs more than the sum).</summary>
    private static float RowSum(float* p, int n, Isa isa)
    {
        if (n >= 256) return TensorPrimitives.Sum(new ReadOnlySpan<float>(p, n));
        int i = 0;
        float s = 0f;
        if (isa == Isa.Vector512 && n >= 16)
        {
            var acc = Vector512.Load(p);
            for (i = 16; i <= n - 16; i += 16) acc += Vector512.Load(p + i);
            s = Vector512.Sum(acc);
        }
        else if (isa >= Isa.Vector256 && n >= 8)
        {
            var acc = Vector256.Load(p);
            for (i = 8; i <= n - 8; i += 8) acc += Vector256.Load(p + i);
            s = Vector256.Sum(acc);
        }
        else if (isa >= Isa.Vector128 && n >= 4)
        {
            var acc = Vector128.Load(p);
            for (i = 4; i <= n - 4; i += 4) acc += Vector128.Load(p + i);
            s = Vector128.Sum(acc);
        }
        for (; i < n; i++) s += p[i];
        return s;
    }

    private static int Workers(int rows, int spatial, int threads) => Compute.MemoryBoundParts((long)rows * spatial, threads, rows);

    private static void Check(int length, int batch, int channels, int spatial, string name)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        ArgumentOutOfRangeException.ThrowIfNegative(channels);
        ArgumentOutOfRangeException.ThrowIfNegative(spatial);
        long needed = (long)batch * channels * spatial;
        if (length < needed) throw new ArgumentException($"{name} has {length} elements, needs {needed}", name);
    }
}
