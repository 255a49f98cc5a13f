using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Qsvit.Backends.Cuda.Native;
using Qsvit.Tensors;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// <see cref="IBackend"/> on an NVIDIA GPU through ILGPU (or on ILGPU's CPU accelerator, for tests). Every op is queued
/// on the accelerator's default stream in call order; only <see cref="Download"/> and recorder reads wait. Weights stay
/// on the device from <see cref="CreateConv"/> until the layer is disposed. The workspace is a stack of device
/// allocations reused pass after pass, so its high-water mark (<see cref="WorkspaceBytes"/>) is the activation peak.
/// GEMM-shaped work (dense convolutions, im2col'd in bounded chunks, and SDSA) goes through cuBLAS when it loads (fp32,
/// no TF32), the rest through ILGPU kernels. Without cuBLAS (or with <c>useCublas: false</c>) every op runs on the ILGPU
/// kernels, which sum in the CPU backend's order (<see cref="GpuKernels"/>), so results agree with it to the last bit on
/// most elements. Either way results are identical from run to run.
/// </summary>
public sealed partial class CudaBackend : IBackend
{
    private readonly GpuDevice _device;
    private readonly GpuOps _ops;
    private readonly Accelerator _acc;
    private readonly List<CudaBuffer> _slots = new();
    private Cublas? _blas;
    private readonly LibraryGemm? _gemm;
    private readonly SpikeGemmOps? _spike;
    private readonly bool _integer, _split;
    private int _next;

    /// <summary>im2col columns of one chunk of frames: at most this many floats (256 MiB).</summary>
    public const long ColumnBudget = 64L << 20;

    /// <summary>Runs on <paramref name="device"/> (which the backend then owns), e.g. <see cref="GpuDevice.OpenCpu"/> in tests.</summary>
    /// <param name="spikeGemm">How dense spike-input convs run (<see cref="SpikeInputGemm"/>).</param>
    /// <param name="splitWithoutCublas">Tests: run fp32 spike-input convs as bf16 pieces on the fallback kernels too.</param>
    /// <param name="implicitMaxRows">Benchmarks: another bound for the implicit-GEMM rule (<see cref="GpuSpikeConv.ImplicitPays"/>).</param>
    /// <param name="tiledMinRows">Benchmarks: other bounds for the tiled implicit GEMM (<see cref="GpuSpikeConv.TiledPays"/>).</param>
    /// <param name="tiledMaxRows">See <paramref name="tiledMinRows"/>.</param>
    /// <param name="tiledRowWarps">Benchmarks: one tiled block shape for every layer (2 or 4; 0: <see cref="GpuSpikeConv.TiledRowWarps"/>).</param>
    /// <param name="tiledFuses">Benchmarks: false runs the separate epilogue after the tiled kernel everywhere.</param>
    /// <param name="pointwiseMaxRows">Benchmarks: another bound for the fused pointwise rule (<see cref="PointwiseMmaKernels.FusedPays"/>).</param>
    public CudaBackend(GpuDevice device, DeviceSpec spec, bool useCublas = true, SpikeInputGemm spikeGemm = SpikeInputGemm.TensorCores,
        bool splitWithoutCublas = false, int implicitMaxRows = GpuSpikeConv.ImplicitMaxRows, int tiledMinRows = GpuSpikeConv.TiledMinRows,
        int tiledMaxRows = GpuSpikeConv.TiledMaxRows, int tiledRowWarps = 0, bool tiledFuses = true, int pointwiseMaxRows = PointwiseMmaKernels.FusedMaxRows)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        _acc = device.Accelerator;
        Device = spec;
        GemmEngine = "ILGPU kernels";
        try { _ops = new GpuOps(_acc); }
        catch (Exception e)
        {
            try { device.Dispose(); }
            catch (Exception) { /* keep the first error */ }
            throw new QsvitException($"{spec}: the CUDA kernels could not be compiled or loaded on {device.Description}: {e.Message}", e);
        }
        if (useCublas && device.IsCuda)
        {
            if (Cublas.TryCreate(out var blas, out string why))
            {
                blas.SetStream(((CudaStream)_acc.DefaultStream).StreamPtr);
                _blas = blas;
                _gemm = LibrarySgemm;
                GemmEngine = $"cuBLAS ({blas.LibraryPath})";
            }
            else GemmEngine = $"ILGPU kernels (no cuBLAS: {why})";
            _acc.Bind(); // cuBLAS may have made the runtime's primary context current; ILGPU's is the one to use
        }
        if (spikeGemm != SpikeInputGemm.Fp32)
        {
            try { _spike = new SpikeGemmOps(_acc, _blas, spikeGemm, implicitMaxRows, tiledMinRows, tiledMaxRows, tiledRowWarps, tiledFuses, pointwiseMaxRows); }
            catch (Exception e) when (e is not QsvitException)
            {
                Dispose();
                throw new QsvitException($"{spec}: the spike GEMM kernels could not be compiled or loaded on {device.Description}: {e.Message}", e);
            }
            _integer = true;
            _split = _blas is not null || splitWithoutCublas;
        }
        SpikeEngine = _spike is null ? "fp32 (--gemm fp32)"
            : _split ? $"integer codes on int8, fp32 weights as bf16x3, {(_blas is null ? "ILGPU kernels" : "tensor cores")}"
            : "integer codes on int8 (ILGPU kernels), fp32 weights in fp32 (no cuBLAS)";
        // On a Hopper GPU, say whether the 3×3 integer convs could use wgmma (and why not).
        if (_spike?.WgmmaUnavailable is { } wgmmaWhy && _device.IsCuda && Sm90aKernels.Supported(_device.Accelerator))
            SpikeEngine += $"; wgmma unavailable ({wgmmaWhy})";
    }

    /// <summary>The CUDA GPU <paramref name="index"/>, or a <see cref="QsvitException"/> that names what was looked for.</summary>
    /// <param name="useCublas">GEMM-shaped work through cuBLAS when it loads; false keeps everything on the ILGPU kernels.</param>
    public static CudaBackend Open(int index, ComputeOptions? options = null, bool useCublas = true)
    {
        // host-side threads are not used by the GPU kernels
        return new CudaBackend(GpuDevice.OpenCuda(index), DeviceSpec.Cuda(index), useCublas, options?.SpikeGemm ?? SpikeInputGemm.TensorCores);
    }

    /// <summary>The backend's kernels on ILGPU's CPU accelerator (slow; for tests without a GPU).</summary>
    public static CudaBackend OnCpuAccelerator() => new(GpuDevice.OpenCpu(), DeviceSpec.Cuda(0));

    /// <summary>On ILGPU's CPU accelerator with the spike-input path chosen (<paramref name="split"/>: fp32 weights as bf16 pieces on the fallback kernels).</summary>
    internal static CudaBackend OnCpuAccelerator(SpikeInputGemm spikeGemm, bool split) =>
        new(GpuDevice.OpenCpu(), DeviceSpec.Cuda(0), spikeGemm: spikeGemm, splitWithoutCublas: split);

    /// <summary>On ILGPU's CPU accelerator with CUDA-sized groups (four warps of 32), where the fused pointwise kernel runs too.</summary>
    internal static CudaBackend OnCpuAcceleratorWithWarps(SpikeInputGemm spikeGemm = SpikeInputGemm.TensorCores, bool split = false) =>
        new(GpuDevice.OpenCpu(threadsPerWarp: 32, warpsPerGroup: 4), DeviceSpec.Cuda(0), spikeGemm: spikeGemm, splitWithoutCublas: split);

    public DeviceSpec Device { get; }
    public string Description => $"{_device.Description}, GEMMs by {GemmEngine}; spike-input convs: {SpikeEngine}";
    /// <summary>Spike-input layers built from integer codes (<see cref="PackedConvWeights"/>) sum them exactly on the integer path.</summary>
    public bool RunsIntegerCodes => _integer;
    /// <summary>How dense spike-input convolutions run (<see cref="SpikeInputGemm"/>).</summary>
    public string SpikeEngine { get; }
    /// <summary>What runs the GEMM-shaped work: cuBLAS (and its file) or the ILGPU kernels (and why).</summary>
    public string GemmEngine { get; }
    public bool IsCpuAccelerator => !_device.IsCuda;
    internal GpuDevice GpuDevice => _device;
    internal GpuOps Ops => _ops;

    /// <summary>Bytes of device memory the workspace holds: the activation peak of the largest pass so far.</summary>
    public long WorkspaceBytes => _slots.Sum(s => s.Length) * sizeof(float);

    /// <summary>
    /// What the device's free memory holds (<see cref="BatchSizing.FromFreeMemory"/>), keeping room for one im2col chunk
    /// (<see cref="ColumnBudget"/>) and cuBLAS; the workspace this backend already holds counts as free for the next pass.
    /// 8 on ILGPU's CPU accelerator.
    /// </summary>
    public int DefaultBatchSize(int height, int width, long activationBytesPerImage)
    {
        if (!_device.IsCuda) return 8;
        long free = ((CudaAccelerator)_acc).GetFreeMemory() + WorkspaceBytes;
        return BatchSizing.FromFreeMemory(free, ColumnBudget * sizeof(float) + (256L << 20), activationBytesPerImage, height, width);
    }

    // ---- memory --------------------------------------------------------------------------------------------------------

    public DeviceBuffer Rent(long length)
    {
        length = Math.Max(1, length);
        if (_next == _slots.Count) _slots.Add(new CudaBuffer(AllocateRaw(length), workspace: true));
        else if (_slots[_next].Length < length)
        {
            // The old allocation may still be read by queued kernels of this pass's earlier ops.
            _acc.Synchronize();
            _slots[_next].Memory.Dispose();
            _slots[_next].Memory = AllocateRaw(length);
        }
        return _slots[_next++];
    }

    public int Mark() => _next;
    public void Release(int mark)
    {
        _next = mark;
        if (_handedOver is { Slot: var slot } && slot >= mark) _handedOver = null;
    }

    public DeviceBuffer Allocate(long length) => new CudaBuffer(AllocateRaw(Math.Max(1, length)), workspace: false);

    private MemoryBuffer1D<float, Stride1D.Dense> AllocateRaw(long length)
    {
        try { return _acc.Allocate1D<float>(length); }
        catch (Exception e) when (e is not QsvitException)
        {
            throw new QsvitException($"{Device}: could not allocate {length * 4.0 / (1 << 20):N0} MiB of GPU memory " +
                $"(workspace holds {WorkspaceBytes / (1024.0 * 1024):N0} MiB): use a smaller --batch ({e.Message})", e);
        }
    }

    /// <summary>Uploads of at least this many floats (1 MiB) go through the page-locked staging buffer (<see cref="Upload"/>).</summary>
    public const int PinnedUploadFloats = 1 << 18;

    /// <summary>Floats per piece of a pinned upload: the host copies piece i + 1 while the copy engine sends piece i.</summary>
    private const int PinnedPieceFloats = 1 << 20;

    private PageLockedArray1D<float>? _staging;
    /// <summary>Whether a copy from <see cref="_staging"/> may still be queued (cleared where the stream is waited for).</summary>
    private bool _stagingQueued;

    /// <summary>
    /// destination[offset ..] = source. Large uploads on a GPU (the images of a pass) are copied by the host's cores into a
    /// page-locked staging buffer in pieces, each sent by an asynchronous DMA as soon as it is there: pageable memory
    /// moves at a fraction of the bus's rate, since the driver stages it itself, one thread, piece after piece.
    /// </summary>
    public void Upload(ReadOnlySpan<float> source, DeviceBuffer destination, long offset = 0)
    {
        if (source.IsEmpty) return;
        var target = V(destination).SubView(offset, source.Length);
        if (!_device.IsCuda || source.Length < PinnedUploadFloats)
        {
            ((ArrayView1D<float, Stride1D.Dense>)target).CopyFromCPU(_acc.DefaultStream, source);
            return;
        }
        if (_staging is null || _staging.Length < source.Length)
        {
            _acc.Synchronize();
            _stagingQueued = false;
            _staging?.Dispose();
            _staging = _acc.AllocatePageLocked1D<float>(source.Length);
        }
        else if (_stagingQueued) _acc.DefaultStream.Synchronize(); // the last upload's DMA may still read the buffer
        _stagingQueued = true;
        Send(source, _staging.Span, target, _acc.DefaultStream);
    }

    private PageLockedArray1D<float>? _aheadStaging;
    private AcceleratorStream? _copyStream;

    /// <summary>
    /// On a GPU the copy runs on a stream of its own (the copy engine works while the compute stream runs what was queued
    /// before) through a second page-locked buffer, and the call waits for that stream alone: the next pass's images
    /// upload while this one computes.
    /// </summary>
    public void UploadAhead(ReadOnlySpan<float> source, DeviceBuffer destination)
    {
        if (!_device.IsCuda)
        {
            Upload(source, destination);
            return;
        }
        _copyStream ??= _acc.CreateStream();
        var target = V(destination).SubView(0, source.Length);
        if (source.Length < PinnedUploadFloats)
        {
            ((ArrayView1D<float, Stride1D.Dense>)target).CopyFromCPU(_copyStream, source);
            _copyStream.Synchronize();
            return;
        }
        if (_aheadStaging is null || _aheadStaging.Length < source.Length)
        {
            _aheadStaging?.Dispose();
            _aheadStaging = _acc.AllocatePageLocked1D<float>(source.Length);
        }
        Send(source, _aheadStaging.Span, target, _copyStream);
        _copyStream.Synchronize();
    }

    /// <summary>target = source through <paramref name="staging"/>: the host copies piece i + 1 while <paramref name="stream"/> sends piece i.</summary>
    private static void Send(ReadOnlySpan<float> source, Span<float> staging, ArrayView<float> target, AcceleratorStream stream)
    {
        IntPtr device = target.LoadEffectiveAddressAsPtr();
        unsafe
        {
            fixed (float* from = source, pinned = staging)
            {
                var host = (IntPtr)pinned;
                for (int start = 0; start < source.Length; start += PinnedPieceFloats)
                {
                    int n = Math.Min(PinnedPieceFloats, source.Length - start);
                    CopyParallel(from + start, staging.Slice(start, n));
                    CudaException.ThrowIfFailed(CudaAPI.CurrentAPI.MemcpyAsync(device + start * sizeof(float), host + start * sizeof(float),
                        n * sizeof(float), stream));
                }
            }
        }
    }

    /// <summary>to = from, in slices of 64 Ki floats spread over the host's cores.</summary>
    private static unsafe void CopyParallel(float* from, Span<float> to)
    {
        const int slice = 1 << 16;
        int slices = (to.Length + slice - 1) / slice;
        fixed (float* dst = to)
        {
            float* d = dst, s = from;
            int length = to.Length;
            Parallel.For(0, slices, i =>
            {
                int at = i * slice, n = Math.Min(slice, length - at);
                new ReadOnlySpan<float>(s + at, n).CopyTo(new Span<float>(d + at, n));
            });
        }
    }

    public void Download(DeviceBuffer source, long offset, Span<float> destination)
    {
        if (destination.IsEmpty) return;
        var view = (ArrayView1D<float, Stride1D.Dense>)V(source).SubView(offset, destination.Length);
        view.CopyToCPU(_acc.DefaultStream, destination);
        _acc.DefaultStream.Synchronize();
        _stagingQueued = false;
    }

    public void Copy(DeviceBuffer source, long srcOffset, DeviceBuffer destination, long dstOffset, long length)
    {
        if (length == 0) return;
        ArrayView1D<float, Stride1D.Dense> from = V(source).SubView(srcOffset, length), to = V(destination).SubView(dstOffset, length);
        from.CopyTo(_acc.DefaultStream, to);
    }

    public void Synchronize()
    {
        _acc.Synchronize();
        _stagingQueued = false;
    }

    // ---- layers --------------------------------------------------------------------------------------------------------

    public ConvLayer CreateConv(ConvLayerSpec spec)
    {
        var g = spec.Geometry;
        var layer = new CudaConvLayer(_acc, spec, _integer, _split);
        string library = _blas is null ? "ILGPU" : "cuBLAS";
        layer.RealCodesFused = layer.RealCodes is { } real && _spike is { } realOps && realOps.Fused(real);
        layer.RealCodesEngine = layer.RealCodesFused
            ? "fused 1x1, bf16 mma.sync (codes x input as bf16x3)"
            : $"{library} bf16 tensor cores (codes x input as bf16x3)";
        layer.Engine = layer.Spike is not null
            ? spec.Weights is PackedConvWeights && _integer ? $"{library} int8 tensor cores (exact)" : $"{library} bf16x3 tensor cores"
            : g.IsDepthwise ? "ILGPU depthwise"
            : _gemm is null || g.Groups != 1 ? "ILGPU implicit GEMM"
            : g.IsPointwise ? "cuBLAS SGEMM" : "im2col + cuBLAS SGEMM";
        if (layer.Spike is { Integer: true, Pointwise: true } pointwise && _spike is { } fusedOps)
            layer.SpikeEngineAt = (h, w) => fusedOps.Fused(pointwise, 1, h, w, 0) ? "fused 1x1, int8 mma.sync (exact)"
                : fusedOps.Tf32(pointwise, 1, h, w, 0) ? "cuBLAS TF32 tensor cores, spikes in place (exact)" : null;
        else if (layer.Spike is { Integer: true } spike && _spike is { } ops)
        {
            // Calls with and without a LIF after them may run on different kernels: both are named where they differ.
            string Engine(bool lif) => ops.Pipelined(spike, lif) && ops.Wgmma(spike, lif)
                    ? lif ? "pipelined implicit GEMM + fused LIF epilogue, int8 wgmma, cp.async stages (exact)" : "pipelined implicit GEMM, int8 wgmma, cp.async stages; separate epilogue (exact)"
                : ops.Pipelined(spike, lif) ? "pipelined implicit GEMM + fused epilogue, int8 mma.sync, cp.async stages (exact)"
                : ops.Tiled(spike, lif) ? lif ? "tiled implicit GEMM, int8 mma.sync, shared memory (exact)" : "tiled implicit GEMM + fused epilogue, int8 mma.sync (exact)"
                : "implicit GEMM, int8 mma.sync (exact)";
            string plain = Engine(false), underLif = Engine(true);
            string engine = plain == underLif ? plain : $"{plain}; under a LIF: {underLif}";
            string im2col = layer.Engine;
            layer.SpikeEngineAt = (h, w) => ops.Implicit(spike, h, w) && ops.Implicit(spike, h, w, lif: true) ? engine
                : ops.Implicit(spike, h, w) ? $"{plain}; under a LIF: {im2col}"
                : ops.Implicit(spike, h, w, lif: true) ? $"{im2col}; under a LIF: {underLif}" : null;
        }
        return layer;
    }

    public HeadLayer CreateHead(IReadOnlyList<LinearWeights> heads, int features, int classes) => new CudaHeadLayer(_acc, heads, features, classes);

    // ---- ops -----------------------------------------------------------------------------------------------------------

    public void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output)
    {
        var l = layer as CudaConvLayer ?? throw new ArgumentException($"a {layer.GetType().Name} was not made by the CUDA backend", nameof(layer));
        var g = l.Geometry;
        bool packedIn = HandedOver(input, HandoverFor(SpikeReader.Conv(layer, frames, height, width), 1));
        int mark = Mark();
        if (ConvSpike(l, height, width) is { } spike)
        {
            var (chunk, columnFloats, sumFloats) = SpikeGemmOps.Plan(spike, frames, height, width, ColumnBudget, implicitGemm: _spike!.Implicit(spike, height, width),
                fused: _spike.InPlace(spike, frames, height, width, 0));
            var cols = V(Rent(columnFloats));
            _spike!.Conv(spike, V(input), frames, height, width, V(output), cols, V(Rent(sumFloats)), chunk, inputPacked: packedIn);
            Release(mark);
            return;
        }
        if (GpuOps.SmallInputFits(g, height, width))
        {
            _ops.SmallInputConv(l.Gpu!, V(input), frames, height, width, V(output));
            return;
        }
        if (_gemm is null || g.IsDepthwise || g.Groups != 1)
        {
            _ops.Conv(l.Gpu!, V(input), frames, height, width, V(output));
            return;
        }
        long perFrame = GpuOps.ColumnsPerFrame(g, height, width);
        var columns = perFrame == 0 ? default : V(Rent(Math.Min((long)frames * perFrame, Math.Max(perFrame, ColumnBudget))));
        _ops.ConvByGemm(l.Gpu!, V(input), frames, height, width, V(output), columns, ColumnBudget, _gemm);
        Release(mark);
    }

    /// <summary>
    /// A spike-input layer of integer codes runs the LIF in its int8 GEMM's epilogue: each thread takes the T steps of its
    /// outputs from the GEMM's sums and writes only the spikes (no pre-activation map written and read back); the values
    /// are the epilogue's and the LIF kernel's, bit for bit. Other layers run <see cref="Conv"/>, then <see cref="Lif"/>
    /// (fused, the bf16 pieces of fp32 weights measured slower on an H200: BENCHMARKS.md), and so does a pass with a recorder,
    /// which sees the separate ops.
    /// </summary>
    public void ConvLif(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
        int timesteps, float threshold, int lifLayer, LifRecorder? recorder)
    {
        var l = layer as CudaConvLayer ?? throw new ArgumentException($"a {layer.GetType().Name} was not made by the CUDA backend", nameof(layer));
        var g = l.Geometry;
        bool packedIn = HandedOver(input, HandoverFor(SpikeReader.ConvLif(layer, frames, height, width), timesteps));
        if (recorder is null && l.Spike is { Integer: true } spike && timesteps > 0 && frames % timesteps == 0 && frames < 1 << 21)
        {
            int mark = Mark();
            var (chunk, columnFloats, sumFloats) = ConvLifPlan(spike, frames, height, width, timesteps);
            _spike!.Conv(spike, V(input), frames, height, width, V(spikes), V(Rent(columnFloats)), V(Rent(sumFloats)), chunk, timesteps, threshold, inputPacked: packedIn);
            Release(mark);
            return;
        }
        if (packedIn) throw new InvalidOperationException("spikes handed over packed reached a ConvLif with a recorder");
        Conv(layer, input, frames, height, width, preActivation);
        Lif(preActivation, spikes, (long)frames * g.OutChannels * g.OutH(height) * g.OutW(width), timesteps, threshold, recorder, lifLayer);
    }

    /// <summary>The first layer's spike engine where <see cref="Conv"/> runs it on the spike-input path (the real-input codes where they pay), else null.</summary>
    private static GpuSpikeConv? ConvSpike(CudaConvLayer l, int height, int width) =>
        l.RealCodes is { } real && GpuSpikeConv.RealInputPays(l.Geometry, height, width, l.RealCodesFused) ? real : l.Spike;

    /// <summary>Chunks of <see cref="ConvLif"/>'s integer path (and of a hidden-packed ConvLifConv's first layer, which is never in place).</summary>
    private (int Chunk, long ColumnFloats, long SumFloats) ConvLifPlan(GpuSpikeConv spike, int frames, int height, int width, int timesteps) =>
        SpikeGemmOps.Plan(spike, frames, height, width, ColumnBudget, timesteps, _spike!.Implicit(spike, height, width, lif: true),
            _spike.InPlace(spike, frames, height, width, timesteps));

    /// <summary>
    /// Without a recorder or with the spike counter (which the kernels feed), two integer 1×1 layers (the MLP's fc1 → LIF →
    /// fc2) run as one kernel whose hidden spikes stay in shared memory (<see cref="SpikeGemmOps.Mlp"/> says where), and so
    /// do two integer 3×3 layers (ConvBlock's conv1 → LIF → conv2, <see cref="SpikeGemmOps.ConvChain"/>);
    /// <paramref name="preActivation"/> and <paramref name="spikes"/> stay unwritten. Otherwise <see cref="ConvLif"/>, then
    /// <see cref="Conv"/>; without a recorder, where <see cref="SpikeGemmOps.HiddenPacked"/> holds, the first layer's LIF writes
    /// its spikes into <paramref name="spikes"/> as the second layer's packed int8 input, which the second reads without
    /// packing. The output and the counts are the same bit for bit.
    /// </summary>
    public void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation, DeviceBuffer spikes,
        int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output)
    {
        if (FusedChain(first, second, frames, height, width, timesteps, recorder) is var (a, b, conv))
        {
            var counter = recorder as CudaSpikeCounter;
            if (counter is not null && lifLayer >= counter.Layers)
                throw new ArgumentException($"LIF layer {lifLayer} ran, the counter was made for {counter.Layers}", nameof(lifLayer));
            if (conv)
                _spike!.RunConvChain(a, b, V(input), frames, height, width, V(output), timesteps, threshold, counter?.Spikes ?? default, counter is null ? -1 : lifLayer);
            else
                _spike!.RunMlp(a, b, V(input), frames, height, width, V(output), timesteps, threshold, counter?.Spikes ?? default, counter is null ? -1 : lifLayer);
            counter?.AddNeurons(lifLayer, (long)frames * first.Geometry.OutChannels * height * width);
            return;
        }
        if (recorder is null && first is CudaConvLayer { Spike: { } producer } && second is CudaConvLayer { Spike: { } consumer } && _spike!.HiddenPacked(producer, consumer, frames, height, width, timesteps)
            && SpikeGemmOps.PackedFits(consumer, frames, height, width, V(spikes).Length))
        {
            // The hidden spikes as the second layer's packed int8 input, in the spikes buffer (a quarter of its bytes).
            var hidden = V(spikes);
            bool packedIn = HandedOver(input, HandoverFor(SpikeReader.ConvLif(first, frames, height, width), timesteps));
            int mark = Mark();
            var (chunk, columnFloats, sumFloats) = ConvLifPlan(producer, frames, height, width, timesteps);
            _spike.Conv(producer, V(input), frames, height, width, hidden, V(Rent(columnFloats)), V(Rent(sumFloats)), chunk, timesteps, threshold, inputPacked: packedIn,
                outputPacked: true);
            Release(mark);
            (chunk, columnFloats, sumFloats) = SpikeGemmOps.Plan(consumer, frames, height, width, ColumnBudget, implicitGemm: _spike.Implicit(consumer, height, width), fused: false);
            _spike.Conv(consumer, hidden, frames, height, width, V(output), V(Rent(columnFloats)), V(Rent(sumFloats)), chunk, inputPacked: true);
            Release(mark);
            return;
        }
        IBackend.RunConvLifConv(this, first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder, second, output);
    }

    public string? ConvLifConvEngine(ConvLayer first, ConvLayer second, int frames, int height, int width, int timesteps, LifRecorder? recorder) =>
        FusedChain(first, second, frames, height, width, timesteps, recorder) switch
        {
            null => null,
            (_, _, true) => "fused 3x3 + lif + 3x3, int8 mma.sync (exact)",
            _ => "fused 1x1 + lif + 1x1, int8 mma.sync (exact)",
        };

    /// <summary>
    /// The two layers' integer codes where their ConvLifConv runs fused, and whether as 3×3 layers
    /// (<see cref="SpikeGemmOps.ConvChain"/>) rather than 1×1 ones (<see cref="SpikeGemmOps.Mlp"/>); else null.
    /// </summary>
    private (GpuSpikeConv First, GpuSpikeConv Second, bool Conv)? FusedChain(ConvLayer first, ConvLayer second, int frames, int height, int width, int timesteps,
        LifRecorder? recorder)
    {
        if (recorder is not (null or CudaSpikeCounter) || _spike is null || first is not CudaConvLayer { Spike: { } a } || second is not CudaConvLayer { Spike: { } b })
            return null;
        if (_spike.Mlp(a, b, frames, height, width, timesteps)) return (a, b, false);
        if (_spike.ConvChain(a, b, frames, height, width, timesteps)) return (a, b, true);
        return null;
    }

    /// <summary>A layer of a few input channels (the stem) writes the copies from its kernel's registers; others run the two ops.</summary>
    public void ConvRepeat(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output, int times)
    {
        var l = layer as CudaConvLayer ?? throw new ArgumentException($"a {layer.GetType().Name} was not made by the CUDA backend", nameof(layer));
        var g = l.Geometry;
        if (l.Gpu is { } gpu && GpuOps.SmallInputFits(g, height, width))
        {
            _ops.SmallInputConv(gpu, V(input), frames, height, width, V(output), Math.Max(1, times));
            return;
        }
        Conv(layer, input, frames, height, width, output);
        RepeatBlock(output, (long)frames * g.OutChannels * g.OutH(height) * g.OutW(width), times);
    }

    /// <summary>A depthwise layer reads the border from <paramref name="padValues"/> as it stages its tiles (one kernel, no padded map); others pad first.</summary>
    public void ConvPadded(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output)
    {
        var l = layer as CudaConvLayer ?? throw new ArgumentException($"a {layer.GetType().Name} was not made by the CUDA backend", nameof(layer));
        if (l.Gpu is { } gpu && l.Geometry.IsDepthwise)
        {
            _ops.Conv(gpu, V(input), frames, height + 2 * pad, width + 2 * pad, V(output), V(padValues), pad);
            return;
        }
        IBackend.RunConvPadded(this, layer, input, frames, height, width, pad, padValues, output);
    }

    /// <summary>Where <see cref="DepthwiseSplitPays"/> the depthwise conv runs inside the real 1×1's packing (<see cref="DepthwiseSplitKernels"/>); else the three ops.</summary>
    public void RepConv(ConvLayer first, DeviceBuffer padValues, ConvLayer depthwise, ConvLayer pointwise, DeviceBuffer input, int frames, int height, int width,
        DeviceBuffer output)
    {
        if (DepthwiseSplitPays(depthwise, pointwise, height, width))
        {
            RunDepthwiseSplit(first, padValues, depthwise, pointwise, input, frames, height, width, output);
            return;
        }
        IBackend.RunRepConv(this, first, padValues, depthwise, pointwise, input, frames, height, width, output);
    }

    public void Pad(DeviceBuffer input, int frames, int channels, int height, int width, int pad, DeviceBuffer padValues, DeviceBuffer output) =>
        _ops.PadBorder(V(input), frames, channels, height, width, pad, V(padValues), V(output));

    public void RepeatBlock(DeviceBuffer x, long block, int times) => _ops.RepeatBlock(V(x), block, times);

    public void Add(DeviceBuffer x, DeviceBuffer y, long length) => _ops.Add(V(x), V(y), length);

    /// <summary>
    /// Without a recorder one kernel: each thread adds and runs the T steps of its neuron (x read once, y once), or, where
    /// <paramref name="next"/> packs the spikes (<see cref="HandoverFor"/>), hands them to it packed; with one, the two ops.
    /// </summary>
    public void AddLif(DeviceBuffer x, DeviceBuffer y, long length, DeviceBuffer spikes, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null)
    {
        if (recorder is null && HandOver(x, y, length, spikes, timesteps, threshold, next)) return;
        if (recorder is null)
        {
            _ops.AddLif(V(x), V(y), V(spikes), length, timesteps, threshold);
            return;
        }
        Add(x, y, length);
        Lif(x, spikes, length, timesteps, threshold, recorder, layer);
    }

    public void Lif(DeviceBuffer input, DeviceBuffer spikes, long length, int timesteps, float threshold, LifRecorder? recorder, int layer,
        SpikeReader? next = null)
    {
        if (recorder is null && HandOver(input, null, length, spikes, timesteps, threshold, next)) return;
        ArrayView<float> x = V(input), s = V(spikes);
        switch (recorder)
        {
            case null:
                _ops.Lif(x, s, length, timesteps, threshold, default, default, 0);
                break;
            case CudaSpikeCounter c:
                if (layer >= c.Layers) throw new ArgumentException($"LIF layer {layer} ran, the counter was made for {c.Layers}", nameof(layer));
                _ops.Lif(x, s, length, timesteps, threshold, default, c.Spikes, layer);
                c.AddNeurons(layer, length);
                break;
            case CudaMembraneReference r:
            {
                var (h, keptSpikes, norms) = r.NewChunk(layer, length);
                _ops.Lif(x, s, length, timesteps, threshold, h, default, 0);
                Copy(s, keptSpikes, length);
                _ops.SquaredDifference(h, default, length, default, default, norms, default, layer);
                break;
            }
            case CudaDriftMeter d:
            {
                var (refH, refS, slot) = d.NextChunk(layer, length);
                int mark = Mark();
                var h = V(Rent(length));
                _ops.Lif(x, s, length, timesteps, threshold, h, default, 0);
                _ops.SquaredDifference(h, refH, length, s, refS, d.DiffSums, d.Mismatches, slot);
                Release(mark);
                break;
            }
            case HostLifObserver o:
            {
                bool wantsH = o.Observer.WantsMembrane;
                int mark = Mark();
                var hBuf = wantsH ? Rent(length) : null;
                _ops.Lif(x, s, length, timesteps, threshold, hBuf is null ? default : V(hBuf), default, 0);
                var hostS = new float[length];
                var hostH = wantsH ? new float[length] : [];
                Download(spikes, 0, hostS);
                if (hBuf is not null) Download(hBuf, 0, hostH);
                long count = 0;
                foreach (float v in hostS) count += v != 0 ? 1 : 0;
                o.Observer.Observe(layer, o.Names[layer], hostH, hostS, count);
                Release(mark);
                break;
            }
            default:
                throw new ArgumentException($"{recorder.GetType().Name} was not made by the CUDA backend", nameof(recorder));
        }
    }

    private void Copy(ArrayView<float> from, ArrayView<float> to, long length)
    {
        ArrayView1D<float, Stride1D.Dense> a = from.SubView(0, length), b = to.SubView(0, length);
        a.CopyTo(_acc.DefaultStream, b);
    }

    public void SpikeDrivenAttention(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer output, int frames, int channels, int tokens, int heads, float scale)
    {
        if (channels % heads != 0) throw new ArgumentException($"{channels} channels do not split into {heads} heads");
        int d = channels / heads, planes = frames * heads, slice = d * tokens;
        if (GpuOps.SmallAttentionFits(d, tokens))
        {
            // Small planes (CIFAR's 16 tokens): one kernel, each plane's K, V, Q and kv in shared memory (spikes: exact).
            _ops.SmallAttention(V(q), V(k), V(v), V(output), planes, d, tokens, scale);
            return;
        }
        int mark = Mark();
        var kvBuffer = Rent((long)planes * d * d);
        var kv = V(kvBuffer);
        // kv = K·Vᵀ per plane (summed over the tokens), then out = (kvᵀ·Q)·scale: the CPU backend's two SGEMMs.
        if (_spike is not null && _spike.AttentionFits(d, tokens))
            _spike.Attention(V(q), V(k), V(v), V(output), planes, d, tokens, scale, V(Rent(SpikeGemmOps.AttentionFloats(planes, d, tokens))));
        else if (_blas is not null)
        {
            _blas.SgemmStridedBatched(RowMajorGemm.Dense(d, d, tokens, transB: true), 1f, Ptr(k), slice, Ptr(v), slice, 0f, Ptr(kvBuffer), d * d, planes);
            _blas.SgemmStridedBatched(RowMajorGemm.Dense(d, tokens, d, transA: true), scale, Ptr(kvBuffer), d * d, Ptr(q), slice, 0f, Ptr(output), slice, planes);
        }
        else
        {
            _ops.Gemm(planes, d, d, tokens, V(k), slice, tokens, 1, V(v), slice, 1, tokens, kv, d * d, d, 1);
            _ops.Gemm(planes, d, tokens, d, kv, d * d, 1, d, V(q), slice, tokens, 1, V(output), slice, tokens, 1, alpha: scale);
        }
        Release(mark);
    }

    /// <summary>
    /// Without a recorder or with the spike counter: on small planes (CIFAR's 16 tokens) one kernel for the five ops, each
    /// (image, head) taking its T frames in turn with the LIF membranes in shared memory; on planes up to 256 tokens and
    /// d ≤ 80 (the 55M's 196 tokens, d = 64 and 80) two kernels over bit-packed spikes (<see cref="BitAttentionKernels"/>);
    /// otherwise the five ops.
    /// </summary>
    public void LifAttentionLif(DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, int frames, int channels, int tokens, int heads, float scale,
        int timesteps, float threshold, float attentionThreshold, DeviceBuffer spikes, LifRecorder? recorder, int lifLayer)
    {
        if (channels % heads != 0) throw new ArgumentException($"{channels} channels do not split into {heads} heads");
        int d = channels / heads;
        var counter = recorder as CudaSpikeCounter;
        bool fusable = (recorder is null || counter is not null) && timesteps > 0 && frames % timesteps == 0;
        bool small = fusable && GpuOps.SmallAttentionLifFits(d, tokens);
        if (small || (fusable && GpuOps.BitAttentionTileTokens(d, tokens) > 0))
        {
            if (counter is not null && lifLayer + 3 >= counter.Layers)
                throw new ArgumentException($"LIF layer {lifLayer + 3} ran, the counter was made for {counter.Layers}", nameof(lifLayer));
            ArrayView<long> counts = counter?.Spikes ?? default;
            if (small)
                _ops.SmallAttentionLif(V(q), V(k), V(v), V(spikes), frames, timesteps, heads, d, tokens, scale, threshold, attentionThreshold, counts, lifLayer);
            else
            {
                int mark = Mark();
                _ops.BitAttentionLif(V(q), V(k), V(v), V(spikes), V(Rent(GpuOps.BitAttentionWorkspace(frames, channels, tokens))), frames, timesteps,
                    heads, d, tokens, scale, threshold, attentionThreshold, counts, lifLayer);
                Release(mark);
            }
            long n = (long)frames * channels * tokens;
            for (int i = 0; i < 4; i++) counter?.AddNeurons(lifLayer + i, n);
            return;
        }
        IBackend.RunLifAttentionLif(this, q, k, v, frames, channels, tokens, heads, scale, timesteps, threshold, attentionThreshold, spikes, recorder, lifLayer);
    }

    public void SpatialMean(DeviceBuffer x, int rows, int spatial, DeviceBuffer output) => _ops.SpatialMean(V(x), rows, spatial, V(output));

    public void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits)
    {
        var h = head as CudaHeadLayer ?? throw new ArgumentException($"a {head.GetType().Name} was not made by the CUDA backend", nameof(head));
        int frames = batch * timesteps, classes = h.Classes, f = h.Features;
        int mark = Mark();
        var perStep = new ArrayView<float>[h.Weights.Length];
        for (int i = 0; i < perStep.Length; i++)
        {
            perStep[i] = V(Rent((long)frames * classes));
            // yᵀ = W·featuresᵀ, so the bias is per row; element (frame, class) lands at frame·classes + class.
            _ops.Gemm(1, classes, frames, f, h.Weights[i].View, 0, f, 1, V(features), 0, 1, f, perStep[i], 0, 1, classes, h.Biases[i].View);
        }
        _ops.MeanOverTime(perStep[0], perStep.Length > 1 ? perStep[1] : default, V(logits), batch, classes, timesteps);
        Release(mark);
    }

    // ---- observers -----------------------------------------------------------------------------------------------------

    public SpikeCounter CreateSpikeCounter(int layers) => new CudaSpikeCounter(_acc, layers);
    public MembraneReference CreateMembraneReference(int layers) => new CudaMembraneReference(_acc, layers);

    public DriftMeter CreateDriftMeter(MembraneReference reference) => reference is CudaMembraneReference { Sealed: true } r
        ? new CudaDriftMeter(_acc, r)
        : throw new ArgumentException("the reference must be a sealed MembraneReference of the CUDA backend", nameof(reference));

    private void LibrarySgemm(int m, int n, int k, ArrayView<float> a, ArrayView<float> b, long strideB, ArrayView<float> c, long strideC, int batch,
        bool transB) =>
        _blas!.SgemmStridedBatched(RowMajorGemm.Dense(m, n, k, transB: transB), 1f, a.LoadEffectiveAddressAsPtr(), 0, b.LoadEffectiveAddressAsPtr(), strideB,
            0f, c.LoadEffectiveAddressAsPtr(), strideC, batch);

    private static IntPtr Ptr(DeviceBuffer b) => b is CudaBuffer c ? c.Memory.NativePtr
        : throw new ArgumentException($"a {b.GetType().Name} is not a CUDA buffer");

    public void Dispose()
    {
        _acc.Synchronize();
        _blas?.Dispose();
        _blas = null;
        _staging?.Dispose();
        _staging = null;
        _aheadStaging?.Dispose();
        _aheadStaging = null;
        _copyStream?.Dispose();
        _copyStream = null;
        foreach (var s in _slots) s.Memory.Dispose();
        _slots.Clear();
        _ops.Dispose();
        _device.Dispose();
    }

    private static ArrayView<float> V(DeviceBuffer b) => b is CudaBuffer c ? c.View
        : throw new ArgumentException($"a {b.GetType().Name} is not a CUDA buffer");
}
