using Qsvit.IO;

namespace Qsvit.Tests.IO;

public class CheckpointErrorTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static QsvitException Fails(string path, bool strict = true)
    {
        var e = Assert.Throws<QsvitException>(() => CheckpointReader.Load(path, strict));
        Assert.Contains(path, e.Message);
        return e;
    }

    /// <summary>A one-tensor checkpoint {'model': {'w': tensor}}; the tensor needs <paramref name="numel"/> floats of storage '0'.</summary>
    private static byte[] OneTensorPickle(int numel = 4, int offset = 0, int? declared = null) =>
        new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict()
            .BinUnicode("w").Tensor(b => b.Storage("FloatStorage", "0", declared ?? numel + offset), offset, [numel], [1]).SetItem()
            .SetItem().Stop().ToArray();

    [Theory]
    [InlineData("posix", "system")]
    [InlineData("os", "system")]
    public void PickleCallingASystemFunctionIsRejectedBeforeAnythingRuns(string module, string name)
    {
        string path = _dir.File("evil.pth");
        var p = new PickleBuilder().Proto(2).Global(module, name).BinUnicode("touch /tmp/pwned").Tuple1().Reduce().Stop();
        TorchZip.Write(path, "evil", p.ToArray());
        var e = Fails(path);
        Assert.Contains($"pickle references global '{module}.{name}' which is not on the allow-list", e.Message);
        Assert.Contains("evil/data.pkl", e.Message);
    }

    [Fact]
    public void TruncatedCheckpoint()
    {
        string path = _dir.File("half.pth");
        var bytes = File.ReadAllBytes(CheckpointReaderTests.CifarPath);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Fails(path);
        Assert.Contains("not a readable zip archive", e.Message);
    }

    [Fact]
    public void ZipWithoutDataPkl()
    {
        string path = _dir.File("nopkl.pth");
        TorchZip.Write(path, "nopkl", dataPkl: null, new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1) });
        var e = Fails(path);
        Assert.Contains("no '<archive>/data.pkl' entry", e.Message);
        Assert.Contains("nopkl/byteorder", e.Message); // lists what the archive does hold
    }

    [Fact]
    public void MissingStorageEntry()
    {
        string path = _dir.File("nostorage.pth");
        TorchZip.Write(path, "nostorage", OneTensorPickle());
        var e = Fails(path);
        Assert.Contains("storage 'nostorage/data/0'", e.Message);
        Assert.Contains("'w'", e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void StorageShorterThanTheTensorNeeds()
    {
        string path = _dir.File("short.pth");
        TorchZip.Write(path, "short", OneTensorPickle(numel: 4, offset: 2), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1, 2, 3, 4) });
        var e = Fails(path, strict: false);
        Assert.Contains("holds 16 bytes but tensor 'w'", e.Message);
        Assert.Contains("needs 24 bytes", e.Message);

        // strict also checks the storage against the element count the pickle declares
        TorchZip.Write(path, "short", OneTensorPickle(numel: 2, declared: 4), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1, 2) });
        Assert.Contains("holds 8 bytes but the pickle declares 4 FloatStorage elements", Fails(path).Message);
        Assert.Equal([1f, 2f], CheckpointReader.Load(path, strict: false).State["w"].Data);
    }

    [Fact]
    public void CorruptStorageBytesFailTheCrcCheck()
    {
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
        Assert.Equal(0u, Crc32.Compute([]));

        string path = _dir.File("flipped.pth");
        var storage = TorchZip.Floats(1.25f, 2.5f, 3.75f, 5f);
        TorchZip.Write(path, "flipped", OneTensorPickle(), new Dictionary<string, byte[]> { ["0"] = storage });
        var bytes = File.ReadAllBytes(path);
        int at = bytes.AsSpan().IndexOf(storage);
        Assert.True(at > 0);
        bytes[at + 5] ^= 0x40; // one bit flipped inside the stored tensor data
        File.WriteAllBytes(path, bytes);
        var e = Fails(path);
        Assert.Contains("'flipped/data/0' is corrupt", e.Message);
        Assert.Contains("CRC-32", e.Message);
    }

    [Fact]
    public void BigEndianCheckpoint()
    {
        string path = _dir.File("big.pth");
        TorchZip.Write(path, "big", OneTensorPickle(), new Dictionary<string, byte[]> { ["0"] = new byte[16] }, byteorder: "big");
        var e = Fails(path);
        Assert.Contains("big-endian", e.Message);
        Assert.Contains("big/byteorder", e.Message);
    }

    [Fact]
    public void UnknownOpcodeAndEarlyEndInsideACheckpoint()
    {
        string path = _dir.File("badop.pth");
        TorchZip.Write(path, "badop", new PickleBuilder().Proto(2).EmptyDict().Raw(0xEE).Stop().ToArray());
        var e = Fails(path);
        Assert.Contains("unknown pickle opcode 0xee", e.Message);
        Assert.Contains("offset 3", e.Message);

        var full = OneTensorPickle();
        TorchZip.Write(path, "badop", full[..(full.Length - 10)]);
        Assert.Contains("ends early", Fails(path).Message);
    }

    [Fact]
    public void NoStateDictInside()
    {
        string path = _dir.File("nostate.pth");
        TorchZip.Write(path, "nostate", new PickleBuilder().Proto(2).EmptyDict().BinUnicode("epoch").BinInt1(3).SetItem().Stop().ToArray());
        var e = Fails(path);
        Assert.Contains("no state_dict found", e.Message);
        Assert.Contains("'epoch' (int)", e.Message);
    }

    [Fact]
    public void NonexistentPath()
    {
        string path = _dir.File("does-not-exist.pth");
        Assert.Contains("not found", Fails(path).Message);
        Assert.Contains("is a directory", Fails(_dir.Path).Message);
    }

    [Fact]
    public void RandomBytesEmptyFileAndLegacyPickle()
    {
        string path = _dir.File("random.bin");
        var bytes = new byte[1000];
        new Random(42).NextBytes(bytes);
        bytes[0] = 0x13; // not 'P', not 0x80
        bytes[8] = 0x00;
        File.WriteAllBytes(path, bytes);
        var e = Fails(path);
        Assert.Contains("unrecognised format", e.Message);
        Assert.Contains("13 ", e.Message); // shows the first bytes

        File.WriteAllBytes(path, []);
        Assert.Contains("empty", Fails(path).Message);

        File.WriteAllBytes(path, new PickleBuilder().Proto(2).EmptyDict().Stop().ToArray());
        Assert.Contains("legacy", Fails(path).Message);
    }
}
