namespace Qsvit.Quantization;

/// <summary>
/// Unsigned b-bit fields packed back to back into bytes, least significant bit first (element i occupies bits
/// [i·b, (i+1)·b) of the little-endian bit stream). The last byte's unused high bits are zero.
/// </summary>
public static class BitPacking
{
    /// <summary>The packing's name in packed model files.</summary>
    public const string Name = "lsb0";

    public static bool IsPackable(int bits) => bits is >= 1 and <= 16;

    public static long ByteCount(long count, int bits) => (count * bits + 7) / 8;

    /// <summary>Packs values in [0, 2^bits) into <paramref name="dst"/> (exactly <see cref="ByteCount"/> bytes).</summary>
    public static void Pack(ReadOnlySpan<int> values, int bits, Span<byte> dst)
    {
        if (!IsPackable(bits)) throw new ArgumentOutOfRangeException(nameof(bits), $"cannot pack {bits}-bit fields");
        if (dst.Length != ByteCount(values.Length, bits)) throw new ArgumentException($"{values.Length} {bits}-bit values need {ByteCount(values.Length, bits)} bytes, got {dst.Length}");
        dst.Clear();
        uint mask = (1u << bits) - 1;
        if (bits == 8) { for (int i = 0; i < values.Length; i++) dst[i] = (byte)Check(values[i], mask); return; }
        ulong acc = 0;
        int have = 0, o = 0;
        foreach (int v in values)
        {
            acc |= (ulong)Check(v, mask) << have;
            have += bits;
            while (have >= 8) { dst[o++] = (byte)acc; acc >>= 8; have -= 8; }
        }
        if (have > 0) dst[o] = (byte)acc;
    }

    /// <summary>Unpacks <paramref name="dst"/>.Length fields starting at field <paramref name="first"/>.</summary>
    public static void Unpack(ReadOnlySpan<byte> src, int bits, long first, Span<int> dst)
    {
        if (!IsPackable(bits)) throw new ArgumentOutOfRangeException(nameof(bits), $"cannot unpack {bits}-bit fields");
        if (ByteCount(first + dst.Length, bits) > src.Length) throw new ArgumentException("fields beyond the packed data");
        if (bits == 8) { for (int i = 0; i < dst.Length; i++) dst[i] = src[(int)first + i]; return; }
        uint mask = (1u << bits) - 1;
        long bit = first * bits;
        int o = (int)(bit >> 3);
        int skip = (int)(bit & 7);
        ulong acc = 0;
        int have = 0;
        // Prime with the partial first byte.
        for (int i = 0; i < dst.Length; i++)
        {
            while (have - skip < bits) { acc |= (ulong)src[o++] << have; have += 8; }
            if (skip > 0) { acc >>= skip; have -= skip; skip = 0; }
            dst[i] = (int)(acc & mask);
            acc >>= bits;
            have -= bits;
        }
    }

    private static uint Check(int v, uint mask) =>
        (uint)v <= mask ? (uint)v : throw new ArgumentOutOfRangeException(nameof(v), $"value {v} does not fit the field (max {mask})");
}
