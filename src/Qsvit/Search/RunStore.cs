using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Qsvit.IO;

namespace Qsvit.Search;

/// <summary>
/// A resumable run directory: <c>manifest.json</c> pins what the run is about (model, data, quantizer…), and
/// <see cref="EvaluationLog"/> (<c>evaluations.jsonl</c>) gets one line per finished evaluation. Re-opening the same
/// directory with the same identity replays those lines, so a killed run restarted with the same arguments evaluates
/// nothing twice; different arguments are refused rather than mixed. One process at a time: the directory is locked while
/// the store is open, and another process (or a second open) gets an error naming the holder's PID.
/// <para>An identity field may be null: this run does not use it (no test split, no drift measurements), so it neither
/// checks nor pins it. The first run that does use it pins it, which lets runs that need different parts of the identity
/// (a QSViT search without drift, an AQ4SViT search with it) share one directory and its evaluations.</para>
/// </summary>
public sealed class RunStore : IDisposable
{
    public const string ManifestFile = "manifest.json";
    public const string LogFile = EvaluationLog.FileName;
    /// <summary>Held exclusively (an OS file lock, released even when the process is killed) while the store is open.</summary>
    public const string LockFile = "lock";
    /// <summary>The PID of the lock's holder, for the error a second process gets.</summary>
    public const string OwnerFile = "lock.owner";

    private readonly FileStream _lock;

    public string Directory { get; }
    public EvaluationLog Log { get; }

    private RunStore(string directory, FileStream @lock, EvaluationLog log)
    {
        Directory = directory;
        _lock = @lock;
        Log = log;
    }

    /// <param name="identity">Everything that decides evaluation results, compared field by field with an existing manifest;
    /// a null value is a field this run does not use (see the class remarks).</param>
    /// <param name="absentMeans">What a field missing from an existing manifest (written before the field existed) was
    /// then, e.g. correction "none": such a run resumes when it matches, and the field is pinned.</param>
    public static RunStore Open(string directory, IReadOnlyDictionary<string, string?> identity, IReadOnlyDictionary<string, string>? absentMeans = null)
    {
        System.IO.Directory.CreateDirectory(directory);
        var @lock = Lock(directory);
        try
        {
            CheckManifest(directory, identity, absentMeans);
            return new RunStore(directory, @lock, EvaluationLog.Open(Path.Combine(directory, LogFile)));
        }
        catch
        {
            @lock.Dispose();
            throw;
        }
    }

    public void Dispose() => _lock.Dispose();

    private static FileStream Lock(string directory)
    {
        string path = Path.Combine(directory, LockFile), owner = Path.Combine(directory, OwnerFile);
        try
        {
            // FileShare.None is an exclusive flock on Unix and a share-mode lock on Windows: both refuse every other opener.
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            TextFiles.WriteAtomically(owner, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            return stream;
        }
        catch (IOException e) when (File.Exists(path))
        {
            string pid = "an unknown process";
            try { pid = $"PID {File.ReadAllText(owner).Trim()}"; }
            catch (IOException) { }
            throw new QsvitException($"run directory '{directory}' is in use by {pid}; wait for that run to finish or use another --run-dir", e);
        }
    }

    private static void CheckManifest(string directory, IReadOnlyDictionary<string, string?> identity, IReadOnlyDictionary<string, string>? absentMeans)
    {
        var manifestPath = Path.Combine(directory, ManifestFile);
        if (!File.Exists(manifestPath))
        {
            var manifest = new JsonObject
            {
                ["tool"] = "qsvit",
                ["created"] = DateTimeOffset.UtcNow.ToString("O"),
                ["identity"] = new JsonObject(identity.Select(kv => KeyValuePair.Create(kv.Key, kv.Value is null ? null : (JsonNode?)kv.Value))),
            };
            TextFiles.WriteAtomically(manifestPath, manifest.ToJsonString(TextFiles.Json));
            return;
        }
        JsonObject existing, root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(manifestPath)) as JsonObject ?? throw new JsonException("not an object");
            if (root["identity"] is not JsonObject found) root["identity"] = found = new JsonObject();
            existing = found;
        }
        catch (JsonException e) { throw new QsvitException($"run directory '{directory}': {ManifestFile} is corrupt ({e.Message}); remove it or use another --run-dir"); }
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
            var before = node is JsonValue v && v.TryGetValue(out string? s) ? s : node?.ToJsonString();
            if (!existing.ContainsKey(key) && absentMeans?.GetValueOrDefault(key) is { } then && then == value)
            {
                existing[key] = value;
                pinned = true;
                continue;
            }
            if (before != value)
                throw new QsvitException($"run directory '{directory}' belongs to another run: {key} was '{before ?? "(unset)"}', now '{value}'. " +
                                         "Use a new --run-dir (or delete the old one) to start over.");
        }
        if (pinned) TextFiles.WriteAtomically(manifestPath, root.ToJsonString(TextFiles.Json));
    }
}
