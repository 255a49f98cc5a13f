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

    public static ModelFile Read(string path)
    {
        if (!File.Exists(path)) throw new QsvitException($"model config '{path}' does not exist");
        try { return Parse(File.ReadAllText(path)); }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new QsvitException($"model config '{path}' is not valid: {e.Message}", e);
        }
    }

    public static ModelFile Parse(string json)
    {
        var root = JsonNode.Parse(json) as JsonObject ?? throw new FormatException("expected a JSON object");
        var input = root["input"] as JsonObject;
        if (root["arch"] is JsonNode arch && arch.GetValue<string>() != "sdtv2")
            throw new FormatException($"arch '{arch}' is not supported (only 'sdtv2')");
        return new ModelFile
        {
            Architecture = new PartialConfig
            {
                EmbedDim = root["embed_dim"]?.AsArray().Select(n => n!.GetValue<int>()).ToArray(),
                NumHeads = root["num_heads"]?.GetValue<int>(),
                MlpRatio = root["mlp_ratio"]?.GetValue<int>(),
                StemStride = root["stem_stride"]?.GetValue<int>(),
                InChannels = root["in_channels"]?.GetValue<int>(),
                NumClasses = root["num_classes"]?.GetValue<int>(),
                Timesteps = (root["timesteps"] ?? root["T"])?.GetValue<int>(),
                Kd = root["kd"]?.GetValue<bool>(),
                ImageHeight = input?["height"]?.GetValue<int>(),
                ImageWidth = input?["width"]?.GetValue<int>(),
            },
            Mean = input?["mean"]?.AsArray().Select(n => n!.GetValue<float>()).ToArray(),
            Std = input?["std"]?.AsArray().Select(n => n!.GetValue<float>()).ToArray(),
            Classes = root["classes"]?.AsArray().Select(n => n!.GetValue<string>()).ToArray(),
        };
    }

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
