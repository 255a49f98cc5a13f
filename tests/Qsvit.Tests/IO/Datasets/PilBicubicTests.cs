using System.Buffers.Binary;
using Qsvit.IO.Datasets;

namespace Qsvit.Tests.IO.Datasets;

public class PilBicubicTests
{
    /// <summary>
    /// A plain double-precision statement of Pillow's bicubic resize: for each output pixel, the cubic kernel
    /// (a = -0.5) stretched by the downscale factor, centered on the output pixel's center in input coordinates,
    /// sampled at the input pixel centers within reach, normalized to sum 1; horizontal pass first, each pass
    /// rounded to the nearest byte and clamped; a pass whose size does not change is skipped.
    /// </summary>
    internal static byte[] Reference(byte[] src, int width, int height, int channels, int outWidth, int outHeight)
    {
        var pixels = src;
        if (outWidth != width)
        {
            var weights = ReferenceWeights(width, outWidth);
            var next = new byte[height * outWidth * channels];
            for (int y = 0; y < height; y++)
                for (int x = 0; x < outWidth; x++)
                    for (int c = 0; c < channels; c++)
                    {
                        double sum = 0;
                        foreach (var (i, w) in weights[x]) sum += w * pixels[(y * width + i) * channels + c];
                        next[(y * outWidth + x) * channels + c] = ToByte(sum);
                    }
            pixels = next;
        }
        if (outHeight != height)
        {
            var weights = ReferenceWeights(height, outHeight);
            var next = new byte[outHeight * outWidth * channels];
            for (int y = 0; y < outHeight; y++)
                for (int x = 0; x < outWidth; x++)
                    for (int c = 0; c < channels; c++)
                    {
                        double sum = 0;
                        foreach (var (i, w) in weights[y]) sum += w * pixels[(i * outWidth + x) * channels + c];
                        next[(y * outWidth + x) * channels + c] = ToByte(sum);
                    }
            pixels = next;
        }
        return pixels == src ? (byte[])src.Clone() : pixels;
    }

    private static byte ToByte(double v) => (byte)Math.Clamp(Math.Floor(v + 0.5), 0, 255);

    private static double Cubic(double x)
    {
        x = Math.Abs(x);
        const double a = -0.5;
        if (x < 1) return (a + 2) * x * x * x - (a + 3) * x * x + 1;
        if (x < 2) return a * x * x * x - 5 * a * x * x + 8 * a * x - 4 * a;
        return 0;
    }

    private static List<(int Index, double Weight)>[] ReferenceWeights(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize, stretch = Math.Max(scale, 1.0), support = 2 * stretch;
        var result = new List<(int, double)>[outSize];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            int lo = Math.Max(0, (int)Math.Floor(center - support + 0.5));
            int hi = Math.Min(inSize, (int)Math.Floor(center + support + 0.5));
            var taps = new List<(int, double)>();
            double total = 0;
            for (int i = lo; i < hi; i++)
            {
                double w = Cubic((i + 0.5 - center) / stretch);
                taps.Add((i, w));
                total += w;
            }
            result[o] = taps.Select(t => (t.Item1, t.Item2 / total)).ToList();
        }
        return result;
    }

    private static int MaxDifference(byte[] a, byte[] b)
    {
        Assert.Equal(a.Length, b.Length);
        int max = 0;
        for (int i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    [Fact]
    public void Filter_MatchesKeysCubicWithAMinusHalf()
    {
        Assert.Equal(1.0, PilBicubic.Filter(0));
        Assert.Equal(0.0, PilBicubic.Filter(1));
        Assert.Equal(0.0, PilBicubic.Filter(-2));
        Assert.Equal(0.0, PilBicubic.Filter(2.5));
        Assert.Equal(0.5625, PilBicubic.Filter(0.5));
        Assert.Equal(0.5625, PilBicubic.Filter(-0.5));
        Assert.Equal(-0.0625, PilBicubic.Filter(1.5));
    }

    [Fact]
    public void MatchesPillowExactly_OnFixture()
    {
        var bytes = File.ReadAllBytes(RepoPaths.Combine("tests", "fixtures", "resize", "pil_bicubic.bin"));
        Assert.Equal("PILBICUB", System.Text.Encoding.ASCII.GetString(bytes, 0, 8));
        int cases = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8));
        int offset = 12;
        Assert.True(cases >= 10);
        int referenceMismatches = 0;
        for (int k = 0; k < cases; k++)
        {
            int Next() { int v = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(offset)); offset += 4; return v; }
            int w = Next(), h = Next(), channels = Next(), ow = Next(), oh = Next();
            var src = bytes.AsSpan(offset, w * h * channels).ToArray();
            offset += src.Length;
            var expected = bytes.AsSpan(offset, ow * oh * channels).ToArray();
            offset += expected.Length;

            var actual = PilBicubic.Resize(src, w, h, channels, ow, oh);
            int mismatches = expected.Zip(actual).Count(p => p.First != p.Second);
            Assert.True(mismatches == 0, $"{w}x{h} -> {ow}x{oh}: {mismatches} of {expected.Length} bytes differ from Pillow, max difference {MaxDifference(expected, actual)}");
            // The double-precision reference stays within one gray level of Pillow here. (Not in general: a one-level
            // difference after the horizontal pass can grow to two when the vertical pass upscales.)
            var reference = Reference(src, w, h, channels, ow, oh);
            Assert.True(MaxDifference(expected, reference) <= 1, $"{w}x{h} -> {ow}x{oh}: reference differs by {MaxDifference(expected, reference)}");
            referenceMismatches += expected.Zip(reference).Count(p => p.First != p.Second);
        }
        Assert.Equal(bytes.Length, offset);
        // The fixture tells fixed-point from double arithmetic: the double reference misses Pillow somewhere.
        Assert.True(referenceMismatches > 0);
    }

    [Theory]
    [InlineData(64, 48, 29, 21)]
    [InlineData(64, 48, 200, 150)]
    [InlineData(33, 57, 33, 12)]
    [InlineData(33, 57, 8, 57)]
    [InlineData(341, 256, 224, 171)]
    [InlineData(5, 5, 1, 1)]
    [InlineData(1, 1, 3, 7)]
    public void WithinOneGrayLevelOfDoubleReference(int w, int h, int ow, int oh)
    {
        var src = TestFiles.Pattern(w, h, seed: w * 1000 + h);
        var actual = PilBicubic.Resize(src, w, h, 3, ow, oh);
        var reference = Reference(src, w, h, 3, ow, oh);
        Assert.True(MaxDifference(actual, reference) <= 1);
    }

    [Fact]
    public void ConstantImageStaysConstant()
    {
        var src = new byte[37 * 23 * 3];
        for (int i = 0; i < src.Length; i++) src[i] = (byte)(i % 3 == 0 ? 0 : i % 3 == 1 ? 200 : 255);
        foreach (var (ow, oh) in new[] { (13, 9), (80, 50), (37, 11), (5, 23), (256, 1) })
        {
            var output = PilBicubic.Resize(src, 37, 23, 3, ow, oh);
            for (int i = 0; i < output.Length; i++) Assert.Equal(src[i % 3], output[i]);
        }
    }

    [Fact]
    public void SameSizeIsIdentity()
    {
        var src = TestFiles.Pattern(19, 11, seed: 5);
        Assert.Equal(src, PilBicubic.Resize(src, 19, 11, 3, 19, 11));
    }

    [Fact]
    public void WindowEqualsTheSameRegionOfTheFullResize()
    {
        var src = TestFiles.Pattern(50, 40, seed: 9);
        var full = PilBicubic.Resize(src, 50, 40, 3, 31, 27);
        var window = new byte[12 * 9 * 3];
        PilBicubic.ResizeWindow(src, 50, 40, 3, 31, 27, 7, 11, 12, 9, window);
        for (int y = 0; y < 9; y++)
            Assert.Equal(full.AsSpan(((11 + y) * 31 + 7) * 3, 12 * 3).ToArray(), window.AsSpan(y * 12 * 3, 12 * 3).ToArray());
    }

    [Theory]
    [InlineData(500, 375, 256, 341, 256)]
    [InlineData(375, 500, 256, 256, 341)]
    [InlineData(256, 256, 256, 256, 256)]
    [InlineData(97, 73, 64, 85, 64)]
    [InlineData(20, 33, 64, 64, 105)]
    public void ShorterSideSize_FollowsTorchvision(int w, int h, int shorter, int ow, int oh) =>
        Assert.Equal((ow, oh), PilBicubic.ShorterSideSize(w, h, shorter));

    [Theory]
    [InlineData(256, 224, 16)]
    [InlineData(341, 224, 58)]   // 58.5 rounds to even
    [InlineData(343, 224, 60)]   // 59.5 rounds to even
    [InlineData(224, 224, 0)]
    [InlineData(20, 24, -2)]     // padded by 2 before, 2 after
    [InlineData(19, 24, -2)]     // padded by 2 before, 3 after
    public void CenterCropOffset_FollowsTorchvision(int size, int crop, int offset) =>
        Assert.Equal(offset, PilBicubic.CenterCropOffset(size, crop));
}
