namespace Qsvit.Snn;

/// <summary>Sees every LIF layer of a forward pass, in call order.</summary>
public interface ILifObserver
{
    /// <summary>When true the network also materializes the pre-spike membrane potential H for <see cref="Observe"/>.</summary>
    bool WantsMembrane { get; }

    /// <param name="index">Call order, 0-based (the official 55M model has 77 LIF layers).</param>
    /// <param name="name">Module path, e.g. <c>block3.0.attn.q_lif</c>.</param>
    /// <param name="membrane">H for all [T, B, …] neurons when <see cref="WantsMembrane"/>, else empty.</param>
    /// <param name="spikes">The layer's output spikes [T, B, …] (0/1).</param>
    /// <param name="spikeCount">Number of ones in <paramref name="spikes"/>.</param>
    void Observe(int index, string name, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes, long spikeCount);
}

/// <summary>Accumulates each LIF layer's firing rate (mean spike output) over any number of batches.</summary>
public sealed class FiringRateRecorder : ILifObserver
{
    private readonly List<string> _names = new();
    private readonly List<long> _spikes = new();
    private readonly List<long> _neurons = new();

    public bool WantsMembrane => false;
    public IReadOnlyList<string> Names => _names;
    public int Count => _names.Count;

    public void Observe(int index, string name, ReadOnlySpan<float> membrane, ReadOnlySpan<float> spikes, long spikeCount)
    {
        if (index == _names.Count) { _names.Add(name); _spikes.Add(0); _neurons.Add(0); }
        _spikes[index] += spikeCount;
        _neurons[index] += spikes.Length;
    }

    public double Rate(int index) => _neurons[index] == 0 ? 0 : (double)_spikes[index] / _neurons[index];
    public long Spikes(int index) => _spikes[index];
    public long Neurons(int index) => _neurons[index];
    public IReadOnlyList<double> Rates => Enumerable.Range(0, _names.Count).Select(Rate).ToArray();
}
