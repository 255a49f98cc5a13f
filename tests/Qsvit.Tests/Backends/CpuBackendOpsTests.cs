using Qsvit.Backends.Cpu;
using Qsvit.Tensors;
using Qsvit.Tests.Tensors;

namespace Qsvit.Tests.Backends;

/// <summary>The CPU backend's plain data ops, cut over threads, against a naive loop.</summary>
public sealed class CpuBackendOpsTests
{
    [Theory]
    [InlineData(1, 5, 4)]
    [InlineData(2, 5, 1)]
    [InlineData(2, 100_003, 4)]  // three ranges a copy at three threads: ends that do not divide evenly
    [InlineData(3, 100_003, 4)]
    [InlineData(16, 70_000, 3)]
    public void RepeatBlockCopiesTheBlock(int threads, int block, int times)
    {
        using var backend = new CpuBackend(new ComputeOptions { Threads = threads });
        var rng = new Random(block);
        var values = TestData.Random(rng, block * times);
        var x = backend.Allocate(values.Length);
        backend.Upload(values, x);
        backend.RepeatBlock(x, block, times);
        var got = new float[values.Length];
        backend.Download(x, 0, got);
        for (int i = 0; i < got.Length; i++)
            if (BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(values[i % block]))
                Assert.Fail($"T={threads} block {block} x{times}: element {i} is {got[i]}, expected {values[i % block]}");
    }

    [Theory]
    [InlineData(1, 1000)]
    [InlineData(3, 200_001)]
    public void AddAddsElementwise(int threads, int n)
    {
        using var backend = new CpuBackend(new ComputeOptions { Threads = threads });
        var rng = new Random(n);
        float[] a = TestData.Random(rng, n), b = TestData.Random(rng, n);
        var x = backend.Allocate(n);
        var y = backend.Allocate(n);
        backend.Upload(a, x);
        backend.Upload(b, y);
        backend.Add(x, y, n);
        var got = new float[n];
        backend.Download(x, 0, got);
        for (int i = 0; i < n; i++) Assert.Equal(a[i] + b[i], got[i]);
    }
}
