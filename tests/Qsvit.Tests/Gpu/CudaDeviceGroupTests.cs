using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Models;
using Qsvit.Tests.Backends;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// Two CUDA backends (each on an ILGPU CPU accelerator of its own, opened and driven on its own thread) against one:
/// logits, spike counts and drift sums identical, with an uneven last batch.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class CudaDeviceGroupTests(CpuAcceleratorFixture gpu)
{
    [Fact]
    public void TwoDevicesGiveWhatOneGives()
    {
        var loaded = Aq4Fixtures.TinyModel(3);
        var rng = new Random(9);
        var images = Enumerable.Range(0, 3 * 3072).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var batches = new[] { (0, 2), (2, 1) }.Select(c => new BatchInput(images.AsMemory(c.Item1 * 3072, c.Item2 * 3072), c.Item2, 32, 32)).ToArray();
        var one = RecordedRun.Of(loaded, batches, gpu.Backend);
        using var group = DeviceGroup.Open([CudaBackend.OnCpuAccelerator, CudaBackend.OnCpuAccelerator]);
        RecordedRun.Of(loaded, batches, group).AssertSameAs(one);
    }
}
