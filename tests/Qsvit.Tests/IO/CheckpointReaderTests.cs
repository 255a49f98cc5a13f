using Qsvit.IO;
using Qsvit.Tensors;
using Xunit.Abstractions;

namespace Qsvit.Tests.IO;

public class CheckpointReaderTests(ITestOutputHelper output)
{
    internal static readonly string CifarPath = RepoPaths.Combine("models", "sdtv2-cifar10", "sdtv2_cifar10_w32-192_T4.pth");
    internal static readonly string ParityPath = RepoPaths.Combine("tests", "fixtures", "parity", "parity_sdtv2_w32-160_kd.pth");

    private void Print(Checkpoint c)
    {
        output.WriteLine($"{c.Path}: {c.Format}, {c.State.Count} tensors, epoch {c.Epoch?.ToString() ?? "-"}");
        foreach (var (k, v) in c.Args)
            output.WriteLine($"  args.{k} = {Render(v)} ({v?.GetType().Name ?? "null"})");
    }

    private static string Render(object? v) => v switch
    {
        null => "None",
        List<object?> l => "[" + string.Join(", ", l.Select(Render)) + "]",
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    private static double Sum(Tensor t) => t.Data.Sum(x => (double)x);

    [Fact]
    public void LoadsTheCifarCheckpoint()
    {
        var c = CheckpointReader.Load(CifarPath);
        Print(c);
        Assert.Equal("pth", c.Format);
        Assert.Equal(Path.GetFullPath(CifarPath), c.Path);
        Assert.Equal(17, c.Epoch);

        var s = c.State;
        Assert.Equal(825, s.Count);
        Assert.Equal("downsample1_1.encode_conv.weight", s.Keys[0]);
        Assert.Equal("head.bias", s.Keys[^1]);
        Assert.Equal(3945359L, s.Sum(kv => (long)kv.Value.Length));

        var conv = s["downsample1_1.encode_conv.weight"];
        Assert.Equal([16, 3, 7, 7], conv.Shape);
        Assert.Equal(DType.F32, s.StoredType("downsample1_1.encode_conv.weight"));
        Assert.Equal([0.002239146502688527f, 0.040667999535799026f, -0.0686044991016388f], conv.Data[..3]);
        Assert.Equal(-0.4544350853211654, Sum(conv), 9);

        Assert.Equal([10, 192], s["head.weight"].Shape);
        Assert.Equal(-7.945280490680489, Sum(s["head.weight"]), 9);
        Assert.Equal([10], s["head.bias"].Shape);
        Assert.Equal(0.001404876122251153f, s["head.bias"].Data[0]);

        var nbt = s.Keys.Where(k => k.EndsWith("num_batches_tracked", StringComparison.Ordinal)).ToList();
        Assert.Equal(133, nbt.Count);
        Assert.All(nbt, k => Assert.Equal(DType.I64, s.StoredType(k)));
        Assert.All(nbt, k => Assert.Empty(s[k].Shape));
        Assert.Equal(4988f, s["downsample1_1.encode_bn.num_batches_tracked"].Data[0]);
        Assert.Equal(825 - 133, s.Keys.Count(k => s.StoredType(k) == DType.F32));

        Assert.Equal("metaspikformer_cifar", c.Args["model"]);
        Assert.Equal(32L, c.Args["input_size"]);
        Assert.Equal(10L, c.Args["nb_classes"]);
        Assert.Equal(4L, c.Args["time_steps"]);
        Assert.Equal(false, c.Args["kd"]);
        Assert.Equal(0.002, c.Args["lr"]);
        Assert.Equal([32L, 64L, 128L, 192L], Assert.IsType<List<object?>>(c.Args["embed_dim"]));
        Assert.Equal([0.4914, 0.4822, 0.4465], Assert.IsType<List<object?>>(c.Args["mean"]));
    }

    [Fact]
    public void LoadsTheParityCheckpoint()
    {
        var c = CheckpointReader.Load(ParityPath);
        Print(c);
        var s = c.State;
        Assert.Equal(827, s.Count);
        Assert.Equal(0, c.Epoch);
        Assert.Equal([1000, 160], s["head_kd.weight"].Shape);
        Assert.Equal([1000, 160], s["head.weight"].Shape);
        Assert.Equal([1000], s["head_kd.bias"].Shape);
        Assert.Equal(-0.01626284420490265f, s["head_kd.weight"].Data[0]);
        Assert.Equal(5.910826267002051, Sum(s["head_kd.weight"]), 9);
        Assert.Equal([16, 3, 7, 7], s["downsample1_1.encode_conv.weight"].Shape);
        Assert.Equal(3f, s["downsample1_1.encode_bn.num_batches_tracked"].Data[0]);
        Assert.Equal(133, s.Keys.Count(k => s.StoredType(k) == DType.I64));
        Assert.DoesNotContain("_metadata", s.Keys); // the OrderedDict's BUILD state is not a tensor entry

        Assert.Equal(true, c.Args["kd"]);
        Assert.Null(c.Args["lr"]);
        Assert.Equal(0.0006, c.Args["blr"]);
        Assert.Equal(1234L, c.Args["seed"]);
        Assert.Equal(1000L, c.Args["nb_classes"]);
    }

    [Fact]
    public void SyntheticCheckpoint_StridesSharedStoragesDTypesAndDataParallelPrefix()
    {
        using var dir = new TempDir();
        string path = dir.File("synthetic.pt");
        // {'state_dict': OrderedDict(module.a: strided view of storage 0, module.b: another view of storage 0,
        //                            module.h: half tensor, module.n: 0-d long), 'epoch': 5, 'args': {'lr': 0.5}}
        var p = new PickleBuilder().Proto(2).EmptyDict().BinPut(0).Mark()
            .BinUnicode("optimizer").EmptyDict() // tolerated and ignored
            .BinUnicode("state_dict").Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
                .BinUnicode("module.a").Tensor(b => b.Storage("FloatStorage", "0", 12).BinPut(10), 1, [2, 3], [1, 2])
                .BinUnicode("module.b").Global("torch._utils", "_rebuild_parameter").Mark()
                    .Tensor(b => b.BinGet(10), 6, [3], [2]).True().Global("collections", "OrderedDict").EmptyTuple().Reduce()
                    .Tuple().Reduce()
                .BinUnicode("module.h").Tensor(b => b.Storage("HalfStorage", "1", 2), 0, [2], [1])
                .BinUnicode("module.n").Tensor(b => b.Storage("LongStorage", "2", 1), 0, [], [])
                .SetItems()
            .BinUnicode("epoch").BinInt1(5)
            .BinUnicode("args").EmptyDict().BinUnicode("lr").BinFloat(0.5).SetItem()
            .SetItems().Stop();
        TorchZip.Write(path, "synthetic", p.ToArray(), new Dictionary<string, byte[]>
        {
            ["0"] = TorchZip.Floats(Enumerable.Range(0, 12).Select(i => (float)i).ToArray()),
            ["1"] = [.. BitConverter.GetBytes((Half)1.5f), .. BitConverter.GetBytes((Half)(-2f))],
            ["2"] = BitConverter.GetBytes(-3L),
        });

        var c = CheckpointReader.Load(path);
        Assert.Equal(["a", "b", "h", "n"], c.State.Keys);
        Assert.Equal([2, 3], c.State["a"].Shape);
        Assert.Equal([1f, 3f, 5f, 2f, 4f, 6f], c.State["a"].Data);
        Assert.Equal([6f, 8f, 10f], c.State["b"].Data);
        Assert.Equal([1.5f, -2f], c.State["h"].Data);
        Assert.Equal(DType.F16, c.State.StoredType("h"));
        Assert.Equal([-3f], c.State["n"].Data);
        Assert.Equal(DType.I64, c.State.StoredType("n"));
        Assert.Equal(5, c.Epoch);
        Assert.Equal(0.5, c.Args["lr"]);
    }

    [Fact]
    public void BareStateDictAtTopLevelIsAccepted()
    {
        using var dir = new TempDir();
        string path = dir.File("bare.pth");
        var p = new PickleBuilder().Proto(2).Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .BinUnicode("w").Tensor(b => b.Storage("FloatStorage", "0", 2), 0, [2], [1])
            .SetItems().Stop();
        TorchZip.Write(path, "bare", p.ToArray(), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(7, 8) });
        var c = CheckpointReader.Load(path);
        Assert.Equal([7f, 8f], c.State["w"].Data);
        Assert.Empty(c.Args);
        Assert.Null(c.Epoch);
    }

    [Fact]
    public void NonTensorStateDictEntries_StrictRejects_LenientSkips()
    {
        using var dir = new TempDir();
        string path = dir.File("mixed.pth");
        var p = new PickleBuilder().Proto(2).EmptyDict().BinUnicode("model").EmptyDict().Mark()
            .BinUnicode("w").Tensor(b => b.Storage("FloatStorage", "0", 1), 0, [1], [1])
            .BinUnicode("note").BinUnicode("not a tensor")
            .SetItems().SetItem().Stop();
        TorchZip.Write(path, "mixed", p.ToArray(), new Dictionary<string, byte[]> { ["0"] = TorchZip.Floats(1) });
        var e = Assert.Throws<QsvitException>(() => CheckpointReader.Load(path));
        Assert.Contains("'note'", e.Message);
        Assert.Contains("expected a tensor", e.Message);
        Assert.Contains(path, e.Message);
        var c = CheckpointReader.Load(path, strict: false);
        Assert.Equal(["w"], c.State.Keys);
    }
}
