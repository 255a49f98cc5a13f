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

    public DriftResult Measure(Sdtv2Model candidate)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _meter.Reset();
        ForEachChunk(candidate, _meter);
        var sums = _meter.Read();
        int layers = _reference.Layers;
        if (sums.LayersSeen != layers)
            throw new InvalidOperationException($"candidate ran {sums.LayersSeen} LIF layers, the reference {layers}");
        var norm2 = _reference.NormSquared;
        var perLayer = new double[layers];
        for (int l = 0; l < layers; l++)
            perLayer[l] = norm2[l] > 0 ? Math.Sqrt(sums.DiffSquared[l] / norm2[l]) : Math.Sqrt(sums.DiffSquared[l]);
        long neurons = _reference.Neurons.Sum(), mismatch = sums.Mismatches.Sum();
        return new DriftResult(perLayer.Average(), (double)mismatch / neurons, perLayer, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The calibration images in chunks of the batch size (on several devices: chunk k on device k mod N).</summary>
    private void ForEachChunk(Sdtv2Model model, LifRecorder recorder)
    {
        int imageSize = model.Config.InChannels * _height * _width;
        var chunks = Enumerable.Range(0, (_count + _batch - 1) / _batch).Select(c =>
        {
            int start = c * _batch, n = Math.Min(_batch, _count - start);
            return new BatchInput(_images.AsMemory(start * imageSize, n * imageSize), n, _height, _width);
        });
        model.ForwardBatches(chunks, recorder, (_, _) => { });
    }

    public void Dispose()
    {
        _meter.Dispose();
        _reference.Dispose();
    }
}
