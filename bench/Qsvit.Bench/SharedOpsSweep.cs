using System.Globalization;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// A fused CPU op against the ops it stands for, in one process (best of interleaved runs), at the bundled CIFAR model's
/// shapes (batch 32 × T = 4): the residual add inside the LIF (<see cref="CpuBackend.AddLif"/> against Add then Lif), RepConv's
/// depthwise reading the BN border (<see cref="CpuBackend.ConvPadded"/> against Pad then Conv), SDSA on spike masks against
/// two GEMMs per head; then the parts of one packed 8-bit RepConv, to see where its time goes.
///   dotnet run -c Release --project bench/Qsvit.Bench -- shared-ops [seconds] [threads]
/// </summary>
internal static class SharedOpsSweep
{
    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 1.0;
        int threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2;
        Console.WriteLine($"{threads} threads; best of interleaved runs over {seconds} s per shape");
        Console.WriteLine("| op | shape | fused ms | separate ms | separate / fused |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        using var backend = new CpuBackend(new ComputeOptions { Threads = threads });
        var rng = new Random(3);
        foreach (long n in new long[] { 128L * 64 * 16, 128L * 16 * 1024, 128L * 128 * 16 })
        {
            var x = backend.Allocate(n); var y = backend.Allocate(n); var s = backend.Allocate(n);
            backend.Upload(Data.Random(rng, (int)n), x);
            backend.Upload(new float[n], y); // adding zeros keeps the stream's values (and the firing) from run to run
            var best = Sweep.BestOf(seconds,
                () => backend.AddLif(x, y, n, s, 4, 1f, null, 0),
                () => { backend.Add(x, y, n); backend.Lif(x, s, n, 4, 1f, null, 0); });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| add + lif | {n / 1024}K floats, T = 4 | {best[0] * 1e3:F3} | {best[1] * 1e3:F3} | {best[1] / best[0]:F2}x |"));
        }
        // The residual LIF handing its spikes over as a 1×1 layer's input words (SpikeConv.LifWords) against the same LIF
        // writing floats, at CIFAR's residual shapes (batch 32 × T = 4 frames).
        foreach (var (ch, side2) in new[] { (128, 4), (64, 8), (32, 16) })
        {
            int n = 128 * ch * side2 * side2;
            var x = backend.Allocate(n); var y = backend.Allocate(n); var s = backend.Allocate(n);
            backend.Upload(Data.Random(rng, n), x);
            backend.Upload(new float[n], y);
            float[] xa = ((CpuBuffer)x).Array, ya = ((CpuBuffer)y).Array;
            var words = new int[]?[1];
            var best = Sweep.BestOf(seconds,
                () => SpikeConv.LifWords(xa, ya, 128, ch, side2, side2, 4, 1f, 0, 0, 4, ref words[0], threads),
                () => backend.AddLif(x, y, n, s, 4, 1f, null, 0));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| add + lif into words / into floats | {ch} ch @{side2}×{side2} × 128 | {best[0] * 1e3:F3} | {best[1] * 1e3:F3} | {best[1] / best[0]:F2}x |"));
        }
        const int frames = 128, side = 4;
        foreach (int c in new[] { 128, 192 })
        {
            long n = (long)frames * c * side * side;
            var (first, dw, pw) = RepConvLayers(backend, rng, c);
            var x = backend.Allocate(n); var inner = backend.Allocate(n); var y = backend.Allocate(n); var pads = backend.Allocate(c);
            backend.Upload(Data.Random(rng, (int)n), inner);
            backend.Upload(Data.Random(rng, c), pads);
            var best = Sweep.BestOf(seconds,
                () => backend.ConvPadded(dw, inner, frames, side, side, 1, pads, y),
                () => IBackend.RunConvPadded(backend, dw, inner, frames, side, side, 1, pads, y));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| RepConv depthwise 3×3, BN border | {c} ch @4×4 × {frames} | {best[0] * 1e3:F3} | {best[1] * 1e3:F3} | {best[1] / best[0]:F2}x |"));

            backend.Upload(Data.Spikes(rng, (int)n), x);
            var parts = Sweep.BestOf(seconds,
                () => backend.Conv(first, x, frames, side, side, inner),
                () => backend.ConvPadded(dw, inner, frames, side, side, 1, pads, y),
                () => backend.Conv(pw, y, frames, side, side, inner),
                () => ((IBackend)backend).RepConv(first, pads, dw, pw, x, frames, side, side, y));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| RepConv parts, packed 8-bit: first 1×1 / depthwise / pointwise / whole (ms) | {c} ch @4×4 × {frames} | {parts[0] * 1e3:F3} / {parts[1] * 1e3:F3} / {parts[2] * 1e3:F3} | {parts[3] * 1e3:F3} | |"));
            foreach (var layer in new[] { first, dw, pw }) layer.Dispose();
        }
        // SepConv's depthwise 7×7 (pad 3) at CIFAR's three map sizes, fp32 weights.
        foreach (var (c, side2) in new[] { (32, 32), (64, 16), (128, 8) })
        {
            var g = new ConvGeometry(c, c, 7, 7, 1, 1, 3, 3, c);
            using var layer = backend.CreateConv(new ConvLayerSpec(g, new DenseConvWeights(Data.Random(rng, g.WeightLength)), [], []));
            long n = (long)frames * c * side2 * side2;
            var x = backend.Allocate(n); var y = backend.Allocate(n);
            backend.Upload(Data.Random(rng, (int)n), x);
            double t = Sweep.BestOf(seconds, () => backend.Conv(layer, x, frames, side2, side2, y))[0];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| depthwise 7×7 (ms; G multiply-adds/s) | {c} ch @{side2}×{side2} × {frames} | {t * 1e3:F3} | {n * 49 / t / 1e9:F1} | |"));
        }
        // SDSA: CIFAR's stage-3 and stage-4 attention (4×4 maps), then the 55M preset's (14×14 and 7×7 maps, batch 1).
        foreach (var (c, tokens, planes) in new[] { (128, 16, 128), (192, 16, 128), (512, 196, 4), (640, 49, 4) })
        {
            long n = (long)planes * c * tokens;
            var (q, k, v, y) = (backend.Allocate(n), backend.Allocate(n), backend.Allocate(n), backend.Allocate(n));
            foreach (var b in new[] { q, k, v }) backend.Upload(Data.Spikes(rng, (int)n), b);
            float[] qa = ((CpuBuffer)q).Array, ka = ((CpuBuffer)k).Array, va = ((CpuBuffer)v).Array, ya = ((CpuBuffer)y).Array;
            int d = c / 8;
            var best = Sweep.BestOf(seconds,
                () => backend.SpikeDrivenAttention(q, k, v, y, planes, c, tokens, 8, 0.125f),
                () => Compute.ForRanges(planes * 8, Math.Min(threads, planes * 8), (p0, p1) =>
                {
                    var kv = new float[d * d];
                    for (int p = p0; p < p1; p++)
                    {
                        int off = p * d * tokens;
                        Gemm.Sgemm(d, d, tokens, ka.AsSpan(off), false, va.AsSpan(off), true, kv, false, IsaInfo.Best, 1);
                        Gemm.Sgemm(d, tokens, d, kv, true, qa.AsSpan(off), false, ya.AsSpan(off, d * tokens), false, IsaInfo.Best, 1);
                    }
                }));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| SDSA on spikes / two GEMMs a head | {c} ch, 8 heads, {tokens} tokens × {planes} | {best[0] * 1e3:F3} | {best[1] * 1e3:F3} | {best[1] / best[0]:F2}x |"));
        }
    }

    /// <summary>A RepConv of random 8-bit codes on the CPU backend: the spike-input 1×1 with its BN, the depthwise 3×3, the real 1×1 with its BN.</summary>
    private static (ConvLayer First, ConvLayer Depthwise, ConvLayer Pointwise) RepConvLayers(CpuBackend backend, Random rng, int c)
    {
        ConvLayer Make(ConvGeometry g, bool spikes, bool bn)
        {
            var shape = new[] { g.OutChannels, g.InChannels / g.Groups, g.KernelH, g.KernelW };
            var codes = Quantization.PackedWeight.Quantize("w", Data.Random(rng, g.WeightLength), shape, 8, Quantization.QuantizerSpec.Paper);
            ChannelAffine[] affines = bn ? [new ChannelAffine(Data.Random(rng, c), Data.Random(rng, c))] : [];
            return backend.CreateConv(new ConvLayerSpec(g, new PackedConvWeights(codes), [], affines) { SpikeInput = spikes });
        }
        return (Make(new ConvGeometry(c, c, 1, 1), true, true), Make(new ConvGeometry(c, c, 3, 3, Groups: c), false, false),
            Make(new ConvGeometry(c, c, 1, 1), false, true));
    }
}
