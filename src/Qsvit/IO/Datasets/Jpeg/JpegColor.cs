namespace Qsvit.IO.Datasets.Jpeg;

/// <summary>
/// How libjpeg(-turbo) brings a component plane to full size, and how the full-size rows become PIL's RGB:
/// libjpeg's "fancy" upsampling (triangular filters for 2:1 horizontal, 2:1 vertical and 2:1 both ways, with its
/// rounding biases and edge replication), pixel replication for other integer ratios and for planes at most two
/// samples wide, its 16-bit fixed-point YCbCr-to-RGB tables, YCCK-to-CMYK, and PIL's conversion of the inverted
/// (Adobe) CMYK it reads to RGB.
/// </summary>
internal static class JpegColor
{
    private const int ScaleBits = 16, OneHalf = 1 << (ScaleBits - 1);

    private static int Fix(double x) => (int)(x * (1 << ScaleBits) + 0.5);

    private static readonly int[] CrR = new int[256], CbB = new int[256], CrG = new int[256], CbG = new int[256];

    static JpegColor()
    {
        for (int i = 0; i < 256; i++)
        {
            int x = i - 128;
            CrR[i] = (Fix(1.40200) * x + OneHalf) >> ScaleBits;
            CbB[i] = (Fix(1.77200) * x + OneHalf) >> ScaleBits;
            CrG[i] = -Fix(0.71414) * x;
            CbG[i] = -Fix(0.34414) * x + OneHalf;
        }
    }

    private static byte Clamp(int v) => (byte)(v < 0 ? 0 : v > 255 ? 255 : v);

    /// <summary>
    /// One full-size row of a component: row <paramref name="y"/> of the image from a plane of
    /// <paramref name="width"/> x <paramref name="height"/> samples (libjpeg's downsampled size; the plane's stride may
    /// be larger) enlarged by <paramref name="hExpand"/> x <paramref name="vExpand"/>.
    /// </summary>
    public static void UpsampleRow(ReadOnlySpan<byte> plane, int stride, int width, int height, int hExpand, int vExpand,
        int y, Span<byte> output)
    {
        int outWidth = output.Length;
        System.Diagnostics.Debug.Assert(y < height * vExpand && outWidth <= width * hExpand && width <= stride);
        if (hExpand == 1 && vExpand == 1)
        {
            plane.Slice(y * stride, outWidth).CopyTo(output);
            return;
        }
        int inRow = y / vExpand;
        var cur = plane.Slice(inRow * stride, width);
        if (hExpand == 2 && vExpand == 1 && width > 2)
        {
            // h2v1: each output sample is 3/4 of its nearest input sample and 1/4 of the next nearest.
            output[0] = cur[0];
            if (outWidth > 1) output[1] = (byte)((cur[0] * 3 + cur[1] + 2) >> 2);
            for (int i = 1; i < width - 1; i++)
            {
                int o = 2 * i, v = cur[i] * 3;
                if (o >= outWidth) return;
                output[o] = (byte)((v + cur[i - 1] + 1) >> 2);
                if (o + 1 < outWidth) output[o + 1] = (byte)((v + cur[i + 1] + 2) >> 2);
            }
            int last = 2 * (width - 1);
            if (last < outWidth) output[last] = (byte)((cur[width - 1] * 3 + cur[width - 2] + 1) >> 2);
            if (last + 1 < outWidth) output[last + 1] = cur[width - 1];
            return;
        }
        if (vExpand == 2 && (hExpand == 1 || (hExpand == 2 && width > 2)))
        {
            // The vertical neighbour: the row above for even output rows, below for odd ones (edges replicated).
            bool upper = (y & 1) == 0;
            int nearRow = upper ? Math.Max(inRow - 1, 0) : Math.Min(inRow + 1, height - 1);
            var near = plane.Slice(nearRow * stride, width);
            if (hExpand == 1)
            {
                int bias = upper ? 1 : 2;
                for (int i = 0; i < outWidth; i++) output[i] = (byte)((cur[i] * 3 + near[i] + bias) >> 2);
                return;
            }
            // h2v2: vertical 3:1 column sums, then horizontal 3:1 of those, /16.
            int thisSum = cur[0] * 3 + near[0], nextSum = cur[1] * 3 + near[1], lastSum;
            output[0] = (byte)((thisSum * 4 + 8) >> 4);
            if (outWidth > 1) output[1] = (byte)((thisSum * 3 + nextSum + 7) >> 4);
            lastSum = thisSum;
            thisSum = nextSum;
            for (int i = 1; i < width - 1; i++)
            {
                nextSum = cur[i + 1] * 3 + near[i + 1];
                int o = 2 * i;
                if (o >= outWidth) return;
                output[o] = (byte)((thisSum * 3 + lastSum + 8) >> 4);
                if (o + 1 < outWidth) output[o + 1] = (byte)((thisSum * 3 + nextSum + 7) >> 4);
                lastSum = thisSum;
                thisSum = nextSum;
            }
            int end = 2 * (width - 1);
            if (end < outWidth) output[end] = (byte)((thisSum * 3 + lastSum + 8) >> 4);
            if (end + 1 < outWidth) output[end + 1] = (byte)((thisSum * 4 + 7) >> 4);
            return;
        }
        // Any other integer ratio (and 2:1 planes of at most two samples): replicate.
        for (int i = 0; i < outWidth; i++) output[i] = cur[Math.Min(i / hExpand, width - 1)];
    }

    /// <summary>libjpeg's YCbCr to RGB, interleaved into <paramref name="rgb"/>.</summary>
    public static void YccToRgb(ReadOnlySpan<byte> y, ReadOnlySpan<byte> cb, ReadOnlySpan<byte> cr, Span<byte> rgb)
    {
        for (int i = 0; i < y.Length; i++)
        {
            int l = y[i], b = cb[i], r = cr[i];
            rgb[3 * i] = Clamp(l + CrR[r]);
            rgb[3 * i + 1] = Clamp(l + ((CbG[b] + CrG[r]) >> ScaleBits));
            rgb[3 * i + 2] = Clamp(l + CbB[b]);
        }
    }

    /// <summary>Three planes taken as they are (an RGB JPEG).</summary>
    public static void Interleave(ReadOnlySpan<byte> r, ReadOnlySpan<byte> g, ReadOnlySpan<byte> b, Span<byte> rgb)
    {
        for (int i = 0; i < r.Length; i++)
        {
            rgb[3 * i] = r[i];
            rgb[3 * i + 1] = g[i];
            rgb[3 * i + 2] = b[i];
        }
    }

    /// <summary>Grayscale as PIL's convert("RGB") from "L": the sample in all three channels.</summary>
    public static void GrayToRgb(ReadOnlySpan<byte> gray, Span<byte> rgb)
    {
        for (int i = 0; i < gray.Length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];
    }

    /// <summary>
    /// A four-component JPEG as PIL shows it in RGB. libjpeg hands over CMYK (YCCK first converted as libjpeg does:
    /// inverted RGB from the YCbCr part, K as stored); PIL reads it as Adobe's inverted CMYK ("CMYK;I") and converts
    /// with R = (255 - K') - C' (255 - K') / 255, rounded as its MULDIV255, where C' = 255 - C and K' = 255 - K.
    /// </summary>
    public static void CmykToRgb(ReadOnlySpan<byte> c0, ReadOnlySpan<byte> c1, ReadOnlySpan<byte> c2, ReadOnlySpan<byte> k,
        bool ycck, Span<byte> rgb)
    {
        for (int i = 0; i < c0.Length; i++)
        {
            int c, m, ye;
            if (ycck)
            {
                int l = c0[i], b = c1[i], r = c2[i];
                c = 255 - Clamp(l + CrR[r]);
                m = 255 - Clamp(l + ((CbG[b] + CrG[r]) >> ScaleBits));
                ye = 255 - Clamp(l + CbB[b]);
            }
            else
            {
                c = c0[i];
                m = c1[i];
                ye = c2[i];
            }
            // PIL's inverted read: C' = 255 - C, K' = 255 - K; then nk = 255 - K' = K.
            int nk = k[i];
            rgb[3 * i] = Clamp(nk - MulDiv255(255 - c, nk));
            rgb[3 * i + 1] = Clamp(nk - MulDiv255(255 - m, nk));
            rgb[3 * i + 2] = Clamp(nk - MulDiv255(255 - ye, nk));
        }
    }

    private static int MulDiv255(int a, int b)
    {
        int t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    }
}
