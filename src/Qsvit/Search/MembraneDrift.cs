using Qsvit.Models;
using Qsvit.Snn;

namespace Qsvit.Search;

/// <summary>A candidate's drift from the fp32 model on the calibration images (the AQ4SViT proxy).</summary>
/// <param name="Drift">Mean over LIF layers of ‖H_q − H_fp‖₂ / ‖H_fp‖₂ (pre-spike membrane potentials, all timesteps).</param>
/// <param name="SpikeMismatch">Fraction of all neurons×timesteps whose spike differs from fp32.</param>
public sealed record DriftResult(double Drift, double SpikeMismatch, IReadOnlyList<double> PerLayer, double Seconds);

/// <summary>
/// Captures the fp32 model's membrane potentials once on a calibration batch, then measures any candidate against them
/// in a single forward pass (no second fp32 run).
/// </summary>
public sealed class MembraneDrift
{
    private readonly float[][] _reference;   // per LIF layer: H of all calibration images, in forward order
    private readonly float[][] _referenceSpikes;
    private readonly double[] _referenceNorm2;
    private readonly float[] _images;
    private readonly int _count, _height, _width, _batch;

    public int Images => _count;
    public long CapturedFloats => _reference.Sum(r => (long)r.Length);

    /// <param name="images">Normalized calibration images [count, C, H, W].</param>
    public MembraneDrift(Sdtv2Model fp32, float[] images, int count, int height, int width, int batch = 32)
    {
        _images = images;
        _count = count;
        _height = height;
        _width = width;
        _batch = Math.Max(1, batch);
        var capture = new Capture();
        ForEachChunk(fp32, capture);
        _reference = capture.Layers.Select(l => l.Membrane.ToArray()).ToArray();
        _referenceSpikes = capture.Layers.Select(l => l.Spikes.ToArray()).ToArray();
        _referenceNorm2 = _reference.Select(r => System.Numerics.Tensors.TensorPrimitives.Dot(r, r) is var d ? (double)d : 0).ToArray();
    }

    public DriftResult Measure(Sdtv2Model candidate)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var compare = new Compare(this);
        ForEachChunk(candidate, compare);
        if (compare.Layers != _reference.Length)
            throw new InvalidOperationException($"candidate ran {compare.Layers} LIF layers, the reference {_reference.Length}");
        var perLayer = new double[_reference.Length];
        long neurons = 0;
        for (int l = 0; l < perLayer.Length; l++)
        {
            perLayer[l] = _referenceNorm2[l] > 0 ? Math.Sqrt(compare.Diff2[l] / _referenceNorm2[l]) : Math.Sqrt(compare.Diff2[l]);
            neurons += _reference[l].Length;
        }
        return new DriftResult(perLayer.Average(), (double)compare.Mismatch / neurons, perLayer, clock.Elapsed.TotalSeconds);
    }

    private void ForEachChunk(Sdtv2Model model, ILifObserver observer)
    {
        int imageSize = model.Config.InChannels * _height * _width;
        for (int start = 0; start < _count; start += _batch)
        {
            int n = Math.Min(_batch, _count - start);
            model.Forward(_images.AsSpan(start * imageSize, n * imageSize), n, _height, _width, observer);
        }
    }

    private sealed class Capture : ILifObserver
    {
        public readonly List<(List<float> Membrane, List<float> Spikes)> Layers = new();
        public bool WantsMembrane => true;

        public void Observe(int index, string name, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes, long spikeCount)
        {
            if (index == Layers.Count) Layers.Add((new List<float>(), new List<float>()));
            Layers[index].Membrane.AddRange(membrane);
            Layers[index].Spikes.AddRange(spikes);
        }
    }

    /// <summary>Compares layer by layer as the candidate runs; chunks arrive in the same order as during capture.</summary>
    private sealed class Compare(MembraneDrift owner) : ILifObserver
    {
        public readonly double[] Diff2 = new double[owner._reference.Length];
        private readonly int[] _cursor = new int[owner._reference.Length];
        public long Mismatch;
        public int Layers;
        public bool WantsMembrane => true;

        public void Observe(int index, string name, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes, long spikeCount)
        {
            var reference = owner._reference[index].AsSpan(_cursor[index], membrane.Length);
            var refSpikes = owner._referenceSpikes[index].AsSpan(_cursor[index], spikes.Length);
            _cursor[index] += membrane.Length;
            double d2 = 0;
            long mismatch = 0;
            for (int i = 0; i < membrane.Length; i++)
            {
                double d = membrane[i] - reference[i];
                d2 += d * d;
                if (spikes[i] != refSpikes[i]) mismatch++;
            }
            Diff2[index] += d2;
            Mismatch += mismatch;
            Layers = Math.Max(Layers, index + 1);
        }
    }
}
