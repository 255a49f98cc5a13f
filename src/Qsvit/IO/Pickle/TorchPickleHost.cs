using System.Numerics;
using System.Text;
using Qsvit.Tensors;

namespace Qsvit.IO.Pickle;

/// <summary>
/// The allow-list for torch.save checkpoints. Only plain-data globals are accepted and each is interpreted
/// here by hand (nothing is ever looked up or invoked dynamically):
/// collections.OrderedDict, builtins set/frozenset/bytearray, _codecs.encode, argparse.Namespace,
/// torch._utils._rebuild_tensor(_v2) / _rebuild_parameter(_with_state), torch._tensor._rebuild_from_type_v2
/// (with torch.Tensor / torch.nn.parameter.Parameter), torch.Size, torch.device, the torch.*Storage types,
/// numpy scalars and dtypes (read as plain numbers), and pathlib paths (read as strings).
/// </summary>
internal sealed class TorchPickleHost : IPickleHost
{
    private static readonly Dictionary<string, DType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = DType.F32,
        ["HalfStorage"] = DType.F16,
        ["BFloat16Storage"] = DType.BF16,
        ["DoubleStorage"] = DType.F64,
        ["LongStorage"] = DType.I64,
        ["IntStorage"] = DType.I32,
        ["ShortStorage"] = DType.I16,
        ["CharStorage"] = DType.I8,
        ["ByteStorage"] = DType.U8,
        ["BoolStorage"] = DType.Bool,
        ["UntypedStorage"] = DType.U8,
    };

    private static readonly HashSet<string> Allowed = new(StringComparer.Ordinal)
    {
        "collections.OrderedDict",
        "builtins.set", "builtins.frozenset", "builtins.bytearray",
        "_codecs.encode",
        "argparse.Namespace",
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2", "torch.Tensor", "torch.nn.parameter.Parameter",
        "torch.Size", "torch.device",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
        "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath", "pathlib.Path",
    };

    /// <summary>Most dimensions a tensor may have (PyTorch's own limit).</summary>
    private const int MaxRank = 64;

    private readonly Dictionary<string, StorageRef> _storages = new(StringComparer.Ordinal);

    /// <summary>Storages referenced so far, by key.</summary>
    public IReadOnlyDictionary<string, StorageRef> Storages => _storages;

    public object ResolveGlobal(string module, string name)
    {
        // Protocols 0-2 written by Python 3 spell builtins the Python 2 way.
        if (module == "__builtin__") module = "builtins";
        string full = module + "." + name;
        if (module == "torch" && StorageTypes.ContainsKey(name)) return new PyGlobal(module, name);
        if (Allowed.Contains(full)) return new PyGlobal(module, name);
        if (module == "torch" && name.EndsWith("Storage", StringComparison.Ordinal))
            throw new PickleError($"pickle uses storage type '{PyDescribe.Clip(full)}', which qsvit does not read " +
                                  $"(supported: {string.Join(", ", StorageTypes.Keys.Select(k => "torch." + k))})");
        string hint = module == "__main__" || module.StartsWith("torch.nn.", StringComparison.Ordinal)
            ? "; if this file is a whole pickled model (torch.save(model)), save model.state_dict() instead"
            : "";
        throw new PickleError($"pickle references global '{PyDescribe.Clip(full)}' which is not on the allow-list " +
                              $"(qsvit only reads tensors, dicts, lists, numbers and strings){hint}");
    }

    public object? Call(object? callable, PyTuple args)
    {
        if (callable is not PyGlobal g) throw new PickleError($"REDUCE on a {PyDescribe.TypeOf(callable)}, which is not callable");
        switch (g.FullName)
        {
            case "collections.OrderedDict":
                {
                    var d = new PyDict("OrderedDict");
                    if (args.Count == 1 && args[0] is not null)
                        foreach (var pair in Iterate(args[0], "OrderedDict"))
                        {
                            var kv = Iterate(pair, "OrderedDict item").ToArray();
                            if (kv.Length != 2) throw new PickleError($"OrderedDict item has {kv.Length} values, expected a key/value pair");
                            d.Set(kv[0], kv[1]);
                        }
                    else if (args.Count > 1) throw BadArgs(g, args, "() or (items,)");
                    return d;
                }
            case "builtins.set" or "builtins.frozenset":
                {
                    var s = new PySet(frozen: g.Name == "frozenset");
                    if (args.Count > 1) throw BadArgs(g, args, "() or (items,)");
                    if (args.Count == 1) foreach (var item in Iterate(args[0], g.Name)) s.Add(item);
                    return s;
                }
            case "builtins.bytearray":
                return args.Count switch
                {
                    0 => Array.Empty<byte>(),
                    1 when args[0] is byte[] b => (byte[])b.Clone(),
                    2 when args[0] is string s && args[1] is string enc => Encode(s, enc),
                    _ => throw BadArgs(g, args, "(), (bytes,) or (str, encoding)"),
                };
            case "_codecs.encode":
                if (args.Count is 1 or 2 && args[0] is string text)
                    return Encode(text, args.Count == 2 ? args[1] as string ?? throw BadArgs(g, args, "(str, encoding)") : "utf-8");
                throw BadArgs(g, args, "(str, encoding)");
            case "argparse.Namespace":
                if (args.Count != 0) throw BadArgs(g, args, "()");
                return new PyInstance("argparse.Namespace");
            case "torch._utils._rebuild_tensor_v2":
                if (args.Count is < 6 or > 7) throw BadArgs(g, args, "(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])");
                return RebuildTensor(g, args);
            case "torch._utils._rebuild_tensor":
                if (args.Count != 4) throw BadArgs(g, args, "(storage, storage_offset, size, stride)");
                return RebuildTensor(g, args);
            case "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state":
                if (args.Count < 1 || args[0] is not TorchTensorRef) throw BadArgs(g, args, "(tensor, requires_grad, backward_hooks[, state])");
                return args[0];
            case "torch._tensor._rebuild_from_type_v2":
                {
                    // (func, type, func_args, state): the type is only torch.Tensor or Parameter, both read as a plain tensor.
                    // Nested calls are unwrapped in a loop, not by recursion, so no nesting depth can exhaust the stack.
                    var call = args;
                    while (true)
                    {
                        if (call.Count != 4 || call[2] is not PyTuple inner) throw BadArgs(g, call, "(func, type, args, state)");
                        if (call[1] is not PyGlobal { FullName: "torch.Tensor" or "torch.nn.parameter.Parameter" })
                            throw new PickleError($"_rebuild_from_type_v2 with type {PyDescribe.TypeOf(call[1])} is not supported (only torch.Tensor and Parameter)");
                        if (call[0] is PyGlobal { FullName: "torch._tensor._rebuild_from_type_v2" })
                        {
                            call = inner;
                            continue;
                        }
                        var t = Call(call[0], inner);
                        if (t is not TorchTensorRef) throw new PickleError($"_rebuild_from_type_v2 produced a {PyDescribe.TypeOf(t)}, expected a tensor");
                        return t;
                    }
                }
            case "torch.Size":
                if (args.Count == 0) return PyTuple.Empty;
                if (args.Count == 1) return new PyTuple(Iterate(args[0], "torch.Size").ToArray());
                throw BadArgs(g, args, "(tuple,)");
            case "torch.device":
                if (args.Count == 1 && args[0] is string dev) return dev;
                if (args.Count == 2 && args[0] is string type && args[1] is long index) return $"{type}:{index}";
                throw BadArgs(g, args, "(type[, index])");
            case "numpy.dtype":
                if (args.Count >= 1 && args[0] is string code) return new NumpyDType(code);
                throw BadArgs(g, args, "(code, align, copy)");
            case "numpy.core.multiarray.scalar" or "numpy._core.multiarray.scalar":
                if (args.Count == 2 && args[0] is NumpyDType dt && args[1] is byte[] raw) return NumpyScalar(dt, raw);
                throw BadArgs(g, args, "(dtype, bytes)");
            case "pathlib.PosixPath" or "pathlib.PurePosixPath" or "pathlib.Path":
                return JoinPath(g, args, '/');
            case "pathlib.WindowsPath" or "pathlib.PureWindowsPath":
                return JoinPath(g, args, '\\');
            default:
                throw new PickleError($"global '{g.FullName}' cannot be called (it is only meaningful as a type)");
        }
    }

    public object? NewObject(object? cls, PyTuple args, PyDict? kwargs)
    {
        if (cls is not PyGlobal g) throw new PickleError($"cannot instantiate a {PyDescribe.TypeOf(cls)}");
        if (kwargs is { Count: > 0 }) throw new PickleError($"keyword arguments for '{g.FullName}' are not supported");
        return g.FullName switch
        {
            "argparse.Namespace" => new PyInstance("argparse.Namespace"),
            "collections.OrderedDict" => new PyDict("OrderedDict"),
            "builtins.set" => new PySet(frozen: false),
            "pathlib.PosixPath" or "pathlib.PurePosixPath" or "pathlib.Path" or "pathlib.WindowsPath" or "pathlib.PureWindowsPath"
                or "torch.Size" or "torch.device" or "builtins.frozenset" or "builtins.bytearray" => Call(g, args),
            _ => throw new PickleError($"'{g.FullName}' cannot be instantiated with NEWOBJ"),
        };
    }

    public void Build(object? target, object? state)
    {
        switch (target)
        {
            case PyInstance inst:
                foreach (var part in StateParts(state, inst.TypeName))
                    foreach (var kv in part.Items) inst.Attributes.Set(kv.Key, kv.Value);
                return;
            case PyDict d:
                foreach (var part in StateParts(state, d.TypeName))
                {
                    d.Attributes ??= new PyDict("dict");
                    foreach (var kv in part.Items) d.Attributes.Set(kv.Key, kv.Value);
                }
                return;
            case NumpyDType dt:
                // numpy.dtype.__setstate__((version, byteorder, subarray, names, fields, elsize, alignment, flags[, ...]))
                if (state is PyTuple { Count: >= 2 } t && t[1] is string order && order.Length == 1) dt.ByteOrder = order[0];
                else throw new PickleError($"numpy.dtype state is a {PyDescribe.Value(state)}, expected a tuple starting (version, byteorder, ...)");
                return;
            case TorchTensorRef or PySet when state is null:
                return;
            default:
                throw new PickleError($"BUILD on a {PyDescribe.TypeOf(target)} is not supported");
        }
    }

    public object? PersistentLoad(object? pid)
    {
        if (pid is not PyTuple t || t.Count == 0 || t[0] is not string kind)
            throw new PickleError($"persistent id is a {PyDescribe.Value(pid)}, expected a tuple ('storage', type, key, location, numel)");
        if (kind != "storage") throw new PickleError($"persistent id of kind '{PyDescribe.Clip(kind)}' is not supported (only 'storage')");
        if (t.Count != 5) throw new PickleError($"storage persistent id has {t.Count} fields, expected 5 ('storage', type, key, location, numel)");
        if (t[1] is not PyGlobal { Module: "torch" } type || !StorageTypes.TryGetValue(type.Name, out var dtype))
            throw new PickleError($"storage persistent id names {PyDescribe.TypeOf(t[1])}, expected a torch.*Storage type");
        if (t[2] is not string key) throw new PickleError($"storage key is a {PyDescribe.Value(t[2])}, expected a string");
        string location = t[3] as string ?? throw new PickleError($"storage location is a {PyDescribe.Value(t[3])}, expected a string");
        if (t[4] is not long numel || numel < 0) throw new PickleError($"storage size is {PyDescribe.Value(t[4])}, expected a non-negative int");
        if (numel > long.MaxValue / DTypes.Size(dtype))
            throw new PickleError($"storage '{PyDescribe.Clip(key)}' declares {numel} {type.Name} elements, more bytes than any file can hold");
        if (_storages.TryGetValue(key, out var existing))
        {
            if (existing.DType != dtype)
                throw new PickleError($"storage '{PyDescribe.Clip(key)}' is referenced both as {existing.StorageType} and as {type.Name}");
            return existing;
        }
        var s = new StorageRef(key, dtype, type.Name, numel);
        _storages[key] = s;
        return s;
    }

    // ------------------------------------------------------------------ helpers

    private static TorchTensorRef RebuildTensor(PyGlobal g, PyTuple args)
    {
        if (args[0] is not StorageRef storage) throw new PickleError($"{g.Name}: argument 'storage' is a {PyDescribe.Value(args[0])}, expected a storage");
        if (args[1] is not long offset) throw new PickleError($"{g.Name}: argument 'storage_offset' is a {PyDescribe.Value(args[1])}, expected an int");
        var size = IntTuple(g, "size", args[2]);
        var stride = IntTuple(g, "stride", args[3]);
        if (size.Length > MaxRank) throw new PickleError($"{g.Name}: a tensor of {size.Length} dimensions (at most {MaxRank})");
        if (size.Any(s => s > int.MaxValue)) throw new PickleError($"{g.Name}: dimension too large in size ({string.Join(", ", size)})");
        return new TorchTensorRef(storage, offset, size.Select(s => (int)s).ToArray(), stride);
    }

    private static long[] IntTuple(PyGlobal g, string what, object? v)
    {
        if (v is not (PyTuple or List<object?>))
            throw new PickleError($"{g.Name}: argument '{what}' is a {PyDescribe.Value(v)}, expected a tuple of ints");
        var items = Iterate(v, what).ToArray();
        var result = new long[items.Length];
        for (int i = 0; i < items.Length; i++)
            result[i] = items[i] is long l ? l : throw new PickleError($"{g.Name}: argument '{what}' holds a {PyDescribe.Value(items[i])}, expected ints");
        return result;
    }

    private static IEnumerable<object?> Iterate(object? v, string what) => v switch
    {
        PyTuple t => t.Items,
        List<object?> l => l,
        PySet s => s.Items,
        PyDict d => d.Keys,
        _ => throw new PickleError($"{what}: expected a list or tuple, found {PyDescribe.Value(v)}"),
    };

    private static IEnumerable<PyDict> StateParts(object? state, string typeName)
    {
        switch (state)
        {
            case null: yield break;
            case PyDict d: yield return d; yield break;
            case PyTuple { Count: 2 } t when t[0] is null or PyDict && t[1] is null or PyDict:
                if (t[0] is PyDict a) yield return a;
                if (t[1] is PyDict b) yield return b;
                yield break;
            default:
                throw new PickleError($"state for {typeName} is a {PyDescribe.Value(state)}, expected a dict");
        }
    }

    private static byte[] Encode(string text, string encoding)
    {
        switch (encoding.ToLowerInvariant().Replace('_', '-'))
        {
            case "latin1" or "latin-1" or "iso-8859-1" or "iso8859-1" or "l1":
                var bytes = new byte[text.Length];
                for (int i = 0; i < text.Length; i++)
                    bytes[i] = text[i] <= 0xFF ? (byte)text[i] : throw new PickleError($"character U+{(int)text[i]:X4} cannot be encoded as latin-1");
                return bytes;
            case "utf-8" or "utf8":
                return Encoding.UTF8.GetBytes(text);
            case "ascii":
                if (text.Any(c => c > 0x7F)) throw new PickleError("non-ASCII text cannot be encoded as ascii");
                return Encoding.ASCII.GetBytes(text);
            default:
                throw new PickleError($"_codecs.encode with encoding '{encoding}' is not supported (latin-1, utf-8, ascii)");
        }
    }

    private static object NumpyScalar(NumpyDType dt, byte[] raw)
    {
        string code = dt.Code;
        if (code.Length < 2 || !int.TryParse(code.AsSpan(1), out int size) || raw.Length != size)
            throw new PickleError($"numpy scalar of dtype '{code}' with {raw.Length} bytes is not supported");
        var b = (byte[])raw.Clone();
        if (dt.ByteOrder == '>' && BitConverter.IsLittleEndian || dt.ByteOrder == '<' && !BitConverter.IsLittleEndian) Array.Reverse(b);
        return (code[0], size) switch
        {
            ('f', 2) => (double)BitConverter.ToHalf(b),
            ('f', 4) => (double)BitConverter.ToSingle(b),
            ('f', 8) => BitConverter.ToDouble(b),
            ('i', 1) => (long)(sbyte)b[0],
            ('i', 2) => (long)BitConverter.ToInt16(b),
            ('i', 4) => (long)BitConverter.ToInt32(b),
            ('i', 8) => BitConverter.ToInt64(b),
            ('u', 1) => (long)b[0],
            ('u', 2) => (long)BitConverter.ToUInt16(b),
            ('u', 4) => (long)BitConverter.ToUInt32(b),
            ('u', 8) => BitConverter.ToUInt64(b) is var u && u <= long.MaxValue ? (long)u : (object)new BigInteger(u),
            ('b', 1) => b[0] != 0,
            _ => throw new PickleError($"numpy scalar of dtype '{code}' is not supported (only bool, int, uint and float scalars)"),
        };
    }

    private static string JoinPath(PyGlobal g, PyTuple args, char sep)
    {
        var parts = new List<string>();
        foreach (var a in args.Items)
            parts.Add(a as string ?? throw BadArgs(g, args, "(str, ...)"));
        return string.Join(sep, parts);
    }

    private static PickleError BadArgs(PyGlobal g, PyTuple args, string expected) =>
        new($"'{g.FullName}' called with ({string.Join(", ", args.Items.Take(8).Select(PyDescribe.Value))}{(args.Count > 8 ? $", ... {args.Count} in all" : "")}), expected {expected}");
}
