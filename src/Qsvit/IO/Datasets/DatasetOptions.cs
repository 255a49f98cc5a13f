namespace Qsvit.IO.Datasets;

/// <summary>Which CIFAR binary layout a .bin file holds.</summary>
public enum CifarVariant
{
    /// <summary>Decide from the file: its size (a multiple of 3073 or 3074 bytes) and its name and folder.</summary>
    Auto,

    /// <summary>Records of 3073 bytes: label, 1024 R, 1024 G, 1024 B.</summary>
    Cifar10,

    /// <summary>Records of 3074 bytes: coarse label, fine label, 3072 pixels. The fine label (100 classes) is used.</summary>
    Cifar100,
}

/// <summary>How <see cref="DatasetLoader.Open"/> turns files into normalized images.</summary>
public sealed record DatasetOptions
{
    public static DatasetOptions Default { get; } = new();

    /// <summary>
    /// Pixel normalization; null means the format's usual one: <see cref="Normalization.Cifar10"/> for CIFAR
    /// (10 and 100), <see cref="Normalization.None"/> for MNIST idx files and <see cref="Normalization.ImageNet"/>
    /// for image folders.
    /// </summary>
    public Normalization? Normalization { get; init; }

    /// <summary>Image folders only: the shorter side is resized (PIL bicubic) to this many pixels.</summary>
    public int ResizeShorter { get; init; } = 256;

    /// <summary>Image folders only: side of the square center crop taken after resizing (zero-padded when larger).</summary>
    public int CropSize { get; init; } = 224;

    /// <summary>
    /// Channels to produce, 1 or 3. A 1-channel source (MNIST) is replicated when 3 are asked; an RGB source
    /// (CIFAR, image folders) cannot be read as 1 channel.
    /// </summary>
    public int Channels { get; init; } = 3;

    public CifarVariant CifarVariant { get; init; } = CifarVariant.Auto;

    internal void Validate()
    {
        if (Channels is not (1 or 3))
            throw new QsvitException($"dataset options: Channels must be 1 or 3, got {Channels}");
        if (ResizeShorter is < 1 or > MaxSide)
            throw new QsvitException($"dataset options: ResizeShorter must be in [1, {MaxSide}], got {ResizeShorter}");
        if (CropSize is < 1 or > MaxSide)
            throw new QsvitException($"dataset options: CropSize must be in [1, {MaxSide}], got {CropSize}");
        if (!Enum.IsDefined(CifarVariant))
            throw new QsvitException($"dataset options: unknown CifarVariant {(int)CifarVariant}");
    }

    internal const int MaxSide = 8192;
}
