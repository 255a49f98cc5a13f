using System.Diagnostics;
using System.Globalization;
using Qsvit.Backends.Cpu;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// A packed model on its integer path against the same codes as fp32 simulation, for busy machines: single forwards
/// alternate between the two and the fastest of each is kept (as <see cref="Sweep"/>), so a forward that happened to
/// share the cores with another process does not count. `qsvit bench` reports the mean rate instead.
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
        Console.WriteLine("| model | setting | fp32 simulation img/s | packed img/s | speedup | forwards each |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        foreach (var file in args.Skip(4))
        {
            var packed = PackedModel.Load(file);
            var options = new ComputeOptions { Threads = threads };
            using var simulated = new Sdtv2Model(packed, simulate: true, new CpuBackend(options));
            using var integer = new Sdtv2Model(packed, simulate: false, new CpuBackend(options));
            var config = simulated.Config;
            int h = config.ImageHeight, w = config.ImageWidth;
            var images = new float[batch * config.InChannels * h * w];
            var rng = new Random(7);
            for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 4 - 2);
            Sdtv2Model[] nets = [simulated, integer];
            var best = new[] { double.MaxValue, double.MaxValue };
            foreach (var net in nets) net.Forward(images, batch, h, w);
            int rounds = 0;
            var clock = Stopwatch.StartNew();
            for (; rounds < 2 || clock.Elapsed.TotalSeconds < seconds; rounds++)
                for (int i = 0; i < nets.Length; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    nets[i].Forward(images, batch, h, w);
                    best[i] = Math.Min(best[i], Stopwatch.GetElapsedTime(t0).TotalSeconds);
                }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Path.GetFileName(file)} | {packed.Setting} | {batch / best[0]:F2} | {batch / best[1]:F2} | {best[0] / best[1]:F2}x | {rounds} |"));
        }
    }
}
