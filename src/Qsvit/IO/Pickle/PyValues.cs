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

/// <summary>
/// What <see cref="PyKeyComparer"/> remembers about an immutable container (a tuple or frozenset): its hash, whether it
/// is hashable, and the container it was proven equal to. Pickles share sub-objects (a DAG), so without this a hash or
/// comparison would walk every path, which grows exponentially with the sharing depth.
/// </summary>
internal abstract class PyKeyNode
{
    internal int? CachedHash;
    internal bool? CachedHashable;
    /// <summary>Union-find parent: a container proven equal to this one (null when this is its class's representative).</summary>
    internal PyKeyNode? EqualTo;
}

/// <summary>An immutable Python tuple.</summary>
internal sealed class PyTuple(object?[] items) : PyKeyNode, IReadOnlyList<object?>
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
internal sealed class PySet(bool frozen) : PyKeyNode
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

    /// <summary>Membership by Python equality, through the set's hash index.</summary>
    public bool Contains(object? item) => _seen.Contains(item ?? NoneKey);
}

/// <summary>
/// Python equality/hash for the hashable plain values (numbers compare across int/float/bool like Python).
/// Work is bounded by nodes, not only depth: tuples and frozensets cache their hash and hashability, containers proven
/// equal are united (union-find), so shared sub-structure is walked once, and one comparison may visit at most
/// <see cref="MaxVisits"/> values.
/// </summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    private const int MaxDepth = 100;

    /// <summary>Values one equality test may visit; a real checkpoint's keys are strings or tiny tuples.</summary>
    internal const long MaxVisits = 1_000_000;

    public static bool IsHashable(object? v) => IsHashable(v, 0);

    private static bool IsHashable(object? v, int depth)
    {
        if (depth > MaxDepth) throw TooDeep();
        switch (v)
        {
            case null or bool or long or BigInteger or double or string or byte[] or PyGlobal: return true;
            case PySet s: return s.Frozen;
            case PyTuple t:
                if (t.CachedHashable is { } known) return known;
                bool all = true;
                foreach (var x in t.Items)
                    if (!IsHashable(x, depth + 1)) { all = false; break; }
                t.CachedHashable = all;
                return all;
            default: return v is not (List<object?> or PyDict or PyInstance);
        }
    }

    public static void EnsureHashable(object? v)
    {
        if (!IsHashable(v)) throw new PickleError($"unhashable {PyDescribe.TypeOf(v)} used as a dict key or set element");
    }

    private static PickleError TooDeep() => new($"dict key or set element nested more than {MaxDepth} levels deep");

    public new bool Equals(object? a, object? b)
    {
        long budget = MaxVisits;
        return Equals(a, b, 0, ref budget);
    }

    private bool Equals(object? a, object? b, int depth, ref long budget)
    {
        if (depth > MaxDepth) throw TooDeep();
        if (--budget < 0) throw new PickleError($"dict key or set element too large to compare (more than {MaxVisits:N0} nested values)");
        if (ReferenceEquals(a, b)) return true;
        if (a is null || b is null) return false;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToBig(a) == ToBig(b);
        }
        switch (a, b)
        {
            case (string x, string y): return string.Equals(x, y, StringComparison.Ordinal);
            case (byte[] x, byte[] y): return x.AsSpan().SequenceEqual(y);
            case (PyGlobal x, PyGlobal y): return x == y;
            case (PyTuple x, PyTuple y):
                {
                    if (x.Count != y.Count) return false;
                    if (ReferenceEquals(Find(x), Find(y))) return true;
                    if (GetHashCode(x) != GetHashCode(y)) return false;
                    for (int i = 0; i < x.Count; i++)
                        if (!Equals(x.Items[i], y.Items[i], depth + 1, ref budget)) return false;
                    Union(x, y);
                    return true;
                }
            case (PySet x, PySet y):
                {
                    if (x.Items.Count != y.Items.Count) return false;
                    if (ReferenceEquals(Find(x), Find(y))) return true;
                    if (GetHashCode(x) != GetHashCode(y)) return false;
                    // Linear through the other set's hash index (not every element against every element).
                    foreach (var item in x.Items)
                    {
                        budget -= 1;
                        if (!y.Contains(item)) return false;
                    }
                    Union(x, y);
                    return true;
                }
            default: return false;
        }
    }

    private static PyKeyNode Find(PyKeyNode n)
    {
        var root = n;
        while (root.EqualTo is { } p) root = p;
        while (n.EqualTo is { } next) { n.EqualTo = root; n = next; }   // path compression
        return root;
    }

    private static void Union(PyKeyNode a, PyKeyNode b)
    {
        var ra = Find(a);
        var rb = Find(b);
        if (!ReferenceEquals(ra, rb)) rb.EqualTo = ra;
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
                {
                    if (t.CachedHash is { } cached) return cached;
                    var ht = new HashCode();
                    foreach (var item in t.Items) ht.Add(item is null ? 0 : GetHashCode(item, depth + 1));
                    int h = ht.ToHashCode();
                    t.CachedHash = h;
                    return h;
                }
            case PySet s:
                {
                    if (s.Frozen && s.CachedHash is { } cached) return cached;
                    int hs = s.Items.Count;
                    foreach (var item in s.Items) hs ^= item is null ? 0 : GetHashCode(item, depth + 1);
                    if (s.Frozen) s.CachedHash = hs;
                    return hs;
                }
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
        long => "int " + v,
        BigInteger b => Int(b),
        double d => "float " + d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        string s => "str '" + Clip(s) + "'",
        PyTuple t => $"tuple of {t.Count}",
        List<object?> l => $"list of {l.Count}",
        PyDict d => $"{d.TypeName} of {d.Count}",
        TorchTensorRef t => $"tensor {Qsvit.Tensors.Tensor.Format(t.Size)} {t.Storage.DType}",
        _ => TypeOf(v),
    };

    /// <summary>Text from the file, shortened for a message (a hostile name can be megabytes long).</summary>
    public static string Clip(string s) => s.Length > 80 ? s[..80] + $"… ({s.Length:N0} chars)" : s;

    /// <summary>An int as text when it is short; a huge one only by its size (decimal conversion is quadratic and the text would swamp the message).</summary>
    public static string Int(BigInteger b) =>
        b.GetBitLength() <= 128 ? "int " + b.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"int of {b.GetBitLength()} bits";
}
