using System.Text.Json;

namespace Qsvit.Evaluation;

/// <summary>Called once per evaluated image, in dataset order: its 0-based dataset index, label, argmax and logits.</summary>
public delegate void PredictionCallback(int index, int label, int predicted, ReadOnlySpan<float> logits);

/// <summary>
/// Writes one JSON object per image and line (JSON Lines): <c>{"index":0,"label":3,"predicted":3,"logits":[…]}</c>, with
/// <c>index</c> the 0-based position in the dataset, <c>label</c> the dataset's class (-1 when unlabeled) and
/// <c>logits</c> the model's outputs as float32 values written in shortest round-trip form (parsing them back gives the
/// same float32 bits). Written as the evaluation goes; the file is complete when the writer is disposed.
/// </summary>
public sealed class PredictionWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly Utf8JsonWriter _json;
    private static readonly byte[] NewLine = "\n"u8.ToArray();

    public PredictionWriter(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir)) throw new QsvitException($"predictions folder '{dir}' does not exist");
        _stream = new BufferedStream(File.Create(path), 1 << 16);
        _json = new Utf8JsonWriter(_stream, new JsonWriterOptions { SkipValidation = true });
    }

    public int Count { get; private set; }

    /// <summary>Appends one image's record; matches <see cref="PredictionCallback"/>.</summary>
    public void Write(int index, int label, int predicted, ReadOnlySpan<float> logits)
    {
        _json.WriteStartObject();
        _json.WriteNumber("index", index);
        _json.WriteNumber("label", label);
        _json.WriteNumber("predicted", predicted);
        _json.WriteStartArray("logits");
        foreach (float v in logits) _json.WriteNumberValue(v);
        _json.WriteEndArray();
        _json.WriteEndObject();
        _json.Flush();
        _json.Reset();
        _stream.Write(NewLine);
        Count++;
    }

    public void Dispose()
    {
        _json.Dispose();
        _stream.Dispose();
    }
}
