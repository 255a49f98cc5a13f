using ILGPU;
using ILGPU.Runtime;

namespace Qsvit.Backends.Cuda;

/// <summary>Spike totals per layer in device memory (integer atomics, exact); neuron counts are known on the host.</summary>
internal sealed class CudaSpikeCounter : SpikeCounter
{
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _spikes;
    private readonly long[] _neurons;

    public CudaSpikeCounter(Accelerator accelerator, int layers)
    {
        _spikes = accelerator.Allocate1D<long>(Math.Max(1, layers));
        _spikes.MemSetToZero();
        _neurons = new long[layers];
    }

    public ArrayView<long> Spikes => _spikes.View;
    public int Layers => _neurons.Length;

    public void AddNeurons(int layer, long neurons) => _neurons[layer] += neurons;

    public override LifCounts Read() => new(_spikes.GetAsArray1D()[.._neurons.Length], (long[])_neurons.Clone());

    public override void Clear()
    {
        _spikes.MemSetToZero();
        Array.Clear(_neurons);
    }

    public override void Dispose() => _spikes.Dispose();
}

/// <summary>
/// The fp32 membrane reference kept on the GPU: per layer and pass, H and the spikes as float arrays (8 bytes per
/// neuron×timestep), and ΣH² per pass and layer reduced on the device in double.
/// </summary>
internal sealed class CudaMembraneReference : MembraneReference
{
    private readonly Accelerator _acc;
    public readonly List<MemoryBuffer1D<float, Stride1D.Dense>>[] Membrane;
    public readonly List<MemoryBuffer1D<float, Stride1D.Dense>>[] SpikeData;
    private readonly List<MemoryBuffer1D<double, Stride1D.Dense>> _norm2 = new();   // per chunk: [layers]
    private readonly long[] _neurons;
    private int _layers;

    public CudaMembraneReference(Accelerator accelerator, int layers)
    {
        _acc = accelerator;
        Membrane = Enumerable.Range(0, layers).Select(_ => new List<MemoryBuffer1D<float, Stride1D.Dense>>()).ToArray();
        SpikeData = Enumerable.Range(0, layers).Select(_ => new List<MemoryBuffer1D<float, Stride1D.Dense>>()).ToArray();
        _neurons = new long[layers];
    }

    public bool Sealed { get; private set; }
    public override void Seal() => Sealed = true;
    public override int Layers => _layers;
    public override IReadOnlyList<double[]> ChunkNormSquared => _norm2.Select(b => b.GetAsArray1D()[.._layers]).ToArray();
    /// <summary>Chunks captured (passes).</summary>
    public int Chunks => _norm2.Count;
    public override long[] Neurons => _neurons[.._layers];
    public override long CapturedFloats => Membrane.Sum(l => l.Sum(c => c.Length));

    /// <summary>
    /// A new chunk of layer <paramref name="layer"/>: storage for H (filled by the LIF kernel) and the spikes, and the
    /// chunk's ΣH² per layer (add layer <paramref name="layer"/>'s into slot <paramref name="layer"/>).
    /// </summary>
    public (ArrayView<float> Membrane, ArrayView<float> Spikes, ArrayView<double> NormSums) NewChunk(int layer, long length)
    {
        if (Sealed) throw new InvalidOperationException("the membrane reference is sealed; measure drift with a DriftMeter");
        if (layer >= Membrane.Length) throw new InvalidOperationException($"LIF layer {layer} ran, the reference was made for {Membrane.Length}");
        int chunk = Membrane[layer].Count;
        while (_norm2.Count <= chunk)
        {
            var sums = _acc.Allocate1D<double>(Math.Max(1, Membrane.Length));
            sums.MemSetToZero();
            _norm2.Add(sums);
        }
        var h = _acc.Allocate1D<float>(length);
        var s = _acc.Allocate1D<float>(length);
        Membrane[layer].Add(h);
        SpikeData[layer].Add(s);
        _neurons[layer] += length;
        _layers = Math.Max(_layers, layer + 1);
        return (h.View, s.View, _norm2[chunk].View);
    }

    public override void Dispose()
    {
        foreach (var list in Membrane.Concat(SpikeData))
            foreach (var b in list) b.Dispose();
        foreach (var b in _norm2) b.Dispose();
    }
}

/// <summary>
/// Σ(H_q − H_fp)² per chunk and layer (double, fixed-order device reduction) and spike mismatches (integer atomics), on
/// the GPU, in slots chunk·layers + layer.
/// </summary>
internal sealed class CudaDriftMeter : DriftMeter
{
    private readonly CudaMembraneReference _reference;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _diff2;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _mismatch;
    private readonly int[] _chunk;
    private int _layersSeen;

    public CudaDriftMeter(Accelerator accelerator, CudaMembraneReference reference)
    {
        _reference = reference;
        int layers = reference.Membrane.Length, chunks = Math.Max(1, reference.Chunks);
        _diff2 = accelerator.Allocate1D<double>(Math.Max(1, (long)layers * chunks));
        _mismatch = accelerator.Allocate1D<long>(Math.Max(1, (long)layers * chunks));
        _chunk = new int[layers];
        Reset();
    }

    public override MembraneReference Reference => _reference;
    public ArrayView<double> DiffSums => _diff2.View;
    public ArrayView<long> Mismatches => _mismatch.View;

    public override void Reset()
    {
        _diff2.MemSetToZero();
        _mismatch.MemSetToZero();
        Array.Clear(_chunk);
        _layersSeen = 0;
    }

    public override DriftChunks ReadChunks()
    {
        int layers = _chunk.Length, chunks = _chunk.Length == 0 ? 0 : _chunk.Max();
        double[] diff = _diff2.GetAsArray1D();
        long[] mismatch = _mismatch.GetAsArray1D(), perLayer = new long[layers];
        var perChunk = new double[chunks][];
        for (int c = 0; c < chunks; c++)
        {
            perChunk[c] = diff.AsSpan(c * layers, layers).ToArray();
            for (int l = 0; l < layers; l++) perLayer[l] += mismatch[c * layers + l];
        }
        return new DriftChunks(perChunk, perLayer, _layersSeen);
    }

    /// <summary>The reference chunk the next run of <paramref name="layer"/> is compared with, and the slot its sums go to.</summary>
    public (ArrayView<float> Membrane, ArrayView<float> Spikes, int Slot) NextChunk(int layer, long length)
    {
        if (layer >= _reference.Layers)
            throw new InvalidOperationException($"LIF layer {layer} ran, the reference has {_reference.Layers} layers");
        int chunk = _chunk[layer]++;
        if (chunk >= _reference.Membrane[layer].Count)
            throw new InvalidOperationException($"LIF layer {layer} ran {chunk + 1} times, the reference {_reference.Membrane[layer].Count}");
        var h = _reference.Membrane[layer][chunk];
        if (h.Length != length)
            throw new InvalidOperationException($"LIF layer {layer} gave {length} potentials, the reference {h.Length}");
        _layersSeen = Math.Max(_layersSeen, layer + 1);
        return (h.View, _reference.SpikeData[layer][chunk].View, chunk * _chunk.Length + layer);
    }

    public override void Dispose()
    {
        _diff2.Dispose();
        _mismatch.Dispose();
    }
}
