using System.Text.Json;
using Qsvit.Evaluation;

namespace Qsvit.Tests.Evaluation;

public class PredictionWriterTests
{
    /// <summary>`eval --predictions`: one JSON line per image, in dataset order, logits bit-identical to the evaluator's.</summary>
    [Fact]
    public void RecordsEveryImageWithExactLogits()
    {
        string path = Path.Combine(Path.GetTempPath(), $"qsvit-{Guid.NewGuid():N}.jsonl");
        try
        {
            EvalResult result;
            using (var writer = new PredictionWriter(path))
                result = Evaluator.Run(Fixtures.Cifar.CreateModel(), Fixtures.CifarTestSet,
                    new EvalOptions { BatchSize = 3, Start = 5, Limit = 7, KeepLogits = 7, OnPrediction = writer.Write });
            var lines = File.ReadAllLines(path);
            Assert.Equal(7, lines.Length);
            for (int i = 0; i < lines.Length; i++)
            {
                var row = JsonDocument.Parse(lines[i]).RootElement;
                Assert.Equal(5 + i, row.GetProperty("index").GetInt32());
                Assert.Equal(result.Predictions[i], row.GetProperty("predicted").GetInt32());
                Assert.Equal(result.Correct[i], row.GetProperty("label").GetInt32() == result.Predictions[i]);
                var logits = row.GetProperty("logits").EnumerateArray().Select(x => x.GetSingle()).ToArray();
                Assert.Equal(result.Logits.AsSpan(i * 10, 10).ToArray(), logits);
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void MissingFolderIsAClearError()
    {
        var e = Assert.Throws<QsvitException>(() => new PredictionWriter(Path.Combine(Path.GetTempPath(), $"qsvit-missing-{Guid.NewGuid():N}", "p.jsonl")));
        Assert.Contains("does not exist", e.Message);
    }
}
