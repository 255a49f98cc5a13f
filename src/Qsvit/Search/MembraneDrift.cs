using Qsvit.Backends;
using Qsvit.Models;

namespace Qsvit.Search;

/// <summary>A candidate's drift from the fp32 model on the calibration images (the AQ4SViT proxy).</summary>
/// <param name="Drift">Mean over LIF layers of ‖H_q − H_fp‖₂ / ‖H_fp‖₂ (pre-spike membrane potentials, all timesteps).</param>
/// <param name="SpikeMismatch">Fraction of all neurons×timesteps whose spike differs from fp32.</param>
public sealed record DriftResult(double Drift, double SpikeMismatch, IReadOnlyList<double> PerLayer, double Seconds);

/// <summary>
/// Captures the fp32 model's membrane potentials once on a calibration batch, then measures any candidate against them
/// in a single forward pass (no second fp32 run). Both live on the model's backend (<see cref="MembraneReference"/>,
/// <see cref="DriftMeter"/>): the sums are reduced where the data is, and only per-layer totals reach the host. The
/// reference costs 4 bytes per neuron×timestep×image for H plus one bit for the spike (e.g. ~0.5 GB for 64 CIFAR images
/// on the w32-192 T=4 model). Candidates run on a backend that can read the reference: the fp32 model's (any CPU backend
/// for a CPU reference); another backend refuses the recorder.
/// </summary>
public sealed class MembraneDrift : IDisposable
{
    private readonly MembraneReference _reference;
    private readonly DriftMeter _meter;
    private readonly float[] _images;
    private readonly int _count, _height, _width, _batch;

    public int Images => _count;

    /// <param name="images">Normalized calibration images [count, C, H, W].</param>
    public MembraneDrift(Sdtv2Model fp32, float[] images, int count, int height, int width, int batch = 32)
    {
        _images = images;
        _count = count;
        _height = height;
        _width = width;
        _batch = Math.Max(1, batch);
        var backend = fp32.Backend;
        _reference = backend.CreateMembraneReference(fp32.LifNames.Count);
        ForEachChunk(fp32, _reference);
        _reference.Seal();
        _meter = backend.CreateDriftMeter(_reference);
    }

    public DriftResult Measure(Sdtv2Model candidate) => Measure(candidate, null);

    /// <summary>
    /// As above, continuing from cached residual streams where <paramref name="reuse"/> has them: a candidate whose widths
    /// before unit u equal a setting measured earlier starts at u, and the LIF layers before u contribute that setting's
    /// sums (the same doubles a full pass accumulates). Bit-identical to a full measurement.
    /// </summary>
    public DriftResult Measure(Sdtv2Model candidate, PrefixReuse.Prefixes? reuse)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _meter.Reset();
        int layers = _reference.Layers;
        int from = 0;
        PrefixSums? start = null;
        if (reuse is not null)
            for (int u = reuse.Shared; u >= 1; u--)
                if (_sums.TryGetValue(reuse.Keys[u], out var s) && Enumerable.Range(0, Chunks).All(c => reuse.Cache.Contains(StreamKey(c, reuse.Keys[u]))))
                {
                    (from, start) = (u, s);
                    break;
                }
        var captured = new List<int>();
        ForEachChunk(candidate, _meter, reuse, from, captured);
        var sums = _meter.Read();
        if (sums.LayersSeen != layers)
            throw new InvalidOperationException($"candidate ran {sums.LayersSeen} LIF layers, the reference {layers}");
        // Layers before the start did not run: they are the prefix's, exactly as measured when it ran.
        if (start is not null)
            for (int l = 0; l < start.DiffSquared.Length; l++) (sums.DiffSquared[l], sums.Mismatches[l]) = (start.DiffSquared[l], start.Mismatches[l]);
        if (reuse is not null)
            foreach (int u in captured.Distinct())
            {
                int first = candidate.FirstLifOf(u);
                _sums.TryAdd(reuse.Keys[u], new PrefixSums(sums.DiffSquared[..first], sums.Mismatches[..first]));
            }
        var norm2 = _reference.NormSquared;
        var perLayer = new double[layers];
        for (int l = 0; l < layers; l++)
            perLayer[l] = norm2[l] > 0 ? Math.Sqrt(sums.DiffSquared[l] / norm2[l]) : Math.Sqrt(sums.DiffSquared[l]);
        long neurons = _reference.Neurons.Sum(), mismatch = sums.Mismatches.Sum();
        return new DriftResult(perLayer.Average(), (double)mismatch / neurons, perLayer, clock.Elapsed.TotalSeconds);
    }

    private int Chunks => (_count + _batch - 1) / _batch;

    private static string StreamKey(int chunk, string prefix) => $"drift chunk {chunk} {prefix}";

    /// <summary>Per-layer drift sums of the LIF layers before a boundary, for one prefix of widths.</summary>
    private sealed record PrefixSums(double[] DiffSquared, long[] Mismatches);
    private readonly Dictionary<string, PrefixSums> _sums = new(StringComparer.Ordinal);

    private void ForEachChunk(Sdtv2Model model, LifRecorder recorder, PrefixReuse.Prefixes? reuse = null, int from = 0, List<int>? captured = null)
    {
        int imageSize = model.Config.InChannels * _height * _width;
        if (reuse is null)
        {
            // On several devices: chunks queued to whichever device is free (a candidate's chunk k where the reference's was).
            var chunks = Enumerable.Range(0, Chunks).Select(c =>
            {
                int start = c * _batch, n = Math.Min(_batch, _count - start);
                return new BatchInput(_images.AsMemory(start * imageSize, n * imageSize), n, _height, _width);
            });
            model.ForwardBatches(chunks, recorder, (_, _) => { });
            return;
        }
        for (int start = 0, chunk = 0; start < _count; start += _batch, chunk++)
        {
            int n = Math.Min(_batch, _count - start);
            var images = _images.AsSpan(start * imageSize, n * imageSize);
            int c = chunk;
            reuse.Forward(model, images, n, _height, _width, recorder, from, u => StreamKey(c, reuse.Keys[u]), u => captured!.Add(u));
        }
    }

    public void Dispose()
    {
        _meter.Dispose();
        _reference.Dispose();
    }
}
