using System.Globalization;

namespace Qsvit.IO;

/// <summary>
/// A loaded checkpoint.
/// <para><paramref name="Format"/> is "pth" (zip-based torch.save) or "safetensors".</para>
/// <para><paramref name="Args"/> holds the training arguments (an argparse.Namespace in a .pth, the
/// <c>__metadata__</c> map in a safetensors file) as plain values: string, long, double, bool, null,
/// <c>List&lt;object?&gt;</c> and nested <c>Dictionary&lt;string, object?&gt;</c>; empty when there are none.</para>
/// <para><paramref name="Epoch"/> is the checkpoint's 'epoch' entry (the "epoch" metadata value for safetensors), if any.</para>
/// </summary>
public sealed record Checkpoint(string Path, string Format, StateDict State, IReadOnlyDictionary<string, object?> Args, long? Epoch);

/// <summary>Loads a checkpoint, detecting its format from the file's bytes.</summary>
public static class CheckpointReader
{
    private const string DataParallelPrefix = "module.";

    /// <summary>
    /// Loads a PyTorch zip checkpoint (.pth/.pt written by torch.save since 1.6) or a safetensors file.
    /// The state_dict is taken from 'model', else 'state_dict', else 'model_state' / 'module', else the top
    /// level when it holds tensors; a leading "module." is stripped from every key.
    /// With <paramref name="strict"/> (the default) non-tensor entries inside the state_dict, storages shorter
    /// than their declared size and keys that collide after stripping "module." are errors; otherwise
    /// non-tensor entries are skipped, the later of two colliding keys wins and only the bytes a tensor
    /// actually uses must be present. Unsafe or malformed content is always an error.
    /// </summary>
    /// <exception cref="QsvitException">The file is missing, unreadable, of unknown format, corrupt or unsafe.</exception>
    public static Checkpoint Load(string path, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = FullPath(path, "checkpoint");
        using var stream = OpenRead(path, full, "checkpoint");

        Span<byte> head = stackalloc byte[16];
        int n;
        try
        {
            n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            stream.Position = 0;
        }
        catch (IOException e)
        {
            throw new QsvitException($"checkpoint '{path}' cannot be read: {e.Message}", e);
        }
        head = head[..n];

        if (n == 0) throw new QsvitException($"checkpoint '{path}' is empty (0 bytes)");
        if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && (head[2], head[3]) is (3, 4) or (5, 6))
            return TorchZipReader.Load(path, full, stream, strict);
        if (LooksLikeSafeTensors(head))
        {
            var (state, metadata) = SafeTensors.ReadCore(stream, $"safetensors '{path}'");
            var renamed = StripDataParallel(state, $"checkpoint '{path}'", strict);
            var args = metadata.ToDictionary(kv => kv.Key, kv => (object?)kv.Value, StringComparer.Ordinal);
            long? epoch = metadata.TryGetValue("epoch", out var e)
                          && long.TryParse(e, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var ep) ? ep : null;
            return new Checkpoint(full, "safetensors", renamed, args, epoch);
        }
        if (head[0] == 0x80 && n >= 2 && head[1] <= 5)
            throw new QsvitException($"checkpoint '{path}' is a bare pickle stream (protocol {head[1]}), e.g. a legacy pre-1.6 torch.save file; " +
                                     "qsvit reads only zip-based torch.save files and safetensors: re-save it with a current PyTorch");
        throw new QsvitException($"checkpoint '{path}' has an unrecognised format: it starts with bytes {Hex(head)} ('{Printable(head)}'); " +
                                 "expected a PyTorch zip checkpoint (starting 'PK\\x03\\x04') or a safetensors file (8-byte header length, then '{')");
    }

    internal static bool LooksLikeSafeTensors(ReadOnlySpan<byte> head) =>
        head.Length >= 9 && head[8] == (byte)'{' && BitConverter.ToUInt64(head[..8]) > 0;

    /// <summary>Strips a leading "module." (DataParallel) from every key.</summary>
    internal static StateDict StripDataParallel(StateDict state, string context, bool strict)
    {
        bool any = false;
        foreach (var k in state.Keys)
            if (k.StartsWith(DataParallelPrefix, StringComparison.Ordinal)) { any = true; break; }
        if (!any) return state;

        var result = new StateDict();
        foreach (var (key, tensor) in state)
        {
            string k = key.StartsWith(DataParallelPrefix, StringComparison.Ordinal) ? key[DataParallelPrefix.Length..] : key;
            if (result.ContainsKey(k) && strict)
                throw new QsvitException($"{context}: keys '{key}' and '{k}' collide once the DataParallel prefix 'module.' is stripped");
            result.Set(k, tensor, state.StoredType(key));
        }
        return result;
    }

    internal static string FullPath(string path, string what)
    {
        try
        {
            return System.IO.Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new QsvitException($"{what} path '{path}' is not a valid path: {e.Message}", e);
        }
    }

    internal static FileStream OpenRead(string path, string full, string what)
    {
        if (Directory.Exists(full)) throw new QsvitException($"{what} '{path}' is a directory, expected a file");
        if (!File.Exists(full)) throw new QsvitException($"{what} '{path}' not found (looked for {full})");
        try
        {
            return new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new QsvitException($"{what} '{path}' cannot be opened: {e.Message}", e);
        }
    }

    private static string Hex(ReadOnlySpan<byte> b) => string.Join(" ", b.ToArray().Select(x => x.ToString("x2", CultureInfo.InvariantCulture)));

    private static string Printable(ReadOnlySpan<byte> b)
    {
        var chars = new char[b.Length];
        for (int i = 0; i < b.Length; i++) chars[i] = b[i] is >= 0x20 and < 0x7F ? (char)b[i] : '.';
        return new string(chars);
    }
}
