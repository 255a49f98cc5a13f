using System.Diagnostics;
using System.Globalization;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// <c>spike-epilogue CIFAR_MODEL LOGITS_PREFIX [SECONDS] | one</c>, on a CUDA machine (issue 13, the packing, column and
/// epilogue kernels of the cuBLAS int8 path): (1) random spike-input conv shapes on im2col + cuBLAS and the default rule,
/// plain and with the fused LIF, against the CPU's integer path bit for bit; (2) the logits of one pass of the CIFAR model
/// (batch 1000) and the 55M preset (random weights, batch 32) at setting 4, written raw to LOGITS_PREFIX-cifar.f32 and
/// -55M.f32 (to compare two builds byte for byte); (3) unless SECONDS is 0, each cuBLAS-path int8 layer shape timed as Conv
/// and ConvLif (best of repetitions over SECONDS), a table last. <c>one</c>: the 55M ConvBlock conv1 (64→256 @112×112, 16 frames) once as Conv and once as
/// ConvLif after a warm-up, for a kernel profiler.
/// </summary>
internal static class EpilogueCheck
{
    private static readonly (string Model, ConvGeometry G, int H, int W, int Frames, bool Lif)[] Layers =
    [
        ("cifar", Conv(32, 128, 3, 1), 16, 16, 4000, true), ("cifar", Conv(64, 256, 3, 1), 8, 8, 4000, true),
        ("cifar", Conv(256, 64, 3, 1), 8, 8, 4000, false), ("cifar", Conv(128, 192, 3, 1), 4, 4, 4000, false),
        ("cifar", Conv(128, 512, 1, 1), 1, 16, 4000, true), ("cifar", Conv(128, 128, 1, 1), 4, 4, 4000, false),
        ("55M", Conv(64, 256, 3, 1), 112, 112, 128, true), ("55M", Conv(256, 64, 3, 1), 112, 112, 128, false),
        ("55M", Conv(64, 128, 3, 2), 112, 112, 128, false), ("55M", Conv(128, 512, 3, 1), 56, 56, 128, true),
        ("55M", Conv(256, 1024, 3, 1), 28, 28, 128, true), ("55M", Conv(512, 640, 3, 1), 14, 14, 128, false),
        ("55M", Conv(64, 128, 1, 1), 112, 112, 128, true), ("55M", Conv(512, 2048, 1, 1), 1, 196, 128, true),
        ("55M", Conv(512, 512, 1, 1), 14, 14, 128, false),
    ];

    private static ConvGeometry Conv(int cin, int cout, int k, int stride) => new(cin, cout, k, k, stride, stride, k / 2, k / 2);

    public static int Run(string[] args)
    {
        if (args.Length > 1 && args[1] == "one") return One();
        string cifarModel = args[1], prefix = args[2];
        double seconds = args.Length > 3 ? double.Parse(args[3], CultureInfo.InvariantCulture) : 0.3;
        int failures = 0;
        using var cpu = new CpuBackend();
        var cases = SpikeMmaCheck.RandomCases(new Random(17), 48);
        var expected = cases.Select(c => (GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W), GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W, lif: true))).ToList();
        foreach (var mode in new[] { SpikeInputGemm.TensorCoresIm2col, SpikeInputGemm.TensorCores })
        {
            using var gpu = CudaBackend.Open(0, new ComputeOptions { SpikeGemm = mode });
            failures += SpikeMmaCheck.CheckCases(gpu, mode.ToString(), cases, expected);
        }
        using (var gpu = CudaBackend.Open(0))
        {
            Console.WriteLine(gpu.Description);
            foreach (var (label, packed, batch) in SpikeMmaCheck.SettingFourModels(cifarModel))
            {
                string name = label.Split(' ')[0]; // "cifar", "55M": the logits files' names
                using var net = new Sdtv2Model(packed, simulate: false, gpu);
                int h = packed.Config.ImageHeight, w = packed.Config.ImageWidth;
                var images = new float[batch * packed.Config.InChannels * h * w];
                var rng = new Random(7);
                for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);
                var logits = net.Forward(images, batch, h, w);
                File.WriteAllBytes($"{prefix}-{name}.f32", System.Runtime.InteropServices.MemoryMarshal.AsBytes(logits.AsSpan()).ToArray());
                Console.WriteLine($"{name}: {logits.Length} logits written, first {logits[0]:R}");
            }
            if (seconds <= 0) return failures == 0 ? 0 : 1; // checks only
            Console.WriteLine("| layer (x frames) | Conv ms | ConvLif ms |");
            Console.WriteLine("| --- | ---: | ---: |");
            foreach (var (model, g, h, w, frames, lif) in Layers)
            {
                double conv = TimeLayer(gpu, g, h, w, frames, false, seconds), fused = lif ? TimeLayer(gpu, g, h, w, frames, true, seconds) : double.NaN;
                Console.WriteLine($"| {model} {g.InChannels}->{g.OutChannels} {g.KernelH}x{g.KernelW} s{g.StrideH} @{h}x{w} x{frames} | {conv:F3} | {(lif ? fused.ToString("F3", CultureInfo.InvariantCulture) : "")} |");
            }
        }
        Console.WriteLine(failures == 0 ? "all checks passed" : $"{failures} checks FAILED");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>The 55M ConvBlock conv1 (64→256 @112×112, 16 frames: one chunk) as Conv twice, then as ConvLif twice (the first call of each a warm-up).</summary>
    private static int One()
    {
        using var gpu = CudaBackend.Open(0);
        var g = Conv(64, 256, 3, 1);
        TimeLayer(gpu, g, 112, 112, 16, false, 0, reps: 1);
        TimeLayer(gpu, g, 112, 112, 16, true, 0, reps: 1);
        return 0;
    }

    /// <summary>Milliseconds of one Conv or ConvLif call (best of repetitions over <paramref name="seconds"/>), 4-bit codes, bias and a BN, a third of the inputs firing.</summary>
    private static double TimeLayer(IBackend b, ConvGeometry g, int h, int w, int frames, bool lif, double seconds, int reps = 3)
    {
        var rng = new Random(1);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], 4, QuantizerSpec.Paper);
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var bn = new ChannelAffine(bias.Select(x => x + 1.5f).ToArray(), bias.Select(x => 0.1f * x).ToArray());
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), bias, [bn]) { SpikeInput = true };
        using var layer = b.CreateConv(spec);
        var x = new float[(long)frames * g.InChannels * h * w];
        for (long i = 0; i < x.Length; i += 3) x[i] = 1f;
        long outputs = (long)frames * g.OutChannels * g.OutH(h) * g.OutW(w);
        using var input = b.Allocate(x.Length);
        using var output = b.Allocate(outputs);
        using var spikes = b.Allocate(outputs);
        b.Upload(x, input);
        void Call()
        {
            if (lif) b.ConvLif(layer, input, frames, h, w, output, spikes, 4, 0.4f, 0, null);
            else b.Conv(layer, input, frames, h, w, output);
        }
        Call();
        b.Synchronize();
        double best = double.MaxValue, total = 0;
        for (int rep = 0; rep < reps || total < seconds; rep++)
        {
            var clock = Stopwatch.StartNew();
            Call();
            b.Synchronize();
            double s = clock.Elapsed.TotalSeconds;
            total += s;
            best = Math.Min(best, s);
        }
        return best * 1e3;
    }
}
