using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using Qsvit.IO.Pickle;
using Qsvit.Tensors;

namespace Qsvit.IO;

/// <summary>
/// Reads the zip-based torch.save format: &lt;archive&gt;/data.pkl (the object graph), &lt;archive&gt;/data/&lt;key&gt;
/// (raw little-endian storages), &lt;archive&gt;/byteorder and &lt;archive&gt;/version.
/// </summary>
internal static class TorchZipReader
{
    private static readonly string[] StateDictKeys = ["model", "state_dict", "model_state", "module"];

    /// <summary>Largest data.pkl read: a state_dict's pickle is kilobytes (a few dozen bytes per tensor).</summary>
    internal const long MaxPickleBytes = 256L << 20;

    /// <summary>Deflate cannot compress better than 1032:1, so a larger declared size is a lie (plus slack for tiny entries).</summary>
    private const long DeflateMaxRatio = 1032;

    /// <summary>
    /// torch.save stores entries uncompressed and float weights barely compress; an entry over
    /// <see cref="RatioCheckBytes"/> that inflates more than this is a zip bomb, refused before it is inflated.
    /// </summary>
    internal const long MaxPlausibleRatio = 100;

    private const long RatioCheckBytes = 1L << 20;

    public static Checkpoint Load(string path, string fullPath, Stream stream, bool strict)
    {
        DTypes.EnsureLittleEndianHost();
        string ctx = $"checkpoint '{path}'";
        long archive = stream.Length;
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new QsvitException($"{ctx} is not a readable zip archive (truncated or corrupt download?): {e.Message}", e);
        }

        using (zip)
        {
            var pkl = FindDataPkl(zip, ctx);
            string prefix = pkl.FullName[..^"data.pkl".Length];
            CheckByteOrder(zip, prefix, archive, ctx);
            CheckVersion(zip, prefix, archive, ctx);

            var host = new TorchPickleHost();
            object? root = Unpickler.Load(ReadEntry(pkl, archive, ctx, MaxPickleBytes), $"{ctx} ({pkl.FullName})", host);

            if (root is not PyDict top)
                throw new QsvitException($"{ctx}: the pickled object is a {PyDescribe.Value(root)}, expected a dict (a state_dict or {{'model': state_dict, ...}})");

            var (stateDict, where) = FindStateDict(top, ctx);
            var entries = CollectTensors(stateDict, where, ctx, strict);
            var state = Materialize(zip, prefix, entries, archive, ctx, strict);
            state = CheckpointReader.StripDataParallel(state, ctx, strict);

            IReadOnlyDictionary<string, object?> args = new Dictionary<string, object?>(StringComparer.Ordinal);
            long? epoch = null;
            if (!ReferenceEquals(stateDict, top))
            {
                try
                {
                    if (top.TryGet("args", out var a) && a is not null)
                        args = a switch
                        {
                            PyInstance inst => PlainValues.ToDictionary(inst.Attributes),
                            PyDict d => PlainValues.ToDictionary(d),
                            _ => new Dictionary<string, object?>(StringComparer.Ordinal) { ["args"] = PlainValues.Convert(a) },
                        };
                }
                catch (PickleError e)
                {
                    throw new QsvitException($"{ctx}: entry 'args' cannot be read: {e.Message}");
                }
                if (top.TryGet("epoch", out var ep) && ep is long l) epoch = l;
            }
            return new Checkpoint(fullPath, "pth", state, args, epoch);
        }
    }

    private static ZipArchiveEntry FindDataPkl(ZipArchive zip, string ctx)
    {
        ZipArchiveEntry? found = null;
        try
        {
            foreach (var e in zip.Entries)
            {
                var name = e.FullName;
                if (name == "data.pkl" || (name.EndsWith("/data.pkl", StringComparison.Ordinal) && name.IndexOf('/') == name.Length - "/data.pkl".Length))
                {
                    found = e;
                    break;
                }
            }
            if (found is not null) return found;
            var names = zip.Entries.Take(8).Select(e => e.FullName).ToList();
            throw new QsvitException($"{ctx}: the zip archive has no '<archive>/data.pkl' entry, so it is not a torch.save checkpoint " +
                                     $"(it holds {zip.Entries.Count} entries{(names.Count > 0 ? ": " + string.Join(", ", names) + (zip.Entries.Count > names.Count ? ", ..." : "") : "")})");
        }
        catch (InvalidDataException e)
        {
            throw new QsvitException($"{ctx}: the zip directory is corrupt: {e.Message}", e);
        }
    }

    private static void CheckByteOrder(ZipArchive zip, string prefix, long archive, string ctx)
    {
        var entry = zip.GetEntry(prefix + "byteorder");
        if (entry is null) return; // written since torch 1.10; older files are little-endian
        string order = Encoding.ASCII.GetString(ReadEntry(entry, archive, ctx, maxBytes: 64)).Trim();
        if (order == "little") return;
        if (order == "big")
            throw new QsvitException($"{ctx}: storages are big-endian ({entry.FullName} = 'big'); qsvit reads only little-endian checkpoints " +
                                     "— load and re-save it with torch on a little-endian machine");
        throw new QsvitException($"{ctx}: {entry.FullName} is '{order}', expected 'little' or 'big'");
    }

    private static void CheckVersion(ZipArchive zip, string prefix, long archive, string ctx)
    {
        var entry = zip.GetEntry(prefix + "version");
        if (entry is null) return;
        string text = Encoding.ASCII.GetString(ReadEntry(entry, archive, ctx, maxBytes: 64)).Trim();
        if (!int.TryParse(text, out int v) || v < 1)
            throw new QsvitException($"{ctx}: {entry.FullName} is '{text}', expected a positive format version number");
    }

    private static byte[] ReadEntry(ZipArchiveEntry entry, long archive, string ctx, long maxBytes = long.MaxValue)
    {
        long length = CheckDeclaredLength(entry, archive, ctx);
        if (length > maxBytes || length > Array.MaxLength)
            throw new QsvitException($"{ctx}: zip entry '{entry.FullName}' is {length} bytes, more than the {Math.Min(maxBytes, Array.MaxLength)} expected");
        var buffer = new byte[length];
        ReadEntryPrefix(entry, buffer, archive, ctx);
        return buffer;
    }

    /// <summary>
    /// The entry's declared uncompressed size, once it is plausible for the bytes the archive really holds; every buffer
    /// is sized from it, so a lying header must be refused before anything is allocated.
    /// </summary>
    private static long CheckDeclaredLength(ZipArchiveEntry entry, long archive, string ctx)
    {
        long length = entry.Length, compressed = entry.CompressedLength;
        if (length < 0 || compressed < 0 || compressed > archive)
            throw new QsvitException($"{ctx}: zip entry '{entry.FullName}' declares {compressed} compressed bytes but the archive is {archive} bytes (truncated or corrupt?)");
        if (length > compressed)
        {
            if (length / DeflateMaxRatio > compressed + 64)
                throw new QsvitException($"{ctx}: zip entry '{entry.FullName}' declares {length} bytes from {compressed} compressed bytes, " +
                                         "more than deflate can produce (corrupt archive)");
            if (length > RatioCheckBytes && length / MaxPlausibleRatio > compressed)
                throw new QsvitException($"{ctx}: zip entry '{entry.FullName}' would inflate {compressed} bytes to {length} " +
                                         $"(more than {MaxPlausibleRatio}:1, implausible for tensor data: a zip bomb?); torch.save stores entries uncompressed");
        }
        return length;
    }

    /// <summary>
    /// Reads the first buffer.Length bytes of the entry into <paramref name="buffer"/> and checks the CRC-32 of the
    /// whole entry, streaming the rest through a small buffer: only what is used is kept.
    /// </summary>
    private static void ReadEntryPrefix(ZipArchiveEntry entry, Span<byte> buffer, long archive, string ctx)
    {
        long length = CheckDeclaredLength(entry, archive, ctx);
        uint crc;
        try
        {
            using var s = entry.Open();
            s.ReadExactly(buffer);
            crc = Crc32.Compute(buffer);
            long rest = length - buffer.Length;
            if (rest > 0)
            {
                var chunk = new byte[(int)Math.Min(rest, 1 << 16)];
                while (rest > 0)
                {
                    int n = (int)Math.Min(rest, chunk.Length);
                    s.ReadExactly(chunk, 0, n);
                    crc = Crc32.Compute(chunk.AsSpan(0, n), crc);
                    rest -= n;
                }
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw new QsvitException($"{ctx}: zip entry '{entry.FullName}' cannot be read (truncated or corrupt archive?): {e.Message}", e);
        }
        if (crc != entry.Crc32)
            throw new QsvitException($"{ctx}: zip entry '{entry.FullName}' is corrupt: its CRC-32 is {crc:x8} but the archive records {entry.Crc32:x8}");
    }

    private static (PyDict Dict, string Where) FindStateDict(PyDict top, string ctx)
    {
        foreach (var name in StateDictKeys)
            if (top.TryGet(name, out var v) && v is PyDict d && (d.Count == 0 || d.Items.Any(kv => kv.Value is TorchTensorRef)))
                return (d, $"'{name}'");
        if (top.Items.Any(kv => kv.Value is TorchTensorRef)) return (top, "the top-level dict");

        var keys = top.Items.Take(12).Select(kv => $"{(kv.Key is string s ? $"'{s}'" : PyDescribe.Value(kv.Key))} ({PyDescribe.TypeOf(kv.Value)})");
        throw new QsvitException($"{ctx}: no state_dict found: expected an entry 'model', 'state_dict', 'model_state' or 'module' holding a dict of tensors, " +
                                 $"or a top-level dict of tensors; the top-level keys are {string.Join(", ", keys)}{(top.Count > 12 ? ", ..." : "")}");
    }

    private static List<(string Key, TorchTensorRef Tensor)> CollectTensors(PyDict dict, string where, string ctx, bool strict)
    {
        var result = new List<(string, TorchTensorRef)>(dict.Count);
        foreach (var kv in dict.Items)
        {
            if (kv.Key is not string key)
            {
                if (strict) throw new QsvitException($"{ctx}: state_dict in {where} has a key of type {PyDescribe.Value(kv.Key)}, expected a string (pass strict: false to skip it)");
                continue;
            }
            if (kv.Value is TorchTensorRef t) result.Add((key, t));
            else if (strict)
                throw new QsvitException($"{ctx}: state_dict entry '{PyDescribe.Clip(key)}' in {where} is a {PyDescribe.Value(kv.Value)}, expected a tensor (pass strict: false to skip non-tensor entries)");
        }
        return result;
    }

    private static StateDict Materialize(ZipArchive zip, string prefix, List<(string Key, TorchTensorRef Tensor)> entries, long archive, string ctx, bool strict)
    {
        // Group tensors by storage so each storage is read once, even when several tensors view it.
        var groups = new Dictionary<StorageRef, List<int>>(ReferenceEqualityComparer.Instance);
        var order = new List<StorageRef>();
        for (int i = 0; i < entries.Count; i++)
        {
            var s = entries[i].Tensor.Storage;
            if (!groups.TryGetValue(s, out var list))
            {
                groups[s] = list = new List<int>();
                order.Add(s);
            }
            list.Add(i);
        }

        var tensors = new Tensor[entries.Count];
        foreach (var storage in order)
        {
            var users = groups[storage];
            string name = prefix + "data/" + storage.Key;
            ZipArchiveEntry? entry;
            try { entry = zip.GetEntry(name); }
            catch (InvalidDataException e) { throw new QsvitException($"{ctx}: the zip directory is corrupt: {e.Message}", e); }
            if (entry is null)
                throw new QsvitException($"{ctx}: storage '{PyDescribe.Clip(name)}' used by tensor '{PyDescribe.Clip(entries[users[0]].Key)}' is missing from the archive");

            int es = DTypes.Size(storage.DType);
            long length = CheckDeclaredLength(entry, archive, ctx);
            long needed = 0;   // elements the tensors touch: only these are kept in memory
            foreach (int i in users)
            {
                var (key, t) = entries[i];
                if (t.Numel > Array.MaxLength)
                    throw new QsvitException($"{ctx}: tensor '{PyDescribe.Clip(key)}' ({t.Describe()}) has {t.Numel} elements, more than a float array can hold");
                if (t.Extent > length / es)
                    throw new QsvitException($"{ctx}: storage '{PyDescribe.Clip(name)}' holds {length} bytes but tensor '{PyDescribe.Clip(key)}' ({t.Describe()}) needs {t.Extent * es} bytes " +
                                             "(truncated or corrupt checkpoint?)");
                needed = Math.Max(needed, t.Extent);
            }
            if (strict && length < storage.ByteLength)
                throw new QsvitException($"{ctx}: storage '{PyDescribe.Clip(name)}' holds {length} bytes but the pickle declares {storage.Numel} {storage.StorageType} elements " +
                                         $"({storage.ByteLength} bytes; truncated or corrupt checkpoint?)");
            long neededBytes = needed * es;   // <= length (checked above), so no overflow
            if (neededBytes > Array.MaxLength)
                throw new QsvitException($"{ctx}: storage '{PyDescribe.Clip(name)}' is {length} bytes, too large to read");

            var first = entries[users[0]].Tensor;
            if (users.Count == 1 && storage.DType == DType.F32 && first.IsContiguous && first.Offset == 0)
            {
                // The common case: one float tensor per storage, read straight into its array.
                var data = new float[first.Numel];
                ReadEntryPrefix(entry, MemoryMarshal.AsBytes(data.AsSpan()), archive, ctx);
                tensors[users[0]] = new Tensor(data, first.Size);
                continue;
            }

            var bytes = new byte[neededBytes];
            ReadEntryPrefix(entry, bytes, archive, ctx);
            foreach (int i in users) tensors[i] = entries[i].Tensor.Materialize(bytes);
        }

        var state = new StateDict();
        for (int i = 0; i < entries.Count; i++) state.Set(entries[i].Key, tensors[i], entries[i].Tensor.Storage.DType);
        return state;
    }
}
