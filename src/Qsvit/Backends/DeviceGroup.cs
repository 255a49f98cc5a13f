using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace Qsvit.Backends;

/// <summary>
/// Several devices of one host used as one (<c>--device cuda:0,1</c> or <c>cuda:all</c>): every device holds the weights
/// and runs whole batches, one host thread per device, so each batch is computed exactly as on one device and results
/// do not depend on how many there are. <see cref="Models.Sdtv2Model"/> keeps one model instance per device
/// (<see cref="Models.Sdtv2Model.ForwardBatches"/> queues batches: each device takes the next as soon as it is free, and
/// results come back in batch order); the recorders it makes reduce the devices' data in batch order whichever device
/// ran which batch (spike counts are integers; drift and norm sums are kept per batch and added in batch order).
/// <para>As a plain <see cref="IBackend"/> the group runs single passes on its first device, on the thread that opened
/// it; devices 1 … N−1 are opened, used and disposed only on their own threads.</para>
/// </summary>
public sealed class DeviceGroup : ForwardingBackend
{
    private readonly IBackend[] _devices;
    private readonly Worker?[] _workers;   // [0] is null: the first device runs on the caller's thread
    private bool _streaming;               // the device threads serve a Stream (set before they start it)

    private DeviceGroup(IBackend[] devices, Worker?[] workers, DeviceSpec spec) : base(devices[0])
    {
        _devices = devices;
        _workers = workers;
        Device = spec;
    }

    /// <summary>
    /// Opens one device per opener: the first on the calling thread, the others on threads of their own, in parallel.
    /// If any fails, those opened are closed and its <see cref="QsvitException"/> is thrown (other errors are wrapped
    /// in one naming the device).
    /// </summary>
    /// <param name="spec">What the group is called (e.g. cuda:0,1); null: the devices' own specs joined.</param>
    public static DeviceGroup Open(IReadOnlyList<Func<IBackend>> openers, DeviceSpec? spec = null)
    {
        ArgumentNullException.ThrowIfNull(openers);
        if (openers.Count < 1) throw new ArgumentException("a device group needs at least one device", nameof(openers));
        int n = openers.Count;
        var workers = new Worker?[n];
        var devices = new IBackend?[n];
        for (int d = 1; d < n; d++) workers[d] = new Worker(d);
        try
        {
            RunEach(workers, d => devices[d] = openers[d](), d => $"device {d} of the group");
        }
        catch
        {
            for (int d = 0; d < n; d++)
            {
                if (devices[d] is not { } opened) continue;
                try
                {
                    if (workers[d] is { } w) w.Run(opened.Dispose);
                    else opened.Dispose();
                }
                catch (Exception) { /* keep the first error */ }
            }
            foreach (var w in workers) w?.Dispose();
            throw;
        }
        var all = devices.Select(x => x!).ToArray();
        spec ??= all.All(x => x.Device.Kind == DeviceKind.Cuda) ? DeviceSpec.CudaGroup(all.Select(x => x.Device.Index).ToArray()) : all[0].Device;
        return new DeviceGroup(all, workers, spec);
    }

    /// <summary>The devices, in order; device 0 also serves the group's own <see cref="IBackend"/> calls.</summary>
    public IReadOnlyList<IBackend> Devices => _devices;
    public int Count => _devices.Length;

    public override DeviceSpec Device { get; }
    public override string Description => _devices.Length == 1 ? _devices[0].Description
        : $"{_devices.Length} devices, batches split across them: " + string.Join("; ", _devices.Select(d => d.Description));
    /// <summary>Waits for the queued work of every device.</summary>
    public override void Synchronize() => OnEach(d => _devices[d].Synchronize());

    /// <summary>
    /// Runs work[d] on device d's thread (work[0] on the calling thread), all at once, and waits for all. The first
    /// failure in device order is rethrown: a <see cref="QsvitException"/> as it is, anything else (a device that failed)
    /// wrapped in one that names the device.
    /// </summary>
    public void Run(IReadOnlyList<Action?> work)
    {
        if (work.Count != _devices.Length) throw new ArgumentException($"{work.Count} work items for {_devices.Length} devices", nameof(work));
        ThrowIfStreaming();
        RunEach(_workers, d => work[d]?.Invoke(), d => _devices[d].Device.ToString());
    }

    /// <summary>work(d) on every device's own thread, in parallel.</summary>
    public void OnEach(Action<int> work) => Run(_devices.Select((_, d) => (Action?)(() => work(d))).ToArray());

    /// <summary>work(d, device d) on every device's own thread, in parallel; results in device order.</summary>
    public T[] OnEach<T>(Func<int, IBackend, T> work)
    {
        var results = new T[_devices.Length];
        Run(_devices.Select((_, d) => (Action?)(() => results[d] = work(d, _devices[d]))).ToArray());
        return results;
    }

    /// <summary>
    /// Runs each item of <paramref name="items"/> on whichever device is free first (<see cref="DeviceQueue{T, TResult}"/>):
    /// run(d, item) on device d's thread (device 0: the calling thread), on the device the item names, or any where it
    /// names −1. The items are read on the calling thread, at most 2·N waiting and 4·N not yet delivered, and
    /// done(index, result, device) is called there in item order. The first failure stops the queue and is rethrown
    /// once no device runs anything (a device's error as <see cref="Run"/> reports it; the caller's own as it is).
    /// run and done must not give the group other work (its device threads are busy until the queue ends).
    /// </summary>
    internal void Stream<T, TResult>(IEnumerable<(T Item, int Device)> items, Func<int, T, TResult> run, Action<int, TResult, int> done)
    {
        ThrowIfStreaming();
        _streaming = true;
        try { StreamOnDevices(items, run, done); }
        finally { _streaming = false; }
    }

    /// <summary>The device threads serve a queue until it ends: work for all of them (Run, OnEach, another queue) from its callbacks would wait forever.</summary>
    private void ThrowIfStreaming()
    {
        if (_streaming) throw new InvalidOperationException("the device group's threads are running a queue of batches; use its devices once it has ended");
    }

    private void StreamOnDevices<T, TResult>(IEnumerable<(T Item, int Device)> items, Func<int, T, TResult> run, Action<int, TResult, int> done)
    {
        int n = _devices.Length;
        using var source = items.GetEnumerator();
        var queue = new DeviceQueue<T, TResult>(n, depth: 2 * n, window: 4 * n, d => _devices[d].Device.ToString(), source, run, done);
        var loops = new Task[n];
        for (int d = 1; d < n; d++)
        {
            int device = d;
            loops[d] = _workers[d]!.Post(() => queue.Work(device));
        }
        queue.Lead();
        for (int d = 1; d < n; d++)
        {
            try { loops[d].GetAwaiter().GetResult(); }
            catch (Exception e) { queue.Fail(ExceptionDispatchInfo.Capture(Wrap(e, _devices[d].Device.ToString()))); }
        }
        queue.ThrowIfFailed();
    }

    private static void RunEach(Worker?[] workers, Action<int> work, Func<int, string> name)
    {
        int n = workers.Length;
        var done = new Task[n];
        for (int d = 1; d < n; d++)
        {
            int device = d;
            done[d] = workers[d]!.Post(() => work(device));
        }
        ExceptionDispatchInfo? first = null;
        try { work(0); }
        catch (Exception e) { first = ExceptionDispatchInfo.Capture(Wrap(e, name(0))); }
        for (int d = 1; d < n; d++)
        {
            try { done[d].GetAwaiter().GetResult(); }
            catch (Exception e) { first ??= ExceptionDispatchInfo.Capture(Wrap(e, name(d))); }
        }
        first?.Throw();
    }

    internal static Exception Wrap(Exception e, string device) => e is QsvitException or OperationCanceledException ? e
        : new QsvitException($"{device} failed: {e.Message}", e);

    // ---- IBackend: single passes run on the first device (Inner); a batch must fit it (every device holds the same model) ----

    public override void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null)
    {
        RefuseGroupRecorder(recorder);
        base.Lif(input, spikes, length, timesteps, threshold, recorder, layer, next);
    }

    public override void AddLif(DeviceBuffer x, DeviceBuffer y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null)
    {
        RefuseGroupRecorder(recorder);
        base.AddLif(x, y, length, spikes, timesteps, threshold, recorder, layer, next);
    }

    public override void ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
        DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder)
    {
        RefuseGroupRecorder(recorder);
        base.ConvLif(layer, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder);
    }

    public override void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
        DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output)
    {
        RefuseGroupRecorder(recorder);
        base.ConvLifConv(first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder, second, output);
    }

    private static void RefuseGroupRecorder(LifRecorder? recorder)
    {
        if (recorder is IGroupRecorder)
            throw new ArgumentException("a device group's recorder records whole batches: run them with Sdtv2Model.Forward or ForwardBatches", nameof(recorder));
    }

    // ---- observers: one part per device, merged in batch order -----------------------------------------------------------

    public override SpikeCounter CreateSpikeCounter(int layers) => new GroupSpikeCounter(this, OnEach((_, b) => b.CreateSpikeCounter(layers)));
    public override MembraneReference CreateMembraneReference(int layers) => new GroupMembraneReference(this, OnEach((_, b) => b.CreateMembraneReference(layers)));
    public override DriftMeter CreateDriftMeter(MembraneReference reference) => reference is GroupMembraneReference g && g.Group == this
        ? new GroupDriftMeter(this, g, OnEach((d, b) => b.CreateDriftMeter(g.Parts[d])))
        : throw new ArgumentException("the reference must be a sealed MembraneReference of this device group", nameof(reference));

    public override void Dispose()
    {
        try { Run(_devices.Select(d => (Action?)d.Dispose).ToArray()); }
        finally { foreach (var w in _workers) w?.Dispose(); }
    }

    /// <summary>A thread that runs one device's work in the order posted.</summary>
    private sealed class Worker : IDisposable
    {
        private readonly BlockingCollection<Action> _queue = new();
        private readonly Thread _thread;

        public Worker(int device)
        {
            _thread = new Thread(() => { foreach (var a in _queue.GetConsumingEnumerable()) a(); })
            {
                IsBackground = true,
                Name = $"qsvit device {device}",
            };
            _thread.Start();
        }

        public Task Post(Action work)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _queue.Add(() =>
            {
                try { work(); done.SetResult(); }
                catch (Exception e) { done.SetException(e); }
            });
            return done.Task;
        }

        public void Run(Action work) => Post(work).GetAwaiter().GetResult();

        public void Dispose()
        {
            _queue.CompleteAdding();
            _thread.Join();
            _queue.Dispose();
        }
    }
}

/// <summary>
/// A recorder of a <see cref="DeviceGroup"/>: one part per device. For each pass (since made, cleared or reset) it may name
/// the device that must run it; it is told, in pass order, which device ran each, and reduces the parts in pass order.
/// </summary>
internal interface IGroupRecorder
{
    LifRecorder Part(int device);
    /// <summary>Counts the next pass; the device that must run it, or −1 where any may.</summary>
    int NextPass();
    /// <summary>The next pass in pass order ran on <paramref name="device"/>.</summary>
    void Ran(int device);
}

/// <summary>Device parts are read, cleared and disposed on their devices' threads. Counts are integers: any order adds up alike.</summary>
internal sealed class GroupSpikeCounter(DeviceGroup group, SpikeCounter[] parts) : SpikeCounter, IGroupRecorder
{
    public LifRecorder Part(int device) => parts[device];
    public int NextPass() => -1;
    public void Ran(int device) { }

    public override LifCounts Read()
    {
        var counts = group.OnEach((d, _) => parts[d].Read());
        long[] Sum(Func<LifCounts, long[]> of) =>
            Enumerable.Range(0, of(counts[0]).Length).Select(l => counts.Sum(c => of(c)[l])).ToArray();
        return new LifCounts(Sum(c => c.Spikes), Sum(c => c.Neurons));
    }

    public override void Clear() => group.OnEach(d => parts[d].Clear());

    public override void Dispose() => group.OnEach(d => parts[d].Dispose());
}

/// <summary>Chunk k of the group is the next chunk of the device that ran pass k (<see cref="ChunkDevices"/>).</summary>
internal sealed class GroupMembraneReference(DeviceGroup group, MembraneReference[] parts) : MembraneReference, IGroupRecorder
{
    private readonly List<int> _devices = new();
    public DeviceGroup Group => group;
    public MembraneReference[] Parts => parts;
    /// <summary>The device that holds each chunk, in pass order: a drift meter runs pass k there.</summary>
    public IReadOnlyList<int> ChunkDevices => _devices;
    public LifRecorder Part(int device) => parts[device];
    public int NextPass() => -1;
    public void Ran(int device) => _devices.Add(device);

    public override void Seal() => group.OnEach(d => parts[d].Seal());

    public override int Layers => parts.Max(p => p.Layers);
    public override long[] Neurons
    {
        get
        {
            var each = group.OnEach((d, _) => parts[d].Neurons);
            return Enumerable.Range(0, Layers).Select(l => each.Sum(n => l < n.Length ? n[l] : 0)).ToArray();
        }
    }

    public override long CapturedFloats => parts.Sum(p => p.CapturedFloats);
    public override IReadOnlyList<double[]> ChunkNormSquared => Interleave(group.OnEach((d, _) => parts[d].ChunkNormSquared), _devices);

    /// <summary>
    /// The devices' per-chunk lists back in pass order: pass k is the next chunk of device <paramref name="devices"/>[k]
    /// (each device runs its passes in pass order).
    /// </summary>
    internal static double[][] Interleave(IReadOnlyList<double[]>[] perDevice, IReadOnlyList<int> devices)
    {
        var next = new int[perDevice.Length];
        var chunks = new double[devices.Count][];
        for (int k = 0; k < chunks.Length; k++)
        {
            int d = devices[k];
            var list = perDevice[d];
            chunks[k] = next[d] < list.Count ? list[next[d]++]
                : throw new InvalidOperationException($"pass {k} of the device group has no chunk on device {d}");
        }
        return chunks;
    }

    public override void Dispose() => group.OnEach(d => parts[d].Dispose());
}

/// <summary>Pass k runs on the device that holds the reference's chunk k, so each device compares its own chunks in order.</summary>
internal sealed class GroupDriftMeter(DeviceGroup group, GroupMembraneReference reference, DriftMeter[] parts) : DriftMeter, IGroupRecorder
{
    private readonly List<int> _devices = new();
    private int _passes;
    public LifRecorder Part(int device) => parts[device];
    /// <summary>Past the reference's chunks any device may run it (its part then reports that it has no chunk to compare).</summary>
    public int NextPass()
    {
        int k = _passes++;
        return k < reference.ChunkDevices.Count ? reference.ChunkDevices[k] : -1;
    }
    public void Ran(int device) => _devices.Add(device);
    public override MembraneReference Reference => reference;

    public override void Reset()
    {
        group.OnEach(d => parts[d].Reset());
        _passes = 0;
        _devices.Clear();
    }

    public override DriftChunks ReadChunks()
    {
        var each = group.OnEach((d, _) => parts[d].ReadChunks());
        int layers = each.Max(c => c.Mismatches.Length);
        var mismatches = Enumerable.Range(0, layers).Select(l => each.Sum(c => l < c.Mismatches.Length ? c.Mismatches[l] : 0)).ToArray();
        return new DriftChunks(GroupMembraneReference.Interleave(each.Select(c => c.DiffSquared).ToArray(), _devices), mismatches, each.Max(c => c.LayersSeen));
    }

    public override void Dispose() => group.OnEach(d => parts[d].Dispose());
}
