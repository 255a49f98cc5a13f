using System.Diagnostics;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>Integer weights of a dense convolution ([OutChannels, InChannels, kH, kW] flattened to rows of K) with one
/// output scale per channel: output = Σ spikes · q · scale[oc] + bias[oc].</summary>
internal sealed class SpikeConvWeights(ConvGeometry geometry, IntMatrix matrix, float[] scales)
{
    public ConvGeometry Geometry { get; } = geometry;
    public IntMatrix Matrix { get; } = matrix;
    /// <summary>One scale per output channel.</summary>
    public float[] Scales { get; } = scales;
}

/// <summary>
/// Dense convolution of spike inputs (0/1) with integer weights: the spikes are gathered into the lane-group layout of
/// <see cref="SpikeGemm"/> as bytes (8-bit weights) or shorts (16-bit), the products are summed exactly in int32, and each
/// output is scaled once: y = fma(acc, scale[oc], bias[oc]).
/// </summary>
internal static unsafe class SpikeConv
{
    /// <summary>Skip lane groups that are zero over a column block (event-driven); see BENCHMARKS.md for when it pays.</summary>
    public static bool SkipZeroBlocks { get; set; }

    public static void Forward(ReadOnlySpan<float> input, int frames, int height, int width, SpikeConvWeights w,
        ReadOnlySpan<float> bias, Span<float> output, IntIsa isa, int threads)
    {
        var g = w.Geometry;
        if (g.Groups != 1) throw new ArgumentException("spike convolutions are dense (groups = 1)");
        int oh = g.OutH(height), ow = g.OutW(width), spatial = oh * ow;
        long n = (long)frames * spatial;
        if (input.Length < (long)frames * g.InChannels * height * width) throw new ArgumentException("input too short", nameof(input));
        if (output.Length < (long)frames * g.OutChannels * spatial) throw new ArgumentException("output too short", nameof(output));
        if (n > int.MaxValue / 4) throw new QsvitException($"{n} output positions are too many for one call; use a smaller batch");
        var m = w.Matrix;
        int groups = m.PaddedCols / m.Group, total = (int)n;
        // im2col B is bounded: columns are processed in chunks of whole blocks, at most ChunkBytes of B each.
        int chunk = (int)Math.Min(Math.Max(ChunkBytes / (4L * groups) / SpikeGemm.BlockColumns * SpikeGemm.BlockColumns, SpikeGemm.BlockColumns),
            SpikeGemm.PaddedColumns(total));
        var bBuf = Scratch(ref t_b, (long)groups * chunk);
        var maskBuf = Scratch(ref t_mask, groups * SpikeGemm.MaskBlocks(chunk));
        int cg = (g.InChannels + m.Group - 1) / m.Group;
        var words = Scratch(ref t_words, (long)frames * cg * height * width);
        fixed (float* px = input)
        fixed (int* pb = bBuf, pw = words)
        fixed (byte* pm = maskBuf)
        fixed (float* po = output, pbias = bias)
        {
            Interleave(px, frames, g.InChannels, height * width, m.Group, pw, threads);
            var scales = w.Scales;
            int outChannels = g.OutChannels;
            nint o = (nint)po, bi = bias.IsEmpty ? 0 : (nint)pbias;
            for (int start = 0; start < total; start += chunk)
            {
                int count = Math.Min(chunk, total - start), columns = SpikeGemm.PaddedColumns(count), first = start;
                Gather(pw, frames, height, width, g, m.Group, pb, start, count, columns, threads);
                bool skip = SkipZeroBlocks;
                if (skip) SpikeGemm.BuildMask(pb, groups, columns, pm);
                // y = fma(acc, scale[oc], bias[oc]) per output, written to [frame, oc, spatial] run by run.
                SpikeGemm.Multiply(m, pb, columns, (n0, n1, tile) =>
                {
                    n1 = Math.Min(n1, count);
                    for (int oc = 0; oc < outChannels; oc++)
                    {
                        float s = scales[oc], bb = bi == 0 ? 0f : ((float*)bi)[oc];
                        int* row = tile + oc * SpikeGemm.BlockColumns - n0;
                        for (int nn = n0; nn < n1; )
                        {
                            int at = first + nn, f = at / spatial, p = at % spatial, run = Math.Min(n1 - nn, spatial - p);
                            float* dst = (float*)o + ((long)f * outChannels + oc) * spatial + p;
                            int* src = row + nn;
                            ScaleRun(src, dst, run, s, bb, bi != 0);
                            nn += run;
                        }
                    }
                }, isa, threads, skip ? pm : null);
            }
        }
    }

    /// <summary>dst[j] = fma(src[j], scale, bias) (or src[j]·scale): one rounding after the exact integer sum.</summary>
    private static void ScaleRun(int* src, float* dst, int run, float scale, float bias, bool hasBias)
    {
        int j = 0;
        if (Vector256.IsHardwareAccelerated && run >= 8)
        {
            var vs = Vector256.Create(scale);
            var vb = Vector256.Create(bias);
            for (; j <= run - 8; j += 8)
            {
                var x = Vector256.ConvertToSingle(Vector256.Load(src + j));
                (hasBias ? Vector256.FusedMultiplyAdd(x, vs, vb) : x * vs).Store(dst + j);
            }
        }
        for (; j < run; j++) dst[j] = hasBias ? MathF.FusedMultiplyAdd(src[j], scale, bias) : src[j] * scale;
    }

    /// <summary>Bound on one chunk's im2col buffer (at least one block of columns is gathered at a time).</summary>
    internal static long ChunkBytes { get; set; } = 4 << 20;

    /// <summary>Spikes [frames, C, plane] (0/1 floats) into words [frames, C / group, plane]: field e of a word is channel group·c + e.</summary>
    private static void Interleave(float* x, int frames, int channels, int plane, int group, int* words, int threads)
    {
        int cg = (channels + group - 1) / group;
        nint px = (nint)x, pw = (nint)words;
        Compute.For(frames * cg, threads, fc =>
        {
            int f = fc / cg, c0 = fc % cg * group;
            int* dst = (int*)pw + (long)fc * plane;
            new Span<int>(dst, plane).Clear();
            for (int e = 0; e < group && c0 + e < channels; e++)
            {
                float* src = (float*)px + ((long)f * channels + c0 + e) * plane;
                int shift = e * (32 / group);
                for (int i = 0; i < plane; i++) dst[i] |= (int)src[i] << shift;
            }
        });
    }

    /// <summary>
    /// im2col of interleaved spike words (see <see cref="Interleave"/>) for output positions [start, start + count) into B
    /// (<paramref name="columns"/> ≥ count, the rest zero). K runs over (tap, channel group) — the column order of a conv
    /// <see cref="IntMatrix"/> — so lane group (tap, c) of output position (frame, oy, ox) is the word of channel group c
    /// at the tapped input position: rows of words are copied per tap.
    /// </summary>
    internal static void Gather(int* words, int frames, int h, int w, ConvGeometry g, int group, int* b, int start, int count, int columns, int threads)
    {
        int oh = g.OutH(h), ow = g.OutW(w), spatial = oh * ow, taps = g.KernelH * g.KernelW;
        int cg = (g.InChannels + group - 1) / group, groups = taps * cg, plane = h * w;
        nint pw = (nint)words, pb = (nint)b;
        int panels = columns / SpikeGemm.Panel, parts = Math.Max(1, Math.Min(threads, panels));
        // Panel by panel, so that B is written sequentially; within a panel, runs end at output rows.
        Compute.For(parts, parts, part =>
        {
            int p0 = Compute.ChunkStart(panels, parts, part), p1 = Compute.ChunkStart(panels, parts, part + 1);
            for (int panel = p0; panel < p1; panel++)
            {
                int* dst0 = (int*)pb + (long)panel * groups * SpikeGemm.Panel;
                int c0 = panel * SpikeGemm.Panel, c1 = Math.Min(count, c0 + SpikeGemm.Panel);
                if (c1 - c0 < SpikeGemm.Panel) new Span<int>(dst0, groups * SpikeGemm.Panel).Clear();
                for (int nn = c0; nn < c1; )
                {
                    int at = start + nn, f = at / spatial, p = at % spatial, oy = p / ow, ox = p % ow;
                    int run = Math.Min(ow - ox, c1 - nn);
                    int* dstRun = dst0 + (nn - c0);
                    for (int gi = 0; gi < groups; gi++)
                    {
                        int tap = gi / cg, c = gi % cg, ky = tap / g.KernelW, kx = tap % g.KernelW;
                        int* dst = dstRun + gi * SpikeGemm.Panel;
                        int iy = oy * g.StrideH - g.PadH + ky;
                        if ((uint)iy >= (uint)h) { new Span<int>(dst, run).Clear(); continue; }
                        int* row = (int*)pw + ((long)f * cg + c) * plane + (long)iy * w;
                        int ix0 = ox * g.StrideW - g.PadW + kx;
                        if (g.StrideW == 1 && ix0 >= 0 && ix0 + run <= w) { new ReadOnlySpan<int>(row + ix0, run).CopyTo(new Span<int>(dst, run)); continue; }
                        for (int j = 0; j < run; j++)
                        {
                            int ix = ix0 + j * g.StrideW;
                            dst[j] = (uint)ix < (uint)w ? row[ix] : 0;
                        }
                    }
                    nn += run;
                }
            }
        });
    }

    [ThreadStatic] private static int[]? t_words, t_b;
    [ThreadStatic] private static byte[]? t_mask;

    /// <summary>A per-thread scratch array of at least <paramref name="length"/> elements (grown, never shrunk): no allocation per call.</summary>
    private static T[] Scratch<T>(ref T[]? slot, long length)
    {
        if (length > Array.MaxLength) throw new QsvitException($"a scratch buffer of {length:N0} elements exceeds .NET's array limit; use a smaller batch");
        if (slot is null || slot.Length < length) slot = GC.AllocateUninitializedArray<T>((int)length, pinned: true);
        return slot;
    }
}
