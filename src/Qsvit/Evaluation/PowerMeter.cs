using Qsvit.Backends;
using Qsvit.Backends.Cuda;
using Qsvit.Backends.Cuda.Native;

namespace Qsvit.Evaluation;

/// <summary>Starts board-power measurements of one device; NVML for CUDA GPUs (<see cref="NvmlPowerSource"/>). Tests pass fakes.</summary>
public interface IPowerSource
{
    /// <summary>Starts measuring <paramref name="device"/> (one device, never a group); never throws for a device it cannot measure.</summary>
    IPowerProbe Start(IBackend device);
    /// <summary>Why <paramref name="device"/> (any device of a group) cannot be measured, or null when it can: callers skip work done only to be measured.</summary>
    string? WhyNot(IBackend device);
}

/// <summary>A running measurement.</summary>
public interface IPowerProbe
{
    /// <summary>Stops and returns what was measured, or why nothing was.</summary>
    PowerMeasurement Stop();
}

/// <summary>Board power of CUDA GPUs through NVML (<see cref="GpuPowerSampler"/>); any other device is "not measured".</summary>
public sealed class NvmlPowerSource : IPowerSource
{
    public static NvmlPowerSource Instance { get; } = new();

    public IPowerProbe Start(IBackend device) => Unwrap(device) is CudaBackend { IsCpuAccelerator: false } gpu
        // NVML's index order is PCI order, as CUDA's on machines of one GPU model (CUDA_DEVICE_ORDER aside).
        ? new Probe(GpuPowerSampler.Start(gpu.Device.Index))
        : new NotMeasured(NotAGpu(device));

    public string? WhyNot(IBackend device)
    {
        device = Unwrap(device);
        foreach (var d in device is DeviceGroup g ? g.Devices : [device])
            if (Unwrap(d) is not CudaBackend { IsCpuAccelerator: false }) return NotAGpu(d);
        return NvmlLibrary.Shared.Value.Error is { } error ? $"NVML is missing: {error}" : null;
    }

    /// <summary>The device under a profiler (which only times the same calls).</summary>
    private static IBackend Unwrap(IBackend device) => device is ProfilingBackend p ? p.Inner : device;

    private static string NotAGpu(IBackend device) =>
        $"{device.Device} is not an NVIDIA GPU; board power is measured through NVML on CUDA GPUs only";

    private sealed class Probe(GpuPowerSampler sampler) : IPowerProbe
    {
        public PowerMeasurement Stop() => sampler.Stop();
    }

    private sealed class NotMeasured(string reason) : IPowerProbe
    {
        public PowerMeasurement Stop() => PowerMeasurement.NotMeasured(reason);
    }
}

/// <summary>
/// Measured board energy of some work: one <see cref="PowerMeasurement"/> per device (several on a <see cref="DeviceGroup"/>)
/// and the totals over the images processed. Board power covers whole cards (idle draw and other processes included).
/// </summary>
public sealed record EnergyMeasurement(IReadOnlyList<PowerMeasurement> Devices, long Images)
{
    public bool Measured => Devices.Count > 0 && Devices.All(d => d.Measured);
    /// <summary>Why not measured (the first device's reason), or null.</summary>
    public string? NotMeasuredReason => Measured ? null : Devices.FirstOrDefault(d => !d.Measured)?.NotMeasuredReason ?? "no device";
    public double Joules => Devices.Sum(d => d.Joules);
    /// <summary>Sum of the devices' average board powers (they run at once).</summary>
    public double AverageWatts => Devices.Sum(d => d.AverageWatts);
    public double Seconds => Devices.Count == 0 ? 0 : Devices.Max(d => d.Seconds);
    public double JoulesPerImage => Measured && Images > 0 ? Joules / Images : double.NaN;
    public double ImagesPerJoule => Measured && Joules > 0 ? Images / Joules : double.NaN;

    public static EnergyMeasurement NotMeasured(string reason, long images = 0) => new([PowerMeasurement.NotMeasured(reason)], images);

    /// <summary>
    /// Runs <paramref name="work"/> while measuring every device of <paramref name="backend"/> (each device of a group);
    /// <paramref name="images"/> says how many images the result covers.
    /// </summary>
    public static (T Result, EnergyMeasurement Energy) Measure<T>(IBackend backend, IPowerSource source, Func<T> work, Func<T, long> images)
    {
        ArgumentNullException.ThrowIfNull(source);
        var devices = (backend is ProfilingBackend pb ? pb.Inner : backend) is DeviceGroup g ? g.Devices : [backend];
        var probes = devices.Select(source.Start).ToArray();
        var stopped = new PowerMeasurement[probes.Length];
        T result;
        try { result = work(); }
        finally
        {
            for (int i = 0; i < probes.Length; i++) stopped[i] = probes[i].Stop();
        }
        // Named by the device that ran (NVML names only the card model).
        var measured = stopped.Select((m, i) => m.Measured ? m with { Device = $"{devices[i].Device} {m.Device}" } : m);
        return (result, new EnergyMeasurement(measured.ToArray(), images(result)));
    }

    /// <summary>One line per device and a total, for printing.</summary>
    public IEnumerable<string> Lines()
    {
        if (!Measured)
        {
            yield return $"not measured: {NotMeasuredReason}";
            yield break;
        }
        if (Devices.Count > 1)
            foreach (var d in Devices)
                yield return $"  {d.Device}: {d.AverageWatts:F1} W average, {d.Joules:F1} J ({d.Source})";
        yield return $"{(Devices.Count > 1 ? "total " : "")}{AverageWatts:F1} W average, {Joules:F2} J over {Seconds:F2} s: " +
                     $"{JoulesPerImage:G4} J/image, {ImagesPerJoule:G4} images/J ({Devices[0].Source})";
    }
}

/// <summary>
/// Measured board energy of fp32 and a quantized setting, each evaluating the same images on the same device: what the
/// QSViT paper reports (GPU watts), beside the 45 nm estimate. Either side may be "not measured", with the reason.
/// </summary>
public sealed record MeasuredEnergyComparison(string Split, int Images, string Device, EnergyMeasurement Fp32, EnergyMeasurement Quantized)
{
    public bool Measured => Fp32.Measured && Quantized.Measured;
    /// <summary>The quantized network's spike-input layers summed its integer codes exactly (int8 tensor cores), rather than running as fp32 simulation of the codes.</summary>
    public bool IntegerCodes { get; init; }
    public string? NotMeasuredReason => Fp32.NotMeasuredReason ?? Quantized.NotMeasuredReason;
    /// <summary>Joules per image saved by the quantized network, in percent of fp32's.</summary>
    public double SavingPercent => Measured ? 100 * (1 - Quantized.JoulesPerImage / Fp32.JoulesPerImage) : double.NaN;
}
