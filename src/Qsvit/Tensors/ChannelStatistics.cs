namespace Qsvit.Tensors;

/// <summary>
/// The reductions calibration after quantization needs of a conv's input and output (<see cref="Backends.IBackend.AccumulateFrames"/>,
/// <see cref="Backends.IBackend.ChannelMoments"/>, <see cref="Backends.IBackend.ChannelAffines"/>), on the host, in
/// double and in one fixed order per result: sequential over frames, then positions. Threads split independent results
/// (positions or channels), never one sum, so the thread count does not change a bit. Scalar code: doubles, run once per
/// calibration pass, not a hot loop.
/// </summary>
public static unsafe class ChannelStatistics
{
    private const int MinElementsPerThread = 1 << 16;

    /// <summary>sums[i] += weight·x[f·length + i] for f = 0 .. frames − 1 in that order, i &lt; length.</summary>
    public static void AccumulateFrames(ReadOnlySpan<float> x, int frames, int length, double weight, Span<double> sums, int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frames);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (x.Length < (long)frames * length) throw new ArgumentException($"x has {x.Length} elements, needs {(long)frames * length}", nameof(x));
        if (sums.Length < length) throw new ArgumentException($"sums has {sums.Length} elements, needs {length}", nameof(sums));
        if (frames == 0 || length == 0) return;
        int t = Workers(length, (long)frames * length, threads);
        fixed (float* px = x)
        fixed (double* ps = sums)
        {
            float* xp = px;
            double* sp = ps;
            Compute.ForRanges(length, t, (i0, i1) =>
            {
                for (int f = 0; f < frames; f++)
                {
                    float* src = xp + (long)f * length;
                    for (int i = i0; i < i1; i++) sp[i] += src[i] * weight;
                }
            });
        }
    }

    /// <summary>
    /// Per channel of x [frames, channels, plane]: mean = Σ x / (frames·plane) and squares = Σ (x − mean)², each summed
    /// frame by frame, position by position.
    /// </summary>
    public static void Moments(ReadOnlySpan<float> x, int frames, int channels, int plane, Span<double> mean, Span<double> squares, int threads)
    {
        Check(x.Length, frames, channels, plane);
        if (mean.Length < channels || squares.Length < channels) throw new ArgumentException($"mean and squares need {channels} elements each");
        if (channels == 0) return;
        int t = Workers(channels, (long)frames * channels * plane, threads);
        fixed (float* px = x)
        fixed (double* pm = mean, pq = squares)
        {
            float* xp = px;
            double* mp = pm, qp = pq;
            Compute.ForRanges(channels, t, (c0, c1) =>
            {
                for (int c = c0; c < c1; c++)
                {
                    double sum = 0;
                    for (int f = 0; f < frames; f++)
                    {
                        float* row = xp + ((long)f * channels + c) * plane;
                        for (int i = 0; i < plane; i++) sum += row[i];
                    }
                    double m = sum / ((double)frames * plane), sq = 0;
                    for (int f = 0; f < frames; f++)
                    {
                        float* row = xp + ((long)f * channels + c) * plane;
                        for (int i = 0; i < plane; i++) sq += (row[i] - m) * (row[i] - m);
                    }
                    mp[c] = m;
                    qp[c] = sq;
                }
            });
        }
    }

    /// <summary>
    /// x [frames, channels, plane] through the affines (scale₀, shift₀, scale₁, shift₁, …, each channels long): forward
    /// each as one float FMA in order (<see cref="ChannelOps.ScaleShift(Span{float}, int, int, int, ReadOnlySpan{float}, ReadOnlySpan{float}, ComputeOptions?)"/>),
    /// inverse last to first in double, v = (v − shift) / scale, rounded to float once.
    /// </summary>
    public static void Affines(Span<float> x, int frames, int channels, int plane, ReadOnlySpan<float> affines, int count, bool inverse, int threads)
    {
        Check(x.Length, frames, channels, plane);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (affines.Length < 2L * count * channels) throw new ArgumentException($"affines has {affines.Length} elements, needs {2L * count * channels}", nameof(affines));
        var data = x[..(frames * channels * plane)];
        if (!inverse)
        {
            for (int b = 0; b < count; b++)
                ChannelOps.ScaleShift(data, frames, channels, plane, affines.Slice(2 * b * channels, channels),
                    affines.Slice((2 * b + 1) * channels, channels), IsaInfo.Best, threads);
            return;
        }
        int rows = frames * channels;
        if (rows == 0 || count == 0) return;
        int t = Workers(rows, data.Length, threads);
        fixed (float* px = data, pa = affines)
        {
            float* xp = px, ap = pa;
            Compute.ForRanges(rows, t, (r0, r1) =>
            {
                for (int r = r0; r < r1; r++)
                {
                    int c = r % channels;
                    float* row = xp + (long)r * plane;
                    for (int i = 0; i < plane; i++)
                    {
                        double v = row[i];
                        for (int b = count - 1; b >= 0; b--) v = (v - ap[(2 * b + 1) * channels + c]) / ap[2 * b * channels + c];
                        row[i] = (float)v;
                    }
                }
            });
        }
    }

    private static int Workers(int items, long elements, int threads) =>
        (int)Math.Clamp(elements / MinElementsPerThread, 1, Math.Min(threads, items));

    private static void Check(int length, int frames, int channels, int plane)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frames);
        ArgumentOutOfRangeException.ThrowIfNegative(channels);
        ArgumentOutOfRangeException.ThrowIfNegative(plane);
        if (length < (long)frames * channels * plane) throw new ArgumentException($"x has {length} elements, needs {(long)frames * channels * plane}");
    }
}
