using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Qsvit.IO;
using Qsvit.Tensors;

namespace Qsvit.Tests.IO;

public class SafeTensorsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Blob(string json, byte[] data, ulong? headerLength = null)
    {
        var header = Encoding.UTF8.GetBytes(json);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, headerLength ?? (ulong)header.Length);
        return [.. length, .. header, .. data];
    }

    private static string HeaderOf(string path, out ulong length)
    {
        var bytes = File.ReadAllBytes(path);
        length = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return Encoding.UTF8.GetString(bytes, 8, (int)length);
    }

    [Fact]
    public void CifarStateDictRoundTripsBitExactly()
    {
        var source = CheckpointReader.Load(CheckpointReaderTests.CifarPath);
        string path = _dir.File("cifar.safetensors");
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["epoch"] = "17", ["note"] = "ünïcode \"quoted\"" };
        SafeTensors.Write(path, source.State, metadata);

        var (state, meta) = SafeTensors.Read(path);
        Assert.Equal(source.State.Keys, state.Keys);
        foreach (var key in source.State.Keys)
        {
            Assert.Equal(source.State.StoredType(key), state.StoredType(key));
            Assert.Equal(source.State[key].Shape, state[key].Shape);
            Assert.True(MemoryMarshal.AsBytes(source.State[key].Data.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(state[key].Data.AsSpan())), key);
        }
        Assert.Equal(metadata.ToList(), meta.ToList());

        // header padded with spaces so the data starts 8-byte aligned, tensors in state_dict order
        var header = HeaderOf(path, out ulong n);
        Assert.Equal(0UL, n % 8);
        Assert.StartsWith("{\"__metadata__\":", header);
        Assert.True(header.IndexOf("\"downsample1_1.encode_conv.weight\"", StringComparison.Ordinal) < header.IndexOf("\"head.bias\"", StringComparison.Ordinal));
        Assert.Contains("\"downsample1_1.encode_bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[]", header);

        var c = CheckpointReader.Load(path);
        Assert.Equal("safetensors", c.Format);
        Assert.Equal(17, c.Epoch);
        Assert.Equal("pt", c.Args["format"]);
        Assert.Equal(825, c.State.Count);
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.tmp"));
    }

    [Fact]
    public void DTypesRoundTrip()
    {
        float h1 = 1f + MathF.Pow(2, -11), h3 = 1f + 3 * MathF.Pow(2, -11); // ties in half precision
        float b1 = 1f + MathF.Pow(2, -8), b3 = 1f + 3 * MathF.Pow(2, -8);   // ties in bfloat16
        var cases = new (DType Type, float[] In, float[] Out)[]
        {
            (DType.F16, [0f, 1f, -2f, 65504f, 0.1f, h1, h3], [0f, 1f, -2f, 65504f, (float)(Half)0.1f, 1f, 1f + MathF.Pow(2, -9)]),
            (DType.BF16, [1f, b1, b3, -0f, float.PositiveInfinity, float.MaxValue, 3.140625f], [1f, 1f, 1f + MathF.Pow(2, -6), -0f, float.PositiveInfinity, float.PositiveInfinity, 3.140625f]),
            (DType.F64, [0.1f, -1e-30f, 3e38f], [0.1f, -1e-30f, 3e38f]),
            (DType.I64, [-1099511627776f, 16777216f, 4988f, 0f], [-1099511627776f, 16777216f, 4988f, 0f]),
            (DType.I32, [-2147483648f, 123f], [-2147483648f, 123f]),
            (DType.I16, [-32768f, 32767f], [-32768f, 32767f]),
            (DType.I8, [-128f, 127f, 0f, -1f], [-128f, 127f, 0f, -1f]),
            (DType.U8, [0f, 255f, 17f], [0f, 255f, 17f]),
            (DType.Bool, [0f, 1f, 1f], [0f, 1f, 1f]),
        };
        var state = new StateDict();
        foreach (var (type, input, _) in cases) state.Set(type.ToString(), new Tensor(input, input.Length), type);
        state.Set("bf16nan", new Tensor([float.NaN], 1), DType.BF16);
        state.Set("matrix", new Tensor([1, 2, 3, 4, 5, 6], 2, 3), DType.I8);

        string path = _dir.File("dtypes.safetensors");
        SafeTensors.Write(path, state);
        var (back, meta) = SafeTensors.Read(path);
        Assert.Empty(meta);
        foreach (var (type, _, expected) in cases)
        {
            Assert.Equal(type, back.StoredType(type.ToString()));
            Assert.Equal(expected, back[type.ToString()].Data);
        }
        Assert.True(float.IsNaN(back["bf16nan"].Data[0]));
        Assert.Equal([2, 3], back["matrix"].Shape);
        Assert.Equal(state["matrix"].Data, back["matrix"].Data);
        Assert.Contains("\"I8\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[", HeaderOf(path, out _));
        Assert.Contains("\"Bool\":{\"dtype\":\"BOOL\"", HeaderOf(path, out _));
    }

    [Fact]
    public void ValuesThatDoNotFitTheStoredTypeFailWithoutTouchingTheTarget()
    {
        string path = _dir.File("bad.safetensors");
        File.WriteAllText(path, "previous content");
        var state = new StateDict();
        state.Set("ok", new Tensor([1f], 1));
        state.Set("q", new Tensor([3f, 1.5f], 2), DType.I8);
        var e = Assert.Throws<QsvitException>(() => SafeTensors.Write(path, state));
        Assert.Contains("'q'", e.Message);
        Assert.Contains("I8", e.Message);
        Assert.Contains("element 1 is 1.5", e.Message);
        Assert.Equal("previous content", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(_dir.Path)); // no temporary file left behind

        state.Set("q", new Tensor([256f], 1), DType.U8);
        Assert.Contains("[0, 255]", Assert.Throws<QsvitException>(() => SafeTensors.Write(_dir.File("new.safetensors"), state)).Message);
        Assert.False(File.Exists(_dir.File("new.safetensors")));
        state.Set("q", new Tensor([2f], 1), DType.Bool);
        Assert.Contains("0 or 1", Assert.Throws<QsvitException>(() => SafeTensors.Write(_dir.File("new.safetensors"), state)).Message);
        Assert.Single(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void HandWrittenFileFromTheSpec()
    {
        const string json = "{\"__metadata__\":{\"format\":\"pt\"}," +
                            "\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}," +
                            "\"b\":{\"dtype\":\"I32\",\"shape\":[1,2],\"data_offsets\":[4,12]}," +
                            "\"c\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[12,15]}," +
                            "\"d\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[15,17]}," +
                            "\"e\":{\"dtype\":\"U8\",\"shape\":[0,4],\"data_offsets\":[17,17]}}";
        byte[] data =
        [
            0x00, 0x3C, 0x00, 0xC0,                         // F16 1.0, -2.0
            0x07, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, // I32 7, -1
            0x01, 0x00, 0x01,                               // BOOL
            0xC0, 0x3F,                                     // BF16 1.5
        ];
        string path = _dir.File("spec.safetensors");
        File.WriteAllBytes(path, Blob(json, data));
        var (state, meta) = SafeTensors.Read(path);
        Assert.Equal(["a", "b", "c", "d", "e"], state.Keys);
        Assert.Equal([1f, -2f], state["a"].Data);
        Assert.Equal([1, 2], state["b"].Shape);
        Assert.Equal([7f, -1f], state["b"].Data);
        Assert.Equal([1f, 0f, 1f], state["c"].Data);
        Assert.Empty(state["d"].Shape);
        Assert.Equal([1.5f], state["d"].Data);
        Assert.Equal([0, 4], state["e"].Shape);
        Assert.Equal(DType.Bool, state.StoredType("c"));
        Assert.Equal("pt", meta["format"]);
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "beyond the 4-byte data buffer")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap tensor 'a'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "belong to no tensor")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12 bytes")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 9, "cover 4 data bytes but the file holds 9")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before they begin")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "non-negative")]
    [InlineData("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "dtype 'F8_E4M3'")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative integer dimensions")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets")]
    [InlineData("{\"__metadata__\":{\"n\":1}}", 0, "expected a string")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "names 'a' twice")]
    [InlineData("{\"a\": [1, 2", 0, "not valid JSON")]
    [InlineData("[1, 2]", 0, "expected an object")]
    public void InvalidHeadersAreRejected(string json, int dataBytes, string expected)
    {
        string path = _dir.File("bad.safetensors");
        File.WriteAllBytes(path, Blob(json, new byte[dataBytes]));
        var e = Assert.Throws<QsvitException>(() => SafeTensors.Read(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void HeaderLengthsOutOfRangeAreRejected()
    {
        string path = _dir.File("huge.safetensors");
        File.WriteAllBytes(path, Blob("{}", [], headerLength: 1UL << 40));
        Assert.Contains($"more than the {SafeTensors.MaxHeaderBytes}-byte limit", Assert.Throws<QsvitException>(() => SafeTensors.Read(path)).Message);

        File.WriteAllBytes(path, Blob("{}", [], headerLength: 1000));
        Assert.Contains("truncated", Assert.Throws<QsvitException>(() => SafeTensors.Read(path)).Message);

        // through CheckpointReader the same file is still recognised as safetensors by its '{'
        Assert.Contains("header length is 1000 bytes", Assert.Throws<QsvitException>(() => CheckpointReader.Load(path)).Message);

        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("only 3 bytes", Assert.Throws<QsvitException>(() => SafeTensors.Read(path)).Message);

        Assert.Contains("not found", Assert.Throws<QsvitException>(() => SafeTensors.Read(_dir.File("missing.safetensors"))).Message);
    }
}
