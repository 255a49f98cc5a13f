using System.CommandLine;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Cli.Commands;

/// <summary>
/// --correct and --correct-images, beside --quantizer on every command that quantizes, read once into
/// <see cref="CorrectionOptions"/>. Commands without a search split take their calibration images from --calibration-data.
/// </summary>
/// <param name="withData">Add --calibration-data (apply, export); searches calibrate on images of their search split's data (--correct-apart).</param>
internal sealed class CorrectOptions(bool withData)
{
    public readonly Option<string> Correct = new("--correct")
    {
        Description = "Correct the quantized network with calibration images: bias (each conv's expected weight error), bn (BatchNorm " +
                      "statistics re-estimated), bias,bn, or none",
        DefaultValueFactory = _ => "none",
    };
    public readonly Option<int> Images = new("--correct-images")
    {
        Description = $"Calibration images for --correct, spread evenly over {(withData ? "--calibration-data" : "the search split")}",
        DefaultValueFactory = _ => CorrectionOptions.DefaultCalibrationImages,
    };
    public readonly Option<string?> Data = new("--calibration-data")
    {
        Description = "Images --correct calibrates on (CIFAR .bin, MNIST idx or an image folder): a training or validation split, never the test split",
    };

    public readonly Option<bool> Apart = new("--correct-apart")
    {
        Description = "Searches: hold the --correct-images calibration images apart from the search split, so that no decision is made " +
                      "on an image the corrections were fitted to (false: calibrate on images the decisions use too)",
        DefaultValueFactory = _ => true,
    };

    public void AddTo(Command command)
    {
        command.Add(Correct);
        command.Add(Images);
        if (withData) command.Add(Data);
        else command.Add(Apart);
    }

    /// <summary>Searches: whether the corrections' calibration images are held apart from the search split (--correct-apart).</summary>
    public bool ParseApart(ParseResult r)
    {
        if (withData) throw new InvalidOperationException("--correct-apart is a search option");
        if (CorrectionOptions.Parse(r.GetValue(Correct)!, r.GetValue(Images)).IsNone && r.GetResult(Apart) is { Implicit: false })
            throw new QsvitException("--correct-apart needs --correct bias, bn or bias,bn");
        return r.GetValue(Apart);
    }

    /// <summary>The corrections asked for; options that only make sense with a correction are refused without one.</summary>
    public CorrectionOptions Parse(ParseResult r)
    {
        var options = CorrectionOptions.Parse(r.GetValue(Correct)!, r.GetValue(Images));
        if (options.IsNone && (r.GetResult(Images) is { Implicit: false } || (withData && r.GetValue(Data) is not null)))
            throw new QsvitException($"--correct-images{(withData ? " and --calibration-data" : "")} need --correct bias, bn or bias,bn");
        if (withData && !options.IsNone && r.GetValue(Data) is null)
            throw new QsvitException($"--correct {options} needs --calibration-data: the images to calibrate on (not the test split)");
        return options;
    }

    /// <summary>The calibration images of --calibration-data for <paramref name="model"/> (null without corrections).</summary>
    public CalibrationImages? Calibration(ParseResult r, LoadedModel model, CorrectionOptions options, ComputeOptions compute)
    {
        if (options.IsNone) return null;
        var data = DatasetLoader.Open(r.GetValue(Data)!, new DatasetOptions { Normalization = model.Normalization, Channels = model.Config.InChannels });
        ModelInput.Check(model.Config, data);
        return CalibrationImages.Spread(data, options.CalibrationImages, parallel: compute.Parallel);
    }

    /// <summary>
    /// <paramref name="quantized"/> corrected on the calibration images (itself without corrections), computed on
    /// <paramref name="backend"/> (null: a CPU backend of its own).
    /// </summary>
    public static QuantizedModel Apply(LoadedModel model, QuantizedModel quantized, CorrectionOptions options, CalibrationImages? images,
        Backends.IBackend? backend)
    {
        if (options.IsNone || images is null) return quantized;
        Console.Error.WriteLine($"correcting the quantized network ({options}) on {images.Count} calibration images…");
        using var fp32 = model.CreateModel(backend: backend);
        using var corrector = new QuantizationCorrector(fp32, images, options);
        return corrector.Correct(quantized);
    }
}
