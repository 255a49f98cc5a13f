using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

/// <summary>The original straightforward kernels, kept as the reference the fast kernels are checked against.</summary>
internal static class NaiveKernels
{
    public static void Sgemm(int m, int n, int k, ReadOnlySpan<float> a, bool transA, ReadOnlySpan<float> b, bool transB,
        Span<float> c, bool accumulate = false)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++)
                    s += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
                c[i * n + j] = accumulate ? c[i * n + j] + s : s;
            }
    }

    public static void Conv2d(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias, in ConvGeometry g, Span<float> output)
    {
        int oh = g.OutH(height), ow = g.OutW(width);
        int cinG = g.InChannels / g.Groups, coutG = g.OutChannels / g.Groups;
        for (int nb = 0; nb < batch; nb++)
            for (int oc = 0; oc < g.OutChannels; oc++)
            {
                int grp = oc / coutG;
                for (int y = 0; y < oh; y++)
                    for (int x = 0; x < ow; x++)
                    {
                        float s = bias.IsEmpty ? 0 : bias[oc];
                        for (int ic = 0; ic < cinG; ic++)
                            for (int ky = 0; ky < g.KernelH; ky++)
                            {
                                int iy = y * g.StrideH - g.PadH + ky;
                                if ((uint)iy >= (uint)height) continue;
                                for (int kx = 0; kx < g.KernelW; kx++)
                                {
                                    int ix = x * g.StrideW - g.PadW + kx;
                                    if ((uint)ix >= (uint)width) continue;
                                    s += input[((nb * g.InChannels + grp * cinG + ic) * height + iy) * width + ix]
                                         * weight[((oc * cinG + ic) * g.KernelH + ky) * g.KernelW + kx];
                                }
                            }
                        output[((nb * g.OutChannels + oc) * oh + y) * ow + x] = s;
                    }
            }
    }

    /// <summary>
    /// Conv2d summed in PyTorch CPU's (oneDNN's) order, written out loop by loop: input channels in blocks (16; the
    /// whole filter for depthwise; oneDNN's reduce blocking for 1×1 stride-1 layers with channels in multiples of 16),
    /// each block a chain of FMAs over (ky, kx, channel) from zero, block sums added in turn; the bias starts the first
    /// block for 1×1 and depthwise layers and is added after it otherwise.
    /// </summary>
    public static void Conv2dReferenceOrder(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias, in ConvGeometry g, Span<float> output)
    {
        int oh = g.OutH(height), ow = g.OutW(width);
        int cinG = g.InChannels / g.Groups, coutG = g.OutChannels / g.Groups;
        bool depthwise = g.IsDepthwise, pointwise = g.IsPointwise && cinG % 16 == 0 && coutG % 16 == 0;
        int block = depthwise ? cinG : pointwise ? ReductionOrder.PointwiseSegment(cinG, coutG, height, width) : 16;
        bool biasFirst = depthwise || pointwise;
        for (int nb = 0; nb < batch; nb++)
            for (int oc = 0; oc < g.OutChannels; oc++)
            {
                int grp = oc / coutG;
                float b = bias.IsEmpty ? 0 : bias[oc];
                for (int y = 0; y < oh; y++)
                    for (int x = 0; x < ow; x++)
                    {
                        float sum = 0;
                        for (int c0 = 0; c0 < cinG; c0 += block)
                        {
                            float acc = c0 == 0 && biasFirst ? b : 0f;
                            for (int ky = 0; ky < g.KernelH; ky++)
                            {
                                int iy = y * g.StrideH - g.PadH + ky;
                                if ((uint)iy >= (uint)height) continue;
                                for (int kx = 0; kx < g.KernelW; kx++)
                                {
                                    int ix = x * g.StrideW - g.PadW + kx;
                                    if ((uint)ix >= (uint)width) continue;
                                    for (int ic = c0; ic < Math.Min(cinG, c0 + block); ic++)
                                        acc = MathF.FusedMultiplyAdd(weight[((oc * cinG + ic) * g.KernelH + ky) * g.KernelW + kx],
                                            input[((nb * g.InChannels + grp * cinG + ic) * height + iy) * width + ix], acc);
                                }
                            }
                            sum = c0 == 0 ? (biasFirst ? acc : acc + b) : sum + acc;
                        }
                        output[((nb * g.OutChannels + oc) * oh + y) * ow + x] = sum;
                    }
            }
    }

    public static void ScaleShift(Span<float> x, int batch, int channels, int spatial, ReadOnlySpan<float> scale, ReadOnlySpan<float> shift)
    {
        for (int nb = 0; nb < batch; nb++)
            for (int c = 0; c < channels; c++)
            {
                var row = x.Slice((nb * channels + c) * spatial, spatial);
                for (int i = 0; i < row.Length; i++) row[i] = MathF.FusedMultiplyAdd(row[i], scale[c], shift[c]);
            }
    }

    public static void SpatialMean(ReadOnlySpan<float> x, int batch, int channels, int spatial, Span<float> output)
    {
        for (int i = 0; i < batch * channels; i++)
        {
            float s = 0;
            foreach (var v in x.Slice(i * spatial, spatial)) s += v;
            output[i] = s / spatial;
        }
    }
}
