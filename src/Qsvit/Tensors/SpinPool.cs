using System.Diagnostics;

namespace Qsvit.Tensors;

/// <summary>
/// Worker threads for <see cref="Compute.For"/> that spin for a short while after each call before they sleep, as OpenMP's
/// and PyTorch's intra-op pools do. A forward pass is a chain of short parallel ops (a 4 × 4-map layer at batch 32 is tens
/// of microseconds a thread at 16 threads); Parallel.For wakes thread-pool workers for each, and the wake-ups, not the
/// arithmetic, then bound the pass. One call runs at a time: a call made while another runs, or from inside a body,
/// returns false and the caller uses Parallel.For. <c>QSVIT_SPIN_POOL=0</c> turns the pool off (for comparisons).
/// </summary>
internal sealed class SpinPool
{
    /// <summary>How long an idle worker spins before it sleeps (the gap between the ops of one pass is far shorter).</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 10_000; // 100 µs

    /// <summary>The process's pool, or null where it is turned off or one core leaves nothing to share.</summary>
    public static SpinPool? Shared { get; } =
        Environment.GetEnvironmentVariable("QSVIT_SPIN_POOL") == "0" || Environment.ProcessorCount < 2 ? null : new SpinPool(Environment.ProcessorCount - 1);

    private readonly int _capacity;
    private readonly object _gate = new();   // held by the one call running
    private readonly object _sleep = new();  // sleeping workers wait on it
    private readonly List<Thread> _workers = new();
    private Job? _job;
    private long _generation;

    [ThreadStatic] private static bool t_inside;

    private SpinPool(int capacity) => _capacity = capacity;

    /// <summary>
    /// Runs body(0..count−1) on the calling thread and up to threads − 1 workers, items handed out one at a time; false
    /// (nothing run) when another call holds the pool or this is a call from inside a body. Exceptions are rethrown as one
    /// AggregateException, as Parallel.For does, after every item has run.
    /// </summary>
    public bool TryRun(int count, int threads, Action<int> body)
    {
        if (t_inside || !Monitor.TryEnter(_gate)) return false;
        try
        {
            t_inside = true;
            int helpers = Math.Min(Math.Min(threads, count) - 1, _capacity);
            while (_workers.Count < helpers) Start(_workers.Count);
            var job = new Job(body, count, helpers);
            Volatile.Write(ref _job, job);
            Interlocked.Increment(ref _generation);
            lock (_sleep) Monitor.PulseAll(_sleep);
            job.Work();
            job.WaitForAll();
            if (job.Error is { } e) throw new AggregateException(e);
            return true;
        }
        finally
        {
            t_inside = false;
            Monitor.Exit(_gate);
        }
    }

    private void Start(int index)
    {
        var thread = new Thread(() => Loop(index)) { IsBackground = true, Name = $"qsvit compute {index + 1}" };
        _workers.Add(thread);
        thread.Start();
    }

    private void Loop(int index)
    {
        t_inside = true;
        long seen = Volatile.Read(ref _generation);
        while (true)
        {
            long start = Stopwatch.GetTimestamp(), g;
            while ((g = Volatile.Read(ref _generation)) == seen)
            {
                if (Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                // The publisher bumps the generation before it takes this lock to pulse, so a worker that finds it unchanged
                // under the lock is waiting before the pulse comes.
                lock (_sleep)
                    while ((g = Volatile.Read(ref _generation)) == seen) Monitor.Wait(_sleep);
                break;
            }
            seen = g;
            // The job is published before its generation: this is that job or a later one (an old one has no items left).
            if (Volatile.Read(ref _job) is { } job && index < job.Helpers) job.Work();
        }
    }

    private sealed class Job(Action<int> body, int count, int helpers)
    {
        private int _next = -1, _done;
        private Exception? _error;

        public int Helpers { get; } = helpers;
        public Exception? Error => Volatile.Read(ref _error);

        public void Work()
        {
            int i;
            while ((i = Interlocked.Increment(ref _next)) < count)
            {
                try { body(i); }
                catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
                Interlocked.Increment(ref _done);
            }
        }

        /// <summary>Items taken by workers finish within one item's time: spin, yielding, rather than sleep.</summary>
        public void WaitForAll()
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _done) < count) spin.SpinOnce(sleep1Threshold: -1);
        }
    }
}
