using System.Diagnostics;
using System.Globalization;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// A packed model on its integer path against the same codes as fp32 simulation, for busy machines: single forwards
/// alternate between the two and the fastest of each is kept (as <see cref="Sweep"/>), so a forward that happened to
/// share the cores with another process does not count. `qsvit bench` reports the mean rate instead.
/// A third model runs the packed path with every spike-input layer forced dense (<see cref="SpikeAccumulation.Dense"/>),
/// so the gain of event-driven accumulation shows in the same run; then one forward reports the firing rates that the
/// chained consumers (conv2, fc2) see, the input of their choice.
///   dotnet run -c Release --project bench/Qsvit.Bench -- packed-ab SECONDS THREADS BATCH model.safetensors...
/// </summary>
internal static class PackedAb
{
    public static void Run(string[] args)
    {
        double seconds = double.Parse(args[1], CultureInfo.InvariantCulture);
        int threads = int.Parse(args[2], CultureInfo.InvariantCulture), batch = int.Parse(args[3], CultureInfo.InvariantCulture);
        Console.WriteLine($"{threads} threads, batch {batch}, {SpikeGemm.Best}; best of alternating single forwards over {seconds} s per model");
        Console.WriteLine();
        Console.WriteLine("| model | setting | fp32 simulation img/s | packed, dense only img/s | packed img/s | speedup (dense only) | forwards each | CPU s per forward: sim / dense only / packed | consumer inputs' firing: min / mean / max (events chosen) |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---|---|");
        foreach (var file in args.Skip(4))
        {
            var packed = PackedModel.Load(file);
            var options = new ComputeOptions { Threads = threads };
            using var simulated = new Sdtv2Model(packed, simulate: true, new CpuBackend(options));
            using var dense = new Sdtv2Model(packed, simulate: false, new CpuBackend(options with { SpikeAccumulation = SpikeAccumulation.Dense }));
            using var integer = new Sdtv2Model(packed, simulate: false, new CpuBackend(options));
            var config = simulated.Config;
            int h = config.ImageHeight, w = config.ImageWidth;
            var images = new float[batch * config.InChannels * h * w];
            // Real images where the bundled CIFAR-10 test set fits the model (the firing rates, and so the event-driven
            // layers' choice, depend on the input); random ones otherwise (the 55M preset).
            const string cifar = "data/cifar10/test.bin";
            string source = "random images";
            if (config.InChannels == 3 && h == 32 && w == 32 && File.Exists(cifar))
            {
                var data = Qsvit.IO.Datasets.DatasetLoader.Open(cifar, new Qsvit.IO.Datasets.DatasetOptions { Normalization = packed.Normalization });
                int size = 3 * h * w;
                for (int b = 0; b < batch; b++) data.Read(b % data.Count, images.AsSpan(b * size, size));
                source = $"the first {batch} CIFAR-10 test images";
            }
            else
            {
                var rng = new Random(7);
                for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);
            }
            Sdtv2Model[] nets = [simulated, dense, integer];
            var best = new[] { double.MaxValue, double.MaxValue, double.MaxValue };
            // CPU seconds per forward (all threads): the work, which a loaded machine disturbs far less than the wall time.
            var cpu = new[] { double.MaxValue, double.MaxValue, double.MaxValue };
            using var process = Process.GetCurrentProcess();
            foreach (var net in nets) net.Forward(images, batch, h, w);
            int rounds = 0;
            var clock = Stopwatch.StartNew();
            for (; rounds < 2 || clock.Elapsed.TotalSeconds < seconds; rounds++)
                for (int i = 0; i < nets.Length; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    var c0 = process.TotalProcessorTime;
                    nets[i].Forward(images, batch, h, w);
                    best[i] = Math.Min(best[i], Stopwatch.GetElapsedTime(t0).TotalSeconds);
                    process.Refresh();
                    cpu[i] = Math.Min(cpu[i], (process.TotalProcessorTime - c0).TotalSeconds);
                }
            var probe = new ConsumerRates(new CpuBackend(options));
            using (var probed = new Sdtv2Model(packed, simulate: false, probe)) probed.Forward(images, batch, h, w);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Path.GetFileName(file)} ({source}) | {packed.Setting} | {batch / best[0]:F2} | {batch / best[1]:F2} | {batch / best[2]:F2} | {best[0] / best[2]:F2}x ({best[0] / best[1]:F2}x) | {rounds} | {cpu[0]:F2} / {cpu[1]:F2} / {cpu[2]:F2} | {probe.Summary} |"));
        }
    }

    /// <summary>Records the firing rate of each chained consumer's input (the producer's LIF counts it) and the path chosen.</summary>
    private sealed class ConsumerRates(IBackend inner) : ForwardingBackend(inner)
    {
        private readonly List<(double Rate, bool Events)> _calls = [];

        public string Summary => _calls.Count == 0 ? "no chained layers" : string.Create(CultureInfo.InvariantCulture,
            $"{_calls.Min(c => c.Rate) * 100:F1} / {_calls.Average(c => c.Rate) * 100:F1} / {_calls.Max(c => c.Rate) * 100:F1} % ({_calls.Count(c => c.Events)} of {_calls.Count})");

        public override void ConvLifConv(ConvLayer first, DeviceBuffer input, int frames, int height, int width, DeviceBuffer preActivation,
            DeviceBuffer spikes, int timesteps, float threshold, int lifLayer, LifRecorder? recorder, ConvLayer second, DeviceBuffer output)
        {
            using var counter = Inner.CreateSpikeCounter(1);
            Inner.ConvLifConv(first, input, frames, height, width, preActivation, spikes, timesteps, threshold, 0, counter, second, output);
            var counts = counter.Read();
            double rate = (double)counts.Spikes[0] / counts.Neurons[0];
            var integer = (second as CpuPackedConvLayer)?.Integer;
            _calls.Add((rate, integer is { Matrix.IsWide: false } && SpikeEvents.Pays(rate, second.Geometry.OutChannels, SpikeGemm.Best)));
        }

        public override void Dispose() => Inner.Dispose();
    }
}
