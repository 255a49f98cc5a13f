using Qsvit.Snn;

namespace Qsvit.Backends;

/// <summary>
/// What a backend records at each LIF layer it runs (<see cref="IBackend.Lif"/>), kept where its data lives and reduced
/// there: only per-layer totals ever travel to the host. Made by the backend that runs the passes (except
/// <see cref="HostLifObserver"/>, which any backend serves). Layers are identified by their call index in the forward pass.
/// Reductions are deterministic: fixed order, no float atomics; sums of squares in double.
/// </summary>
public abstract class LifRecorder : IDisposable
{
    public virtual void Dispose() { }
}

/// <summary>Per-layer spike and neuron×timestep counts, accumulated over any number of passes. Clear to start over.</summary>
public abstract class SpikeCounter : LifRecorder
{
    /// <summary>Copies the totals so far to the host: spikes and neurons×timesteps seen, per LIF layer index.</summary>
    public abstract LifCounts Read();
    public abstract void Clear();
}

public sealed record LifCounts(long[] Spikes, long[] Neurons)
{
    public double Rate(int layer) => Neurons[layer] == 0 ? 0 : (double)Spikes[layer] / Neurons[layer];
}

/// <summary>
/// The fp32 reference for the AQ4SViT drift proxy (<see cref="Search.MembraneDrift"/>): while passes run with it, the
/// backend keeps every LIF layer's pre-spike membrane potential H and its spikes, one entry per pass (a "chunk" of the
/// calibration images) in pass order, on the device. <see cref="Seal"/> ends the capture.
/// </summary>
public abstract class MembraneReference : LifRecorder
{
    /// <summary>Ends the capture; afterwards the reference only serves <see cref="DriftMeter"/>s.</summary>
    public abstract void Seal();
    /// <summary>LIF layers captured (the highest index seen plus one).</summary>
    public abstract int Layers { get; }
    /// <summary>ΣH_fp² per layer over all chunks, in double: <see cref="ChunkNormSquared"/> added up in pass order.</summary>
    public double[] NormSquared => ChunkSums.Fold(ChunkNormSquared, Layers);
    /// <summary>
    /// ΣH_fp² per chunk (pass, in pass order) and layer, [chunk][layer], each reduced in the backend's fixed order. Kept per
    /// chunk so that chunks captured on several devices (<see cref="DeviceGroup"/>) add up exactly as on one.
    /// </summary>
    public abstract IReadOnlyList<double[]> ChunkNormSquared { get; }
    /// <summary>Neurons×timesteps captured per layer, over all chunks.</summary>
    public abstract long[] Neurons { get; }
    /// <summary>Floats of H held.</summary>
    public abstract long CapturedFloats { get; }
}

/// <summary>
/// Compares a candidate's passes with a sealed <see cref="MembraneReference"/>, as they run: the n-th time layer l runs
/// after <see cref="Reset"/> it is compared with chunk n of layer l (same length, or InvalidOperationException).
/// Accumulates per layer Σ(H_q − H_fp)² in double and the count of neurons×timesteps whose spike differs.
/// </summary>
public abstract class DriftMeter : LifRecorder
{
    public abstract MembraneReference Reference { get; }
    /// <summary>Zeroes the sums and rewinds to chunk 0, for the next candidate.</summary>
    public abstract void Reset();
    /// <summary>Copies the per-layer sums to the host: the chunks' sums added up in pass order.</summary>
    public DriftSums Read()
    {
        var chunks = ReadChunks();
        return new DriftSums(ChunkSums.Fold(chunks.DiffSquared, chunks.Mismatches.Length), chunks.Mismatches, chunks.LayersSeen);
    }

    /// <summary>Σ(H_q − H_fp)² per chunk (pass since <see cref="Reset"/>, in pass order) and layer; mismatches per layer.</summary>
    public abstract DriftChunks ReadChunks();
}

/// <param name="LayersSeen">Highest layer index compared plus one.</param>
public sealed record DriftSums(double[] DiffSquared, long[] Mismatches, int LayersSeen);

/// <param name="DiffSquared">[chunk][layer], chunks in pass order.</param>
/// <param name="Mismatches">Per layer, over all chunks (integers: any order gives the same total).</param>
public sealed record DriftChunks(IReadOnlyList<double[]> DiffSquared, long[] Mismatches, int LayersSeen);

/// <summary>Per-chunk double sums added up in one fixed order (chunk 0, 1, …, starting from 0), whatever device made them.</summary>
public static class ChunkSums
{
    public static double[] Fold(IReadOnlyList<double[]> chunks, int layers)
    {
        var total = new double[layers];
        foreach (var chunk in chunks)
            for (int l = 0; l < layers && l < chunk.Length; l++) total[l] += chunk[l];
        return total;
    }
}

/// <summary>
/// Hands every LIF layer's data to a host <see cref="ILifObserver"/>, with the layer names of the model. Every backend
/// serves it; on the CPU it is free, on a GPU it copies each layer's spikes (and H when wanted) to the host, so it is a
/// debugging and test path, not what evaluations use.
/// </summary>
public sealed class HostLifObserver(ILifObserver observer, IReadOnlyList<string> names) : LifRecorder
{
    public ILifObserver Observer => observer;
    public IReadOnlyList<string> Names => names;
}
