using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// An ILGPU context with one accelerator: a CUDA GPU (<see cref="OpenCuda"/>) or ILGPU's CPU accelerator
/// (<see cref="OpenCpu"/>), which runs the very same kernels on host threads, for tests and CI.
/// </summary>
public sealed class GpuDevice : IDisposable
{
    public Context Context { get; }
    public Accelerator Accelerator { get; }
    /// <summary>What the device is, e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)".</summary>
    public string Description { get; }
    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;

    private GpuDevice(Context context, Accelerator accelerator, string description)
    {
        Context = context;
        Accelerator = accelerator;
        Description = description;
    }

    /// <summary>The NVIDIA driver library (the CUDA driver API) of this operating system.</summary>
    internal static string DriverLibrary => OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";

    /// <summary>
    /// The CUDA GPU with this index, or a <see cref="QsvitException"/> that says what was looked for: the NVIDIA driver
    /// library, then devices through it.
    /// </summary>
    public static GpuDevice OpenCuda(int index)
    {
        if (index < 0) throw new QsvitException($"cuda:{index}: a GPU index is 0 or more");
        string driver = DriverLibrary;
        if (!NativeLibrary.TryLoad(driver, out var handle))
            throw new QsvitException($"--device cuda:{index}: no usable CUDA GPU: looked for the NVIDIA driver library {driver} and did not find it " +
                "(is an NVIDIA GPU and driver installed, and visible to this process?); use --device cpu or auto");
        NativeLibrary.Free(handle);
        Context? context = null;
        try
        {
            context = Context.Create(b => b.Cuda().Math(MathMode.Default));
            var devices = new List<CudaDevice>();
            foreach (var d in context.GetCudaDevices()) devices.Add(d);
            if (devices.Count == 0)
                throw new QsvitException($"--device cuda:{index}: the NVIDIA driver ({driver}) loaded but reported no usable CUDA device " +
                    "(check nvidia-smi and CUDA_VISIBLE_DEVICES); use --device cpu or auto");
            if (index >= devices.Count)
                throw new QsvitException($"--device cuda:{index}: only {devices.Count} CUDA device(s) found: " +
                    string.Join(", ", devices.Select((d, i) => $"cuda:{i} {d.Name}")));
            var device = devices[index];
            var accelerator = device.CreateCudaAccelerator(context);
            string description = $"cuda:{index} {device.Name} (sm_{device.Architecture?.Major}{device.Architecture?.Minor}, " +
                $"{device.MemorySize / (1024.0 * 1024 * 1024):F1} GiB)";
            return new GpuDevice(context, accelerator, description);
        }
        catch (QsvitException)
        {
            context?.Dispose();
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            context?.Dispose();
            throw new QsvitException($"--device cuda:{index}: the CUDA driver ({driver}) is present but the GPU could not be opened: {e.Message}", e);
        }
    }

    /// <summary>The number of CUDA GPUs the driver reports (for cuda:all), or a <see cref="QsvitException"/> when there are none.</summary>
    public static int CountCuda()
    {
        string driver = DriverLibrary;
        if (!NativeLibrary.TryLoad(driver, out var handle))
            throw new QsvitException($"--device cuda:all: no usable CUDA GPU: looked for the NVIDIA driver library {driver} and did not find it " +
                "(is an NVIDIA GPU and driver installed, and visible to this process?); use --device cpu or auto");
        NativeLibrary.Free(handle);
        int count;
        try
        {
            using var context = Context.Create(b => b.Cuda());
            count = context.GetCudaDevices().Count;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new QsvitException($"--device cuda:all: the CUDA driver ({driver}) is present but could not list the GPUs: {e.Message}", e);
        }
        return count > 0 ? count : throw new QsvitException($"--device cuda:all: the NVIDIA driver ({driver}) reported no usable CUDA device " +
            "(check nvidia-smi and CUDA_VISIBLE_DEVICES); use --device cpu or auto");
    }

    /// <summary>
    /// ILGPU's CPU accelerator: the CUDA backend's kernels executed on host threads (slow; small shapes only). Groups of at
    /// most two threads (the smallest ILGPU allows): on the CPU a group's threads are OS threads and each barrier switches
    /// all of them, so the tiled kernels run with one-thread groups (smaller tiles) there.
    /// </summary>
    public static GpuDevice OpenCpu() => OpenCpu(threadsPerWarp: 2, warpsPerGroup: 1);

    /// <summary>ILGPU's CPU accelerator with groups of up to <paramref name="threadsPerWarp"/> × <paramref name="warpsPerGroup"/> threads (kernels that need whole CUDA-sized groups).</summary>
    internal static GpuDevice OpenCpu(int threadsPerWarp, int warpsPerGroup)
    {
        var cpu = new CPUDevice(numThreadsPerWarp: threadsPerWarp, numWarpsPerMultiprocessor: warpsPerGroup, numMultiprocessors: 1);
        var context = Context.Create(b => b.CPU(cpu).Optimize(OptimizationLevel.O1));
        var accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Sequential);
        return new GpuDevice(context, accelerator, "ILGPU CPU accelerator");
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}
