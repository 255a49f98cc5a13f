using System.Buffers;
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
    public static bool SkipZeroBlocks { get; set; } = true;

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
        var bBuf = ArrayPool<int>.Shared.Rent(checked((int)bWords));
        var cBuf = ArrayPool<int>.Shared.Rent(checked((int)cInts));
        var maskBuf = ArrayPool<byte>.Shared.Rent(maskBytes);
        try
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
        finally
        {
            ArrayPool<int>.Shared.Return(bBuf);
            ArrayPool<int>.Shared.Return(cBuf);
            ArrayPool<byte>.Shared.Return(maskBuf);
        }
    }

    /// <summary>
    /// im2col of spikes into lane groups: K index k = (c, ky, kx) as in the weight layout, column n = (frame, oy, ox);
    /// element (k, n) lands in 32-bit word (k / group)·columns + n, field k % group. Padding (K to whole groups, columns
    /// beyond N, taps outside the image) is zero.
    /// </summary>
    internal static void Gather(float* x, int frames, int h, int w, ConvGeometry g, int group, int* b, int columns, int threads)
    {
        int oh = g.OutH(h), ow = g.OutW(w), spatial = oh * ow, taps = g.KernelH * g.KernelW;
        int k = g.InChannels * taps, kGroups = (k + group - 1) / group;
        nint px = (nint)x, pb = (nint)b;
        int parts = Math.Max(1, Math.Min(threads, kGroups));
        void Groups(int part)
        {
            int g0 = Compute.ChunkStart(kGroups, parts, part), g1 = Compute.ChunkStart(kGroups, parts, part + 1);
            new Span<int>((int*)pb + (long)g0 * columns, (g1 - g0) * columns).Clear();
            for (int kk = g0 * group; kk < Math.Min(k, g1 * group); kk++)
            {
                int c = kk / taps, t = kk % taps, ky = t / g.KernelW, kx = t % g.KernelW;
                long word0 = (long)(kk / group) * columns;
                int field = kk % group;
                for (int f = 0; f < frames; f++)
                {
                    float* plane = (float*)px + ((long)f * g.InChannels + c) * h * w;
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * g.StrideH - g.PadH + ky;
                        if ((uint)iy >= (uint)h) continue;
                        float* row = plane + (long)iy * w;
                        long n0 = (long)f * spatial + (long)oy * ow;
                        if (group == 4)
                        {
                            byte* dst = (byte*)((int*)pb + word0 + n0) + field;
                            for (int ox = 0; ox < ow; ox++)
                            {
                                int ix = ox * g.StrideW - g.PadW + kx;
                                if ((uint)ix < (uint)w && row[ix] != 0) { Debug.Assert(row[ix] == 1f); dst[4 * ox] = 1; }
                            }
                        }
                        else
                        {
                            short* dst = (short*)((int*)pb + word0 + n0) + field;
                            for (int ox = 0; ox < ow; ox++)
                            {
                                int ix = ox * g.StrideW - g.PadW + kx;
                                if ((uint)ix < (uint)w && row[ix] != 0) { Debug.Assert(row[ix] == 1f); dst[2 * ox] = 1; }
                            }
                        }
                    }
                }
            }
        }
        Compute.For(parts, parts, Groups);
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
