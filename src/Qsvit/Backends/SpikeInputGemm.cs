namespace Qsvit.Backends;

/// <summary>How the CUDA backend computes dense convolutions whose input is spikes (<see cref="ConvLayerSpec.SpikeInput"/>).</summary>
public enum SpikeInputGemm
{
    /// <summary>
    /// On tensor cores: integer codes as int8 pieces (exact int32 sums; without cuBLAS an ILGPU integer kernel, also
    /// exact); fp32 weights as three bf16 pieces (exact products, fp32 accumulation: fp32 quality in another summation
    /// order; with cuBLAS only, else the fp32 kernels). With cuBLAS, the real-valued-input 1×1 layers of codes up to 8 bits
    /// also run on tensor cores where that pays: the codes in bf16 against the input's three bf16 pieces (exact products,
    /// fp32 sums). Integer convs wider than 1×1 run as implicit GEMMs on int8 mma (sm_80 and later): tiled with shared
    /// memory (<c>SpikeTiledKernels</c>) where <c>GpuSpikeConv.TiledPays</c>, pipelined with cp.async stages
    /// (<c>SpikePipelinedKernels</c>) where <c>GpuSpikeConv.PipelinedPays</c>, or on sm_90 GPUs with those stages multiplied
    /// by wgmma (<c>SpikePipelinedKernels.ConvWgmma</c>) where <c>GpuSpikeConv.WgmmaPays</c>, else warp tiles (<c>SpikeMmaKernels</c>) where
    /// <c>GpuSpikeConv.ImplicitPays</c>, else as im2col columns and the int8 GEMM. Integer 1×1 convs run as one fused
    /// kernel (<c>PointwiseMmaKernels</c>: input read in place, int8 mma, epilogue and LIF in registers) where
    /// <c>PointwiseMmaKernels.FusedPays</c>, else as packed columns and the int8 GEMM.
    /// </summary>
    TensorCores,
    /// <summary>fp32 for every dense conv (packed codes dequantized once on upload).</summary>
    Fp32,
    /// <summary>As <see cref="TensorCores"/>, but every integer conv wider than 1×1 through im2col columns and the int8 GEMM (for comparisons).</summary>
    TensorCoresIm2col,
    /// <summary>As <see cref="TensorCores"/>, but every integer conv wider than 1×1 as an implicit GEMM where the kernel runs (for comparisons).</summary>
    TensorCoresImplicit,
    /// <summary>As <see cref="TensorCores"/>, but every integer conv wider than 1×1 as a tiled implicit GEMM (shared-memory block tiles) where the kernel runs (for comparisons).</summary>
    TensorCoresTiled,
    /// <summary>As <see cref="TensorCores"/>, but every integer conv wider than 1×1 as the pipelined implicit GEMM (cp.async stages, 64 × 64 warp tiles) where the kernel runs (for comparisons).</summary>
    TensorCoresPipelined,
    /// <summary>
    /// As <see cref="TensorCores"/>, but every integer conv wider than 1×1 as the pipelined implicit GEMM with its stages
    /// multiplied by Hopper's wgmma (<c>SpikePipelinedKernels.ConvWgmma</c>; sm_90 GPUs, else the pipelined kernel on
    /// mma.sync) where the kernel runs (for comparisons).
    /// </summary>
    TensorCoresWgmma,
    /// <summary>As <see cref="TensorCores"/>, but every integer 1×1 conv through packed columns and cuBLAS's int8 GEMM instead of the fused pointwise kernel (for comparisons).</summary>
    TensorCoresPointwiseCublas,
    /// <summary>
    /// As <see cref="TensorCores"/>, but every real-valued-input 1×1 layer of codes that runs on bf16 tensor cores runs as one
    /// fused kernel (<c>PointwiseMmaKernels.RealConv</c>: the fp32 input read in place and split into its three bf16 pieces
    /// in shared memory, bf16 mma, the epilogue in registers) instead of the split pass, cuBLAS's bf16 GEMM and the epilogue
    /// pass; the default fuses only those with up to 128 output channels, where it measured faster (for comparisons). fp32
    /// quality as that path, another summation order.
    /// </summary>
    TensorCoresRealFused,
    /// <summary>
    /// As <see cref="TensorCores"/>, but every integer 1×1 conv that the fused pointwise kernel does not take runs as
    /// cuBLAS TF32 GEMMs, one per frame, on the fp32 spikes in place (<c>GpuSpikeConv.F32</c>: exact while TF32 holds the
    /// codes), where its codes allow; the default does so only on large maps, where measured faster
    /// (<c>GpuSpikeConv.Tf32Pays</c>; for comparisons).
    /// </summary>
    TensorCoresTf32Pointwise,
    /// <summary>
    /// As <see cref="TensorCores"/>, but ConvBlock's integer 3×3 → LIF → 3×3 runs as its two ops (the conv with the LIF
    /// fused, then the conv) instead of the one kernel that keeps the hidden spikes on chip (<c>ConvChainKernels</c>; for
    /// comparisons). The modes that pin the 3×3 layers' engine (im2col, implicit, tiled, pipelined) run the two ops too.
    /// </summary>
    TensorCoresUnchained,
}
