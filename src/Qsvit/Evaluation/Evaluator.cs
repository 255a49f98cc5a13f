using System.Diagnostics;
using Qsvit.IO.Datasets;
using Qsvit.Models;

namespace Qsvit.Evaluation;

public sealed record EvalOptions
{
    public int BatchSize { get; init; } = 32;
    /// <summary>Evaluate only the first N images (after <see cref="Start"/>).</summary>
    public int? Limit { get; init; }
    public int Start { get; init; }
    /// <summary>Keep the logits of this many leading images (for comparisons with reference outputs).</summary>
    public int KeepLogits { get; init; }
    /// <summary>Receives every image's prediction and logits as it is evaluated (e.g. a <see cref="PredictionWriter"/>).</summary>
    public PredictionCallback? OnPrediction { get; init; }
    /// <summary>Host threads for decoding and normalizing images (the model's backend has its own).</summary>
    public Tensors.ComputeOptions Host { get; init; } = Tensors.ComputeOptions.Default;
    /// <summary>
    /// Computes each batch's logits in place of a plain forward pass (e.g. continuing from cached residual streams); null:
    /// <see cref="Sdtv2Model.Forward(ReadOnlySpan{float}, int, int, int, Backends.LifRecorder?)"/>. Firing rates then count
    /// only what it records into the counter it is given.
    /// </summary>
    public BatchForward? Forward { get; init; }
}

/// <summary>A batch's logits [count, classes]: images [count, C, H, W] are the dataset's images start … start + count − 1.</summary>
public delegate float[] BatchForward(Sdtv2Model model, ReadOnlySpan<float> images, int start, int count, int height, int width,
    Backends.LifRecorder? rates);

public readonly record struct EvalProgress(int Done, int Total, long Correct, TimeSpan Elapsed);

/// <summary>One LIF layer's firing rate over an evaluation.</summary>
public sealed record LifRate(string Name, string Block, double Rate, long Spikes, long Neurons);

/// <summary>The outcome of running a model over a dataset.</summary>
public sealed record EvalResult(
    int Count,
    long Top1Correct,
    long Top5Correct,
    bool[] Correct,
    int[] Predictions,
    double Seconds,
    IReadOnlyList<LifRate> FiringRates,
    float[] Logits)
{
    public Interval Top1 => Statistics.Accuracy(Top1Correct, Count);
    public Interval Top5 => Statistics.Accuracy(Top5Correct, Count);
    public double ImagesPerSecond => Seconds > 0 ? Count / Seconds : double.NaN;

    /// <summary>Firing rate per QSViT block: spikes over neurons of all its LIF layers.</summary>
    public IReadOnlyList<(string Block, double Rate)> RatesByBlock() =>
        FiringRates.GroupBy(r => r.Block)
            .Select(g => (g.Key, g.Sum(r => r.Neurons) == 0 ? 0 : (double)g.Sum(r => r.Spikes) / g.Sum(r => r.Neurons)))
            .ToArray();
}

/// <summary>Runs a model over a dataset in streamed batches: top-1/top-5, per-image correctness, firing rates.</summary>
public static class Evaluator
{
    public static EvalResult Run(Sdtv2Model model, IImageDataset data, EvalOptions? options = null,
        IProgress<EvalProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= new EvalOptions();
        var c = model.Config;
        if (data.Channels != c.InChannels)
            throw new QsvitException($"{data.Name} gives {data.Channels}-channel images but the model takes {c.InChannels} channels");
        if (data.ClassNames.Count > c.NumClasses)
            throw new QsvitException($"{data.Name} has {data.ClassNames.Count} classes but the model predicts {c.NumClasses}");
        if (options.BatchSize < 1) throw new QsvitException($"batch size must be at least 1, got {options.BatchSize}");

        using var reader = new BatchReader(data, options.BatchSize, options.Limit, options.Start, threads: options.Host.Threads);
        int total = reader.Count, classes = c.NumClasses;
        var correct = new bool[total];
        var predictions = new int[total];
        var keep = Math.Min(options.KeepLogits, total);
        var logitsKept = new float[keep * classes];
        // Spikes are counted where the model runs; only the per-layer totals come back, once.
        using var rates = model.Backend.CreateSpikeCounter(model.LifNames.Count);
        long top1 = 0, top5 = 0;
        int done = 0;
        var clock = Stopwatch.StartNew();
        void Accept(int start, int[] labels, float[] logits)
        {
            for (int i = 0; i < labels.Length; i++)
            {
                int index = start - reader.Start + i;
                var row = logits.AsSpan(i * classes, classes);
                int label = labels[i];
                int pred = ArgMax(row);
                predictions[index] = pred;
                correct[index] = pred == label;
                if (correct[index]) top1++;
                if (InTop5(row, label)) top5++;
                if (index < keep) row.CopyTo(logitsKept.AsSpan(index * classes));
                options.OnPrediction?.Invoke(start + i, label, pred, row);
            }
            done += labels.Length;
            progress?.Report(new EvalProgress(done, total, top1, clock.Elapsed));
        }

        if (options.Forward is { } forward)
        {
            // A forward of the caller's (prefix reuse) runs batch by batch on the model's first device.
            foreach (var batch in reader)
            {
                cancel.ThrowIfCancellationRequested();
                Accept(batch.Start, batch.Labels[..batch.Count],
                    forward(model, batch.ImagesSpan, batch.Start, batch.Count, data.Height, data.Width, rates));
            }
        }
        else
        {
            // Batches keep their boundaries on any number of devices; results come back in batch order.
            var pending = new Queue<(int Start, int[] Labels)>();
            IEnumerable<BatchInput> Batches()
            {
                foreach (var batch in reader)
                {
                    cancel.ThrowIfCancellationRequested();
                    pending.Enqueue((batch.Start, batch.Labels[..batch.Count]));
                    yield return new BatchInput(batch.Images, batch.Count, data.Height, data.Width);
                }
            }
            model.ForwardBatches(Batches(), rates, (_, logits) =>
            {
                var (start, labels) = pending.Dequeue();
                Accept(start, labels, logits);
            });
        }
        var counts = rates.Read();
        var lifRates = done == 0 ? [] : model.LifNames
            .Select((name, i) => new LifRate(name, Sdtv2Layout.BlockOfModule(name), counts.Rate(i), counts.Spikes[i], counts.Neurons[i]))
            .ToArray();
        return new EvalResult(total, top1, top5, correct, predictions, clock.Elapsed.TotalSeconds, lifRates, logitsKept);
    }

    /// <summary>First index of the maximum, like torch.argmax.</summary>
    public static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
        return best;
    }

    private static bool InTop5(ReadOnlySpan<float> row, int label)
    {
        int above = 0;
        float v = row[label];
        for (int j = 0; j < row.Length; j++)
            if (row[j] > v || (row[j] == v && j < label)) above++;
        return above < 5;
    }
}
