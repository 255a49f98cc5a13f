using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Qsvit.Backends.Cuda.Native;

/// <summary>
/// Board power and energy of one GPU while some work runs, through NVML (libnvidia-ml.so.1, shipped with the NVIDIA
/// driver). Energy comes from the board's energy counter (nvmlDeviceGetTotalEnergyConsumption, Volta and newer) where it
/// exists, else from the power samples integrated over time; the measurement says which. Where NVML or the GPU is
/// missing nothing throws: the result says power was not measured, and why.
/// </summary>
/// <remarks>Board power covers the whole card (memory, fans, other processes' work on it), not only this process.</remarks>
public sealed unsafe class GpuPowerSampler : IDisposable
{
    private readonly NvmlLibrary? _lib;
    private readonly IntPtr _device;
    private readonly string? _notMeasured;
    private readonly string _deviceName = "";
    private readonly TimeSpan _interval;
    private readonly List<(double Seconds, double Watts)> _samples = [];
    private readonly Stopwatch _clock = new();
    private readonly ulong _energyStartMj;
    private readonly bool _hasEnergyCounter;
    private ulong _peakMemoryUsed;
    private Thread? _thread;
    private volatile bool _stop;
    private PowerMeasurement? _result;

    /// <summary>The library names tried.</summary>
    public static IReadOnlyList<string> LibraryNames => OperatingSystem.IsWindows() ? ["nvml.dll"] : ["libnvidia-ml.so.1"];

    private GpuPowerSampler(string notMeasured)
    {
        _notMeasured = notMeasured;
    }

    private GpuPowerSampler(NvmlLibrary lib, IntPtr device, string name, TimeSpan interval)
    {
        _lib = lib;
        _device = device;
        _deviceName = name;
        _interval = interval;
        ulong mj;
        _hasEnergyCounter = lib.GetTotalEnergy(device, &mj) == 0;
        _energyStartMj = mj;
        _clock.Start();
        Sample();
        _thread = new Thread(Run) { IsBackground = true, Name = "qsvit NVML power sampler" };
        _thread.Start();
    }

    /// <summary>
    /// Starts sampling GPU <paramref name="deviceIndex"/> (NVML's order, which is PCI order) or the GPU at
    /// <paramref name="pciBusId"/> ("0000:65:00.0", which identifies a CUDA device unambiguously) every
    /// <paramref name="interval"/> (default 20 ms). Never throws for a missing NVML or GPU.
    /// </summary>
    public static GpuPowerSampler Start(int deviceIndex = 0, string? pciBusId = null, TimeSpan? interval = null)
        => Start(deviceIndex, pciBusId, interval, NvmlLibrary.Shared.Value);

    internal static GpuPowerSampler Start(int deviceIndex, string? pciBusId, TimeSpan? interval, NvmlLibrary lib)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(deviceIndex);
        var period = interval ?? TimeSpan.FromMilliseconds(20);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(period, TimeSpan.Zero, nameof(interval));
        if (lib.Error is not null) return new GpuPowerSampler(lib.Error);
        int status = lib.Init();
        if (status != 0) return new GpuPowerSampler($"nvmlInit_v2 failed: {lib.ErrorText(status)}");
        IntPtr device;
        if (pciBusId is not null)
        {
            var bytes = System.Text.Encoding.ASCII.GetBytes(pciBusId + "\0");
            fixed (byte* p = bytes) status = lib.GetHandleByPciBusId(p, &device);
        }
        else status = lib.GetHandleByIndex((uint)deviceIndex, &device);
        if (status != 0)
        {
            lib.Shutdown();
            return new GpuPowerSampler($"no NVML device {(pciBusId ?? deviceIndex.ToString())}: {lib.ErrorText(status)}");
        }
        uint mw;
        status = lib.GetPowerUsage(device, &mw);
        if (status != 0)
        {
            lib.Shutdown();
            return new GpuPowerSampler($"nvmlDeviceGetPowerUsage failed: {lib.ErrorText(status)}");
        }
        return new GpuPowerSampler(lib, device, lib.DeviceName(device), period);
    }

    /// <summary>True while sampling; false when NVML or the GPU is missing (see <see cref="Stop"/>'s reason).</summary>
    public bool IsMeasuring => _lib is not null && _result is null;

    /// <summary>Stops sampling and returns what was measured (the same result on every later call).</summary>
    public PowerMeasurement Stop()
    {
        if (_result is not null) return _result;
        if (_lib is null) return _result = PowerMeasurement.NotMeasured(_notMeasured!);
        _stop = true;
        _thread!.Join();
        _thread = null;
        Sample();
        double seconds = _clock.Elapsed.TotalSeconds;
        ulong endMj = 0;
        bool counter = _hasEnergyCounter && _lib.GetTotalEnergy(_device, &endMj) == 0 && endMj >= _energyStartMj;
        double joules = counter ? (endMj - _energyStartMj) / 1000.0 : Integrate(_samples);
        double peak = _samples.Count == 0 ? 0 : _samples.Max(s => s.Watts);
        _lib.Shutdown();
        return _result = new PowerMeasurement(
            counter ? "NVML board energy counter" : "NVML board power samples, integrated",
            _deviceName, seconds, joules, seconds > 0 ? joules / seconds : 0, peak, _samples.Count, (long)_peakMemoryUsed, null);
    }

    public void Dispose() => Stop();

    /// <summary>Trapezoid rule over (seconds, watts) samples in time order: joules.</summary>
    internal static double Integrate(IReadOnlyList<(double Seconds, double Watts)> samples)
    {
        double joules = 0;
        for (int i = 1; i < samples.Count; i++)
            joules += (samples[i].Seconds - samples[i - 1].Seconds) * (samples[i].Watts + samples[i - 1].Watts) / 2;
        return joules;
    }

    private void Run()
    {
        while (!_stop)
        {
            Thread.Sleep(_interval);
            Sample();
        }
    }

    private void Sample()
    {
        uint mw;
        if (_lib!.GetPowerUsage(_device, &mw) == 0)
            lock (_samples) _samples.Add((_clock.Elapsed.TotalSeconds, mw / 1000.0));
        NvmlMemory memory;
        if (_lib.GetMemoryInfo(_device, &memory) == 0 && memory.Used > _peakMemoryUsed) _peakMemoryUsed = memory.Used;
    }
}

/// <summary>
/// What a <see cref="GpuPowerSampler"/> measured: average board watts and joules over the sampled time, or why nothing
/// was measured. <see cref="PeakMemoryUsedBytes"/> is the device's used memory (all processes, CUDA contexts included).
/// </summary>
public sealed record PowerMeasurement(string Source, string Device, double Seconds, double Joules, double AverageWatts,
    double PeakWatts, int Samples, long PeakMemoryUsedBytes, string? NotMeasuredReason)
{
    public bool Measured => NotMeasuredReason is null;

    public static PowerMeasurement NotMeasured(string reason) => new("not measured", "", 0, 0, 0, 0, 0, 0, reason);

    public double JoulesPerImage(long images) => Measured && images > 0 ? Joules / images : double.NaN;
    public double ImagesPerJoule(long images) => Measured && Joules > 0 ? images / Joules : double.NaN;

    public override string ToString() => Measured
        ? $"{AverageWatts:F1} W average ({PeakWatts:F0} W peak), {Joules:F1} J over {Seconds:F2} s on {Device} ({Source}, {Samples} samples)"
        : $"power not measured: {NotMeasuredReason}";
}

[StructLayout(LayoutKind.Sequential)]
internal struct NvmlMemory
{
    public ulong Total;
    public ulong Free;
    public ulong Used;
}

/// <summary>The NVML entry points, resolved once per process.</summary>
internal sealed unsafe class NvmlLibrary
{
    public static readonly Lazy<NvmlLibrary> Shared = new(() => Load(GpuPowerSampler.LibraryNames, NvmlDirectories()));

    public string? Error { get; }
    public readonly delegate* unmanaged<int> Init;
    private readonly delegate* unmanaged<int> _shutdown;
    public readonly delegate* unmanaged<uint, IntPtr*, int> GetHandleByIndex;
    public readonly delegate* unmanaged<byte*, IntPtr*, int> GetHandleByPciBusId;
    public readonly delegate* unmanaged<IntPtr, uint*, int> GetPowerUsage;
    public readonly delegate* unmanaged<IntPtr, ulong*, int> GetTotalEnergy;
    public readonly delegate* unmanaged<IntPtr, NvmlMemory*, int> GetMemoryInfo;
    private readonly delegate* unmanaged<IntPtr, byte*, uint, int> _getName;
    private readonly delegate* unmanaged<int, byte*> _errorString;

    private NvmlLibrary(string error) => Error = error;

    private NvmlLibrary(NativeLibraryResolution r)
    {
        Init = (delegate* unmanaged<int>)NativeLibraryResolver.Export(r, "nvmlInit_v2");
        _shutdown = (delegate* unmanaged<int>)NativeLibraryResolver.Export(r, "nvmlShutdown");
        GetHandleByIndex = (delegate* unmanaged<uint, IntPtr*, int>)NativeLibraryResolver.Export(r, "nvmlDeviceGetHandleByIndex_v2");
        GetHandleByPciBusId = (delegate* unmanaged<byte*, IntPtr*, int>)NativeLibraryResolver.Export(r, "nvmlDeviceGetHandleByPciBusId_v2");
        GetPowerUsage = (delegate* unmanaged<IntPtr, uint*, int>)NativeLibraryResolver.Export(r, "nvmlDeviceGetPowerUsage");
        GetTotalEnergy = (delegate* unmanaged<IntPtr, ulong*, int>)NativeLibraryResolver.Export(r, "nvmlDeviceGetTotalEnergyConsumption");
        GetMemoryInfo = (delegate* unmanaged<IntPtr, NvmlMemory*, int>)NativeLibraryResolver.Export(r, "nvmlDeviceGetMemoryInfo");
        _getName = (delegate* unmanaged<IntPtr, byte*, uint, int>)NativeLibraryResolver.Export(r, "nvmlDeviceGetName");
        _errorString = (delegate* unmanaged<int, byte*>)NativeLibraryResolver.Export(r, "nvmlErrorString");
    }

    internal static NvmlLibrary Load(IReadOnlyList<string> names, IReadOnlyList<string> directories, Func<string, IntPtr>? load = null)
    {
        var r = NativeLibraryResolver.Resolve(names, directories, load);
        if (!r.Found) return new NvmlLibrary(r.Describe("NVML (" + string.Join(" or ", names) + ", part of the NVIDIA driver)"));
        try
        {
            return new NvmlLibrary(r);
        }
        catch (QsvitException e)
        {
            return new NvmlLibrary(e.Message);
        }
    }

    /// <summary>The driver's library is normally in the loader cache; these cover containers where it is not.</summary>
    private static IReadOnlyList<string> NvmlDirectories() => OperatingSystem.IsWindows()
        ? [Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.System))]
        : ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu", "/usr/local/nvidia/lib64"];

    public void Shutdown() => _shutdown();

    public string ErrorText(int status)
    {
        var text = _errorString == null ? null : Marshal.PtrToStringUTF8((IntPtr)_errorString(status));
        return $"NVML error {status}" + (string.IsNullOrEmpty(text) ? "" : $" ({text})");
    }

    public string DeviceName(IntPtr device)
    {
        var buffer = stackalloc byte[96];
        return _getName(device, buffer, 96) == 0 ? Marshal.PtrToStringUTF8((IntPtr)buffer) ?? "" : "";
    }
}
