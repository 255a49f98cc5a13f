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
/// <c>spike-mma [CIFAR_MODEL] [SECONDS] [cpu|gpu] [ENGINES]</c> (CIFAR_MODEL: the checkpoint, packed at setting 4 here, or a packed file): on a CUDA machine, the implicit-GEMM int8 convolutions
/// (issue 13: warp tiles, <see cref="SpikeMmaKernels"/>, and tiled blocks with shared memory, <see cref="SpikeTiledKernels"/>)
/// against im2col + cuBLAS int8 and the CPU's integer path: (1) random spike-input conv shapes (odd maps and channel
/// counts, stride 2, partial tiles, 1–3 int8 digits) bit for bit, plain and with the fused LIF; (2) each 3×3 layer shape of
/// the CIFAR model and the 55M preset at a few frames bit for bit against im2col, then timed every way at full size (x4000
/// frames: batch 1000, T = 4; x128) (best of repetitions); (3) images/s of both models at setting 4 under the default rule
/// with the tiled kernel from several GEMM-row bounds (∞: the rule before it), logits bit for bit equal across rules.
/// Prints short tables last; SECONDS 0 stops after (2), ENGINES (indices, comma-separated) picks engines. With <c>cpu</c>, only (1) on a few shapes, on ILGPU's CPU accelerator (a smoke test without a GPU).
/// </summary>
internal static class SpikeMmaCheck
{
    /// <summary>Per-layer engines: how each backend is opened.</summary>
    private static readonly (string Name, SpikeInputGemm Mode, int RowWarps, bool Fuses)[] Engines =
    [
        ("im2col + cuBLAS", SpikeInputGemm.TensorCoresIm2col, 0, true), ("warp tiles", SpikeInputGemm.TensorCoresImplicit, 0, true),
        ("tiled 64x128", SpikeInputGemm.TensorCoresTiled, 2, true), ("tiled 128x64", SpikeInputGemm.TensorCoresTiled, 4, true),
        ("tiled, epilogue apart", SpikeInputGemm.TensorCoresTiled, 0, false),
        ("pipelined 128x128", SpikeInputGemm.TensorCoresPipelined, 0, true), ("pipelined, epilogue apart", SpikeInputGemm.TensorCoresPipelined, 0, false),
        ("wgmma 128x128", SpikeInputGemm.TensorCoresWgmma, 0, true), ("wgmma, epilogue apart", SpikeInputGemm.TensorCoresWgmma, 0, false),
    ];

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

    /// <summary>Whole-model rules: the tiled kernel from this many GEMM rows (int.MaxValue: never, the rule before it), up to any.</summary>
    private static readonly int[] Bounds = [int.MaxValue, 256, 128, 64];

    /// <summary>Whole-model rules of <c>spike-mma-models</c>: tiled from / up to these GEMM rows (calls without a LIF, one digit).</summary>
    private static readonly (string Name, int Min, int Max)[] Rules =
    [
        ("before (no tiles)", int.MaxValue, int.MaxValue), ("default (tiles at 64 rows)", GpuSpikeConv.TiledMinRows, GpuSpikeConv.TiledMaxRows),
        ("tiles from 64 rows, any width", 64, int.MaxValue),
    ];

    /// <summary>
    /// <c>spike-mma-models [CIFAR_MODEL] [SECONDS]</c>: the default engine on the random shapes bit for bit against the CPU,
    /// then images/s of both models at setting 4 under <see cref="Rules"/>, in turn twice (logits bit for bit equal).
    /// </summary>
    public static int RunModels(string[] args)
    {
        var (cifarModel, seconds, _) = CheckArgs(args);
        int failures = 0;
        using (var cpu = new CpuBackend())
        using (var gpu = CudaBackend.Open(0))
        {
            var cases = RandomCases(new Random(13), 48);
            foreach (var c in cases)
                foreach (bool lif in new[] { false, true })
                    if (!GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W, lif).AsSpan().SequenceEqual(GpuCheck.RunConv(gpu, c.Spec, c.Input, c.Frames, c.H, c.W, lif)))
                    {
                        failures++;
                        Console.WriteLine($"  FAILED {c.Spec.Geometry} on {c.H}x{c.W} x{c.Frames}, {c.Bits}-bit, LIF {lif}: differs from the CPU integer path");
                    }
            Console.WriteLine($"default rule: {cases.Count * 2 - failures}/{cases.Count * 2} random convs (plain and + LIF) bit for bit equal to the CPU integer path");
        }
        var models = SettingFourModels(cifarModel);
        var ips = new Dictionary<(string, int), List<double>>();
        var logits = new Dictionary<string, float[]>();
        for (int round = 0; round < 2; round++)
            for (int r = 0; r < Rules.Length; r++)
            {
                using var gpu = new CudaBackend(GpuDevice.OpenCuda(0), DeviceSpec.Cuda(0), tiledMinRows: Rules[r].Min, tiledMaxRows: Rules[r].Max);
                foreach (var model in models)
                {
                    if (!ips.TryGetValue((model.Name, r), out var list)) ips[(model.Name, r)] = list = [];
                    list.Add(TimeAndCompare(gpu, Rules[r].Name, model, seconds, logits, ref failures));
                }
            }
        Console.WriteLine();
        Console.WriteLine($"| images/s (two runs in turn) | {string.Join(" | ", Rules.Select(r => r.Name))} |");
        Console.WriteLine($"| --- |{string.Concat(Rules.Select(_ => " ---: |"))}");
        foreach (var (name, _, _) in models)
            Console.WriteLine($"| {name} | {string.Join(" | ", Enumerable.Range(0, Rules.Length).Select(r => string.Join(" / ", ips[(name, r)].Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))))} |");
        Console.WriteLine(failures == 0 ? "all checks passed" : $"{failures} checks FAILED");
        return failures == 0 ? 0 : 1;
    }

    private static ConvGeometry Conv3(int cin, int cout, int stride) => new(cin, cout, 3, 3, stride, stride, 1, 1);

    private static CudaBackend OpenEngine((string Name, SpikeInputGemm Mode, int RowWarps, bool Fuses) e, bool smoke) => smoke
        ? CudaBackend.OnCpuAccelerator(e.Mode, split: false)
        : new CudaBackend(GpuDevice.OpenCuda(0), DeviceSpec.Cuda(0), spikeGemm: e.Mode, tiledRowWarps: e.RowWarps, tiledFuses: e.Fuses);

    /// <summary>
    /// <c>spike-mma-one ENGINE LAYER FRAMES</c>: one conv call of a layer of <see cref="Layers"/> by one of <see cref="Engines"/>
    /// (indices) on that many frames, after one warm-up call: a target for a profiler (<c>ncu --launch-skip</c>).
    /// </summary>
    public static int RunOne(string[] args)
    {
        int e = int.Parse(args[1], CultureInfo.InvariantCulture), i = int.Parse(args[2], CultureInfo.InvariantCulture), frames = int.Parse(args[3], CultureInfo.InvariantCulture);
        var (model, g, h, w, _) = Layers[i];
        using var b = OpenEngine(Engines[e], smoke: false);
        using var layer = b.CreateConv(LayerSpec(g));
        var x = new float[(long)frames * g.InChannels * h * w];
        for (long j = 0; j < x.Length; j += 3) x[j] = 1f;
        using var input = b.Allocate(x.Length);
        using var output = b.Allocate((long)frames * g.OutChannels * g.OutH(h) * g.OutW(w));
        b.Upload(x, input);
        for (int rep = 0; rep < 2; rep++)
        {
            var clock = Stopwatch.StartNew();
            b.Conv(layer, input, frames, h, w, output);
            b.Synchronize();
            Console.WriteLine($"{Engines[e].Name}: {model} {g.InChannels}->{g.OutChannels} s{g.StrideH} @{h}x{w} x{frames}: {clock.Elapsed.TotalMilliseconds:F3} ms");
        }
        return 0;
    }

    public static int Run(string[] args)
    {
        var (cifarModel, seconds, smoke) = CheckArgs(args);
        // [ENGINES] after the arguments: the indices of Engines to run, comma-separated (im2col, 0, always runs: the reference).
        int[] engines = args.Length > 4 ? [0, .. args[4].Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).Where(v => v != 0)] : [.. Enumerable.Range(0, Engines.Length)];
        int failures = 0;
        using var cpu = new CpuBackend();
        var cases = RandomCases(new Random(13), smoke ? 4 : 48);
        var expected = cases.Select(c => (GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W), GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W, lif: true))).ToList();
        var layerMs = new Dictionary<(int, int), double>();
        var reference = new Dictionary<int, float[]>();
        var referenceLif = new Dictionary<int, float[]>();
        foreach (int e in engines)
        {
            var clock = Stopwatch.StartNew();
            using var gpu = OpenEngine(Engines[e], smoke);
            Console.WriteLine($"{Engines[e].Name}: {gpu.Description}; opened in {clock.Elapsed.TotalSeconds:F1} s");
            failures += CheckCases(gpu, Engines[e].Name, cases, expected);
            if (smoke) continue;
            for (int i = 0; i < Layers.Length; i++)
            {
                var (model, g, h, w, frames) = Layers[i];
                // Bit for bit against im2col at a few frames (the full map), then timed at full size.
                var y = LayerOutput(gpu, g, h, w, model == "cifar" ? 16 : 4);
                var spikes = LayerOutput(gpu, g, h, w, model == "cifar" ? 16 : 8, lif: true);
                if (e == 0) (reference[i], referenceLif[i]) = (y, spikes);
                else if (!reference[i].AsSpan().SequenceEqual(y) || !referenceLif[i].AsSpan().SequenceEqual(spikes))
                {
                    failures++;
                    Console.WriteLine($"  FAILED {model} {g} @{h}x{w}: differs from im2col + cuBLAS (conv or conv + LIF)");
                }
                layerMs[(i, e)] = TimeLayer(gpu, g, h, w, frames);
                layerMs[(i + Layers.Length, e)] = TimeLayer(gpu, g, h, w, frames, timesteps: 4);
                Console.WriteLine($"  {model} {g.InChannels}->{g.OutChannels} s{g.StrideH} @{h}x{w} x{frames}: {layerMs[(i, e)]:F3} ms, + LIF (T = 4) {layerMs[(i + Layers.Length, e)]:F3} ms");
            }
        }
        if (smoke) return failures == 0 ? 0 : 1;
        PrintLayers(layerMs, engines);
        if (seconds <= 0) return failures == 0 ? 0 : 1; // per-layer only
        var models = SettingFourModels(cifarModel);
        var boundIps = new Dictionary<(string, int), double>();
        var logits = new Dictionary<string, float[]>();
        foreach (int bound in Bounds)
        {
            using var gpu = new CudaBackend(GpuDevice.OpenCuda(0), DeviceSpec.Cuda(0), tiledMinRows: bound, tiledMaxRows: int.MaxValue);
            foreach (var model in models)
                boundIps[(model.Name, bound)] = TimeAndCompare(gpu, $"tiled from {Bound(bound)} rows", model, seconds, logits, ref failures);
        }
        Console.WriteLine();
        Console.WriteLine($"| images/s, tiled from R GEMM rows | {string.Join(" | ", Bounds.Select(r => $"R = {Bound(r)}"))} |");
        Console.WriteLine($"| --- |{string.Concat(Bounds.Select(_ => " ---: |"))}");
        foreach (var (name, _, _) in models)
            Console.WriteLine($"| {name} | {string.Join(" | ", Bounds.Select(r => boundIps[(name, r)].ToString("F1", CultureInfo.InvariantCulture)))} |");
        Console.WriteLine(failures == 0 ? "all checks passed" : $"{failures} checks FAILED");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>The per-layer table: each engine's ms, im2col over the best implicit engine, what the default rule takes (calls without a LIF).</summary>
    private static void PrintLayers(Dictionary<(int, int), double> layerMs, int[] engines)
    {
        Console.WriteLine();
        Console.WriteLine($"| layer (x frames) | GEMM rows x K | {string.Join(" | ", engines.Select(e => Engines[e].Name + " ms"))} | im2col / best implicit | default takes |");
        Console.WriteLine($"| --- | --- |{string.Concat(engines.Select(_ => " ---: |"))} ---: | --- |");
        for (int i = 0; i < Layers.Length; i++)
        {
            var (model, g, h, w, frames) = Layers[i];
            int cp = (g.InChannels + 15) / 16 * 16, rows = g.OutChannels;
            double best = engines.Skip(1).Min(e => layerMs[(i, e)]);
            string takes = GpuSpikeConv.PipelinedPays(rows, 9 * cp, 1, lif: false) ? "pipelined" : GpuSpikeConv.TiledPays(rows, 1, lif: false) ? $"tiled {(GpuSpikeConv.TiledRowWarps(rows) == 2 ? "64x128" : "128x64")}" : GpuSpikeConv.ImplicitPays(rows) ? "warp tiles" : "im2col";
            Console.WriteLine($"| {model} {g.InChannels}->{rows} s{g.StrideH} @{h}x{w} x{frames} | {rows} x {9 * cp} | " +
                $"{string.Join(" | ", engines.Select(e => layerMs[(i, e)].ToString("F3", CultureInfo.InvariantCulture)))} | {layerMs[(i, 0)] / best:F2}x | {takes} |");
        }
        if (!layerMs.ContainsKey((Layers.Length, 0))) return;
        Console.WriteLine();
        Console.WriteLine($"| layer + LIF, T = 4 (x frames) | GEMM rows x K | {string.Join(" | ", engines.Select(e => Engines[e].Name + " ms"))} | im2col / best implicit |");
        Console.WriteLine($"| --- | --- |{string.Concat(engines.Select(_ => " ---: |"))} ---: |");
        for (int i = 0; i < Layers.Length; i++)
        {
            var (model, g, h, w, frames) = Layers[i];
            int cp = (g.InChannels + 15) / 16 * 16, at = i + Layers.Length;
            double best = engines.Skip(1).Min(e => layerMs[(at, e)]);
            Console.WriteLine($"| {model} {g.InChannels}->{g.OutChannels} s{g.StrideH} @{h}x{w} x{frames} | {g.OutChannels} x {9 * cp} | " +
                $"{string.Join(" | ", engines.Select(e => layerMs[(at, e)].ToString("F3", CultureInfo.InvariantCulture)))} | {layerMs[(at, 0)] / best:F2}x |");
        }
    }

    /// <summary>Images/s of a model under one rule; its logits must equal the first rule's bit for bit.</summary>
    private static double TimeAndCompare(IBackend gpu, string rule, (string Name, PackedModel Packed, int Batch) model, double seconds,
        Dictionary<string, float[]> logits, ref int failures)
    {
        var (ips, y) = TimeModel(gpu, model.Packed, model.Batch, seconds);
        if (!logits.TryGetValue(model.Name, out var first)) logits[model.Name] = y;
        else if (!first.AsSpan().SequenceEqual(y))
        {
            failures++;
            Console.WriteLine($"  FAILED {model.Name}: logits under '{rule}' differ from the first rule's");
        }
        Console.WriteLine($"  {rule}: {model.Name}: {ips:F1} images/s");
        return ips;
    }

    private static string Bound(int rows) => rows == int.MaxValue ? "∞" : rows.ToString(CultureInfo.InvariantCulture);

    /// <summary>Each case's conv and conv + LIF on <paramref name="gpu"/> against the CPU's (<paramref name="expected"/>), bit for bit; prints a line, returns the failures.</summary>
    internal static int CheckCases(IBackend gpu, string name, List<Case> cases, List<(float[] Conv, float[] Lif)> expected)
    {
        int bad = 0;
        for (int i = 0; i < cases.Count; i++)
        {
            var c = cases[i];
            var got = (GpuCheck.RunConv(gpu, c.Spec, c.Input, c.Frames, c.H, c.W), GpuCheck.RunConv(gpu, c.Spec, c.Input, c.Frames, c.H, c.W, lif: true));
            int differ = expected[i].Conv.Zip(got.Item1).Count(p => p.First != p.Second) + expected[i].Lif.Zip(got.Item2).Count(p => p.First != p.Second);
            if (differ == 0) continue;
            bad++;
            Console.WriteLine($"  FAILED {c.Spec.Geometry} on {c.H}x{c.W} x{c.Frames}, {c.Bits}-bit: {differ} elements differ from the CPU integer path");
        }
        Console.WriteLine($"{name}: {cases.Count - bad}/{cases.Count} random shapes bit for bit equal to the CPU integer path (conv and conv + LIF)");
        return bad;
    }

    internal static PackedModel Pack(LoadedModel model) => PackedModel.Create(model, QuantizationSetting.Uniform(4), QuantizerSpec.Paper);

    /// <summary>The GPU checks' shared arguments after the command: [CIFAR_MODEL] [SECONDS] [cpu] (the bundled checkpoint, 2 s, on a card).</summary>
    internal static (string CifarModel, double Seconds, bool Smoke) CheckArgs(string[] args) => (
        args.Length > 1 ? args[1] : Path.Combine("models", "sdtv2-cifar10", "sdtv2_cifar10_w32-192_T4.pth"),
        args.Length > 2 ? double.Parse(args[2], CultureInfo.InvariantCulture) : 2,
        args.Length > 3 && args[3] == "cpu");

    /// <summary>The two models the GPU checks time at setting 4: CIFAR (a packed file as is, else packed) at batch 1000, the 55M preset with random weights at 32.</summary>
    internal static (string Name, PackedModel Packed, int Batch)[] SettingFourModels(string cifarModel) =>
    [
        ("cifar b1000 setting 4", PackedModel.IsPackedFile(cifarModel) ? PackedModel.Load(cifarModel) : Pack(ModelLoader.Load(cifarModel)), 1000),
        ("55M b32 setting 4", Pack(new LoadedModel(Presets.Get("55M"), RandomWeights.Create(Presets.Get("55M")), null, null, "55M", null, new Dictionary<string, string>())), 32),
    ];

    internal sealed record Case(ConvLayerSpec Spec, float[] Input, int Frames, int H, int W, int Bits);

    /// <summary>Random spike-input convs: 1–80 channels each way, 3×3 (some 1×3, 5×5), stride 1 or 2, padding 0 or 1, maps 1–19, 1–6 frames (even: T = 2), 4–16-bit codes.</summary>
    internal static List<Case> RandomCases(Random rng, int count)
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

    /// <summary>A layer of 4-bit codes (random weights, bias, no BN), the same for every engine; spikes in, or real values with <paramref name="realInput"/>.</summary>
    internal static ConvLayerSpec LayerSpec(ConvGeometry g, bool realInput = false)
    {
        var rng = new Random(1);
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], 4, QuantizerSpec.Paper);
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        return new ConvLayerSpec(g, new PackedConvWeights(codes), bias, []) { SpikeInput = !realInput };
    }

    /// <summary>The layer's output on <paramref name="frames"/> frames of random spikes (a third firing).</summary>
    private static float[] LayerOutput(IBackend b, ConvGeometry g, int h, int w, int frames, bool lif = false)
    {
        var rng = new Random(2);
        var x = Enumerable.Range(0, frames * g.InChannels * h * w).Select(_ => rng.Next(3) == 0 ? 1f : 0f).ToArray();
        return GpuCheck.RunConv(b, LayerSpec(g), x, frames, h, w, lif, timesteps: 4);
    }

    /// <summary>
    /// Milliseconds of one conv call (best of repetitions over about 0.25 s), 4-bit codes, a third of the inputs firing;
    /// with <paramref name="timesteps"/> &gt; 0 of one ConvLif call over that many steps (no recorder: fused where the backend fuses).
    /// With <paramref name="realInput"/> a layer of codes over real values (every input nonzero).
    /// </summary>
    internal static double TimeLayer(IBackend b, ConvGeometry g, int h, int w, int frames, int timesteps = 0, bool realInput = false)
    {
        using var layer = b.CreateConv(LayerSpec(g, realInput));
        var x = new float[(long)frames * g.InChannels * h * w];
        for (long i = 0; i < x.Length; i++) x[i] = realInput ? 0.25f + (i % 7) * 0.1f : i % 3 == 0 ? 1f : 0f;
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
        for (int rep = 0; rep < 3 || total < 0.25; rep++)
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

    /// <summary>Images/s of <see cref="Sdtv2Model.Forward"/> in a loop after one warm-up pass, and the warm-up pass's logits.</summary>
    internal static (double ImagesPerSecond, float[] Logits) TimeModel(IBackend b, PackedModel packed, int batch, double seconds)
    {
        using var net = new Sdtv2Model(packed, simulate: false, b);
        int h = packed.Config.ImageHeight, w = packed.Config.ImageWidth;
        var images = new float[batch * packed.Config.InChannels * h * w];
        var rng = new Random(7);
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);
        var logits = net.Forward(images, batch, h, w).ToArray();
        int iterations = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds || iterations < 2)
        {
            net.Forward(images, batch, h, w);
            iterations++;
        }
        return (iterations * batch / clock.Elapsed.TotalSeconds, logits);
    }
}
