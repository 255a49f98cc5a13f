using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using Qsvit.Tensors;

namespace Qsvit.IO;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each tensor
/// name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the byte buffer after the header),
/// an optional "__metadata__" string→string map, then the raw little-endian tensor bytes.
/// </summary>
/// <summary>One tensor as stored: F32 data in <see cref="Floats"/>, any other dtype as raw little-endian <see cref="Bytes"/>.</summary>
public sealed record RawTensor(string Name, DType DType, int[] Shape, float[]? Floats, byte[]? Bytes);

public static class SafeTensors
{
    /// <summary>
    /// Largest header accepted. The reference implementation allows 100 MB; 16 MiB holds over 100,000 tensor entries,
    /// far more than any vision model, and keeps parsing a hostile header to well under a second and ~100 MB.
    /// </summary>
    public const long MaxHeaderBytes = 16 << 20;

    /// <summary>Most tensors a header may list.</summary>
    public const int MaxTensors = 100_000;

    /// <summary>Most dimensions a tensor may have.</summary>
    private const int MaxRank = 64;

    private const string MetadataKey = "__metadata__";
    private const int ChunkElements = 1 << 16;
    private const int F32Slice = 1 << 28;

    /// <summary>Reads every tensor (converted to float32, stored dtype remembered) in header order, and the metadata.</summary>
    /// <exception cref="QsvitException">The file is missing, unreadable or not a valid safetensors file.</exception>
    public static (StateDict State, IReadOnlyDictionary<string, string> Metadata) Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = CheckpointReader.FullPath(path, "safetensors");
        using var stream = CheckpointReader.OpenRead(path, full, "safetensors");
        return ReadCore(stream, $"safetensors '{path}'");
    }

    private sealed record Entry(int Index, string Name, DType DType, int[] Shape, long Numel, long Begin, long End);

    /// <summary>Parses and checks the header: entries in header order, the metadata, and where the data buffer starts.</summary>
    private static (List<Entry> Entries, Dictionary<string, string> Metadata, long DataStart) ReadHeader(Stream stream, string ctx)
    {
        DTypes.EnsureLittleEndianHost();
        long fileLength = stream.Length;
        if (fileLength < 8)
            throw new QsvitException($"{ctx} is only {fileLength} bytes; a safetensors file starts with an 8-byte header length");
        Span<byte> len8 = stackalloc byte[8];
        ReadExactly(stream, len8, ctx, "header length");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(len8);
        if (n > MaxHeaderBytes)
            throw new QsvitException($"{ctx}: header length is {n} bytes, more than the {MaxHeaderBytes}-byte limit (corrupt or not a safetensors file)");
        if ((long)n > fileLength - 8)
            throw new QsvitException($"{ctx}: header length is {n} bytes but the file has only {fileLength - 8} bytes after the length field (truncated?)");
        if (n < 2)
            throw new QsvitException($"{ctx}: header length is {n} bytes, too short for a JSON object");
        var header = new byte[n];
        ReadExactly(stream, header, ctx, "header");
        // As the reference implementation: the JSON object starts the header (only trailing padding is allowed).
        if (header[0] != (byte)'{')
            throw new QsvitException($"{ctx}: header does not start with '{{' (its first byte is 0x{header[0]:x2}): expected an object as its first byte (corrupt or not a safetensors file)");
        if (System.Text.Unicode.Utf8.IsValid(header) is false)
            throw new QsvitException($"{ctx}: header is not valid UTF-8 (first bad byte at header offset {FirstInvalidUtf8(header)})");
        long dataStart = 8 + (long)n;
        long bufferLength = fileLength - dataStart;

        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new QsvitException($"{ctx}: header is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new QsvitException($"{ctx}: header is a JSON {doc.RootElement.ValueKind}, expected an object");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            try
            {
                foreach (var prop in doc.RootElement.EnumerateObject())
                {
                    if (!seen.Add(prop.Name)) throw new QsvitException($"{ctx}: header names '{Clip(prop.Name)}' twice");
                    if (prop.Name == MetadataKey) ParseMetadata(prop.Value, metadata, ctx);
                    else if (entries.Count == MaxTensors)
                        throw new QsvitException($"{ctx}: header lists more than {MaxTensors:N0} tensors (corrupt or hostile file)");
                    else entries.Add(ParseEntry(entries.Count, prop, bufferLength, ctx));
                }
            }
            catch (InvalidOperationException e)
            {
                // A string that cannot become UTF-16 text, e.g. an escaped lone surrogate "\udc00".
                throw new QsvitException($"{ctx}: header holds a string that is not valid text: {e.Message}", e);
            }
        }

        // The tensors must tile the data buffer exactly: no overlap, no gap, nothing left over.
        var byOffset = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ThenBy(e => e.Index).ToList();
        long expected = 0;
        Entry? previous = null;
        foreach (var e in byOffset)
        {
            if (e.Begin < expected)
                throw new QsvitException($"{ctx}: tensor '{e.Name}' data_offsets [{e.Begin}, {e.End}] overlap tensor '{previous!.Name}' [{previous.Begin}, {previous.End}]");
            if (e.Begin > expected)
                throw new QsvitException($"{ctx}: data bytes [{expected}, {e.Begin}) before tensor '{e.Name}' belong to no tensor (offsets must be contiguous)");
            expected = e.End;
            previous = e;
        }
        if (expected != bufferLength)
            throw new QsvitException($"{ctx}: the tensors cover {expected} data bytes but the file holds {bufferLength} after the header (offsets must cover the whole buffer)");
        return (entries, metadata, dataStart);
    }

    internal static (StateDict State, IReadOnlyDictionary<string, string> Metadata) ReadCore(Stream stream, string ctx)
    {
        var (entries, metadata, dataStart) = ReadHeader(stream, ctx);
        var byOffset = entries.OrderBy(e => e.Begin).ToList();
        var tensors = new Tensor[entries.Count];
        byte[]? buffer = null;
        foreach (var e in byOffset)
        {
            var data = new float[e.Numel];
            stream.Position = dataStart + e.Begin;
            if (e.DType == DType.F32)
            {
                // Straight into the float array (in slices, so the byte view never exceeds int.MaxValue).
                for (int start = 0; start < data.Length; start += F32Slice)
                {
                    var slice = data.AsSpan(start, Math.Min(F32Slice, data.Length - start));
                    ReadExactly(stream, MemoryMarshal.AsBytes(slice), ctx, $"tensor '{e.Name}'");
                }
            }
            else
            {
                int es = DTypes.Size(e.DType);
                buffer ??= new byte[ChunkElements * 8];
                for (int start = 0; start < data.Length; start += ChunkElements)
                {
                    int count = Math.Min(ChunkElements, data.Length - start);
                    var span = buffer.AsSpan(0, count * es);
                    ReadExactly(stream, span, ctx, $"tensor '{e.Name}'");
                    DTypes.ToFloat(span, e.DType, data.AsSpan(start, count));
                }
            }
            tensors[e.Index] = new Tensor(data, e.Shape);
        }

        var state = new StateDict();
        foreach (var e in entries) state.Set(e.Name, tensors[e.Index], e.DType);
        return (state, metadata);
    }

    /// <summary>The metadata alone (reads and checks the header only).</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = CheckpointReader.FullPath(path, "safetensors");
        using var stream = CheckpointReader.OpenRead(path, full, "safetensors");
        return ReadHeader(stream, $"safetensors '{path}'").Metadata;
    }

    /// <summary>
    /// Reads every tensor without converting it: F32 tensors into float arrays, every other dtype as its raw little-endian
    /// bytes. Header order; the same checks as <see cref="Read"/>.
    /// </summary>
    public static (IReadOnlyList<RawTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) ReadRaw(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        DTypes.EnsureLittleEndianHost();
        string full = CheckpointReader.FullPath(path, "safetensors");
        using var stream = CheckpointReader.OpenRead(path, full, "safetensors");
        string ctx = $"safetensors '{path}'";
        var (entries, metadata, dataStart) = ReadHeader(stream, ctx);
        var tensors = new RawTensor[entries.Count];
        foreach (var e in entries.OrderBy(e => e.Begin))
        {
            stream.Position = dataStart + e.Begin;
            if (e.DType == DType.F32)
            {
                var data = new float[e.Numel];
                for (int start = 0; start < data.Length; start += F32Slice)
                    ReadExactly(stream, MemoryMarshal.AsBytes(data.AsSpan(start, Math.Min(F32Slice, data.Length - start))), ctx, $"tensor '{e.Name}'");
                tensors[e.Index] = new RawTensor(e.Name, e.DType, e.Shape, data, null);
            }
            else
            {
                long bytes = e.End - e.Begin;
                if (bytes > Array.MaxLength) throw new QsvitException($"{ctx}: tensor '{e.Name}' has {bytes} bytes, more than one array can hold");
                var data = new byte[bytes];
                ReadExactly(stream, data, ctx, $"tensor '{e.Name}'");
                tensors[e.Index] = new RawTensor(e.Name, e.DType, e.Shape, null, data);
            }
        }
        return (tensors, metadata);
    }

    /// <summary>Writes tensors as given (F32 from <see cref="RawTensor.Floats"/>, other dtypes from their raw bytes), atomically as <see cref="Write"/>.</summary>
    public static void WriteRaw(string path, IReadOnlyList<RawTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        string ctx = $"safetensors '{path}'";
        foreach (var t in tensors)
        {
            long need = Tensor.Count(t.Shape) * DTypes.Size(t.DType);
            long have = t.DType == DType.F32 ? (t.Floats?.LongLength ?? -1) * 4 : t.Bytes?.LongLength ?? -1;
            if (have != need) throw new QsvitException($"{ctx}: tensor '{t.Name}' of shape {Tensor.Format(t.Shape)} {DTypes.SafeTensorsName(t.DType)} needs {need} bytes, has {have}");
        }
        var items = tensors.Select(t => new HeaderItem(t.Name, t.DType, t.Shape, Tensor.Count(t.Shape) * DTypes.Size(t.DType)));
        WriteFile(path, items, metadata, fs =>
        {
            foreach (var t in tensors)
            {
                if (t.DType != DType.F32) { fs.Write(t.Bytes); continue; }
                for (int start = 0; start < t.Floats!.Length; start += F32Slice)
                    fs.Write(MemoryMarshal.AsBytes(t.Floats.AsSpan(start, Math.Min(F32Slice, t.Floats.Length - start))));
            }
        });
    }

    private static void ParseMetadata(JsonElement value, Dictionary<string, string> metadata, string ctx)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new QsvitException($"{ctx}: '{MetadataKey}' is a JSON {value.ValueKind}, expected an object of strings");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw new QsvitException($"{ctx}: '{MetadataKey}' entry '{Clip(m.Name)}' is a JSON {m.Value.ValueKind}, expected a string");
            metadata[m.Name] = m.Value.GetString()!;
        }
    }

    private static Entry ParseEntry(int index, JsonProperty prop, long bufferLength, string ctx)
    {
        string name = prop.Name;
        var v = prop.Value;
        string where = $"{ctx}: tensor '{Clip(name)}'";
        if (v.ValueKind != JsonValueKind.Object)
            throw new QsvitException($"{where} is a JSON {v.ValueKind}, expected an object with dtype, shape and data_offsets");

        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new QsvitException($"{where} has no string 'dtype'");
        string dtName = dt.GetString()!;
        if (!DTypes.TryParseSafeTensorsName(dtName, out var dtype))
            throw new QsvitException($"{where} has dtype '{Clip(dtName)}', which qsvit does not read (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");

        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new QsvitException($"{where} has no 'shape' array");
        if (sh.GetArrayLength() > MaxRank)
            throw new QsvitException($"{where} has {sh.GetArrayLength()} dimensions (at most {MaxRank})");
        var shape = new int[sh.GetArrayLength()];
        int k = 0;
        long numel = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0 || dim > int.MaxValue)
                throw new QsvitException($"{where} has shape {Clip(sh.GetRawText())}, expected non-negative integer dimensions");
            shape[k++] = (int)dim;
            numel = numel > 0 && dim > long.MaxValue / 8 / numel ? long.MaxValue : numel * dim;
        }
        if (numel > Array.MaxLength)
            throw new QsvitException($"{where} has shape {Clip(sh.GetRawText())} with more elements than a float array can hold");

        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new QsvitException($"{where} has no 'data_offsets' [begin, end] pair");
        long begin = Offset(off[0]), end = Offset(off[1]);
        if (begin < 0 || end < 0)
            throw new QsvitException($"{where} has data_offsets {Clip(off.GetRawText())}, expected two non-negative integers");
        if (end < begin)
            throw new QsvitException($"{where} has data_offsets [{begin}, {end}] that end before they begin");
        if (end > bufferLength)
            throw new QsvitException($"{where} has data_offsets [{begin}, {end}] beyond the {bufferLength}-byte data buffer (truncated file?)");
        long need = numel * DTypes.Size(dtype);
        if (end - begin != need)
            throw new QsvitException($"{where} has data_offsets [{begin}, {end}] ({end - begin} bytes) but shape {Tensor.Format(shape)} of {dtName} needs {need} bytes");
        return new Entry(index, name, dtype, shape, numel, begin, end);
    }

    private static string Clip(string s) => s.Length > 80 ? s[..80] + "…" : s;

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int offset = 0;
        while (offset < bytes.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(bytes[offset..], out _, out int used) != OperationStatus.Done) return offset;
            offset += used;
        }
        return -1;
    }

    private static long Offset(JsonElement e) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) && v >= 0 ? v : -1;

    private static void ReadExactly(Stream s, Span<byte> buffer, string ctx, string what)
    {
        try
        {
            s.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new QsvitException($"{ctx}: the file ends early while reading the {what} (truncated?)", e);
        }
        catch (IOException e)
        {
            throw new QsvitException($"{ctx}: reading the {what} failed: {e.Message}", e);
        }
    }

    /// <summary>
    /// Writes <paramref name="state"/> in its key order, each tensor in its <see cref="StateDict.StoredType"/>
    /// (floating types round to nearest even; integer and bool types require exact values in range).
    /// The header is padded with spaces to a multiple of 8 bytes. The file is written to a temporary name in the
    /// same directory and moved into place, so a failure never leaves a partial file at <paramref name="path"/>.
    /// </summary>
    /// <exception cref="QsvitException">A value does not fit its stored type, or the file cannot be written.</exception>
    public static void Write(string path, StateDict state, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        var items = state.Select(kv => new HeaderItem(kv.Key, state.StoredType(kv.Key), kv.Value.Shape, (long)kv.Value.Length * DTypes.Size(state.StoredType(kv.Key))));
        WriteFile(path, items, metadata, fs => WriteData(fs, state, $"safetensors '{path}'"));
    }

    private sealed record HeaderItem(string Name, DType DType, int[] Shape, long Bytes);

    private static void WriteFile(string path, IEnumerable<HeaderItem> items, IReadOnlyDictionary<string, string>? metadata, Action<Stream> writeData)
    {
        ArgumentNullException.ThrowIfNull(path);
        DTypes.EnsureLittleEndianHost();
        string ctx = $"safetensors '{path}'";
        string full = CheckpointReader.FullPath(path, "safetensors");
        string dir = Path.GetDirectoryName(full) ?? ".";
        if (!Directory.Exists(dir)) throw new QsvitException($"{ctx} cannot be written: directory '{dir}' does not exist");
        if (Directory.Exists(full)) throw new QsvitException($"{ctx} cannot be written: it is a directory");

        byte[] header = BuildHeader(items, metadata, ctx);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        bool moved = false;
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Span<byte> len8 = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len8, (ulong)header.Length);
                fs.Write(len8);
                fs.Write(header);
                writeData(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
            moved = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{ctx} cannot be written: {e.Message}", e);
        }
        finally
        {
            if (!moved) TryDelete(tmp);
        }
    }

    private static byte[] BuildHeader(IEnumerable<HeaderItem> items, IReadOnlyDictionary<string, string>? metadata, string ctx)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata)
                {
                    if (v is null) throw new QsvitException($"{ctx}: metadata value for '{k}' is null");
                    w.WriteString(k, v);
                }
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (key, dtype, shape, bytes) in items)
            {
                if (key == MetadataKey) throw new QsvitException($"{ctx}: a tensor cannot be named '{MetadataKey}'");
                w.WriteStartObject(key);
                w.WriteString("dtype", DTypes.SafeTensorsName(dtype));
                w.WriteStartArray("shape");
                foreach (int d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        int length = buffer.WrittenCount;
        int padded = (length + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(length).Fill((byte)' ');
        return header;
    }

    private static void WriteData(Stream fs, StateDict state, string ctx)
    {
        byte[]? chunk = null;
        foreach (var (key, tensor) in state)
        {
            var dtype = state.StoredType(key);
            ReadOnlySpan<float> src = tensor.Data;
            if (dtype == DType.F32)
            {
                for (int start = 0; start < src.Length; start += F32Slice)
                    fs.Write(MemoryMarshal.AsBytes(src.Slice(start, Math.Min(F32Slice, src.Length - start))));
                continue;
            }
            int es = DTypes.Size(dtype);
            chunk ??= new byte[ChunkElements * 8];
            for (int start = 0; start < src.Length; start += ChunkElements)
            {
                int count = Math.Min(ChunkElements, src.Length - start);
                var dst = chunk.AsSpan(0, count * es);
                int bad = DTypes.FromFloat(src.Slice(start, count), dtype, dst);
                if (bad >= 0)
                {
                    float value = src[start + bad];
                    throw new QsvitException($"{ctx}: tensor '{key}' cannot be stored as {DTypes.SafeTensorsName(dtype)}: element {start + bad} is " +
                                             $"{value.ToString("R", CultureInfo.InvariantCulture)}, expected {DTypes.Range(dtype)}");
                }
                fs.Write(dst);
            }
        }
    }

    private static void TryDelete(string file)
    {
        try { File.Delete(file); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort */ }
    }
}
