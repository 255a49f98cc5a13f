using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Backends.Cuda.Native;
using Qsvit.Evaluation;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Tensors;
using Qsvit.Tests.IO.Datasets;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Evaluation;

/// <summary>A power source that measures every device as a fixed board: 400 W on device 0, 300 W on device 1, … for 2 s.</summary>
internal sealed class FakePowerSource(string? whyNot = null) : IPowerSource
{
    public int Started { get; private set; }

    public IPowerProbe Start(IBackend device)
    {
        int index = Started++;
        return new Probe(whyNot is null
            ? new PowerMeasurement("fake board meter", "Fake GPU", 2, 2 * (400 - 100 * index), 400 - 100 * index, 450, 10, 0, null)
            : PowerMeasurement.NotMeasured(whyNot));
    }

    public string? WhyNot(IBackend device) => whyNot;

    private sealed class Probe(PowerMeasurement m) : IPowerProbe
    {
        public PowerMeasurement Stop() => m;
    }
}

public sealed class PowerMeterTests
{
    private static readonly ComputeOptions One = new() { Threads = 1 };

    [Fact]
    public void Measure_OnAGroup_MeasuresEveryDevice_AndAddsThemUp()
    {
        using var group = DeviceGroup.Open([() => new CpuBackend(One), () => new CpuBackend(One)]);
        var source = new FakePowerSource();
        var (result, energy) = EnergyMeasurement.Measure(group, source, () => 40, x => x);
        Assert.Equal(40, result);
        Assert.Equal(2, source.Started);
        Assert.True(energy.Measured);
        Assert.Equal(2, energy.Devices.Count);
        Assert.Equal("cpu Fake GPU", energy.Devices[0].Device);
        Assert.Equal(700, energy.AverageWatts);
        Assert.Equal(1400, energy.Joules);
        Assert.Equal(35, energy.JoulesPerImage);
        Assert.Equal(40 / 1400.0, energy.ImagesPerJoule);
        var lines = energy.Lines().ToArray();
        Assert.Equal(3, lines.Length);
        Assert.Contains("400.0 W average, 800.0 J", lines[0]);
        Assert.StartsWith("total 700.0 W average, 1400.00 J over 2.00 s: 35 J/image, 0.02857 images/J (fake board meter)", lines[2]);
    }

    [Fact]
    public void Nvml_DoesNotMeasureTheCpu_AndSaysWhy()
    {
        using var cpu = new CpuBackend(One);
        Assert.Contains("cpu is not an NVIDIA GPU", NvmlPowerSource.Instance.WhyNot(cpu));
        var (_, energy) = EnergyMeasurement.Measure(cpu, NvmlPowerSource.Instance, () => 5, x => x);
        Assert.False(energy.Measured);
        Assert.True(double.IsNaN(energy.JoulesPerImage));
        Assert.Equal(["not measured: cpu is not an NVIDIA GPU; board power is measured through NVML on CUDA GPUs only"], energy.Lines());
    }

    /// <summary>The search's measured energy: two real evaluations of the search split under the source, or none when it cannot measure.</summary>
    [Fact]
    public void SearchRun_MeasuresFp32AndTheSetting_OrSaysPowerWasNotMeasured()
    {
        using var dir = new TempDir();
        using var run = SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 6) with { Device = "cpu" });
        var measured = run.MeasureEnergy(QuantizationSetting.Uniform(4), new FakePowerSource());
        Assert.True(measured.Measured);
        Assert.Equal(6, measured.Images);
        Assert.Equal(800 / 6.0, measured.Fp32.JoulesPerImage, 12);
        Assert.Equal(600 / 6.0, measured.Quantized.JoulesPerImage, 12);   // the fake's second board
        Assert.Equal(25, measured.SavingPercent, 12);
        Assert.Equal(0, run.Evaluator.FullEvaluations);   // measurements are not search evaluations

        var missing = run.MeasureEnergy(QuantizationSetting.Uniform(4), new FakePowerSource("NVML is missing: libnvidia-ml.so.1 not found"));
        Assert.False(missing.Measured);
        Assert.Equal("NVML is missing: libnvidia-ml.so.1 not found", missing.NotMeasuredReason);
    }
}
