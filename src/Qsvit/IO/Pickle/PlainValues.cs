namespace Qsvit.IO.Pickle;

/// <summary>Converts unpickled values to plain .NET values for <see cref="Checkpoint.Args"/>.</summary>
internal static class PlainValues
{
    private const int MaxDepth = 64;

    /// <summary>
    /// Most values one conversion may produce. The result is a tree, so a sub-object the pickle shares (a DAG) is
    /// counted every time it appears: 40 levels of shared pairs would otherwise expand to 2^40 values.
    /// </summary>
    internal const int MaxValues = 100_000;

    /// <summary>
    /// null, bool, long, BigInteger, double, string, byte[] stay as they are; lists, tuples and sets become
    /// <c>List&lt;object?&gt;</c>; dicts and namespaces become <c>Dictionary&lt;string, object?&gt;</c> (keys as text);
    /// tensors, dtypes and globals become a short descriptive string.
    /// </summary>
    public static object? Convert(object? v)
    {
        int budget = MaxValues;
        return Convert(v, 0, ref budget);
    }

    public static Dictionary<string, object?> ToDictionary(PyDict d)
    {
        int budget = MaxValues;
        return ToDictionary(d, 0, ref budget);
    }

    private static object? Convert(object? v, int depth, ref int budget)
    {
        Visit(depth, ref budget);
        switch (v)
        {
            case null or bool or long or System.Numerics.BigInteger or double or string or byte[]: return v;
            case List<object?> l: return Items(l, depth, ref budget);
            case PyTuple t: return Items(t.Items, depth, ref budget);
            case PySet s: return Items(s.Items, depth, ref budget);
            case PyDict d: return ToDictionary(d, depth, ref budget);
            case PyInstance i: return ToDictionary(i.Attributes, depth, ref budget);
            case NumpyDType dt: return dt.Code;
            case PyGlobal g: return g.FullName;
            case TorchTensorRef t: return $"tensor{Qsvit.Tensors.Tensor.Format(t.Size)} {t.Storage.DType}";
            case StorageRef s: return $"storage {s.StorageType}[{s.Numel}]";
            default: return v.ToString();
        }
    }

    private static List<object?> Items(IReadOnlyList<object?> items, int depth, ref int budget)
    {
        var result = new List<object?>(Math.Min(items.Count, budget));
        foreach (var x in items) result.Add(Convert(x, depth + 1, ref budget));
        return result;
    }

    private static Dictionary<string, object?> ToDictionary(PyDict d, int depth, ref int budget)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var kv in d.Items)
        {
            string key = kv.Key as string ?? Repr(kv.Key, depth + 1, ref budget);
            result[key] = Convert(kv.Value, depth + 1, ref budget);
        }
        return result;
    }

    private static void Visit(int depth, ref int budget)
    {
        if (depth > MaxDepth) throw new PickleError($"value nested more than {MaxDepth} levels deep (or self-referencing)");
        if (--budget < 0)
            throw new PickleError($"value holds more than {MaxValues:N0} values (shared sub-objects count each time they appear)");
    }

    /// <summary>A Python-like rendering of a (hashable) non-string key.</summary>
    private static string Repr(object? v, int depth, ref int budget)
    {
        Visit(depth, ref budget);
        switch (v)
        {
            case null: return "None";
            case bool b: return b ? "True" : "False";
            case double d: return d.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            case string s: return "'" + s + "'";
            case PyTuple t:
                {
                    var parts = new List<string>(t.Count);
                    foreach (var x in t.Items) parts.Add(Repr(x, depth + 1, ref budget));
                    return "(" + string.Join(", ", parts) + (t.Count == 1 ? ",)" : ")");
                }
            case byte[] bytes: return "b'" + System.Convert.ToHexString(bytes) + "'";
            default: return System.Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "";
        }
    }
}
