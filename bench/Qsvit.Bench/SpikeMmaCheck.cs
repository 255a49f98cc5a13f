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
/// <c>spike-mma [CIFAR_MODEL] [SECONDS] [cpu]</c> (CIFAR_MODEL: the checkpoint, packed at setting 4 here, or a packed file): on a CUDA machine, the implicit-GEMM int8 convolutions (<see cref="SpikeMmaKernels"/>,
/// issue 13) against im2col + cuBLAS int8 and the CPU's integer path: (1) random spike-input conv shapes (odd maps and
/// channel counts, stride 2, partial tiles, 1–3 int8 digits) bit for bit, plain and with the fused LIF; (2) each 3×3 layer
/// shape of the CIFAR model (x4000 frames: batch 1000, T = 4) and the 55M preset (x128) timed both ways (best of
/// repetitions); (3) images/s of both models at setting 4 with the default rule, every such conv one way and the other.
/// Prints a short table last. With <c>cpu</c>, only (1) on a few shapes, on ILGPU's CPU accelerator (a smoke test without a GPU).
/// </summary>
internal static class SpikeMmaCheck
{
    private static readonly SpikeInputGemm[] Modes = [SpikeInputGemm.TensorCoresIm2col, SpikeInputGemm.TensorCoresImplicit, SpikeInputGemm.TensorCores];

    private static readonly (string Model, ConvGeometry G, int H, int W, int Frames)[] Layers =
    [
        ("cifar", Conv3(64, 16, 1), 32, 32, 4000), ("cifar", Conv3(16, 64, 1), 32, 32, 4000), ("cifar", Conv3(16, 32, 2), 32, 32, 4000),
        ("cifar", Conv3(128, 32, 1), 16, 16, 4000), ("cifar", Conv3(32, 128, 1), 16, 16, 4000), ("cifar", Conv3(32, 64, 2), 16, 16, 4000),
        ("cifar", Conv3(256, 64, 1), 8, 8, 4000), ("cifar", Conv3(64, 256, 1), 8, 8, 4000), ("cifar", Conv3(64, 128, 2), 8, 8, 4000),
        ("cifar", Conv3(128, 192, 1), 4, 4, 4000),
        ("55M", Conv3(256, 64, 1), 112, 112, 128), ("55M", Conv3(64, 256, 1), 112, 112, 128), ("55M", Conv3(64, 128, 2), 112, 112, 128),
        ("55M", Conv3(512, 128, 1), 56, 56, 128), ("55M", Conv3(128, 512, 1), 56, 56, 128), ("55M", Conv3(128, 256, 2), 56, 56, 128),
        ("55M", Conv3(1024, 256, 1), 28, 28, 128), ("55M", Conv3(256, 1024, 1), 28, 28, 128), ("55M", Conv3(256, 512, 2), 28, 28, 128),
        ("55M", Conv3(512, 640, 1), 14, 14, 128),
    ];

    private static readonly int[] Bounds = [128, 256, 512];

    private static ConvGeometry Conv3(int cin, int cout, int stride) => new(cin, cout, 3, 3, stride, stride, 1, 1);

    public static int Run(string[] args)
    {
        string cifarModel = args.Length > 1 ? args[1] : Path.Combine("models", "sdtv2-cifar10", "sdtv2_cifar10_w32-192_T4.pth");
        double seconds = args.Length > 2 ? double.Parse(args[2], CultureInfo.InvariantCulture) : 2;
        bool smoke = args.Length > 3 && args[3] == "cpu";
        int failures = 0;
        using var cpu = new CpuBackend();
        var cases = RandomCases(new Random(13), smoke ? 6 : 48);
        var expected = new Dictionary<int, (float[] Conv, float[] Lif)>();
        var layerMs = new Dictionary<(int, SpikeInputGemm), double>();
        var modelIps = new Dictionary<(string, SpikeInputGemm), double>();
        var models = smoke ? [] : new (string Name, PackedModel Packed, int Batch)[]
        {
            ("cifar b1000 setting 4", PackedModel.IsPackedFile(cifarModel) ? PackedModel.Load(cifarModel) : Pack(ModelLoader.Load(cifarModel)), 1000),
            ("55M b32 setting 4", Pack(new LoadedModel(Presets.Get("55M"), RandomWeights.Create(Presets.Get("55M")), null, null, "55M", null, new Dictionary<string, string>())), 32),
        };
        foreach (var mode in Modes)
        {
            var clock = Stopwatch.StartNew();
            using var gpu = smoke ? CudaBackend.OnCpuAccelerator(mode, split: false) : CudaBackend.Open(0, new ComputeOptions { SpikeGemm = mode });
            Console.WriteLine($"{mode}: {gpu.Description}; opened in {clock.Elapsed.TotalSeconds:F1} s");
            if (mode != SpikeInputGemm.TensorCores)
            {
                int bad = 0;
                for (int i = 0; i < cases.Count; i++)
                {
                    var c = cases[i];
                    if (!expected.TryGetValue(i, out var want)) expected[i] = want = (GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W), GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W, lif: true));
                    var got = (GpuCheck.RunConv(gpu, c.Spec, c.Input, c.Frames, c.H, c.W), GpuCheck.RunConv(gpu, c.Spec, c.Input, c.Frames, c.H, c.W, lif: true));
                    int differ = want.Conv.Zip(got.Item1).Count(p => p.First != p.Second) + want.Lif.Zip(got.Item2).Count(p => p.First != p.Second);
                    if (differ == 0) continue;
                    bad++;
                    Console.WriteLine($"  FAILED {c.Spec.Geometry} on {c.H}x{c.W} x{c.Frames}, {c.Bits}-bit: {differ} elements differ from the CPU integer path");
                }
                Console.WriteLine($"{mode}: {cases.Count - bad}/{cases.Count} random shapes bit for bit equal to the CPU integer path (conv and conv + LIF)");
                failures += bad;
                if (smoke) continue;
                for (int i = 0; i < Layers.Length; i++)
                {
                    layerMs[(i, mode)] = TimeLayer(gpu, Layers[i].G, Layers[i].H, Layers[i].W, Layers[i].Frames);
                    Console.WriteLine($"  {Layers[i].Model} {Layers[i].G} @{Layers[i].H}x{Layers[i].W} x{Layers[i].Frames}: {layerMs[(i, mode)]:F3} ms");
                }
            }
            foreach (var (name, packed, batch) in models)
            {
                modelIps[(name, mode)] = TimeModel(gpu, packed, batch, seconds);
                Console.WriteLine($"  {name}: {modelIps[(name, mode)]:F1} images/s");
            }
        }
        if (smoke) return failures == 0 ? 0 : 1;
        // The rule's bound: whole models with implicit GEMMs up to R rows (the default rule above is R = GpuSpikeConv.ImplicitMaxRows).
        var boundIps = new Dictionary<(string, int), double>();
        foreach (int bound in Bounds)
        {
            using var gpu = new CudaBackend(GpuDevice.OpenCuda(0), DeviceSpec.Cuda(0), implicitMaxRows: bound);
            foreach (var (name, packed, batch) in models)
            {
                boundIps[(name, bound)] = TimeModel(gpu, packed, batch, seconds);
                Console.WriteLine($"  R = {bound}: {name}: {boundIps[(name, bound)]:F1} images/s");
            }
        }
        Console.WriteLine();
        Console.WriteLine("| layer (x frames) | GEMM rows x K | im2col + cuBLAS ms | implicit mma ms | im2col / implicit | default takes |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: | --- |");
        for (int i = 0; i < Layers.Length; i++)
        {
            var (model, g, h, w, frames) = Layers[i];
            double old = layerMs[(i, SpikeInputGemm.TensorCoresIm2col)], mma = layerMs[(i, SpikeInputGemm.TensorCoresImplicit)];
            int cp = (g.InChannels + 15) / 16 * 16;
            bool pays = GpuSpikeConv.ImplicitPays(g.OutChannels);
            Console.WriteLine($"| {model} {g.InChannels}->{g.OutChannels} s{g.StrideH} @{h}x{w} x{frames} | {g.OutChannels} x {9 * cp} | {old:F3} | {mma:F3} | {old / mma:F2}x | {(pays ? "implicit" : "im2col")} |");
        }
        Console.WriteLine();
        Console.WriteLine("| images/s | im2col + cuBLAS | implicit everywhere | default rule |");
        Console.WriteLine("| --- | ---: | ---: | ---: |");
        foreach (var (name, _, _) in models)
            Console.WriteLine($"| {name} | {modelIps[(name, Modes[0])]:F1} | {modelIps[(name, Modes[1])]:F1} | {modelIps[(name, Modes[2])]:F1} |");
        Console.WriteLine();
        Console.WriteLine($"| images/s, rule: implicit up to R GEMM rows | {string.Join(" | ", Bounds.Select(r => $"R = {r}"))} |");
        Console.WriteLine($"| --- |{string.Concat(Bounds.Select(_ => " ---: |"))}");
        foreach (var (name, _, _) in models)
            Console.WriteLine($"| {name} | {string.Join(" | ", Bounds.Select(r => boundIps[(name, r)].ToString("F1", CultureInfo.InvariantCulture)))} |");
        Console.WriteLine(failures == 0 ? "all checks passed" : $"{failures} checks FAILED");
        return failures == 0 ? 0 : 1;
    }

    internal static PackedModel Pack(LoadedModel model) => PackedModel.Create(model, QuantizationSetting.Uniform(4), QuantizerSpec.Paper);

    private sealed record Case(ConvLayerSpec Spec, float[] Input, int Frames, int H, int W, int Bits);

    /// <summary>Random spike-input convs: 1–80 channels each way, 3×3 (some 1×3, 5×5), stride 1 or 2, padding 0 or 1, maps 1–19, 1–6 frames (even: T = 2), 4–16-bit codes.</summary>
    private static List<Case> RandomCases(Random rng, int count)
    {
        var cases = new List<Case>();
        int[] bits = [4, 8, 12, 16];
        while (cases.Count < count)
        {
            int kh = rng.Next(6) == 0 ? 1 : rng.Next(6) == 0 ? 5 : 3, kw = kh == 1 ? 3 : kh, stride = rng.Next(1, 3), pad = rng.Next(2);
            var g = new ConvGeometry(rng.Next(1, 81), rng.Next(1, 81), kh, kw, stride, stride, kh == 1 ? 0 : pad, pad);
            int h = rng.Next(1, 20), w = rng.Next(1, 20), frames = 2 * rng.Next(1, 4), b = bits[rng.Next(bits.Length)];
            if (g.OutH(h) <= 0 || g.OutW(w) <= 0) continue;
            var spec = RandomSpec(rng, g, b);
            var input = Enumerable.Range(0, frames * g.InChannels * h * w).Select(_ => rng.Next(3) == 0 ? 1f : 0f).ToArray();
            cases.Add(new Case(spec, input, frames, h, w, b));
        }
        return cases;
    }

    /// <summary>A spike-input conv of random <paramref name="bits"/>-bit codes (paper quantizer, or per-channel asymmetric MSE at ≤ 8 bits), bias and a BN.</summary>
    internal static ConvLayerSpec RandomSpec(Random rng, ConvGeometry g, int bits)
    {
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], bits, QuantizerSpec.Parse(bits <= 8 && rng.Next(2) == 0 ? "asymmetric-channel-mse" : "paper"));
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var bn = new ChannelAffine(bias.Select(x => x + 1.5f).ToArray(), bias.Select(x => 0.1f * x).ToArray());
        return new ConvLayerSpec(g, new PackedConvWeights(codes), bias, [bn]) { SpikeInput = true };
    }

    /// <summary>
    /// Milliseconds of one conv call (best of repetitions over about 0.4 s), 4-bit codes, a third of the inputs firing;
    /// with <paramref name="timesteps"/> &gt; 0 of one ConvLif call over that many steps (no recorder: fused where the backend fuses).
    /// </summary>
    internal static double TimeLayer(IBackend b, ConvGeometry g, int h, int w, int frames, int timesteps = 0)
    {
        var rng = new Random(1);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], 4, QuantizerSpec.Paper);
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), new float[g.OutChannels], []) { SpikeInput = true };
        using var layer = b.CreateConv(spec);
        var x = new float[(long)frames * g.InChannels * h * w];
        for (long i = 0; i < x.Length; i += 3) x[i] = 1f;
        using var input = b.Allocate(x.Length);
        using var output = b.Allocate((long)frames * g.OutChannels * g.OutH(h) * g.OutW(w));
        using var spikes = timesteps > 0 ? b.Allocate(output.Length) : null;
        b.Upload(x, input);
        void Call()
        {
            if (spikes is null) b.Conv(layer, input, frames, h, w, output);
            else b.ConvLif(layer, input, frames, h, w, output, spikes, timesteps, 0.4f, 0, null);
        }
        Call();
        b.Synchronize();
        double best = double.MaxValue, total = 0;
        for (int rep = 0; rep < 3 || total < 0.4; rep++)
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

    internal static double TimeModel(IBackend b, PackedModel packed, int batch, double seconds)
    {
        using var net = new Sdtv2Model(packed, simulate: false, b);
        int h = packed.Config.ImageHeight, w = packed.Config.ImageWidth;
        var images = new float[batch * packed.Config.InChannels * h * w];
        var rng = new Random(7);
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);
        net.Forward(images, batch, h, w);
        int iterations = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds || iterations < 2)
        {
            net.Forward(images, batch, h, w);
            iterations++;
        }
        return iterations * batch / clock.Elapsed.TotalSeconds;
    }
}
