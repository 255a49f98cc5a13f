using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Models;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Backends;

/// <summary>The op profiler (bench --profile): results unchanged, every op of a pass timed.</summary>
public sealed class ProfilingBackendTests
{
    private const int Batch = 2;

    private static float[] Images()
    {
        var rng = new Random(5);
        return Enumerable.Range(0, Batch * 3 * 32 * 32).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
    }

    [Fact]
    public void Profiled_Pass_IsBitIdentical_AndCoversEveryOp()
    {
        var images = Images();
        using var plain = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));
        var expected = plain.Forward(images, Batch, 32, 32);

        using var cpu = new CpuBackend();
        using var profiler = new ProfilingBackend(cpu);
        using var model = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1), backend: profiler);
        profiler.Reset(); // the layers' constants were uploaded through it
        Assert.Equal(expected, model.Forward(images, Batch, 32, 32));
        Assert.Equal(expected, model.Forward(images, Batch, 32, 32));
        var profile = profiler.Read(passes: 2, wallSeconds: 1);

        var ops = profile.ByOp().Select(r => r.Op).ToHashSet();
        foreach (var op in new[] { "upload", "conv 7x7 + repeat over T", "lif", "conv 1x1", "depthwise 7x7", "conv 3x3", "add",
                     "lif + sdsa + lif", "spatial mean", "head", "download" })
            Assert.Contains(op, ops);
        // The CPU runs RepConv as its three ops (no RepConvEngine), so they are timed one by one, not as "repconv".
        Assert.Contains("bn-padded depthwise 3x3", ops);
        Assert.DoesNotContain("repconv", ops);
        // A conv feeding a LIF (pwconv1, conv1, fc1) is timed with it as one op, and with the conv it feeds (conv2, fc2): the
        // backend may fuse them.
        Assert.Contains("conv 1x1 + lif", ops);
        Assert.Contains("conv 3x3 + lif + conv 3x3", ops);
        Assert.Contains("conv 1x1 + lif + conv 1x1", ops);
        // q_lif, k_lif, v_lif, SDSA and attn_lif are one op (four LIF layers).
        Assert.Equal(2 * model.LifNames.Count, profile.Rows.Where(r => r.Op == "lif" || r.Op.Contains(" + lif", StringComparison.Ordinal))
            .Sum(r => r.Op == "lif + sdsa + lif" ? 4 * r.Calls : r.Calls));
        Assert.All(profile.Rows, r => Assert.True(r.Milliseconds >= 0 && r.Calls % 2 == 0, $"{r.Op} {r.Shape}: {r.Calls} calls"));
        Assert.Contains(profile.Rows, r => r.Op == "conv 1x1" && r.Engine == "CPU fp32");
        Assert.Equal(500, profile.PassMilliseconds);

        profiler.Reset();
        profiler.Enabled = false;
        Assert.Equal(expected, model.Forward(images, Batch, 32, 32));
        Assert.Empty(profiler.Read(1, 1).Rows);
    }
}
