using System.CommandLine;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;

namespace Qsvit.Cli.Commands;

/// <summary>Options that pick a model and override what its checkpoint and model.json say.</summary>
internal sealed class ModelOptions
{
    public readonly Option<string> Model = new("--model", "-m") { Description = "Checkpoint: official .pth/.pt or .safetensors", Required = true };
    public readonly Option<string?> Config = new("--config") { Description = "model.json sidecar (default: <checkpoint>.json or model.json beside it)" };
    public readonly Option<int?> Timesteps = new("--timesteps", "-T") { Description = "Timesteps T" };
    public readonly Option<string?> Preset = new("--preset") { Description = $"Start from an official size: {string.Join(", ", Presets.Names)}" };
    public readonly Option<int[]?> EmbedDim = new("--embed-dim") { Description = "Stage widths, e.g. --embed-dim 32 64 128 192", AllowMultipleArgumentsPerToken = true };
    public readonly Option<int?> StemStride = new("--stem-stride") { Description = "Stride of the 7x7 stem conv (2 official, 1 for 32x32 inputs)" };
    public readonly Option<int?> Classes = new("--classes") { Description = "Number of classes" };
    public readonly Option<bool?> Kd = new("--kd") { Description = "The checkpoint has a distillation head (head_kd)" };
    public readonly Option<int?> Heads = new("--heads") { Description = "Attention heads" };
    public readonly Option<int?> ImageSize = new("--image-size") { Description = "Input height and width the model runs at (default: from model.json or the checkpoint)" };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Model, Config, Timesteps, Preset, EmbedDim, StemStride, Classes, Kd, Heads, ImageSize }) command.Add(o);
    }

    public LoadedModel Load(ParseResult r) => ModelLoader.Load(r.GetRequiredValue(Model), r.GetValue(Config), Overrides(r));

    public ConfigOverrides Overrides(ParseResult r) => new()
    {
        Preset = r.GetValue(Preset),
        Architecture = new PartialConfig
        {
            EmbedDim = r.GetValue(EmbedDim) is { Length: > 0 } dims ? dims : null,
            Timesteps = r.GetValue(Timesteps),
            StemStride = r.GetValue(StemStride),
            NumClasses = r.GetValue(Classes),
            Kd = r.GetValue(Kd),
            NumHeads = r.GetValue(Heads),
            ImageHeight = r.GetValue(ImageSize),
            ImageWidth = r.GetValue(ImageSize),
        },
    };
}

/// <summary>Options that pick a dataset.</summary>
internal sealed class DataOptions(string name = "--data", string description = "Dataset: CIFAR .bin, MNIST idx, or an ImageNet-style folder")
{
    public readonly Option<string> Data = new(name) { Description = description, Required = true };
    public readonly Option<string?> Split = new("--split") { Description = "File or subfolder to use when --data is a folder (test, val, train…)" };
    public readonly Option<int?> Limit = new("--limit") { Description = "Use only the first N images" };
    public readonly Option<int?> Batch = new("--batch") { Description = "Images per forward pass (default: what fills the device: 32 on the CPU)" };
    public readonly Option<int> Resize = new("--resize") { Description = "Image folders: shorter side after bicubic resize", DefaultValueFactory = _ => 256 };
    public readonly Option<int> Crop = new("--crop") { Description = "Image folders: center crop size", DefaultValueFactory = _ => 224 };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Data, Split, Limit, Batch, Resize, Crop }) command.Add(o);
    }

    /// <summary>--batch, or what fills the device for <paramref name="model"/>'s architecture at this dataset's image size.</summary>
    public int BatchSize(ParseResult r, Backends.IBackend backend, Sdtv2Model model, IImageDataset data) =>
        r.GetValue(Batch) ?? backend.DefaultBatchSize(data.Height, data.Width, model.ActivationBytesPerImage(data.Height, data.Width));

    /// <summary>The dataset as --limit cuts it, checked against the model (size, classes, labels).</summary>
    public IImageDataset Open(ParseResult r, LoadedModel model) => Open(r, model.Config, model.Normalization);

    public IImageDataset Open(ParseResult r, Sdtv2Config config, Normalization? normalization)
    {
        if (r.GetValue(Batch) < 1) throw new QsvitException($"--batch must be at least 1, got {r.GetValue(Batch)}");
        var data = FirstImages.Of(DatasetLoader.Open(r.GetRequiredValue(Data), new DatasetOptions
        {
            Normalization = normalization,
            ResizeShorter = r.GetValue(Resize),
            CropSize = r.GetValue(Crop),
            Channels = config.InChannels,
        }, r.GetValue(Split)), r.GetValue(Limit), "--limit");
        ModelInput.Check(config, data);
        return data;
    }
}
