using System.Diagnostics;
using System.Text.Json;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
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
        string parityDir = args[1], model = args[2], test = args[3];
        int? limit = args.Length > 4 && args[4] != "all" ? int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) : null;
        int batch = args.Length > 5 ? int.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture) : 500;
        var clock = Stopwatch.StartNew();
        using var gpu = CudaBackend.Open(0);
        Console.WriteLine($"device: {gpu.Description}; opened and kernels compiled in {clock.Elapsed.TotalSeconds:F1} s");
        using var ilgpu = CudaBackend.Open(0, useCublas: false);
        using var cpu = new CpuBackend();
        int failures = 0;

        // (1) Layers on the GPU's 64x64 tiles against the CPU kernels.
        var rng = new Random(3);
        foreach (var (g, h, w, frames) in new[]
                 {
                     (new ConvGeometry(3, 16, 7, 7, 1, 1, 3, 3), 32, 32, 40), (new ConvGeometry(64, 256, 3, 3, 1, 1, 1, 1), 8, 8, 64),
                     (new ConvGeometry(160, 640, 1, 1), 14, 14, 8), (new ConvGeometry(70, 66, 3, 3, 2, 2, 1, 1, 2), 15, 13, 5),
                     (new ConvGeometry(128, 128, 7, 7, 1, 1, 3, 3, 128), 16, 16, 8), (new ConvGeometry(96, 96, 3, 3, 1, 1, 0, 0, 96), 10, 10, 4),
                 })
            foreach (var b in new[] { ilgpu, gpu })
                failures += CheckConv(cpu, b, g, h, w, frames, new Random(g.GetHashCode()));

        // (2) The parity fixture (official 1000-class architecture with kd, 224x224) against PyTorch ("-": skipped).
        if (parityDir != "-")
            foreach (var b in new[] { ilgpu, gpu }) failures += CheckParity(b, parityDir);
        failures += CheckCifar(ilgpu, gpu, cpu, model, test, limit, batch);
        Console.WriteLine(failures == 0 ? "gpu-check: all passed" : $"gpu-check: {failures} FAILED");
        return failures == 0 ? 0 : 1;
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
            var loaded = ModelLoader.Load(Path.Combine(parityDir, "parity_sdtv2_w32-160_kd.pth"), overrides: new ConfigOverrides { Timesteps = t });
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
            Console.WriteLine($"parity fixture T={t} ({gpu.GemmEngine}): max |logit - PyTorch| = {max:E2}, argmax same {argmaxSame}/2, rerun identical {logits.SequenceEqual(again)} {(ok ? "ok" : "FAILED")}");
        }

        return failures;
    }

    /// <summary>(3) The CIFAR test set on both backends.</summary>
    private static int CheckCifar(CudaBackend ilgpu, CudaBackend gpu, CpuBackend cpu, string model, string test, int? limit, int batch)
    {
        int failures = 0;
        var cifar = ModelLoader.Load(model);
        var data = DatasetLoader.Open(test, new DatasetOptions());
        var results = new List<EvalResult>();
        foreach (IBackend backend in new IBackend[] { gpu, cpu, ilgpu })
        {
            using var m = new Sdtv2Model(cifar.Config, cifar.State, backend: backend);
            int bs = backend is CudaBackend ? batch : 64;
            if (backend is CudaBackend) Evaluator.Run(m, data, new EvalOptions { BatchSize = bs, Limit = Math.Min(limit ?? int.MaxValue, bs) }); // warm-up
            var r = Evaluator.Run(m, data, new EvalOptions { BatchSize = bs, Limit = limit });
            results.Add(r);
            Console.WriteLine($"cifar {backend.Description}: top-1 {100.0 * r.Top1Correct / r.Count:F2} % over {r.Count} images, {r.ImagesPerSecond:F0} images/s (batch {bs})" +
                (backend is CudaBackend cb ? $", workspace {cb.WorkspaceBytes / (1024.0 * 1024):F0} MiB" : ""));
        }
        var (rg, rc, ri) = (results[0], results[1], results[2]);
        int sameI = ri.Predictions.Zip(rc.Predictions).Count(p => p.First == p.Second);
        Console.WriteLine($"cifar ILGPU-only vs CPU: top-1 difference {100.0 * (ri.Top1Correct - rc.Top1Correct) / ri.Count:+0.00;-0.00} points, identical predictions {sameI}/{ri.Count}");
        int same = rg.Predictions.Zip(rc.Predictions).Count(p => p.First == p.Second);
        double diff = 100.0 * (rg.Top1Correct - rc.Top1Correct) / rg.Count;
        bool cifarOk = Math.Abs(diff) <= 0.2 && same >= 0.995 * rg.Count;
        failures += cifarOk ? 0 : 1;
        Console.WriteLine($"cifar parity: top-1 difference {diff:+0.00;-0.00} points, identical predictions {same}/{rg.Count} ({100.0 * same / rg.Count:F2} %) {(cifarOk ? "ok" : "FAILED")}");
        using (var m = new Sdtv2Model(cifar.Config, cifar.State, backend: gpu))
        {
            var r2 = Evaluator.Run(m, data, new EvalOptions { BatchSize = batch, Limit = limit });
            bool identical = r2.Predictions.SequenceEqual(rg.Predictions) && r2.Top1Correct == rg.Top1Correct;
            failures += identical ? 0 : 1;
            Console.WriteLine($"cifar rerun on the GPU: predictions identical {identical}, {r2.ImagesPerSecond:F0} images/s");
        }
        return failures;
    }

    private static int CheckConv(IBackend cpu, IBackend gpu, ConvGeometry g, int h, int w, int frames, Random rng)
    {
        int oh = g.OutH(h), ow = g.OutW(w);
        var x = new float[frames * g.InChannels * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = rng.NextDouble() < 0.3 ? 1f : 0f;
        var weight = new float[g.WeightLength];
        for (int i = 0; i < weight.Length; i++) weight[i] = (float)(rng.NextDouble() - 0.5);
        var scale = Enumerable.Range(0, g.OutChannels).Select(_ => (float)(0.5 + rng.NextDouble())).ToArray();
        var shift = Enumerable.Range(0, g.OutChannels).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var spec = new ConvLayerSpec(g, new DenseConvWeights(weight), [], [new ChannelAffine(scale, shift)]);
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
        Console.WriteLine($"conv {g} on {h}x{w} x{frames} ({((CudaBackend)gpu).GemmEngine}): {differ}/{outputs[0].Length} elements differ from the CPU, max |diff| {max:E2} {(ok ? "ok" : "FAILED")}");
        return ok ? 0 : 1;
    }
}
