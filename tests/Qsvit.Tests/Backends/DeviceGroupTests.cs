using Qsvit.Backends;
using Qsvit.Backends.Cpu;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Snn;
using Qsvit.Tensors;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Backends;

/// <summary>
/// Several devices (CPU backends standing in for GPUs) give exactly what one gives: logits, predictions, spike counts,
/// drift and accuracies, with a last batch shorter than the others and more batches than devices.
/// </summary>
public sealed class DeviceGroupTests : IDisposable
{
    private static readonly ComputeOptions One = new() { Threads = 1 };
    private readonly string _dir = Directory.CreateTempSubdirectory("qsvit-group-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static DeviceGroup CpuGroup(int devices) =>
        DeviceGroup.Open(Enumerable.Range(0, devices).Select(_ => (Func<IBackend>)(() => new CpuBackend(One))).ToArray());

    private IImageDataset Data(int count) => TinyModel.Open(Aq4Fixtures.WriteCifar(_dir, $"d{count}.bin", count, 5));

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Evaluation_IsIdenticalOnOneAndSeveralDevices(int devices)
    {
        var loaded = Aq4Fixtures.TinyModel(4);
        var data = Data(7);   // batches of 2: 2, 2, 2, 1
        using var single = new CpuBackend(One);
        using var group = CpuGroup(devices);
        using var m1 = loaded.CreateModel(backend: single);
        using var mN = loaded.CreateModel(backend: group);
        Assert.Equal(devices, mN.Replicas.Count);

        var order1 = new List<int>();
        var orderN = new List<int>();
        var options = new EvalOptions { BatchSize = 2, KeepLogits = 7, Host = One };
        var r1 = Evaluator.Run(m1, data, options with { OnPrediction = (i, _, _, _) => order1.Add(i) });
        var rN = Evaluator.Run(mN, data, options with { OnPrediction = (i, _, _, _) => orderN.Add(i) });

        Assert.Equal(r1.Logits, rN.Logits);
        Assert.Equal(r1.Predictions, rN.Predictions);
        Assert.Equal(r1.Correct, rN.Correct);
        Assert.Equal(r1.Top5Correct, rN.Top5Correct);
        Assert.Equal(Enumerable.Range(0, 7), orderN);
        Assert.Equal(order1, orderN);
        Assert.Equal(r1.FiringRates.Select(x => (x.Name, x.Spikes, x.Neurons)), rN.FiringRates.Select(x => (x.Name, x.Spikes, x.Neurons)));
        Assert.Contains(rN.FiringRates, x => x.Spikes > 0);
    }

    /// <summary>
    /// A search's evaluator on a group: accuracies and drift (per-chunk sums added in chunk order) equal one device's to the
    /// bit, for two candidates in a row (each uploads its changed layers to every device).
    /// </summary>
    [Fact]
    public void SettingEvaluator_AccuracyAndDrift_AreIdenticalOnTwoDevices()
    {
        var loaded = Aq4Fixtures.TinyModel(6);
        var splits = new Dictionary<string, IImageDataset> { ["search"] = Data(5) };
        var options = new EvalOptions { BatchSize = 2, Host = One };
        (AccuracyRecord, DriftResult)[] Run(IBackend backend)
        {
            using var evaluator = new SettingEvaluator(loaded, QuantizerSpec.Paper, splits, options, calibrationImages: 5, backend: backend);
            return [.. new[] { 4, 8 }.Select(bits =>
            {
                var s = QuantizationSetting.Uniform(bits);
                return (evaluator.Accuracy(s, "search"), evaluator.Drift(s));
            })];
        }
        using var single = new CpuBackend(One);
        using var group = CpuGroup(2);
        var a = Run(single);
        var b = Run(group);
        for (int i = 0; i < a.Length; i++)
        {
            Assert.Equal(a[i].Item1.CorrectMask, b[i].Item1.CorrectMask);
            Assert.Equal(a[i].Item2.Drift, b[i].Item2.Drift);
            Assert.Equal(a[i].Item2.SpikeMismatch, b[i].Item2.SpikeMismatch);
            Assert.Equal(a[i].Item2.PerLayer, b[i].Item2.PerLayer);
        }
        Assert.True(a[0].Item2.Drift > 0);
    }

    /// <summary>The recorders' own sums: norms and drift chunk by chunk, mismatches and spikes as integers.</summary>
    [Fact]
    public void GroupRecorders_ReduceInBatchOrder()
    {
        var loaded = Aq4Fixtures.TinyModel(2);
        var rng = new Random(3);
        var images = Enumerable.Range(0, 5 * 3072).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        (double[] Norm, DriftSums Drift, LifCounts Counts) Run(IBackend backend)
        {
            using var fp32 = loaded.CreateModel(backend: backend);
            using var q = fp32.WithState(ModelQuantizer.Apply(fp32.State, fp32.Layout, QuantizationSetting.Uniform(4), QuantizerSpec.Paper).StateDict);
            var chunks = new[] { (0, 2), (2, 2), (4, 1) }.Select(c => new BatchInput(images.AsMemory(c.Item1 * 3072, c.Item2 * 3072), c.Item2, 32, 32)).ToArray();
            using var reference = backend.CreateMembraneReference(fp32.LifNames.Count);
            fp32.ForwardBatches(chunks, reference, (_, _) => { });
            reference.Seal();
            using var meter = backend.CreateDriftMeter(reference);
            q.ForwardBatches(chunks, meter, (_, _) => { });
            using var counter = backend.CreateSpikeCounter(q.LifNames.Count);
            foreach (var c in chunks) q.Forward(c.Images.Span, c.Batch, 32, 32, counter);
            Assert.Equal(3, reference.ChunkNormSquared.Count);
            return (reference.NormSquared, meter.Read(), counter.Read());
        }
        using var single = new CpuBackend(One);
        using var group = CpuGroup(2);
        var a = Run(single);
        var b = Run(group);
        Assert.Equal(a.Norm, b.Norm);
        Assert.Equal(a.Drift.DiffSquared, b.Drift.DiffSquared);
        Assert.Equal(a.Drift.Mismatches, b.Drift.Mismatches);
        Assert.Equal(a.Drift.LayersSeen, b.Drift.LayersSeen);
        Assert.Equal(a.Counts.Spikes, b.Counts.Spikes);
        Assert.Equal(a.Counts.Neurons, b.Counts.Neurons);
    }

    [Fact]
    public void ADeviceThatFailsToOpen_IsAClearError_AndTheOthersAreClosed()
    {
        var first = new CountingDisposal();
        var e = Assert.Throws<QsvitException>(() => DeviceGroup.Open([() => first, () => throw new InvalidOperationException("no such card")]));
        Assert.Contains("device 1", e.Message);
        Assert.Contains("no such card", e.Message);
        Assert.Equal(1, first.Disposals);

        var refused = Assert.Throws<QsvitException>(() => DeviceGroup.Open([() => new CpuBackend(One), () => throw new QsvitException("cuda:7: only 2 CUDA device(s) found")]));
        Assert.Equal("cuda:7: only 2 CUDA device(s) found", refused.Message);
    }

    [Fact]
    public void ADeviceThatFailsDuringAPass_IsAClearErrorNamingIt()
    {
        var loaded = Aq4Fixtures.TinyModel(4);
        using var group = DeviceGroup.Open([() => new CpuBackend(One), () => new FailingBackend(new CpuBackend(One))]);
        using var model = loaded.CreateModel(backend: group);
        var e = Assert.Throws<QsvitException>(() => Evaluator.Run(model, Data(4), new EvalOptions { BatchSize = 1, Host = One }));
        Assert.Contains("cpu failed", e.Message);
        Assert.Contains("the card fell off the bus", e.Message);
    }

    [Fact]
    public void ARecorderOfAnotherBackend_RunsEveryBatchOnTheFirstDevice()
    {
        var loaded = Aq4Fixtures.TinyModel(4);
        using var group = CpuGroup(2);
        using var model = loaded.CreateModel(backend: group);
        var host = new FiringRateRecorder();
        var images = new float[3 * 3072];
        var logits = model.Forward(images, 3, 32, 32, host);
        Assert.Equal(3 * 10, logits.Length);
        Assert.True(host.Count > 0);
        Assert.Throws<ArgumentException>(() => group.Lif(group.Rent(8), group.Rent(8), 8, 2, 1f, group.CreateSpikeCounter(1), 0));
    }

    /// <summary>
    /// One device much slower than the other (a stand-in that sleeps in every conv): the queue hands the fast one more
    /// batches, and logits, spike counts, norms and drift are still one device's to the bit, whichever device is slow
    /// (device 0 runs on the caller's thread, between reading and delivering).
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void ASlowDevice_TakesFewerBatches_AndResultsAreOneDevicesOwn(int slowDevice)
    {
        var loaded = Aq4Fixtures.TinyModel(4);
        var rng = new Random(5);
        const int batches = 6;
        var images = Enumerable.Range(0, batches * 3072).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var chunks = Enumerable.Range(0, batches).Select(c => new BatchInput(images.AsMemory(c * 3072, 3072), 1, 32, 32)).ToArray();
        using var single = new CpuBackend(One);
        var devices = new[] { new StandIn(new CpuBackend(One)), new StandIn(new CpuBackend(One)) };
        devices[slowDevice].SleepPerConv = 2;
        using var group = DeviceGroup.Open([() => devices[0], () => devices[1]]);
        var one = RecordedRun.Of(loaded, chunks, single);
        RecordedRun.Of(loaded, chunks, group).AssertSameAs(one);

        var (fast, slow) = (devices[1 - slowDevice], devices[slowDevice]);
        Assert.Equal(3 * batches, fast.Passes + slow.Passes);
        Assert.True(slow.Passes >= 2, $"each device runs its first batch of each call; the slow one ran {slow.Passes}");
        Assert.True(fast.Passes > slow.Passes, $"the fast device ran {fast.Passes} batches, the slow one {slow.Passes}");
    }

    /// <summary>
    /// The caller's sequence or callback failing midway stops the queue: its error as it is, no device left running, the
    /// group usable afterwards.
    /// </summary>
    [Fact]
    public void ACallerErrorMidway_StopsTheQueue_WithNothingLeftRunning()
    {
        var loaded = Aq4Fixtures.TinyModel(4);
        var slow = new StandIn(new CpuBackend(One)) { SleepPerConv = 2 };
        using var group = DeviceGroup.Open([() => new CpuBackend(One), () => slow]);
        using var model = loaded.CreateModel(backend: group);
        var images = new float[3072];
        IEnumerable<BatchInput> Batches()
        {
            for (int k = 0; k < 4; k++) yield return new BatchInput(images, 1, 32, 32);
            throw new QsvitException("the dataset ended early");
        }
        int delivered = 0;
        var e = Assert.Throws<QsvitException>(() => model.ForwardBatches(Batches(), null, (_, _) => delivered++));
        Assert.Equal("the dataset ended early", e.Message);
        Assert.Equal(0, slow.Running);
        Assert.True(delivered <= 4);
        // A callback that gives the busy device threads more work fails at once instead of waiting forever.
        Assert.Throws<InvalidOperationException>(() => model.ForwardBatches([new BatchInput(images, 1, 32, 32)], null, (_, _) => group.OnEach(_ => { })));
        var logits = new List<float[]>();
        model.ForwardBatches(Enumerable.Repeat(new BatchInput(images, 1, 32, 32), 3), null, (_, l) => logits.Add(l));
        Assert.Equal(3, logits.Count);
    }

    [Fact]
    public void TheFirstDeviceFailing_IsAClearErrorNamingIt_WithNothingLeftRunning()
    {
        var loaded = Aq4Fixtures.TinyModel(4);
        var slow = new StandIn(new CpuBackend(One)) { SleepPerConv = 2 };
        using var group = DeviceGroup.Open([() => new FailingBackend(new CpuBackend(One)), () => slow]);
        using var model = loaded.CreateModel(backend: group);
        var e = Assert.Throws<QsvitException>(() => Evaluator.Run(model, Data(4), new EvalOptions { BatchSize = 1, Host = One }));
        Assert.Contains("cpu failed", e.Message);
        Assert.Contains("the card fell off the bus", e.Message);
        Assert.Equal(0, slow.Running);
    }

    /// <summary>A stand-in device: counts passes (one head each) and the convs under way, and sleeps in each conv when told to.</summary>
    private sealed class StandIn(IBackend inner) : ForwardingBackend(inner)
    {
        private int _passes, _running;
        public int SleepPerConv { get; set; }
        public int Passes => Volatile.Read(ref _passes);
        public int Running => Volatile.Read(ref _running);

        public override void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output)
        {
            Interlocked.Increment(ref _running);
            try
            {
                if (SleepPerConv > 0) Thread.Sleep(SleepPerConv);
                base.Conv(layer, input, frames, height, width, output);
            }
            finally { Interlocked.Decrement(ref _running); }
        }

        public override void Head(HeadLayer head, DeviceBuffer features, int batch, int timesteps, DeviceBuffer logits)
        {
            base.Head(head, features, batch, timesteps, logits);
            Interlocked.Increment(ref _passes);
        }
    }

    /// <summary>A backend that only counts its disposals (a device opened before another failed).</summary>
    private sealed class CountingDisposal() : ForwardingBackend(new CpuBackend(One))
    {
        public int Disposals { get; private set; }
        public override void Dispose()
        {
            Disposals++;
            base.Dispose();
        }
    }

    /// <summary>The CPU backend with convolutions that fail, as a GPU that drops out would.</summary>
    private sealed class FailingBackend(IBackend inner) : ForwardingBackend(inner)
    {
        public override void Conv(ConvLayer layer, DeviceBuffer input, int frames, int height, int width, DeviceBuffer output) =>
            throw new InvalidOperationException("the card fell off the bus");
    }
}
