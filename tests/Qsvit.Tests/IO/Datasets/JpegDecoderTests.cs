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
}
