using System.Globalization;
using Qsvit.Backends;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Search;

/// <summary>
/// An opened search run: the model and splits of a <see cref="SearchRunSpec"/>, its locked run directory and the cached
/// evaluator every method asks, plus the Alg. 4-style outputs methods share (the saved network, the energy estimate).
/// Dispose it to release the run directory.
/// </summary>
public sealed class SearchRun : IDisposable
{
    public const string SearchSplit = "search", TestSplit = "test";

    public SearchRunSpec Spec { get; }
    public LoadedModel Model { get; }
    public Sdtv2Layout Layout { get; }
    public IReadOnlyList<int> Bits { get; }
    public double TolerancePoints { get; }
    public SettingEvaluator Evaluator { get; }
    /// <summary>The device the evaluations run on, owned by the run.</summary>
    public IBackend Backend { get; }
    /// <summary>Images per forward pass: the spec's, or the device's default.</summary>
    public int BatchSize { get; }
    public RunStore Store { get; }
    public string Directory => Store.Directory;
    /// <summary>Split name → dataset, the search split first.</summary>
    public IReadOnlyDictionary<string, IImageDataset> Splits { get; }
    /// <summary>Split name → what it is, for reports ("data/cifar10/val.bin, 250 images").</summary>
    public IReadOnlyDictionary<string, string> SplitDescriptions { get; }
    /// <summary>The run identity pinned in the manifest (null: not used by this run).</summary>
    public IReadOnlyDictionary<string, string?> Identity { get; }

    public SearchMethod Method => Spec.Method;
    public QuantizerSpec Quantizer => Spec.Quantizer;
    public CorrectionOptions Correction => Spec.Correction;
    public Granularity Granularity => Spec.Granularity;
    /// <summary>The held-out split's name, when the run has one.</summary>
    public string? TestSplitName => Splits.ContainsKey(TestSplit) ? TestSplit : null;
    /// <summary>Log lines skipped on opening (see <see cref="EvaluationLog"/>).</summary>
    public IReadOnlyList<string> Warnings => Store.Log.Warnings;

    private SearchRun(SearchRunSpec spec, LoadedModel model, IReadOnlyList<int> bits, double tolerance, SettingEvaluator evaluator, RunStore store,
        IReadOnlyDictionary<string, IImageDataset> splits, IReadOnlyDictionary<string, string> descriptions, IReadOnlyDictionary<string, string?> identity,
        IBackend backend, int batchSize)
    {
        Backend = backend;
        BatchSize = batchSize;
        Spec = spec;
        Model = model;
        Layout = new Sdtv2Layout(model.Config);
        Bits = bits;
        TolerancePoints = tolerance;
        Evaluator = evaluator;
        Store = store;
        Splits = splits;
        SplitDescriptions = descriptions;
        Identity = identity;
    }

    /// <summary>
    /// Checks the spec, loads the model and data, and opens (or resumes) the run directory. Its identity holds what decides
    /// evaluation results (model, preprocessing, quantizer, splits, device and, for a method that measures drift, the
    /// calibration images), not what only steers a search (widths, granularity, tolerance…), so that methods and settings
    /// can share one directory and every evaluation in it.
    /// </summary>
    public static SearchRun Open(SearchRunSpec spec)
    {
        var method = spec.Method;
        spec.Quantizer.Validate();
        spec.Correction.Validate();
        if (!method.Granularities.Contains(spec.Granularity))
            throw new QsvitException($"granularity {spec.Granularity.Name()}: {method.Name} searches " +
                                     $"{string.Join(" or ", method.Granularities.Select(g => g.Name()))} units");
        var bits = CheckBits(spec.Bits ?? method.DefaultBits(spec.Quantizer));
        double tolerance = spec.TolerancePoints ?? method.DefaultTolerancePoints;
        if (!double.IsFinite(tolerance) || tolerance < 0)
            throw new QsvitException($"tolerance must be a non-negative number of accuracy points, got {tolerance}");
        int? calibration = method.MeasuresDrift ? spec.CalibrationImages ?? SearchMethod.DefaultCalibrationImages : null;
        if (calibration < 1) throw new QsvitException($"calibration images must be at least 1, got {calibration}");
        if (spec.BatchSize < 1) throw new QsvitException($"batch size must be at least 1, got {spec.BatchSize}");
        var device = DeviceSpec.Parse(spec.Device);
        FirstImages.Validate(spec.Search.Limit, "search limit");
        FirstImages.Validate(spec.Test?.Limit, "test limit");
        spec.Sequential?.Validate();
        if (spec.CacheMegabytes < 0) throw new QsvitException($"the prefix cache size must not be negative, got {spec.CacheMegabytes} MB");

        var model = ModelLoader.Load(spec.Model, spec.ModelConfig, spec.Overrides);
        var options = new DatasetOptions
        {
            Normalization = model.Normalization,
            ResizeShorter = spec.ResizeShorter,
            CropSize = spec.CropSize,
            Channels = model.Config.InChannels,
        };
        var splits = new Dictionary<string, IImageDataset>();
        var descriptions = new Dictionary<string, string>();
        var identities = new Dictionary<string, string?> { [SearchSplit] = null, [TestSplit] = null };
        bool imageFolder = false;
        CalibrationImages? correctionImages = null;
        foreach (var (name, data) in new[] { (SearchSplit, spec.Search), (TestSplit, spec.Test) })
        {
            if (data is null) continue;
            var opened = DatasetLoader.Open(data.Path, options, data.Split);
            imageFolder |= opened is ImageFolderDataset;
            var dataset = FirstImages.Of(opened, data.Limit, $"{name} limit");
            ModelInput.Check(model.Config, dataset);
            string apart = "";
            if (name == SearchSplit && spec.CorrectsApart)
            {
                // The corrections calibrate on images no decision is made on (see SearchRunSpec.CorrectionApart).
                (var picked, dataset) = ImageSubset.Spread(dataset, spec.Correction.CalibrationImages);
                correctionImages = CalibrationImages.Spread(picked, picked.Count, parallel: spec.Compute.Parallel);
                apart = $" less {picked.Count} spread evenly for the corrections";
            }
            splits[name] = dataset;
            descriptions[name] = $"{data.Path}, {dataset.Count} images{(apart.Length == 0 ? "" : $" ({correctionImages!.Count} more held apart for the corrections)")}";
            identities[name] = $"{Path.GetFullPath(data.Path)}{(data.Split is null ? "" : $" [{data.Split}]")} first {dataset.Count + (correctionImages?.Count ?? 0)}{apart}";
        }

        if (spec.Sequential is not null && SequentialOptions.SortedByClass(splits[SearchSplit]))
            throw new QsvitException($"{descriptions[SearchSplit]} is sorted by class, so its first images are no sample of it and sequential " +
                                     "decisions on them would be biased; decide on the whole split (--sequential false) or shuffle the split");

        string modelName = Path.GetFileNameWithoutExtension(spec.Model);
        string directory = spec.RunDirectory ?? Path.Combine("runs", $"{modelName}-{method.Name}");
        var identity = new Dictionary<string, string?>
        {
            ["model"] = Path.GetFullPath(spec.Model),
            ["model_bytes"] = new FileInfo(spec.Model).Length.ToString(CultureInfo.InvariantCulture),
            ["config"] = model.Config.ToString(),
            ["normalization"] = model.Normalization is { } n ? $"mean {string.Join(",", n.Mean)} std {string.Join(",", n.Std)}" : "dataset default",
            // Only image folders are resized and cropped; other formats are read as stored.
            ["preprocess"] = imageFolder ? $"resize {spec.ResizeShorter} crop {spec.CropSize}" : "as stored",
            ["quantizer"] = spec.Quantizer.ToString(),
            // Decides every quantized evaluation; "none" in runs made before corrections existed (see RunStore.Open).
            ["correction"] = spec.Correction.Identity,
            ["device"] = null,   // the device opened, set below
            [SearchSplit] = identities[SearchSplit],
            [TestSplit] = identities[TestSplit],
            // The images actually used: spread evenly over the search split, so only their number matters.
            ["calibration_images"] = calibration is { } c ? Math.Min(c, splits[SearchSplit].Count).ToString(CultureInfo.InvariantCulture) : null,
        };
        var backend = BackendFactory.Open(device, spec.Compute);
        RunStore? store = null;
        try
        {
            // A group's results are its first GPU's (each batch runs whole on one device), so a run resumes on 1 or N GPUs.
            identity["device"] = (backend is DeviceGroup g ? g.Devices[0].Device : backend.Device).ToString();
            store = RunStore.Open(directory, identity, new Dictionary<string, string> { ["correction"] = CorrectionOptions.None.Identity });
            var search = splits[SearchSplit];
            int batch = spec.BatchSize ?? backend.DefaultBatchSize(search.Height, search.Width,
                Sdtv2Model.ActivationBytesPerImage(model.Config, model.State, search.Height, search.Width));
            var evaluator = new SettingEvaluator(model, spec.Quantizer, splits, new EvalOptions { BatchSize = batch, Host = spec.Compute }, store,
                calibration, backend, spec.CacheMegabytes, spec.Correction, correctionImages);
            return new SearchRun(spec, model, bits, tolerance, evaluator, store, splits, descriptions, identity, backend, batch);
        }
        catch
        {
            store?.Dispose();
            backend.Dispose();
            throw;
        }
    }

    /// <summary>Widths as given (32 = fp32), each checked, without repeats, highest first.</summary>
    public static IReadOnlyList<int> CheckBits(IEnumerable<int> bits)
    {
        var result = new List<int>();
        foreach (int b in bits)
        {
            if (!Quantization.Quantizer.IsValidBits(b))
                throw new QsvitException($"bit width {b} is not supported; allowed {Quantization.Quantizer.MinBits}..{Quantization.Quantizer.MaxBits} or 32");
            if (!result.Contains(b)) result.Add(b);
        }
        if (result.Count == 0) throw new QsvitException("give at least one bit width, e.g. 32,16,12,8,4");
        return result.OrderDescending().ToArray();
    }

    /// <summary>Writes <paramref name="setting"/>'s quantized network into the run directory as <c>&lt;name&gt;.safetensors</c>.</summary>
    public string SaveModel(QuantizationSetting setting, string name)
    {
        var path = Path.Combine(Directory, name + ".safetensors");
        QsvitCheckpoint.Save(path, Model, Evaluator.Quantize(setting));
        return path;
    }

    /// <summary>
    /// Writes <paramref name="setting"/> as a packed model (<see cref="PackedModel"/>: codes at their bit width, the file
    /// <c>qsvit eval</c> and <c>bench</c> run on the integer path) into <paramref name="directory"/>, made if missing.
    /// </summary>
    public string SavePackedModel(QuantizationSetting setting, string directory)
    {
        System.IO.Directory.CreateDirectory(directory); // the report directory may not exist yet: the report is written after this
        var path = Path.Combine(directory, "model.packed.safetensors");
        var model = Correction.IsNone ? Model
            : Model with { State = QuantizationCorrector.WithCorrections(Model.State, Evaluator.Quantize(setting), Layout) };
        PackedModel.Create(model, setting, Quantizer, Spec.Compute).Save(path);
        return path;
    }

    /// <summary>
    /// Energy estimates of fp32 and <paramref name="setting"/> from firing rates on the first <paramref name="images"/> search
    /// images, through the evaluator (cached in the run directory like every evaluation); null when <paramref name="images"/> is 0.
    /// </summary>
    public EnergyComparison? Energy(QuantizationSetting setting, int images)
    {
        var data = Splits[SearchSplit];
        int n = Math.Min(images, data.Count);
        if (n <= 0) return null;
        var macs = EnergyEstimate.LayerMacs(Layout, data.Height, data.Width);
        var fp32 = QuantizationSetting.Uniform(Quantization.Quantizer.FullPrecision);
        return new EnergyComparison(SearchSplit, n,
            EnergyEstimate.Compute(Layout, macs, LayerInputRates.FromLif(Layout, Evaluator.FiringRates(fp32, n)), fp32),
            EnergyEstimate.Compute(Layout, macs, LayerInputRates.FromLif(Layout, Evaluator.FiringRates(setting, n)), setting));
    }

    /// <summary>
    /// Board energy of fp32 and <paramref name="setting"/>, each evaluating the whole search split on the run's device(s)
    /// (two evaluations run for this, never cached: a measurement of this machine, not of the model). Where the source
    /// cannot measure the device (the CPU, NVML missing) nothing runs and both sides say why.
    /// </summary>
    public MeasuredEnergyComparison MeasureEnergy(QuantizationSetting setting, IPowerSource? source = null)
    {
        source ??= NvmlPowerSource.Instance;
        var data = Splits[SearchSplit];
        if (source.WhyNot(Backend) is { } why)
            return new MeasuredEnergyComparison(SearchSplit, data.Count, Backend.Description,
                EnergyMeasurement.NotMeasured(why), EnergyMeasurement.NotMeasured(why));
        var options = new EvalOptions { BatchSize = BatchSize, Host = Spec.Compute };
        EnergyMeasurement Measure(QuantizationSetting s)
        {
            using var model = Evaluator.CreateModel(s);
            return EnergyMeasurement.Measure(Backend, source, () => Evaluation.Evaluator.Run(model, data, options), r => r.Count).Energy;
        }
        var fp32 = Measure(QuantizationSetting.Uniform(Quantization.Quantizer.FullPrecision));
        return new MeasuredEnergyComparison(SearchSplit, data.Count, Backend.Description, fp32,
            fp32.Measured ? Measure(setting) : EnergyMeasurement.NotMeasured(fp32.NotMeasuredReason!)) { IntegerCodes = Evaluator.RunsIntegerCodes };
    }

    public void Dispose()
    {
        Evaluator.Dispose();
        Backend.Dispose();
        Store.Dispose();
    }
}
