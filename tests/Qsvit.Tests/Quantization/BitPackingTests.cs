using Qsvit.Quantization;

namespace Qsvit.Tests.Quantization;

public class BitPackingTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(6)]
    [InlineData(8)]
    [InlineData(12)]
    [InlineData(16)]
    public void RoundTripsAndSlices(int bits)
    {
        var rng = new Random(bits);
        foreach (int count in new[] { 1, 7, 8, 9, 1000, 1001 })
        {
            var values = Enumerable.Range(0, count).Select(_ => rng.Next(0, 1 << bits)).ToArray();
            values[0] = (1 << bits) - 1;
            var packed = new byte[BitPacking.ByteCount(count, bits)];
            Assert.Equal((count * bits + 7) / 8, packed.Length);
            BitPacking.Pack(values, bits, packed);
            var back = new int[count];
            BitPacking.Unpack(packed, bits, 0, back);
            Assert.Equal(values, back);
            // Any slice starting at any field.
            int first = count / 3, len = count - first;
            var slice = new int[len];
            BitPacking.Unpack(packed, bits, first, slice);
            Assert.Equal(values[first..], slice);
        }
    }

    [Fact]
    public void LeastSignificantBitFirst()
    {
        var packed = new byte[2];
        BitPacking.Pack([1, 2, 3, 0, 5], 3, packed); // 001 010 011 000 101 -> bits from LSB
        Assert.Equal(new byte[] { 0b11_010_001, 0b0_101_000_0 }, packed);
    }

    [Fact]
    public void ValuesThatDoNotFitAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BitPacking.Pack([4], 2, new byte[1]));
    }
}
