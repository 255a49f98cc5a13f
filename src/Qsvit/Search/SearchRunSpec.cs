using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>A dataset split as a run uses it: a file or folder, the split inside a folder, and how many of its first images.</summary>
public sealed record DataSpec(string Path, string? Split = null, int? Limit = null);

/// <summary>
/// A search method as a run needs to know it: its default widths and tolerance, the granularities it searches, and whether
/// it measures membrane drift (its calibration images then join the run identity).
/// </summary>
/// <param name="Name">Names the default run directory <c>runs/&lt;model&gt;-&lt;name&gt;</c>, the report directory and the saved network.</param>
public sealed record SearchMethod(string Name, Func<QuantizerSpec, IReadOnlyList<int>> DefaultBits, double DefaultTolerancePoints,
    IReadOnlyList<Granularity> Granularities, bool MeasuresDrift)
{
    public const int DefaultCalibrationImages = 64;

    /// <summary>QSViT Alg. 1-4: the paper's units, or transformer blocks apart.</summary>
    public static readonly SearchMethod Qsvit = new("qsvit", _ => QsvitOptions.DefaultBits, QsvitOptions.DefaultTolerancePoints,
        [Granularity.Block, Granularity.TransformerBlock], MeasuresDrift: false);
    /// <summary>QSViT Alg. 1 alone.</summary>
    public static readonly SearchMethod Sensitivity = Qsvit with { Name = "sensitivity" };
    public static readonly SearchMethod Greedy = new("greedy", Aq4Space.DefaultBits, Aq4Options.DefaultMaxDrop, Quantization.Granularities.All, MeasuresDrift: true);
    public static readonly SearchMethod Beam = Greedy with { Name = "beam" };
}

/// <summary>
/// Everything a search run is made of, as plain values: what <see cref="SearchRun.Open"/> needs to load the model and data,
/// pin the run directory's identity and build the cached evaluator. Null means the method's or the format's default.
/// </summary>
public sealed record SearchRunSpec
{
    public required SearchMethod Method { get; init; }
    /// <summary>Checkpoint: official .pth/.pt or .safetensors.</summary>
    public required string Model { get; init; }
    /// <summary>model.json sidecar (default: found beside the checkpoint).</summary>
    public string? ModelConfig { get; init; }
    public ConfigOverrides Overrides { get; init; } = new();
    /// <summary>The split every decision is made on.</summary>
    public required DataSpec Search { get; init; }
    /// <summary>The held-out split, evaluated only for the final report.</summary>
    public DataSpec? Test { get; init; }
    /// <summary>Image folders only: shorter side after the bicubic resize, and the center crop.</summary>
    public int ResizeShorter { get; init; } = 256;
    public int CropSize { get; init; } = 224;
    public QuantizerSpec Quantizer { get; init; } = QuantizerSpec.Paper;
    /// <summary>Corrections after quantization, for every candidate and the result alike (calibrated on images of the search split's data).</summary>
    public CorrectionOptions Correction { get; init; } = CorrectionOptions.None;
    /// <summary>
    /// With <see cref="Correction"/>: calibrate it on its <see cref="CorrectionOptions.CalibrationImages"/> images spread evenly
    /// over the search split, and decide on the other images only, so that the search split's accuracy of a corrected model
    /// is measured on images its corrections were not fitted to (as the test split's is). False: calibrate on images of the
    /// search split that decisions use as well.
    /// </summary>
    public bool CorrectionApart { get; init; } = true;
    /// <summary>The run holds calibration images of its corrections apart from its search split.</summary>
    public bool CorrectsApart => CorrectionApart && !Correction.IsNone;
    public Granularity Granularity { get; init; } = Granularity.Block;
    /// <summary>Widths to try, 32 = fp32.</summary>
    public IReadOnlyList<int>? Bits { get; init; }
    /// <summary>Accepted top-1 drop below fp32 on the search split, in points.</summary>
    public double? TolerancePoints { get; init; }
    /// <summary>Search-split images the membrane drift is measured on (methods that measure drift).</summary>
    public int? CalibrationImages { get; init; }
    /// <summary>The resumable run directory (default <c>runs/&lt;model&gt;-&lt;method&gt;</c>).</summary>
    public string? RunDirectory { get; init; }
    /// <summary>Images per forward pass; null: what fills the device (<see cref="Backends.IBackend.DefaultBatchSize"/>).</summary>
    public int? BatchSize { get; init; }
    /// <summary>Where evaluations run (<see cref="Backends.DeviceSpec"/>: auto, cpu, cuda, cuda:N); the device opened is part of the run identity (GPU sums differ in the last bits).</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Host threads: the CPU backend's, quantizing's and image decoding's.</summary>
    public Tensors.ComputeOptions Compute { get; init; } = Tensors.ComputeOptions.Default;
    /// <summary>
    /// Decide accuracy checks sequentially on growing chunks of the search split under this error budget; null: every
    /// candidate on the whole split. Not part of the run identity (it changes which images are asked for, not results).
    /// </summary>
    public SequentialOptions? Sequential { get; init; }
    /// <summary>Default <see cref="CacheMegabytes"/>: 2 GB, fp32's streams at all 17 boundaries of ~1,500 bundled-CIFAR-model images (1.36 MB each).</summary>
    public const long DefaultCacheMegabytes = 2048;
    /// <summary>
    /// Memory for prefix reuse (<see cref="PrefixCache"/>; beyond it streams spill to the run directory, up to 4x as much);
    /// 0 turns it off. Not part of the run identity: results are bit-identical either way.
    /// </summary>
    public long CacheMegabytes { get; init; } = DefaultCacheMegabytes;
}
