using Qsvit.Backends;

namespace Qsvit.Models;

/// <summary>
/// Backend layers shared by a model and every model derived from it with <see cref="Sdtv2Model.WithState"/>: a layer
/// built from the very same state_dict arrays (reference equality, which is how <see cref="Quantization.ModelQuantizer"/>
/// hands out untouched and cached tensors) is uploaded once and reference-counted, so a search candidate uploads only the
/// layers whose weights changed.
/// </summary>
internal sealed class LayerCache(IBackend backend)
{
    private sealed class Entry(float[][] sources, IDisposable layer, DeviceBuffer? pad)
    {
        public readonly float[][] Sources = sources;
        public readonly IDisposable Layer = layer;
        public readonly DeviceBuffer? Pad = pad;
        public int References;
    }

    private readonly Dictionary<string, List<Entry>> _entries = new(StringComparer.Ordinal);

    public IBackend Backend => backend;
    /// <summary>Layers created (uploaded) so far, for tests and diagnostics.</summary>
    public int Uploads { get; private set; }

    public (ConvLayer Layer, DeviceBuffer? Pad) Conv(ConvBn conv)
    {
        var (layer, pad) = Acquire(conv.Key, conv.Sources, () =>
        {
            var created = backend.CreateConv(conv.Spec);
            DeviceBuffer? values = null;
            if (conv.PadValues.Length > 0)
            {
                values = backend.Allocate(conv.PadValues.Length);
                backend.Upload(conv.PadValues, values);
            }
            return (created, values);
        });
        return ((ConvLayer)layer, pad);
    }

    public HeadLayer Head(string key, float[][] sources, IReadOnlyList<LinearWeights> heads, int features, int classes) =>
        (HeadLayer)Acquire(key, sources, () => (backend.CreateHead(heads, features, classes), null)).Layer;

    private (IDisposable Layer, DeviceBuffer? Pad) Acquire(string key, float[][] sources, Func<(IDisposable, DeviceBuffer?)> create)
    {
        if (!_entries.TryGetValue(key, out var list)) _entries[key] = list = new List<Entry>(1);
        var entry = list.Find(e => e.Sources.Length == sources.Length && e.Sources.Zip(sources).All(p => ReferenceEquals(p.First, p.Second)));
        if (entry is null)
        {
            var (layer, pad) = create();
            list.Add(entry = new Entry(sources, layer, pad));
            Uploads++;
        }
        entry.References++;
        return (entry.Layer, entry.Pad);
    }

    /// <summary>Drops one reference to the layer; the last one disposes it on the backend.</summary>
    public void Release(IDisposable layer)
    {
        foreach (var (key, list) in _entries)
        {
            int i = list.FindIndex(e => ReferenceEquals(e.Layer, layer));
            if (i < 0) continue;
            var e = list[i];
            if (--e.References > 0) return;
            e.Layer.Dispose();
            e.Pad?.Dispose();
            list.RemoveAt(i);
            if (list.Count == 0) _entries.Remove(key);
            return;
        }
    }
}
