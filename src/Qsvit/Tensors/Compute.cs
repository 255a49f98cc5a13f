namespace Qsvit.Tensors;

/// <summary>Process-wide compute settings shared by the kernels.</summary>
public static class Compute
{
    private static int _threads = Environment.ProcessorCount;

    /// <summary>Upper bound on worker threads any kernel uses.</summary>
    public static int Threads
    {
        get => _threads;
        set => _threads = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), "threads must be at least 1");
    }

    public static ParallelOptions Options => new() { MaxDegreeOfParallelism = _threads };

    /// <summary>Runs body(0..count-1) on up to <paramref name="threads"/> threads; inline when one thread or one item.</summary>
    internal static void For(int count, int threads, Action<int> body)
    {
        if (count <= 0) return;
        if (threads <= 1 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
    }

    /// <summary>Start of chunk <paramref name="i"/> when <paramref name="total"/> items are cut into <paramref name="parts"/> near-equal chunks.</summary>
    internal static int ChunkStart(int total, int parts, int i) => (int)((long)total * i / parts);
}
