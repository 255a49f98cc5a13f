using System.Globalization;
using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// <c>real-pointwise [CIFAR_MODEL] [SECONDS] [cpu]</c>: on a CUDA machine, the fused real-input pointwise kernel
/// (<see cref="PointwiseMmaKernels.RealConv{TFma}"/>, <c>--gemm tensor-real-fused</c>) against today's real-input path
/// (bf16 split columns, cuBLAS's bf16 GEMM, the scaled epilogue; <c>--gemm tensor</c>): (1) random real-input 1×1 layers
/// of 4- and 8-bit codes (K 128–640, maps where the bf16 codes run) against the CPU's dequantized fp32 conv: the largest
/// |y − y_cpu| / (1 + |y_cpu|) of each path (fused fails where it exceeds max(4 × today's, 1e-5)); (2) the models'
/// real-input 1×1 shapes timed both ways (best of repetitions); (3) images/s of both models at setting 4 both ways and
/// the largest logit difference between them. Prints short tables last. With <c>cpu</c>, only (1) on a few small shapes,
/// on ILGPU's CPU accelerator.
/// </summary>
internal static class RealPointwiseCheck
{
    private static readonly (string Model, int Cin, int Cout, int H, int W, int Frames)[] Layers =
    [
        ("cifar", 128, 128, 4, 4, 4000), ("cifar", 192, 192, 4, 4, 4000), ("cifar", 256, 128, 8, 8, 4000), ("cifar", 384, 192, 4, 4, 4000),
        ("55M", 512, 512, 14, 14, 128), ("55M", 640, 640, 14, 14, 128), ("55M", 512, 256, 28, 28, 128), ("55M", 256, 128, 56, 56, 128),
    ];

    public static int Run(string[] args)
    {
        var (cifarModel, seconds, smoke) = SpikeMmaCheck.CheckArgs(args);
        int failures = 0;
        using var cpu = new CpuBackend();
        IBackend Open(SpikeInputGemm mode) => smoke ? CudaBackend.OnCpuAcceleratorWithWarps(mode, split: true) : CudaBackend.Open(0, new ComputeOptions { SpikeGemm = mode });
        using (var fused = Open(SpikeInputGemm.TensorCoresRealFused))
        using (var today = Open(SpikeInputGemm.TensorCores))
        {
            Console.WriteLine($"fused: {fused.Description}");
            var rng = new Random(23);
            int count = smoke ? 4 : 40, ran = 0;
            double worstFused = 0, worstToday = 0;
            while (ran < count)
            {
                int cin = rng.Next(128, smoke ? 200 : 641), cout = rng.Next(1, smoke ? 80 : 641), h = rng.Next(1, 7), w = rng.Next(1, 7), frames = rng.Next(1, 5);
                var spec = SpikeMmaCheck.RandomSpec(rng, new ConvGeometry(cin, cout, 1, 1), rng.Next(2) == 0 ? 4 : 8) with { SpikeInput = false };
                using (var probe = fused.CreateConv(spec))
                    if (!probe.EngineAt(h, w).Contains("fused")) continue;   // the bf16 codes do not run here (GpuSpikeConv.RealInputPays)
                ran++;
                var x = Enumerable.Range(0, frames * cin * h * w).Select(_ => rng.Next(8) == 0 ? 0f : (float)(rng.NextDouble() * 2 - 1)).ToArray();
                var want = GpuCheck.RunConv(cpu, spec, x, frames, h, w);
                double errFused = Error(GpuCheck.RunConv(fused, spec, x, frames, h, w), want), errToday = Error(GpuCheck.RunConv(today, spec, x, frames, h, w), want);
                worstFused = Math.Max(worstFused, errFused);
                worstToday = Math.Max(worstToday, errToday);
                if (errFused <= Math.Max(4 * errToday, 1e-5)) continue;
                failures++;
                Console.WriteLine($"  FAILED {spec.Geometry} on {h}x{w} x{frames}: fused {errFused:E2} against today's {errToday:E2}");
            }
            Console.WriteLine($"{count - failures}/{count} random real-input 1x1 layers within the bound; largest |y - y_cpu| / (1 + |y_cpu|): fused {worstFused:E2}, today's bf16 path {worstToday:E2}");
            if (smoke) return failures == 0 ? 0 : 1;
        }

        var layerMs = new Dictionary<(int, bool), double>();
        var engines = new Dictionary<(int, bool), string>();
        foreach (bool useFused in new[] { false, true })
        {
            using var gpu = CudaBackend.Open(0, new ComputeOptions { SpikeGemm = useFused ? SpikeInputGemm.TensorCoresRealFused : SpikeInputGemm.TensorCores });
            for (int i = 0; i < Layers.Length; i++)
            {
                var (_, cin, cout, h, w, frames) = Layers[i];
                var g = new ConvGeometry(cin, cout, 1, 1);
                using (var layer = gpu.CreateConv(SpikeMmaCheck.LayerSpec(g, realInput: true))) engines[(i, useFused)] = layer.EngineAt(h, w);
                layerMs[(i, useFused)] = SpikeMmaCheck.TimeLayer(gpu, g, h, w, frames, realInput: true);
                Console.WriteLine($"  {engines[(i, useFused)]} {Layers[i]}: {layerMs[(i, useFused)]:F3} ms");
            }
        }

        var models = SpikeMmaCheck.SettingFourModels(cifarModel);
        var ips = new Dictionary<(string, bool), double>();
        var logits = new Dictionary<(string, bool), float[]>();
        foreach (bool useFused in new[] { false, true })
        {
            using var gpu = CudaBackend.Open(0, new ComputeOptions { SpikeGemm = useFused ? SpikeInputGemm.TensorCoresRealFused : SpikeInputGemm.TensorCores });
            foreach (var (name, packed, batch) in models)
            {
                (ips[(name, useFused)], logits[(name, useFused)]) = SpikeMmaCheck.TimeModel(gpu, packed, batch, seconds);
                Console.WriteLine($"  {(useFused ? "tensor-real-fused" : "tensor")}: {name}: {ips[(name, useFused)]:F1} images/s");
            }
        }

        Console.WriteLine();
        Console.WriteLine("| layer (x frames) | today's engine | today ms | fused ms | today / fused |");
        Console.WriteLine("| --- | --- | ---: | ---: | ---: |");
        for (int i = 0; i < Layers.Length; i++)
        {
            var (model, cin, cout, h, w, frames) = Layers[i];
            double old = layerMs[(i, false)], mine = layerMs[(i, true)];
            Console.WriteLine($"| {model} {cin}->{cout} @{h}x{w} x{frames} | {engines[(i, false)]} | {old:F3} | {mine:F3} | {old / mine:F2}x |");
        }
        Console.WriteLine();
        Console.WriteLine("| images/s | --gemm tensor | --gemm tensor-real-fused | fused / tensor | largest logit difference |");
        Console.WriteLine("| --- | ---: | ---: | ---: | ---: |");
        foreach (var (name, _, _) in models)
        {
            double diff = logits[(name, false)].Zip(logits[(name, true)]).Max(p => Math.Abs(p.First - p.Second));
            Console.WriteLine($"| {name} | {ips[(name, false)]:F1} | {ips[(name, true)]:F1} | {ips[(name, true)] / ips[(name, false)]:F2}x | {diff:E2} |");
        }
        Console.WriteLine(failures == 0 ? "all checks passed" : $"{failures} checks FAILED");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>The largest |y − y_cpu| / (1 + |y_cpu|).</summary>
    private static double Error(float[] got, float[] want) => got.Zip(want).Max(p => Math.Abs(p.First - p.Second) / (1 + Math.Abs(p.Second)));
}
