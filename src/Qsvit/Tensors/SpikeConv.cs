using System.Diagnostics;

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
        int columns = SpikeGemm.PaddedColumns((int)n);
        var m = w.Matrix;
        int groups = m.PaddedCols / m.Group;
        long bWords = (long)groups * columns, cInts = (long)m.PaddedRows * columns;
        int maskBytes = groups * SpikeGemm.MaskBlocks(columns);
        var bBuf = Scratch(ref t_b, bWords);
        var cBuf = Scratch(ref t_c, cInts);
        var maskBuf = Scratch(ref t_mask, maskBytes);
        {
            fixed (float* px = input)
            fixed (int* pb = bBuf, pc = cBuf)
            fixed (byte* pm = maskBuf)
            fixed (float* po = output, pbias = bias)
            {
                Gather(px, frames, height, width, g, m.Group, pb, columns, threads);
                bool skip = SkipZeroBlocks;
                if (skip) SpikeGemm.BuildMask(pb, groups, columns, pm);
                SpikeGemm.Multiply(m, pb, columns, pc, isa, threads, skip ? pm : null);
                Scale(pc, columns, w.Scales, bias.IsEmpty ? null : pbias, g.OutChannels, frames, spatial, po, threads);
            }
        }
    }

    /// <summary>
    /// im2col of spikes into lane groups. K runs over (tap, channel) with channels padded to whole groups (the column order
    /// of a conv <see cref="IntMatrix"/>), so lane group (tap, c / group) of column n = (frame, oy, ox) is one word of the
    /// channel-interleaved input at the tapped position: the spikes are first interleaved into words
    /// [frames, C / group, H, W] (byte or short fields), then whole rows of words are copied per tap.
    /// </summary>
    internal static void Gather(float* x, int frames, int h, int w, ConvGeometry g, int group, int* b, int columns, int threads)
    {
        int oh = g.OutH(h), ow = g.OutW(w), spatial = oh * ow, taps = g.KernelH * g.KernelW;
        int cg = (g.InChannels + group - 1) / group, groups = taps * cg, plane = h * w;
        var words = Scratch(ref t_words, (long)frames * cg * plane);
        nint px = (nint)x, pb = (nint)b;
        fixed (int* pwords = words)
        {
            nint pw = (nint)pwords;
            Compute.For(frames * cg, threads, fc =>
            {
                int f = fc / cg, c0 = fc % cg * group;
                int* dst = (int*)pw + (long)fc * plane;
                new Span<int>(dst, plane).Clear();
                for (int e = 0; e < group && c0 + e < g.InChannels; e++)
                {
                    float* src = (float*)px + ((long)f * g.InChannels + c0 + e) * plane;
                    int shift = e * (32 / group);
                    for (int i = 0; i < plane; i++) dst[i] |= (int)src[i] << shift;
                }
            });
            int n = frames * spatial;
            Compute.For(groups, threads, gi =>
            {
                int tap = gi / cg, c = gi % cg, ky = tap / g.KernelW, kx = tap % g.KernelW;
                for (int f = 0; f < frames; f++)
                {
                    int* src = (int*)pw + ((long)f * cg + c) * plane;
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * g.StrideH - g.PadH + ky, n0 = f * spatial + oy * ow;
                        int* row = (uint)iy < (uint)h ? src + (long)iy * w : null;
                        for (int ox = 0; ox < ow; )
                        {
                            // Up to the next panel boundary: one contiguous run of words in B.
                            int nn = n0 + ox, run = Math.Min(ow - ox, SpikeGemm.Panel - nn % SpikeGemm.Panel);
                            int* dst = (int*)pb + SpikeGemm.WordOffset(gi, nn, groups);
                            for (int j = 0; j < run; j++)
                            {
                                int ix = (ox + j) * g.StrideW - g.PadW + kx;
                                dst[j] = row != null && (uint)ix < (uint)w ? row[ix] : 0;
                            }
                            ox += run;
                        }
                    }
                }
                for (int nn = n; nn < columns; nn++) ((int*)pb)[SpikeGemm.WordOffset(gi, nn, groups)] = 0;
            });
        }
    }

    [ThreadStatic] private static int[]? t_words, t_b, t_c;
    [ThreadStatic] private static byte[]? t_mask;

    /// <summary>A per-thread scratch array of at least <paramref name="length"/> elements (grown, never shrunk): no allocation per call.</summary>
    private static T[] Scratch<T>(ref T[]? slot, long length)
    {
        if (length > Array.MaxLength) throw new QsvitException($"a scratch buffer of {length:N0} elements exceeds .NET's array limit; use a smaller batch");
        if (slot is null || slot.Length < length) slot = GC.AllocateUninitializedArray<T>((int)length, pinned: true);
        return slot;
    }

    /// <summary>output[f, oc, p] = fma(C[oc, f·spatial + p], scale[oc], bias[oc]) (or C·scale without bias).</summary>
    private static void Scale(int* c, int columns, float[] scales, float* bias, int outChannels, int frames, int spatial, float* o, int threads)
    {
        nint pc = (nint)c, po = (nint)o, pbias = (nint)bias;
        Compute.For(outChannels, threads, oc =>
        {
            float s = scales[oc];
            float bb = pbias == 0 ? 0f : ((float*)pbias)[oc];
            bool hasBias = pbias != 0;
            int* row = (int*)pc + (long)oc * columns;
            for (int f = 0; f < frames; f++)
            {
                int* src = row + (long)f * spatial;
                float* dst = (float*)po + ((long)f * outChannels + oc) * spatial;
                if (hasBias) for (int p = 0; p < spatial; p++) dst[p] = MathF.FusedMultiplyAdd(src[p], s, bb);
                else for (int p = 0; p < spatial; p++) dst[p] = src[p] * s;
            }
        });
    }
}
