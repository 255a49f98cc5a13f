using System.IO.Compression;
using System.Text;

namespace Qsvit.Cli.Tests;

/// <summary>Issue 9 at the command line: inputs that used to end in exit 134 (an unhandled exception) exit 2 with "error: ...".</summary>
public sealed class HostileInputCliTests : IDisposable
{
    private readonly QsvitProcess _qsvit = new();

    public void Dispose() => _qsvit.Dispose();

    private static void AssertRefused(CliResult r, string says)
    {
        Assert.True(r.ExitCode == 2, $"exit {r.ExitCode}, stderr: {r.Err}");
        Assert.StartsWith("error: ", r.Err.TrimStart());
        Assert.Contains(says, r.Err);
    }

    private CliResult Eval(string model) => _qsvit.Run("eval", "--model", model, "--data", QsvitProcess.CifarTest, "--limit", "1");

    /// <summary>{'model': {'w': _rebuild_tensor_v2(storage of 4 floats, storage_offset = 2^63 - 1, (1,), (1,), False, OrderedDict())}}.</summary>
    private static byte[] OverflowingOffsetPickle()
    {
        var p = new List<byte> { 0x80, 0x02, (byte)'}' };
        void Text(string s) => p.AddRange(Encoding.ASCII.GetBytes(s));
        void Str(string s) { p.Add((byte)'X'); p.AddRange(BitConverter.GetBytes(s.Length)); Text(s); }
        Str("model"); p.Add((byte)'}'); Str("w");
        Text("ctorch._utils\n_rebuild_tensor_v2\n(");
        p.Add((byte)'('); Str("storage"); Text("ctorch\nFloatStorage\n"); Str("0"); Str("cpu"); p.AddRange([(byte)'K', 4, (byte)'t', (byte)'Q']);
        p.AddRange([0x8a, 8, .. BitConverter.GetBytes(long.MaxValue)]);   // LONG1 storage_offset
        p.AddRange([(byte)'K', 1, 0x85, (byte)'K', 1, 0x85, 0x89]);        // (1,), (1,), False
        Text("ccollections\nOrderedDict\n)R");
        Text("tRss.");
        return p.ToArray();
    }

    [Fact]
    public void CheckpointWhoseStorageOffsetOverflows_ExitsWith2()
    {
        string path = _qsvit.File("overflow.pth");
        using (var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create))
        {
            foreach (var (name, bytes) in new[] { ("arch/data.pkl", OverflowingOffsetPickle()), ("arch/data/0", new byte[16]) })
            {
                using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                s.Write(bytes);
            }
        }
        AssertRefused(Eval(path), "overflows");
    }

    [Fact]
    public void SafetensorsWithInvalidUtf8_ExitsWith2()
    {
        string path = _qsvit.File("bad.safetensors");
        var header = Encoding.UTF8.GetBytes("{\"w?\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        header[3] = 0xFF;
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, 0, 0, 0, 0]);
        AssertRefused(Eval(path), "not valid UTF-8");
    }

    [Fact]
    public void ModelJsonWithANull_ExitsWith2()
    {
        string model = _qsvit.File("m.pth");
        File.Copy(QsvitProcess.BundledModel, model);
        File.WriteAllText(_qsvit.File("model.json"), "{\"embed_dim\": [32, null, 128, 192]}");
        AssertRefused(Eval(model), "'embed_dim[1]' is null");
    }
}
