using System.Runtime.InteropServices;

namespace Qsvit.IO.Onnx;

/// <summary>ONNX TensorProto.DataType values used by the exporter.</summary>
public enum OnnxType
{
    Float = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int64 = 7, Bool = 9, UInt4 = 21, Int4 = 22,
}

/// <summary>A node attribute (onnx.proto AttributeProto).</summary>
internal readonly record struct OnnxAttribute(string Name, object Value)
{
    public static OnnxAttribute Of(string name, long value) => new(name, value);
    public static OnnxAttribute Of(string name, float value) => new(name, value);
    public static OnnxAttribute Of(string name, long[] values) => new(name, values);
    public static OnnxAttribute Of(string name, OnnxGraph graph) => new(name, graph);

    // AttributeProto: name 1, f 2, i 3, g 6, ints 8, type 20; AttributeType FLOAT 1, INT 2, GRAPH 5, INTS 7.
    public ProtoMessage ToProto()
    {
        var m = new ProtoMessage().String(1, Name);
        return Value switch
        {
            long i => m.Int(3, i).Int(20, 2),
            float f => m.Float(2, f).Int(20, 1),
            long[] ints => m.Ints(8, ints).Int(20, 7),
            OnnxGraph g => m.Message(6, g.ToProto()).Int(20, 5),
            _ => throw new InvalidOperationException(Value.GetType().Name),
        };
    }
}

/// <summary>
/// An ONNX graph under construction: nodes in topological order (the order they are added), initializers, inputs and outputs.
/// Value names are unique; constants are shared by value. Subgraphs (Scan bodies) may read the outer graph's values.
/// </summary>
internal sealed class OnnxGraph(string name)
{
    private readonly List<ProtoMessage> _nodes = new();
    private readonly List<ProtoMessage> _initializers = new();
    private readonly List<ProtoMessage> _inputs = new(), _outputs = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private readonly OnnxGraph? _outer;

    public string Name => name;
    public string? DocString { get; set; }
    /// <summary>Bytes of initializer data held by the graph.</summary>
    public long InitializerBytes { get; private set; }

    private OnnxGraph(string name, OnnxGraph outer) : this(name) => _outer = outer;

    /// <summary>A graph for a control-flow body; its constants live in (and names are unique with) this graph.</summary>
    public OnnxGraph Subgraph(string bodyName) => new(bodyName, this);

    private OnnxGraph Root => _outer?.Root ?? this;

    /// <summary>A name not yet used in this graph (or its outer graph): <paramref name="wanted"/>, else with a numeric suffix.</summary>
    public string Unique(string wanted)
    {
        var root = Root;
        if (root._names.Add(wanted)) return wanted;
        for (int i = 1; ; i++)
            if (root._names.Add($"{wanted}_{i}")) return $"{wanted}_{i}";
    }

    /// <summary>
    /// Declares a graph input (each dim a number, or null for the dynamic dimension named <paramref name="dynamicName"/>;
    /// no dims: shape unknown).
    /// </summary>
    public string Input(string inputName, OnnxType type, long?[]? dims, string dynamicName = "batch", string? doc = null)
    {
        string n = Unique(inputName);
        _inputs.Add(ValueInfo(n, type, dims, dynamicName, doc));
        return n;
    }

    public void Output(string outputName, OnnxType type, long?[]? dims, string dynamicName = "batch", string? doc = null) =>
        _outputs.Add(ValueInfo(outputName, type, dims, dynamicName, doc));

    private string Reserve(string n)
    {
        if (!Root._names.Add(n)) throw new InvalidOperationException($"ONNX value name '{n}' used twice");
        return n;
    }

    /// <summary>An initializer under exactly <paramref name="tensorName"/> (official state_dict keys stay as they are).</summary>
    public string Initializer(string tensorName, OnnxType type, ReadOnlySpan<long> dims, byte[] raw, string? doc = null) =>
        AddInitializer(Reserve(tensorName), type, dims, raw, doc);

    private string AddInitializer(string n, OnnxType type, ReadOnlySpan<long> dims, byte[] raw, string? doc)
    {
        // TensorProto: dims 1, data_type 2, name 8, raw_data 9, doc_string 12.
        var t = new ProtoMessage().Ints(1, dims.ToArray()).Int(2, (long)type).String(8, n).Bytes(9, raw);
        if (doc is not null) t.String(12, doc);
        Root._initializers.Add(t);
        Root.InitializerBytes += raw.Length;
        return n;
    }

    public string Floats(string tensorName, ReadOnlySpan<long> dims, ReadOnlySpan<float> values, string? doc = null) =>
        Initializer(tensorName, OnnxType.Float, dims, MemoryMarshal.AsBytes(values).ToArray(), doc);

    /// <summary>A float scalar constant, shared by value.</summary>
    public string Scalar(float value) => Root.Constant($"const_f{BitConverter.SingleToInt32Bits(value):x8}", () =>
        Root.AddInitializer(Root.Unique($"const_{value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}"), OnnxType.Float, [],
            BitConverter.GetBytes(value), null));

    /// <summary>An int64 vector constant (shapes, axes), shared by value.</summary>
    public string Int64s(params long[] values) => Root.Constant("const_i64[" + string.Join(",", values) + "]", () =>
        Root.AddInitializer(Root.Unique("const_i64_" + string.Join("_", values).Replace('-', 'm')), OnnxType.Int64, [values.Length],
            MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), null));

    private string Constant(string key, Func<string> create)
    {
        if (_constants.TryGetValue(key, out var n)) return n;
        return _constants[key] = create();
    }

    /// <summary>Adds a node with one output named after <paramref name="nodeName"/>; returns the output's name.</summary>
    public string Node(string op, string nodeName, IReadOnlyList<string> inputs, string? doc = null, params OnnxAttribute[] attributes) =>
        Node(op, nodeName, inputs, 1, doc, attributes)[0];

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs; returns their names.</summary>
    public string[] Node(string op, string nodeName, IReadOnlyList<string> inputs, int outputCount, string? doc, params OnnxAttribute[] attributes)
    {
        string n = Unique(nodeName);
        var outputs = new string[outputCount];
        for (int i = 0; i < outputCount; i++) outputs[i] = outputCount == 1 ? n : Unique($"{n}:{i}");
        // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, doc_string 6.
        var node = new ProtoMessage();
        foreach (var input in inputs) node.String(1, input);
        foreach (var output in outputs) node.String(2, output);
        node.String(3, n).String(4, op).Messages(5, attributes.Select(a => a.ToProto()));
        if (doc is not null) node.String(6, doc);
        _nodes.Add(node);
        return outputs;
    }

    /// <summary>Names a node's output as a graph output by an Identity node.</summary>
    public void Rename(string value, string outputName) =>
        _nodes.Add(new ProtoMessage().String(1, value).String(2, Reserve(outputName)).String(3, Unique(outputName + "/identity")).String(4, "Identity"));

    // ValueInfoProto: name 1, type 2, doc_string 3. TypeProto.tensor_type 1 → elem_type 1, shape 2 → dim 1 → dim_value 1 | dim_param 2.
    // No dims: the shape is left out (unknown rank), as for Scan bodies whose sizes differ per call site.
    private static ProtoMessage ValueInfo(string n, OnnxType type, long?[]? dims, string dynamicName, string? doc)
    {
        var tensor = new ProtoMessage().Int(1, (long)type);
        if (dims is not null)
            tensor.Message(2, new ProtoMessage().Messages(1, dims.Select(d => d is { } v ? new ProtoMessage().Int(1, v) : new ProtoMessage().String(2, dynamicName))));
        var info = new ProtoMessage().String(1, n).Message(2, new ProtoMessage().Message(1, tensor));
        if (doc is not null) info.String(3, doc);
        return info;
    }

    // GraphProto: node 1, name 2, initializer 5, doc_string 10, input 11, output 12.
    public ProtoMessage ToProto()
    {
        var g = new ProtoMessage().Messages(1, _nodes).String(2, name).Messages(5, _initializers);
        if (DocString is not null) g.String(10, DocString);
        return g.Messages(11, _inputs).Messages(12, _outputs);
    }
}

/// <summary>An ONNX model: one graph, the default-domain opset, producer and metadata.</summary>
public static class OnnxModel
{
    /// <summary>IR version 10 is the one that introduced opset 21 (int4/uint4 types).</summary>
    public const long IrVersion = 10;
    public const long Opset = 21;

    // ModelProto: ir_version 1, producer_name 2, producer_version 3, doc_string 6, graph 7, opset_import 8, metadata_props 14.
    internal static void Write(Stream stream, OnnxGraph graph, string producerVersion, string doc, IEnumerable<KeyValuePair<string, string>> metadata)
    {
        var model = new ProtoMessage()
            .Int(1, IrVersion)
            .String(2, "qsvit")
            .String(3, producerVersion)
            .String(6, doc)
            .Message(7, graph.ToProto())
            .Message(8, new ProtoMessage().String(1, "").Int(2, Opset))
            .Messages(14, metadata.Select(kv => new ProtoMessage().String(1, kv.Key).String(2, kv.Value)));
        model.WriteTo(stream);
    }
}
