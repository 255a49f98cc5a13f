using System.Text.Json;
using System.Text.Json.Nodes;
using Qsvit.IO.Datasets;
using Qsvit.IO;

namespace Qsvit.Models;

/// <summary>
/// The model.json sidecar: architecture, input size and normalization, class names. Every field is optional;
/// what is absent comes from the checkpoint or its tensor shapes.
/// </summary>
public sealed record ModelFile
{
    /// <summary>The architecture values the sidecar gives.</summary>
    public PartialConfig Architecture { get; init; } = new();
    public float[]? Mean { get; init; }
    public float[]? Std { get; init; }
    public string[]? Classes { get; init; }

    /// <summary>Largest sidecar read: a thousand class names are tens of kilobytes.</summary>
    private const long MaxFileBytes = 16 << 20;

    /// <summary>Largest input side accepted (the datasets' own limit).</summary>
    public const int MaxSide = DatasetOptions.MaxSide;

    public static ModelFile Read(string path)
    {
        if (!File.Exists(path)) throw new QsvitException($"model config '{path}' does not exist");
        string text;
        try
        {
            long size = new FileInfo(path).Length;
            if (size > MaxFileBytes) throw new QsvitException($"model config '{path}' is {size} bytes, more than the {MaxFileBytes}-byte limit");
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"model config '{path}' cannot be read: {e.Message}", e);
        }
        return Parse(text, $"model config '{path}'");
    }

    /// <summary>
    /// Parses model.json text (also the <c>qsvit.model</c> metadata of a saved model). Every field is checked for its
    /// JSON type and range; <paramref name="source"/> starts every error message.
    /// </summary>
    /// <exception cref="QsvitException">The text is not JSON, or a field is null, of the wrong type or out of range.</exception>
    public static ModelFile Parse(string json, string source = "model config")
    {
        ArgumentNullException.ThrowIfNull(json);
        try { return ParseCore(json, source); }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException or FormatException)
        {
            // JsonNode parses lazily: a duplicate key or bad text surfaces when a field is first read.
            throw new QsvitException($"{source} is not valid JSON: {e.Message}", e);
        }
    }

    private static ModelFile ParseCore(string json, string source)
    {
        var parsed = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 16 });
        if (parsed is not JsonObject root) throw new QsvitException($"{source} is a JSON {Kind(parsed)}, expected an object");
        var input = root["input"] switch
        {
            null => null,
            JsonObject o => o,
            var other => throw new QsvitException($"{source}: 'input' is a JSON {Kind(other)}, expected an object"),
        };
        if (root["arch"] is { } arch && String(arch, "arch", source) != "sdtv2")
            throw new QsvitException($"{source}: arch '{Clip(arch.ToJsonString())}' is not supported (only 'sdtv2')");
        var file = new ModelFile
        {
            Architecture = new PartialConfig
            {
                EmbedDim = Array(root, "embed_dim", source, (n, f) => Int(n, f, source, 1, 1 << 16)),
                NumHeads = OptionalInt(root, "num_heads", source, 1, 1 << 12),
                MlpRatio = OptionalInt(root, "mlp_ratio", source, 1, 64),
                StemStride = OptionalInt(root, "stem_stride", source, 1, 4),
                InChannels = OptionalInt(root, "in_channels", source, 1, 64),
                NumClasses = OptionalInt(root, "num_classes", source, 1, 1 << 20),
                Timesteps = root.ContainsKey("timesteps") ? OptionalInt(root, "timesteps", source, 1, 64) : OptionalInt(root, "T", source, 1, 64),
                Kd = root["kd"] is { } kd ? Bool(kd, "kd", source) : null,
                ImageHeight = input is null ? null : OptionalInt(input, "height", source, 8, MaxSide, "input."),
                ImageWidth = input is null ? null : OptionalInt(input, "width", source, 8, MaxSide, "input."),
            },
            Mean = input is null ? null : Array(input, "mean", source, (n, f) => Float(n, f, source, positive: false), "input."),
            Std = input is null ? null : Array(input, "std", source, (n, f) => Float(n, f, source, positive: true), "input."),
            Classes = Array(root, "classes", source, (n, f) => String(n, f, source)),
        };
        if (file.Architecture.EmbedDim is { Length: not 4 } dims)
            throw new QsvitException($"{source}: 'embed_dim' holds {dims.Length} widths, expected 4");
        return file;
    }

    private static int? OptionalInt(JsonObject o, string name, string source, int min, int max, string prefix = "") =>
        o.ContainsKey(name) ? Int(o[name], prefix + name, source, min, max) : null;

    private static int Int(JsonNode? n, string field, string source, int min, int max)
    {
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out long l))
            return l >= min && l <= max ? (int)l
                : throw new QsvitException($"{source}: '{field}' is {l}, expected {min}..{max}");
        throw new QsvitException($"{source}: '{field}' is {Describe(n)}, expected an integer in {min}..{max}");
    }

    private static float Float(JsonNode? n, string field, string source, bool positive)
    {
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && double.IsFinite(d)
            && Math.Abs(d) <= float.MaxValue && (!positive || d > 0))
            return (float)d;
        throw new QsvitException($"{source}: '{field}' is {Describe(n)}, expected a {(positive ? "positive" : "finite")} number");
    }

    private static bool Bool(JsonNode n, string field, string source) =>
        n is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>()
            : throw new QsvitException($"{source}: '{field}' is {Describe(n)}, expected true or false");

    private static string String(JsonNode? n, string field, string source) =>
        n is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
            : throw new QsvitException($"{source}: '{field}' is {Describe(n)}, expected a string");

    /// <summary>An optional array whose every element is read by <paramref name="item"/> (null elements included, so they are refused).</summary>
    private static T[]? Array<T>(JsonObject o, string name, string source, Func<JsonNode?, string, T> item, string prefix = "")
    {
        if (!o.ContainsKey(name)) return null;
        if (o[name] is not JsonArray a) throw new QsvitException($"{source}: '{prefix}{name}' is {Describe(o[name])}, expected an array");
        var result = new T[a.Count];
        for (int i = 0; i < a.Count; i++) result[i] = item(a[i], $"{prefix}{name}[{i}]");
        return result;
    }

    private static string Describe(JsonNode? n) => n is null ? "null" : $"{Kind(n)} {Clip(n.ToJsonString())}";

    private static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonObject => "object",
        JsonArray => "array",
        JsonValue v => v.GetValueKind().ToString().ToLowerInvariant(),
        _ => n.GetType().Name,
    };

    private static string Clip(string s) => s.Length > 60 ? s[..60] + "…" : s;

    /// <summary>The sidecar of a resolved model, so a saved model carries everything needed to run it.</summary>
    public static string Write(Sdtv2Config c, Normalization? norm, IReadOnlyList<string>? classes)
    {
        var o = new JsonObject
        {
            ["arch"] = "sdtv2",
            ["embed_dim"] = new JsonArray(c.EmbedDim.Select(d => (JsonNode)d).ToArray()),
            ["num_heads"] = c.NumHeads,
            ["mlp_ratio"] = c.MlpRatio,
            ["stem_stride"] = c.StemStride,
            ["in_channels"] = c.InChannels,
            ["num_classes"] = c.NumClasses,
            ["timesteps"] = c.Timesteps,
            ["kd"] = c.Kd,
            ["input"] = new JsonObject { ["height"] = c.ImageHeight, ["width"] = c.ImageWidth },
        };
        if (norm is not null)
        {
            o["input"]!["mean"] = new JsonArray(norm.Mean.Select(v => (JsonNode)v).ToArray());
            o["input"]!["std"] = new JsonArray(norm.Std.Select(v => (JsonNode)v).ToArray());
        }
        if (classes is not null) o["classes"] = new JsonArray(classes.Select(s => (JsonNode)s).ToArray());
        return o.ToJsonString(TextFiles.Json);
    }
}
