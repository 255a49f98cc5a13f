using Qsvit.Tests.Search;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// Prefix reuse on the CUDA backend (ILGPU's CPU accelerator): streams travel through the host cache and back. Whole
/// searches with reuse, and more settings, are checked on the CPU backend (PrefixReuseTests): every image costs the
/// emulated device seconds (eight images and four settings took 12 minutes of CI's 2 cores).
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class PrefixReuseGpuTests(CpuAcceleratorFixture gpu)
{
    [Fact]
    public void Evaluations_with_prefix_reuse_are_bit_identical_on_the_cuda_backend() => PrefixReuseTests.AssertEvaluationsIdentical(gpu.Backend, images: 2, settings: 3);
}
