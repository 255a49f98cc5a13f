namespace Qsvit.Tensors;

/// <summary>
/// The float32 summation order of a dense convolution, chosen to be the one PyTorch's CPU backend (oneDNN's AVX-512
/// direct and 1x1 kernels, as PyTorch 2.11 runs SDTv2 with two or more threads) uses, so that outputs agree bit for bit.
/// That matters for spiking networks: a membrane potential a few ulps from its threshold fires or not depending on the
/// last bit, and one flipped spike spreads through every later layer.
/// <list type="bullet">
/// <item>Direct (k×k, strided or padded) convolutions: input channels in blocks of 16; each block is summed over
/// (ky, kx, channel) from zero, and the block sums are added to the output in turn. A bias is added after the first block.</item>
/// <item>1×1 stride-1 convolutions: channels summed in order, in segments whose length follows oneDNN's
/// <c>reduce_blocking</c> heuristic for the shape; each segment summed from zero and added. The bias starts the first segment.</item>
/// </list>
/// Every sum is a chain of fused multiply-adds. Found by probing PyTorch on the device (bench/pytorch/order_probe.py).
/// </summary>
internal static class ReductionOrder
{
    private const int Block = 16; // oneDNN's channel block (one AVX-512 register of float32)

    /// <summary>Reduction positions in summation order, each a flat (channel, ky, kx) index into a filter of one group.</summary>
    public static int[] TapOrder(int channels, int kernelH, int kernelW)
    {
        var order = new int[channels * kernelH * kernelW];
        int p = 0;
        for (int c0 = 0; c0 < channels; c0 += Block)
            for (int ky = 0; ky < kernelH; ky++)
                for (int kx = 0; kx < kernelW; kx++)
                    for (int c = c0; c < Math.Min(channels, c0 + Block); c++)
                        order[p++] = (c * kernelH + ky) * kernelW + kx;
        return order;
    }

    /// <summary>Length of each separately summed segment of the reduction (in <see cref="TapOrder"/> positions) and whether the bias comes after the first.</summary>
    public static (int Segment, bool BiasAfterFirst) Segments(in ConvGeometry g, int height, int width)
    {
        int cinG = g.InChannels / g.Groups, coutG = g.OutChannels / g.Groups;
        if (g.IsPointwise && cinG % Block == 0 && coutG % Block == 0)
            return (PointwiseSegment(cinG, coutG, height, width), false);
        return (Block * g.KernelH * g.KernelW, true);
    }

    /// <summary>
    /// oneDNN's forward <c>reduce_blocking</c> for its AVX-512 1×1 kernel when each thread has at least one image's
    /// worth of rows (8·minibatch ≥ threads): 80 channels for mid-sized maps with ≤ 256 outputs, else 512 or 256, cut
    /// further where the input rows would alias in a 16-way L2. A 1-D convolution is a map of height 1.
    /// </summary>
    internal static int PointwiseSegment(int channels, int outChannels, int height, int width)
    {
        const int smallSpatial = 10, bigSpatial = 28, bigLoadDim = 256;
        int spatial = height, pixels = height * width;
        int maxRegs = 9, minRegs = 6;
        if (outChannels > 128 && outChannels < bigLoadDim && spatial > smallSpatial && spatial < bigSpatial)
            (maxRegs, minRegs) = (6, 5);
        int ur = 1;
        for (int u = maxRegs; u >= minRegs; u--)
            if (spatial >= 14 ? spatial % u == 0 : pixels % u == 0)
            {
                ur = u;
                break;
            }
        if (ur == 1)
        {
            ur = Math.Min(maxRegs, pixels);
            int tail = pixels % maxRegs;
            for (int u = maxRegs; u >= minRegs; u--)
            {
                int t = pixels % u;
                if (t > tail || t == 0)
                {
                    ur = u;
                    tail = t;
                    if (t == 0) break;
                }
            }
        }
        int blocking = outChannels <= bigLoadDim && spatial > smallSpatial && spatial < bigSpatial ? Math.Min(channels, 80)
            : spatial > smallSpatial ? Math.Min(channels, 512) : Math.Min(channels, 256);
        const int waySize = 64 * 1024 / sizeof(float), maxHits = 7;
        if ((long)pixels * blocking > waySize * maxHits)
        {
            int blocks = blocking / Block, wayLines = waySize / Block;
            for (int start = 0; start < ur; start++)
                for (int off = start, hits = 0; off < pixels * blocks; off += wayLines)
                {
                    if (off % pixels >= ur || ++hits < maxHits) continue;
                    blocking = Math.Min(blocking, Block * Math.Max(1, (off + wayLines) / pixels));
                    break;
                }
        }
        return blocking;
    }
}
