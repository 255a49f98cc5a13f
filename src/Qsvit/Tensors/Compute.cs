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
}
