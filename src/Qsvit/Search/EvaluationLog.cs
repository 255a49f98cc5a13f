using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Qsvit.Evaluation;
using Qsvit.IO;

namespace Qsvit.Search;

/// <summary>One finished evaluation as logged: <see cref="Line"/> is its 1-based line in the log (0 until written).</summary>
public abstract record LoggedEvaluation(string Setting)
{
    public int Line { get; init; }
    /// <summary>What was evaluated of <see cref="Setting"/> (kind, split or images): two records of one evaluation must agree.</summary>
    public abstract string What { get; }
    /// <summary>The result, without timings: what two records of one evaluation must agree on.</summary>
    internal abstract string Content { get; }
}

public sealed record LoggedAccuracy(AccuracyRecord Record) : LoggedEvaluation(Record.Setting)
{
    public override string What => $"accuracy on {Record.Split}";
    internal override string Content => $"{Record.Count} {Record.Correct} {EvaluationLog.PackMask(Record.CorrectMask)}";
}

/// <summary>Images [Start, Start + Record.Count) of a split, evaluated for a sequential decision.</summary>
public sealed record LoggedChunk(AccuracyRecord Record, int Start) : LoggedEvaluation(Record.Setting)
{
    public override string What => $"images {Start}..{Start + Record.Count - 1} of {Record.Split}";
    internal override string Content => $"{Record.Count} {Record.Correct} {EvaluationLog.PackMask(Record.CorrectMask)}";
}

public sealed record LoggedDrift(string Setting, DriftResult Result) : LoggedEvaluation(Setting)
{
    public override string What => "drift";
    internal override string Content =>
        string.Join(" ", new[] { Result.Drift, Result.SpikeMismatch }.Concat(Result.PerLayer).Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
}

public sealed record LoggedRates(string Setting, int Images, IReadOnlyList<LifRate> Rates) : LoggedEvaluation(Setting)
{
    public override string What => $"firing rates on {Images} images";
    internal override string Content => string.Join(" ", Rates.Select(r => $"{r.Name}:{r.Block}:{r.Spikes}:{r.Neurons}"));
}

/// <summary>
/// <c>evaluations.jsonl</c>: one JSON line per finished evaluation, appended and flushed as soon as it completes, each ending in
/// its own checksum (<c>"sum"</c>, CRC-32 of the line before it). Reading is forgiving of damage and strict about meaning:
/// <list type="bullet">
/// <item>a line that is not JSON, fails its checksum, or has a missing or ill-typed field (a count larger than its mask, a
/// mask that is not base64…) is skipped with a warning naming the file and line, and that evaluation is simply run again;</item>
/// <item>a partial last line (a run killed mid-write) is cut off, so the next append is not glued onto it;</item>
/// <item>two intact records of one evaluation that disagree are an error (<see cref="Conflict"/>): which one is right cannot
/// be told, and either would change a search's outcome.</item>
/// </list>
/// Lines without a checksum (written before checksums) are read like the others.
/// </summary>
public sealed partial class EvaluationLog
{
    public const string FileName = "evaluations.jsonl";

    private readonly object _gate = new();
    private readonly List<LoggedEvaluation> _entries = new();
    private readonly List<string> _warnings = new();
    private int _lines;

    public string Path { get; }
    /// <summary>The intact records, in file order (appended ones included).</summary>
    public IReadOnlyList<LoggedEvaluation> Entries { get; }
    /// <summary>What was skipped while reading, one message per line.</summary>
    public IReadOnlyList<string> Warnings => _warnings;

    private EvaluationLog(string path)
    {
        Path = path;
        Entries = _entries;
    }

    /// <summary>Reads (or starts) the log at <paramref name="path"/>.</summary>
    public static EvaluationLog Open(string path)
    {
        var log = new EvaluationLog(path);
        if (!File.Exists(path)) return log;
        DropPartialLastLine(path);
        foreach (var line in File.ReadLines(path))
        {
            int number = ++log._lines;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try { log._entries.Add(Parse(line) with { Line = number }); }
            catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or ArgumentException)
            {
                log._warnings.Add($"{path}:{number}: skipped ({e.Message}); that evaluation will run again");
            }
        }
        return log;
    }

    /// <summary>Appends one record and flushes it to disk before returning.</summary>
    public void Append(LoggedEvaluation entry)
    {
        var line = Format(entry) + "\n";
        lock (_gate)
        {
            using (var stream = new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read))
            {
                stream.Write(Encoding.UTF8.GetBytes(line));
                stream.Flush(flushToDisk: true);
            }
            _entries.Add(entry with { Line = ++_lines });
        }
    }

    /// <summary>The error for two records of one evaluation with different results.</summary>
    public QsvitException Conflict(LoggedEvaluation first, LoggedEvaluation second) =>
        new($"{Path}: lines {first.Line} and {second.Line} record different results for the {first.What} of {first.Setting}. The run directory was " +
            "written by two runs at once or edited by hand; delete the wrong line (or both, to evaluate it again).");

    /// <summary>The record's JSON line, its checksum last.</summary>
    /// <summary>An accuracy record's fields; a chunk also names the first image it covers (after the split).</summary>
    private static JsonObject AccuracyBody(string kind, string setting, AccuracyRecord record, int? start)
    {
        var body = new JsonObject { ["kind"] = kind, ["setting"] = setting, ["split"] = record.Split };
        if (start is { } first) body["start"] = first;
        body["count"] = record.Count;
        body["correct"] = record.Correct;
        body["mask"] = PackMask(record.CorrectMask);
        body["seconds"] = Math.Round(record.Seconds, 3);
        return body;
    }

    public static string Format(LoggedEvaluation entry)
    {
        var body = entry switch
        {
            LoggedAccuracy a => AccuracyBody("accuracy", a.Setting, a.Record, start: null),
            LoggedChunk c => AccuracyBody("chunk", c.Setting, c.Record, c.Start),
            LoggedDrift d => new JsonObject
            {
                ["kind"] = "drift",
                ["setting"] = d.Setting,
                ["drift"] = d.Result.Drift,
                ["mismatch"] = d.Result.SpikeMismatch,
                ["per_layer"] = new JsonArray(d.Result.PerLayer.Select(v => (JsonNode)Math.Round(v, 7)).ToArray()),
                ["seconds"] = Math.Round(d.Result.Seconds, 3),
            },
            LoggedRates r => new JsonObject
            {
                ["kind"] = "rates",
                ["setting"] = r.Setting,
                ["images"] = r.Images,
                ["layers"] = new JsonArray(r.Rates.Select(x => (JsonNode)new JsonObject
                {
                    ["name"] = x.Name,
                    ["block"] = x.Block,
                    ["spikes"] = x.Spikes,
                    ["neurons"] = x.Neurons,
                    ["rate"] = x.Rate,
                }).ToArray()),
            },
            _ => throw new ArgumentException($"unknown record {entry.GetType().Name}", nameof(entry)),
        };
        string text = body.ToJsonString();
        return $"{text[..^1]},\"sum\":\"{Checksum(text)}\"}}";
    }

    /// <summary>One line as a record; throws <see cref="FormatException"/> (or a JSON exception) saying what is wrong.</summary>
    public static LoggedEvaluation Parse(string line)
    {
        var sum = SumSuffix().Match(line);
        if (sum.Success)
        {
            string body = line[..sum.Index] + "}";
            if (!string.Equals(Checksum(body), sum.Groups[1].Value, StringComparison.OrdinalIgnoreCase))
                throw new FormatException("its checksum does not match its content");
        }
        var o = JsonNode.Parse(line) as JsonObject ?? throw new FormatException("not a JSON object");
        string kind = String(o, "kind");
        string setting = String(o, "setting");
        switch (kind)
        {
            case "accuracy":
            case "chunk":
                string split = String(o, "split");
                int count = Number<int>(o, "count");
                long correct = Number<long>(o, "correct");
                if (count < 0 || correct < 0 || correct > count) throw new FormatException($"correct = {correct} of count = {count}");
                var mask = UnpackMask(String(o, "mask"), count);
                if (mask.LongCount(m => m) != correct) throw new FormatException($"the mask holds {mask.Count(m => m)} correct images, not {correct}");
                var record = new AccuracyRecord(setting, split, count, correct, mask, Seconds(o));
                if (kind == "accuracy") return new LoggedAccuracy(record);
                int start = Number<int>(o, "start");
                if (start < 0) throw new FormatException($"start = {start}");
                return new LoggedChunk(record, start);
            case "drift":
                var perLayer = o["per_layer"] is null ? [] : Array(o, "per_layer").Select((n, i) => Value<double>(n, $"per_layer[{i}]")).ToArray();
                double mismatch = o["mismatch"] is null ? 0 : Number<double>(o, "mismatch");
                return new LoggedDrift(setting, new DriftResult(Number<double>(o, "drift"), mismatch, perLayer, Seconds(o)));
            case "rates":
                int images = Number<int>(o, "images");
                if (images < 1) throw new FormatException($"images = {images}");
                var layers = Array(o, "layers").Select((n, i) => n is JsonObject l
                    ? new LifRate(String(l, "name"), String(l, "block"), Number<double>(l, "rate"), Number<long>(l, "spikes"), Number<long>(l, "neurons"))
                    : throw new FormatException($"layers[{i}] is not an object")).ToArray();
                return new LoggedRates(setting, images, layers);
            default:
                throw new FormatException($"unknown kind '{kind}'");
        }
    }

    internal static string PackMask(bool[] mask)
    {
        var bytes = new byte[(mask.Length + 7) / 8];
        for (int i = 0; i < mask.Length; i++) if (mask[i]) bytes[i >> 3] |= (byte)(1 << (i & 7));
        return Convert.ToBase64String(bytes);
    }

    internal static bool[] UnpackMask(string base64, int count)
    {
        byte[] bytes;
        try { bytes = Convert.FromBase64String(base64); }
        catch (FormatException) { throw new FormatException("mask is not base64"); }
        if ((long)bytes.Length * 8 < count) throw new FormatException($"mask holds {bytes.Length * 8} images, count says {count}");
        var mask = new bool[count];
        for (int i = 0; i < count; i++) mask[i] = (bytes[i >> 3] & (1 << (i & 7))) != 0;
        return mask;
    }

    private static string Checksum(string text) => Crc32.Compute(Encoding.UTF8.GetBytes(text)).ToString("x8", CultureInfo.InvariantCulture);

    private static double Seconds(JsonObject o) => o["seconds"] is null ? 0 : Number<double>(o, "seconds");

    private static string String(JsonObject o, string name) => Value<string>(o[name], name);

    private static T Number<T>(JsonObject o, string name) => Value<T>(o[name], name);

    private static JsonArray Array(JsonObject o, string name) => o[name] as JsonArray ?? throw new FormatException($"\"{name}\" is missing or not an array");

    private static T Value<T>(JsonNode? node, string name)
    {
        if (node is JsonValue v && v.TryGetValue(out T? value) && value is not null) return value;
        throw new FormatException(node is null ? $"\"{name}\" is missing" : $"\"{name}\" = {node.ToJsonString()} is not a {typeof(T).Name.ToLowerInvariant()}");
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
            int i = System.Array.LastIndexOf(buffer, (byte)'\n', n - 1, n);
            if (i >= 0)
            {
                stream.SetLength(pos + i + 1);
                return;
            }
        }
        stream.SetLength(0);
    }

    [GeneratedRegex("""(?:,)"sum":"([0-9a-fA-F]{8})"\}$""")]
    private static partial Regex SumSuffix();
}
