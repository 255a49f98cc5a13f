namespace Qsvit.IO.Datasets.Jpeg;

/// <summary>
/// One Huffman table (ITU T.81 Annex C) with a 9-bit lookahead for short codes and the canonical max-code walk for the
/// rest. Built only from a table libjpeg would accept: at most 256 symbols, codes that fit their lengths, and DC
/// symbols (difference sizes) of at most 15 bits.
/// </summary>
internal sealed class JpegHuffman
{
    public const int LookBits = 9;

    /// <summary>Per 9-bit prefix: (code length &lt;&lt; 8) | symbol, or 0 if the code is longer.</summary>
    public readonly ushort[] Lookup = new ushort[1 << LookBits];

    /// <summary>Largest code of each length (−1 if none), length 17 a sentinel that always ends the walk.</summary>
    public readonly int[] MaxCode = new int[18];

    /// <summary>Index into <see cref="Values"/> of the first symbol of each length, minus that length's first code.</summary>
    public readonly int[] Offset = new int[17];

    public readonly byte[] Values;

    private JpegHuffman(byte[] values) => Values = values;

    /// <summary>Builds a table from a DHT segment's 16 counts and symbols; null if libjpeg would refuse it.</summary>
    public static JpegHuffman? Build(ReadOnlySpan<byte> counts, ReadOnlySpan<byte> symbols, bool dc)
    {
        var t = new JpegHuffman(symbols.ToArray());
        int code = 0, k = 0;
        for (int len = 1; len <= 16; len++)
        {
            int n = counts[len - 1];
            t.Offset[len] = k - code;
            // More codes than the length allows (the all-ones code is reserved): refused before they index the lookup.
            if (code + n >= 1 << len) return null;
            if (n > 0)
            {
                for (int i = 0; i < n; i++, k++, code++)
                    if (len <= LookBits)
                    {
                        int first = code << (LookBits - len), span = 1 << (LookBits - len);
                        for (int j = 0; j < span; j++) t.Lookup[first + j] = (ushort)((len << 8) | t.Values[k]);
                    }
                t.MaxCode[len] = code - 1;
            }
            else t.MaxCode[len] = -1;
            code <<= 1;
        }
        t.MaxCode[17] = int.MaxValue;
        if (dc)
            foreach (byte s in t.Values)
                if (s > 15) return null;
        return t;
    }

    /// <summary>
    /// The example tables of ITU T.81 Annex K.3 (DC/AC, luminance = index 0, chrominance = index 1), which libjpeg-turbo
    /// puts in slots a file leaves undefined (Motion-JPEG frames omit them). Each AC table lists its short codes' symbols,
    /// then every remaining symbol in increasing order.
    /// </summary>
    public static JpegHuffman Standard(bool dc, int index)
    {
        byte[] counts = (dc, index) switch
        {
            (true, 0) => [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
            (true, _) => [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],
            (false, 0) => [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125],
            (false, _) => [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119],
        };
        byte[] values;
        if (dc) values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        else
        {
            byte[] head = index == 0
                ?
                [
                    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
                    0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
                    0x82,
                ]
                :
                [
                    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22,
                    0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1,
                    0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1,
                ];
            // All 162 AC symbols: end-of-block, the 16-zero run, and every run 0-15 with size 1-10.
            var rest = Enumerable.Range(0, 16).SelectMany(r => Enumerable.Range(1, 10).Select(sz => (byte)(r << 4 | sz)))
                .Append((byte)0x00).Append((byte)0xF0).Except(head).Order();
            values = [.. head, .. rest];
        }
        return Build(counts, values, dc)!;
    }
}
