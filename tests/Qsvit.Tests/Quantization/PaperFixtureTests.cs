using Qsvit.Evaluation;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Tests.Quantization;

/// <summary>The paper's Eq. 1-3 at 8 bits on every block (not the head) against the official PyTorch code's result.</summary>
public class PaperFixtureTests
{
    [Fact]
    [Trait("Category", "Slow")]   // the whole 10,000-image test set
    public void All8PaperMatchesTheReferenceAccuracyAndLogits()
    {
        var loaded = Fixtures.Cifar;
        var q = ModelQuantizer.Apply(loaded.State, new Sdtv2Layout(loaded.Config), QuantizationSetting.Uniform(8), QuantizerSpec.Paper);
        Assert.All(q.Weights, w => Assert.Equal(w.Block == "HEAD" ? 32 : 8, w.Bits));
        var model = new Sdtv2Model(loaded.Config, q.StateDict);
        var result = Evaluator.Run(model, Fixtures.CifarTestSet, new EvalOptions { BatchSize = 64, KeepLogits = 256 });
        double expected = Fixtures.CifarExpected.GetProperty("all8_paper_test_acc").GetDouble();
        Assert.InRange(result.Top1.Value, expected - 0.15, expected + 0.15);

        var reference = Fixtures.Matrix(Fixtures.CifarExpected.GetProperty("all8_paper_test_logits_first256"));
        var diffs = new List<double>();
        int same = 0;
        for (int i = 0; i < 256; i++)
        {
            var row = result.Logits.AsSpan(i * 10, 10);
            for (int j = 0; j < 10; j++) diffs.Add(Math.Abs(row[j] - reference[i][j]));
            if (Evaluator.ArgMax(row) == Array.IndexOf(reference[i], reference[i].Max())) same++;
        }
        diffs.Sort();
        Assert.True(same >= 254, $"argmax agrees on {same}/256");
        Assert.True(diffs[128] < 1e-3, $"median |Δlogit| = {diffs[128]}");
    }
}
