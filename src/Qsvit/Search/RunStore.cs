using System.Text.Json;
using System.Text.Json.Nodes;

namespace Qsvit.Search;

/// <summary>
/// A resumable run directory: <c>manifest.json</c> pins what the run is about (model, data, quantizer…), and
/// <c>evaluations.jsonl</c> gets one line per finished evaluation, flushed as soon as it completes. Re-opening the same
/// directory with the same identity replays those lines, so a killed run restarted with the same arguments evaluates
/// nothing twice; different arguments are refused rather than mixed.
/// <para>An identity field may be null: this run does not use it (no test split, no drift measurements), so it neither
/// checks nor pins it. The first run that does use it pins it, which lets runs that need different parts of the identity
/// (a QSViT search without drift, an AQ4SViT search with it) share one directory and its evaluations.</para>
/// </summary>
public sealed class RunStore
{
    public const string ManifestFile = "manifest.json";
    public const string LogFile = "evaluations.jsonl";

    private readonly object _gate = new();
    private readonly List<JsonObject> _records = new();

    public string Directory { get; }
    public IReadOnlyList<JsonObject> Records => _records;

    private RunStore(string directory) => Directory = directory;

    /// <param name="identity">Everything that decides evaluation results, compared field by field with an existing manifest;
    /// a null value is a field this run does not use (see the class remarks).</param>
    public static RunStore Open(string directory, IReadOnlyDictionary<string, string?> identity)
    {
        System.IO.Directory.CreateDirectory(directory);
        var store = new RunStore(directory);
        var manifestPath = Path.Combine(directory, ManifestFile);
        JsonObject manifest;
        if (File.Exists(manifestPath))
        {
            try { manifest = JsonNode.Parse(File.ReadAllText(manifestPath)) as JsonObject ?? throw new JsonException("not an object"); }
            catch (JsonException e) { throw new QsvitException($"run directory '{directory}': {ManifestFile} is corrupt ({e.Message}); remove it or use another --run-dir"); }
            if (manifest["identity"] is not JsonObject existing) manifest["identity"] = existing = new JsonObject();
            bool pinned = false;
            foreach (var (key, value) in identity)
            {
                if (value is null) continue;
                if (existing.TryGetPropertyValue(key, out var node) && node is null)
                {
                    existing[key] = value;   // unused so far: the first run that uses it pins it
                    pinned = true;
                    continue;
                }
                var before = node?.GetValue<string>();
                if (before != value)
                    throw new QsvitException($"run directory '{directory}' belongs to another run: {key} was '{before ?? "(unset)"}', now '{value}'. " +
                                             "Use a new --run-dir (or delete the old one) to start over.");
            }
            if (pinned) WriteAtomically(manifestPath, manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        else
        {
            manifest = new JsonObject
            {
                ["tool"] = "qsvit",
                ["created"] = DateTimeOffset.UtcNow.ToString("O"),
                ["identity"] = new JsonObject(identity.Select(kv => KeyValuePair.Create(kv.Key, kv.Value is null ? null : (JsonNode?)kv.Value))),
            };
            WriteAtomically(manifestPath, manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        var log = Path.Combine(directory, LogFile);
        if (File.Exists(log))
        {
            DropPartialLastLine(log);
            foreach (var line in File.ReadLines(log))
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                try { if (JsonNode.Parse(line) is JsonObject o) store._records.Add(o); }
                catch (JsonException) { }
            }
        }
        return store;
    }

    /// <summary>Appends one record and flushes it to disk before returning.</summary>
    public void Append(JsonObject record)
    {
        lock (_gate)
        {
            var line = record.ToJsonString() + "\n";
            using (var stream = new FileStream(Path.Combine(Directory, LogFile), FileMode.Append, FileAccess.Write, FileShare.Read))
            {
                var bytes = System.Text.Encoding.UTF8.GetBytes(line);
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            _records.Add(record);
        }
    }

    /// <summary>
    /// A run killed mid-write leaves a last line without its newline. Left in place, the next append would be glued onto it
    /// and both records lost on the following replay, so it is cut off (that evaluation simply runs again).
    /// </summary>
    private static void DropPartialLastLine(string log)
    {
        using var stream = new FileStream(log, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        long end = stream.Length;
        if (end == 0) return;
        var buffer = new byte[4096];
        stream.Position = end - 1;
        if (stream.ReadByte() == '\n') return;
        for (long pos = end; pos > 0;)
        {
            int n = (int)Math.Min(buffer.Length, pos);
            pos -= n;
            stream.Position = pos;
            stream.ReadExactly(buffer, 0, n);
            int i = Array.LastIndexOf(buffer, (byte)'\n', n - 1, n);
            if (i >= 0)
            {
                stream.SetLength(pos + i + 1);
                return;
            }
        }
        stream.SetLength(0);
    }

    public static void WriteAtomically(string path, string text)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
