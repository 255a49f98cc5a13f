using Qsvit.Backends;
using Qsvit.Backends.Cpu;

namespace Qsvit.Tests.Backends;

public sealed class DeviceTests
{
    [Theory]
    [InlineData("auto", DeviceKind.Auto, 0, "auto")]
    [InlineData("cpu", DeviceKind.Cpu, 0, "cpu")]
    [InlineData(" CPU ", DeviceKind.Cpu, 0, "cpu")]
    [InlineData("cuda", DeviceKind.Cuda, 0, "cuda:0")]
    [InlineData("cuda:0", DeviceKind.Cuda, 0, "cuda:0")]
    [InlineData("CUDA:3", DeviceKind.Cuda, 3, "cuda:3")]
    public void Parse_ReadsEveryForm(string text, DeviceKind kind, int index, string canonical)
    {
        var spec = DeviceSpec.Parse(text);
        Assert.Equal(new DeviceSpec(kind, index), spec);
        Assert.Equal(canonical, spec.ToString());
        Assert.Equal(spec, DeviceSpec.Parse(spec.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("gpu0")]
    [InlineData("tpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("cuda:+1")]
    public void Parse_RefusesWhatIsNotADevice(string text) =>
        Assert.Contains("is not a device", Assert.Throws<QsvitException>(() => DeviceSpec.Parse(text)).Message);

    [Theory]
    [InlineData("cuda:all", "cuda:all", new int[0])]
    [InlineData("CUDA:ALL", "cuda:all", new int[0])]
    [InlineData("cuda:0,1", "cuda:0,1", new[] { 0, 1 })]
    [InlineData("cuda:3, 1,2", "cuda:3,1,2", new[] { 3, 1, 2 })]
    public void Parse_ReadsGroupsOfGpus(string text, string canonical, int[] indices)
    {
        var spec = DeviceSpec.Parse(text);
        Assert.Equal(DeviceKind.Cuda, spec.Kind);
        Assert.True(spec.IsGroup);
        Assert.Equal(indices, spec.Indices);
        Assert.Equal(text.Contains("all", StringComparison.OrdinalIgnoreCase), spec.AllGpus);
        Assert.Equal(canonical, spec.ToString());
        Assert.Equal(spec, DeviceSpec.Parse(spec.ToString()));
        Assert.NotEqual(DeviceSpec.Cuda(indices.FirstOrDefault()), spec);
    }

    [Fact]
    public void Parse_AListOfOneGpuIsThatGpu() => Assert.Equal(DeviceSpec.Cuda(2), DeviceSpec.Parse("cuda:2"));

    [Theory]
    [InlineData("cuda:0,0")]
    [InlineData("cuda:1,0,1")]
    public void Parse_RefusesAGpuNamedTwice(string text) =>
        Assert.Contains("names a GPU twice", Assert.Throws<QsvitException>(() => DeviceSpec.Parse(text)).Message);

    [Theory]
    [InlineData("cuda:0,")]
    [InlineData("cuda:,1")]
    [InlineData("cuda:0;1")]
    [InlineData("cuda:0,-1")]
    [InlineData("cuda:all,1")]
    [InlineData("cuda:0..1")]
    public void Parse_RefusesBadLists(string text) =>
        Assert.Contains("is not a device", Assert.Throws<QsvitException>(() => DeviceSpec.Parse(text)).Message);

    /// <summary>Without a GPU, a list or cuda:all fails as clearly as one GPU does.</summary>
    [Theory]
    [InlineData("cuda:0,1")]
    [InlineData("cuda:all")]
    public void GroupWithoutAGpu_IsAClearError(string text)
    {
        if (HasNvidiaDriver()) return;
        var e = Assert.Throws<QsvitException>(() => BackendFactory.Open(DeviceSpec.Parse(text)));
        Assert.Contains("libcuda.so.1", e.Message);
    }

    [Fact]
    public void Cpu_OpensTheCpuBackendWithItsOptions()
    {
        using var backend = BackendFactory.Open(DeviceSpec.Cpu, new Qsvit.Tensors.ComputeOptions { Threads = 1 });
        var cpu = Assert.IsType<CpuBackend>(backend);
        Assert.Equal(1, cpu.Options.Threads);
        Assert.Equal(DeviceSpec.Cpu, backend.Device);
        Assert.StartsWith("cpu (1 threads", backend.Description);
        Assert.Throws<QsvitException>(() => new Qsvit.Tensors.ComputeOptions { Threads = 0 });
    }

    /// <summary>CI and this machine have no GPU: cuda must fail clearly, and auto must fall back to the CPU.</summary>
    [Fact]
    public void Cuda_WithoutAGpu_IsAClearError_AndAutoFallsBackToTheCpu()
    {
        if (HasNvidiaDriver()) return; // a GPU machine: the CUDA backend tests cover it
        var e = Assert.Throws<QsvitException>(() => BackendFactory.Open(DeviceSpec.Cuda(1)));
        Assert.Contains("cuda:1", e.Message);
        Assert.Contains("libcuda.so.1", e.Message);
        using var auto = BackendFactory.Open(DeviceSpec.Auto);
        Assert.Equal(DeviceKind.Cpu, auto.Device.Kind);
    }

    internal static bool HasNvidiaDriver()
    {
        bool found = System.Runtime.InteropServices.NativeLibrary.TryLoad(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1", out var h);
        if (found) System.Runtime.InteropServices.NativeLibrary.Free(h);
        return found;
    }
}
