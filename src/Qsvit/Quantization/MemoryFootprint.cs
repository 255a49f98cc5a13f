using Qsvit.Models;

namespace Qsvit.Quantization;

/// <summary>Storage of the learned parameters of one block or unit, in bits (not rounded).</summary>
public sealed record MemoryEntry(string Name, long Parameters, long Bits, long Fp32Bits)
{
    public double Bytes => Bits / 8.0;
    public double MiB => Bytes / MemoryFootprint.BytesPerMiB;
    public double SavingPercent => Fp32Bits == 0 ? 0 : 100.0 * (1 - (double)Bits / Fp32Bits);
}

/// <summary>
/// Model memory as the paper counts it: every learned parameter (conv/linear weights, biases, BatchNorm weight and bias; not
/// running statistics) at 32 bits, except quantized weights at their bit width. With <see cref="Overhead"/> set (exact mode),
/// each quantized weight also stores its quantizer parameters: one fp32 scale per tensor, or per output channel for
/// per-channel specs, and for asymmetric specs one zero point per scale at the weight's own bit width (a zero point is a code).
/// Bits are summed exactly and rounded up to whole bytes only for the total.
/// </summary>
public sealed record MemoryFootprint(IReadOnlyList<MemoryEntry> Blocks, IReadOnlyList<MemoryEntry> Units, long Bits, long Fp32Bits,
    QuantizerSpec? Overhead)
{
    public const double BytesPerMiB = 1 << 20;

    public long Bytes => (Bits + 7) / 8;
    public long Fp32Bytes => (Fp32Bits + 7) / 8;
    public double MiB => Bytes / BytesPerMiB;
    public double Fp32MiB => Fp32Bytes / BytesPerMiB;
    public double SavingPercent => 100.0 * (1 - (double)Bytes / Fp32Bytes);

    /// <summary>Memory of <paramref name="layout"/>'s model under <paramref name="setting"/>; pass the quantizer for exact mode.</summary>
    public static MemoryFootprint Compute(Sdtv2Layout layout, QuantizationSetting setting, QuantizerSpec? exact = null)
    {
        exact?.Validate();
        setting.Validate(layout);
        var blockBits = new Dictionary<string, (long Params, long Bits, long Fp32)>(StringComparer.Ordinal);
        foreach (var p in layout.Parameters.Where(p => p.IsLearned))
        {
            long bits = 32 * p.Count;
            if (layout.TryGetWeight(p.Key, out var w))
            {
                int b = setting.BitsFor(w);
                bits = b * p.Count;
                if (exact is not null && b != Quantizer.FullPrecision)
                {
                    long scales = exact.PerChannel ? w.OutChannels : 1;
                    bits += scales * 32 + (exact.Kind == QuantizerKind.Asymmetric ? scales * b : 0);
                }
            }
            var (n, s, f) = blockBits.GetValueOrDefault(p.Block);
            blockBits[p.Block] = (n + p.Count, s + bits, f + 32 * p.Count);
        }

        var blocks = layout.Blocks.Where(blockBits.ContainsKey)
            .Select(b => new MemoryEntry(b, blockBits[b].Params, blockBits[b].Bits, blockBits[b].Fp32)).ToArray();
        var unitOf = layout.Weights.GroupBy(w => w.Block).ToDictionary(g => g.Key, g => g.First().Unit, StringComparer.Ordinal);
        var units = blocks.GroupBy(b => unitOf[b.Name])
            .Select(g => new MemoryEntry(g.Key, g.Sum(b => b.Parameters), g.Sum(b => b.Bits), g.Sum(b => b.Fp32Bits))).ToArray();
        return new MemoryFootprint(blocks, units, blocks.Sum(b => b.Bits), blocks.Sum(b => b.Fp32Bits), exact);
    }
}
