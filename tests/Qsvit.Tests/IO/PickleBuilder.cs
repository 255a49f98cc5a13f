using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Qsvit.Tests.IO;

/// <summary>Assembles pickle byte streams opcode by opcode (the opcode bytes are spelled out from the pickle spec).</summary>
internal sealed class PickleBuilder
{
    private readonly List<byte> _bytes = new();

    public byte[] ToArray() => _bytes.ToArray();

    public PickleBuilder Raw(params byte[] b) { _bytes.AddRange(b); return this; }
    private PickleBuilder Op(byte op, ReadOnlySpan<byte> arg = default) { _bytes.Add(op); _bytes.AddRange(arg.ToArray()); return this; }
    private static byte[] U32(long v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)v); return b; }
    private static byte[] U64(long v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)v); return b; }

    public PickleBuilder Proto(byte p) => Op(0x80, [p]);
    public PickleBuilder Frame(long length) => Op(0x95, U64(length));
    public PickleBuilder Stop() => Op((byte)'.');
    public PickleBuilder Mark() => Op((byte)'(');
    public PickleBuilder Pop() => Op((byte)'0');
    public PickleBuilder PopMark() => Op((byte)'1');
    public PickleBuilder Dup() => Op((byte)'2');
    public PickleBuilder None() => Op((byte)'N');
    public PickleBuilder True() => Op(0x88);
    public PickleBuilder False() => Op(0x89);
    public PickleBuilder BinInt1(byte v) => Op((byte)'K', [v]);
    public PickleBuilder BinInt2(ushort v) { var b = new byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); return Op((byte)'M', b); }
    public PickleBuilder BinInt(int v) { var b = new byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, v); return Op((byte)'J', b); }
    public PickleBuilder Long1(params byte[] twosComplementLittleEndian) => Op(0x8a, [(byte)twosComplementLittleEndian.Length, .. twosComplementLittleEndian]);
    public PickleBuilder Long4(params byte[] twosComplementLittleEndian) => Op(0x8b, [.. U32(twosComplementLittleEndian.Length), .. twosComplementLittleEndian]);
    public PickleBuilder BinFloat(double v) { var b = new byte[8]; BinaryPrimitives.WriteDoubleBigEndian(b, v); return Op((byte)'G', b); }
    public PickleBuilder BinUnicode(string s) { var u = Encoding.UTF8.GetBytes(s); return Op((byte)'X', [.. U32(u.Length), .. u]); }
    public PickleBuilder ShortBinUnicode(string s) { var u = Encoding.UTF8.GetBytes(s); return Op(0x8c, [(byte)u.Length, .. u]); }
    public PickleBuilder BinUnicode8(string s) { var u = Encoding.UTF8.GetBytes(s); return Op(0x8d, [.. U64(u.Length), .. u]); }
    public PickleBuilder ShortBinBytes(params byte[] b) => Op((byte)'C', [(byte)b.Length, .. b]);
    public PickleBuilder BinBytes(params byte[] b) => Op((byte)'B', [.. U32(b.Length), .. b]);
    public PickleBuilder Text(char op, string line) => Op((byte)op, Encoding.Latin1.GetBytes(line + "\n"));
    public PickleBuilder Global(string module, string name) => Op((byte)'c', Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));
    public PickleBuilder StackGlobal() => Op(0x93);
    public PickleBuilder EmptyDict() => Op((byte)'}');
    public PickleBuilder EmptyList() => Op((byte)']');
    public PickleBuilder EmptyTuple() => Op((byte)')');
    public PickleBuilder EmptySet() => Op(0x8f);
    public PickleBuilder AddItems() => Op(0x90);
    public PickleBuilder FrozenSet() => Op(0x91);
    public PickleBuilder Tuple() => Op((byte)'t');
    public PickleBuilder Tuple1() => Op(0x85);
    public PickleBuilder Tuple2() => Op(0x86);
    public PickleBuilder Tuple3() => Op(0x87);
    public PickleBuilder List() => Op((byte)'l');
    public PickleBuilder Dict() => Op((byte)'d');
    public PickleBuilder Append() => Op((byte)'a');
    public PickleBuilder Appends() => Op((byte)'e');
    public PickleBuilder SetItem() => Op((byte)'s');
    public PickleBuilder SetItems() => Op((byte)'u');
    public PickleBuilder BinPut(byte i) => Op((byte)'q', [i]);
    public PickleBuilder LongBinPut(uint i) => Op((byte)'r', U32(i));
    public PickleBuilder Memoize() => Op(0x94);
    public PickleBuilder BinGet(byte i) => Op((byte)'h', [i]);
    public PickleBuilder LongBinGet(uint i) => Op((byte)'j', U32(i));
    public PickleBuilder Reduce() => Op((byte)'R');
    public PickleBuilder NewObj() => Op(0x81);
    public PickleBuilder Build() => Op((byte)'b');
    public PickleBuilder BinPersId() => Op((byte)'Q');

    /// <summary>Pushes ('storage', torch.&lt;type&gt;, key, 'cpu', numel) and BINPERSID.</summary>
    public PickleBuilder Storage(string storageType, string key, int numel) =>
        Mark().BinUnicode("storage").Global("torch", storageType).BinUnicode(key).BinUnicode("cpu").BinInt(numel).Tuple().BinPersId();

    /// <summary>Pushes a tuple of small ints (TUPLE1/2/3 or MARK..TUPLE).</summary>
    public PickleBuilder IntTuple(params int[] v)
    {
        if (v.Length == 0) return EmptyTuple();
        if (v.Length > 3) Mark();
        foreach (var x in v) BinInt(x);
        return v.Length switch { 1 => Tuple1(), 2 => Tuple2(), 3 => Tuple3(), _ => Tuple() };
    }

    /// <summary>
    /// _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) where the storage pickle
    /// is produced by <paramref name="storage"/>.
    /// </summary>
    public PickleBuilder Tensor(Action<PickleBuilder> storage, int offset, int[] size, int[] stride)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        storage(this);
        BinInt(offset).IntTuple(size).IntTuple(stride).False().Global("collections", "OrderedDict").EmptyTuple().Reduce();
        return Tuple().Reduce();
    }
}

/// <summary>Builds zip files shaped like torch.save output.</summary>
internal static class TorchZip
{
    public static void Write(string path, string archive, byte[]? dataPkl, IReadOnlyDictionary<string, byte[]>? storages = null,
                             string? byteorder = "little", string? version = "3\n")
    {
        using var fs = File.Create(path);
        using var zip = new ZipArchive(fs, ZipArchiveMode.Create);
        void Add(string name, byte[] content)
        {
            var e = zip.CreateEntry(archive + "/" + name, CompressionLevel.NoCompression);
            using var s = e.Open();
            s.Write(content);
        }
        if (dataPkl is not null) Add("data.pkl", dataPkl);
        if (byteorder is not null) Add("byteorder", Encoding.ASCII.GetBytes(byteorder));
        if (version is not null) Add("version", Encoding.ASCII.GetBytes(version));
        foreach (var (k, v) in storages ?? new Dictionary<string, byte[]>()) Add("data/" + k, v);
    }

    public static byte[] Floats(params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        return b;
    }
}

/// <summary>A scratch directory removed after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "qsvit-io-" + Guid.NewGuid().ToString("N"))).FullName;
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
