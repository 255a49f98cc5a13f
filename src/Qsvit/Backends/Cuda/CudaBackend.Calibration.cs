using ILGPU;
using ILGPU.Runtime;

namespace Qsvit.Backends.Cuda;

// The calibration reductions of IBackend (corrections after quantization) on the device: only per-position or
// per-channel results come back. Temporaries come from the workspace (doubles in rented float slots).
public sealed partial class CudaBackend
{
    private CalibrationOps? _calibration;
    private CalibrationOps Calibration => _calibration ??= new CalibrationOps(_acc);

    public void AccumulateFrames(DeviceBuffer x, int frames, long length, double weight, Span<double> sums)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(frames);
        if (sums.Length < length) throw new ArgumentException($"sums has {sums.Length} elements, needs {length}", nameof(sums));
        if (frames == 0 || length == 0) return;
        int mark = Mark();
        var device = Doubles(Rent(2 * length), length);
        var view = (ArrayView1D<double, Stride1D.Dense>)device;
        view.CopyFromCPU(_acc.DefaultStream, sums[..(int)length]);
        Calibration.AccumulateFrames(V(x), frames, length, weight, device);
        view.CopyToCPU(_acc.DefaultStream, sums[..(int)length]);
        _acc.DefaultStream.Synchronize();
        Release(mark);
    }

    public void ChannelMoments(DeviceBuffer x, int frames, int channels, int plane, Span<double> mean, Span<double> squares)
    {
        if (mean.Length < channels || squares.Length < channels) throw new ArgumentException($"mean and squares need {channels} elements each");
        if (channels == 0) return;
        int mark = Mark();
        int chunks = CalibrationOps.Chunks((long)frames * plane);
        var partials = Doubles(Rent(2L * channels * chunks), (long)channels * chunks);
        var results = Doubles(Rent(4L * channels), 2L * channels);
        ArrayView<double> m = results.SubView(0, channels), q = results.SubView(channels, channels);
        Calibration.ChannelMoments(V(x), frames, channels, plane, partials, m, q);
        ((ArrayView1D<double, Stride1D.Dense>)m).CopyToCPU(_acc.DefaultStream, mean[..channels]);
        ((ArrayView1D<double, Stride1D.Dense>)q).CopyToCPU(_acc.DefaultStream, squares[..channels]);
        _acc.DefaultStream.Synchronize();
        Release(mark);
    }

    public void ChannelAffines(DeviceBuffer x, int frames, int channels, int plane, DeviceBuffer affines, int count, bool inverse) =>
        Calibration.ChannelAffines(V(x), frames, channels, plane, V(affines), count, inverse);

    private static ArrayView<double> Doubles(DeviceBuffer b, long length) => V(b).SubView(0, 2 * length).Cast<double>();
}

/// <summary>Launchers of <see cref="CalibrationKernels"/>, compiled on first use (only runs with corrections need them).</summary>
internal sealed class CalibrationOps
{
    /// <summary>Values of one channel each group of the moment reduction sums (fixed, so results never depend on the device).</summary>
    public const int Chunk = 1 << 14;

    private readonly Action<Index1D, ArrayView<float>, ArrayView<double>, int, int, double> _frames;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<double>, int, int, int, int, int, int, ArrayView<double>> _partials;
    private readonly Action<Index1D, ArrayView<double>, int, double, ArrayView<double>> _finish;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, int, int, int, int> _affines;
    private readonly int _threads;

    public CalibrationOps(Accelerator acc)
    {
        _threads = GpuOps.ReduceGroupSize(acc.MaxNumThreadsPerGroup, CalibrationKernels.MaxThreads);
        _frames = GpuOps.Load("AccumulateFrames", () => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<double>, int, int, double>(CalibrationKernels.AccumulateFrames));
        _partials = GpuOps.Load("MomentPartials", () => acc.LoadStreamKernel<ArrayView<float>, ArrayView<double>, int, int, int, int, int, int, ArrayView<double>>(CalibrationKernels.MomentPartials));
        _finish = GpuOps.Load("SumChunks", () => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, int, double, ArrayView<double>>(CalibrationKernels.SumChunks));
        _affines = acc.AcceleratorType == AcceleratorType.Cuda
            ? GpuOps.Load("ChannelAffines", () => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int, int>(CalibrationKernels.ChannelAffines<ContractedFma>))
            : GpuOps.Load("ChannelAffines", () => acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, int, int, int>(CalibrationKernels.ChannelAffines<ExactFma>));
    }

    /// <summary>Groups per channel for <paramref name="perChannel"/> values.</summary>
    public static int Chunks(long perChannel) => (int)Math.Max(1, (perChannel + Chunk - 1) / Chunk);

    /// <summary>sums[i] += weight·x[f·length + i], frames in order, one thread per position.</summary>
    public void AccumulateFrames(ArrayView<float> x, int frames, long length, double weight, ArrayView<double> sums)
    {
        CheckInt((long)frames * length);
        if (x.Length < (long)frames * length) throw new ArgumentException($"x has {x.Length} elements, needs {(long)frames * length}", nameof(x));
        _frames((int)length, x, sums, frames, (int)length, weight);
    }

    /// <summary>mean[c] and squares[c] of x [frames, channels, plane]: chunk partials tree-reduced per group, then summed per channel in chunk order.</summary>
    public void ChannelMoments(ArrayView<float> x, int frames, int channels, int plane, ArrayView<double> partials, ArrayView<double> mean, ArrayView<double> squares)
    {
        long n = (long)frames * plane;
        CheckInt(n * channels);
        if (x.Length < n * channels) throw new ArgumentException($"x has {x.Length} elements, needs {n * channels}", nameof(x));
        int chunks = Chunks(n);
        var config = new KernelConfig(new Index1D(channels * chunks), new Index1D(_threads));
        _partials(config, x, mean, 0, channels, plane, (int)n, Chunk, chunks, partials);
        _finish(channels, partials, chunks, n, mean);
        _partials(config, x, mean, 1, channels, plane, (int)n, Chunk, chunks, partials);
        _finish(channels, partials, chunks, 1, squares);
    }

    public void ChannelAffines(ArrayView<float> x, int frames, int channels, int plane, ArrayView<float> affines, int count, bool inverse)
    {
        long length = (long)frames * channels * plane;
        CheckInt(length);
        if (x.Length < length) throw new ArgumentException($"x has {x.Length} elements, needs {length}", nameof(x));
        if (affines.Length < 2L * count * channels) throw new ArgumentException($"affines has {affines.Length} elements, needs {2L * count * channels}", nameof(affines));
        if (length == 0 || count == 0) return;
        _affines((int)length, x, affines, channels, plane, count, inverse ? 1 : 0);
    }

    private static void CheckInt(long length)
    {
        if (length > int.MaxValue) throw new QsvitException($"a tensor of {length:N0} elements is too large for the CUDA kernels (2^31 limit); calibrate on fewer images");
    }
}

/// <summary>The calibration kernels: double accumulation, fixed orders, no float atomics (identical from run to run).</summary>
internal static class CalibrationKernels
{
    public const int MaxThreads = 256;

    /// <summary>One thread per position i: sums[i] += weight·x[f·length + i] for f in order.</summary>
    public static void AccumulateFrames(Index1D i, ArrayView<float> x, ArrayView<double> sums, int frames, int length, double weight)
    {
        double s = sums[i];
        for (int f = 0; f < frames; f++) s += x[f * length + i] * weight;
        sums[i] = s;
    }

    /// <summary>
    /// Group g = channel·chunks + k sums values [k·chunk, (k + 1)·chunk) of its channel (value j at frame j / plane,
    /// position j mod plane): x (squares = 0) or (x − mean[channel])² (squares = 1), thread-strided, then a fixed tree.
    /// </summary>
    public static void MomentPartials(ArrayView<float> x, ArrayView<double> mean, int squares, int channels, int plane, int n, int chunk, int chunks,
        ArrayView<double> partials)
    {
        var tree = SharedMemory.Allocate<double>(MaxThreads);
        int tid = Group.IdxX, threads = Group.DimX, c = Grid.IdxX / chunks, k = Grid.IdxX - c * chunks;
        int start = k * chunk, end = start + chunk < n ? start + chunk : n;
        double m = squares != 0 ? mean[c] : 0, s = 0;
        for (int j = start + tid; j < end; j += threads)
        {
            int f = j / plane;
            double v = x[(f * channels + c) * plane + (j - f * plane)];
            if (squares != 0)
            {
                double d = v - m;
                s += d * d;
            }
            else s += v;
        }
        tree[tid] = s;
        Group.Barrier();
        for (int half = threads / 2; half > 0; half /= 2)
        {
            if (tid < half) tree[tid] = tree[tid] + tree[tid + half];
            Group.Barrier();
        }
        if (tid == 0) partials[Grid.IdxX] = tree[0];
    }

    /// <summary>One thread per channel: result[c] = (Σ_k partials[c·chunks + k], k in order) / divisor.</summary>
    public static void SumChunks(Index1D c, ArrayView<double> partials, int chunks, double divisor, ArrayView<double> result)
    {
        double s = 0;
        for (int k = 0; k < chunks; k++) s += partials[c * chunks + k];
        result[c] = s / divisor;
    }

    /// <summary>
    /// One thread per value of x [frames, channels, plane]: forward, each affine as one FMA in order; inverse, undone last to
    /// first in double and rounded once.
    /// </summary>
    public static void ChannelAffines<TFma>(Index1D i, ArrayView<float> x, ArrayView<float> affines, int channels, int plane, int count, int inverse)
        where TFma : struct, IFma
    {
        int c = i / plane % channels;
        if (inverse != 0)
        {
            double v = x[i];
            for (int b = count - 1; b >= 0; b--) v = (v - affines[(2 * b + 1) * channels + c]) / affines[2 * b * channels + c];
            x[i] = (float)v;
            return;
        }
        float y = x[i];
        for (int b = 0; b < count; b++) y = default(TFma).Fma(y, affines[2 * b * channels + c], affines[(2 * b + 1) * channels + c]);
        x[i] = y;
    }
}
