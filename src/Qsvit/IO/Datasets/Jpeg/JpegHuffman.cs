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
            if (code >= 1 << len) return null;   // more codes than the length allows (the all-ones code is reserved)
            code <<= 1;
        }
        t.MaxCode[17] = int.MaxValue;
        if (dc)
            foreach (byte s in t.Values)
                if (s > 15) return null;
        return t;
    }
}
