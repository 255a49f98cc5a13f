using Qsvit.IO;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Search;

/// <summary>Search runs as a user makes them: the tiny model and its CIFAR splits on disk, described by a <see cref="SearchRunSpec"/>.</summary>
internal static class RunFixtures
{
    /// <summary>Saves <paramref name="model"/> as safetensors that load back to it (architecture and normalization in its metadata).</summary>
    public static void WriteModel(string path, LoadedModel model) =>
        SafeTensors.Write(path, model.State,
            new Dictionary<string, string> { [ModelLoader.ConfigMetadataKey] = ModelFile.Write(model.Config, model.Normalization, model.ClassNames) });

    /// <summary>
    /// A spec over <c>tiny.safetensors</c>, <c>val.bin</c> and <c>test.bin</c> in <paramref name="directory"/> (written on first
    /// use; labels are the fp32 model's predictions), run directory <c>&lt;directory&gt;/&lt;run&gt;</c>.
    /// </summary>
    public static SearchRunSpec Spec(string directory, SearchMethod method, string run = "run", int images = 8, bool test = true,
        int? calibration = 4, string quantizer = "symmetric")
    {
        string model = Path.Combine(directory, "tiny.safetensors");
        if (!File.Exists(model)) WriteModel(model, Aq4Fixtures.TinyModel());
        string Data(string name, int seed) => File.Exists(Path.Combine(directory, name)) ? Path.Combine(directory, name)
            : Aq4Fixtures.WriteCifar(directory, name, images, seed);
        return new SearchRunSpec
        {
            Method = method,
            Model = model,
            Search = new DataSpec(Data("val.bin", 11)),
            Test = test ? new DataSpec(Data("test.bin", 12)) : null,
            Quantizer = QuantizerSpec.Parse(quantizer),
            CalibrationImages = calibration,
            RunDirectory = Path.Combine(directory, run),
            BatchSize = 4,
        };
    }
}
