using System.Text.Json.Nodes;

namespace Qsvit.IO.Datasets;

/// <summary>
/// Writes an image folder's images as a model receives them (decoded, resized, center-cropped), for comparing qsvit's
/// preprocessing with another pipeline's (bench/pytorch/jpeg_fidelity.py compares with torchvision's): <c>FILE</c> holds
/// the 8-bit RGB crops, uint8 [count, 3, height, width], which the normalization (in <c>FILE.json</c>, with each image's
/// file, relative to FILE's folder, and label) maps one to one onto the float tensors the model sees. An image that cannot be read is written as
/// zeros and its error recorded, so one undecodable file does not hide the others' comparison.
/// </summary>
public static class InputDump
{
    public static void Write(IImageDataset data, string path, DatasetOptions options)
    {
        var folder = data as ImageFolderDataset ?? (data as FirstImages)?.Inner as ImageFolderDataset
            ?? throw new QsvitException($"{data.Name}: inputs are dumped for image folders only (the JPEG/PNG comparison)");
        var normalization = options.Normalization ?? Normalization.ImageNet;
        int plane = data.Height * data.Width, size = 3 * plane;
        var image = new float[size];
        var pixels = new byte[size];
        var files = new JsonArray();
        var labels = new JsonArray();
        var errors = new JsonObject();
        // Files are named relative to the dump's folder, so that the dump and the images can be copied together.
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string tmp = path + ".tmp";
        using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            for (int i = 0; i < data.Count; i++)
            {
                try
                {
                    data.Read(i, image);
                    // The crop is 8-bit before normalizing: undo the normalization and round back to the byte.
                    for (int c = 0; c < 3; c++)
                        for (int j = c * plane; j < (c + 1) * plane; j++)
                            pixels[j] = (byte)Math.Clamp(Math.Round((image[j] * (double)normalization.Std[c] + normalization.Mean[c]) * 255), 0, 255);
                }
                catch (QsvitException e)
                {
                    Array.Clear(pixels);
                    errors[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = e.Message;
                }
                stream.Write(pixels);
                files.Add(Path.GetRelativePath(directory, Path.GetFullPath(folder.Files[i])));
                labels.Add(data.Label(i));
            }
        }
        File.Move(tmp, path, overwrite: true);
        var meta = new JsonObject
        {
            ["dataset"] = data.Name,
            ["shape"] = new JsonArray(data.Count, 3, data.Height, data.Width),
            ["dtype"] = "uint8 RGB, before normalization",
            ["resize_shorter"] = options.ResizeShorter,
            ["crop"] = options.CropSize,
            ["mean"] = new JsonArray(normalization.Mean.Select(v => (JsonNode)v).ToArray()),
            ["std"] = new JsonArray(normalization.Std.Select(v => (JsonNode)v).ToArray()),
            ["classes"] = new JsonArray(data.ClassNames.Select(c => (JsonNode)c).ToArray()),
            ["files"] = files,
            ["labels"] = labels,
            ["errors"] = errors,
        };
        TextFiles.WriteAtomically(path + ".json", meta.ToJsonString(TextFiles.Json));
    }
}
