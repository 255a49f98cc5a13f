using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Models;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Backends;

/// <summary>Default batches from free device memory and the model's measured activation peak.</summary>
public sealed class BatchSizingTests
{
    private const long MiB = 1 << 20, GiB = 1L << 30;

    [Fact]
    public void FromFreeMemory_FillsWhatFits_CappedAndInMultiplesOf8()
    {
        // 55M-like: ~200 MiB per image at 224²; 80 GiB free holds 80·0.8 GiB − 0.5 GiB ≈ 325 images: capped at 128.
        Assert.Equal(128, BatchSizing.FromFreeMemory(80 * GiB, 512 * MiB, 200 * MiB, 224, 224));
        // 10 GiB free: (8 GiB − 0.5 GiB) / 200 MiB = 38.4 → 32.
        Assert.Equal(32, BatchSizing.FromFreeMemory(10 * GiB, 512 * MiB, 200 * MiB, 224, 224));
        // CIFAR-like: 4 MiB per image, plenty free: the 32² cap.
        Assert.Equal(1024, BatchSizing.FromFreeMemory(80 * GiB, 512 * MiB, 4 * MiB, 32, 32));
        Assert.Equal(256, BatchSizing.FromFreeMemory(80 * GiB, 0, 4 * MiB, 100, 100));
        // Below 8 images no rounding; nothing free still gives one image (the allocation error then names --batch).
        Assert.Equal(5, BatchSizing.FromFreeMemory(2 * GiB, 512 * MiB, 200 * MiB, 224, 224));
        Assert.Equal(1, BatchSizing.FromFreeMemory(100 * MiB, 512 * MiB, 200 * MiB, 224, 224));
        Assert.Throws<ArgumentOutOfRangeException>(() => BatchSizing.FromFreeMemory(GiB, 0, 0, 32, 32));
    }

    [Fact]
    public void ActivationBytesPerImage_IsTheWorkspacePeakOfARealPass_AndGrowsWithTheBatch()
    {
        var weights = Aq4Fixtures.LivelyWeights(1);
        long measured = Sdtv2Model.ActivationBytesPerImage(Aq4Fixtures.Tiny, weights, 32, 32);
        foreach (int batch in new[] { 1, 3 })
        {
            using var cpu = new CpuBackend();
            using var model = new Sdtv2Model(Aq4Fixtures.Tiny, weights, backend: cpu);
            Assert.Equal(measured, model.ActivationBytesPerImage(32, 32));
            model.Forward(new float[batch * 3 * 32 * 32], batch, 32, 32);
            Assert.Equal(batch * measured, cpu.WorkspaceFloats * sizeof(float));
        }
        Assert.Equal(32, new CpuBackend().DefaultBatchSize(32, 32, measured));
    }
}
