using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

/// <summary>The integer spike kernels equal a naive integer reference bit for bit on every path and thread count.</summary>
public unsafe class SpikeConvTests
{
    public static TheoryData<int> Paths()
    {
        var data = new TheoryData<int>();
        foreach (var isa in Enum.GetValues<IntIsa>())
            if (SpikeGemm.IsSupported(isa)) data.Add((int)isa);
        return data;
    }

    // (frames, h, w, cin, cout, k, stride, pad, bits); stride 1 with k = 2·pad + 1 runs direct, the rest through im2col.
    private static readonly (int F, int H, int W, int Cin, int Cout, int K, int S, int P, int Bits)[] Shapes =
    [
        (3, 7, 5, 9, 6, 5, 1, 2, 8),     // direct with two-wide gaps
        (2, 6, 5, 7, 5, 3, 1, 0, 8),     // stride 1 without padding: im2col
        (33, 2, 3, 5, 9, 3, 1, 1, 16),   // many tiny frames: 32-column tiles span frames and gaps
        (1, 1, 1, 1, 1, 1, 1, 0, 8),
        (3, 4, 4, 33, 7, 1, 1, 0, 8),
        (2, 5, 7, 6, 9, 3, 1, 1, 4),
        (2, 9, 9, 5, 6, 3, 2, 1, 2),
        (4, 6, 6, 19, 13, 1, 1, 0, 16),
        (2, 8, 8, 17, 5, 3, 1, 1, 12),
        (1, 11, 13, 3, 10, 3, 2, 1, 16),
        (5, 3, 3, 130, 6, 1, 1, 0, 8),
        (1, 4, 4, 300, 3, 3, 1, 1, 8),   // K > one K block of lane groups
        (3, 13, 11, 5, 4, 3, 1, 1, 8),   // 429 positions: several column blocks and chunks, chunks ending inside a frame
        (4, 14, 14, 6, 5, 1, 1, 0, 8),   // 784 columns: at 2 threads, blocks narrower than 256 (BlockWidth)
    ];

    [Theory]
    [MemberData(nameof(Paths))]
    public void EqualsNaiveIntegerReference(int path)
    {
        var isa = (IntIsa)path;
        var rng = new Random(12);
        foreach (var s in Shapes)
        foreach (int threads in new[] { 1, 2 })
        foreach (bool chunked in new[] { false, true })
        {
            var g = new ConvGeometry(s.Cin, s.Cout, s.K, s.K, s.S, s.S, s.P, s.P);
            // Sparse spikes, with some all-zero channels.
            var x = new float[s.F * s.Cin * s.H * s.W];
            for (int i = 0; i < x.Length; i++)
                x[i] = (i / (s.H * s.W)) % 5 == 3 ? 0 : rng.NextDouble() < 0.2 ? 1 : 0;
            int lo = -(1 << (s.Bits - 1)), hi = (1 << (s.Bits - 1)) - 1;
            var wts = new int[g.WeightLength];
            for (int i = 0; i < wts.Length; i++) wts[i] = rng.Next(lo, hi + 1);
            wts[0] = lo; // the extremes are exact too
            wts[^1] = hi;
            var matrix = IntMatrix.FromValues(wts, s.Cout, g.WeightLength / s.Cout, g);
            Assert.Equal(s.Bits > 8, matrix.IsWide);
            var scales = Enumerable.Range(0, s.Cout).Select(i => 1f).ToArray();
            var weights = new SpikeConvWeights(g, matrix, scales);
            var y = new float[s.F * s.Cout * g.OutH(s.H) * g.OutW(s.W)];
            SpikeConv.ChunkBytes = chunked ? 1 : 4 << 20; // one block of columns per chunk (im2col path)
            try { SpikeConv.Forward(x, s.F, s.H, s.W, weights, [], y, isa, threads); }
            finally { SpikeConv.ChunkBytes = 4 << 20; }
            var expected = NaiveAccumulate(x, s.F, s.H, s.W, g, wts);
            for (int i = 0; i < y.Length; i++)
                if ((long)y[i] != expected[i] || y[i] != (float)expected[i])
                    Assert.Fail($"{isa} {threads}T chunked={chunked} shape {s}: element {i} is {y[i]}, expected {expected[i]}");
        }
    }

    [Theory]
    [InlineData(800, 2, 224)]   // 4 × 224 instead of 3 × 256 + 32
    [InlineData(928, 2, 160)]
    [InlineData(2048, 2, 256)]
    [InlineData(800, 1, 256)]
    [InlineData(32, 2, 256)]
    public void BlocksShareTheColumnsEvenly(int columns, int threads, int width) => Assert.Equal(width, SpikeGemm.BlockWidth(columns, threads));

    [Theory]
    [InlineData(512, 4, 16, 4)]   // CIFAR's MLP fc1 at 16 threads: four blocks a step, each cut into four row parts
    [InlineData(128, 16, 16, 1)]  // as many blocks as threads: whole rows
    [InlineData(128, 1, 2, 2)]
    [InlineData(100, 1, 16, 1)]   // too few rows to cut
    [InlineData(192, 2, 16, 3)]   // no part under 64 rows
    public void RowsAreCutOnlyWhenBlocksAreFewerThanThreads(int rows, int blocks, int threads, int parts) =>
        Assert.Equal(parts, SpikeGemm.RowParts(rows, blocks, threads));

    [Theory]
    [MemberData(nameof(Paths))]
    public void FusedLifEqualsConvThenLif(int path)
    {
        var isa = (IntIsa)path;
        var rng = new Random(8);
        // (T, B, h, w, cin, cout, k, pad, bits): gaps, blocks spanning steps and frames, 16-bit codes, BN affines.
        (int T, int B, int H, int W, int Cin, int Cout, int K, int P, int Bits)[] shapes =
        [
            (4, 2, 5, 7, 6, 5, 3, 1, 8),
            (4, 3, 14, 14, 5, 9, 1, 0, 8),   // 588 columns per step: several blocks, narrower than 256 at 2 threads
            (2, 5, 3, 3, 7, 4, 3, 1, 16),
            (1, 1, 4, 4, 3, 3, 1, 0, 4),
            (4, 2, 4, 4, 8, 150, 1, 0, 8),  // one block of 32 columns a step: at 2 threads the rows are cut in two (RowParts)
        ];
        foreach (var s in shapes)
        foreach (int threads in new[] { 1, 2 })
        {
            var g = new ConvGeometry(s.Cin, s.Cout, s.K, s.K, 1, 1, s.P, s.P);
            int frames = s.T * s.B, spatial = s.H * s.W;
            var x = Enumerable.Range(0, frames * s.Cin * spatial).Select(_ => rng.NextDouble() < 0.25 ? 1f : 0f).ToArray();
            int lo = -(1 << (s.Bits - 1)), hi = (1 << (s.Bits - 1)) - 1;
            var codes = Enumerable.Range(0, g.WeightLength).Select(_ => rng.Next(lo, hi + 1)).ToArray();
            // Scales that put the pre-activations around the threshold, so that both outcomes occur.
            float[] R(int n, double lo, double hi) => Enumerable.Range(0, n).Select(_ => (float)(lo + rng.NextDouble() * (hi - lo))).ToArray();
            float spread = 0.5f / hi / (float)Math.Sqrt(g.WeightLength / s.Cout * 0.25 + 1);
            var weights = new SpikeConvWeights(g, IntMatrix.FromValues(codes, s.Cout, g.WeightLength / s.Cout, g), R(s.Cout, 0.5 * spread, spread));
            var bias = R(s.Cout, 0.8, 3.2); // H = X·0.5 on the first step
            (float[], float[])[] affines = [(R(s.Cout, 0.5, 1.5), R(s.Cout, -0.2, 0.2))];
            var pre = new float[frames * s.Cout * spatial];
            SpikeConv.Forward(x, frames, s.H, s.W, weights, bias, pre, isa, threads, affines);
            var expected = new float[pre.Length];
            long fired = Qsvit.Snn.MultiStepLif.Forward(pre, expected, pre.Length, s.T, 1f);
            var fused = new float[pre.Length];
            fused.AsSpan().Fill(float.NaN);
            Assert.Equal(fired, SpikeConv.ForwardLif(x, frames, s.H, s.W, weights, bias, fused, s.T, 1f, isa, threads, affines));
            Assert.InRange(fired, 1, pre.Length - 1);
            for (int i = 0; i < fused.Length; i++)
                if (BitConverter.SingleToInt32Bits(fused[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                    Assert.Fail($"{isa} {threads}T shape {s}: spike {i} is {fused[i]}, expected {expected[i]}");
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void ChainedLayersEqualLifThenConv(int path)
    {
        var isa = (IntIsa)path;
        var rng = new Random(9);
        // (T, B, h, w, cin, hidden, cout, k, pad, bits of the first, bits of the second): gaps, partial channel groups,
        // blocks spanning steps and frames, 16-bit codes on either side.
        (int T, int B, int H, int W, int Cin, int Hidden, int Cout, int K, int P, int Bits1, int Bits2)[] shapes =
        [
            (4, 2, 5, 7, 6, 6, 5, 3, 1, 8, 8),
            (4, 3, 14, 14, 5, 9, 7, 1, 0, 8, 8),    // 588 columns per step: several blocks
            (2, 5, 3, 3, 7, 5, 4, 3, 1, 16, 8),
            (2, 2, 4, 6, 3, 7, 3, 3, 1, 8, 16),    // the second layer's grid holds 2 spikes per word
            (1, 1, 4, 4, 3, 3, 3, 1, 0, 4, 4),
            (4, 2, 4, 4, 6, 140, 130, 1, 0, 8, 8),  // one block a step: at 2 threads both layers' rows are cut in two
        ];
        foreach (var s in shapes)
        foreach (int threads in new[] { 1, 2 })
        {
            var g1 = new ConvGeometry(s.Cin, s.Hidden, s.K, s.K, 1, 1, s.P, s.P);
            var g2 = new ConvGeometry(s.Hidden, s.Cout, s.K, s.K, 1, 1, s.P, s.P);
            Assert.True(SpikeConv.CanChain(g1, g2));
            int frames = s.T * s.B, spatial = s.H * s.W;
            var x = Enumerable.Range(0, frames * s.Cin * spatial).Select(_ => rng.NextDouble() < 0.25 ? 1f : 0f).ToArray();
            float[] R(int n, double lo, double hi) => Enumerable.Range(0, n).Select(_ => (float)(lo + rng.NextDouble() * (hi - lo))).ToArray();
            SpikeConvWeights Layer(ConvGeometry g, int bits, float spread)
            {
                int hi = (1 << (bits - 1)) - 1;
                var codes = Enumerable.Range(0, g.WeightLength).Select(_ => rng.Next(-hi - 1, hi + 1)).ToArray();
                float unit = spread / hi / (float)Math.Sqrt(g.WeightLength / g.OutChannels * 0.25 + 1);
                return new SpikeConvWeights(g, IntMatrix.FromValues(codes, g.OutChannels, g.WeightLength / g.OutChannels, g), R(g.OutChannels, 0.5 * unit, unit));
            }
            var first = Layer(g1, s.Bits1, 0.5f);
            var second = Layer(g2, s.Bits2, 1f);
            var bias1 = R(s.Hidden, 0.8, 3.2);
            var bias2 = R(s.Cout, -1, 1);
            (float[], float[])[] affines1 = [(R(s.Hidden, 0.5, 1.5), R(s.Hidden, -0.2, 0.2))];
            (float[], float[])[] affines2 = [(R(s.Cout, 0.5, 1.5), R(s.Cout, -0.2, 0.2))];
            var spikes = new float[frames * s.Hidden * spatial];
            SpikeConv.ForwardLif(x, frames, s.H, s.W, first, bias1, spikes, s.T, 1f, isa, threads, affines1);
            Assert.InRange(spikes.Count(v => v != 0), 1, spikes.Length - 1);
            var expected = new float[frames * s.Cout * spatial];
            SpikeConv.Forward(spikes, frames, s.H, s.W, second, bias2, expected, isa, threads, affines2, SpikeAccumulation.Dense);
            // The consumer sums densely or by events (8-bit codes; 16-bit codes stay dense): the same outputs.
            foreach (var accumulation in new[] { SpikeAccumulation.Dense, SpikeAccumulation.Events })
            {
                var chained = new float[expected.Length];
                chained.AsSpan().Fill(float.NaN);
                Assert.Equal(spikes.Count(v => v != 0), SpikeConv.ForwardLifConv(x, frames, s.H, s.W, first, bias1, affines1, s.T, 1f, second, bias2,
                    affines2, chained, isa, threads, accumulation));
                for (int i = 0; i < chained.Length; i++)
                    if (BitConverter.SingleToInt32Bits(chained[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                        Assert.Fail($"{isa} {threads}T {accumulation} shape {s}: output {i} is {chained[i]}, expected {expected[i]}");
            }
        }
    }

    /// <summary>
    /// A LIF's spikes written as a direct layer's input words (<see cref="SpikeConv.LifWords"/>, with and without the
    /// residual add) give the layer the outputs, and the LIF the spikes, the residual sum and the count, of the LIF's float
    /// spikes read by the layer: maps of 25 and 12 pixels (512-bit, 256-bit and scalar steps), gaps, partial channel groups,
    /// 4 and 2 spikes a word, 1 and 2 threads, on every path.
    /// </summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public void SpikesHandedOverAsWordsEqualFloatSpikes(int path)
    {
        var isa = (IntIsa)path;
        var rng = new Random(10);
        // (T, B, h, w, cin, cout, k, pad, bits)
        (int T, int B, int H, int W, int Cin, int Cout, int K, int P, int Bits)[] shapes =
        [
            (4, 2, 5, 5, 6, 5, 3, 1, 8),
            (2, 3, 3, 4, 7, 4, 1, 0, 16),
            (4, 1, 4, 4, 9, 3, 3, 1, 8),
            (1, 2, 1, 9, 5, 6, 1, 0, 4),
        ];
        foreach (var s in shapes)
        foreach (bool residual in new[] { false, true })
        foreach (int threads in new[] { 1, 2 })
        {
            var g = new ConvGeometry(s.Cin, s.Cout, s.K, s.K, 1, 1, s.P, s.P);
            int frames = s.T * s.B, n = frames * s.Cin * s.H * s.W;
            var x = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 4 - 1)).ToArray();
            float[]? y = residual ? Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray() : null;
            int hi = (1 << (s.Bits - 1)) - 1;
            var codes = Enumerable.Range(0, g.WeightLength).Select(_ => rng.Next(-hi - 1, hi + 1)).ToArray();
            var w = new SpikeConvWeights(g, IntMatrix.FromValues(codes, s.Cout, g.WeightLength / s.Cout, g),
                Enumerable.Range(0, s.Cout).Select(_ => (float)(rng.NextDouble() * 0.01 + 0.001)).ToArray());
            var bias = Enumerable.Range(0, s.Cout).Select(_ => (float)rng.NextDouble()).ToArray();

            var xFloats = (float[])x.Clone();
            var spikes = new float[n];
            long count = Qsvit.Snn.MultiStepLif.Forward(xFloats, spikes, n, s.T, 1f, null, new ComputeOptions { Threads = threads }, y);
            var expected = new float[frames * s.Cout * s.H * s.W];
            SpikeConv.Forward(spikes, frames, s.H, s.W, w, bias, expected, isa, threads, null, SpikeAccumulation.Dense);

            var xWords = (float[])x.Clone();
            int[]? buffer = null;
            var handed = SpikeConv.LifWords(xWords, y, frames, s.Cin, s.H, s.W, s.T, 1f, s.P, s.P, w.Matrix.Group, ref buffer, threads);
            Assert.Equal(count, handed.Spikes);
            Assert.Equal(xFloats, xWords); // the residual sum stays in x, as the float LIF leaves it
            Assert.InRange(count, 1, n - 1);
            var output = new float[expected.Length];
            output.AsSpan().Fill(float.NaN);
            SpikeConv.Forward(new float[n], frames, s.H, s.W, w, bias, output, isa, threads, null, SpikeAccumulation.Dense, handed);
            TestData.AssertSameBits(expected, output, $"{isa} {threads}T residual={residual} shape {s}");
        }
    }

    /// <summary>
    /// Event-driven sums (<see cref="SpikeEvents"/>) equal the naive integer reference bit for bit: odd channel counts,
    /// outputs past one 32-lane row, firing rates 0, ~10 % and 100 % (100 % of 300 channels × 9 taps flushes the int16
    /// lanes ten times), the extreme codes everywhere, at 1 and 2 threads on every path.
    /// </summary>
    [Theory]
    [MemberData(nameof(Paths))]
    public void EventsEqualNaiveIntegerReference(int path)
    {
        var isa = (IntIsa)path;
        var rng = new Random(21);
        // (frames, h, w, cin, cout, k, pad); all direct.
        (int F, int H, int W, int Cin, int Cout, int K, int P)[] shapes =
        [
            (3, 7, 5, 9, 6, 5, 2),
            (2, 4, 4, 33, 7, 1, 0),
            (33, 2, 3, 5, 9, 3, 1),
            (1, 1, 1, 1, 1, 1, 0),
            (2, 5, 7, 6, 40, 3, 1),   // two lane slices of output channels
            (1, 4, 4, 300, 3, 3, 1),  // up to 2,700 events per column
            (4, 14, 14, 6, 5, 1, 0),  // several column blocks
        ];
        foreach (var s in shapes)
        foreach (double rate in new[] { 0.0, 0.1, 1.0 })
        foreach (int threads in new[] { 1, 2 })
        {
            var g = new ConvGeometry(s.Cin, s.Cout, s.K, s.K, 1, 1, s.P, s.P);
            var x = Enumerable.Range(0, s.F * s.Cin * s.H * s.W).Select(_ => rng.NextDouble() < rate ? 1f : 0f).ToArray();
            // Random codes, or all at one extreme (the int16 lanes' worst case) on the dense input.
            int extreme = rng.Next(2) == 0 ? -128 : 127;
            var wts = Enumerable.Range(0, g.WeightLength).Select(_ => rate == 1.0 ? extreme : rng.Next(-128, 128)).ToArray();
            var weights = new SpikeConvWeights(g, IntMatrix.FromValues(wts, s.Cout, g.WeightLength / s.Cout, g), Enumerable.Repeat(1f, s.Cout).ToArray());
            var y = new float[s.F * s.Cout * s.H * s.W];
            y.AsSpan().Fill(float.NaN);
            SpikeConv.Forward(x, s.F, s.H, s.W, weights, [], y, isa, threads, null, SpikeAccumulation.Events);
            var expected = NaiveAccumulate(x, s.F, s.H, s.W, g, wts);
            for (int i = 0; i < y.Length; i++)
                if ((long)y[i] != expected[i] || y[i] != (float)expected[i])
                    Assert.Fail($"{isa} {threads}T rate {rate} shape {s}: element {i} is {y[i]}, expected {expected[i]}");
        }
    }

    /// <summary>Inputs other than 0 and 1 are not spikes: a forced event-driven call runs dense and stays exact.</summary>
    [Fact]
    public void EventsFallBackToDenseOnValuesOtherThanSpikes()
    {
        var g = new ConvGeometry(5, 3, 3, 3, 1, 1, 1, 1);
        var rng = new Random(3);
        var x = Enumerable.Range(0, 2 * 5 * 36).Select(_ => (float)rng.Next(0, 4)).ToArray();
        var wts = Enumerable.Range(0, g.WeightLength).Select(_ => rng.Next(-128, 128)).ToArray();
        var weights = new SpikeConvWeights(g, IntMatrix.FromValues(wts, 3, g.WeightLength / 3, g), [1f, 1f, 1f]);
        var y = new float[2 * 3 * 36];
        SpikeConv.Forward(x, 2, 6, 6, weights, [], y, SpikeGemm.Best, 1, null, SpikeAccumulation.Events);
        Assert.Equal(NaiveAccumulate(x, 2, 6, 6, g, wts).Select(v => (float)v), y);
    }

    [Theory]
    [InlineData(0.0, 16, "Vnni256", false)]   // the scans cost more than a 16- or 32-channel dense GEMM at any rate
    [InlineData(0.02, 32, "Vnni256", false)]
    [InlineData(0.05, 64, "Vnni256", true)]
    [InlineData(0.11, 128, "Vnni256", true)]
    [InlineData(0.15, 128, "Vnni256", false)]
    [InlineData(0.20, 512, "Vector512", true)]
    [InlineData(0.50, 512, "Vnni256", false)]
    [InlineData(0.02, 64, "Vnni512", false)]  // the 512-bit tiles: below 256 outputs never, 256 and more below 10 %
    [InlineData(0.02, 128, "Vnni512", false)]
    [InlineData(0.08, 512, "Vnni512", true)]
    [InlineData(0.12, 256, "Vnni512", false)]
    public void EventsPayBelowTheMeasuredCrossover(double rate, int outChannels, string denseIsa, bool pays) =>
        Assert.Equal(pays, SpikeEvents.Pays(rate, outChannels, Enum.Parse<IntIsa>(denseIsa)));

    [Fact]
    public void ChainingRefusesMismatchedLayers()
    {
        var a = new ConvGeometry(4, 8, 3, 3, 1, 1, 1, 1);
        Assert.False(SpikeConv.CanChain(a, new ConvGeometry(8, 4, 1, 1)));            // different pads: different grids
        Assert.False(SpikeConv.CanChain(a, new ConvGeometry(6, 4, 3, 3, 1, 1, 1, 1))); // channels do not match
        Assert.False(SpikeConv.CanChain(a, new ConvGeometry(8, 4, 3, 3, 2, 2, 1, 1))); // stride 2: im2col
        var w1 = new SpikeConvWeights(a, IntMatrix.FromValues(new int[a.WeightLength], 8, a.WeightLength / 8, a), new float[8]);
        var b = new ConvGeometry(8, 4, 1, 1);
        var w2 = new SpikeConvWeights(b, IntMatrix.FromValues(new int[b.WeightLength], 4, 8, b), new float[4]);
        Assert.Throws<ArgumentException>(() => SpikeConv.ForwardLifConv(new float[2 * 4 * 16], 2, 4, 4, w1, [], null, 2, 1f, w2, [], null,
            new float[2 * 4 * 16], SpikeGemm.Best, 1));
    }

    [Fact]
    public void FusedLifRefusesIm2ColGeometries()
    {
        var g = new ConvGeometry(4, 4, 3, 3, 2, 2, 1, 1);
        var w = new SpikeConvWeights(g, IntMatrix.FromValues(new int[g.WeightLength], 4, g.WeightLength / 4, g), new float[4]);
        Assert.Throws<ArgumentException>(() => SpikeConv.ForwardLif(new float[2 * 4 * 16], 2, 4, 4, w, [], new float[2 * 4 * 4], 2, 1f, SpikeGemm.Best, 1));
    }

    [Fact]
    public void ScalesOncePerOutputWithBias()
    {
        var g = new ConvGeometry(4, 3, 1, 1);
        var x = new float[] { 1, 0, 1, 1, 0, 1, 1, 0 }; // 2 positions: x[c, p]
        var w = new[] { 1, 2, 3, 4, -5, 6, -7, 8, 127, -128, 0, 1 };
        var weights = new SpikeConvWeights(g, IntMatrix.FromValues(w, 3, 4, g), [0.5f, 0.25f, 0.1f]);
        var y = new float[6];
        SpikeConv.Forward(x, 1, 1, 2, weights, [1f, 2f, 3f], y, SpikeGemm.Best, 1);
        var acc = NaiveAccumulate(x, 1, 1, 2, g, w);
        float[] bias = [1f, 2f, 3f], scale = [0.5f, 0.25f, 0.1f];
        for (int oc = 0; oc < 3; oc++)
        for (int p = 0; p < 2; p++)
            Assert.Equal(MathF.FusedMultiplyAdd(acc[oc * 2 + p], scale[oc], bias[oc]), y[oc * 2 + p]);
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void AffinesInTheEpilogueRoundAsSeparatePasses(int path)
    {
        var isa = (IntIsa)path;
        var rng = new Random(5);
        // The 1x1 layer's runs span whole frames (63 outputs: the 512- and 256-bit epilogue loops and the scalar tail).
        foreach (var g in new[] { new ConvGeometry(6, 5, 3, 3, 1, 1, 1, 1), new ConvGeometry(6, 5, 3, 3, 2, 2, 1, 1), new ConvGeometry(6, 5, 1, 1) })
        {
            const int frames = 3, h = 7, w = 9;
            var x = Enumerable.Range(0, frames * g.InChannels * h * w).Select(_ => rng.NextDouble() < 0.3 ? 1f : 0f).ToArray();
            var codes = Enumerable.Range(0, g.WeightLength).Select(_ => rng.Next(-128, 128)).ToArray();
            float[] R(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var weights = new SpikeConvWeights(g, IntMatrix.FromValues(codes, g.OutChannels, g.WeightLength / g.OutChannels, g), R(g.OutChannels));
            var bias = R(g.OutChannels);
            (float[], float[])[] affines = [(R(g.OutChannels), R(g.OutChannels)), (R(g.OutChannels), R(g.OutChannels))];
            int spatial = g.OutH(h) * g.OutW(w);
            var fused = new float[frames * g.OutChannels * spatial];
            var separate = new float[fused.Length];
            SpikeConv.Forward(x, frames, h, w, weights, bias, fused, isa, 2, affines);
            SpikeConv.Forward(x, frames, h, w, weights, bias, separate, isa, 2);
            foreach (var (sc, sh) in affines) ChannelOps.ScaleShift(separate, frames, g.OutChannels, spatial, sc, sh, IsaInfo.Best, 1);
            Assert.Equal(separate, fused);
        }
    }

    [Fact]
    public void WeightsOutside16BitsAreRefused()
    {
        Assert.Throws<QsvitException>(() => IntMatrix.FromValues([40000, 0], 1, 2));
    }

    /// <summary>Naive integer convolution (int64 sums).</summary>
    internal static long[] NaiveAccumulate(ReadOnlySpan<float> x, int frames, int h, int w, ConvGeometry g, ReadOnlySpan<int> weights)
    {
        int oh = g.OutH(h), ow = g.OutW(w);
        var acc = new long[frames * g.OutChannels * oh * ow];
        for (int f = 0; f < frames; f++)
        for (int oc = 0; oc < g.OutChannels; oc++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            long sum = 0;
            for (int c = 0; c < g.InChannels; c++)
            for (int ky = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = oy * g.StrideH - g.PadH + ky, ix = ox * g.StrideW - g.PadW + kx;
                if ((uint)iy >= (uint)h || (uint)ix >= (uint)w) continue;
                sum += (long)x[((f * g.InChannels + c) * h + iy) * w + ix] * weights[((oc * g.InChannels + c) * g.KernelH + ky) * g.KernelW + kx];
            }
            acc[((f * g.OutChannels + oc) * oh + oy) * ow + ox] = sum;
        }
        return acc;
    }
}
