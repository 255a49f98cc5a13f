using System.Runtime.InteropServices;

namespace Qsvit.Search;

/// <summary>
/// Host copies of residual streams at unit boundaries (<see cref="Models.ResidualStream"/>), for prefix reuse: a stream is
/// keyed by everything that decides it (split, images, boundary and the widths of the units before it), so any setting that
/// shares those widths may continue from it. Least recently used entries beyond <see cref="MemoryBudget"/> bytes move to
/// <see cref="SpillDirectory"/> (when given) up to <see cref="SpillBudget"/> bytes, and beyond that are dropped (a miss
/// recomputes). Not thread-safe.
/// </summary>
public sealed class PrefixCache : IDisposable
{
    private readonly LinkedList<(string Key, float[] Data)> _memory = new();   // most recent first
    private readonly Dictionary<string, LinkedListNode<(string Key, float[] Data)>> _inMemory = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, string Path, int Length)> _spilled = new();
    private readonly Dictionary<string, LinkedListNode<(string Key, string Path, int Length)>> _onDisk = new(StringComparer.Ordinal);
    private long _files;

    /// <param name="memoryBudget">Bytes of streams kept in memory (at least 1).</param>
    /// <param name="spillDirectory">Where streams beyond the memory budget go (made when needed, deleted on dispose); null: dropped.</param>
    /// <param name="spillBudget">Bytes of streams kept in <paramref name="spillDirectory"/>.</param>
    public PrefixCache(long memoryBudget, string? spillDirectory = null, long spillBudget = 0)
    {
        if (memoryBudget < 1) throw new QsvitException($"the prefix cache needs a positive memory budget, got {memoryBudget} bytes");
        if (spillBudget < 0) throw new QsvitException($"the spill budget must not be negative, got {spillBudget} bytes");
        MemoryBudget = memoryBudget;
        SpillDirectory = spillDirectory;
        SpillBudget = spillDirectory is null ? 0 : spillBudget;
        // A crashed run may have left streams behind; they are not trusted (their keys were in memory only).
        if (spillDirectory is not null && Directory.Exists(spillDirectory)) Directory.Delete(spillDirectory, recursive: true);
    }

    public long MemoryBudget { get; }
    public string? SpillDirectory { get; }
    public long SpillBudget { get; }
    public long MemoryBytes { get; private set; }
    public long SpilledBytes { get; private set; }
    /// <summary>Streams written to and read back from the spill directory, and streams dropped for want of room.</summary>
    public long Spills { get; private set; }
    public long Unspills { get; private set; }
    public long Drops { get; private set; }

    public bool Contains(string key) => _inMemory.ContainsKey(key) || _onDisk.ContainsKey(key);

    /// <summary>The stream stored under <paramref name="key"/>, or null; a spilled one is read back into memory.</summary>
    public float[]? Get(string key)
    {
        if (_inMemory.TryGetValue(key, out var node))
        {
            _memory.Remove(node);
            _memory.AddFirst(node);
            return node.Value.Data;
        }
        if (!_onDisk.TryGetValue(key, out var spilled)) return null;
        var data = new float[spilled.Value.Length];
        using (var file = File.OpenRead(spilled.Value.Path)) file.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
        RemoveSpilled(spilled);
        Unspills++;
        Put(key, data);
        return data;
    }

    /// <summary>Stores a stream (the cache keeps the array; the caller must not change it).</summary>
    public void Put(string key, float[] data)
    {
        if (_inMemory.ContainsKey(key) || _onDisk.ContainsKey(key)) return;
        _inMemory[key] = _memory.AddFirst((key, data));
        MemoryBytes += Bytes(data.Length);
        while (MemoryBytes > MemoryBudget && _memory.Last is { } last)
        {
            _memory.RemoveLast();
            _inMemory.Remove(last.Value.Key);
            MemoryBytes -= Bytes(last.Value.Data.Length);
            Spill(last.Value.Key, last.Value.Data);
        }
    }

    private void Spill(string key, float[] data)
    {
        long bytes = Bytes(data.Length);
        if (SpillDirectory is null || bytes > SpillBudget)
        {
            Drops++;
            return;
        }
        while (SpilledBytes + bytes > SpillBudget && _spilled.Last is { } oldest)
        {
            RemoveSpilled(oldest);
            Drops++;
        }
        Directory.CreateDirectory(SpillDirectory);
        var path = Path.Combine(SpillDirectory, $"{_files++}.f32");
        using (var file = File.Create(path)) file.Write(MemoryMarshal.AsBytes(data.AsSpan()));
        _onDisk[key] = _spilled.AddFirst((key, path, data.Length));
        SpilledBytes += bytes;
        Spills++;
    }

    private void RemoveSpilled(LinkedListNode<(string Key, string Path, int Length)> node)
    {
        _spilled.Remove(node);
        _onDisk.Remove(node.Value.Key);
        SpilledBytes -= Bytes(node.Value.Length);
        File.Delete(node.Value.Path);
    }

    private static long Bytes(int floats) => (long)floats * sizeof(float);

    public void Dispose()
    {
        _memory.Clear();
        _inMemory.Clear();
        _spilled.Clear();
        _onDisk.Clear();
        MemoryBytes = SpilledBytes = 0;
        if (SpillDirectory is not null && Directory.Exists(SpillDirectory)) Directory.Delete(SpillDirectory, recursive: true);
    }
}
