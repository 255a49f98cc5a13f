using Qsvit.Models;
using Qsvit.Snn;

namespace Qsvit.Search;

/// <summary>A candidate's drift from the fp32 model on the calibration images (the AQ4SViT proxy).</summary>
/// <param name="Drift">Mean over LIF layers of ‖H_q − H_fp‖₂ / ‖H_fp‖₂ (pre-spike membrane potentials, all timesteps).</param>
/// <param name="SpikeMismatch">Fraction of all neurons×timesteps whose spike differs from fp32.</param>
public sealed record DriftResult(double Drift, double SpikeMismatch, IReadOnlyList<double> PerLayer, double Seconds);

/// <summary>
/// Captures the fp32 model's membrane potentials once on a calibration batch, then measures any candidate against them
/// in a single forward pass (no second fp32 run). The reference costs 4 bytes per neuron×timestep×image for H plus one bit
/// for the spike (e.g. ~0.5 GB for 64 CIFAR images on the w32-192 T=4 model), kept as one array per layer and batch so
/// that capturing never needs a second, grown copy.
/// </summary>
public sealed class MembraneDrift
{
    private readonly List<float[]>[] _membrane;   // [LIF layer][batch]: H of that batch, in forward order
    private readonly List<ulong[]>[] _spikes;     // same chunks, one bit per spike
    private readonly double[] _norm2;
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
        var capture = new Capture();
        ForEachChunk(fp32, capture);
        _membrane = capture.Membrane.ToArray();
        _spikes = capture.Spikes.ToArray();
        _norm2 = _membrane.Select(layer => layer.Sum(SumOfSquares)).ToArray();
    }

    public DriftResult Measure(Sdtv2Model candidate)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var compare = new Compare(this);
        ForEachChunk(candidate, compare);
        if (compare.Layers != _membrane.Length)
            throw new InvalidOperationException($"candidate ran {compare.Layers} LIF layers, the reference {_membrane.Length}");
        var perLayer = new double[_membrane.Length];
        long neurons = 0;
        for (int l = 0; l < perLayer.Length; l++)
        {
            perLayer[l] = _norm2[l] > 0 ? Math.Sqrt(compare.Diff2[l] / _norm2[l]) : Math.Sqrt(compare.Diff2[l]);
            neurons += _membrane[l].Sum(chunk => (long)chunk.Length);
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

    /// <summary>Accumulated in double: a float sum over millions of potentials loses the digits a small drift lives in.</summary>
    private static double SumOfSquares(float[] values)
    {
        double s = 0;
        foreach (float v in values) s += (double)v * v;
        return s;
    }

    private static bool Bit(ulong[] bits, int i) => ((bits[i >> 6] >> (i & 63)) & 1) != 0;

    private sealed class Capture : ILifObserver
    {
        public readonly List<List<float[]>> Membrane = new();
        public readonly List<List<ulong[]>> Spikes = new();
        public bool WantsMembrane => true;

        public void Observe(int index, string name, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes, long spikeCount)
        {
            if (index == Membrane.Count)
            {
                Membrane.Add(new List<float[]>());
                Spikes.Add(new List<ulong[]>());
            }
            Membrane[index].Add(membrane.ToArray());
            var bits = new ulong[(spikes.Length + 63) / 64];
            for (int i = 0; i < spikes.Length; i++)
                if (spikes[i] != 0) bits[i >> 6] |= 1UL << (i & 63);
            Spikes[index].Add(bits);
        }
    }

    /// <summary>Compares layer by layer as the candidate runs; batches arrive in the same order as during capture.</summary>
    private sealed class Compare(MembraneDrift owner) : ILifObserver
    {
        public readonly double[] Diff2 = new double[owner._membrane.Length];
        private readonly int[] _chunk = new int[owner._membrane.Length];
        public long Mismatch;
        public int Layers;
        public bool WantsMembrane => true;

        public void Observe(int index, string name, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes, long spikeCount)
        {
            int chunk = _chunk[index]++;
            var reference = owner._membrane[index][chunk];
            var refSpikes = owner._spikes[index][chunk];
            if (reference.Length != membrane.Length)
                throw new InvalidOperationException($"LIF layer {index} ({name}) gave {membrane.Length} potentials, the reference {reference.Length}");
            double d2 = 0;
            long mismatch = 0;
            for (int i = 0; i < membrane.Length; i++)
            {
                double d = membrane[i] - reference[i];
                d2 += d * d;
                if ((spikes[i] != 0) != Bit(refSpikes, i)) mismatch++;
            }
            Diff2[index] += d2;
            Mismatch += mismatch;
            Layers = Math.Max(Layers, index + 1);
        }
    }
}
