using System.Runtime.InteropServices;
using Qsvit.Backends.Cpu;
using Qsvit.Tensors;

namespace Qsvit.Backends;

/// <summary>Opens the backend a <see cref="DeviceSpec"/> names.</summary>
public static class BackendFactory
{
    /// <summary>
    /// cpu: the CPU backend with <paramref name="options"/>. cuda:N: that GPU, or a <see cref="QsvitException"/> naming
    /// what was looked for. auto: cuda:0 when it opens, else the CPU.
    /// </summary>
    public static IBackend Open(DeviceSpec spec, ComputeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        options ??= ComputeOptions.Default;
        switch (spec.Kind)
        {
            case DeviceKind.Cpu: return new CpuBackend(options);
            case DeviceKind.Cuda: return OpenCuda(spec.Index, options);
            default:
                try { return OpenCuda(0, options); }
                catch (QsvitException) { return new CpuBackend(options); }
        }
    }

    // STUB(gpu): until src/Qsvit/Backends/Cuda lands, replace this body with `Cuda.CudaBackend.Open(index, options)`.
    private static IBackend OpenCuda(int index, ComputeOptions options) => throw NoCudaBackend(index);

    /// <summary>The error for a CUDA device that cannot be used, naming what was looked for.</summary>
    internal static QsvitException NoCudaBackend(int index)
    {
        string driver = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        bool found = NativeLibrary.TryLoad(driver, out var handle);
        if (found) NativeLibrary.Free(handle);
        return new QsvitException(found
            ? $"--device cuda:{index}: the NVIDIA driver ({driver}) is present but this build of qsvit has no CUDA backend; use --device cpu"
            : $"--device cuda:{index}: no usable CUDA GPU: looked for the NVIDIA driver library {driver} and did not find it " +
              "(is an NVIDIA GPU and driver installed, and visible to this process?); use --device cpu or auto");
    }
}
