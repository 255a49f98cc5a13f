using System.Numerics;
using System.Runtime.CompilerServices;

namespace Qsvit.IO.Pickle;

// The unpickler builds a graph of plain values only:
//   null, bool, long, BigInteger (ints beyond 64 bits), double, string, byte[],
//   List<object?> (list), PyTuple, PyDict (dict / OrderedDict), PySet (set / frozenset),
//   PyGlobal (an allow-listed global, used as a marker), PyInstance (argparse.Namespace),
//   NumpyDType, and whatever the host builds for tensors (TorchTensorRef, StorageRef).

/// <summary>An error in the pickle stream; the unpickler adds the file, offset and opcode.</summary>
internal sealed class PickleError(string message) : Exception(message);

/// <summary>An immutable Python tuple.</summary>
internal sealed class PyTuple(object?[] items) : IReadOnlyList<object?>
{
    public static readonly PyTuple Empty = new([]);
    public object?[] Items { get; } = items;
    public int Count => Items.Length;
    public object? this[int index] => Items[index];
    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)Items).GetEnumerator();
    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => Items.GetEnumerator();
}

/// <summary>An allow-listed global (a class or function) referenced by the pickle. Never executed: the host interprets it.</summary>
internal sealed record PyGlobal(string Module, string Name)
{
    public string FullName => Module + "." + Name;
    public override string ToString() => FullName;
}

/// <summary>An instance of an allow-listed plain-data class (argparse.Namespace): just its attributes.</summary>
internal sealed class PyInstance(string typeName)
{
    public string TypeName { get; } = typeName;
    public PyDict Attributes { get; } = new("dict");
}

/// <summary>A numpy dtype as far as it matters for reading numpy scalars: the type code ('f8', 'i4', 'b1') and byte order.</summary>
internal sealed class NumpyDType(string code)
{
    public string Code { get; } = code;
    public char ByteOrder { get; set; } = '<';
}

/// <summary>A Python dict (insertion ordered, like CPython's).</summary>
internal sealed class PyDict(string typeName)
{
    private static readonly object NoneKey = new();
    private readonly List<object?> _keys = new();
    private readonly List<object?> _values = new();
    private readonly Dictionary<object, int> _index = new(PyKeyComparer.Instance);

    /// <summary>"dict" or "OrderedDict".</summary>
    public string TypeName { get; } = typeName;

    /// <summary>Instance attributes set by BUILD (an OrderedDict state_dict carries '_metadata' this way).</summary>
    public PyDict? Attributes { get; set; }

    public int Count => _keys.Count;

    public void Set(object? key, object? value)
    {
        PyKeyComparer.EnsureHashable(key);
        var k = key ?? NoneKey;
        if (_index.TryGetValue(k, out var i)) { _values[i] = value; return; }
        _index[k] = _keys.Count;
        _keys.Add(key);
        _values.Add(value);
    }

    public bool TryGet(object? key, out object? value)
    {
        if (PyKeyComparer.IsHashable(key) && _index.TryGetValue(key ?? NoneKey, out var i)) { value = _values[i]; return true; }
        value = null;
        return false;
    }

    public bool ContainsKey(object? key) => TryGet(key, out _);

    public IEnumerable<KeyValuePair<object?, object?>> Items
    {
        get { for (int i = 0; i < _keys.Count; i++) yield return new(_keys[i], _values[i]); }
    }

    public IEnumerable<object?> Keys => _keys;
}

/// <summary>A Python set or frozenset.</summary>
internal sealed class PySet(bool frozen)
{
    private readonly List<object?> _items = new();
    private readonly HashSet<object> _seen = new(PyKeyComparer.Instance);
    private static readonly object NoneKey = new();

    public bool Frozen { get; } = frozen;
    public IReadOnlyList<object?> Items => _items;

    public void Add(object? item)
    {
        PyKeyComparer.EnsureHashable(item);
        if (_seen.Add(item ?? NoneKey)) _items.Add(item);
    }
}

/// <summary>Python equality/hash for the hashable plain values (numbers compare across int/float/bool like Python).</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    private const int MaxDepth = 100;

    public static bool IsHashable(object? v) => IsHashable(v, 0);

    private static bool IsHashable(object? v, int depth)
    {
        if (depth > MaxDepth) throw TooDeep();
        return v switch
        {
            null or bool or long or BigInteger or double or string or byte[] or PyGlobal => true,
            PyTuple t => t.Items.All(x => IsHashable(x, depth + 1)),
            PySet s => s.Frozen,
            _ => v is not (List<object?> or PyDict or PyInstance),
        };
    }

    public static void EnsureHashable(object? v)
    {
        if (!IsHashable(v)) throw new PickleError($"unhashable {PyDescribe.TypeOf(v)} used as a dict key or set element");
    }

    private static PickleError TooDeep() => new($"dict key or set element nested more than {MaxDepth} levels deep");

    public new bool Equals(object? a, object? b) => Equals(a, b, 0);

    private bool Equals(object? a, object? b, int depth)
    {
        if (depth > MaxDepth) throw TooDeep();
        if (ReferenceEquals(a, b)) return true;
        if (a is null || b is null) return false;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToBig(a) == ToBig(b);
        }
        return (a, b) switch
        {
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (byte[] x, byte[] y) => x.AsSpan().SequenceEqual(y),
            (PyGlobal x, PyGlobal y) => x == y,
            (PyTuple x, PyTuple y) => x.Count == y.Count && x.Items.Zip(y.Items).All(p => Equals(p.First, p.Second, depth + 1)),
            (PySet x, PySet y) => x.Items.Count == y.Items.Count && x.Items.All(i => y.Items.Any(j => Equals(i, j, depth + 1))),
            _ => false,
        };
    }

    public int GetHashCode(object v) => GetHashCode(v, 0);

    private int GetHashCode(object v, int depth)
    {
        if (depth > MaxDepth) throw TooDeep();
        switch (v)
        {
            case bool b: return (b ? 1L : 0L).GetHashCode();
            case long l: return l.GetHashCode();
            case BigInteger bi: return bi >= long.MinValue && bi <= long.MaxValue ? ((long)bi).GetHashCode() : bi.GetHashCode();
            case double d:
                if (double.IsFinite(d) && Math.Floor(d) == d && d >= -9.2233720368547758e18 && d < 9.2233720368547758e18)
                    return ((long)d).GetHashCode();
                if (double.IsFinite(d) && Math.Floor(d) == d) return new BigInteger(d).GetHashCode();
                return d.GetHashCode();
            case string s: return StringComparer.Ordinal.GetHashCode(s);
            case byte[] bytes:
                var hb = new HashCode();
                hb.AddBytes(bytes);
                return hb.ToHashCode();
            case PyGlobal g: return g.GetHashCode();
            case PyTuple t:
                var ht = new HashCode();
                foreach (var item in t.Items) ht.Add(item is null ? 0 : GetHashCode(item, depth + 1));
                return ht.ToHashCode();
            case PySet s:
                int hs = s.Items.Count;
                foreach (var item in s.Items) hs ^= item is null ? 0 : GetHashCode(item, depth + 1);
                return hs;
            default: return RuntimeHelpers.GetHashCode(v);
        }
    }

    private static bool IsNumber(object v) => v is bool or long or BigInteger or double;
    private static double ToDouble(object v) => v switch { bool b => b ? 1 : 0, long l => l, BigInteger bi => (double)bi, double d => d, _ => double.NaN };
    private static BigInteger ToBig(object v) => v switch { bool b => b ? 1 : 0, long l => l, BigInteger bi => bi, _ => 0 };
}

/// <summary>Short Python-style descriptions of values for error messages.</summary>
internal static class PyDescribe
{
    public static string TypeOf(object? v) => v switch
    {
        null => "None",
        bool => "bool",
        long or BigInteger => "int",
        double => "float",
        string => "str",
        byte[] => "bytes",
        List<object?> => "list",
        PyTuple => "tuple",
        PyDict d => d.TypeName,
        PySet s => s.Frozen ? "frozenset" : "set",
        PyGlobal g => $"global '{g.FullName}'",
        PyInstance i => i.TypeName,
        NumpyDType => "numpy.dtype",
        TorchTensorRef => "tensor",
        StorageRef => "storage",
        _ => v.GetType().Name,
    };

    /// <summary>Type plus a short rendering of small values: "int 3", "str 'abc'", "tuple of 2".</summary>
    public static string Value(object? v) => v switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long or BigInteger => "int " + v,
        double d => "float " + d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        string s => "str '" + (s.Length > 40 ? s[..40] + "…" : s) + "'",
        PyTuple t => $"tuple of {t.Count}",
        List<object?> l => $"list of {l.Count}",
        PyDict d => $"{d.TypeName} of {d.Count}",
        TorchTensorRef t => $"tensor {Qsvit.Tensors.Tensor.Format(t.Size)} {t.Storage.DType}",
        _ => TypeOf(v),
    };
}
