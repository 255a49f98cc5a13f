using Qsvit.Tensors;

namespace Qsvit.IO;

/// <summary>An ordered state_dict: official keys mapped to float32 tensors, remembering each entry's stored dtype.</summary>
public sealed class StateDict : IEnumerable<KeyValuePair<string, Tensor>>
{
    private readonly List<string> _order = new();
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DType> _dtypes = new(StringComparer.Ordinal);

    public int Count => _order.Count;
    public IReadOnlyList<string> Keys => _order;

    public Tensor this[string key] =>
        _tensors.TryGetValue(key, out var t) ? t : throw new QsvitException($"state_dict has no key '{key}'");

    public bool ContainsKey(string key) => _tensors.ContainsKey(key);
    public bool TryGetValue(string key, out Tensor tensor) => _tensors.TryGetValue(key, out tensor!);
    public DType StoredType(string key) => _dtypes.TryGetValue(key, out var d) ? d : DType.F32;

    /// <summary>Adds or replaces an entry; a replaced entry keeps its position.</summary>
    public void Set(string key, Tensor tensor, DType storedType = DType.F32)
    {
        if (!_tensors.ContainsKey(key)) _order.Add(key);
        _tensors[key] = tensor;
        _dtypes[key] = storedType;
    }

    public bool Remove(string key)
    {
        if (!_tensors.Remove(key)) return false;
        _dtypes.Remove(key);
        _order.Remove(key);
        return true;
    }

    /// <summary>A shallow copy: same tensors, independent key set.</summary>
    public StateDict Copy()
    {
        var copy = new StateDict();
        foreach (var k in _order) copy.Set(k, _tensors[k], _dtypes[k]);
        return copy;
    }

    public IEnumerator<KeyValuePair<string, Tensor>> GetEnumerator()
    {
        foreach (var k in _order) yield return new(k, _tensors[k]);
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
