using System.Buffers.Binary;

namespace Qsvit.IO;

/// <summary>
/// CRC-32 as used by zip (IEEE 802.3, reflected polynomial 0xEDB88320), slicing-by-8.
/// ZipArchive does not verify stored entries, so the checkpoint reader checks storages itself.
/// </summary>
internal static class Crc32
{
    private const uint Polynomial = 0xEDB88320u;
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            t[i] = c;
        }
        for (int s = 1; s < 8; s++)
            for (int i = 0; i < 256; i++)
            {
                uint prev = t[(s - 1) * 256 + i];
                t[s * 256 + i] = (prev >> 8) ^ t[prev & 0xFF];
            }
        return t;
    }

    /// <summary>The CRC-32 of <paramref name="data"/>; pass the CRC of the bytes before it as <paramref name="previous"/> to continue a running CRC.</summary>
    public static uint Compute(ReadOnlySpan<byte> data, uint previous = 0)
    {
        var t = Table;
        uint crc = ~previous;
        while (data.Length >= 8)
        {
            uint a = BinaryPrimitives.ReadUInt32LittleEndian(data) ^ crc;
            uint b = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            crc = t[7 * 256 + (a & 0xFF)] ^ t[6 * 256 + ((a >> 8) & 0xFF)] ^ t[5 * 256 + ((a >> 16) & 0xFF)] ^ t[4 * 256 + (a >> 24)]
                ^ t[3 * 256 + (b & 0xFF)] ^ t[2 * 256 + ((b >> 8) & 0xFF)] ^ t[256 + ((b >> 16) & 0xFF)] ^ t[b >> 24];
            data = data[8..];
        }
        foreach (byte x in data) crc = t[(crc ^ x) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }
}
