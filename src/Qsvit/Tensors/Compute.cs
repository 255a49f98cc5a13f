namespace Qsvit.Tensors;

/// <summary>
/// How the CPU kernels run, passed explicitly (no process-wide state), as ImageSharp's Configuration. Immutable: make a
/// new one with <c>with { Threads = n }</c>. The CPU backend owns one.
/// </summary>
public sealed record ComputeOptions
{
    private readonly int _threads = Environment.ProcessorCount;

    /// <summary>All cores.</summary>
    public static ComputeOptions Default { get; } = new();

    /// <summary>Upper bound on worker threads any kernel uses (at least 1).</summary>
    public int Threads
    {
        get => _threads;
        init => _threads = value >= 1 ? value : throw new QsvitException($"threads must be at least 1, got {value}");
    }

    /// <summary>How a GPU backend computes spike-input convolutions (<c>--gemm</c>): tensor cores (default) or fp32 SGEMM.</summary>
    public Backends.SpikeInputGemm SpikeGemm { get; init; }

    /// <summary>
    /// How the CPU backend's integer spike convolutions sum (<see cref="Tensors.SpikeAccumulation"/>): by the input's firing
    /// rate (default), or forced dense or event-driven (for tests and benchmarks). The results are identical.
    /// </summary>
    public SpikeAccumulation SpikeAccumulation { get; init; }

    /// <summary>Parallel.For options bounded by <see cref="Threads"/>.</summary>
    public ParallelOptions Parallel => new() { MaxDegreeOfParallelism = _threads };
}

/// <summary>Work-splitting helpers shared by the kernels.</summary>
internal static class Compute
{
    /// <summary>
    /// Runs body(0..count-1) on up to <paramref name="threads"/> threads; inline when one thread or one item; on the
    /// <see cref="SpinPool"/> when it is free, else by Parallel.For.
    /// </summary>
    internal static void For(int count, int threads, Action<int> body)
    {
        if (count <= 0) return;
        if (threads <= 1 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        if (SpinPool.Shared?.TryRun(count, threads, body) == true) return;
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
    }

    /// <summary>
    /// Cuts <paramref name="total"/> items into <paramref name="parts"/> contiguous near-equal ranges and runs
    /// body(start, end) for each, one range per thread (<see cref="For"/>).
    /// </summary>
    internal static void ForRanges(int total, int parts, Action<int, int> body) =>
        For(parts, parts, part => body(ChunkStart(total, parts, part), ChunkStart(total, parts, part + 1)));

    /// <summary>
    /// Fewer elements a thread than this and memory-bound ops (per-channel affines, adds, copies) use fewer threads: 128 KB a
    /// thread, as a hand-off costs microseconds on the <see cref="SpinPool"/> (a BN over a 4 × 4-map layer at batch 32 is
    /// 256K floats; a bound of 256K had kept it on one thread).
    /// </summary>
    internal const int MinElementsPerThread = 1 << 15;

    /// <summary>Threads for a memory-bound op over <paramref name="elements"/> values in <paramref name="items"/> indivisible items.</summary>
    internal static int MemoryBoundParts(long elements, int threads, int items) =>
        (int)Math.Clamp(elements / MinElementsPerThread, 1, Math.Max(1, Math.Min(threads, items)));

    /// <summary>Start of chunk <paramref name="i"/> when <paramref name="total"/> items are cut into <paramref name="parts"/> near-equal chunks.</summary>
    internal static int ChunkStart(int total, int parts, int i) => (int)((long)total * i / parts);
}
