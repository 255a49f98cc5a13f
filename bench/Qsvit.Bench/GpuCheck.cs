using System.Diagnostics;
using System.Text.Json;
using ILGPU.Runtime.Cuda;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// <c>gpu-check PARITY_DIR CIFAR_MODEL CIFAR_TEST [LIMIT] [BATCH]</c>: on a CUDA machine, the CUDA backend against the CPU
/// backend, issue 10's parity checks: (1) conv layers of every kind (the GPU-sized tiles) element by element; (2) the
/// parity fixture's logits at T=1 and T=4 against PyTorch's (bound 1e-2 at T=1); (3) the bundled CIFAR model over the
/// test set on both backends: top-1 (bound ±0.2 points), identical predictions (≥ 99.5 %), run-to-run identity, speed.
/// </summary>
internal static class GpuCheck
{
    public static int Run(string[] args)
    {
        if (args.Length > 2 && args[1] == "ptx") return DumpPtx(args[2]);
        string parityDir = args[1], model = args[2], test = args[3];
        int? limit = args.Length > 4 && args[4] != "all" ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : null;
        int batch = args.Length > 5 ? int.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture) : 500;
        using var cpu = new CpuBackend();
        int failures = 0;
        // ("-" for the model skips the CIFAR part.)
        var cifar = model == "-" ? null : ModelLoader.Load(model);
        var data = cifar is null ? null : DatasetLoader.Open(test, new DatasetOptions());
        EvalResult? cpuResult = null;
        if (cifar is not null)
        {
            cpuResult = Evaluator.Run(new Sdtv2Model(cifar.Config, cifar.State, backend: cpu), data!, new EvalOptions { BatchSize = 64, Limit = limit });
            Console.WriteLine($"cifar {cpu.Description}: top-1 {100.0 * cpuResult.Top1Correct / cpuResult.Count:F2} % over {cpuResult.Count} images, {cpuResult.ImagesPerSecond:F0} images/s");
        }
        // One CUDA backend at a time (each holds its own context): the ILGPU kernels alone, then cuBLAS in fp32 (--gemm fp32),
        // then cuBLAS with spike-input convs on tensor cores (the default).
        foreach (var (useCublas, gemm) in new[] { (false, SpikeInputGemm.TensorCores), (true, SpikeInputGemm.Fp32), (true, SpikeInputGemm.TensorCores) })
        {
            var clock = Stopwatch.StartNew();
            using var gpu = CudaBackend.Open(0, new ComputeOptions { SpikeGemm = gemm }, useCublas: useCublas);
            Console.WriteLine($"device: {gpu.Description}; opened and kernels compiled in {clock.Elapsed.TotalSeconds:F1} s");
            foreach (var (g, h, w, frames) in new[]
                     {
                         (new ConvGeometry(3, 16, 7, 7, 1, 1, 3, 3), 32, 32, 40), (new ConvGeometry(64, 256, 3, 3, 1, 1, 1, 1), 8, 8, 64),
                         (new ConvGeometry(160, 640, 1, 1), 14, 14, 8), (new ConvGeometry(70, 66, 3, 3, 2, 2, 1, 1, 2), 15, 13, 5),
                         (new ConvGeometry(128, 128, 7, 7, 1, 1, 3, 3, 128), 16, 16, 8), (new ConvGeometry(96, 96, 3, 3, 1, 1, 0, 0, 96), 10, 10, 4),
                     })
            {
                failures += CheckConv(cpu, gpu, g, h, w, frames, new Random(g.GetHashCode()), spikeInput: false);
                if (g.Groups == 1)
                    failures += CheckConv(cpu, gpu, g, h, w, frames, new Random(g.GetHashCode()), spikeInput: true);
            }
            // Integer codes on spike inputs: bit for bit against the CPU's integer path (1, 2 and 3 int8 digits; odd K, stride 2).
            foreach (var (g, h, w, frames, bits, quantizer) in new[]
                     {
                         (new ConvGeometry(64, 256, 3, 3, 1, 1, 1, 1), 8, 8, 64, 8, "paper"), (new ConvGeometry(160, 640, 1, 1), 14, 14, 8, 4, "symmetric-channel"),
                         (new ConvGeometry(70, 66, 3, 3, 2, 2, 1, 1), 15, 13, 5, 8, "asymmetric-channel-mse"), (new ConvGeometry(35, 48, 1, 1), 7, 7, 12, 12, "asymmetric"),
                         (new ConvGeometry(33, 20, 3, 3, 1, 1, 1, 1), 9, 11, 6, 16, "symmetric-channel"),
                     })
                failures += CheckPackedConv(cpu, gpu, g, h, w, frames, bits, quantizer, new Random(g.GetHashCode() ^ bits));
            // The parity fixture (official 1000-class architecture with kd, 224x224) against PyTorch ("-": skipped).
            if (parityDir != "-") failures += CheckParity(gpu, parityDir);
            if (cifar is not null) failures += CheckCifar(gpu, cpuResult!, cifar, data!, limit, batch);
        }
        Console.WriteLine(failures == 0 ? "gpu-check: all passed" : $"gpu-check: {failures} FAILED");
        return failures == 0 ? 0 : 1;
    }

    /// <summary><c>gpu-check ptx DIR</c>: the PTX ILGPU generates for each kernel of the CUDA backend, written to DIR.</summary>
    private static int DumpPtx(string dir)
    {
        Directory.CreateDirectory(dir);
        using var context = ILGPU.Context.Create(b => b.Cuda());
        using var acc = ILGPU.Runtime.Cuda.CudaContextExtensions.CreateCudaAccelerator(context, 0);
        var kernels = Type.GetType("Qsvit.Backends.Cuda.GpuKernels, Qsvit", throwOnError: true)!;
        string[] grouped = ["Gemm", "Lif", "SquaredDiffPartials"];
        foreach (var method in kernels.GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static))
        {
            if (method.ReturnType != typeof(void)) continue;
            try
            {
                var kernel = method.IsGenericMethodDefinition
                    ? method.MakeGenericMethod(Type.GetType("Qsvit.Backends.Cuda.ContractedFma, Qsvit", throwOnError: true)!)
                    : method;
                var entry = grouped.Contains(method.Name)
                    ? ILGPU.Backends.EntryPoints.EntryPointDescription.FromExplicitlyGroupedKernel(kernel)
                    : ILGPU.Backends.EntryPoints.EntryPointDescription.FromImplicitlyGroupedKernel(kernel);
                var compiled = (ILGPU.Backends.PTX.PTXCompiledKernel)acc.Backend.Compile(entry, default);
                File.WriteAllText(Path.Combine(dir, method.Name + ".ptx"), compiled.PTXAssembly);
                Console.WriteLine($"{method.Name}: {compiled.PTXAssembly.Length} chars of PTX");
            }
            catch (Exception e) { Console.WriteLine($"{method.Name}: {e.GetType().Name}: {e.Message}"); }
        }
        return 0;
    }

    private static int CheckParity(CudaBackend gpu, string parityDir)
    {
        int failures = 0;
        var expectedJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(parityDir, "parity_expected.json"))).RootElement;
        var bytes = File.ReadAllBytes(Path.Combine(parityDir, "parity_input_2x3x224x224_f32.bin"));
        var images = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, images, 0, bytes.Length);
        foreach (int t in new[] { 1, 4 })
        {
            var loaded = ModelLoader.Load(Path.Combine(parityDir, "parity_sdtv2_w32-160_kd.pth"), overrides: new ConfigOverrides { Architecture = new PartialConfig { Timesteps = t } });
            using var m = new Sdtv2Model(loaded.Config, loaded.State, backend: gpu);
            var logits = m.Forward(images, 2, 224, 224, (LifRecorder?)null);
            var again = m.Forward(images, 2, 224, 224, (LifRecorder?)null);
            double max = 0;
            int argmaxSame = 0;
            var rows = expectedJson.GetProperty($"logits_T{t}").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
            for (int b = 0; b < 2; b++)
            {
                for (int i = 0; i < 1000; i++) max = Math.Max(max, Math.Abs(logits[b * 1000 + i] - rows[b][i]));
                if (Evaluator.ArgMax(logits.AsSpan(b * 1000, 1000)) == Evaluator.ArgMax(rows[b])) argmaxSame++;
            }
            bool ok = (t != 1 || max <= 1e-2) && logits.SequenceEqual(again);
            failures += ok ? 0 : 1;
            Console.WriteLine($"parity fixture T={t} ({gpu.GemmEngine}; {gpu.SpikeEngine}): max |logit - PyTorch| = {max:E2}, argmax same {argmaxSame}/2, rerun identical {logits.SequenceEqual(again)} {(ok ? "ok" : "FAILED")}");
        }

        return failures;
    }

    /// <summary>(3) The CIFAR test set on the GPU against the CPU backend's result, and a rerun.</summary>
    private static int CheckCifar(CudaBackend gpu, EvalResult rc, LoadedModel cifar, IImageDataset data, int? limit, int batch)
    {
        int failures = 0;
        using var m = new Sdtv2Model(cifar.Config, cifar.State, backend: gpu);
        Evaluator.Run(m, data, new EvalOptions { BatchSize = batch, Limit = Math.Min(limit ?? int.MaxValue, batch) }); // warm-up
        var rg = Evaluator.Run(m, data, new EvalOptions { BatchSize = batch, Limit = limit });
        Console.WriteLine($"cifar {gpu.GemmEngine}; {gpu.SpikeEngine}: top-1 {100.0 * rg.Top1Correct / rg.Count:F2} % over {rg.Count} images, {rg.ImagesPerSecond:F0} images/s " +
            $"(batch {batch}), workspace {gpu.WorkspaceBytes / (1024.0 * 1024):F0} MiB");
        int same = rg.Predictions.Zip(rc.Predictions).Count(p => p.First == p.Second);
        double diff = 100.0 * (rg.Top1Correct - rc.Top1Correct) / rg.Count;
        bool ok = Math.Abs(diff) <= 0.2 && same >= 0.995 * rg.Count;
        failures += ok ? 0 : 1;
        Console.WriteLine($"cifar parity ({gpu.GemmEngine}; {gpu.SpikeEngine}): top-1 difference {diff:+0.00;-0.00} points, identical predictions {same}/{rg.Count} ({100.0 * same / rg.Count:F2} %) {(ok ? "ok" : "FAILED")}");
        var r2 = Evaluator.Run(m, data, new EvalOptions { BatchSize = batch, Limit = limit });
        bool identical = r2.Predictions.SequenceEqual(rg.Predictions) && r2.Top1Correct == rg.Top1Correct;
        failures += identical ? 0 : 1;
        Console.WriteLine($"cifar rerun ({gpu.GemmEngine}; {gpu.SpikeEngine}): predictions identical {identical}, {r2.ImagesPerSecond:F0} images/s");
        // Issue 13: quantized settings on the backend's integer path against the fp32 simulation of the same codes.
        foreach (var setting in new[] { "8,4,8,8|8,8,8|4,32|4,32", "4", "8" })
        {
            var packed = PackedModel.Create(cifar, setting.Contains('|') ? QuantizationSetting.Parse(setting) : QuantizationSetting.Uniform(int.Parse(setting)), QuantizerSpec.Paper);
            using var integer = new Sdtv2Model(packed, simulate: false, backend: gpu);
            using var simulated = new Sdtv2Model(packed, simulate: true, backend: gpu);
            var ri = Evaluator.Run(integer, data, new EvalOptions { BatchSize = batch, Limit = limit });
            var rs = Evaluator.Run(simulated, data, new EvalOptions { BatchSize = batch, Limit = limit });
            int agree = ri.Predictions.Zip(rs.Predictions).Count(p => p.First == p.Second);
            bool pass = agree >= 0.995 * ri.Count;
            failures += pass ? 0 : 1;
            Console.WriteLine($"cifar packed {setting} (paper quantizer; {gpu.SpikeEngine}): integer path top-1 {100.0 * ri.Top1Correct / ri.Count:F2} % " +
                $"({ri.ImagesPerSecond:F0} images/s), fp32 simulation {100.0 * rs.Top1Correct / rs.Count:F2} % ({rs.ImagesPerSecond:F0} images/s), " +
                $"identical predictions {agree}/{ri.Count} ({100.0 * agree / ri.Count:F2} %) {(pass ? "ok" : "FAILED")}");
        }
        return failures;
    }

    /// <summary>A packed spike-input conv (codes, scales, bias, BN) on the GPU against the CPU's exact integer path: bit for bit.</summary>
    private static int CheckPackedConv(IBackend cpu, IBackend gpu, ConvGeometry g, int h, int w, int frames, int bits, string quantizer, Random rng)
    {
        var weight = Enumerable.Range(0, g.WeightLength).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var codes = PackedWeight.Quantize("w", weight, [g.OutChannels, g.InChannels, g.KernelH, g.KernelW], bits, QuantizerSpec.Parse(quantizer));
        var bias = Enumerable.Range(0, g.OutChannels).Select(_ => (float)rng.NextDouble()).ToArray();
        var bn = new ChannelAffine(bias.Select(b => b + 0.5f).ToArray(), bias.Select(b => -b).ToArray());
        var spec = new ConvLayerSpec(g, new PackedConvWeights(codes), bias, [bn]) { SpikeInput = true };
        var x = new float[frames * g.InChannels * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = rng.NextDouble() < 0.3 ? 1f : 0f;
        var (expected, actual) = (RunConv(cpu, spec, x, frames, h, w), RunConv(gpu, spec, x, frames, h, w));
        int differ = expected.Zip(actual).Count(p => p.First != p.Second);
        double max = expected.Zip(actual).Max(p => Math.Abs(p.First - p.Second));
        // On the integer path: bit for bit. With --gemm fp32 the codes are dequantized and summed in fp32: fp32 rounding.
        bool integer = ((CudaBackend)gpu).RunsIntegerCodes, ok = integer ? differ == 0 : max <= 1e-4;
        Console.WriteLine($"packed conv {g} {bits}-bit {quantizer} on {h}x{w} x{frames} ({((CudaBackend)gpu).SpikeEngine}): " +
            $"{differ}/{expected.Length} elements differ from the CPU integer path, max |diff| {max:E2} {(ok ? "ok" : "FAILED")}");
        return ok ? 0 : 1;
    }

    /// <summary>
    /// The conv's output, or with <paramref name="lif"/> ConvLif's spikes without a recorder (fused on the CUDA integer
    /// path), T = 2 unless <paramref name="timesteps"/> says otherwise, a threshold that leaves both outcomes common.
    /// </summary>
    internal static float[] RunConv(IBackend b, ConvLayerSpec spec, float[] x, int frames, int h, int w, bool lif = false, int timesteps = 2)
    {
        var g = spec.Geometry;
        using var layer = b.CreateConv(spec);
        using var input = b.Allocate(x.Length);
        using var output = b.Allocate((long)frames * g.OutChannels * g.OutH(h) * g.OutW(w));
        using var spikes = lif ? b.Allocate(output.Length) : null;
        b.Upload(x, input);
        if (spikes is null) b.Conv(layer, input, frames, h, w, output);
        else b.ConvLif(layer, input, frames, h, w, output, spikes, timesteps, 0.4f, 0, null);
        var y = new float[output.Length];
        b.Download(spikes ?? output, 0, y);
        return y;
    }

    private static int CheckConv(IBackend cpu, IBackend gpu, ConvGeometry g, int h, int w, int frames, Random rng, bool spikeInput)
    {
        int oh = g.OutH(h), ow = g.OutW(w);
        var x = new float[frames * g.InChannels * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = rng.NextDouble() < 0.3 ? 1f : 0f;
        var weight = new float[g.WeightLength];
        for (int i = 0; i < weight.Length; i++) weight[i] = (float)(rng.NextDouble() - 0.5);
        var scale = Enumerable.Range(0, g.OutChannels).Select(_ => (float)(0.5 + rng.NextDouble())).ToArray();
        var shift = Enumerable.Range(0, g.OutChannels).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var spec = new ConvLayerSpec(g, new DenseConvWeights(weight), [], [new ChannelAffine(scale, shift)]) { SpikeInput = spikeInput };
        var outputs = new List<float[]>();
        foreach (var b in new[] { cpu, gpu })
        {
            using var layer = b.CreateConv(spec);
            using var input = b.Allocate(x.Length);
            using var output = b.Allocate((long)frames * g.OutChannels * oh * ow);
            b.Upload(x, input);
            b.Conv(layer, input, frames, h, w, output);
            var y = new float[output.Length];
            b.Download(output, 0, y);
            outputs.Add(y);
        }
        int differ = 0;
        double max = 0;
        for (int i = 0; i < outputs[0].Length; i++)
        {
            if (outputs[0][i] != outputs[1][i]) differ++;
            max = Math.Max(max, Math.Abs(outputs[0][i] - outputs[1][i]));
        }
        bool ok = max <= 1e-4;
        Console.WriteLine($"conv {g}{(spikeInput ? " spike input" : "")} on {h}x{w} x{frames} ({((CudaBackend)gpu).Description}): {differ}/{outputs[0].Length} elements differ from the CPU, max |diff| {max:E2} {(ok ? "ok" : "FAILED")}");
        return ok ? 0 : 1;
    }
}
