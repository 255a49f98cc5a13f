using System.CommandLine;
using System.Globalization;
using Qsvit.Evaluation;
using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Cli.Commands;

/// <summary>
/// Options every search method shares (and <c>qsvit sensitivity</c> with them), read into a <see cref="SearchRunSpec"/>:
/// the model, the search and test splits, the quantizer, the units and widths, the run directory.
/// </summary>
/// <param name="method">Whose defaults the help shows (sensitivity has no test split, greedy/beam other widths).</param>
internal sealed class SearchOptions(bool withTest, string defaults)
{
    public readonly ModelOptions Model = new();
    public readonly DataOptions Data = new("--data", "Search split: every decision is made on it (CIFAR .bin, MNIST idx or an image folder)");
    public readonly Option<string?> TestData = new("--test-data") { Description = "Held-out split, evaluated only for the final report" };
    public readonly Option<string?> TestSplitName = new("--test-split") { Description = "File or subfolder to use when --test-data is a folder" };
    public readonly Option<int?> TestLimit = new("--test-limit") { Description = "Use only the first N images of --test-data" };
    public readonly Option<string> Quantizer = CommonOptions.Quantizer();
    public readonly CorrectOptions Correct = new(withData: false);
    public readonly Option<string[]> Bits = new("--bits")
    {
        Description = $"Bit widths to try, 32 = fp32, e.g. --bits 8 4 or 16,8,4 (default: {defaults})",
        AllowMultipleArgumentsPerToken = true,
    };
    public readonly Option<string> Granularity = new("--granularity")
    {
        Description = withTest
            ? "Units: network, stage (S1..S4), block (the paper's 11), transformer-block (each TRAN_S3/S4 block apart) or layer; qsvit takes block or transformer-block"
            : "Units: block (the paper's 11) or transformer-block (each TRAN_S3/S4 block apart)",
        DefaultValueFactory = _ => "block",
    };
    public readonly Option<double?> Tolerance = new("--tolerance", "--max-drop")
    {
        Description = withTest
            ? $"Accepted top-1 drop below fp32 on the search split, in points (default: qsvit {F(QsvitOptions.DefaultTolerancePoints)}, greedy/beam {F(Aq4Options.DefaultMaxDrop)})"
            : $"Accepted top-1 drop below fp32 on the search split, in points (default {F(QsvitOptions.DefaultTolerancePoints)})",
    };
    public readonly Option<string?> RunDir = new("--run-dir")
    {
        Description = "Resumable run directory (default: runs/<model>-<method>); methods may share one to reuse evaluations",
    };
    public readonly DeviceOptions Device = new();
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
    public readonly Option<long> CacheMb = new("--cache-mb")
    {
        Description = "Memory (MB) for prefix reuse: residual streams at unit boundaries that candidates continue from, exactly; " +
                      "beyond it they spill to the run directory (up to 4x as much), then are recomputed; 0 turns reuse off",
        DefaultValueFactory = _ => SearchRunSpec.DefaultCacheMegabytes,
    };
    public readonly Option<bool> Json = CommonOptions.Json();

    private static string F(double v) => v.ToString(CultureInfo.InvariantCulture);

    public void AddTo(Command command)
    {
        Model.AddTo(command);
        Data.AddTo(command);
        Granularity.AcceptOnlyFromAmong((withTest ? Granularities.All : SearchMethod.Qsvit.Granularities).Select(g => g.Name()).ToArray());
        var options = new List<Option> { Quantizer, Bits, Granularity, Tolerance, RunDir, CacheMb, Json };
        if (withTest) options.InsertRange(0, [TestData, TestSplitName, TestLimit, Sequential, ErrorBudget]);
        foreach (var o in options) command.Add(o);
        Correct.AddTo(command);
        Device.AddTo(command);
    }

    /// <summary>The run the options describe.</summary>
    public SearchRunSpec Spec(ParseResult r, SearchMethod method, int? calibrationImages = null) => new()
    {
        Method = method,
        Model = r.GetRequiredValue(Model.Model),
        ModelConfig = r.GetValue(Model.Config),
        Overrides = Model.Overrides(r),
        Search = new DataSpec(r.GetRequiredValue(Data.Data), r.GetValue(Data.Split), r.GetValue(Data.Limit)),
        Test = withTest && r.GetValue(TestData) is { } test ? new DataSpec(test, r.GetValue(TestSplitName), r.GetValue(TestLimit)) : null,
        ResizeShorter = r.GetValue(Data.Resize),
        CropSize = r.GetValue(Data.Crop),
        Quantizer = CommonOptions.ParseQuantizer(r.GetValue(Quantizer)!),
        Correction = Correct.Parse(r),
        CorrectionApart = Correct.ParseApart(r),
        Granularity = Granularities.Parse(r.GetValue(Granularity)),
        Bits = r.GetValue(Bits) is { Length: > 0 } given ? ParseBits(string.Join(",", given)) : null,
        TolerancePoints = r.GetValue(Tolerance),
        CalibrationImages = calibrationImages,
        RunDirectory = r.GetValue(RunDir),
        BatchSize = r.GetValue(Data.Batch),
        Device = r.GetValue(Device.Device)!,
        Compute = Device.Compute(r),
        CacheMegabytes = r.GetValue(CacheMb),
        Sequential = withTest && r.GetValue(Sequential) ? new SequentialOptions { ErrorBudget = r.GetValue(ErrorBudget) } : null,
    };

    /// <summary>Opens the run (the device and log warnings shown on stderr).</summary>
    public SearchRun Open(ParseResult r, SearchMethod method, int? calibrationImages = null)
    {
        var run = SearchRun.Open(Spec(r, method, calibrationImages));
        Console.Error.WriteLine($"device: {run.Backend.Description}, batch {run.BatchSize}");
        foreach (var warning in run.Warnings) Console.Error.WriteLine($"warning: {warning}");
        return run;
    }

    public static IReadOnlyList<int> ParseBits(string text)
    {
        var bits = new List<int>();
        foreach (var token in text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out int b) || !Qsvit.Quantization.Quantizer.IsValidBits(b))
                throw new QsvitException($"--bits: '{token}' is not a bit width; allowed {Qsvit.Quantization.Quantizer.MinBits}..{Qsvit.Quantization.Quantizer.MaxBits} or 32");
            bits.Add(b);
        }
        return SearchRun.CheckBits(bits);
    }
}
