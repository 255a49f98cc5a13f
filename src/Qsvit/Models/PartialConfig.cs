namespace Qsvit.Models;

/// <summary>
/// Some architecture values, each optional: what one source (the checkpoint's tensor shapes, a model.json sidecar, the
/// command line) says. <see cref="ApplyTo"/> lays them over a configuration, so sources merge in order of precedence.
/// </summary>
public sealed record PartialConfig
{
    public int[]? EmbedDim { get; init; }
    public int? NumHeads { get; init; }
    public int? MlpRatio { get; init; }
    public int? StemStride { get; init; }
    public int? InChannels { get; init; }
    public int? NumClasses { get; init; }
    public int? Timesteps { get; init; }
    public bool? Kd { get; init; }
    public int? ImageHeight { get; init; }
    public int? ImageWidth { get; init; }

    /// <summary><paramref name="config"/> with every value this source gives in place of its own.</summary>
    public Sdtv2Config ApplyTo(Sdtv2Config config) => config with
    {
        EmbedDim = EmbedDim ?? config.EmbedDim,
        NumHeads = NumHeads ?? config.NumHeads,
        MlpRatio = MlpRatio ?? config.MlpRatio,
        StemStride = StemStride ?? config.StemStride,
        InChannels = InChannels ?? config.InChannels,
        NumClasses = NumClasses ?? config.NumClasses,
        Timesteps = Timesteps ?? config.Timesteps,
        Kd = Kd ?? config.Kd,
        ImageHeight = ImageHeight ?? config.ImageHeight,
        ImageWidth = ImageWidth ?? config.ImageWidth,
    };
}
