using System.Buffers.Binary;
using System.Text;
using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Tests.IO;

namespace Qsvit.Tests.Hostile;

/// <summary>Issue 9, safetensors and model.json: hostile headers and sidecars end in a clear QsvitException.</summary>
public class HostileSafeTensorsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Blob(byte[] header, byte[] data, ulong? headerLength = null)
    {
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, headerLength ?? (ulong)header.Length);
        return [.. length, .. header, .. data];
    }

    private string Write(byte[] bytes)
    {
        string path = _dir.File(Guid.NewGuid().ToString("N") + ".safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static QsvitException Refused(string path, long maxAllocated = 64 * Guarded.MiB)
    {
        var (e, allocated) = Guarded.Refuses(() => SafeTensors.Read(path));
        Assert.Contains(path, e.Message);
        Assert.True(allocated < maxAllocated, $"allocated {allocated:N0} bytes");
        // The format sniffing and the reader agree: the same file fails the same way through CheckpointReader.
        var (viaCheckpoint, _) = Guarded.Refuses(() => CheckpointReader.Load(path));
        Assert.Contains(path, viaCheckpoint.Message);
        return e;
    }

    // 7. Invalid UTF-8 anywhere in the header.
    [Theory]
    [InlineData("{\"w\u0001\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}")]
    [InlineData("{\"w\":{\"dtype\":\"F3\u0001\",\"shape\":[1],\"data_offsets\":[0,4]}}")]
    [InlineData("{\"__metadata__\":{\"k\":\"v\u0001\"},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}")]
    public void InvalidUtf8InANameDtypeOrMetadataValueIsRefused(string json)
    {
        var header = Encoding.UTF8.GetBytes(json);
        header[Array.IndexOf(header, (byte)1)] = 0xFF;   // a byte that never occurs in UTF-8
        var e = Refused(Write(Blob(header, new byte[4])));
        Assert.Contains("header is not valid UTF-8 (first bad byte at header offset", e.Message);
    }

    [Fact]
    public void EscapedLoneSurrogateInANameIsRefused()
    {
        var header = Encoding.UTF8.GetBytes("{\"w\\udc00\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        var e = Refused(Write(Blob(header, new byte[4])));
        Assert.Contains("not valid text", e.Message);
    }

    // 9. Header edge cases.
    [Fact]
    public void HeaderStartingWithASpaceIsRefusedAsTheReferenceDoes()
    {
        var header = Encoding.UTF8.GetBytes(" {\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        var (e, _) = Guarded.Refuses(() => SafeTensors.Read(Write(Blob(header, new byte[4]))));
        Assert.Contains("header does not start with '{' (its first byte is 0x20)", e.Message);
    }

    [Fact]
    public void HeaderLongerThanTheLimitIsRefusedBeforeItIsRead()
    {
        var header = Encoding.UTF8.GetBytes("{}");
        var e = Refused(Write(Blob(header, [], headerLength: (ulong)SafeTensors.MaxHeaderBytes + 1)), maxAllocated: Guarded.MiB);
        Assert.Contains("more than the 16777216-byte limit", e.Message);
    }

    [Fact]
    public void HeaderListingTooManyTensorsIsRefusedInBoundedMemory()
    {
        var sb = new StringBuilder("{");
        for (int i = 0; i <= SafeTensors.MaxTensors; i++) sb.Append(i == 0 ? "" : ",").Append($"\"t{i}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
        sb.Append('}');
        var e = Refused(Write(Blob(Encoding.UTF8.GetBytes(sb.ToString()), [])), maxAllocated: 256 * Guarded.MiB);
        Assert.Contains("more than 100,000 tensors", e.Message);
    }

    [Fact]
    public void TensorOfMoreThan64DimensionsIsRefused()
    {
        string shape = string.Join(",", Enumerable.Repeat("1", 65));
        var header = Encoding.UTF8.GetBytes($"{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{shape}],\"data_offsets\":[0,4]}}}}");
        Assert.Contains("65 dimensions (at most 64)", Refused(Write(Blob(header, new byte[4]))).Message);
    }

    // 8. model.json and the qsvit.model metadata: nulls, wrong types, invalid JSON, implausible sizes.
    [Theory]
    [InlineData("{\"embed_dim\": [64, null, 128, 256]}", "'embed_dim[1]' is null, expected an integer")]
    [InlineData("{\"embed_dim\": \"64\"}", "'embed_dim' is string \"64\", expected an array")]
    [InlineData("{\"embed_dim\": [64, 128, 256]}", "'embed_dim' holds 3 widths, expected 4")]
    [InlineData("{\"input\": {\"mean\": [0.5, null, 0.5]}}", "'input.mean[1]' is null, expected a finite number")]
    [InlineData("{\"input\": {\"std\": null}}", "'input.std' is null, expected an array")]
    [InlineData("{\"input\": {\"std\": [0.2, 0, 0.2]}}", "'input.std[1]' is number 0, expected a positive number")]
    [InlineData("{\"classes\": [\"cat\", null]}", "'classes[1]' is null, expected a string")]
    [InlineData("{\"classes\": null}", "'classes' is null, expected an array")]
    [InlineData("{\"kd\": 1}", "'kd' is number 1, expected true or false")]
    [InlineData("{\"num_classes\": 1.5}", "'num_classes' is number 1.5, expected an integer")]
    [InlineData("{\"timesteps\": 1e300}", "'timesteps' is number 1e300, expected an integer")]
    [InlineData("{\"input\": {\"height\": 2147483647}}", "'input.height' is 2147483647, expected 8..8192")]
    [InlineData("{\"input\": [224, 224]}", "'input' is a JSON array, expected an object")]
    [InlineData("{\"arch\": 5}", "'arch' is number 5, expected a string")]
    [InlineData("[1, 2]", "is a JSON array, expected an object")]
    [InlineData("{\"embed_dim\": [64,", "is not valid JSON")]
    [InlineData("{\"kd\": true, \"kd\": false}", "is not valid JSON")]
    [InlineData("null", "is a JSON null, expected an object")]
    public void ModelJsonWithNullsWrongTypesOrBadJsonIsAClearError(string json, string expected)
    {
        var (e, _) = Guarded.Refuses(() => ModelFile.Parse(json, "model.json"));
        Assert.StartsWith("model.json", e.Message);
        Assert.Contains(expected, e.Message);

        string path = _dir.File("model.json");
        File.WriteAllText(path, json);
        var (fromFile, _) = Guarded.Refuses(() => ModelFile.Read(path));
        Assert.Contains(path, fromFile.Message);
        Assert.Contains(expected, fromFile.Message);
    }

    [Fact]
    public void QsvitModelMetadataWithAnImplausibleInputSizeIsAClearError()
    {
        var source = CheckpointReader.Load(CheckpointReaderTests.CifarPath);
        string path = _dir.File("cifar.safetensors");
        SafeTensors.Write(path, source.State, new Dictionary<string, string>
        {
            [ModelLoader.ConfigMetadataKey] = "{\"arch\": \"sdtv2\", \"input\": {\"height\": 2147483647, \"width\": 32}}",
        });
        var (e, _) = Guarded.Refuses(() => ModelLoader.Load(path));
        Assert.Contains("'input.height' is 2147483647, expected 8..8192", e.Message);
    }
}
