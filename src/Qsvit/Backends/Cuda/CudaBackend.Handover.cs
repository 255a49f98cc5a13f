namespace Qsvit.Backends.Cuda;

/// <summary>
/// Spikes handed over packed: a LIF (<see cref="Lif"/>, <see cref="AddLif"/>) told which op reads its spikes next
/// (<see cref="SpikeReader"/>) writes them as that op's packed int8 input where the op would pack them
/// (<see cref="SpikeGemmOps.LifHandover"/>), so the fp32 spike map is never written and the op packs nothing.
/// </summary>
public sealed partial class CudaBackend
{
    /// <summary>Whether LIFs hand their spikes over at all (tests compare passes without).</summary>
    internal bool HandsOverSpikes { get; set; } = true;

    /// <summary>LIFs that handed their spikes over since this backend was made.</summary>
    internal int Handovers { get; private set; }

    /// <summary>Spikes written in their reader's packed form, its workspace slot and the form, until the reader takes them.</summary>
    private (DeviceBuffer Spikes, int Slot, SpikeHandover Form)? _handedOver;

    /// <summary>
    /// The form in which <paramref name="reader"/> would pack spikes of <paramref name="timesteps"/> steps for its first
    /// layer, where a LIF can write them so (<see cref="SpikeGemmOps.TakesHandover"/>); null where the op reads floats (a
    /// fused or TF32 layer, a fused chain, RepConvs that do not share one packing) or packs other bytes. Each op that takes
    /// the spikes asks the same of itself (<see cref="HandedOver"/>), so writer and reader agree by construction.
    /// </summary>
    private SpikeHandover? HandoverFor(SpikeReader reader, int timesteps)
    {
        int frames = reader.Frames, h = reader.Height, w = reader.Width;
        if (!HandsOverSpikes || _spike is null || timesteps <= 0 || frames % timesteps != 0 || frames >= 1 << 21) return null;
        switch (reader.Op)
        {
            case SpikeReaderOp.RepConvs:
                return reader.Convs is { } convs && SharesPacking(convs, frames, h, w) && ((CudaConvLayer)reader.Layer).Spike is { } first && _spike.TakesHandover(first, frames, h, w, 0)
                    ? new SpikeHandover(first, frames, h, w, 0) : null;
            case SpikeReaderOp.Conv:
            {
                if (ConvSpike((CudaConvLayer)reader.Layer, h, w) is not { } spike || !_spike.TakesHandover(spike, frames, h, w, 0)) return null;
                return new SpikeHandover(spike, frames, h, w, 0);
            }
            case SpikeReaderOp.ConvLifConv when reader.Second is null || FusedChain(reader.Layer, reader.Second, frames, h, w, timesteps, null) is not null:
                return null;
            default: // ConvLif, and ConvLifConv's first layer, run as ConvLif's integer path
            {
                if (((CudaConvLayer)reader.Layer).Spike is not { Integer: true } spike || !_spike.TakesHandover(spike, frames, h, w, timesteps)) return null;
                return new SpikeHandover(spike, frames, h, w, ConvLifPlan(spike, frames, h, w, timesteps).Chunk / timesteps);
            }
        }
    }

    /// <summary>
    /// Runs the LIF (with <paramref name="y"/>: after x += y) handing its spikes to <paramref name="next"/> packed, where
    /// <see cref="HandoverFor"/> gives a form; false where it does not (nothing ran).
    /// </summary>
    private bool HandOver(DeviceBuffer x, DeviceBuffer? y, long length, DeviceBuffer spikes, int timesteps, float threshold, SpikeReader? next)
    {
        _handedOver = null;
        if (next is null || HandoverFor(next, timesteps) is not { } form) return false;
        long expected = (long)next.Frames * form.Layer.Geometry.InChannels * next.Height * next.Width;
        if (length != expected)
            throw new ArgumentException($"a LIF over {length} values cannot feed {next.Op} of {next.Frames} frames of {form.Layer.Geometry.InChannels}x{next.Height}x{next.Width}", nameof(next));
        _spike!.LifHandover(V(x), y is null ? default : V(y), y is not null, V(spikes), form, timesteps, threshold);
        _handedOver = (spikes, _slots.IndexOf((CudaBuffer)spikes), form);
        Handovers++;
        return true;
    }

    /// <summary>
    /// Whether <paramref name="input"/> holds spikes handed over in <paramref name="form"/> (the reader's own
    /// <see cref="HandoverFor"/>); they are then taken. Throws where they were handed over in another form.
    /// </summary>
    private bool HandedOver(DeviceBuffer input, SpikeHandover? form)
    {
        if (_handedOver is not { } h || !ReferenceEquals(h.Spikes, input)) return false;
        _handedOver = null;
        if (form != h.Form) throw new InvalidOperationException($"spikes handed over packed as {h.Form} were read as {form?.ToString() ?? "floats"}");
        return true;
    }
}
