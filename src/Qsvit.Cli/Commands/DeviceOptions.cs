using System.CommandLine;
using Qsvit.Backends;
using Qsvit.Tensors;

namespace Qsvit.Cli.Commands;

/// <summary><c>--device</c>, <c>--threads</c> and the kernel choices (<c>--gemm</c>, <c>--spike-sums</c>): where and how a command runs.</summary>
internal sealed class DeviceOptions
{
    public readonly Option<string> Device = new("--device")
    {
        Description = "Where to run: auto (the first usable CUDA GPU, else the CPU), cpu, cuda, cuda:N, or several GPUs " +
                      "(cuda:0,1 or cuda:all: batches split across them, results identical to one GPU's)",
        DefaultValueFactory = _ => "auto",
    };
    public readonly Option<int?> Threads = CommonOptions.Threads();
    public readonly Option<string> Gemm = new("--gemm")
    {
        Description = "GPU: how spike-input convolutions run: tensor (default; integer codes exact on int8 tensor cores, " +
            "fp32 weights as three bf16 pieces; 3x3 integer convs as implicit GEMMs and 1x1 ones as one fused kernel where that " +
            "pays), tensor-im2col, tensor-implicit, tensor-tiled, tensor-pipelined or tensor-wgmma (every integer conv wider than 1x1 one way, for comparisons; wgmma on sm_90 GPUs), " +
            "tensor-cublas-1x1 (integer 1x1 convs through cuBLAS's int8 GEMM instead of the fused kernel, for comparisons), " +
            "tensor-real-fused (every 1x1 conv of codes over real-valued input as one fused bf16 kernel), tensor-tf32-1x1 (every " +
            "integer 1x1 conv the fused kernel does not take as exact TF32 GEMMs on the spikes in place), tensor-unchained (ConvBlock's " +
            "3x3 -> LIF -> 3x3 as two ops instead of one fused kernel, for comparisons), or fp32 (SGEMM)",
        DefaultValueFactory = _ => "tensor",
    };
    public readonly Option<string> SpikeSums = new("--spike-sums")
    {
        Description = "CPU, packed models: how integer spike convolutions sum: auto (default; event-driven where the input's " +
            "firing rate is below the measured crossover), dense (always the integer GEMM) or events (wherever possible); " +
            "the results are identical",
        DefaultValueFactory = _ => "auto",
    };

    public void AddTo(Command command)
    {
        command.Add(Device);
        command.Add(Threads);
        command.Add(Gemm);
        command.Add(SpikeSums);
    }

    /// <summary>Host threads: the CPU backend's, and image decoding's on every device.</summary>
    public ComputeOptions Compute(ParseResult r)
    {
        var options = r.GetValue(Threads) switch
        {
            null => ComputeOptions.Default,
            < 1 and var t => throw new QsvitException($"--threads must be at least 1, got {t}"),
            { } t => new ComputeOptions { Threads = t },
        };
        options = r.GetValue(SpikeSums) switch
        {
            "auto" => options,
            "dense" => options with { SpikeAccumulation = SpikeAccumulation.Dense },
            "events" => options with { SpikeAccumulation = SpikeAccumulation.Events },
            var a => throw new QsvitException($"--spike-sums is auto, dense or events, not '{a}'"),
        };
        return r.GetValue(Gemm) switch
        {
            "tensor" => options,
            "fp32" => options with { SpikeGemm = SpikeInputGemm.Fp32 },
            "tensor-im2col" => options with { SpikeGemm = SpikeInputGemm.TensorCoresIm2col },
            "tensor-implicit" => options with { SpikeGemm = SpikeInputGemm.TensorCoresImplicit },
            "tensor-tiled" => options with { SpikeGemm = SpikeInputGemm.TensorCoresTiled },
            "tensor-pipelined" => options with { SpikeGemm = SpikeInputGemm.TensorCoresPipelined },
            "tensor-wgmma" => options with { SpikeGemm = SpikeInputGemm.TensorCoresWgmma },
            "tensor-cublas-1x1" => options with { SpikeGemm = SpikeInputGemm.TensorCoresPointwiseCublas },
            "tensor-tf32-1x1" => options with { SpikeGemm = SpikeInputGemm.TensorCoresTf32Pointwise },
            "tensor-real-fused" => options with { SpikeGemm = SpikeInputGemm.TensorCoresRealFused },
            "tensor-unchained" => options with { SpikeGemm = SpikeInputGemm.TensorCoresUnchained },
            var g => throw new QsvitException($"--gemm is tensor, tensor-im2col, tensor-implicit, tensor-tiled, tensor-pipelined, tensor-wgmma, tensor-cublas-1x1, tensor-real-fused, tensor-tf32-1x1, tensor-unchained or fp32, not '{g}'"),
        };
    }

    /// <summary>Opens the device and says on stderr which one runs (stdout carries only results).</summary>
    public IBackend Open(ParseResult r)
    {
        var backend = BackendFactory.Open(DeviceSpec.Parse(r.GetValue(Device)), Compute(r));
        Console.Error.WriteLine($"device: {backend.Description}");
        return backend;
    }
}
