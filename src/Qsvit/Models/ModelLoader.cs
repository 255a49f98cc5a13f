using Qsvit.IO;
using Qsvit.IO.Datasets;

namespace Qsvit.Models;

/// <summary>What the command line says about the architecture; it wins over every other source.</summary>
public sealed record ConfigOverrides
{
    /// <summary>An official size to start from instead of the defaults.</summary>
    public string? Preset { get; init; }
    public PartialConfig Architecture { get; init; } = new();
}

/// <summary>A checkpoint resolved into a runnable model: the configuration, where each part came from, and the weights.</summary>
public sealed record LoadedModel(
    Sdtv2Config Config,
    StateDict State,
    Normalization? Normalization,
    IReadOnlyList<string>? ClassNames,
    string CheckpointPath,
    string? ConfigPath,
    IReadOnlyDictionary<string, string> Metadata)
{
    /// <param name="backend">Where to run; null: a CPU backend of the model's own.</param>
    public Sdtv2Model CreateModel(bool foldBatchNorm = false, Backends.IBackend? backend = null) => new(Config, State, strict: true, foldBatchNorm, backend);
}

/// <summary>
/// Resolves a model from a checkpoint (.pth or .safetensors). Precedence, lowest first: official defaults, the checkpoint's
/// <c>args</c> (or qsvit metadata), what tensor shapes prove (widths, classes, kd, input channels), the model.json sidecar,
/// CLI overrides. A sidecar or flag that contradicts the weights is an error naming both.
/// </summary>
public static class ModelLoader
{
    public const string ConfigMetadataKey = "qsvit.model";

    public static LoadedModel Load(string checkpointPath, string? configPath = null, ConfigOverrides? overrides = null)
    {
        overrides ??= new ConfigOverrides();
        if (Quantization.PackedModel.IsPackedFile(checkpointPath))
            throw new QsvitException($"{checkpointPath} is a packed model (qsvit export): eval and bench run it; this command needs the fp32 checkpoint it was exported from");
        var checkpoint = CheckpointReader.Load(checkpointPath);
        configPath ??= FindSidecar(checkpointPath);
        ModelFile? file = configPath is null ? null : ModelFile.Read(configPath);
        var metadata = checkpoint.Args.ToDictionary(kv => kv.Key, kv => Convert.ToString(kv.Value, System.Globalization.CultureInfo.InvariantCulture) ?? "");
        if (file is null && metadata.TryGetValue(ConfigMetadataKey, out var embedded)) file = ModelFile.Parse(embedded);

        var config = overrides.Preset is { } preset ? Presets.Get(preset) : new Sdtv2Config { EmbedDim = [128, 256, 512, 640] };
        config = FromArgs(config, checkpoint.Args);
        var inferred = Infer(checkpoint.State, checkpointPath);
        config = inferred.ApplyTo(config);
        if (file is not null)
        {
            var declared = file.Architecture;
            Agree("embed_dim", declared.EmbedDim, inferred.EmbedDim, configPath ?? checkpointPath, checkpointPath);
            Agree("num_classes", declared.NumClasses, inferred.NumClasses, configPath ?? checkpointPath, checkpointPath);
            Agree("kd", declared.Kd, inferred.Kd, configPath ?? checkpointPath, checkpointPath);
            config = declared.ApplyTo(config);
        }
        config = overrides.Architecture.ApplyTo(config);
        config.Validate();
        StateDictCheck.Validate(new Sdtv2Layout(config), checkpoint.State, strict: true);

        // Without a sidecar the dataset format's usual normalization applies.
        var norm = file?.Mean is { } mean && file.Std is { } std ? new Normalization(mean, std) : null;
        if (norm is not null && (norm.Mean.Length != config.InChannels || norm.Std.Length != config.InChannels))
            throw new QsvitException($"normalization has {norm.Mean.Length} mean / {norm.Std.Length} std values for {config.InChannels} input channels");
        if (file?.Classes is { } classes && classes.Length != config.NumClasses)
            throw new QsvitException($"{configPath}: {classes.Length} class names for {config.NumClasses} classes");
        return new LoadedModel(config, checkpoint.State, norm, file?.Classes, checkpointPath, configPath, metadata);
    }

    /// <summary>model.json beside the checkpoint, or &lt;checkpoint&gt;.json.</summary>
    private static string? FindSidecar(string checkpointPath)
    {
        var own = Path.ChangeExtension(checkpointPath, ".json");
        if (File.Exists(own)) return own;
        var dir = Path.GetDirectoryName(Path.GetFullPath(checkpointPath));
        var beside = dir is null ? null : Path.Combine(dir, "model.json");
        return beside is not null && File.Exists(beside) ? beside : null;
    }

    /// <summary>The official training script's argparse fields that describe the model.</summary>
    private static Sdtv2Config FromArgs(Sdtv2Config config, IReadOnlyDictionary<string, object?> args)
    {
        if (args.TryGetValue("model", out var m) && m is string name && Presets.Widths.ContainsKey(name)) config = config with { EmbedDim = Presets.Get(name).EmbedDim };
        if (Int(args, "time_steps") is int t) config = config with { Timesteps = t };
        if (Int(args, "input_size") is int s) config = config with { ImageHeight = s, ImageWidth = s };
        if (Int(args, "nb_classes") is int k) config = config with { NumClasses = k };
        return config;
    }

    private static int? Int(IReadOnlyDictionary<string, object?> args, string key) =>
        args.TryGetValue(key, out var v) ? v switch { long l => (int)l, int i => i, double d when d == Math.Floor(d) => (int)d, _ => null } : null;

    /// <summary>What the weights' shapes prove about the architecture.</summary>
    private static PartialConfig Infer(StateDict s, string path)
    {
        int? Out(string key) => s.TryGetValue(key, out var t) && t.Rank >= 1 ? t.Shape[0] : null;
        var stem = s.TryGetValue("downsample1_1.encode_conv.weight", out var st) && st.Rank == 4 ? st : null;
        if (stem is null)
            throw new QsvitException($"{path}: no 'downsample1_1.encode_conv.weight' of rank 4 — this does not look like an SDTv2 (Spiking_vit_MetaFormer) checkpoint " +
                                     $"(first keys: {string.Join(", ", s.Keys.Take(5))})");
        int?[] widths = [Out("downsample1_2.encode_conv.weight"), Out("downsample2.encode_conv.weight"), Out("downsample3.encode_conv.weight"), Out("downsample4.encode_conv.weight")];
        int[]? embed = widths.All(w => w.HasValue) ? widths.Select(w => w!.Value).ToArray() : null;
        return new PartialConfig { EmbedDim = embed, NumClasses = Out("head.weight"), InChannels = stem.Shape[1], Kd = s.ContainsKey("head_kd.weight") };
    }

    private static void Agree<T>(string field, T? declared, T? proven, string declaredIn, string weights)
    {
        if (declared is null || proven is null) return;
        bool same = declared is int[] a && proven is int[] b ? a.SequenceEqual(b) : Equals(declared, proven);
        if (!same)
            throw new QsvitException($"{declaredIn} says {field} = {Show(declared)} but the weights in {weights} have {field} = {Show(proven)}");
    }

    private static string Show(object? v) => v is int[] a ? "[" + string.Join(", ", a) + "]" : Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "null";
}
