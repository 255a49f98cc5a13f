namespace Qsvit.IO.Datasets;

/// <summary>
/// A labelled image dataset with a fixed image shape. Open one with <see cref="DatasetLoader.Open"/>;
/// stream it in batches with <see cref="BatchReader"/>.
/// </summary>
public interface IImageDataset
{
    /// <summary>A short description: the format and the file or folder it reads.</summary>
    string Name { get; }

    int Count { get; }

    /// <summary>Channels of every image <see cref="Read"/> writes (1 or 3).</summary>
    int Channels { get; }

    int Height { get; }
    int Width { get; }

    /// <summary>Class names, indexed by label.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>The label of image <paramref name="index"/>, in [0, ClassNames.Count).</summary>
    int Label(int index);

    /// <summary>
    /// Writes image <paramref name="index"/> as normalized float32 CHW (Channels × Height × Width) into the first
    /// Channels·Height·Width elements of <paramref name="destination"/>. Thread-safe: may be called in parallel.
    /// Throws <see cref="QsvitException"/> naming the file when the image cannot be read or decoded.
    /// </summary>
    void Read(int index, Span<float> destination);
}
