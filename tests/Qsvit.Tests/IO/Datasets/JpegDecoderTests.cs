using System.Security.Cryptography;
using System.Text.Json;
using Qsvit.IO.Datasets;

namespace Qsvit.Tests.IO.Datasets;

/// <summary>
/// The JPEG decoder against PIL over libjpeg-turbo: tests/fixtures/jpeg holds small JPEGs written by PIL (and a few by
/// libjpeg itself: YCCK, 4:4:0, 4:1:1, odd sampling factors, RGB) and the SHA-256 of PIL's
/// <c>Image.open(f).convert("RGB")</c> bytes for each (bench/pytorch/make_jpeg_fixtures.py).
/// </summary>
public class JpegDecoderTests
{
    private static readonly string Dir = RepoPaths.Combine("tests", "fixtures", "jpeg");

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json")));
        foreach (var f in doc.RootElement.GetProperty("files").EnumerateObject()) data.Add(f.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void MatchesPilBitForBit(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json")));
        var expected = doc.RootElement.GetProperty("files").GetProperty(name);
        var (rgb, w, h) = ImageDecoder.DecodeRgb(File.ReadAllBytes(Path.Combine(Dir, name + ".jpg")), name + ".jpg");
        Assert.Equal(expected.GetProperty("width").GetInt32(), w);
        Assert.Equal(expected.GetProperty("height").GetInt32(), h);
        Assert.Equal(w * h * 3, rgb.Length);
        string sha = Convert.ToHexStringLower(SHA256.HashData(rgb));
        if (sha != expected.GetProperty("rgb_sha256").GetString())
        {
            // With PIL's raw bytes at hand (QSVIT_JPEG_REFS=folder of NAME.rgb), say where and how much they differ.
            string? refs = Environment.GetEnvironmentVariable("QSVIT_JPEG_REFS");
            string detail = "";
            if (refs is not null && File.Exists(Path.Combine(refs, name + ".rgb")))
            {
                var pil = File.ReadAllBytes(Path.Combine(refs, name + ".rgb"));
                int differing = 0, max = 0, first = -1;
                for (int i = 0; i < pil.Length; i++)
                {
                    int d = Math.Abs(pil[i] - rgb[i]);
                    if (d == 0) continue;
                    differing++;
                    max = Math.Max(max, d);
                    if (first < 0) first = i;
                }
                detail = $": {differing} of {pil.Length} values differ, max {max}, first at x={first / 3 % w} y={first / 3 / w} channel {first % 3}";
            }
            Assert.Fail($"{name}: decoded RGB differs from PIL's{detail}");
        }
    }

    private static byte[] Fixture(string name) => File.ReadAllBytes(Path.Combine(Dir, name));

    /// <summary>Offset of the first byte of entropy-coded data (after the first SOS segment).</summary>
    private static int ScanData(byte[] b)
    {
        int pos = 2;
        while (true)
        {
            int marker = b[pos + 1], length = (b[pos + 2] << 8) | b[pos + 3];
            pos += 2 + length;
            if (marker == 0xDA) return pos;
        }
    }

    /// <summary>Index of the code byte of the first marker 0xFF <paramref name="code"/> at or after <paramref name="from"/>.</summary>
    private static int MarkerAt(byte[] b, byte code, int from)
    {
        for (int i = Math.Max(from, 1); i < b.Length; i++)
            if (b[i - 1] == 0xFF && b[i] == code) return i;
        throw new InvalidOperationException($"no marker 0xFF{code:X2}");
    }

    private static string Refused(byte[] bytes) =>
        Assert.Throws<QsvitException>(() => ImageDecoder.DecodeRgb(bytes, "bad.jpg")).Message;

    [Fact]
    public void OverfullHuffmanTablesAreRefusedBeforeTheyIndexTheLookup()
    {
        // Found by the reader fuzzer (CsCheck seed 2TCHA_tV7UQ1): five 1-bit codes ran past the 9-bit lookup table
        // (IndexOutOfRangeException) before the over-full length was noticed.
        var jpeg = Fixture("s161x97_q95_sub2.jpg");
        int dht = 2;
        while (jpeg[dht + 1] != 0xC4) dht += 2 + ((jpeg[dht + 2] << 8) | jpeg[dht + 3]);
        var bad = (byte[])jpeg.Clone();
        bad[dht + 5] = 5;   // the first table's count of 1-bit codes (two at most, one of them reserved)
        Assert.Contains("Huffman table", Refused(bad));
        Assert.Null(Qsvit.IO.Datasets.Jpeg.JpegHuffman.Build([5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 2, 3, 4], dc: true));
        Assert.Null(Qsvit.IO.Datasets.Jpeg.JpegHuffman.Build([1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4], dc: false));
    }

    [Fact]
    public void MissingHuffmanTablesAreTheStandardOnes()
    {
        // A Motion-JPEG frame leaves out its tables when they are T.81 K.3's; PIL (libjpeg-turbo) then uses those.
        const string name = "s161x97_q95_sub2";   // baseline, not optimized: written with the K.3 tables
        var jpeg = Fixture(name + ".jpg").ToList();
        for (int pos = 2; jpeg[pos + 1] != 0xDA;)
        {
            int length = (jpeg[pos + 2] << 8) | jpeg[pos + 3];
            if (jpeg[pos + 1] == 0xC4) jpeg.RemoveRange(pos, 2 + length);
            else pos += 2 + length;
        }
        var (rgb, _, _) = ImageDecoder.DecodeRgb([.. jpeg], name + ".jpg");
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json")));
        Assert.Equal(doc.RootElement.GetProperty("files").GetProperty(name).GetProperty("rgb_sha256").GetString(),
            Convert.ToHexStringLower(SHA256.HashData(rgb)));
    }

    [Fact]
    public void FileCutInsideTheScanIsTruncated()
    {
        var jpeg = Fixture("s161x97_q95_sub2.jpg");
        int start = ScanData(jpeg);
        string message = Refused(jpeg[..(start + (jpeg.Length - start) * 2 / 3)]);
        Assert.StartsWith("bad.jpg: JPEG ends early (truncated file?)", message);
    }

    [Fact]
    public void MarkerInsideTheScanIsPrematureEnd()
    {
        var jpeg = Fixture("s161x97_q95_sub2.jpg");
        int at = (ScanData(jpeg) + jpeg.Length) / 2;
        while (jpeg[at - 1] == 0xFF || jpeg[at] == 0xFF || jpeg[at + 1] == 0xFF) at++;
        jpeg[at] = 0xFF;
        jpeg[at + 1] = 0xD9;
        Assert.Contains("premature end of data segment", Refused(jpeg));
    }

    [Fact]
    public void WrongRestartMarkerIsRefused()
    {
        var jpeg = Fixture("rst_restart_marker_blocks5_sub2.jpg");
        int at = MarkerAt(jpeg, 0xD0, ScanData(jpeg));
        jpeg[at] = 0xD3;
        Assert.Contains("expected restart marker RST0 in scan 1, found 0xFFD3", Refused(jpeg));
    }

    [Fact]
    public void UnsupportedFramesAreNamed()
    {
        var jpeg = Fixture("s37x23_q75_sub0.jpg");
        int sof = MarkerAt(jpeg, 0xC0, 0);
        var twelveBit = (byte[])jpeg.Clone();
        twelveBit[sof + 3] = 12;
        Assert.Equal("bad.jpg: a 12-bit JPEG; only 8-bit samples are supported", Refused(twelveBit));
        // 3x1 luma with 2x1 chroma: a ratio that is not whole, which libjpeg refuses too.
        var fractional = (byte[])jpeg.Clone();
        fractional[sof + 10] = 0x31;
        fractional[sof + 13] = 0x21;
        Assert.Contains("fractional sampling ratios (2x1 of 3x1)", Refused(fractional));
    }
}
