using System.Runtime.ExceptionServices;

namespace Qsvit.Backends;

/// <summary>
/// The work queue of a <see cref="DeviceGroup"/>'s <see cref="DeviceGroup.Stream"/>: items are read from the caller's
/// sequence on the caller's thread, a bounded number ahead, and each device takes the earliest item it may run (any, or
/// one pinned to it) as soon as it is free, so no device waits for a slower one. Results are handed back on the caller's
/// thread in item order. Device 0 runs on the caller's thread (its context lives there), between reading and delivering.
/// On the first error the queue stops taking items, lets the running ones finish and rethrows it.
/// </summary>
/// <param name="depth">Items read ahead and waiting for a device: the other devices' supply while device 0 runs one.</param>
/// <param name="window">Items read and not yet delivered: how far a fast device may run ahead of the slowest held item.</param>
internal sealed class DeviceQueue<T, TResult>(
    int devices, int depth, int window, Func<int, string> deviceName,
    IEnumerator<(T Item, int Device)> source, Func<int, T, TResult> run, Action<int, TResult, int> done)
{
    private sealed class Entry(int index, T item, int pin)
    {
        public readonly int Index = index;
        public readonly int Pin = pin;   // the device that must run it, or −1
        public T Item = item;
        public TResult? Result;
        public int Device = -1;
        public bool Finished;
    }

    private readonly object _gate = new();
    private readonly List<Entry> _waiting = new();      // read, not taken by a device, in item order
    private readonly Queue<Entry> _undelivered = new(); // read, not delivered, in item order
    private int _read;
    private bool _exhausted, _stop;
    private ExceptionDispatchInfo? _error;

    /// <summary>Device d's loop (d ≥ 1, on its own thread): takes items until none can come for it or the queue stops.</summary>
    public void Work(int d)
    {
        while (true)
        {
            Entry? e;
            lock (_gate)
            {
                while (true)
                {
                    if (_stop) return;
                    if ((e = Take(d)) is not null) break;
                    if (_exhausted) return;   // nothing waits for it and nothing more comes
                    Monitor.Wait(_gate);
                }
            }
            if (!Run(d, e)) return;
        }
    }

    /// <summary>The caller's loop: reads, runs device 0's items and delivers, until all are delivered or one fails.</summary>
    public void Lead()
    {
        try
        {
            while (true)
            {
                Deliver();
                Read();
                Entry? mine;
                lock (_gate)
                {
                    if (_stop) break;
                    if (_exhausted && _undelivered.Count == 0) break;
                    if ((mine = Take(0)) is null)
                    {
                        // Nothing for device 0: wait for a result unless one is ready to deliver or more can be read.
                        if (!HeadFinished && !WantsMore) Monitor.Wait(_gate);
                        continue;
                    }
                }
                Read();   // keep the others supplied while device 0 runs
                if (!Run(0, mine)) break;
            }
        }
        catch (Exception e)
        {
            // The caller's sequence or callback failed: stop the devices, then report it as it is.
            Fail(ExceptionDispatchInfo.Capture(e));
        }
        lock (_gate)
        {
            _stop = true;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>The first error, after every device has stopped.</summary>
    public void ThrowIfFailed() => _error?.Throw();

    /// <summary>Records an error the queue itself did not see (a device loop that could not run); the first one counts.</summary>
    public void Fail(ExceptionDispatchInfo error)
    {
        lock (_gate)
        {
            _error ??= error;
            _stop = true;
            Monitor.PulseAll(_gate);
        }
    }

    private bool HeadFinished => _undelivered.TryPeek(out var head) && head.Finished;

    /// <summary>Reading on pays: room in the window, and too few items waiting or a device with none it may take.</summary>
    private bool WantsMore => !_exhausted && !_stop && _undelivered.Count < window
        && (_waiting.Count < depth || Enumerable.Range(0, devices).Any(d => !_waiting.Exists(e => e.Pin < 0 || e.Pin == d)));

    /// <summary>The earliest waiting item device d may run (items are taken in order, so each device runs its own in order).</summary>
    private Entry? Take(int d)
    {
        int i = _waiting.FindIndex(e => e.Pin < 0 || e.Pin == d);
        if (i < 0) return null;
        var e = _waiting[i];
        _waiting.RemoveAt(i);
        return e;
    }

    /// <summary>Reads items (outside the lock: the sequence may block) while <see cref="WantsMore"/>.</summary>
    private void Read()
    {
        while (true)
        {
            lock (_gate)
                if (!WantsMore) return;
            bool more = source.MoveNext();
            lock (_gate)
            {
                if (!more) _exhausted = true;
                else
                {
                    var (item, pin) = source.Current;
                    if (pin >= devices) throw new InvalidOperationException($"item {_read} is pinned to device {pin} of {devices}");
                    var e = new Entry(_read++, item, pin);
                    _waiting.Add(e);
                    _undelivered.Enqueue(e);
                }
                Monitor.PulseAll(_gate);
            }
            if (!more) return;
        }
    }

    /// <summary>Runs an item on device d; false if it failed (the queue then stops).</summary>
    private bool Run(int d, Entry e)
    {
        TResult result;
        try { result = run(d, e.Item); }
        catch (Exception ex)
        {
            Fail(ExceptionDispatchInfo.Capture(DeviceGroup.Wrap(ex, deviceName(d))));
            return false;
        }
        lock (_gate)
        {
            e.Result = result;
            e.Device = d;
            e.Finished = true;
            e.Item = default!;   // the item's data is no longer needed
            Monitor.PulseAll(_gate);
        }
        return true;
    }

    /// <summary>Hands finished items at the head to the caller, in item order (outside the lock: the callback may take time).</summary>
    private void Deliver()
    {
        while (true)
        {
            Entry e;
            lock (_gate)
            {
                if (_stop || !HeadFinished) return;
                e = _undelivered.Dequeue();
                Monitor.PulseAll(_gate);   // room in the window
            }
            done(e.Index, e.Result!, e.Device);
        }
    }
}
