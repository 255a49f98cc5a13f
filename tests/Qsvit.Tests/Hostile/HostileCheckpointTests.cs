using System.Text;
using Qsvit.IO;
using Qsvit.Tests.IO;

namespace Qsvit.Tests.Hostile;

/// <summary>Issue 9, checkpoints: every hostile .pth is refused (or read) fast, in bounded memory, with a QsvitException.</summary>
public class HostileCheckpointTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>{'model': {'w': 4-float tensor}, ...: the caller adds more top-level items, then Stop.</summary>
    private static PickleBuilder Checkpoint() =>
        new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict()
            .BinUnicode("w").Tensor(b => b.Storage("FloatStorage", "0", 4), 0, [4], [1]).SetItem().SetItem();

    /// <summary>{'model': {'w': _rebuild_tensor_v2(storage, offset, size, stride, ...)}} with the storage and offset pushed by the caller.</summary>
    private static PickleBuilder WithTensor(Action<PickleBuilder> storage, Action<PickleBuilder> offset, int[] size, int[] stride)
    {
        var p = new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict().BinUnicode("w");
        p.Global("torch._utils", "_rebuild_tensor_v2").Mark();
        storage(p);
        offset(p);
        p.IntTuple(size).IntTuple(stride).False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce();
        return p.SetItem().SetItem();
    }

    private static Action<PickleBuilder> FloatStorage(Action<PickleBuilder> numel) => b =>
    {
        b.Mark().BinUnicode("storage").Global("torch", "FloatStorage").BinUnicode("0").BinUnicode("cpu");
        numel(b);
        b.Tuple().BinPersId();
    };

    private static byte[] Le(long v) => BitConverter.GetBytes(v);

    private string Write(PickleBuilder p, int storageFloats = 4)
    {
        string path = _dir.File(Guid.NewGuid().ToString("N") + ".pth");
        TorchZip.Write(path, "arch", p.ToArray(), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(new float[storageFloats]) });
        return path;
    }

    private static QsvitException Refused(string path, long maxAllocated = 64 * Guarded.MiB, bool strict = true)
    {
        var (e, allocated) = Guarded.Refuses(() => CheckpointReader.Load(path, strict));
        Assert.Contains(path, e.Message);
        Assert.True(e.Message.Length < 2000, $"message of {e.Message.Length} chars");
        Assert.True(allocated < maxAllocated, $"allocated {allocated:N0} bytes");
        return e;
    }

    private static Checkpoint Loaded(string path, long maxAllocated = 256 * Guarded.MiB)
    {
        Checkpoint? c = null;
        long allocated = Guarded.Accepts(() => c = CheckpointReader.Load(path));
        Assert.True(allocated < maxAllocated, $"allocated {allocated:N0} bytes");
        return c!;
    }

    // 1. Stack overflow: the nested call is unwrapped in a loop, so any depth reads as the plain tensor it wraps.
    [Fact]
    public void RebuildFromTypeNested100000DeepReadsWithoutRecursion()
    {
        const int depth = 100_000;
        var p = new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict().BinUnicode("w")
            .Global("torch", "Tensor").Memoize().Pop()                          // memo 0
            .Global("torch._tensor", "_rebuild_from_type_v2").Memoize();        // memo 1, the outer callable
        for (int i = 0; i < depth - 1; i++) p.Mark().BinGet(1).BinGet(0);        // (func=_rebuild_from_type_v2, Tensor, args=(...
        p.Mark().Global("torch._utils", "_rebuild_tensor_v2").BinGet(0)
            .Mark().Storage("FloatStorage", "0", 4).BinInt(0).IntTuple(4).IntTuple(1).False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple()
            .EmptyDict().Tuple();
        for (int i = 0; i < depth - 1; i++) p.EmptyDict().Tuple();              // ..., state)
        p.Reduce().SetItem().SetItem().Stop();
        var c = Loaded(Write(p));
        Assert.Equal([4], c.State["w"].Shape);
    }

    // 2. Shared structure: hashing and comparing a DAG key walks each node once.
    [Fact]
    public void DictKeysOf64LevelsOfSharedTuplesHashAndCompareInLinearWork()
    {
        static PickleBuilder SharedTuple(PickleBuilder p, int levels)
        {
            p.BinInt1(1);
            for (int i = 0; i < levels; i++) p.Dup().Tuple2();   // (x, x): 2^levels paths, levels + 1 nodes
            return p;
        }
        var p = Checkpoint();
        SharedTuple(p, 64).BinInt1(0).SetItem();
        SharedTuple(p, 64).BinInt1(1).SetItem();   // equal to the first key, but built separately: a full comparison
        Loaded(Write(p.Stop()));
    }

    [Fact]
    public void ArgsOf40LevelsOfSharedTuplesAreRefusedByTheValueBudget()
    {
        var p = Checkpoint().BinUnicode("args").EmptyDict().BinUnicode("deep").BinInt1(1);
        for (int i = 0; i < 40; i++) p.Dup().Tuple2();
        p.SetItem().SetItem().Stop();
        var e = Refused(Write(p));
        Assert.Contains("entry 'args' cannot be read", e.Message);
        Assert.Contains("more than 100,000 values", e.Message);
    }

    // 3. Set equality through the hash index, not every element against every element.
    [Fact]
    public void TwoEqual100000ElementFrozensetKeysCompareInLinearWork()
    {
        const int n = 100_000;
        var p = Checkpoint();
        p.Mark();
        for (int i = 0; i < n; i++) p.BinInt(i);
        p.FrozenSet().BinInt1(0).SetItem();
        p.Mark();
        for (int i = n - 1; i >= 0; i--) p.BinInt(i);
        p.FrozenSet().BinInt1(1).SetItem();
        Loaded(Write(p.Stop()));
    }

    // 4. Huge integers: capped when read, never formatted into a message.
    [Fact]
    public void TwoMegabyteIntegerIsRefusedWhenRead()
    {
        var big = new byte[2_000_000];
        big[^1] = 0x01;
        var e = Refused(Write(WithTensor(FloatStorage(b => b.BinInt(4)), b => b.Long4(big), [4], [1]).Stop()));
        Assert.Contains("LONG4 integer of 2000000 bytes is larger than the 1786-byte limit", e.Message);
    }

    [Fact]
    public void FourHundredKilobyteTextIntegerIsRefusedWhenRead()
    {
        var e = Refused(Write(WithTensor(FloatStorage(b => b.BinInt(4)), b => b.Text('I', new string('7', 400_000)), [4], [1]).Stop()));
        Assert.Contains("exceeds the 4300-digit integer limit", e.Message);
    }

    [Fact]
    public void LargestIntegerAllowedIsDescribedBySizeNotDigits()
    {
        var big = new byte[1786];
        big[^1] = 0x01;
        var e = Refused(Write(WithTensor(FloatStorage(b => b.BinInt(4)), b => b.Long4(big), [4], [1]).Stop()));
        Assert.Contains("argument 'storage_offset' is a int of 14281 bits", e.Message);
    }

    [Fact]
    public void MegabyteNamesAreShortenedInMessages()
    {
        string huge = new('x', 4_000_000);
        var global = new PickleBuilder().Proto(2).Global(huge, "system").EmptyTuple().Reduce().Stop();
        Assert.Contains("… (4,000,007 chars)", Refused(Write(global)).Message);   // Refused also checks the length
        var key = new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict()
            .BinUnicode("w").Tensor(b => b.Storage("FloatStorage", "0", 4), 0, [4], [1]).SetItem()
            .BinUnicode(huge).BinInt1(1).SetItem().SetItem().Stop();
        Assert.Contains("… (4,000,000 chars)", Refused(Write(key)).Message);
    }

    // 5. Checked geometry: nothing wraps past the bounds check.
    [Theory]
    [InlineData(long.MaxValue, 1, 1)]                 // end of tensor = offset + 1 wraps
    [InlineData(long.MaxValue - 8, 4, 1)]             // offset + 3 * stride + 1 wraps
    [InlineData(0, 3, long.MaxValue / 2)]              // (size - 1) * stride wraps
    [InlineData(long.MaxValue / 4, 1, 1)]              // the end in bytes (x 4) wraps
    public void StorageOffsetOrStrideThatOverflowsIsAClearError(long offset, int size, long stride)
    {
        var p = new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict().BinUnicode("w")
            .Global("torch._utils", "_rebuild_tensor_v2").Mark().Storage("FloatStorage", "0", 4).Long1(Le(offset)).IntTuple(size)
            .Long1(Le(stride)).Tuple1().False().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce().SetItem().SetItem().Stop();
        var e = Refused(Write(p));
        Assert.Contains("overflows", e.Message);
    }

    [Fact]
    public void StorageOf2Pow62ElementsIsRefusedInAStrictLoad()
    {
        var e = Refused(Write(WithTensor(FloatStorage(b => b.Long1(Le(1L << 62))), b => b.BinInt(0), [4], [1]).Stop()));
        Assert.Contains("declares 4611686018427387904 FloatStorage elements, more bytes than any file can hold", e.Message);
    }

    // 6. Sizes declared by the archive: checked against what it holds before anything is allocated.
    private static byte[] Pickle4() => Checkpoint().Stop().ToArray();

    private string WriteZip(params RawZip.Entry[] entries)
    {
        string path = _dir.File(Guid.NewGuid().ToString("N") + ".pth");
        File.WriteAllBytes(path, RawZip.Build(entries));
        return path;
    }

    [Fact]
    public void StorageDeclaring2GigabytesButHolding48BytesAllocatesNothing()
    {
        var e = Refused(WriteZip(new("arch/data.pkl", Pickle4()), new("arch/data/0", new byte[48], DeclaredSize: 1u << 31)),
            maxAllocated: 4 * Guarded.MiB);
        Assert.Contains("declares 2147483648 bytes from 48 compressed bytes", e.Message);
    }

    [Fact]
    public void PickleDeclaring2GigabytesButHolding48BytesAllocatesNothing()
    {
        var e = Refused(WriteZip(new("arch/data.pkl", Pickle4(), Deflate: true, DeclaredSize: 1u << 31), new("arch/data/0", new byte[16])),
            maxAllocated: 4 * Guarded.MiB);
        Assert.Contains("arch/data.pkl", e.Message);
    }

    [Fact]
    public void DeflateBombAfterThePicklesEndIsRefusedBeforeInflating()
    {
        var pkl = Pickle4();
        var bomb = new byte[pkl.Length + (64 << 20)];   // 64 MiB of zeros after STOP: about 1000:1
        pkl.CopyTo(bomb, 0);
        var e = Refused(WriteZip(new("arch/data.pkl", bomb, Deflate: true), new("arch/data/0", new byte[16])), maxAllocated: 4 * Guarded.MiB);
        Assert.Contains("zip bomb", e.Message);
    }

    [Fact]
    public void OnlyTheStorageBytesTheTensorsUseAreKept()
    {
        // A 32 MiB storage of which the tensor uses 16 bytes: the rest is streamed through the CRC, not allocated.
        string path = WriteZip(new("arch/data.pkl", Pickle4()), new("arch/data/0", new byte[32 << 20]));
        var c = Loaded(path, maxAllocated: 2 * Guarded.MiB);
        Assert.Equal([4], c.State["w"].Shape);
    }

    [Fact]
    public void CorruptStorageBeyondTheUsedBytesIsStillCaughtByTheCrc()
    {
        var data = new byte[1 << 20];
        var zip = RawZip.Build(new("arch/data.pkl", Pickle4()), new("arch/data/0", data));
        int at = Encoding.ASCII.GetBytes(Encoding.ASCII.GetString(zip)).AsSpan().IndexOf("arch/data/0"u8) + "arch/data/0".Length + 1000;
        zip[at] ^= 0x55;   // inside the storage, past the 16 bytes the tensor reads
        string path = _dir.File("crc.pth");
        File.WriteAllBytes(path, zip);
        Assert.Contains("CRC-32", Refused(path).Message);
    }
}
