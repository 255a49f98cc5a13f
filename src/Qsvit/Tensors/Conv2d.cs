namespace Qsvit.Tensors;

/// <summary>Shape of a 2-D convolution. Weight layout is [OutChannels, InChannels/Groups, KernelH, KernelW].</summary>
public readonly record struct ConvGeometry(
    int InChannels, int OutChannels, int KernelH, int KernelW,
    int StrideH = 1, int StrideW = 1, int PadH = 0, int PadW = 0, int Groups = 1)
{
    public int OutH(int height) => (height + 2 * PadH - KernelH) / StrideH + 1;
    public int OutW(int width) => (width + 2 * PadW - KernelW) / StrideW + 1;
    public int WeightLength => OutChannels * (InChannels / Groups) * KernelH * KernelW;
    public bool IsDepthwise => Groups == InChannels && Groups == OutChannels;
    public bool IsPointwise => KernelH == 1 && KernelW == 1 && StrideH == 1 && StrideW == 1 && PadH == 0 && PadW == 0 && Groups == 1;
}

/// <summary>2-D convolution over NCHW float32 data, zero padding.</summary>
public static class Conv2d
{
    /// <summary>output[batch, OutChannels, OutH, OutW] = conv(input[batch, InChannels, height, width]) + bias (bias may be empty).</summary>
    public static void Forward(ReadOnlySpan<float> input, int batch, int height, int width, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias, in ConvGeometry g, Span<float> output)
    {
        // Placeholder reference path; replaced by im2col/GEMM and direct depthwise kernels.
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
}
