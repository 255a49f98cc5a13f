using Qsvit.Tests.Search;

namespace Qsvit.Tests.Gpu;

/// <summary>Prefix reuse on the CUDA backend (ILGPU's CPU accelerator): streams travel through the host cache and back.</summary>
[Collection("gpu-cpu-accelerator")]
public sealed class PrefixReuseGpuTests(CpuAcceleratorFixture gpu)
{
    [Fact]
    public void Evaluations_with_prefix_reuse_are_bit_identical_on_the_cuda_backend() => PrefixReuseTests.AssertEvaluationsIdentical(gpu.Backend);

    [Fact]
    [Trait("Category", "Slow")]   // two greedy searches on the emulated device: over 15 minutes on 2 shared cores
    public void Searches_with_prefix_reuse_are_bit_identical_on_the_cuda_backend() =>
        PrefixReuseTests.AssertSearchesIdentical(gpu.Backend, cacheMegabytes: 64, small: true);
}
