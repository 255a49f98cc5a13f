namespace Qsvit.Backends.Cuda;

/// <summary>RepConv's body with its BN-padded depthwise 3×3 computed inside the real-input 1×1's packing (<see cref="DepthwiseSplitKernels"/>).</summary>
public sealed partial class CudaBackend
{
    /// <summary>Map pixels from which <see cref="DepthwiseSplitPays"/> (8×8; measured at the 55M's 14×14).</summary>
    internal const int DepthwiseSplitMinPixels = 64;

    /// <summary>Tests: the spike GEMM engine (null with <c>--gemm fp32</c>).</summary>
    internal SpikeGemmOps? SpikeOps => _spike;

    /// <summary>
    /// Whether RepConv's body on h × w maps runs as the first 1×1, then one kernel for the depthwise conv and the real 1×1's
    /// bf16 split, then that layer's bf16 GEMM and epilogue (<see cref="SpikeGemmOps.DepthwiseSplit"/>): the depthwise and
    /// real layers of a kind it reproduces bit for bit (<see cref="SpikeGemmOps.DepthwiseSplitFits"/>: the real layer's codes
    /// on cuBLAS's bf16 path or its fallback, as <see cref="GpuSpikeConv.RealInputPays"/> takes them at this size), on maps
    /// of at least <see cref="DepthwiseSplitMinPixels"/>. Measured on an H200 (BENCHMARKS.md, ninth session, branch
    /// <c>dwreal</c>) at the 55M's 512 and 640 channels at 14×14: 0.77x / 0.79x the three ops' time (6.48 against 8.37 and
    /// 2.85 against 3.63 ms a pass), the 55M at batch 32 1.064x the images/s; from 4×4 (CIFAR's 192-channel stage) the CIFAR
    /// model ran 0.995x the images/s (the ninth session's merged build), so smaller maps run the three ops.
    /// </summary>
    internal bool DepthwiseSplitPays(ConvLayer depthwise, ConvLayer pointwise, int height, int width) =>
        _spike is not null && depthwise is CudaConvLayer { Gpu: { } dw } && pointwise is CudaConvLayer { RealCodes: { } real } pw
        && (long)height * width >= DepthwiseSplitMinPixels && GpuSpikeConv.RealInputPays(pw.Geometry, height, width, pw.RealCodesFused)
        && _spike.DepthwiseSplitFits(dw, real, height, width);

    public string? RepConvEngine(ConvLayer first, ConvLayer depthwise, ConvLayer pointwise, int height, int width) =>
        DepthwiseSplitPays(depthwise, pointwise, height, width)
            ? $"{first.EngineAt(height, width)}; depthwise 3x3 inside the bf16 split; {pointwise.EngineAt(height, width)}"
            : null;

    /// <summary>
    /// <see cref="RepConv"/> where <see cref="DepthwiseSplitPays"/>: a first 1×1 on the packed int8 path
    /// (<see cref="SpikeGemmOps.SumsFeedDepthwise"/>) leaves its int32 sums for the kernel, which applies its epilogue (its
    /// map is never written); any other first layer runs <see cref="Conv"/> into a map the kernel reads.
    /// </summary>
    /// <param name="packed">The first 1×1's spikes packed for all frames already (<see cref="RepConvs"/>), or null.</param>
    private void RunDepthwiseSplit(ConvLayer first, DeviceBuffer padValues, ConvLayer depthwise, ConvLayer pointwise, DeviceBuffer input, int frames,
        int height, int width, DeviceBuffer output, DeviceBuffer? packed = null)
    {
        var dw = ((CudaConvLayer)depthwise).Gpu!;
        var real = ((CudaConvLayer)pointwise).RealCodes!;
        int mark = Mark();
        var (chunk, columnFloats, sumFloats) = SpikeGemmOps.Plan(real, frames, height, width, ColumnBudget);
        var columns = V(Rent(columnFloats));
        var sums = V(Rent(sumFloats));
        if (first is CudaConvLayer { Spike: { } spike } && _spike!.SumsFeedDepthwise(spike, frames, height, width))
        {
            var (packedFloats, firstSums) = SpikeGemmOps.FirstFloats(spike, chunk, height, width);
            _spike.DepthwiseSplit(spike, V(input), V(packed ?? Rent(packedFloats)), V(Rent(firstSums)), dw, V(padValues), real, frames, height, width, V(output),
                columns, sums, chunk, packedAlready: packed is not null);
        }
        else
        {
            if (packed is not null) throw new ArgumentException("spikes packed ahead need a first 1×1 whose sums feed the depthwise kernel", nameof(packed));
            var map = Rent((long)frames * dw.Geometry.InChannels * height * width);
            Conv(first, input, frames, height, width, map);
            _spike!.DepthwiseSplit(null, V(map), default, default, dw, V(padValues), real, frames, height, width, V(output), columns, sums, chunk);
        }
        Release(mark);
    }

    /// <summary>
    /// <see cref="IBackend.RepConvs"/>: where each conv runs <see cref="RunDepthwiseSplit"/> from its first 1×1's sums over
    /// all frames in one chunk (<see cref="SharesPacking"/>), the spikes are packed once for all of them (an attention
    /// block's q, k and v packed the same 14×14 map three times: ~35 µs each on the 55M, latency-bound); else
    /// <see cref="RepConv"/> one by one. Each output is RepConv's, bit for bit.
    /// </summary>
    public void RepConvs(ReadOnlySpan<RepConvLayers> convs, DeviceBuffer input, int frames, int height, int width, ReadOnlySpan<DeviceBuffer> outputs)
    {
        if (!SharesPacking(convs, frames, height, width))
        {
            IBackend.RunRepConvs(this, convs, input, frames, height, width, outputs);
            return;
        }
        IBackend.RequireOutputEach(convs, outputs);
        int mark = Mark();
        var first = ((CudaConvLayer)convs[0].First).Spike!;
        // Spikes a LIF handed over (SpikeReader) are packed already.
        bool packedIn = HandedOver(input, HandoverFor(SpikeReader.RepConvs(convs.ToArray(), frames, height, width), 1));
        var packed = packedIn ? input : Rent(SpikeGemmOps.FirstFloats(first, frames, height, width).Packed);
        if (!packedIn) _spike!.PackFirst(first, V(input), V(packed), frames, height, width);
        for (int i = 0; i < convs.Length; i++)
            RunDepthwiseSplit(convs[i].First, convs[i].PadValues, convs[i].Depthwise, convs[i].Pointwise, input, frames, height, width, outputs[i], packed);
        Release(mark);
    }

    /// <summary>
    /// Whether <see cref="RepConvs"/> packs the spikes once: two or more convs, each <see cref="DepthwiseSplitPays"/> with a
    /// first 1×1 whose sums feed the kernel (<see cref="SpikeGemmOps.SumsFeedDepthwise"/>), all frames in one chunk, and the
    /// same packed pixel (input channels padded to 16) for all.
    /// </summary>
    internal bool SharesPacking(ReadOnlySpan<RepConvLayers> convs, int frames, int height, int width)
    {
        if (convs.Length < 2 || _spike is null) return false;
        int cp = -1;
        foreach (var c in convs)
        {
            if (!DepthwiseSplitPays(c.Depthwise, c.Pointwise, height, width) || c.First is not CudaConvLayer { Spike: { } spike }
                || !_spike.SumsFeedDepthwise(spike, frames, height, width)
                || SpikeGemmOps.Plan(((CudaConvLayer)c.Pointwise).RealCodes!, frames, height, width, ColumnBudget).Chunk < frames)
                return false;
            if (cp >= 0 && spike.Cp != cp) return false;
            cp = spike.Cp;
        }
        return true;
    }
}
