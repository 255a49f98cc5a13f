using System.CommandLine;
using System.Globalization;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Reports;
using Qsvit.Search;

namespace Qsvit.Cli.Commands;

/// <summary>
/// How a method reads the shared options: its default widths and tolerance, the granularities it can search, and the
/// option giving its membrane-drift calibration images when it measures drift (they then join the run identity).
/// </summary>
/// <param name="Name">Names the default run directory <c>runs/&lt;model&gt;-&lt;name&gt;</c>.</param>
/// <param name="Label">Names the method in error messages ("--method qsvit").</param>
internal sealed record MethodTraits(string Name, string Label, Func<QuantizerSpec, IReadOnlyList<int>> DefaultBits, double DefaultTolerance)
{
    public IReadOnlyList<Aq4Granularity> Granularities { get; init; } = Enum.GetValues<Aq4Granularity>();
    public Option<int>? CalibrationImages { get; init; }
}

/// <summary>
/// Options every search method shares (and <c>qsvit sensitivity</c> with them), and opening a run from them: the model, the
/// search and test splits, the quantizer, the run directory whose identity pins all of it, and the cached evaluator.
/// </summary>
internal sealed class SearchOptions(bool withTest)
{
    public const string SearchSplit = "search", TestSplit = "test";

    public readonly ModelOptions Model = new();
    public readonly DataOptions Data = new("--data", "Search split: every decision is made on it (CIFAR .bin, MNIST idx or an image folder)");
    public readonly Option<string?> TestData = new("--test-data") { Description = "Held-out split, evaluated only for the final report" };
    public readonly Option<string?> TestSplitName = new("--test-split") { Description = "File or subfolder to use when --test-data is a folder" };
    public readonly Option<int?> TestLimit = new("--test-limit") { Description = "Use only the first N images of --test-data" };
    public readonly Option<string> Quantizer = new("--quantizer", "-q")
    {
        Description = $"Weight quantizer: {string.Join(", ", QuantizerSpec.Names)}",
        DefaultValueFactory = _ => "paper",
    };
    public readonly Option<string[]> Bits = new("--bits")
    {
        Description = "Bit widths to try, 32 = fp32, e.g. --bits 8 4 or 16,8,4 (default: qsvit 32 16 12 8 4; greedy/beam 16 12 8 4 " +
                      "with --quantizer paper, else 16 12 8 6 4 3 2)",
        AllowMultipleArgumentsPerToken = true,
    };
    public readonly Option<string> Granularity = new("--granularity")
    {
        Description = "Units: network, stage (S1..S4), block (the paper's 11), transformer-block (each TRAN_S3/S4 block apart) or " +
                      "layer; qsvit takes block or transformer-block",
        DefaultValueFactory = _ => "block",
    };
    public readonly Option<double?> Tolerance = new("--tolerance", "--max-drop")
    {
        Description = $"Accepted top-1 drop below fp32 on the search split, in points (default: qsvit {F(QsvitOptions.DefaultTolerancePoints)}, " +
                      $"greedy/beam {F(Aq4Options.DefaultMaxDrop)})",
    };
    public readonly Option<string?> RunDir = new("--run-dir")
    {
        Description = "Resumable run directory (default: runs/<model>-<method>); methods may share one to reuse evaluations",
    };
    public readonly Option<int?> Threads = new("--threads") { Description = "Worker threads (default: all cores)" };
    public readonly Option<bool> Sequential = new("--sequential")
    {
        Description = "Decide each accuracy check on growing chunks of the search split and stop once the paired evidence is clear " +
                      "(--sequential false: every candidate on the whole split)",
        DefaultValueFactory = _ => true,
    };
    public readonly Option<double> ErrorBudget = new("--error-budget")
    {
        Description = "Largest probability that a sequential decision taken before the whole split is wrong",
        DefaultValueFactory = _ => SequentialOptions.DefaultErrorBudget,
    };
    public readonly Option<bool> Json = new("--json") { Description = "Print the result as JSON on stdout" };

    private static string F(double v) => v.ToString(CultureInfo.InvariantCulture);

    public void AddTo(Command command)
    {
        Model.AddTo(command);
        Data.AddTo(command);
        Granularity.AcceptOnlyFromAmong(Enum.GetValues<Aq4Granularity>().Select(Aq4Space.Name).ToArray());
        var options = new List<Option> { Quantizer, Bits, Granularity, Tolerance, RunDir, Threads, Json };
        if (withTest) options.InsertRange(0, [TestData, TestSplitName, TestLimit, Sequential, ErrorBudget]);
        foreach (var o in options) command.Add(o);
    }

    /// <summary>
    /// Loads the model and data and opens (or resumes) the run directory, <c>runs/&lt;model&gt;-&lt;method&gt;</c> by default.
    /// Its identity holds what decides evaluation results (model, preprocessing, quantizer, splits and, for a method that
    /// measures drift, the calibration images), not what only steers a search (widths, granularity, tolerance…), so that
    /// methods and settings can share one directory and every evaluation in it.
    /// </summary>
    public SearchContext Open(ParseResult r, MethodTraits method)
    {
        Cli.ApplyThreads(r.GetValue(Threads));
        var spec = QuantizerSpec.Parse(r.GetValue(Quantizer)!);
        spec.Validate();
        var granularity = Aq4Space.ParseGranularity(r.GetValue(Granularity)!);
        if (!method.Granularities.Contains(granularity))
            throw new QsvitException($"--granularity {Aq4Space.Name(granularity)}: {method.Label} searches " +
                                     $"{string.Join(" or ", method.Granularities.Select(Aq4Space.Name))} units");
        var bits = r.GetValue(Bits) is { Length: > 0 } given ? ParseBits(string.Join(",", given)) : method.DefaultBits(spec).OrderDescending().ToArray();
        double tolerance = r.GetValue(Tolerance) ?? method.DefaultTolerance;
        if (!double.IsFinite(tolerance) || tolerance < 0)
            throw new QsvitException($"--tolerance must be a non-negative number of accuracy points, got {tolerance}");
        int? calibration = method.CalibrationImages is { } option ? r.GetValue(option) : null;
        if (calibration < 1) throw new QsvitException($"--calibration-images must be at least 1, got {calibration}");
        var loaded = Model.Load(r);

        var search = Limit(Data.Open(r, loaded), r.GetValue(Data.Limit), "--limit");
        var splits = new Dictionary<string, IImageDataset> { [SearchSplit] = search };
        var descriptions = new Dictionary<string, string> { [SearchSplit] = Describe(r.GetValue(Data.Data)!, search) };
        string? testIdentity = null;
        if (withTest && r.GetValue(TestData) is { } testPath)
        {
            var test = Limit(DatasetLoader.Open(testPath, DatasetOptions(r, loaded), r.GetValue(TestSplitName)), r.GetValue(TestLimit), "--test-limit");
            splits[TestSplit] = test;
            descriptions[TestSplit] = Describe(testPath, test);
            testIdentity = DataIdentity(testPath, r.GetValue(TestSplitName), test.Count);
        }

        string checkpoint = r.GetRequiredValue(Model.Model);
        string modelName = Path.GetFileNameWithoutExtension(checkpoint);
        string runDir = r.GetValue(RunDir) ?? Path.Combine("runs", $"{modelName}-{method.Name}");
        // Null: not used by this run (no test split, no drift), so neither checked nor pinned (see RunStore).
        var identity = new Dictionary<string, string?>
        {
            ["model"] = Path.GetFullPath(checkpoint),
            ["model_bytes"] = new FileInfo(checkpoint).Length.ToString(CultureInfo.InvariantCulture),
            ["config"] = loaded.Config.ToString(),
            ["normalization"] = loaded.Normalization is { } n ? $"mean {string.Join(",", n.Mean)} std {string.Join(",", n.Std)}" : "dataset default",
            ["preprocess"] = $"resize {r.GetValue(Data.Resize)} crop {r.GetValue(Data.Crop)}",
            ["quantizer"] = spec.ToString(),
            [SearchSplit] = DataIdentity(r.GetValue(Data.Data)!, r.GetValue(Data.Split), search.Count),
            [TestSplit] = testIdentity,
            // The images actually used: spread evenly over the search split, so only their number matters.
            ["calibration_images"] = calibration is { } c ? Math.Min(c, search.Count).ToString(CultureInfo.InvariantCulture) : null,
        };
        SequentialOptions? sequential = null;
        if (withTest && r.GetValue(Sequential))
        {
            sequential = new SequentialOptions { ErrorBudget = r.GetValue(ErrorBudget) };
            try { sequential.Validate(); }
            catch (QsvitException e) { throw new QsvitException($"--error-budget: {e.Message}"); }
            if (SequentialOptions.SortedByClass(search))
                throw new QsvitException($"{Describe(r.GetValue(Data.Data)!, search)} is sorted by class, so its first images are no sample of it " +
                                         "and sequential decisions on them would be biased; pass --sequential false (or shuffle the split)");
        }
        var store = RunStore.Open(runDir, identity);
        var evaluator = new SettingEvaluator(loaded, spec, splits, new EvalOptions { BatchSize = r.GetValue(Data.Batch) }, store, calibration);
        return new SearchContext(r, method.Name, loaded, new Sdtv2Layout(loaded.Config), spec, granularity, bits, tolerance, evaluator, store,
            runDir, splits, descriptions, r.GetValue(Data.Batch), r.GetValue(Json)) { Sequential = sequential };
    }

    public static IReadOnlyList<int> ParseBits(string text)
    {
        var bits = new List<int>();
        foreach (var token in text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out int b) || !Qsvit.Quantization.Quantizer.IsValidBits(b))
                throw new QsvitException($"--bits: '{token}' is not a bit width; allowed {Qsvit.Quantization.Quantizer.MinBits}..{Qsvit.Quantization.Quantizer.MaxBits} or 32");
            if (!bits.Contains(b)) bits.Add(b);
        }
        if (bits.Count == 0) throw new QsvitException("--bits: give at least one bit width, e.g. 32,16,12,8,4");
        return bits.OrderDescending().ToArray();
    }

    private DatasetOptions DatasetOptions(ParseResult r, LoadedModel model) => new()
    {
        Normalization = model.Normalization,
        ResizeShorter = r.GetValue(Data.Resize),
        CropSize = r.GetValue(Data.Crop),
        Channels = model.Config.InChannels,
    };

    private static IImageDataset Limit(IImageDataset data, int? limit, string option) => limit switch
    {
        null => data,
        < 1 => throw new QsvitException($"{option} must be at least 1, got {limit}"),
        { } n when n >= data.Count => data,
        { } n => new FirstImages(data, n),
    };

    private static string DataIdentity(string path, string? split, int count) =>
        $"{Path.GetFullPath(path)}{(split is null ? "" : $" [{split}]")} first {count}";

    private static string Describe(string path, IImageDataset data) => $"{path}, {data.Count} images";

    /// <summary>The first images of a dataset, so each split can have its own limit under one evaluator.</summary>
    private sealed class FirstImages(IImageDataset inner, int count) : IImageDataset
    {
        public string Name => $"{inner.Name} (first {count})";
        public int Count => count;
        public int Channels => inner.Channels;
        public int Height => inner.Height;
        public int Width => inner.Width;
        public IReadOnlyList<string> ClassNames => inner.ClassNames;
        public int Label(int index) => inner.Label(Check(index));
        public void Read(int index, Span<float> destination) => inner.Read(Check(index), destination);
        private int Check(int index) => (uint)index < (uint)count ? index : throw new ArgumentOutOfRangeException(nameof(index));
    }
}

/// <summary>An opened search run: what every method needs, and the Alg. 4-style outputs they share.</summary>
/// <param name="Method">The method's name: names its report directory and saved network.</param>
/// <param name="Granularity">The units searched (QSViT: block or transformer-block only).</param>
internal sealed record SearchContext(
    ParseResult Parse,
    string Method,
    LoadedModel Model,
    Sdtv2Layout Layout,
    QuantizerSpec Quantizer,
    Aq4Granularity Granularity,
    IReadOnlyList<int> Bits,
    double TolerancePoints,
    SettingEvaluator Evaluator,
    RunStore Store,
    string RunDir,
    IReadOnlyDictionary<string, IImageDataset> Splits,
    IReadOnlyDictionary<string, string> SplitDescriptions,
    int BatchSize,
    bool Json)
{
    /// <summary>The granularity of the settings searched: block for network, stage and block units.</summary>
    public SettingGranularity SettingGranularity => Granularity switch
    {
        Aq4Granularity.TransformerBlock => SettingGranularity.TransformerBlock,
        Aq4Granularity.Layer => SettingGranularity.Layer,
        _ => SettingGranularity.Block,
    };

    public string? TestSplit => Splits.ContainsKey(SearchOptions.TestSplit) ? SearchOptions.TestSplit : null;

    /// <summary>How accuracy checks are decided: sequentially under an error budget, or (null) on the whole search split.</summary>
    public SequentialOptions? Sequential { get; init; }

    /// <summary>Writes <paramref name="setting"/>'s quantized network into the run directory as <c>&lt;name&gt;.safetensors</c>.</summary>
    public string SaveModel(QuantizationSetting setting, string name)
    {
        var path = Path.Combine(RunDir, name + ".safetensors");
        QsvitCheckpoint.Save(path, Model, Evaluator.Quantize(setting));
        return path;
    }

    /// <summary>
    /// Energy estimates of fp32 and <paramref name="setting"/> from firing rates on the first <paramref name="images"/> search
    /// images, through the evaluator (cached in the run directory like every evaluation); null when <paramref name="images"/> is 0.
    /// </summary>
    public EnergyComparison? Energy(QuantizationSetting setting, int images)
    {
        var data = Splits[SearchOptions.SearchSplit];
        int n = Math.Min(images, data.Count);
        if (n <= 0) return null;
        var macs = EnergyEstimate.LayerMacs(Layout, data.Height, data.Width);
        var fp32 = QuantizationSetting.Uniform(Qsvit.Quantization.Quantizer.FullPrecision);
        return new EnergyComparison(SearchOptions.SearchSplit, n,
            EnergyEstimate.Compute(Layout, macs, LayerInputRates.FromLif(Layout, Evaluator.FiringRates(fp32, n)), fp32),
            EnergyEstimate.Compute(Layout, macs, LayerInputRates.FromLif(Layout, Evaluator.FiringRates(setting, n)), setting));
    }
}
