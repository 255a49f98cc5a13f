using System.Globalization;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// <c>pointwise [CIFAR_MODEL] [SECONDS] [cpu]</c>: on a CUDA machine, the fused pointwise int8 kernel
/// (<see cref="PointwiseMmaKernels"/>, issue 13) against packing + cuBLAS int8 + epilogue (<c>--gemm tensor-cublas-1x1</c>)
/// and the CPU's integer path: (1) random integer 1×1 layers (odd channels, maps 1×1 to 9×9, 1–3 int8 digits) bit for bit,
/// plain and with the fused LIF over T = 1, 2, 4; (2) each integer 1×1 layer of the CIFAR model (x4000 frames: batch
/// 1000, T = 4) and the 55M preset (x128) timed both ways, with the LIF where the model fuses it (best of repetitions);
/// (3) images/s of both models at setting 4 with the packed path and with the fused kernel up to R GEMM rows.
/// Prints short tables last. With <c>cpu</c>, only (1) on a few shapes, on ILGPU's CPU accelerator.
/// </summary>
internal static class PointwiseCheck
{
    private static readonly (string Model, int Cin, int Cout, int H, int W, int Frames, bool Lif)[] Layers =
    [
        ("cifar", 128, 128, 4, 4, 4000, false), ("cifar", 128, 512, 1, 16, 4000, true), ("cifar", 512, 128, 1, 16, 4000, false),
        ("cifar", 192, 192, 4, 4, 4000, false), ("cifar", 192, 768, 1, 16, 4000, true), ("cifar", 768, 192, 1, 16, 4000, false),
        ("cifar", 16, 32, 32, 32, 4000, true), ("cifar", 32, 64, 16, 16, 4000, true), ("cifar", 64, 128, 8, 8, 4000, true),
        ("55M", 512, 512, 14, 14, 128, false), ("55M", 512, 2048, 1, 196, 128, true), ("55M", 2048, 512, 1, 196, 128, false),
        ("55M", 640, 640, 14, 14, 128, false), ("55M", 640, 2560, 1, 196, 128, true), ("55M", 2560, 640, 1, 196, 128, false),
        ("55M", 64, 128, 112, 112, 128, true), ("55M", 128, 256, 56, 56, 128, true), ("55M", 256, 512, 28, 28, 128, true),
    ];

    /// <summary>Rule bounds timed on whole models (GEMM rows up to which the fused kernel runs); int.MaxValue: every integer 1×1 layer.</summary>
    private static readonly int[] Bounds = [256, 640, int.MaxValue];

    private const int Timesteps = 4;

    public static int Run(string[] args)
    {
        var (cifarModel, seconds, smoke) = SpikeMmaCheck.CheckArgs(args);
        int failures = 0;
        using var cpu = new CpuBackend();
        var cases = RandomCases(new Random(17), smoke ? 6 : 40, smoke ? 40 : 300);
        using (var fused = smoke ? CudaBackend.OnCpuAcceleratorWithWarps()
                   : new CudaBackend(GpuDevice.OpenCuda(0), DeviceSpec.Cuda(0), pointwiseMaxRows: int.MaxValue))
        using (var packed = smoke ? CudaBackend.OnCpuAcceleratorWithWarps(SpikeInputGemm.TensorCoresPointwiseCublas)
                   : CudaBackend.Open(0, new ComputeOptions { SpikeGemm = SpikeInputGemm.TensorCoresPointwiseCublas }))
        {
            Console.WriteLine($"fused: {fused.Description}");
            int bad = 0;
            foreach (var c in cases)
            {
                var want = (Conv: GpuCheck.RunConv(cpu, c.Spec, c.Input, c.Frames, c.H, c.W), Lif: GpuCheck.RunConv(packed, c.Spec, c.Input, c.Frames, c.H, c.W, lif: true, c.Steps));
                var got = (Conv: GpuCheck.RunConv(fused, c.Spec, c.Input, c.Frames, c.H, c.W), Lif: GpuCheck.RunConv(fused, c.Spec, c.Input, c.Frames, c.H, c.W, lif: true, c.Steps));
                int differ = want.Conv.Zip(got.Conv).Count(p => p.First != p.Second) + want.Lif.Zip(got.Lif).Count(p => p.First != p.Second);
                var viaPacked = GpuCheck.RunConv(packed, c.Spec, c.Input, c.Frames, c.H, c.W);
                differ += want.Conv.Zip(viaPacked).Count(p => p.First != p.Second);
                if (differ == 0) continue;
                bad++;
                Console.WriteLine($"  FAILED {c.Spec.Geometry} on {c.H}x{c.W} x{c.Frames}, {c.Bits}-bit, T = {c.Steps}: {differ} elements differ");
            }
            Console.WriteLine($"{cases.Count - bad}/{cases.Count} random 1x1 layers bit for bit: fused = packed path = CPU integer path (conv), fused LIF = packed conv + LIF");
            failures += bad;
            if (smoke) return failures == 0 ? 0 : 1;
        }

        var layerMs = new Dictionary<(int, bool), double>();
        foreach (bool useFused in new[] { false, true })
        {
            using var gpu = useFused ? new CudaBackend(GpuDevice.OpenCuda(0), DeviceSpec.Cuda(0), pointwiseMaxRows: int.MaxValue)
                : CudaBackend.Open(0, new ComputeOptions { SpikeGemm = SpikeInputGemm.TensorCoresPointwiseCublas });
            for (int i = 0; i < Layers.Length; i++)
            {
                layerMs[(i, useFused)] = SpikeMmaCheck.TimeLayer(gpu, new ConvGeometry(Layers[i].Cin, Layers[i].Cout, 1, 1), Layers[i].H, Layers[i].W, Layers[i].Frames, Layers[i].Lif ? Timesteps : 0);
                Console.WriteLine($"  {(useFused ? "fused" : "packed")} {Layers[i]}: {layerMs[(i, useFused)]:F3} ms");
            }
        }

        var models = SpikeMmaCheck.SettingFourModels(cifarModel);
        var ips = new Dictionary<(string, int), double>();
        foreach (int bound in new[] { 0 }.Concat(Bounds))
        {
            using var gpu = bound == 0 ? CudaBackend.Open(0, new ComputeOptions { SpikeGemm = SpikeInputGemm.TensorCoresPointwiseCublas })
                : new CudaBackend(GpuDevice.OpenCuda(0), DeviceSpec.Cuda(0), pointwiseMaxRows: bound);
            foreach (var (name, packed, batch) in models)
            {
                ips[(name, bound)] = SpikeMmaCheck.TimeModel(gpu, packed, batch, seconds).ImagesPerSecond;
                Console.WriteLine($"  R = {bound}: {name}: {ips[(name, bound)]:F1} images/s");
            }
        }

        Console.WriteLine();
        Console.WriteLine("| layer (x frames) | GEMM rows x K | packed + cuBLAS int8 ms | fused mma ms | packed / fused | default rule takes |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: | --- |");
        for (int i = 0; i < Layers.Length; i++)
        {
            var (model, cin, cout, h, w, frames, lif) = Layers[i];
            double old = layerMs[(i, false)], mine = layerMs[(i, true)];
            Console.WriteLine($"| {model} {cin}->{cout}{(lif ? " + LIF" : "")} @{h}x{w} x{frames} | {cout} x {(cin + 15) / 16 * 16} | {old:F3} | {mine:F3} | {old / mine:F2}x | " +
                $"{(PointwiseMmaKernels.FusedPays(cout) ? "fused" : "packed")} |");
        }
        Console.WriteLine();
        Console.WriteLine($"| images/s | packed + cuBLAS | {string.Join(" | ", Bounds.Select(r => r == int.MaxValue ? "fused everywhere" : $"fused up to R = {r}"))} |");
        Console.WriteLine($"| --- | ---: |{string.Concat(Bounds.Select(_ => " ---: |"))}");
        foreach (var (name, _, _) in models)
            Console.WriteLine($"| {name} | {ips[(name, 0)]:F1} | {string.Join(" | ", Bounds.Select(r => ips[(name, r)].ToString("F1", CultureInfo.InvariantCulture)))} |");
        Console.WriteLine(failures == 0 ? "all checks passed" : $"{failures} checks FAILED");
        return failures == 0 ? 0 : 1;
    }

    private sealed record Case(ConvLayerSpec Spec, float[] Input, int Frames, int H, int W, int Bits, int Steps);

    /// <summary>Random integer 1×1 layers: 1–<paramref name="maxChannels"/> channels in, up to 2/3 of that out, maps 1–9 each way, T of 1, 2, 4 with 1–3 images, 4–16-bit codes, bias or none.</summary>
    private static List<Case> RandomCases(Random rng, int count, int maxChannels)
    {
        var cases = new List<Case>();
        int[] bits = [4, 8, 12, 16], steps = [1, 2, 4];
        while (cases.Count < count)
        {
            var g = new ConvGeometry(rng.Next(1, maxChannels + 1), rng.Next(1, maxChannels * 2 / 3 + 1), 1, 1);
            int h = rng.Next(1, 10), w = rng.Next(1, 10), t = steps[rng.Next(steps.Length)], frames = t * rng.Next(1, 4), b = bits[rng.Next(bits.Length)];
            var spec = SpikeMmaCheck.RandomSpec(rng, g, b);
            if (rng.Next(2) == 0) spec = spec with { Bias = [] };
            var input = Enumerable.Range(0, frames * g.InChannels * h * w).Select(_ => rng.Next(3) == 0 ? 1f : 0f).ToArray();
            cases.Add(new Case(spec, input, frames, h, w, b, t));
        }
        return cases;
    }
}
