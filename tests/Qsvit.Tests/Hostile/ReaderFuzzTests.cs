using System.Buffers.Binary;
using CsCheck;
using Qsvit.IO;
using Qsvit.IO.Datasets;
using Qsvit.Tests.IO.Datasets;
using Qsvit.Tests.IO;
using Xunit.Abstractions;

namespace Qsvit.Tests.Hostile;

/// <summary>
/// Mutation fuzzing of the pickle, zip, safetensors and idx readers (issue 9): small valid files with bytes flipped,
/// set to boundary values, inserted, deleted, duplicated or cut, and 64-bit length fields overwritten. Every case must
/// load or end in a <see cref="QsvitException"/>, within its own time limit and in bounded memory. CI runs
/// <see cref="DefaultCases"/> cases per format; set QSVIT_FUZZ_CASES for a long run (and QSVIT_FUZZ_SEED to replay).
/// </summary>
public class ReaderFuzzTests(ITestOutputHelper output)
{
    private const int DefaultCases = 250;

    private static long Cases =>
        long.TryParse(Environment.GetEnvironmentVariable("QSVIT_FUZZ_CASES"), out long n) && n > 0 ? n : DefaultCases;

    private static string? Seed => Environment.GetEnvironmentVariable("QSVIT_FUZZ_SEED");

    /// <summary>A mutated file: which seed file, and the edits applied in order.</summary>
    public sealed record Case(int SeedFile, Edit[] Edits)
    {
        public override string ToString() => $"seed file {SeedFile}: {string.Join("; ", Edits.Select(e => e.ToString()))}";
    }

    public sealed record Edit(int Kind, int Position, long Value);

    private static readonly long[] Boundary =
        [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, int.MaxValue, 1L << 31, uint.MaxValue, 1L << 32, 1L << 62, long.MaxValue, long.MinValue];

    private static Gen<Case> Cases_(int seedFiles) =>
        Gen.Select(Gen.Int[0, seedFiles - 1],
                   Gen.Select(Gen.Int[0, 7], Gen.Int[0, int.MaxValue], Gen.Long, (k, p, v) => new Edit(k, p, v)).Array[1, 5],
                   (s, e) => new Case(s, e));

    internal static byte[] Apply(byte[] seed, Edit[] edits)
    {
        var b = new List<byte>(seed);
        foreach (var e in edits)
        {
            int at = b.Count == 0 ? 0 : e.Position % b.Count;
            int span = (int)((ulong)e.Value % 16) + 1;
            switch (e.Kind)
            {
                case 0 when b.Count > 0: b[at] ^= (byte)(e.Value | 1); break;                                    // flip bits
                case 1 when b.Count > 0: b[at] = (byte)Boundary[(ulong)e.Value % (ulong)Boundary.Length]; break;   // boundary byte
                case 2: b.RemoveRange(at, b.Count - at); break;                                                   // cut
                case 3: b.InsertRange(at, BitConverter.GetBytes(e.Value).Take(span % 9)); break;                  // insert
                case 4: b.RemoveRange(at, Math.Min(span, b.Count - at)); break;                                   // delete
                case 5: b.InsertRange(at, b.Skip(at).Take(span * 4).ToList()); break;                             // duplicate
                case 6 or 7:                                                                                      // a 32/64-bit field
                    {
                        long v = Boundary[(ulong)e.Value % (ulong)Boundary.Length];
                        var bytes = new byte[8];
                        if (e.Kind == 6) BinaryPrimitives.WriteInt64LittleEndian(bytes, v); else BinaryPrimitives.WriteInt64BigEndian(bytes, v);
                        var field = e.Kind == 6 ? bytes.AsSpan(0, e.Value % 2 == 0 ? 8 : 4) : bytes.AsSpan(e.Value % 2 == 0 ? 0 : 4);
                        for (int i = 0; i < field.Length && at + i < b.Count; i++) b[at + i] = field[i];
                        break;
                    }
            }
        }
        return b.ToArray();
    }

    private void Fuzz(string format, byte[][] seeds, Action<byte[]> read)
    {
        foreach (var s in seeds) Guarded.Accepts(() => read(s));   // the seeds themselves are valid
        long cases = Cases, refused = 0, maxAllocated = 0;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Cases_(seeds.Length).Sample(c =>
        {
            var bytes = Apply(seeds[c.SeedFile], c.Edits);
            var (error, allocated) = Guarded.Run(() => read(bytes), TimeSpan.FromSeconds(30));
            if (allocated > 64 * Guarded.MiB) throw new Xunit.Sdk.XunitException($"{format}: a {bytes.Length}-byte file allocated {allocated:N0} bytes");
            if (error is not null) Interlocked.Increment(ref refused);
            long seen;
            while (allocated > (seen = Interlocked.Read(ref maxAllocated)) && Interlocked.CompareExchange(ref maxAllocated, allocated, seen) != seen) { }
        }, writeLine: output.WriteLine, seed: Seed, iter: cases, print: c => c.ToString());
        output.WriteLine($"{format}: {cases} mutated files in {watch.Elapsed.TotalSeconds:F1} s: {cases - refused} loaded, {refused} refused with a QsvitException, " +
                         $"none hung or threw anything else; most allocated by one case {maxAllocated:N0} bytes");
    }

    // ------------------------------------------------------------------ seed files

    /// <summary>A checkpoint pickle with the usual variety: OrderedDict, views sharing a storage, half storage, a Namespace of args, memo use.</summary>
    internal static byte[] CheckpointPickle()
    {
        var p = new PickleBuilder().Proto(2).EmptyDict()
            .BinUnicode("model").Global("collections", "OrderedDict").EmptyTuple().Reduce().BinPut(0)
            .BinUnicode("a").Tensor(b => b.Storage("FloatStorage", "0", 6), 0, [2, 3], [3, 1]).SetItem()
            .BinUnicode("b").Tensor(b => b.Storage("FloatStorage", "0", 6), 1, [2, 2], [1, 3]).SetItem()
            .BinUnicode("h").Tensor(b => b.Storage("HalfStorage", "1", 2), 0, [2], [1]).SetItem()
            .SetItem()
            .BinUnicode("args").Global("argparse", "Namespace").EmptyTuple().NewObj().EmptyDict()
            .BinUnicode("lr").BinFloat(0.001).SetItem()
            .BinUnicode("dims").EmptyList().Mark().BinInt1(1).BinInt2(300).BinInt(-5).Appends().SetItem()
            .BinUnicode("pair").BinInt1(1).ShortBinUnicode("x").Tuple2().BinPut(1).SetItem()
            .BinUnicode("again").BinGet(1).SetItem()
            .BinUnicode("set").Mark().BinInt1(1).BinInt1(2).FrozenSet().SetItem()
            .BinUnicode("big").Long1(0, 0, 0, 0, 0, 0, 0, 0, 1).SetItem()
            .BinUnicode("none").None().SetItem()
            .Build().SetItem()
            .BinUnicode("epoch").BinInt1(3).SetItem()
            .BinInt1(1).BinInt1(2).Tuple2().BinUnicode("tuple key").SetItem()
            .Stop();
        return p.ToArray();
    }

    private static readonly Dictionary<string, byte[]> Storages = new()
    {
        ["0"] = TorchZip.Floats(1, 2, 3, 4, 5, 6),
        ["1"] = [0x00, 0x3C, 0x00, 0x40],   // half 1, 2
    };

    private static byte[] Zip(byte[] pickle, bool deflate = false) => RawZip.Build(
        new("arch/data.pkl", pickle, Deflate: deflate),
        new("arch/byteorder", "little"u8.ToArray()),
        new("arch/data/0", Storages["0"]),
        new("arch/data/1", Storages["1"], Deflate: deflate),
        new("arch/version", "3\n"u8.ToArray()));

    private static void LoadZip(byte[] zip) => TorchZipReader.Load("fuzz.pth", "/fuzz.pth", new MemoryStream(zip), strict: true);

    [Fact]
    public void PickleReader() => Fuzz("pickle", [CheckpointPickle()], pkl => LoadZip(Zip(pkl)));

    [Fact]
    public void ZipReader() => Fuzz("zip", [Zip(CheckpointPickle()), Zip(CheckpointPickle(), deflate: true)], LoadZip);

    [Fact]
    public void SafeTensorsReader()
    {
        using var dir = new IO.TempDir();
        var state = new StateDict();
        state.Set("a", new Qsvit.Tensors.Tensor([1, 2, 3, 4, 5, 6], [2, 3]));
        state.Set("h", new Qsvit.Tensors.Tensor([1, 2], [2]), Qsvit.Tensors.DType.F16);
        state.Set("i", new Qsvit.Tensors.Tensor([7], [1]), Qsvit.Tensors.DType.I64);
        string path = dir.File("seed.safetensors");
        SafeTensors.Write(path, state, new Dictionary<string, string> { ["epoch"] = "3", ["note"] = "ünïcode" });
        Fuzz("safetensors", [File.ReadAllBytes(path)], b => SafeTensors.ReadCore(new MemoryStream(b), "safetensors 'fuzz'"));
    }

    /// <summary>Not in the issue's list, but a hang here would stall a whole ImageNet evaluation: the image decoder too.</summary>
    [Fact]
    public void ImageDecoder_()
    {
        var png = TestFiles.Png(TestFiles.Pattern(6, 5, 3), 6, 5, 3);
        byte[] ppm = [.. "P6 4 3 255\n"u8.ToArray(), .. TestFiles.Noise(36, 4)];
        // Real encoder output too: a progressive 4:2:2 file and a progressive one with restart markers.
        byte[] Fixture(string name) => File.ReadAllBytes(RepoPaths.Combine("tests", "fixtures", "jpeg", name));
        Fuzz("image", [HostileDatasetTests.Jpeg16(), png, ppm, HostileDatasetTests.Bmp(TestFiles.Noise(4 * 3 * 3, 5), 4, 3),
                Fixture("s37x23_q95_sub1_prog.jpg"), Fixture("x_prog_rst2_50x38.jpg")],
            b => ImageDecoder.DecodeRgb(b, "fuzz.img"));
    }

    [Fact]
    public void IdxReader()
    {
        var raw = TestFiles.Idx([3, 4, 5], TestFiles.Noise(60, 1));
        Fuzz("idx", [raw, TestFiles.Gzip(raw)],
            b => IdxDataset.ReadIdx(new MemoryStream(b), "fuzz-images-idx3-ubyte", IdxDataset.ImagesMagic, 3, "images"));
    }
}
