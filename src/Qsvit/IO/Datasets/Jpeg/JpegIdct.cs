namespace Qsvit.IO.Datasets.Jpeg;

/// <summary>
/// The accurate integer inverse DCT that libjpeg calls JDCT_ISLOW (its default, and PIL's): the Loeffler-Ligtenberg-
/// Moschytz factorisation with 13-bit fixed-point constants, two extra bits kept between the column and row passes,
/// round-half-up descaling by arithmetic shifts, and libjpeg's post-IDCT range limit (the level shift by 128, clamping
/// to [0, 255] for results within ±512 of it and wrapping modulo 1024 beyond, as its 1024-entry table does).
/// libjpeg-turbo's SIMD versions give the same bytes for any block a real encoder writes.
/// </summary>
internal static class JpegIdct
{
    private const int ConstBits = 13, Pass1Bits = 2;
    private const int Fix0_298631336 = 2446, Fix0_390180644 = 3196, Fix0_541196100 = 4433, Fix0_765366865 = 6270,
        Fix0_899976223 = 7373, Fix1_175875602 = 9633, Fix1_501321110 = 12299, Fix1_847759065 = 15137,
        Fix1_961570560 = 16069, Fix2_053119869 = 16819, Fix2_562915447 = 20995, Fix3_072711026 = 25172;

    /// <summary>libjpeg's post-IDCT range-limit table, indexed by (value &amp; 1023) where value excludes the +128 shift.</summary>
    private static readonly byte[] RangeLimit = BuildRangeLimit();

    private static byte[] BuildRangeLimit()
    {
        var t = new byte[1024];
        for (int x = 0; x < 1024; x++)
            t[x] = x switch
            {
                < 128 => (byte)(x + 128),          // 0..127 -> 128..255
                < 512 => 255,                      // large positive: saturate
                < 896 => 0,                        // large negative (wrapped): saturate
                _ => (byte)(x - 896),              // -128..-1 -> 0..127
            };
        return t;
    }

    /// <summary>
    /// Inverse-transforms one block of quantized coefficients (natural order) with its quantization table (natural
    /// order, as libjpeg's 16-bit multiplier table) into 8 rows of 8 samples at <paramref name="output"/>, row stride
    /// <paramref name="stride"/>.
    /// </summary>
    public static void Transform(ReadOnlySpan<short> coef, ReadOnlySpan<short> quant, Span<byte> output, int stride)
    {
        System.Diagnostics.Debug.Assert(coef.Length >= 64 && quant.Length >= 64 && output.Length >= 7 * stride + 8);
        Span<int> ws = stackalloc int[64];
        byte[] limit = RangeLimit;

        // Pass 1: columns, from the coefficients into the workspace, scaled up by 2^Pass1Bits.
        for (int c = 0; c < 8; c++)
        {
            if (coef[8 + c] == 0 && coef[16 + c] == 0 && coef[24 + c] == 0 && coef[32 + c] == 0 &&
                coef[40 + c] == 0 && coef[48 + c] == 0 && coef[56 + c] == 0)
            {
                // AC terms all zero: the column is its DC term (the same value the full formula gives).
                int dc = (coef[c] * quant[c]) << Pass1Bits;
                for (int r = 0; r < 8; r++) ws[8 * r + c] = dc;
                continue;
            }
            int z2 = coef[16 + c] * quant[16 + c], z3 = coef[48 + c] * quant[48 + c];
            int z1 = (z2 + z3) * Fix0_541196100;
            int tmp2 = z1 + z3 * -Fix1_847759065;
            int tmp3 = z1 + z2 * Fix0_765366865;
            z2 = coef[c] * quant[c];
            z3 = coef[32 + c] * quant[32 + c];
            int tmp0 = (z2 + z3) << ConstBits, tmp1 = (z2 - z3) << ConstBits;
            int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;

            tmp0 = coef[56 + c] * quant[56 + c];
            tmp1 = coef[40 + c] * quant[40 + c];
            tmp2 = coef[24 + c] * quant[24 + c];
            tmp3 = coef[8 + c] * quant[8 + c];
            Odd(ref tmp0, ref tmp1, ref tmp2, ref tmp3);

            const int shift = ConstBits - Pass1Bits, round = 1 << (shift - 1);
            ws[c] = (tmp10 + tmp3 + round) >> shift;
            ws[56 + c] = (tmp10 - tmp3 + round) >> shift;
            ws[8 + c] = (tmp11 + tmp2 + round) >> shift;
            ws[48 + c] = (tmp11 - tmp2 + round) >> shift;
            ws[16 + c] = (tmp12 + tmp1 + round) >> shift;
            ws[40 + c] = (tmp12 - tmp1 + round) >> shift;
            ws[24 + c] = (tmp13 + tmp0 + round) >> shift;
            ws[32 + c] = (tmp13 - tmp0 + round) >> shift;
        }

        // Pass 2: rows, from the workspace to samples, removing the 2^Pass1Bits and the 8 of the 2-D transform.
        for (int r = 0; r < 8; r++)
        {
            var w = ws.Slice(8 * r, 8);
            var o = output.Slice(r * stride, 8);
            int z2 = w[2], z3 = w[6];
            int z1 = (z2 + z3) * Fix0_541196100;
            int tmp2 = z1 + z3 * -Fix1_847759065;
            int tmp3 = z1 + z2 * Fix0_765366865;
            int tmp0 = (w[0] + w[4]) << ConstBits, tmp1 = (w[0] - w[4]) << ConstBits;
            int tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;

            tmp0 = w[7];
            tmp1 = w[5];
            tmp2 = w[3];
            tmp3 = w[1];
            Odd(ref tmp0, ref tmp1, ref tmp2, ref tmp3);

            const int shift = ConstBits + Pass1Bits + 3, round = 1 << (shift - 1);
            o[0] = limit[((tmp10 + tmp3 + round) >> shift) & 1023];
            o[7] = limit[((tmp10 - tmp3 + round) >> shift) & 1023];
            o[1] = limit[((tmp11 + tmp2 + round) >> shift) & 1023];
            o[6] = limit[((tmp11 - tmp2 + round) >> shift) & 1023];
            o[2] = limit[((tmp12 + tmp1 + round) >> shift) & 1023];
            o[5] = limit[((tmp12 - tmp1 + round) >> shift) & 1023];
            o[3] = limit[((tmp13 + tmp0 + round) >> shift) & 1023];
            o[4] = limit[((tmp13 - tmp0 + round) >> shift) & 1023];
        }
    }

    /// <summary>The odd half: inputs x7, x5, x3, x1 in tmp0..tmp3, outputs the four odd terms in place.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void Odd(ref int tmp0, ref int tmp1, ref int tmp2, ref int tmp3)
    {
        int z1 = tmp0 + tmp3, z2 = tmp1 + tmp2, z3 = tmp0 + tmp2, z4 = tmp1 + tmp3;
        int z5 = (z3 + z4) * Fix1_175875602;
        tmp0 *= Fix0_298631336;
        tmp1 *= Fix2_053119869;
        tmp2 *= Fix3_072711026;
        tmp3 *= Fix1_501321110;
        z1 *= -Fix0_899976223;
        z2 *= -Fix2_562915447;
        z3 = z3 * -Fix1_961570560 + z5;
        z4 = z4 * -Fix0_390180644 + z5;
        tmp0 += z1 + z3;
        tmp1 += z2 + z4;
        tmp2 += z2 + z3;
        tmp3 += z1 + z4;
    }
}
