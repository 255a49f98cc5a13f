using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Gpu;

/// <summary>
/// The fused conv 3×3 → LIF → conv 3×3 kernel (<see cref="ConvChainKernels"/>, here its scalar body: inline PTX does not
/// run on ILGPU's CPU accelerator) against today's ops — the 3×3 conv with the LIF in its epilogue, then the second 3×3
/// conv (<see cref="SpikeInputGemm.TensorCoresUnchained"/>) — bit for bit: maps not multiples of the 8 × 8 tile and
/// smaller than it, channels not multiples of the mma tiles, one to three hidden chunks, one and two conv2 row tiles,
/// T = 1, 2, 4, batches of several images; the spike counter's counts; and the fallbacks (another recorder, two int8
/// digits, fp32 weights, T = 3), which run today's ops.
/// </summary>
[Collection("gpu-cpu-accelerator")]
public sealed class ConvChainTests(ConvChainAcceleratorFixture gpu) : IClassFixture<ConvChainAcceleratorFixture>
{
    public static TheoryData<int, int, int, int, int, int, int> Chains => new()
    {
        // in, hidden, out channels, h, w, T, batch
        { 16, 64, 16, 10, 9, 4, 2 },    // CIFAR's first block's channels; 2 × 2 tiles, the right and bottom ones partial
        { 20, 40, 17, 8, 8, 2, 2 },     // Cp 32, hidden 40 (Hp 48: one chunk of 3 quads), partial row tiles; T = 2
        { 8, 100, 40, 5, 12, 1, 2 },    // T = 1, hidden 112 padded: chunks of 64 and 48, two conv2 row tiles, a map lower than a tile
        { 36, 130, 33, 17, 3, 4, 1 },   // three chunks (64, 64, 16), 16 warps, three tile rows on a 3-pixel-wide map, hidden past conv1's input bound
        { 64, 96, 24, 8, 8, 4, 1 },     // the 8 × 8 stage's shape: the input staging leaves room for chunks of 32
    };

    [Theory]
    [MemberData(nameof(Chains))]
    public void FusedChainEqualsTodaysOps(int cin, int hidden, int cout, int h, int w, int timesteps, int batch)
    {
        var (first, second) = ChainLayers.Of(3, cin, hidden, cout, bits: 4, "paper");
        var input = ChainLayers.Spikes(new Random(cin + hidden + h), timesteps * batch * cin * h * w);
        using var expectedCounts = gpu.Reference.CreateSpikeCounter(2);
        var (expected, spikes) = ChainLayers.Run(gpu.Reference, first, second, input, h, w, timesteps, batch, fused: false, expectedCounts);
        Assert.InRange(spikes.Count(v => v == 1f), spikes.Length / 10, spikes.Length * 9 / 10);   // hidden neurons fire and stay silent alike
        var (actual, untouched) = ChainLayers.Run(gpu.Fused, first, second, input, h, w, timesteps, batch, fused: true);
        Assert.Equal(expected, actual);
        Assert.All(untouched, v => Assert.True(float.IsNaN(v)));   // the hidden spikes never reached memory
        // With the spike counter the kernel counts the hidden spikes (each position once, by the block whose tile holds it).
        using var counts = gpu.Fused.CreateSpikeCounter(2);
        var (counted, _) = ChainLayers.Run(gpu.Fused, first, second, input, h, w, timesteps, batch, fused: true, counts);
        Assert.Equal(expected, counted);
        Assert.Equal(expectedCounts.Read().Spikes, counts.Read().Spikes);
        Assert.Equal(expectedCounts.Read().Neurons, counts.Read().Neurons);
    }

    /// <summary>A recorder other than the spike counter, codes of two int8 digits, fp32 weights and T = 3 run today's ops (which write the spikes) and give their output.</summary>
    [Fact]
    public void FallbacksRunTodaysOps()
    {
        const int cin = 12, hidden = 24, cout = 16, h = 8, w = 8, batch = 1;
        var input = ChainLayers.Spikes(new Random(5), 4 * batch * cin * h * w);
        // Integer pairs without a recorder hand their hidden spikes over packed (SpikeGemmOps.HiddenPacked), so the spikes
        // buffer then holds int8 bytes; with a recorder, or fp32 weights, it holds the fp32 spikes of the ops.
        foreach (var (first, second, timesteps, counted, fp32Hidden) in new[]
        {
            (ChainLayers.Of(3, cin, hidden, cout, 4, "paper"), 4, true, true),
            (ChainLayers.Of(3, cin, hidden, cout, 8, "asymmetric-channel-mse"), 4, false, false),   // codes up to ±255: two int8 digits
            (ChainLayers.Of(3, cin, hidden, cout, 4, "paper", dense: true), 4, false, true),        // fp32 weights
            (ChainLayers.Of(3, cin, hidden, cout, 4, "paper"), 3, false, false),                     // three steps do not tile a lane's columns
        }.Select(c => (c.Item1.First, c.Item1.Second, c.Item2, c.Item3, c.Item4)))
        {
            var x = input.AsSpan(0, timesteps * batch * cin * h * w).ToArray();
            var (expected, _) = ChainLayers.Run(gpu.Reference, first, second, x, h, w, timesteps, batch, fused: false);
            using var reference = counted ? gpu.Fused.CreateMembraneReference(2) : null;
            var (actual, spikes) = ChainLayers.Run(gpu.Fused, first, second, x, h, w, timesteps, batch, fused: false, reference);
            Assert.Equal(expected, actual);
            if (fp32Hidden) Assert.All(spikes, v => Assert.True(v is 0f or 1f));
        }
    }

    /// <summary>The rule, the shared-memory plan, the warps and what profiles name.</summary>
    [Fact]
    public void RulePlanWarpsAndEngineName()
    {
        Assert.True(ConvChainKernels.FusedPays(32, 32));   // CIFAR's 32 × 32 and 16 × 16 chains measured faster fused
        Assert.True(ConvChainKernels.FusedPays(16, 16));
        Assert.False(ConvChainKernels.FusedPays(8, 8));     // its 8 × 8 one slower
        Assert.False(ConvChainKernels.FusedPays(112, 112)); // the 55M's: not measured
        // CIFAR's three chains: 16 → 64 → 16 at 32 × 32, 32 → 128 → 32 at 16 × 16, 64 → 256 → 64 at 8 × 8 (T = 4).
        Assert.True(ConvChainKernels.Plan(16, 64, 32, 32, 4, out int inStride, out int hiddenStride, out int chunk));
        Assert.Equal((1, 4, 64), (inStride, hiddenStride, chunk));
        Assert.True(ConvChainKernels.Plan(32, 128, 16, 16, 4, out inStride, out hiddenStride, out chunk));
        Assert.Equal((2, 4, 64), (inStride, hiddenStride, chunk));
        Assert.True(ConvChainKernels.Plan(64, 256, 8, 8, 4, out inStride, out hiddenStride, out chunk));
        Assert.Equal((4, 2, 32), (inStride, hiddenStride, chunk));
        Assert.False(ConvChainKernels.Plan(128, 256, 32, 32, 4, out _, out _, out _));   // the input staging alone is too large
        Assert.Equal(8, ConvChainKernels.WarpsFor(16, 4));
        Assert.Equal(16, ConvChainKernels.WarpsFor(64, 4));
        var (spec1, spec2) = ChainLayers.Of(3, 12, 24, 16, 4, "paper");
        var b = gpu.Fused;
        using var first = b.CreateConv(spec1);
        using var second = b.CreateConv(spec2);
        Assert.Equal("fused 3x3 + lif + 3x3, int8 mma.sync (exact)", b.ConvLifConvEngine(first, second, 8, 8, 8, 4, null));
        using var counter = b.CreateSpikeCounter(1);
        Assert.NotNull(b.ConvLifConvEngine(first, second, 8, 8, 8, 4, counter));
        using var membranes = b.CreateMembraneReference(1);
        Assert.Null(b.ConvLifConvEngine(first, second, 8, 8, 8, 4, membranes));
        Assert.Null(b.ConvLifConvEngine(first, second, 9, 8, 8, 3, null));
        Assert.Null(gpu.Reference.ConvLifConvEngine(first, second, 8, 8, 8, 4, null));   // tensor-unchained: the two ops
        // T = 8 with 64 outputs would need 32 warps: today's ops.
        var (wide1, wide2) = ChainLayers.Of(3, 12, 24, 64, 4, "paper");
        using var w1 = b.CreateConv(wide1);
        using var w2 = b.CreateConv(wide2);
        Assert.Null(b.ConvLifConvEngine(w1, w2, 8, 8, 8, 8, null));
    }
}

/// <summary>Two CUDA backends on ILGPU's CPU accelerator with CUDA-sized groups: the default one (the fused kernel) and one that runs today's two ops (tensor-unchained).</summary>
public sealed class ConvChainAcceleratorFixture : IDisposable
{
    public CudaBackend Fused { get; } = CudaBackend.OnCpuAcceleratorWithWarps();
    public CudaBackend Reference { get; } = CudaBackend.OnCpuAcceleratorWithWarps(SpikeInputGemm.TensorCoresUnchained);

    public void Dispose()
    {
        Fused.Dispose();
        Reference.Dispose();
    }
}
