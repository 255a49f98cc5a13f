using Microsoft.ML.OnnxRuntime;
using Qsvit.Evaluation;
using Qsvit.IO.Datasets;
using Qsvit.IO.Onnx;
using Qsvit.Models;
using Qsvit.Quantization;
using Xunit.Abstractions;

namespace Qsvit.Tests.Onnx;

/// <summary>
/// Exported graphs run in ONNX Runtime (CPU, 2 threads) against qsvit's own logits. ONNX Runtime sums convolutions in
/// another order than qsvit (which follows PyTorch's CPU order), so a membrane potential within an ulp of its threshold can
/// flip a spike and move that image's logits by a few hundredths: the bound is identical argmax on at least 99 % of images.
/// </summary>
public class OnnxExportTests(ITestOutputHelper output)
{
    private const string PaperSetting = "8,4,8,8|8,8,8|4,32|4,32";
    private const int Images = 256;

    private static (float[] Images, int[] Labels) CifarImages(int count)
    {
        var data = Fixtures.CifarTestSet;
        using var reader = new BatchReader(data, count, count);
        var batch = reader.Single();
        return (batch.ImagesSpan.ToArray(), batch.Labels.ToArray());
    }

    internal static float[] RunOrt(string path, float[] images, int batch, Sdtv2Config c, int chunk = 64)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1, GraphOptimizationLevel = Environment.GetEnvironmentVariable("QSVIT_ORT_OPT") == "0" ? GraphOptimizationLevel.ORT_DISABLE_ALL : GraphOptimizationLevel.ORT_ENABLE_ALL };
        using var session = new InferenceSession(path, options);
        int per = c.InChannels * c.ImageHeight * c.ImageWidth;
        var logits = new float[batch * c.NumClasses];
        for (int start = 0; start < batch; start += chunk)
        {
            int n = Math.Min(chunk, batch - start);
            var slice = images.AsSpan(start * per, n * per).ToArray();
            using var input = OrtValue.CreateTensorValueFromMemory(slice, [n, c.InChannels, c.ImageHeight, c.ImageWidth]);
            using var run = new RunOptions();
            using var outputs = session.Run(run, [Sdtv2OnnxExporter.InputName], [input], [Sdtv2OnnxExporter.OutputName]);
            outputs[0].GetTensorDataAsSpan<float>().CopyTo(logits.AsSpan(start * c.NumClasses));
        }
        return logits;
    }

    private (double MaxDelta, int SameArgmax) Compare(string label, float[] expected, float[] actual, int batch, int classes)
    {
        double max = 0;
        int same = 0, moved = 0;
        for (int i = 0; i < batch; i++)
        {
            var e = expected.AsSpan(i * classes, classes);
            var a = actual.AsSpan(i * classes, classes);
            double imageMax = 0;
            for (int j = 0; j < classes; j++) imageMax = Math.Max(imageMax, Math.Abs(e[j] - a[j]));
            max = Math.Max(max, imageMax);
            if (imageMax > 1e-3) moved++;
            if (Evaluator.ArgMax(e) == Evaluator.ArgMax(a)) same++;
        }
        output.WriteLine($"{label}: max |Δlogit| = {max:G4}, identical argmax on {same}/{batch} ({100.0 * same / batch:F2} %), " +
                         $"{moved} images with a logit moved by more than 1e-3");
        return (max, same);
    }

    private static string TempPath() => Path.Combine(Path.GetTempPath(), $"qsvit-{Guid.NewGuid():N}.onnx");

    [Theory]
    [InlineData(null, LifExport.Unrolled)]
    [InlineData(PaperSetting, LifExport.Unrolled)]
    public void BundledModelMatchesQsvitInOnnxRuntime(string? setting, LifExport lif)
    {
        var loaded = Fixtures.Cifar;
        var c = loaded.Config;
        var (images, _) = CifarImages(Images);
        var state = loaded.State;
        var options = new OnnxExportOptions { Lif = lif };
        if (setting is not null)
        {
            var s = QuantizationSetting.Parse(setting);
            options = options with { Setting = s, Quantizer = QuantizerSpec.Paper };
            state = ModelQuantizer.Apply(state, new Sdtv2Layout(c), s, QuantizerSpec.Paper).StateDict;
        }
        var expected = new Sdtv2Model(c, state).Forward(images, Images, c.ImageHeight, c.ImageWidth);
        string path = TempPath();
        try
        {
            Sdtv2OnnxExporter.Export(loaded, path, options);
            var actual = RunOrt(path, images, Images, c);
            var (_, same) = Compare($"bundled {setting ?? "fp32"} ({lif})", expected, actual, Images, c.NumClasses);
            Assert.True(same >= 0.99 * Images, $"argmax agrees on {same}/{Images}");
        }
        finally { File.Delete(path); }
    }
}
