using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

/// <summary>
/// The integer GEMM under every tile on every path, against a naive product: several K blocks (later blocks add to C),
/// 64-column tiles with 32-column remainders, lane groups read through scattered offsets, values at the extremes, rows
/// cut into parts where the columns give the threads too few blocks.
/// </summary>
public unsafe class SpikeGemmTests
{
    public static TheoryData<int> Paths() => SpikeConvTests.Paths();

    [Theory]
    [MemberData(nameof(Paths))]
    public void MultiplyEqualsNaiveIntegerProduct(int path)
    {
        var isa = (IntIsa)path;
        var rng = new Random(5);
        // The last two have fewer column blocks than threads, so their rows are cut into parts (SpikeGemm.RowParts).
        foreach (var (rows, cols, columns, wide, threadCounts) in new[]
        {
            (9, 1200, 96, false, new[] { 1, 2 }), (5, 601, 288, true, new[] { 1, 2 }), (4, 4, 64, false, new[] { 1, 2 }),
            (13, 300, 544, false, new[] { 1, 2 }), (203, 130, 64, false, new[] { 2, 5 }), (150, 70, 288, true, new[] { 4 }),
        })
        foreach (int threads in threadCounts)
        {
            int lo = wide ? short.MinValue : sbyte.MinValue, hi = wide ? short.MaxValue : sbyte.MaxValue;
            var codes = new int[rows * cols];
            for (int i = 0; i < codes.Length; i++) codes[i] = rng.Next(lo, hi + 1);
            codes[0] = lo;
            codes[^1] = hi;
            var a = IntMatrix.FromValues(codes, rows, cols);
            Assert.Equal(wide, a.IsWide);
            int groups = a.PaddedCols / a.Group, stride = columns + 7;
            // Group g's words live at row perm[g] of B (stride apart), so every tile reads through the offsets.
            var perm = Enumerable.Range(0, groups).OrderBy(_ => rng.Next()).ToArray();
            var offsets = perm.Select(r => (long)r * stride).ToArray();
            var values = new int[groups * stride + SpikeGemm.ColumnAlign];
            for (int i = 0; i < values.Length; i++) values[i] = rng.Next(128);
            var words = new int[values.Length];
            for (int i = 0; i < words.Length; i++)
                words[i] = wide ? values[i] | rng.Next(128) << 16 : values[i] | rng.Next(128) << 8 | rng.Next(128) << 16 | rng.Next(128) << 24;
            var c = new long[rows * columns];
            fixed (int* pb = words)
            fixed (long* po = offsets)
                SpikeGemm.Multiply(a, pb, po, columns, (n0, n1, m0, m1, tile) =>
                {
                    for (int m = m0; m < Math.Min(m1, rows); m++)
                    for (int n = n0; n < n1; n++)
                        c[m * columns + n] = tile[m * SpikeGemm.BlockColumns + n - n0];
                }, isa, threads);
            for (int m = 0; m < rows; m++)
            for (int n = 0; n < columns; n++)
            {
                long expected = 0;
                for (int k = 0; k < cols; k++)
                {
                    int g = k / a.Group, lane = k % a.Group, word = words[offsets[g] + n];
                    int b = wide ? (short)(word >> (16 * lane)) : (word >> (8 * lane)) & 0xFF;
                    expected += (long)codes[m * cols + k] * b;
                }
                if (c[m * columns + n] != expected)
                    Assert.Fail($"{isa} {threads}T {rows}x{cols}x{columns} wide={wide}: C[{m},{n}] is {c[m * columns + n]}, expected {expected}");
            }
        }
    }
}
