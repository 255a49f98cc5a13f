using Qsvit.IO.Datasets;
using Qsvit.Models;

namespace Qsvit.Evaluation;

/// <summary>
/// Whether a dataset fits a model before anything runs: a model fed images of a size it was not configured for, or labels
/// it cannot predict, would otherwise run to a meaningless accuracy and exit as if all were well.
/// </summary>
public static class ModelInput
{
    /// <summary>Throws a <see cref="QsvitException"/> naming both sides when <paramref name="data"/> does not fit <paramref name="config"/>.</summary>
    public static void Check(Sdtv2Config config, IImageDataset data)
    {
        if (data.Channels != config.InChannels)
            throw new QsvitException($"{data.Name} gives {data.Channels}-channel images but the model takes {config.InChannels} channels");
        if (data.Height != config.ImageHeight || data.Width != config.ImageWidth)
            throw new QsvitException($"{data.Name} gives {data.Height}x{data.Width} images but the model is configured for " +
                                     $"{config.ImageHeight}x{config.ImageWidth}. Pass --image-size {data.Height} to run it at the data's size, " +
                                     $"or (image folders) --crop {config.ImageHeight} to make the data fit the model");
        // Labels are class indices: with another number of classes they would not mean the model's classes.
        if (data.ClassNames.Count != config.NumClasses)
            throw new QsvitException($"{data.Name} has {data.ClassNames.Count} classes but the model predicts {config.NumClasses}; " +
                                     "its labels would not name the model's classes");
        for (int i = 0; i < data.Count; i++)
            if ((uint)data.Label(i) >= (uint)config.NumClasses)
                throw new QsvitException($"{data.Name}: image {i} has label {data.Label(i)}, beyond the model's {config.NumClasses} classes (0..{config.NumClasses - 1})");
    }
}
