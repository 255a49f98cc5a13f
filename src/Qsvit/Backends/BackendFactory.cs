using Qsvit.Backends.Cpu;
using Qsvit.Tensors;

namespace Qsvit.Backends;

/// <summary>Opens the backend a <see cref="DeviceSpec"/> names.</summary>
public static class BackendFactory
{
    /// <summary>
    /// cpu: the CPU backend with <paramref name="options"/>. cuda:N: that GPU, or a <see cref="QsvitException"/> naming
    /// what was looked for. cuda:0,1 / cuda:all: a <see cref="DeviceGroup"/> of those GPUs (every GPU found; one GPU
    /// alone is opened as cuda:N). auto: cuda:0 when it opens, else the CPU.
    /// </summary>
    public static IBackend Open(DeviceSpec spec, ComputeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        options ??= ComputeOptions.Default;
        if (spec.IsGroup) return OpenGroup(spec, options);
        switch (spec.Kind)
        {
            case DeviceKind.Cpu: return new CpuBackend(options);
            case DeviceKind.Cuda: return OpenCuda(spec.Index, options);
            default:
                try { return OpenCuda(0, options); }
                catch (QsvitException) { return new CpuBackend(options); }
        }
    }

    private static IBackend OpenCuda(int index, ComputeOptions options) => Cuda.CudaBackend.Open(index, options);

    private static IBackend OpenGroup(DeviceSpec spec, ComputeOptions options)
    {
        var indices = spec.AllGpus ? Enumerable.Range(0, Cuda.GpuDevice.CountCuda()).ToArray() : spec.Indices.ToArray();
        if (indices.Length == 1) return OpenCuda(indices[0], options);
        return DeviceGroup.Open(indices.Select(i => (Func<IBackend>)(() => OpenCuda(i, options))).ToArray(),
            spec.AllGpus ? DeviceSpec.CudaGroup(indices) : spec);
    }
}
