using Qsvit.Evaluation;
using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Tests.Quantization;

/// <summary>The packed model file: size, round trip, validation, and the integer path against fake quantization.</summary>
public class PackedModelTests
{
    private static string TempFile() => Path.Combine(Path.GetTempPath(), $"qsvit-packed-{Guid.NewGuid():N}.safetensors");

    public static TheoryData<string, string> Settings => new()
    {
        { "8", "paper" },
        { "8,4,8,8|8,8,8|4,32|4,32", "paper" },
        { "4", "symmetric-channel" },
        { "2,3,6,12|16,4,8|3,2|6,12", "asymmetric-channel-mse" },
        { "32,32,32,32|6,6,6|3,3|3,3|8", "symmetric-channel-mse" },
        { "3", "asymmetric" },
    };

    [Theory]
    [MemberData(nameof(Settings))]
    public void FileIsAtMostTheExactMemoryPlusOnePercentAndRoundTrips(string settingText, string quantizer)
    {
        var setting = settingText.Contains('|') ? QuantizationSetting.Parse(settingText) : QuantizationSetting.Uniform(int.Parse(settingText));
        var spec = QuantizerSpec.Parse(quantizer);
        var packed = PackedModel.Create(Fixtures.Cifar, setting, spec);
        string path = TempFile();
        try
        {
            packed.Save(path);
            long header;
            using (var f = File.OpenRead(path))
            {
                var len = new byte[8];
                f.ReadExactly(len);
                header = 8 + BitConverter.ToInt64(len);
            }
            long size = new FileInfo(path).Length;
            var exact = MemoryFootprint.Compute(new Sdtv2Layout(Fixtures.Cifar.Config), setting, spec);
            Assert.True(size - header <= exact.Bytes * 1.01, $"data {size - header} B > exact {exact.Bytes} B + 1 %");

            var loaded = PackedModel.Load(path);
            Assert.Equal(setting, loaded.Setting);
            Assert.Equal(spec, loaded.Spec);
            Assert.Equal(Fixtures.Cifar.Config.EmbedDim, loaded.Config.EmbedDim);
            Assert.Equal(packed.Packed.Keys.Order(), loaded.Packed.Keys.Order());
            foreach (var (key, w) in packed.Packed)
            {
                var l = loaded.Packed[key];
                Assert.Equal(w.Codes, l.Codes);
                Assert.Equal(w.Scales, l.Scales);
                Assert.Equal(w.ZeroPoints, l.ZeroPoints);
                Assert.Equal(w.Bits, l.Bits);
            }
            // Any safetensors reader lists the tensors.
            var (tensors, metadata) = SafeTensors.ReadRaw(path);
            Assert.Equal(PackedModel.Format, metadata[PackedModel.FormatKey]);
            Assert.All(tensors.Where(t => t.Name.EndsWith(".codes", StringComparison.Ordinal)), t => Assert.Equal(DType.U8, t.DType));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void CodesDequantizeToTheFakeQuantizedWeights()
    {
        var setting = QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32");
        foreach (var spec in new[] { QuantizerSpec.Paper, QuantizerSpec.Parse("asymmetric-channel-mse") })
        {
            var packed = PackedModel.Create(Fixtures.Cifar, setting, spec);
            var fake = ModelQuantizer.Apply(Fixtures.Cifar.State, new Sdtv2Layout(Fixtures.Cifar.Config), setting, spec);
            foreach (var (key, w) in packed.Packed) Assert.Equal(fake.StateDict[key].Data, w.Dequantize());
        }
    }

    [Fact]
    public void SimulatedPathIsTheFakeQuantizedModelAndTheIntegerPathAgreesWithIt()
    {
        var setting = QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32");
        var packed = PackedModel.Create(Fixtures.Cifar, setting, QuantizerSpec.Paper);
        var fake = ModelQuantizer.Apply(Fixtures.Cifar.State, new Sdtv2Layout(Fixtures.Cifar.Config), setting, QuantizerSpec.Paper);
        var options = new EvalOptions { BatchSize = 32, Limit = 64, KeepLogits = 64 };
        using var reference = new Sdtv2Model(Fixtures.Cifar.Config, fake.StateDict);
        using var simulated = new Sdtv2Model(packed, simulate: true);
        using var integer = new Sdtv2Model(packed);
        var r = Evaluator.Run(reference, Fixtures.CifarTestSet, options);
        var s = Evaluator.Run(simulated, Fixtures.CifarTestSet, options);
        var i = Evaluator.Run(integer, Fixtures.CifarTestSet, options);
        Assert.Equal(r.Logits, s.Logits); // the stored BN affines are exactly what the state_dict path computes
        int same = r.Predictions.Zip(i.Predictions).Count(p => p.First == p.Second);
        Assert.True(same >= 62, $"integer path agrees with fake quantization on {same} of 64 images");
    }

    /// <summary>
    /// A search candidate with its spike-input convs built from the quantizer's codes (<see cref="ModelQuantizer.Codes"/>, as
    /// the CUDA backend's searches run it) is the packed model's integer path: the codes dequantize to the fake-quantized
    /// tensors, and the logits equal the packed model's bit for bit.
    /// </summary>
    [Fact]
    public void CandidateBuiltFromCodesIsThePackedIntegerPath()
    {
        var setting = QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32");
        var layout = new Sdtv2Layout(Fixtures.Cifar.Config);
        var quantizer = new ModelQuantizer(Fixtures.Cifar.State, layout);
        var quantized = quantizer.Apply(setting, QuantizerSpec.Paper);
        var codes = quantized.Weights.Where(w => w.Bits != 32 && !w.Key.StartsWith("head", StringComparison.Ordinal) && Sdtv2Layout.TakesSpikes(w.Key))
            .ToDictionary(w => w.Key, w => quantizer.Codes(w.Key, w.Bits, QuantizerSpec.Paper));
        Assert.NotEmpty(codes);
        foreach (var (key, w) in codes) Assert.Equal(quantized.StateDict[key].Data, w.Dequantize());
        Assert.Same(codes.First().Value, quantizer.Codes(codes.First().Key, codes.First().Value.Bits, QuantizerSpec.Paper)); // cached

        var options = new EvalOptions { BatchSize = 16, Limit = 16, KeepLogits = 16 };
        using var root = new Sdtv2Model(Fixtures.Cifar.Config, Fixtures.Cifar.State);
        using var candidate = root.WithState(quantized.StateDict, codes);
        using var integer = new Sdtv2Model(PackedModel.Create(Fixtures.Cifar, setting, QuantizerSpec.Paper));
        Assert.Equal(Evaluator.Run(integer, Fixtures.CifarTestSet, options).Logits, Evaluator.Run(candidate, Fixtures.CifarTestSet, options).Logits);
    }

    /// <summary>
    /// The CPU backend runs the LIF inside the integer spike convs that feed one (pwconv1, conv1, fc1), and passes conv1's and
    /// fc1's spikes to conv2 and fc2 as packed words: the logits equal those of the separate conv and LIF ops bit for bit, at
    /// 1 and 2 threads.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void FusedConvLifEqualsTheSeparateOps(int threads)
    {
        var packed = PackedModel.Create(Fixtures.Cifar, QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32"), QuantizerSpec.Paper);
        const int batch = 3, size = 32;
        var rng = new Random(4);
        var images = Enumerable.Range(0, batch * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        using var cpu = new Qsvit.Backends.Cpu.CpuBackend(new ComputeOptions { Threads = threads });
        using var separate = new SeparateConvLif(cpu);
        using var fusedModel = new Sdtv2Model(packed, backend: cpu);
        using var separateModel = new Sdtv2Model(packed, backend: separate);
        var expected = separateModel.Forward(images, batch, size, size);
        Assert.Equal(Sdtv2Config.Stage3Depth + Sdtv2Config.Stage4Depth + 2 * 4, separate.Calls); // fc1 per block, pwconv1 and conv1 per ConvBlock
        Assert.Equal(expected, fusedModel.Forward(images, batch, size, size));

        // With a spike counter (as `qsvit eval` runs) the fused ops count in their epilogues: the same counts and logits.
        using var separateCounter = separateModel.Backend.CreateSpikeCounter(separateModel.LifNames.Count);
        using var fusedCounter = fusedModel.Backend.CreateSpikeCounter(fusedModel.LifNames.Count);
        Assert.Equal(separateModel.Forward(images, batch, size, size, separateCounter), fusedModel.Forward(images, batch, size, size, fusedCounter));
        var (separateCounts, fusedCounts) = (separateCounter.Read(), fusedCounter.Read());
        Assert.Equal(separateCounts.Spikes, fusedCounts.Spikes);
        Assert.Equal(separateCounts.Neurons, fusedCounts.Neurons);
        Assert.All(fusedCounts.Spikes, c => Assert.True(c > 0));
    }

    /// <summary>
    /// Event-driven sums (<see cref="SpikeEvents"/>) forced on for every spike-input layer that can take them, forced off,
    /// and chosen by firing rate: the same logits bit for bit, at 1 and 2 threads, for 8- and 4-bit settings.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void EventDrivenSumsLeaveTheLogitsUnchanged(int threads)
    {
        const int batch = 2, size = 32;
        var rng = new Random(6);
        var images = Enumerable.Range(0, batch * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        foreach (var setting in new[] { "8,4,8,8|8,8,8|4,32|4,32", "4,4,4,4|4,4,4|4,4|4,4" })
        {
            var packed = PackedModel.Create(Fixtures.Cifar, QuantizationSetting.Parse(setting), QuantizerSpec.Paper);
            float[] Logits(SpikeAccumulation accumulation)
            {
                using var model = new Sdtv2Model(packed, backend: new Qsvit.Backends.Cpu.CpuBackend(new ComputeOptions { Threads = threads, SpikeAccumulation = accumulation }));
                return model.Forward(images, batch, size, size);
            }
            var dense = Logits(SpikeAccumulation.Dense);
            Assert.Equal(dense, Logits(SpikeAccumulation.Events));
            Assert.Equal(dense, Logits(SpikeAccumulation.Auto));
        }
    }

    /// <summary>
    /// The CPU backend's RepConv depthwise reads BNAndPadLayer's border as it goes (no padded map; 4×4 planes one register
    /// each): the logits equal those of Pad then Conv bit for bit, for the fp32 model, its simulation and packed settings.
    /// </summary>
    [Fact]
    public void BorderedDepthwiseEqualsPadThenConv()
    {
        const int batch = 2, size = 32;
        var rng = new Random(8);
        var images = Enumerable.Range(0, batch * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var fp32 = Fixtures.Cifar;
        float[] Logits(Func<Qsvit.Backends.IBackend, Sdtv2Model> make, bool separate)
        {
            var cpu = new Qsvit.Backends.Cpu.CpuBackend(new ComputeOptions { Threads = 2 });
            using var backend = separate ? new PadThenConv(cpu) : (Qsvit.Backends.IBackend)cpu;
            using var model = make(backend);
            var logits = model.Forward(images, batch, size, size);
            if (separate) Assert.True(((PadThenConv)backend).Calls > 0);
            return logits;
        }
        Func<Qsvit.Backends.IBackend, Sdtv2Model> full = b => new Sdtv2Model(fp32.Config, fp32.State, backend: b);
        Assert.Equal(Logits(full, true), Logits(full, false));
        foreach (var setting in new[] { "8,4,8,8|8,8,8|4,32|4,32", "4,4,4,4|4,4,4|4,4|4,4" })
        {
            var packed = PackedModel.Create(fp32, QuantizationSetting.Parse(setting), QuantizerSpec.Paper);
            foreach (bool simulate in new[] { false, true })
            {
                Func<Qsvit.Backends.IBackend, Sdtv2Model> make = b => new Sdtv2Model(packed, simulate, b);
                Assert.Equal(Logits(make, true), Logits(make, false));
            }
        }
    }

    /// <summary>
    /// The CPU backend's LIFs hand their spikes to the integer layer that reads them next as its input words
    /// (<see cref="SpikeConv.LifWords"/>), never as floats: the logits and the spike counts equal those of float spikes
    /// interleaved by the layer, bit for bit, at 1 and 2 threads, for 8-, 4- and 16-bit codes (4 and 2 spikes a word) and
    /// the paper's mixed setting.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void SpikesHandedOverAsWordsEqualFloatSpikes(int threads)
    {
        const int batch = 2, size = 32;
        var rng = new Random(9);
        var images = Enumerable.Range(0, batch * 3 * size * size).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        foreach (var setting in new[] { "8,4,8,8|8,8,8|4,32|4,32", "8,8,8,8|8,8,8|8,8|8,8", "4,4,4,4|4,4,4|4,4|4,4", "16,8,16,8|8,16,8|16,8|8,16" })
        {
            var packed = PackedModel.Create(Fixtures.Cifar, QuantizationSetting.Parse(setting), QuantizerSpec.Paper);
            (float[] Logits, long[] Spikes) Run(bool floats)
            {
                var cpu = new Qsvit.Backends.Cpu.CpuBackend(new ComputeOptions { Threads = threads });
                using var backend = floats ? new FloatSpikes(cpu) : (Qsvit.Backends.IBackend)cpu;
                using var model = new Sdtv2Model(packed, backend: backend);
                using var counter = backend.CreateSpikeCounter(model.LifNames.Count);
                var logits = model.Forward(images, batch, size, size, counter);
                Assert.Equal(logits, model.Forward(images, batch, size, size)); // and without a counter
                return (logits, counter.Read().Spikes);
            }
            var (expected, expectedSpikes) = Run(floats: true);
            var (logits, spikes) = Run(floats: false);
            Assert.Equal(expected, logits);
            Assert.Equal(expectedSpikes, spikes);
        }
    }

    /// <summary>Every LIF without its next reader, so the spikes are written as floats (the reference for the handover).</summary>
    private sealed class FloatSpikes(Qsvit.Backends.IBackend inner) : Qsvit.Backends.ForwardingBackend(inner)
    {
        public override void Lif(Qsvit.Backends.DeviceBuffer input, Qsvit.Backends.DeviceBuffer spikes, long length, int timesteps, float threshold,
            Qsvit.Backends.LifRecorder? recorder, int layer, Qsvit.Backends.SpikeReader? next = null) =>
            Inner.Lif(input, spikes, length, timesteps, threshold, recorder, layer);

        public override void AddLif(Qsvit.Backends.DeviceBuffer x, Qsvit.Backends.DeviceBuffer y, long length, Qsvit.Backends.DeviceBuffer spikes,
            int timesteps, float threshold, Qsvit.Backends.LifRecorder? recorder, int layer, Qsvit.Backends.SpikeReader? next = null) =>
            Inner.AddLif(x, y, length, spikes, timesteps, threshold, recorder, layer);
    }

    /// <summary>ConvPadded as Pad then Conv on the inner backend (the reference for the bordered one).</summary>
    private sealed class PadThenConv(Qsvit.Backends.IBackend inner) : Qsvit.Backends.ForwardingBackend(inner)
    {
        public int Calls;

        public override void ConvPadded(Qsvit.Backends.ConvLayer layer, Qsvit.Backends.DeviceBuffer input, int frames, int height, int width, int pad,
            Qsvit.Backends.DeviceBuffer padValues, Qsvit.Backends.DeviceBuffer output)
        {
            Calls++;
            Qsvit.Backends.IBackend.RunConvPadded(this, layer, input, frames, height, width, pad, padValues, output);
        }

        // RepConv's three ops on this backend, so that its ConvPadded is the one above.
        public override void RepConv(Qsvit.Backends.ConvLayer first, Qsvit.Backends.DeviceBuffer padValues, Qsvit.Backends.ConvLayer depthwise,
            Qsvit.Backends.ConvLayer pointwise, Qsvit.Backends.DeviceBuffer input, int frames, int height, int width, Qsvit.Backends.DeviceBuffer output) =>
            Qsvit.Backends.IBackend.RunRepConv(this, first, padValues, depthwise, pointwise, input, frames, height, width, output);

        public override void RepConvs(ReadOnlySpan<Qsvit.Backends.RepConvLayers> convs, Qsvit.Backends.DeviceBuffer input, int frames, int height, int width,
            ReadOnlySpan<Qsvit.Backends.DeviceBuffer> outputs) =>
            Qsvit.Backends.IBackend.RunRepConvs(this, convs, input, frames, height, width, outputs);
    }

    /// <summary>ConvLif as two ops on the inner backend (the reference for the fused one).</summary>
    private sealed class SeparateConvLif(Qsvit.Backends.IBackend inner) : Qsvit.Backends.ForwardingBackend(inner)
    {
        public int Calls;

        public override void ConvLif(Qsvit.Backends.ConvLayer layer, Qsvit.Backends.DeviceBuffer input, int frames, int height, int width,
            Qsvit.Backends.DeviceBuffer preActivation, Qsvit.Backends.DeviceBuffer spikes, int timesteps, float threshold, int lifLayer,
            Qsvit.Backends.LifRecorder? recorder)
        {
            Calls++;
            Conv(layer, input, frames, height, width, preActivation);
            var g = layer.Geometry;
            Lif(preActivation, spikes, (long)frames * g.OutChannels * g.OutH(height) * g.OutW(width), timesteps, threshold, recorder, lifLayer);
        }

        public override void ConvLifConv(Qsvit.Backends.ConvLayer first, Qsvit.Backends.DeviceBuffer input, int frames, int height, int width,
            Qsvit.Backends.DeviceBuffer preActivation, Qsvit.Backends.DeviceBuffer spikes, int timesteps, float threshold, int lifLayer,
            Qsvit.Backends.LifRecorder? recorder, Qsvit.Backends.ConvLayer second, Qsvit.Backends.DeviceBuffer output)
        {
            ConvLif(first, input, frames, height, width, preActivation, spikes, timesteps, threshold, lifLayer, recorder);
            Conv(second, spikes, frames, height, width, output);
        }

        public override void Dispose() { }
    }

    // ---- bad files -------------------------------------------------------------------------------------------------

    private static string BadFile(Func<List<RawTensor>, Dictionary<string, string>, bool> edit)
    {
        var packed = PackedModel.Create(Fixtures.Cifar, QuantizationSetting.Parse("8,4,8,8|8,8,8|4,32|4,32"), QuantizerSpec.Parse("asymmetric-channel"));
        string path = TempFile();
        packed.Save(path);
        var (tensors, metadata) = SafeTensors.ReadRaw(path);
        var list = tensors.ToList();
        var meta = metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.True(edit(list, meta));
        SafeTensors.WriteRaw(path, list, meta);
        return path;
    }

    private static void Refused(string path, params string[] messageParts)
    {
        try
        {
            var e = Assert.Throws<QsvitException>(() => PackedModel.Load(path));
            foreach (var part in messageParts) Assert.Contains(part, e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private const string Key = "ConvBlock1_1.0.conv1.weight";

    [Fact]
    public void CodeBytesThatDoNotMatchShapeTimesBitsAreRefused() =>
        Refused(BadFile((t, _) =>
        {
            int i = t.FindIndex(x => x.Name == Key + ".codes");
            t[i] = t[i] with { Shape = [t[i].Bytes!.Length - 1], Bytes = t[i].Bytes![..^1] };
            return true;
        }), Key, "code bytes", "needs");

    [Fact]
    public void AWrongNumberOfScalesIsRefused() =>
        Refused(BadFile((t, _) =>
        {
            int i = t.FindIndex(x => x.Name == Key + ".scales");
            t[i] = t[i] with { Shape = [3], Floats = [1f, 1f, 1f] };
            return true;
        }), Key + ".scales", "3 scales");

    [Fact]
    public void AWrongNumberOfZeroPointsIsRefused() =>
        Refused(BadFile((t, _) =>
        {
            int i = t.FindIndex(x => x.Name == Key + ".zero_points");
            t[i] = t[i] with { Shape = [1], Bytes = [0] };
            return true;
        }), Key + ".zero_points");

    [Fact]
    public void AnUnknownPackingIsRefused() =>
        Refused(BadFile((_, m) => { m[PackedModel.PackingKey] = "msb0"; return true; }), "unknown packing 'msb0'");

    [Fact]
    public void MetadataBitsThatDisagreeWithTheSettingAreRefused() =>
        Refused(BadFile((_, m) => { m[PackedModel.SettingKey] = QuantizationSetting.Parse("8,8,8,8|8,8,8|4,32|4,32").ToJson(); return true; }),
            "bits", "the setting says");

    [Fact]
    public void MetadataShapeThatDisagreesWithTheTensorsIsRefused() =>
        Refused(BadFile((_, m) => { m[PackedModel.WeightsKey] = m[PackedModel.WeightsKey].Replace("[64,16,3,3]", "[64,16,1,1]"); return true; }),
            Key, "shape");

    [Fact]
    public void AConfigThatDisagreesWithTheTensorsIsRefused() =>
        Refused(BadFile((_, m) => { m[ModelLoader.ConfigMetadataKey] = m[ModelLoader.ConfigMetadataKey].Replace("192", "256"); return true; }));

    [Fact]
    public void AMissingFormatIsRefused() =>
        Refused(BadFile((_, m) => m.Remove(PackedModel.FormatKey)), PackedModel.FormatKey);
}
