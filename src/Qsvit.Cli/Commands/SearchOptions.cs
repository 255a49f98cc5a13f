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
    public readonly Option<string> Bits = new("--bits") { Description = "Bit widths to try, 32 = fp32", DefaultValueFactory = _ => "32,16,12,8,4" };
    public readonly Option<string> Granularity = new("--granularity")
    {
        Description = "Units: block (the paper's 11) or transformer-block (each TRAN_S3/S4 block apart)",
        DefaultValueFactory = _ => "block",
    };
    public readonly Option<double> Tolerance = new("--tolerance")
    {
        Description = "Accepted accuracy drop below fp32 on the search split, in points",
        DefaultValueFactory = _ => QsvitOptions.DefaultTolerancePoints,
    };
    public readonly Option<string?> RunDir = new("--run-dir") { Description = "Resumable run directory (default: runs/<model>-<method>)" };
    public readonly Option<int?> Threads = new("--threads") { Description = "Worker threads (default: all cores)" };
    public readonly Option<bool> Json = new("--json") { Description = "Print the result as JSON on stdout" };

    public void AddTo(Command command)
    {
        Model.AddTo(command);
        Data.AddTo(command);
        Granularity.AcceptOnlyFromAmong("block", "transformer-block");
        var options = new List<Option> { Quantizer, Bits, Granularity, Tolerance, RunDir, Threads, Json };
        if (withTest) options.InsertRange(0, [TestData, TestSplitName, TestLimit]);
        foreach (var o in options) command.Add(o);
    }

    /// <summary>Loads the model and data and opens (or resumes) the run directory <c>runs/&lt;model&gt;-&lt;run&gt;</c> by default.</summary>
    public SearchContext Open(ParseResult r, string run)
    {
        Cli.ApplyThreads(r.GetValue(Threads));
        var spec = QuantizerSpec.Parse(r.GetValue(Quantizer)!);
        var granularity = r.GetValue(Granularity) == "transformer-block" ? SettingGranularity.TransformerBlock : SettingGranularity.Block;
        var bits = ParseBits(r.GetValue(Bits)!);
        double tolerance = r.GetValue(Tolerance);
        var loaded = Model.Load(r);

        var search = Limit(Data.Open(r, loaded), r.GetValue(Data.Limit), "--limit");
        var splits = new Dictionary<string, IImageDataset> { [SearchSplit] = search };
        var descriptions = new Dictionary<string, string> { [SearchSplit] = Describe(r.GetValue(Data.Data)!, search) };
        string testIdentity = "none";
        if (withTest && r.GetValue(TestData) is { } testPath)
        {
            var test = Limit(DatasetLoader.Open(testPath, DatasetOptions(r, loaded), r.GetValue(TestSplitName)), r.GetValue(TestLimit), "--test-limit");
            splits[TestSplit] = test;
            descriptions[TestSplit] = Describe(testPath, test);
            testIdentity = DataIdentity(testPath, r.GetValue(TestSplitName), test.Count);
        }

        string checkpoint = r.GetRequiredValue(Model.Model);
        string modelName = Path.GetFileNameWithoutExtension(checkpoint);
        string runDir = r.GetValue(RunDir) ?? Path.Combine("runs", $"{modelName}-{run}");
        var identity = new Dictionary<string, string>
        {
            ["model"] = Path.GetFullPath(checkpoint),
            ["model_bytes"] = new FileInfo(checkpoint).Length.ToString(CultureInfo.InvariantCulture),
            ["config"] = loaded.Config.ToString(),
            ["normalization"] = loaded.Normalization is { } n ? $"mean {string.Join(",", n.Mean)} std {string.Join(",", n.Std)}" : "dataset default",
            ["preprocess"] = $"resize {r.GetValue(Data.Resize)} crop {r.GetValue(Data.Crop)}",
            ["quantizer"] = spec.ToString(),
            [SearchSplit] = DataIdentity(r.GetValue(Data.Data)!, r.GetValue(Data.Split), search.Count),
            [TestSplit] = testIdentity,
            ["bits"] = string.Join(",", bits),
            ["granularity"] = r.GetValue(Granularity)!,
        };
        var store = RunStore.Open(runDir, identity);
        var evaluator = new SettingEvaluator(loaded, spec, splits, new EvalOptions { BatchSize = r.GetValue(Data.Batch) }, store);
        return new SearchContext(r, loaded, new Sdtv2Layout(loaded.Config), spec, granularity, bits, tolerance, evaluator, store,
            runDir, splits, descriptions, r.GetValue(Data.Batch), r.GetValue(Json));
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
internal sealed record SearchContext(
    ParseResult Parse,
    LoadedModel Model,
    Sdtv2Layout Layout,
    QuantizerSpec Quantizer,
    SettingGranularity Granularity,
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
    public string? TestSplit => Splits.ContainsKey(SearchOptions.TestSplit) ? SearchOptions.TestSplit : null;

    /// <summary>Writes <paramref name="setting"/>'s quantized network into the run directory as <c>&lt;name&gt;.safetensors</c>.</summary>
    public string SaveModel(QuantizationSetting setting, string name)
    {
        var path = Path.Combine(RunDir, name + ".safetensors");
        QsvitCheckpoint.Save(path, Model, Evaluator.Quantize(setting));
        return path;
    }

    /// <summary>
    /// Energy estimates of fp32 and <paramref name="setting"/> from firing rates on the first <paramref name="images"/> search
    /// images (two short evaluations, not cached); null when <paramref name="images"/> is 0.
    /// </summary>
    public EnergyComparison? Energy(QuantizationSetting setting, int images)
    {
        var data = Splits[SearchOptions.SearchSplit];
        int n = Math.Min(images, data.Count);
        if (n <= 0) return null;
        var options = new EvalOptions { BatchSize = BatchSize, Limit = n };
        var fp32 = Evaluation.Evaluator.Run(Model.CreateModel(), data, options);
        var quantized = Evaluation.Evaluator.Run(new Sdtv2Model(Model.Config, Evaluator.Quantize(setting).StateDict), data, options);
        var macs = EnergyEstimate.LayerMacs(Layout, data.Height, data.Width);
        var fp32Setting = QuantizationSetting.Uniform(Qsvit.Quantization.Quantizer.FullPrecision);
        return new EnergyComparison(SearchOptions.SearchSplit, n,
            EnergyEstimate.Compute(Layout, macs, LayerInputRates.FromLif(Layout, fp32.FiringRates), fp32Setting),
            EnergyEstimate.Compute(Layout, macs, LayerInputRates.FromLif(Layout, quantized.FiringRates), setting));
    }
}
