using Qsvit.Backends;
using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;
using Qsvit.Tests.Search;

namespace Qsvit.Tests.Quantization;

/// <summary>Corrections after quantization (issue 11) against naive references, on the tiny model and a few images.</summary>
public sealed class QuantizationCorrectorTests
{
    private const int Images = 3;
    private static readonly QuantizationSetting Setting = QuantizationSetting.Uniform(3);

    private static CalibrationImages Calibration(int seed = 5)
    {
        var rng = new Random(seed);
        var data = Enumerable.Range(0, Images * 3 * 32 * 32).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        return new CalibrationImages(data, Images, 3, 32, 32);
    }

    private static (Sdtv2Model Fp32, QuantizedModel Quantized) Setup()
    {
        var fp32 = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));
        return (fp32, ModelQuantizer.Apply(fp32.State, fp32.Layout, Setting, QuantizerSpec.Paper));
    }

    /// <summary>Every conv's input (host copies), recorded in pass order.</summary>
    private sealed class Recorder : IConvProbe
    {
        public readonly List<(ConvCall Call, float[] Input)> Calls = new();
        public void OnConv(ConvCall call, IBackend backend, DeviceBuffer input, DeviceBuffer output)
        {
            var x = new float[(long)call.Frames * call.Geometry.InChannels * call.Height * call.Width];
            backend.Download(input, 0, x);
            Calls.Add((call, x));
        }
    }

    private static List<(ConvCall Call, float[] Input)> Record(Sdtv2Model model, CalibrationImages c)
    {
        var recorder = new Recorder();
        model.Probe(c.Images, c.Count, c.Height, c.Width, recorder);
        return recorder.Calls;
    }

    /// <summary>Naive conv (+ bias) of frames [F, Cin, H, W]: [F, Cout, OH, OW].</summary>
    private static double[] Conv(ConvCall call, float[] x, float[] w, float[]? bias)
    {
        var g = call.Geometry;
        int oh = call.OutHeight, ow = call.OutWidth, cin = g.InChannels / g.Groups, cout = g.OutChannels / g.Groups;
        var y = new double[call.Frames * g.OutChannels * oh * ow];
        for (int f = 0; f < call.Frames; f++)
        for (int oc = 0; oc < g.OutChannels; oc++)
        for (int py = 0; py < oh; py++)
        for (int px = 0; px < ow; px++)
        {
            double s = bias is null ? 0 : bias[oc];
            for (int ic = 0; ic < cin; ic++)
            for (int ky = 0; ky < g.KernelH; ky++)
            for (int kx = 0; kx < g.KernelW; kx++)
            {
                int iy = py * g.StrideH - g.PadH + ky, ix = px * g.StrideW - g.PadW + kx;
                if (iy < 0 || iy >= call.Height || ix < 0 || ix >= call.Width) continue;
                int c = oc / cout * cin + ic;
                s += w[((oc * cin + ic) * g.KernelH + ky) * g.KernelW + kx] * x[((f * g.InChannels + c) * call.Height + iy) * call.Width + ix];
            }
            y[((f * g.OutChannels + oc) * oh + py) * ow + px] = s;
        }
        return y;
    }

    private static double[] ChannelMeans(double[] y, int channels, int frames)
    {
        int plane = y.Length / frames / channels;
        var m = new double[channels];
        for (int f = 0; f < frames; f++)
        for (int c = 0; c < channels; c++)
        for (int i = 0; i < plane; i++) m[c] += y[(f * channels + c) * plane + i];
        return m.Select(v => v / ((double)frames * plane)).ToArray();
    }

    [Fact]
    public void BiasCorrection_OwnErrors_AreTheNaiveMeanOutputErrorsOnTheFp32Inputs()
    {
        var (fp32, q) = Setup();
        using var _ = fp32;
        var c = Calibration();
        var corrector = new QuantizationCorrector(fp32, c, new CorrectionOptions { Bias = true }, batchSize: 2);
        var errors = corrector.OutputErrors(q);
        var calls = Record(fp32, c);
        Assert.Equal(calls.Select(x => x.Call.Keys.Weight), errors.Select(e => e.Call.Keys.Weight));
        foreach (var ((call, x), (_, error)) in calls.Zip(errors))
        {
            var diff = Conv(call, x, q.StateDict[call.Keys.Weight].Data, null).Zip(Conv(call, x, fp32.State[call.Keys.Weight].Data, null), (a, b) => a - b).ToArray();
            var naive = ChannelMeans(diff, call.Geometry.OutChannels, call.Frames);
            for (int oc = 0; oc < naive.Length; oc++) Assert.Equal(naive[oc], error[oc], 1e-6);
        }
        Assert.Equal(1, corrector.Passes);
    }

    [Fact]
    public void BiasCorrection_LeavesNoMeanErrorAtTheCorrectedOutputs_DepthwiseErrorsIncluded()
    {
        var (fp32, q) = Setup();
        using var _ = fp32;
        var c = Calibration();
        var corrected = new QuantizationCorrector(fp32, c, new CorrectionOptions { Bias = true }).Correct(q).StateDict;
        var calls = Record(fp32, c).ToDictionary(x => x.Call.Keys.Weight);
        // A conv with a bias (fc1): its corrected output has the fp32 mean on the fp32 inputs.
        var (fc1, x1) = calls["block3.0.mlp.fc1_conv.weight"];
        var before = ChannelMeans(Conv(fc1, x1, fp32.State[fc1.Keys.Weight].Data, fp32.State[fc1.Keys.Bias!].Data), fc1.Geometry.OutChannels, fc1.Frames);
        var after = ChannelMeans(Conv(fc1, x1, q.StateDict[fc1.Keys.Weight].Data, corrected[fc1.Keys.Bias!].Data), fc1.Geometry.OutChannels, fc1.Frames);
        var uncorrected = ChannelMeans(Conv(fc1, x1, q.StateDict[fc1.Keys.Weight].Data, q.StateDict[fc1.Keys.Bias!].Data), fc1.Geometry.OutChannels, fc1.Frames);
        Assert.True(uncorrected.Zip(before).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "3-bit weights leave a mean error to correct");
        for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], after[i], 1e-5);

        // SepConv: dwconv (no bias, no BN) then pwconv2 + bn2. The chain's mean error, from the spikes into the dwconv,
        // is what bn2's running_mean took.
        var (dw, s) = calls["ConvBlock1_1.0.Conv.dwconv.weight"];
        var (pw, _) = calls["ConvBlock1_1.0.Conv.pwconv2.weight"];
        double[] Chain(StateDict state)
        {
            var d = Conv(dw, s, state[dw.Keys.Weight].Data, null).Select(v => (float)v).ToArray();
            return ChannelMeans(Conv(pw, d, state[pw.Keys.Weight].Data, null), pw.Geometry.OutChannels, pw.Frames);
        }
        var chainError = Chain(q.StateDict).Zip(Chain(fp32.State), (a, b) => a - b).ToArray();
        string bn2 = "ConvBlock1_1.0.Conv.bn2.running_mean";
        for (int i = 0; i < chainError.Length; i++)
            Assert.Equal(chainError[i], corrected[bn2].Data[i] - fp32.State[bn2].Data[i], 1e-4);
        // Conv weights never change, and unquantized entries stay shared.
        foreach (var w in fp32.Layout.Weights) Assert.Same(q.StateDict[w.Key], corrected[w.Key]);
    }

    [Fact]
    public void BatchNormReestimation_EqualsTheNaiveLayerByLayerStatistics()
    {
        var (fp32, q) = Setup();
        using var _ = fp32;
        var c = Calibration();
        var corrected = new QuantizationCorrector(fp32, c, new CorrectionOptions { BatchNorm = true }).Correct(q).StateDict;

        // Naive: for each conv with BNs in network order, run the network as corrected so far, compute the conv's output
        // from its input with a naive conv, and take mean and unbiased variance over N×T×H×W.
        var state = q.StateDict.Copy();
        var order = Record(fp32, c).Select(x => x.Call).Where(x => x.Keys.BatchNorms.Count > 0).Select(x => x.Keys.Weight).ToArray();
        foreach (var key in order)
        {
            using var model = fp32.WithState(state);
            var (call, x) = Record(model, c).Single(r => r.Call.Keys.Weight == key);
            var y = Conv(call, x, state[key].Data, call.Keys.Bias is { } b ? state[b].Data : null);
            int channels = call.Geometry.OutChannels, plane = y.Length / call.Frames / channels;
            foreach (var bn in call.Keys.BatchNorms)
            {
                double n = (double)call.Frames * call.Repeat * plane;
                var mean = ChannelMeans(y, channels, call.Frames);
                var variance = new double[channels];
                for (int f = 0; f < call.Frames; f++)
                for (int ch = 0; ch < channels; ch++)
                for (int i = 0; i < plane; i++) variance[ch] += Math.Pow(y[(f * channels + ch) * plane + i] - mean[ch], 2) * call.Repeat;
                state.Set(bn + ".running_mean", new Tensor(mean.Select(v => (float)v).ToArray(), channels));
                state.Set(bn + ".running_var", new Tensor(variance.Select(v => (float)(v / (n - 1))).ToArray(), channels));
                var (scale, shift) = BatchNorm.Fold(state[bn + ".weight"].Data, state[bn + ".bias"].Data, state[bn + ".running_mean"].Data, state[bn + ".running_var"].Data);
                for (int f = 0; f < call.Frames; f++)
                for (int ch = 0; ch < channels; ch++)
                for (int i = 0; i < plane; i++) y[(f * channels + ch) * plane + i] = MathF.FusedMultiplyAdd((float)y[(f * channels + ch) * plane + i], scale[ch], shift[ch]);
            }
        }
        int bns = 0;
        foreach (var p in fp32.Layout.Parameters.Where(p => p.Role is ParameterRole.RunningMean or ParameterRole.RunningVar))
        {
            bns++;
            var expected = state[p.Key].Data;
            var actual = corrected[p.Key].Data;
            Assert.NotSame(q.StateDict[p.Key], corrected[p.Key]);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-3 * (1 + Math.Abs(expected[i])), $"{p.Key}[{i}]: naive {expected[i]}, corrected {actual[i]}");
        }
        Assert.True(bns > 50);
    }

    [Fact]
    public void Corrections_AreDeterministic_AndNoneIsTheQuantizedModelItself()
    {
        var (fp32, q) = Setup();
        using var _ = fp32;
        var options = new CorrectionOptions { Bias = true, BatchNorm = true };
        var a = new QuantizationCorrector(fp32, Calibration(), options).Correct(q).StateDict;
        var b = new QuantizationCorrector(fp32, Calibration(), options).Correct(q).StateDict;
        foreach (var key in a.Keys) Assert.Equal(a[key].Data, b[key].Data);
        var none = new QuantizationCorrector(fp32, Calibration(), CorrectionOptions.None);
        Assert.Same(q, none.Correct(q));
        Assert.Equal(0, none.Passes);
    }

    [Fact]
    public void Settings_sharing_a_prefix_share_its_corrected_arrays_and_get_the_same_values()
    {
        var fp32 = new Sdtv2Model(Aq4Fixtures.Tiny, Aq4Fixtures.LivelyWeights(1));
        using var _ = fp32;
        var c = Calibration();
        using var corrector = new QuantizationCorrector(fp32, c, new CorrectionOptions { BatchNorm = true });
        var a = QuantizationSetting.Parse("3,3,3,3|3,3,3|3,3|3,3");
        var b = QuantizationSetting.Parse("3,3,3,3|3,3,3|3,3|3,4");
        var qa = corrector.Correct(ModelQuantizer.Apply(fp32.State, fp32.Layout, a, QuantizerSpec.Paper)).StateDict;
        var qb = corrector.Correct(ModelQuantizer.Apply(fp32.State, fp32.Layout, b, QuantizerSpec.Paper)).StateDict;
        using var alone = new QuantizationCorrector(fp32, c, new CorrectionOptions { BatchNorm = true });
        var fresh = alone.Correct(ModelQuantizer.Apply(fp32.State, fp32.Layout, b, QuantizerSpec.Paper)).StateDict;
        int shared = 0, own = 0;
        foreach (var p in fp32.Layout.Parameters.Where(p => p.Role is ParameterRole.RunningMean or ParameterRole.RunningVar))
        {
            Assert.Equal(fresh[p.Key].Data, qb[p.Key].Data);   // sharing never changes a value
            bool lastUnit = p.Key.StartsWith("block4.", StringComparison.Ordinal);   // TRAN_S4, the unit that differs
            if (ReferenceEquals(qa[p.Key].Data, qb[p.Key].Data)) { Assert.False(lastUnit, p.Key); shared++; }
            else own++;
        }
        Assert.True(shared > 40 && own > 0, $"{shared} shared, {own} own");
    }

    [Theory]
    [InlineData("none", false, false)]
    [InlineData("bias", true, false)]
    [InlineData(" BN ", false, true)]
    [InlineData("bias,bn", true, true)]
    [InlineData("bn, bias", true, true)]
    public void Parse_AcceptsTheCorrections(string text, bool bias, bool bn)
    {
        var o = CorrectionOptions.Parse(text);
        Assert.Equal((bias, bn), (o.Bias, o.BatchNorm));
        Assert.Equal(o, CorrectionOptions.Parse(o.ToString()));
    }

    [Theory]
    [InlineData("")]
    [InlineData("bias,none")]
    [InlineData("bias,bias")]
    [InlineData("adaround")]
    public void Parse_RejectsOthersClearly(string text)
    {
        var e = Assert.Throws<QsvitException>(() => CorrectionOptions.Parse(text));
        Assert.Contains("none, bias, bn, bias,bn", e.Message);
        Assert.Throws<QsvitException>(() => CorrectionOptions.Parse("bias", calibrationImages: 0));
    }
}
