using Qsvit.Tests.Search;

namespace Qsvit.Tests.Gpu;

/// <summary>Prefix reuse on the CUDA backend (ILGPU's CPU accelerator): streams travel through the host cache and back.</summary>
[Collection("gpu-cpu-accelerator")]
public sealed class PrefixReuseGpuTests(CpuAcceleratorFixture gpu)
{
    [Fact]
    [Trait("Category", "Slow")]   // two greedy searches on the emulated device: minutes on 2 cores
    public void Searches_with_prefix_reuse_are_bit_identical_on_the_cuda_backend() =>
        PrefixReuseTests.AssertSearchesIdentical(gpu.Backend, cacheMegabytes: 64, small: true);
}
