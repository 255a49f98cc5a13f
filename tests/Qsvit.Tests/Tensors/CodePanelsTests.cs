using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

/// <summary>Integer codes expanded in the panel layout equal the dequantized weights packed by ConvWeights, bit for bit, on every path.</summary>
public unsafe class CodePanelsTests
{
    public static TheoryData<int> Paths()
    {
        var data = new TheoryData<int>();
        foreach (var isa in Enum.GetValues<Isa>())
            if (isa <= IsaInfo.Best) data.Add((int)isa);
        return data;
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ExpandEqualsPackOfDequantizedValues(int path)
    {
        var isa = (Isa)path;
        var rng = new Random(5);
        // (geometry, bits): 1x1, 3x3 with odd row counts, grouped, and codes of 8, 12 and 20 bits (s8, s16, s32 storage).
        (ConvGeometry G, int Bits)[] cases =
        [
            (new ConvGeometry(19, 13, 1, 1), 8),
            (new ConvGeometry(7, 9, 3, 3, 1, 1, 1, 1), 4),
            (new ConvGeometry(8, 6, 3, 3, 2, 2, 1, 1, 2), 12),
            (new ConvGeometry(5, 17, 1, 1), 20),
            (new ConvGeometry(3, 11, 7, 7, 2, 2, 3, 3), 8),
        ];
        foreach (var (g, bits) in cases)
        {
            int k = g.WeightLength / g.OutChannels, lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
            var codes = new int[g.WeightLength];
            for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(lo, hi + 1);
            codes[0] = lo;
            codes[^1] = hi;
            var scales = Enumerable.Range(0, g.OutChannels).Select(_ => (float)(rng.NextDouble() * 0.1 + 1e-3)).ToArray();
            var values = new float[codes.Length];
            for (int i = 0; i < values.Length; i++) values[i] = codes[i] * scales[i / k];
            var panels = new CodePanels(g, isa, lo, hi, scales, (row0, rows, dst) => codes.AsSpan(row0 * k, rows * k).CopyTo(dst));
            using var expanded = panels.Expand();
            using var packed = ConvWeights.Pack(values, g, isa);
            long length = GemmCore.PackedALength(g.OutChannels / g.Groups, k, IsaInfo.Clamp(isa));
            for (int grp = 0; grp < g.Groups; grp++)
            {
                var a = new ReadOnlySpan<float>(expanded.GroupPointer(grp), (int)length);
                var b = new ReadOnlySpan<float>(packed.GroupPointer(grp), (int)length);
                for (int i = 0; i < a.Length; i++)
                    if (BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i]))
                        Assert.Fail($"{isa} {g} {bits} bits, group {grp}: packed value {i} is {a[i]}, expected {b[i]}");
            }
            Assert.Equal(packed.TapOrder, expanded.TapOrder);
        }
    }

    [Fact]
    public void DepthwiseIsRefused() =>
        Assert.Throws<ArgumentException>(() => new CodePanels(new ConvGeometry(4, 4, 3, 3, 1, 1, 1, 1, 4), IsaInfo.Best, -1, 1, new float[4], (_, _, _) => { }));
}
