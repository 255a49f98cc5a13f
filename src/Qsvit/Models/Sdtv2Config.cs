namespace Qsvit.Models;

/// <summary>
/// Architecture of an SDTv2 (Spiking_vit_MetaFormer) network. Defaults are the official ImageNet settings;
/// <see cref="Presets"/> holds the published widths.
/// </summary>
public sealed record Sdtv2Config
{
    /// <summary>Stage widths [C1, C2, C3, C4]; the stem and the first conv block run at C1/2.</summary>
    public required int[] EmbedDim { get; init; }
    public int NumHeads { get; init; } = 8;
    public int MlpRatio { get; init; } = 4;
    /// <summary>Stride of the 7x7 stem conv (downsample1_1): 2 officially, 1 for 32x32 inputs.</summary>
    public int StemStride { get; init; } = 2;
    public int InChannels { get; init; } = 3;
    public int NumClasses { get; init; } = 1000;
    public int Timesteps { get; init; } = 4;
    /// <summary>With a distillation head, eval logits are the mean of head and head_kd.</summary>
    public bool Kd { get; init; }
    public int ImageHeight { get; init; } = 224;
    public int ImageWidth { get; init; } = 224;

    public const int Stage3Depth = 6;
    public const int Stage4Depth = 2;

    public void Validate()
    {
        if (EmbedDim is not { Length: 4 } || EmbedDim.Any(d => d <= 0))
            throw new QsvitException($"embed_dim must hold 4 positive widths, got [{string.Join(", ", EmbedDim ?? [])}]");
        if (EmbedDim[0] % 2 != 0) throw new QsvitException($"embed_dim[0] = {EmbedDim[0]} must be even (the stem runs at embed_dim[0]/2)");
        if (NumHeads <= 0 || EmbedDim[2] % NumHeads != 0 || EmbedDim[3] % NumHeads != 0)
            throw new QsvitException($"num_heads = {NumHeads} must divide embed_dim[2] = {EmbedDim[2]} and embed_dim[3] = {EmbedDim[3]}");
        if (MlpRatio <= 0) throw new QsvitException($"mlp_ratio must be positive, got {MlpRatio}");
        if (StemStride is < 1 or > 4) throw new QsvitException($"stem stride must be 1..4, got {StemStride}");
        if (InChannels <= 0) throw new QsvitException($"in_channels must be positive, got {InChannels}");
        if (NumClasses <= 0) throw new QsvitException($"num_classes must be positive, got {NumClasses}");
        if (Timesteps is < 1 or > 64) throw new QsvitException($"timesteps must be 1..64, got {Timesteps}");
        if (ImageHeight < 8 || ImageWidth < 8) throw new QsvitException($"input {ImageHeight}x{ImageWidth} is too small");
        if (ImageHeight > IO.Datasets.DatasetOptions.MaxSide || ImageWidth > IO.Datasets.DatasetOptions.MaxSide)
            throw new QsvitException($"input {ImageHeight}x{ImageWidth} is too large (at most {IO.Datasets.DatasetOptions.MaxSide} a side)");
    }

    public override string ToString() =>
        $"SDTv2 embed_dim=[{string.Join(",", EmbedDim)}] heads={NumHeads} mlp={MlpRatio} stem_stride={StemStride} " +
        $"in={InChannels} classes={NumClasses} T={Timesteps} kd={Kd.ToString().ToLowerInvariant()} input={ImageHeight}x{ImageWidth}";
}
