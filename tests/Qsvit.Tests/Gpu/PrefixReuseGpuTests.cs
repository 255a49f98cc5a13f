using Qsvit.Tests.Search;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// Prefix reuse on the CUDA backend (ILGPU's CPU accelerator): streams travel through the host cache and back. Whole
/// searches with reuse are checked on the CPU backend (PrefixReuseTests): on the emulated device two greedy searches
/// took over 30 minutes of CI's 2 cores.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class PrefixReuseGpuTests(CpuAcceleratorFixture gpu)
{
    [Fact]
    public void Evaluations_with_prefix_reuse_are_bit_identical_on_the_cuda_backend() => PrefixReuseTests.AssertEvaluationsIdentical(gpu.Backend);
}
