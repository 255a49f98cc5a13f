namespace Qsvit.Backends.Cpu;

internal sealed class CpuSpikeCounter(int layers) : SpikeCounter
{
    private readonly long[] _spikes = new long[layers];
    private readonly long[] _neurons = new long[layers];

    public void Add(int layer, long spikes, long neurons)
    {
        _spikes[layer] += spikes;
        _neurons[layer] += neurons;
    }

    public override LifCounts Read() => new((long[])_spikes.Clone(), (long[])_neurons.Clone());

    public override void Clear()
    {
        Array.Clear(_spikes);
        Array.Clear(_neurons);
    }
}

/// <summary>H per layer and pass as float arrays, spikes as bits (one per neuron×timestep).</summary>
internal sealed class CpuMembraneReference(int layers) : MembraneReference
{
    public readonly List<float[]>[] Membrane = Enumerable.Range(0, layers).Select(_ => new List<float[]>()).ToArray();
    public readonly List<ulong[]>[] Spikes = Enumerable.Range(0, layers).Select(_ => new List<ulong[]>()).ToArray();
    private readonly List<double[]> _norm2 = new();
    private readonly long[] _neurons = new long[layers];
    private int _layers;

    public bool Sealed { get; private set; }
    public override void Seal() => Sealed = true;
    public override int Layers => _layers;
    public override IReadOnlyList<double[]> ChunkNormSquared => _norm2.Select(c => c[.._layers]).ToArray();
    public override long[] Neurons => _neurons[.._layers];
    public override long CapturedFloats => Membrane.Sum(l => l.Sum(c => (long)c.Length));

    public void Capture(int layer, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes)
    {
        if (Sealed) throw new InvalidOperationException("the membrane reference is sealed; measure drift with a DriftMeter");
        int chunk = Membrane[layer].Count;
        Membrane[layer].Add(membrane.ToArray());
        var bits = new ulong[(spikes.Length + 63) / 64];
        for (int i = 0; i < spikes.Length; i++)
            if (spikes[i] != 0) bits[i >> 6] |= 1UL << (i & 63);
        Spikes[layer].Add(bits);
        // Accumulated in double: a float sum over millions of potentials loses the digits a small drift lives in.
        double s = 0;
        foreach (float v in membrane) s += (double)v * v;
        while (_norm2.Count <= chunk) _norm2.Add(new double[Membrane.Length]);
        _norm2[chunk][layer] += s;
        _neurons[layer] += membrane.Length;
        _layers = Math.Max(_layers, layer + 1);
    }
}

internal sealed class CpuDriftMeter(CpuMembraneReference reference) : DriftMeter
{
    private readonly List<double[]> _diff2 = new();
    private readonly long[] _mismatch = new long[reference.Membrane.Length];
    private readonly int[] _chunk = new int[reference.Membrane.Length];
    private int _layersSeen;

    public override MembraneReference Reference => reference;

    public override void Reset()
    {
        _diff2.Clear();
        Array.Clear(_mismatch);
        Array.Clear(_chunk);
        _layersSeen = 0;
    }

    public override DriftChunks ReadChunks() => new(_diff2.Select(c => (double[])c.Clone()).ToArray(), (long[])_mismatch.Clone(), _layersSeen);

    public void Compare(int layer, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes)
    {
        if (layer >= reference.Layers)
            throw new InvalidOperationException($"LIF layer {layer} ran, the reference has {reference.Layers} layers");
        int chunk = _chunk[layer]++;
        if (chunk >= reference.Membrane[layer].Count)
            throw new InvalidOperationException($"LIF layer {layer} ran {chunk + 1} times, the reference {reference.Membrane[layer].Count}");
        var h = reference.Membrane[layer][chunk];
        var bits = reference.Spikes[layer][chunk];
        if (h.Length != membrane.Length)
            throw new InvalidOperationException($"LIF layer {layer} gave {membrane.Length} potentials, the reference {h.Length}");
        double d2 = 0;
        long mismatch = 0;
        for (int i = 0; i < membrane.Length; i++)
        {
            double d = membrane[i] - h[i];
            d2 += d * d;
            if ((spikes[i] != 0) != (((bits[i >> 6] >> (i & 63)) & 1) != 0)) mismatch++;
        }
        while (_diff2.Count <= chunk) _diff2.Add(new double[reference.Membrane.Length]);
        _diff2[chunk][layer] += d2;
        _mismatch[layer] += mismatch;
        _layersSeen = Math.Max(_layersSeen, layer + 1);
    }
}
