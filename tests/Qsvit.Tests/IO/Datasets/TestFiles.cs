using System.Buffers.Binary;
using System.IO.Compression;

namespace Qsvit.Tests.IO.Datasets;

/// <summary>A fresh temporary directory, deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "qsvit-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    /// <summary>A path inside the directory; parent folders are created.</summary>
    public string File(params string[] parts)
    {
        var path = System.IO.Path.Combine([Path, .. parts]);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>Writers for small test images and data files.</summary>
internal static class TestFiles
{
    /// <summary>A minimal PNG: 8-bit gray (1 channel) or RGB (3 channels), filter 0 on every row.</summary>
    public static byte[] Png(byte[] pixels, int width, int height, int channels)
    {
        if (channels is not (1 or 3) || pixels.Length != width * height * channels) throw new ArgumentException("bad image");
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (int y = 0; y < height; y++)
            {
                z.WriteByte(0);
                z.Write(pixels, y * width * channels, width * channels);
            }
        }
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8;                                   // bit depth
        header[9] = (byte)(channels == 1 ? 0 : 2);       // gray or truecolor
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", raw.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> four = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(four, data.Length);
        s.Write(four);
        var typed = new byte[4 + data.Length];
        for (int i = 0; i < 4; i++) typed[i] = (byte)type[i];
        data.CopyTo(typed, 4);
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(four, Crc32(typed));
        s.Write(four);
    }

    private static readonly uint[] CrcTable = MakeCrcTable();

    private static uint[] MakeCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>An idx file of unsigned bytes: magic 0x000008NN (NN = rank), big-endian dims, data.</summary>
    public static byte[] Idx(int[] dims, byte[] data, int? magic = null)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, magic ?? (0x0800 | dims.Length));
        for (int d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * d), dims[d]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    public static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    /// <summary>Deterministic pseudo-random bytes.</summary>
    public static byte[] Noise(int length, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[length];
        rng.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A test image mixing noise, hard edges and ramps (HWC, 3 channels).</summary>
    public static byte[] Pattern(int width, int height, int seed)
    {
        var rng = new Random(seed);
        var pixels = new byte[width * height * 3];
        for (int y = 0, i = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < 3; c++, i++)
                    pixels[i] = ((x / 5 + y / 4 + c) % 3) switch
                    {
                        0 => (byte)rng.Next(256),
                        1 => (byte)((x + 2 * y + c) % 5 < 2 ? 255 : 0),
                        _ => (byte)((x * 255 / Math.Max(width - 1, 1) + y * 3 + c * 40) % 256),
                    };
        return pixels;
    }

    /// <summary>Back from normalized x / 255 to bytes (exact for Normalization.None).</summary>
    public static byte[] ToBytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i] * 255f;
            Assert.InRange(v, -0.01f, 255.01f);
            bytes[i] = (byte)MathF.Round(v);
        }
        return bytes;
    }

    /// <summary>CHW planes to HWC interleaved.</summary>
    public static byte[] Interleave(byte[] chw, int channels, int height, int width)
    {
        var hwc = new byte[chw.Length];
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < height * width; i++)
                hwc[i * channels + c] = chw[c * height * width + i];
        return hwc;
    }
}
