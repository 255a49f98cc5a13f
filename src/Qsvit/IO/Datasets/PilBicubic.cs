using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Qsvit.IO.Datasets;

/// <summary>
/// Bicubic resampling with antialiasing as Pillow's <c>Image.resize(size, Image.BICUBIC)</c> does it on 8-bit
/// images: a separable cubic convolution (a = -0.5) whose support widens by the downscale factor, weights
/// normalized per output pixel, a horizontal pass then a vertical pass, each accumulating in 32-bit fixed point
/// (22 fractional bits, weights rounded half away from zero) and rounding and clamping to 8 bits. A pass whose size
/// does not change is skipped, as in Pillow. Coefficients are computed in double with Pillow's formulas and
/// evaluation order; the sums are integer, so the vectorized and windowed evaluation here gives the same bytes.
/// The output is bit-identical to Pillow's (checked against Pillow 9.4 in tests/fixtures/resize).
/// </summary>
internal static class PilBicubic
{
    /// <summary>Fractional bits of the fixed-point coefficients (Pillow: 32 - 8 - 2).</summary>
    public const int PrecisionBits = 32 - 8 - 2;

    private const double Support = 2.0;

    /// <summary>Keys' cubic convolution kernel with a = -0.5, written as Pillow evaluates it.</summary>
    public static double Filter(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    /// <summary>
    /// The taps of a one-dimensional resize from <paramref name="inSize"/> to <paramref name="outSize"/>:
    /// output i reads inputs [First[i], First[i] + Length[i]) with weights Weights[i * KernelSize + k].
    /// </summary>
    public sealed class Taps
    {
        public required int[] First { get; init; }
        public required int[] Length { get; init; }
        public required double[] Weights { get; init; }
        public required int KernelSize { get; init; }

        /// <summary>The weights in fixed point, rounded half away from zero.</summary>
        public int[] FixedPoint()
        {
            var fixedPoint = new int[Weights.Length];
            for (int i = 0; i < Weights.Length; i++)
            {
                double w = Weights[i];
                fixedPoint[i] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            return fixedPoint;
        }
    }

    public static Taps ComputeTaps(int inSize, int outSize)
    {
        if (inSize < 1 || outSize < 1) throw new ArgumentOutOfRangeException(nameof(outSize), "sizes must be positive");
        double scale = (double)inSize / outSize;   // Pillow: (in1 - in0) / outSize with the box [0, inSize]
        double filterScale = scale < 1.0 ? 1.0 : scale;
        double support = Support * filterScale;
        int kernelSize = (int)Math.Ceiling(support) * 2 + 1;
        var first = new int[outSize];
        var length = new int[outSize];
        var weights = new double[(long)outSize * kernelSize];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterScale;
            int xmin = (int)(center - support + 0.5);   // truncation toward zero, as the C cast
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            var k = weights.AsSpan(xx * kernelSize, kernelSize);
            double ww = 0.0;
            for (int x = 0; x < xmax; x++)
            {
                double w = Filter((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
                if (ww != 0.0) k[x] /= ww;
            first[xx] = xmin;
            length[xx] = xmax;
        }
        return new Taps { First = first, Length = length, Weights = weights, KernelSize = kernelSize };
    }

    private static byte Clip8(int value)
    {
        int v = value >> PrecisionBits;
        return v < 0 ? (byte)0 : v > 255 ? (byte)255 : (byte)v;
    }

    /// <summary>Resizes a whole interleaved 8-bit image (rows of width × channels bytes).</summary>
    public static byte[] Resize(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, int outHeight)
    {
        var result = new byte[checked(outWidth * outHeight * channels)];
        ResizeWindow(source, width, height, channels, outWidth, outHeight, 0, 0, outWidth, outHeight, result);
        return result;
    }

    /// <summary>
    /// Resizes an interleaved 8-bit image to <paramref name="outWidth"/> × <paramref name="outHeight"/> but computes
    /// only the window of <paramref name="windowWidth"/> × <paramref name="windowHeight"/> output pixels at
    /// (<paramref name="windowX"/>, <paramref name="windowY"/>), written row-major into <paramref name="destination"/>.
    /// Each output pixel is the same as in the full resize.
    /// </summary>
    public static void ResizeWindow(ReadOnlySpan<byte> source, int width, int height, int channels,
        int outWidth, int outHeight, int windowX, int windowY, int windowWidth, int windowHeight, Span<byte> destination)
    {
        if (source.Length < (long)width * height * channels) throw new ArgumentException("source is smaller than the image", nameof(source));
        if (windowX < 0 || windowY < 0 || windowWidth < 0 || windowHeight < 0 ||
            windowX + windowWidth > outWidth || windowY + windowHeight > outHeight)
            throw new ArgumentOutOfRangeException(nameof(windowX), "the window must lie inside the output");
        int outRow = windowWidth * channels;
        if (destination.Length < (long)outRow * windowHeight) throw new ArgumentException("destination is smaller than the window", nameof(destination));
        if (windowWidth == 0 || windowHeight == 0) return;

        bool horizontal = outWidth != width, vertical = outHeight != height;
        Taps? vTaps = vertical ? ComputeTaps(height, outHeight) : null;

        // Source rows the window needs: those the vertical taps of its rows read, or its own rows.
        int firstRow = vertical ? vTaps!.First[windowY] : windowY;
        int lastRow = vertical ? vTaps!.First[windowY + windowHeight - 1] + vTaps.Length[windowY + windowHeight - 1] : windowY + windowHeight;
        int rows = lastRow - firstRow;

        byte[]? rented = null;
        try
        {
            // After the horizontal pass: `rows` rows of the window's columns. Without one, a view of the source.
            ReadOnlySpan<byte> mid;
            int midStride, midOffset;
            if (horizontal)
            {
                rented = ArrayPool<byte>.Shared.Rent(rows * outRow);
                HorizontalPass(source, width * channels, firstRow, rows, channels, ComputeTaps(width, outWidth), windowX, windowWidth, rented);
                mid = rented;
                midStride = outRow;
                midOffset = 0;
            }
            else
            {
                mid = source;
                midStride = width * channels;
                midOffset = firstRow * midStride + windowX * channels;
            }

            if (vertical)
            {
                VerticalPass(mid, midStride, midOffset, firstRow, outRow, vTaps!, windowY, windowHeight, destination);
            }
            else
            {
                for (int y = 0; y < windowHeight; y++)
                    mid.Slice(midOffset + y * midStride, outRow).CopyTo(destination.Slice(y * outRow, outRow));
            }
        }
        finally
        {
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// The horizontal pass as a vertical pass on the transposed rows: each source column becomes a row of
    /// rows × channels bytes, so the vectorized kernel applies. Integer sums do not depend on the order, so the
    /// result is the same as the direct pass.
    /// </summary>
    private static unsafe void HorizontalPass(ReadOnlySpan<byte> source, int sourceStride, int firstRow, int rows, int channels,
        Taps taps, int windowX, int windowWidth, Span<byte> destination)
    {
        int colFirst = taps.First[windowX];
        int colLast = taps.First[windowX + windowWidth - 1] + taps.Length[windowX + windowWidth - 1];
        int cols = colLast - colFirst, columnBytes = rows * channels, outRow = windowWidth * channels;
        if (source.Length < (long)(firstRow + rows) * sourceStride || destination.Length < (long)rows * outRow)
            throw new ArgumentException("buffers too small for the horizontal pass");
        var transposed = ArrayPool<byte>.Shared.Rent(cols * columnBytes);
        var filtered = ArrayPool<byte>.Shared.Rent(windowWidth * columnBytes);
        try
        {
            fixed (byte* src0 = source)
            fixed (byte* t0 = transposed)
            {
                for (int y = 0; y < rows; y++)
                {
                    byte* s = src0 + (long)(firstRow + y) * sourceStride + (long)colFirst * channels;
                    byte* t = t0 + y * channels;
                    for (int x = 0; x < cols; x++, t += columnBytes)
                        for (int c = 0; c < channels; c++) t[c] = *s++;
                }
            }
            VerticalPass(transposed, columnBytes, 0, colFirst, columnBytes, taps, windowX, windowWidth, filtered);
            fixed (byte* f0 = filtered)
            fixed (byte* d0 = destination)
            {
                for (int xx = 0; xx < windowWidth; xx++)
                {
                    byte* f = f0 + (long)xx * columnBytes;
                    byte* d = d0 + xx * channels;
                    for (int y = 0; y < rows; y++, d += outRow)
                        for (int c = 0; c < channels; c++) d[c] = *f++;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(filtered);
            ArrayPool<byte>.Shared.Return(transposed);
        }
    }

    private static unsafe void VerticalPass(ReadOnlySpan<byte> source, int sourceStride, int sourceOffset, int firstRow, int rowBytes,
        Taps taps, int windowY, int windowHeight, Span<byte> destination)
    {
        var k = taps.FixedPoint();
        int kernelSize = taps.KernelSize;
        const int half = 1 << (PrecisionBits - 1);
        int lastRow = taps.First[windowY + windowHeight - 1] + taps.Length[windowY + windowHeight - 1] - firstRow;
        if (source.Length < sourceOffset + (long)(lastRow - 1) * sourceStride + rowBytes || destination.Length < (long)windowHeight * rowBytes)
            throw new ArgumentException("buffers too small for the vertical pass");
        int lanes = Vector<byte>.Count;
        var halfV = new Vector<int>(half);
        var max = new Vector<int>(255);
        fixed (byte* src0 = source)
        fixed (byte* dst0 = destination)
        fixed (int* k0 = k)
        {
            for (int yy = 0; yy < windowHeight; yy++)
            {
                int o = windowY + yy, n = taps.Length[o];
                byte* top = src0 + sourceOffset + (long)(taps.First[o] - firstRow) * sourceStride;
                int* kk = k0 + (long)o * kernelSize;
                byte* dst = dst0 + (long)yy * rowBytes;
                int i = 0;
                if (Vector.IsHardwareAccelerated)
                {
                    for (; i + lanes <= rowBytes; i += lanes)
                    {
                        Vector<int> a0 = halfV, a1 = halfV, a2 = halfV, a3 = halfV;
                        byte* p = top + i;
                        for (int y = 0; y < n; y++, p += sourceStride)
                        {
                            var bytes = Unsafe.ReadUnaligned<Vector<byte>>(p);
                            Vector.Widen(bytes, out Vector<ushort> lo, out Vector<ushort> hi);
                            Vector.Widen(lo, out Vector<uint> u0, out Vector<uint> u1);
                            Vector.Widen(hi, out Vector<uint> u2, out Vector<uint> u3);
                            var w = new Vector<int>(kk[y]);
                            a0 += Vector.AsVectorInt32(u0) * w;
                            a1 += Vector.AsVectorInt32(u1) * w;
                            a2 += Vector.AsVectorInt32(u2) * w;
                            a3 += Vector.AsVectorInt32(u3) * w;
                        }
                        var c0 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a0, PrecisionBits), Vector<int>.Zero), max));
                        var c1 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a1, PrecisionBits), Vector<int>.Zero), max));
                        var c2 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a2, PrecisionBits), Vector<int>.Zero), max));
                        var c3 = Vector.AsVectorUInt32(Vector.Min(Vector.Max(Vector.ShiftRightArithmetic(a3, PrecisionBits), Vector<int>.Zero), max));
                        Unsafe.WriteUnaligned(dst + i, Vector.Narrow(Vector.Narrow(c0, c1), Vector.Narrow(c2, c3)));
                    }
                }
                for (; i < rowBytes; i++)
                {
                    int ss = half;
                    byte* p = top + i;
                    for (int y = 0; y < n; y++, p += sourceStride) ss += *p * kk[y];
                    dst[i] = Clip8(ss);
                }
            }
        }
    }

    /// <summary>torchvision's Resize(int) size: the shorter side becomes <paramref name="shorter"/>, the longer int(shorter · long / short).</summary>
    public static (int Width, int Height) ShorterSideSize(int width, int height, int shorter)
    {
        if (width <= height)
            return (shorter, (int)((double)shorter * height / width));
        return ((int)((double)shorter * width / height), shorter);
    }

    /// <summary>
    /// torchvision's CenterCrop offset along one axis: round-half-to-even of (size - crop) / 2 when the image is
    /// large enough; when it is smaller, the negated left/top zero padding (crop - size) // 2.
    /// </summary>
    public static int CenterCropOffset(int size, int crop) =>
        size >= crop ? (int)Math.Round((size - crop) / 2.0, MidpointRounding.ToEven) : -((crop - size) / 2);
}
