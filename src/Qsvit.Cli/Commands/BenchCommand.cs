using System.CommandLine;
using System.Diagnostics;
using Qsvit.Backends;
using Qsvit.Backends.Cuda.Native;
using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;
using Spectre.Console;

namespace Qsvit.Cli.Commands;

/// <summary>
/// <c>qsvit bench</c>: images/s and GFLOP/s of the bundled model and of the 55M preset (random weights, 224x224, T=4).
/// FLOPs are those of the official PyTorch forward (every conv/linear on every frame, plus attention matmuls), so
/// GFLOP/s compares directly with PyTorch's work; qsvit itself skips the T-1 repeated stem convs. On a CUDA device the
/// timed loop also samples board power and the device's used memory through NVML (power "not measured" without it).
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m")
        {
            Description = "Checkpoint for the first case (default: the bundled CIFAR-10 model if present); a packed model (qsvit export) " +
                          "is run on its integer path beside the same codes as fp32 simulation, and --cases is ignored",
        };
        var device = new DeviceOptions();
        var batches = new Option<int[]>("--batch") { Description = "Batch sizes (default: 1 and 8 on the CPU, the device's default batch on a GPU)", AllowMultipleArgumentsPerToken = true };
        var seconds = new Option<double>("--seconds") { Description = "Minimum measuring time per case", DefaultValueFactory = _ => 10 };
        var cases = new Option<string[]>("--cases") { Description = "bundled, 55M (or any preset name)", DefaultValueFactory = _ => ["bundled", "55M"], AllowMultipleArgumentsPerToken = true };
        var profile = new Option<bool>("--profile")
        {
            Description = "Also time every op of a pass (waiting for the device around each): where the time goes, per op kind and per layer shape",
        };
        var json = CommonOptions.Json();
        var setting = new Option<string?>("--setting", "-s")
        {
            Description = "Quantize each case to this setting (e.g. \"8,4,8,8|8,8,8|4,32|4,32\", paper for that one, or 4) and time its integer path beside the fp32 simulation of the same codes",
        };
        var quantizer = CommonOptions.Quantizer();
        var command = new Command("bench", "Throughput: images/s and GFLOP/s for the bundled model and the 55M preset") { model, batches, seconds, cases, profile, json, setting, quantizer };
        device.AddTo(command);
        command.Add(DumpInputs());
        command.SetAction(r =>
        {
            using var opened = device.Open(r);
            // Profiling wraps the device; the throughput itself is timed with the profiler switched off.
            using var profiler = r.GetValue(profile) ? new ProfilingBackend(opened) { Enabled = false } : null;
            IBackend backend = profiler ?? opened;
            var rows = new List<BenchRow>();
            var compute = device.Compute(r);
            if (backend.Device.Kind == DeviceKind.Cpu) rows.Add(GemmPeak(r.GetValue(seconds), compute));
            if (r.GetValue(model) is { } file && PackedModel.IsPackedFile(file))
            {
                var packed = PackedModel.Load(file);
                int h = packed.Config.ImageHeight, w = packed.Config.ImageWidth;
                using var probe = new Sdtv2Model(packed, simulate: false, new WorkspaceMeter());
                int[] sizes = r.GetValue(batches) is { Length: > 0 } given ? given
                    : backend.Device.Kind == DeviceKind.Cpu ? [1, 8] : [backend.DefaultBatchSize(h, w, probe.ActivationBytesPerImage(h, w))];
                foreach (int b in sizes) rows.AddRange(MeasurePacked(Path.GetFileNameWithoutExtension(file), packed, b, r.GetValue(seconds), backend, compute));
            }
            else foreach (var name in r.GetValue(cases)!)
            {
                var (label, config, state) = Case(name, r.GetValue(model));
                int h = config.ImageHeight, w = config.ImageWidth;
                int[] sizes = r.GetValue(batches) is { Length: > 0 } given ? given
                    : backend.Device.Kind == DeviceKind.Cpu ? [1, 8] : [backend.DefaultBatchSize(h, w, Sdtv2Model.ActivationBytesPerImage(config, state, h, w))];
                if (r.GetValue(setting) is { } text)
                {
                    var s = int.TryParse(text.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int uniform)
                        ? QuantizationSetting.Uniform(uniform) : QuantizationSetting.Parse(text);
                    var packed = PackedModel.Create(new LoadedModel(config, state, null, null, label, null, new Dictionary<string, string>()), s,
                        CommonOptions.ParseQuantizer(r.GetValue(quantizer)!), compute);
                    foreach (int b in sizes) rows.AddRange(MeasurePacked(label, packed, b, r.GetValue(seconds), backend, compute));
                }
                else foreach (int b in sizes) rows.Add(Measure(label, config, state, b, r.GetValue(seconds), backend, compute));
            }
            if (r.GetValue(json)) { Cli.WriteJson(rows); return 0; }
            bool gpu = rows.Any(x => x.Power is not null), anyPacked = rows.Any(x => x.PackedSpeedup is not null);
            var table = new Table().AddColumns("case", "batch", "T", "input", "images/s", "GFLOP/image", "GFLOP/s");
            if (anyPacked) table.AddColumns("packed speedup");
            table.AddColumns("device", "threads");
            if (gpu) table.AddColumns("board W", "J/image", "peak GPU MiB (NVML)");
            foreach (var x in rows)
            {
                var cells = new List<string> { x.Case, x.Batch.ToString(), x.Timesteps.ToString(), x.Input, $"{x.ImagesPerSecond:F3}", $"{x.GflopPerImage:F3}", $"{x.Gflops:F1}" };
                if (anyPacked) cells.Add(x.PackedSpeedup is { } ratio ? $"{ratio:F2}x" : "");
                cells.AddRange([x.Device, x.Threads.ToString()]);
                if (gpu)
                    cells.AddRange(x.Power is { Measured: true } p
                        ? [$"{p.AverageWatts:F1}", $"{x.JoulesPerImage:G4}", $"{p.PeakMemoryUsedBytes / (1024.0 * 1024):F0}"]
                        : ["not measured", "", ""]);
                table.AddRow(cells.Select(Markup.Escape).ToArray());
            }
            Cli.Out.Write(table);
            foreach (var x in rows.Where(x => x.Profile is not null)) PrintProfile(x);
            foreach (var x in rows.Where(x => x.Power is { Measured: false }).Take(1))
                Cli.Err.MarkupLine(Markup.Escape(x.Power!.ToString()));
            return 0;
        });
        return command;
    }

    /// <summary>
    /// <c>qsvit bench dump-inputs</c>: the images as a model receives them, for comparing preprocessing with PyTorch's
    /// (bench/pytorch/jpeg_fidelity.py).
    /// </summary>
    private static Command DumpInputs()
    {
        var data = new DataOptions("--data", "Dataset to preprocess (an image folder for the JPEG comparison)");
        var output = new Option<string>("--out", "-o") { Description = "File to write: the 8-bit RGB crops, uint8 [N,3,H,W]; FILE.json describes them", Required = true };
        var command = new Command("dump-inputs", "Write an image folder's preprocessed images (decoded, resized, center-cropped) for comparison with PyTorch");
        foreach (var o in new Option[] { data.Data, data.Split, data.Limit, data.Resize, data.Crop, output }) command.Add(o);
        command.SetAction(r =>
        {
            var options = new IO.Datasets.DatasetOptions { ResizeShorter = r.GetValue(data.Resize), CropSize = r.GetValue(data.Crop) };
            var dataset = IO.Datasets.FirstImages.Of(IO.Datasets.DatasetLoader.Open(r.GetRequiredValue(data.Data), options, r.GetValue(data.Split)),
                r.GetValue(data.Limit), "--limit");
            string path = r.GetRequiredValue(output);
            IO.Datasets.InputDump.Write(dataset, path, options);
            Console.WriteLine($"wrote {path} ({dataset.Count} x 3 x {dataset.Height} x {dataset.Width} uint8) and {path}.json");
            return 0;
        });
        return command;
    }

    /// <summary>One case; <see cref="Power"/> (board power and used device memory while timing) on CUDA devices only.</summary>
    /// <param name="PackedSpeedup">Packed rows: images/s of the integer path over the fp32 simulation of the same codes, same run and threads.</param>
    public sealed record BenchRow(string Case, int Batch, int Timesteps, string Input, double ImagesPerSecond, double GflopPerImage, double Gflops, string Device, int Threads, double Seconds,
        PowerMeasurement? Power = null, double? JoulesPerImage = null, double? PackedSpeedup = null, BackendProfile? Profile = null);

    private static void PrintProfile(BenchRow x)
    {
        var p = x.Profile!;
        double pass = p.PassMilliseconds;
        Cli.Out.MarkupLine(Markup.Escape($"profile of {x.Case}, batch {x.Batch}: {p.Passes} passes, {pass:F2} ms per pass with every op synchronised " +
            $"(unprofiled {x.Batch / x.ImagesPerSecond * 1000:F2} ms); outside the ops {p.OtherMilliseconds:F2} ms"));
        var byOp = new Table().AddColumns("op", "calls/pass", "ms/pass", "% of pass", "engine");
        foreach (var r in p.ByOp())
            byOp.AddRow(Markup.Escape(r.Op), $"{r.Calls / (double)p.Passes:0.#}", $"{r.Milliseconds / p.Passes:F3}", $"{100 * r.Milliseconds / p.Passes / pass:F1}", Markup.Escape(r.Engine));
        Cli.Out.Write(byOp);
        var byShape = new Table().AddColumns("op", "shape", "engine", "calls/pass", "ms/pass", "% of pass");
        foreach (var r in p.Rows)
            byShape.AddRow(Markup.Escape(r.Op), Markup.Escape(r.Shape), Markup.Escape(r.Engine), $"{r.Calls / (double)p.Passes:0.#}",
                $"{r.Milliseconds / p.Passes:F3}", $"{100 * r.Milliseconds / p.Passes / pass:F1}");
        Cli.Out.Write(byShape);
    }

    private static (string, Sdtv2Config, IO.StateDict) Case(string name, string? checkpoint)
    {
        if (name.Equals("bundled", StringComparison.OrdinalIgnoreCase))
        {
            var path = checkpoint ?? Path.Combine("models", "sdtv2-cifar10", "sdtv2_cifar10_w32-192_T4.pth");
            var loaded = ModelLoader.Load(path);
            return (Path.GetFileNameWithoutExtension(path), loaded.Config, loaded.State);
        }
        var config = Presets.Get(name);
        return ($"{name} (random weights)", config, RandomWeights.Create(config));
    }

    private static BenchRow Measure(string label, Sdtv2Config config, IO.StateDict state, int batch, double seconds, IBackend backend,
        ComputeOptions compute)
    {
        using var net = new Sdtv2Model(config, state, backend: backend);
        return Time(net, label, batch, seconds, backend, compute);
    }

    /// <summary>
    /// The packed model on its integer path and the same codes as fp32 simulation, on the same backend and threads, timed
    /// alternately (two rounds of half the time each, the better kept) so that a busy machine slows both alike.
    /// </summary>
    private static BenchRow[] MeasurePacked(string label, PackedModel packed, int batch, double seconds, IBackend backend, ComputeOptions compute)
    {
        using var simulated = new Sdtv2Model(packed, simulate: true, backend);
        using var integer = new Sdtv2Model(packed, simulate: false, backend);
        string name = $"{label} {packed.Setting} ({packed.Spec})";
        BenchRow? sim = null, pack = null;
        for (int round = 0; round < 2; round++)
        {
            var s = Time(simulated, $"{name} fp32 simulation", batch, seconds / 2, backend, compute);
            var p = Time(integer, $"{name} packed", batch, seconds / 2, backend, compute);
            if (sim is null || s.ImagesPerSecond > sim.ImagesPerSecond) sim = s;
            if (pack is null || p.ImagesPerSecond > pack.ImagesPerSecond) pack = p;
        }
        return [sim!, pack! with { PackedSpeedup = pack!.ImagesPerSecond / sim!.ImagesPerSecond }];
    }

    private static BenchRow Time(Sdtv2Model net, string label, int batch, double seconds, IBackend backend, ComputeOptions compute)
    {
        var config = net.Config;
        int h = config.ImageHeight, w = config.ImageWidth;
        var images = new float[batch * config.InChannels * h * w];
        var rng = new Random(7);
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);
        // Warm-up (JIT, arena buffers) on every device: one batch each (batch k < N runs on device k).
        net.ForwardBatches(Enumerable.Repeat(new BatchInput(images, batch, h, w), net.Replicas.Count), null, (_, _) => { });
        int iterations = 0;
        Cli.Err.MarkupLine(Markup.Escape($"bench {label} batch {batch}…"));
        var probes = (backend is DeviceGroup g ? g.Devices : [backend]).Select(NvmlPowerSource.Instance.Start).ToArray();
        var clock = Stopwatch.StartNew();
        // Several devices take whole batches from one queue, each the next as soon as it is free; logits come back to the
        // host, so each pass is complete.
        IEnumerable<BatchInput> Batches()
        {
            while (clock.Elapsed.TotalSeconds < seconds || iterations < 2 * net.Replicas.Count)
                for (int d = 0; d < net.Replicas.Count; d++) yield return new BatchInput(images, batch, h, w);
        }
        net.ForwardBatches(Batches(), null, (_, _) => iterations++);
        double elapsed = clock.Elapsed.TotalSeconds;
        var energy = new EnergyMeasurement(probes.Select(p => p.Stop()).ToArray(), (long)iterations * batch);
        var power = backend.Device.Kind == DeviceKind.Cuda ? Total(energy) : null;
        double ips = iterations * batch / elapsed;
        double gflop = OfficialFlops(config, h, w) / 1e9;
        return new BenchRow(label, batch, config.Timesteps, $"{h}x{w}", ips, gflop, ips * gflop, backend.Description, compute.Threads, elapsed,
            power, power is { Measured: true } ? power.JoulesPerImage((long)iterations * batch) : null,
            Profile: backend is ProfilingBackend profiler ? Profile(net, images, batch, seconds, profiler) : null);
    }

    /// <summary>Passes with every op timed alone, for at least <paramref name="seconds"/> (and 3 passes).</summary>
    private static BackendProfile Profile(Sdtv2Model net, float[] images, int batch, double seconds, ProfilingBackend profiler)
    {
        int h = net.Config.ImageHeight, w = net.Config.ImageWidth, passes = 0;
        profiler.Reset();
        profiler.Enabled = true;
        try
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < seconds || passes < 3)
            {
                net.Forward(images, batch, h, w);
                passes++;
            }
            return profiler.Read(passes, clock.Elapsed.TotalSeconds);
        }
        finally { profiler.Enabled = false; }
    }

    /// <summary>The devices' measurements as one (joules and watts added up; one device's as it is).</summary>
    private static PowerMeasurement Total(EnergyMeasurement e) => e.Devices.Count == 1 || !e.Measured ? e.Devices[0]
        : new PowerMeasurement(e.Devices[0].Source, $"{e.Devices.Count} GPUs: {string.Join(", ", e.Devices.Select(d => $"{d.AverageWatts:F0} W"))}",
            e.Seconds, e.Joules, e.AverageWatts, e.Devices.Sum(d => d.PeakWatts), e.Devices.Sum(d => d.Samples), e.Devices.Sum(d => d.PeakMemoryUsedBytes), null);

    /// <summary>FLOPs (2 per MAC) of one image through the official forward: all conv/linear layers on all T frames, plus SDSA.</summary>
    public static double OfficialFlops(Sdtv2Config config, int h, int w)
    {
        var layout = new Sdtv2Layout(config);
        var macs = EnergyEstimate.LayerMacs(layout, h, w);
        double perStep = macs.Values.Sum();
        // SDSA per block: Kᵀ·V and Q·(KᵀV), each C·d·N MACs, at stage 3/4 resolution.
        int s = config.StemStride;
        int h1 = (h + 6 - 7) / s + 1, w1 = (w + 6 - 7) / s + 1;
        int h3 = h1, w3 = w1;
        for (int i = 0; i < 3; i++) { h3 = (h3 - 1) / 2 + 1; w3 = (w3 - 1) / 2 + 1; }
        int n = h3 * w3;
        perStep += Sdtv2Config.Stage3Depth * 2.0 * config.EmbedDim[2] * (config.EmbedDim[2] / config.NumHeads) * n;
        perStep += Sdtv2Config.Stage4Depth * 2.0 * config.EmbedDim[3] * (config.EmbedDim[3] / config.NumHeads) * n;
        return 2 * perStep * config.Timesteps;
    }

    /// <summary>SGEMM 1024³ as a practical peak to read the model's GFLOP/s against.</summary>
    private static BenchRow GemmPeak(double seconds, ComputeOptions compute)
    {
        const int n = 1024;
        var a = new float[n * n];
        var b = new float[n * n];
        var c = new float[n * n];
        for (int i = 0; i < a.Length; i++) { a[i] = (i % 7) * 0.1f; b[i] = (i % 5) * 0.1f; }
        Gemm.Sgemm(n, n, n, a, false, b, false, c, options: compute);
        int iterations = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < Math.Min(seconds, 3) || iterations < 2)
        {
            Gemm.Sgemm(n, n, n, a, false, b, false, c, options: compute);
            iterations++;
        }
        double elapsed = clock.Elapsed.TotalSeconds;
        return new BenchRow("sgemm 1024^3 (practical peak)", 1, 0, "-", 0, 2.0 * n * n * n / 1e9, iterations * 2.0 * n * n * n / 1e9 / elapsed, "cpu", compute.Threads, elapsed);
    }
}
