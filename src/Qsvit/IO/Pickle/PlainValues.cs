namespace Qsvit.IO.Pickle;

/// <summary>Converts unpickled values to plain .NET values for <see cref="Checkpoint.Args"/>.</summary>
internal static class PlainValues
{
    private const int MaxDepth = 64;

    /// <summary>
    /// null, bool, long, BigInteger, double, string, byte[] stay as they are; lists, tuples and sets become
    /// <c>List&lt;object?&gt;</c>; dicts and namespaces become <c>Dictionary&lt;string, object?&gt;</c> (keys as text);
    /// tensors, dtypes and globals become a short descriptive string.
    /// </summary>
    public static object? Convert(object? v, int depth = 0)
    {
        if (depth > MaxDepth) throw new PickleError($"value nested more than {MaxDepth} levels deep (or self-referencing)");
        return v switch
        {
            null or bool or long or System.Numerics.BigInteger or double or string or byte[] => v,
            List<object?> l => l.Select(x => Convert(x, depth + 1)).ToList(),
            PyTuple t => t.Items.Select(x => Convert(x, depth + 1)).ToList(),
            PySet s => s.Items.Select(x => Convert(x, depth + 1)).ToList(),
            PyDict d => ToDictionary(d, depth),
            PyInstance i => ToDictionary(i.Attributes, depth),
            NumpyDType dt => dt.Code,
            PyGlobal g => g.FullName,
            TorchTensorRef t => $"tensor{Qsvit.Tensors.Tensor.Format(t.Size)} {t.Storage.DType}",
            StorageRef s => $"storage {s.StorageType}[{s.Numel}]",
            _ => v.ToString(),
        };
    }

    public static Dictionary<string, object?> ToDictionary(PyDict d, int depth = 0)
    {
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var kv in d.Items)
        {
            string key = kv.Key as string ?? Repr(kv.Key, depth + 1);
            result[key] = Convert(kv.Value, depth + 1);
        }
        return result;
    }

    /// <summary>A Python-like rendering of a (hashable) non-string key.</summary>
    private static string Repr(object? v, int depth)
    {
        if (depth > MaxDepth) throw new PickleError($"value nested more than {MaxDepth} levels deep");
        return v switch
        {
            null => "None",
            bool b => b ? "True" : "False",
            double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            string s => "'" + s + "'",
            PyTuple t => "(" + string.Join(", ", t.Items.Select(x => Repr(x, depth + 1))) + (t.Count == 1 ? ",)" : ")"),
            byte[] bytes => "b'" + System.Convert.ToHexString(bytes) + "'",
            _ => System.Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "",
        };
    }
}
