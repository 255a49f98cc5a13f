using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The fused fc1 → LIF → fc2 kernel (<see cref="MlpMmaKernels"/>, here its scalar body: inline PTX does not run on ILGPU's
/// CPU accelerator) against today's ops — the packed-columns int8 GEMM with the LIF in its epilogue, then the second
/// layer's packed GEMM and epilogue — bit for bit: partial column blocks (pixels not a multiple of 32 / T), channels not
/// multiples of the tiles, one to three hidden chunks, one to four warps, T = 1, 2, 4; the spike counter's counts; and the
/// fallbacks (another recorder, two int8 digits, fp32 weights, T = 3), which run today's ops.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class MlpMmaTests(MlpAcceleratorFixture gpu) : IClassFixture<MlpAcceleratorFixture>
{
    public static TheoryData<int, int, int, int, int, int> Chains => new()
    {
        // in, hidden, out channels, tokens (h = 1), T, batch
        { 20, 70, 40, 5, 4, 3 },     // two warps, one partial chunk; 15 tokens × 4 steps: a partial second block
        { 140, 150, 100, 4, 2, 5 },  // two staged input regions (Cp 144), hidden 150 (Hp 160): two chunks, the second partial; 16-byte staging
        { 16, 64, 17, 16, 1, 3 },    // T = 1, one warp with a partial row tile
        { 36, 300, 70, 3, 4, 2 },    // three warps: chunks of 256 (16 tiles shared unevenly), a partial second chunk
    };

    [Theory]
    [MemberData(nameof(Chains))]
    public void FusedChainEqualsTodaysOps(int cin, int hidden, int cout, int tokens, int timesteps, int batch)
    {
        var (first, second) = ChainLayers.Of(1, cin, hidden, cout, bits: 4, "paper");
        var input = ChainLayers.Spikes(new Random(cin + hidden), timesteps * batch * cin * tokens);
        using var expectedCounts = gpu.Reference.CreateSpikeCounter(2);
        var (expected, spikes) = ChainLayers.Run(gpu.Reference, first, second, input, 1, tokens, timesteps, batch, fused: false, expectedCounts);
        Assert.InRange(spikes.Count(v => v == 1f), spikes.Length / 10, spikes.Length * 9 / 10);   // hidden neurons fire and stay silent alike
        var (actual, untouched) = ChainLayers.Run(gpu.Fused, first, second, input, 1, tokens, timesteps, batch, fused: true);
        Assert.Equal(expected, actual);
        Assert.All(untouched, v => Assert.True(float.IsNaN(v)));   // the hidden spikes never reached memory
        // With the spike counter the kernel counts the hidden spikes (of the batch's pixels only) as the LIF kernel does.
        using var counts = gpu.Fused.CreateSpikeCounter(2);
        var (counted, _) = ChainLayers.Run(gpu.Fused, first, second, input, 1, tokens, timesteps, batch, fused: true, counts);
        Assert.Equal(expected, counted);
        Assert.Equal(expectedCounts.Read().Spikes, counts.Read().Spikes);
        Assert.Equal(expectedCounts.Read().Neurons, counts.Read().Neurons);
    }

    /// <summary>A recorder other than the spike counter, codes of two int8 digits, fp32 weights and T = 3 run today's ops (which write the spikes) and give their output.</summary>
    [Fact]
    public void FallbacksRunTodaysOps()
    {
        const int cin = 20, hidden = 40, cout = 24, tokens = 4, batch = 2;
        var input = ChainLayers.Spikes(new Random(5), 4 * batch * cin * tokens);
        foreach (var (first, second, timesteps, counted) in new[]
        {
            (ChainLayers.Of(1, cin, hidden, cout, 4, "paper"), 4, true),
            (ChainLayers.Of(1, cin, hidden, cout, 8, "asymmetric-channel-mse"), 4, false),   // codes up to ±255: two int8 digits
            (ChainLayers.Of(1, cin, hidden, cout, 4, "paper", dense: true), 4, false),        // fp32 weights
            (ChainLayers.Of(1, cin, hidden, cout, 4, "paper"), 3, false),                     // three steps do not tile a lane's columns
        }.Select(c => (c.Item1.First, c.Item1.Second, c.Item2, c.Item3)))
        {
            var (expected, _) = ChainLayers.Run(gpu.Reference, first, second, input.AsSpan(0, timesteps * batch * cin * tokens).ToArray(), 1, tokens, timesteps, batch, fused: false);
            using var reference = counted ? gpu.Fused.CreateMembraneReference(2) : null;
            var (actual, spikes) = ChainLayers.Run(gpu.Fused, first, second, input.AsSpan(0, timesteps * batch * cin * tokens).ToArray(), 1, tokens, timesteps, batch,
                fused: false, reference);
            Assert.Equal(expected, actual);
            Assert.All(spikes, v => Assert.True(v is 0f or 1f));
        }
    }

    /// <summary>The rule, the chunking and what profiles name.</summary>
    [Fact]
    public void RuleChunksAndEngineName()
    {
        Assert.True(MlpMmaKernels.FusedPays(128) && MlpMmaKernels.FusedPays(192));   // CIFAR's measured faster fused
        Assert.False(MlpMmaKernels.FusedPays(512));  // the 55M's 512 → 2048 → 512 measured faster as its ops (quad packer)
        Assert.False(MlpMmaKernels.FusedPays(640));
        // CIFAR's 128 → 512 → 128 and 192 → 768 → 192, the 55M's 512 → 2048 → 512 and 640 → 2560 → 640: tiles shared evenly.
        Assert.Equal(128, MlpMmaKernels.ChunkFor(MlpMmaKernels.WarpsFor(128), 512));
        Assert.Equal(384, MlpMmaKernels.ChunkFor(MlpMmaKernels.WarpsFor(192), 768));
        Assert.Equal(256, MlpMmaKernels.ChunkFor(MlpMmaKernels.WarpsFor(512), 2048));
        Assert.Equal(640, MlpMmaKernels.ChunkFor(MlpMmaKernels.WarpsFor(640), 2560));
        Assert.Equal(128, MlpMmaKernels.ChunkFor(7, 100));   // no more than the hidden channels need
        var (spec1, spec2) = ChainLayers.Of(1, 20, 40, 24, 4, "paper");
        var b = gpu.Fused;
        using var first = b.CreateConv(spec1);
        using var second = b.CreateConv(spec2);
        Assert.Equal("fused 1x1 + lif + 1x1, int8 mma.sync (exact)", b.ConvLifConvEngine(first, second, 8, 1, 4, 4, null));
        using var counter = b.CreateSpikeCounter(1);
        Assert.NotNull(b.ConvLifConvEngine(first, second, 8, 1, 4, 4, counter));
        using var membranes = b.CreateMembraneReference(1);
        Assert.Null(b.ConvLifConvEngine(first, second, 8, 1, 4, 4, membranes));
        Assert.Null(b.ConvLifConvEngine(first, second, 9, 1, 4, 3, null));
        // Groups wider than this accelerator's (four warps here) keep today's ops.
        var (wide1, wide2) = ChainLayers.Of(1, 20, 40, 160, 4, "paper");
        using var w1 = b.CreateConv(wide1);
        using var w2 = b.CreateConv(wide2);
        Assert.Null(b.ConvLifConvEngine(w1, w2, 8, 1, 4, 4, null));
    }
}

/// <summary>Two CUDA backends on ILGPU's CPU accelerator with CUDA-sized groups: the default one (the fused kernel) and one that keeps today's packed-columns path.</summary>
public sealed class MlpAcceleratorFixture : IDisposable
{
    public CudaBackend Fused { get; } = CudaBackend.OnCpuAcceleratorWithWarps();
    public CudaBackend Reference { get; } = CudaBackend.OnCpuAcceleratorWithWarps(SpikeInputGemm.TensorCoresPointwiseCublas);

    public void Dispose()
    {
        Fused.Dispose();
        Reference.Dispose();
    }
}
