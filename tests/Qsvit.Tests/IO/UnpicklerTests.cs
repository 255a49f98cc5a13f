using System.Numerics;
using Qsvit.IO.Pickle;
using Qsvit.Tensors;

namespace Qsvit.Tests.IO;

public class UnpicklerTests
{
    private static object? Load(PickleBuilder p) => Unpickler.Load(p.ToArray(), "test.pkl", new TorchPickleHost());

    private static QsvitException Fails(PickleBuilder p) => Assert.Throws<QsvitException>(() => Load(p));

    private static object? Get(PyDict d, string key)
    {
        Assert.True(d.TryGet(key, out var v), $"missing key {key}");
        return v;
    }

    [Fact]
    public void Protocol2_ContainersNumbersStrings()
    {
        var p = new PickleBuilder().Proto(2).EmptyDict().BinPut(0).Mark()
            .BinUnicode("list").EmptyList().BinPut(1).Mark().BinInt1(1).BinInt2(300).BinInt(-5).BinInt(int.MaxValue).Appends()
            .BinUnicode("tuple").BinInt1(7).BinUnicode("ü€").Tuple2()
            .BinUnicode("tuple3").None().True().False().Tuple3()
            .BinUnicode("empty").EmptyTuple()
            .BinUnicode("neg1").Long1(0xFF)
            .BinUnicode("neg32768").Long1(0x00, 0x80)
            .BinUnicode("pos128").Long1(0x80, 0x00)
            .BinUnicode("zero").Long1()
            .BinUnicode("big").Long1(0, 0, 0, 0, 0, 0, 0, 0, 1) // 2^64
            .BinUnicode("long4").Long4(0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF) // -2
            .BinUnicode("float").BinFloat(-1.25e-3)
            .BinUnicode("same").BinGet(1)
            .SetItems().Stop();

        var d = Assert.IsType<PyDict>(Load(p));
        Assert.Equal(["list", "tuple", "tuple3", "empty", "neg1", "neg32768", "pos128", "zero", "big", "long4", "float", "same"], d.Keys.Cast<string>());
        var list = Assert.IsType<List<object?>>(Get(d, "list"));
        Assert.Equal([1L, 300L, -5L, (long)int.MaxValue], list);
        var t = Assert.IsType<PyTuple>(Get(d, "tuple"));
        Assert.Equal(7L, t[0]);
        Assert.Equal("ü€", t[1]);
        Assert.Equal([null, true, false], Assert.IsType<PyTuple>(Get(d, "tuple3")).Items);
        Assert.Empty(Assert.IsType<PyTuple>(Get(d, "empty")).Items);
        Assert.Equal(-1L, Get(d, "neg1"));
        Assert.Equal(-32768L, Get(d, "neg32768"));
        Assert.Equal(128L, Get(d, "pos128"));
        Assert.Equal(0L, Get(d, "zero"));
        Assert.Equal(BigInteger.Pow(2, 64), Get(d, "big"));
        Assert.Equal(-2L, Get(d, "long4"));
        Assert.Equal(-1.25e-3, Get(d, "float"));
        Assert.Same(list, Get(d, "same")); // the memo hands back the same object, not a copy
    }

    [Fact]
    public void Protocol4_FramesMemoizeStackGlobalSetsBytes()
    {
        var body = new PickleBuilder()
            .EmptyDict().Memoize().Mark()
            .ShortBinUnicode("od").ShortBinUnicode("collections").Memoize().ShortBinUnicode("OrderedDict").Memoize().StackGlobal().Memoize()
                .EmptyTuple().Reduce().Memoize()
                .ShortBinUnicode("x").BinInt1(1).SetItem()
                .ShortBinUnicode("y").BinInt1(2).SetItem()
            .ShortBinUnicode("set").EmptySet().Memoize().Mark().BinInt1(3).BinInt1(4).BinInt1(3).AddItems()
            .ShortBinUnicode("frozen").Mark().ShortBinUnicode("a").ShortBinUnicode("b").FrozenSet()
            .ShortBinUnicode("bytes").ShortBinBytes(1, 2, 255)
            .ShortBinUnicode("bytes4").BinBytes(9)
            .BinUnicode8("long-name").LongBinPut(1000).LongBinGet(1000) // memo via 4-byte indices
            .BinUnicode8("again").BinGet(4) // the OrderedDict memoized fifth (0-based index 4)
            .SetItems().Stop().ToArray();
        var p = new PickleBuilder().Proto(4).Frame(body.Length).Raw(body);

        var d = Assert.IsType<PyDict>(Load(p));
        var od = Assert.IsType<PyDict>(Get(d, "od"));
        Assert.Equal("OrderedDict", od.TypeName);
        Assert.Equal(["x", "y"], od.Keys.Cast<string>());
        Assert.Equal([3L, 4L], Assert.IsType<PySet>(Get(d, "set")).Items);
        var frozen = Assert.IsType<PySet>(Get(d, "frozen"));
        Assert.True(frozen.Frozen);
        Assert.Equal(["a", "b"], frozen.Items);
        Assert.Equal(new byte[] { 1, 2, 255 }, Get(d, "bytes"));
        Assert.Equal(new byte[] { 9 }, Get(d, "bytes4"));
        Assert.Equal("long-name", Get(d, "long-name")); // the value is the key fetched back through LONG_BINGET
        Assert.Same(od, Get(d, "again"));
    }

    [Fact]
    public void Protocol0_TextOpcodes()
    {
        var p = new PickleBuilder().Mark()
            .Text('V', "int").Text('I', "42")
            .Text('V', "bool").Text('I', "01")
            .Text('V', "long").Text('L', "-123456789012345678901234567890L")
            .Text('V', "float").Text('F', "2.5")
            .Text('V', "str").Text('S', "'a\\nb\\x41'")
            .Text('V', "uni").Text('V', "caf\\u00e9")
            .Text('V', "list").Text('p', "7").Mark().Text('I', "1").Text('I', "2").List()
            .Text('V', "again").Text('g', "7")
            .Dict().Stop();
        var d = Assert.IsType<PyDict>(Load(p));
        Assert.Equal(42L, Get(d, "int"));
        Assert.Equal(true, Get(d, "bool"));
        Assert.Equal(BigInteger.Parse("-123456789012345678901234567890"), Get(d, "long"));
        Assert.Equal(2.5, Get(d, "float"));
        Assert.Equal("a\nbA", Get(d, "str"));
        Assert.Equal("café", Get(d, "uni"));
        Assert.Equal([1L, 2L], Assert.IsType<List<object?>>(Get(d, "list")));
        Assert.Equal("list", Get(d, "again")); // PUT 7 memoized the key string 'list'
    }

    [Fact]
    public void NamespaceCodecsBytesAndNumpyScalarsReadAsPlainValues()
    {
        // argparse.Namespace() + BUILD {...}; a protocol-2 bytes object via _codecs.encode;
        // numpy float64 / int64 / bool scalars via numpy.core.multiarray.scalar(dtype, bytes).
        static void Dtype(PickleBuilder b, string code) =>
            b.Global("numpy", "dtype").BinUnicode(code).False().True().Tuple3().Reduce()
             .Mark().BinInt1(3).BinUnicode(code == "b1" ? "|" : "<").None().None().None().BinInt(-1).BinInt(-1).BinInt1(0).Tuple().Build();
        static void Latin1(PickleBuilder b, params byte[] bytes) =>
            b.Global("_codecs", "encode").BinUnicode(new string(bytes.Select(x => (char)x).ToArray())).BinUnicode("latin1").Tuple2().Reduce();

        var p = new PickleBuilder().Proto(2)
            .Global("argparse", "Namespace").EmptyTuple().NewObj().EmptyDict().Mark()
            .BinUnicode("lr").Global("numpy.core.multiarray", "scalar");
        Dtype(p, "f8");
        Latin1(p, BitConverter.GetBytes(0.25));
        p.Tuple2().Reduce()
            .BinUnicode("steps").Global("numpy._core.multiarray", "scalar");
        Dtype(p, "i8");
        Latin1(p, BitConverter.GetBytes(-7L));
        p.Tuple2().Reduce()
            .BinUnicode("flag").Global("numpy.core.multiarray", "scalar");
        Dtype(p, "b1");
        Latin1(p, 1);
        p.Tuple2().Reduce()
            .BinUnicode("blob");
        Latin1(p, 0, 0x80, 0xFF);
        p.BinUnicode("dir").Global("pathlib", "PosixPath").BinUnicode("runs").BinUnicode("a").Tuple2().Reduce()
            .SetItems().Build().Stop();

        var ns = Assert.IsType<PyInstance>(Load(p));
        Assert.Equal("argparse.Namespace", ns.TypeName);
        var args = PlainValues.ToDictionary(ns.Attributes);
        Assert.Equal(0.25, args["lr"]);
        Assert.Equal(-7L, args["steps"]);
        Assert.Equal(true, args["flag"]);
        Assert.Equal(new byte[] { 0, 0x80, 0xFF }, args["blob"]);
        Assert.Equal("runs/a", args["dir"]);
    }

    [Fact]
    public void TensorWithStorageOffsetAndStrideIsGathered()
    {
        // storage: 12 floats 0..11; tensor = storage[1:].as_strided((2, 3), (1, 2)) → [[1,3,5],[2,4,6]]
        var p = new PickleBuilder().Proto(2)
            .Tensor(b => b.Storage("FloatStorage", "0", 12), offset: 1, size: [2, 3], stride: [1, 2]).Stop();
        var t = Assert.IsType<TorchTensorRef>(Load(p));
        Assert.False(t.IsContiguous);
        Assert.Equal(DType.F32, t.Storage.DType);
        Assert.Equal(7, t.Extent); // 1 + (2-1)*1 + (3-1)*2 + 1
        var tensor = t.Materialize(TorchZip.Floats(Enumerable.Range(0, 12).Select(i => (float)i).ToArray()));
        Assert.Equal([2, 3], tensor.Shape);
        Assert.Equal([1f, 3f, 5f, 2f, 4f, 6f], tensor.Data);
    }

    [Fact]
    public void ParameterAndNonFloatStridedStorages()
    {
        // _rebuild_parameter(_rebuild_tensor_v2(HalfStorage, 0, (2, 2), (1, 2)), True, OrderedDict())
        var p = new PickleBuilder().Proto(2).Global("torch._utils", "_rebuild_parameter").Mark()
            .Tensor(b => b.Storage("HalfStorage", "h", 4), 0, [2, 2], [1, 2])
            .True().Global("collections", "OrderedDict").EmptyTuple().Reduce().Tuple().Reduce().Stop();
        var t = Assert.IsType<TorchTensorRef>(Load(p));
        Assert.Equal(DType.F16, t.Storage.DType);
        var halves = new[] { (Half)1, (Half)2, (Half)3, (Half)0.5f }.SelectMany(h => BitConverter.GetBytes(h)).ToArray();
        Assert.Equal([1f, 3f, 2f, 0.5f], t.Materialize(halves).Data);

        // a 0-d LongStorage tensor (num_batches_tracked)
        var q = new PickleBuilder().Proto(2).Tensor(b => b.Storage("LongStorage", "n", 1), 0, [], []).Stop();
        var n = Assert.IsType<TorchTensorRef>(Load(q));
        var scalar = n.Materialize(BitConverter.GetBytes(4988L));
        Assert.Empty(scalar.Shape);
        Assert.Equal([4988f], scalar.Data);
    }

    [Theory]
    [InlineData("os", "system")]
    [InlineData("posix", "system")]
    [InlineData("builtins", "eval")]
    [InlineData("subprocess", "Popen")]
    public void GlobalsOffTheAllowListAreRejected(string module, string name)
    {
        var p = new PickleBuilder().Proto(2).Global(module, name).BinUnicode("echo pwned").Tuple1().Reduce().Stop();
        var e = Fails(p);
        Assert.Contains($"'{module}.{name}'", e.Message);
        Assert.Contains("allow-list", e.Message);
        Assert.Contains("test.pkl", e.Message);
        Assert.Contains("offset 2", e.Message);

        // the same through STACK_GLOBAL
        var q = new PickleBuilder().Proto(4).ShortBinUnicode(module).ShortBinUnicode(name).StackGlobal().Stop();
        Assert.Contains($"'{module}.{name}'", Fails(q).Message);
    }

    [Fact]
    public void MalformedStreamsGiveClearErrors()
    {
        var unknown = Fails(new PickleBuilder().Proto(2).Raw(0xFF).Stop());
        Assert.Contains("unknown pickle opcode 0xff", unknown.Message);
        Assert.Contains("offset 2", unknown.Message);

        var truncated = Fails(new PickleBuilder().Proto(2).Raw((byte)'X', 10, 0, 0, 0, (byte)'a', (byte)'b'));
        Assert.Contains("ends early", truncated.Message);
        Assert.Contains("BINUNICODE", truncated.Message);

        var noStop = Fails(new PickleBuilder().Proto(2).EmptyDict());
        Assert.Contains("without a STOP", noStop.Message);

        var hugeLength = Fails(new PickleBuilder().Proto(4).Raw(0x8d, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F));
        Assert.Contains("ends early", hugeLength.Message);

        Assert.Contains("memo index 5", Fails(new PickleBuilder().Proto(2).BinGet(5).Stop()).Message);
        Assert.Contains("stack underflow", Fails(new PickleBuilder().Proto(2).Tuple2().Stop()).Message);
        Assert.Contains("no MARK", Fails(new PickleBuilder().Proto(2).BinInt1(1).Tuple().Stop()).Message);
        Assert.Contains("extension", Fails(new PickleBuilder().Proto(2).Raw(0x82, 1).Stop()).Message);
        Assert.Contains("protocol 9", Fails(new PickleBuilder().Proto(9).None().Stop()).Message);
        Assert.Contains("unhashable list", Fails(new PickleBuilder().Proto(2).EmptyDict().EmptyList().None().SetItem().Stop()).Message);
        Assert.Contains("cannot append to a dict", Fails(new PickleBuilder().Proto(2).EmptyDict().None().Append().Stop()).Message);

        var deepKey = new PickleBuilder().Proto(2).EmptyDict().None();
        for (int i = 0; i < 5000; i++) deepKey.Tuple1();
        Assert.Contains("nested more than", Fails(deepKey.None().SetItem().Stop()).Message);
    }

    [Fact]
    public void BadTensorArgumentsAreRejected()
    {
        var badStride = new PickleBuilder().Proto(2)
            .Tensor(b => b.Storage("FloatStorage", "0", 4), 0, [2, 2], [1]).Stop();
        Assert.Contains("different ranks", Fails(badStride).Message);

        var badStorage = new PickleBuilder().Proto(2)
            .Tensor(b => b.Storage("ComplexFloatStorage", "0", 4), 0, [4], [1]).Stop();
        Assert.Contains("torch.ComplexFloatStorage", Fails(badStorage).Message);

        var notAStorage = new PickleBuilder().Proto(2).Tensor(b => b.BinUnicode("nope"), 0, [1], [1]).Stop();
        Assert.Contains("expected a storage", Fails(notAStorage).Message);
    }
}
