using Qsvit.Backends;
using Qsvit.Models;

namespace Qsvit.Search;

/// <summary>What prefix reuse did: forward passes (batches) asked for, those that started from a cached stream, and the
/// work in images × units run and skipped.</summary>
public sealed record PrefixReuseStats(long Batches, long Hits, long ImageUnitsRun, long ImageUnitsSaved, int Units)
{
    public double HitRate => Batches == 0 ? 0 : (double)Hits / Batches;
    /// <summary>Work skipped in images' worth of whole passes (images × units saved / units per pass).</summary>
    public double ImagesSaved => Units == 0 ? 0 : (double)ImageUnitsSaved / Units;
    public double SavedFraction => ImageUnitsRun + ImageUnitsSaved == 0 ? 0 : (double)ImageUnitsSaved / (ImageUnitsRun + ImageUnitsSaved);
    /// <summary>"prefix reuse: 87 % of 640 batches started from a cached stream, 61 % of images × units skipped; drift: …".</summary>
    public static string Describe(PrefixReuseStats? accuracy, PrefixReuseStats? drift)
    {
        static string Part(PrefixReuseStats s) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{100 * s.HitRate:F0} % of {s.Batches:N0} batches continued from a cached stream, {s.ImageUnitsSaved:N0} images × units skipped ({100 * s.SavedFraction:F0} %)");
        if (accuracy is null) return "prefix reuse off";
        return $"prefix reuse: accuracies {Part(accuracy)}" + (drift is { Batches: > 0 } ? $"; drift {Part(drift)}" : "");
    }

    public static PrefixReuseStats operator +(PrefixReuseStats a, PrefixReuseStats b) =>
        new(a.Batches + b.Batches, a.Hits + b.Hits, a.ImageUnitsRun + b.ImageUnitsRun, a.ImageUnitsSaved + b.ImageUnitsSaved, Math.Max(a.Units, b.Units));
}

/// <summary>
/// Prefix reuse (exact): a setting's residual stream at the start of unit u depends only on the widths of the units before
/// u, so a candidate continues from a stream that any setting with those widths left in the <see cref="PrefixCache"/>.
/// Streams are stored only for prefixes that two settings asked about share (fp32's for Alg. 1, a parent's for its
/// children in greedy/beam and Alg. 3), so a candidate's own tail never fills the cache.
/// </summary>
public sealed class PrefixReuse(PrefixCache cache, int units)
{
    private readonly Dictionary<string, string> _owner = new(StringComparer.Ordinal);   // prefix → first setting, "" once shared
    private long _batches, _hits, _run, _saved;

    public PrefixCache Cache => cache;
    public PrefixReuseStats Stats => new(_batches, _hits, _run, _saved, units);

    /// <summary>A setting's prefixes: <see cref="Keys"/>[u] names the widths of the units before u; those up to <see cref="Shared"/> are shared with another setting.</summary>
    public sealed record Prefixes(PrefixReuse Owner, string[] Keys, int Shared)
    {
        public PrefixCache Cache => Owner.Cache;

        /// <summary>
        /// Logits of one batch, from the stream at <paramref name="from"/> (−1: the latest cached one; 0 or a missing stream:
        /// the images), storing the shared streams it passes. <paramref name="streamKey"/> names the batch's stream at a unit.
        /// </summary>
        public float[] Forward(Sdtv2Model model, ReadOnlySpan<float> images, int count, int height, int width, LifRecorder? recorder,
            int from, Func<int, string> streamKey, Action<int>? stored = null) =>
            Owner.Forward(this, model, images, count, height, width, recorder, from, streamKey, stored);
    }

    /// <summary>Records that <paramref name="setting"/> is asked about, with its prefix keys (index 0 unused).</summary>
    public Prefixes Register(string setting, string[] keys)
    {
        int shared = 0;
        for (int u = 1; u < keys.Length; u++)
        {
            if (!_owner.TryGetValue(keys[u], out var owner)) _owner[keys[u]] = setting;
            else if (owner != setting) _owner[keys[u]] = "";
            if (_owner[keys[u]].Length == 0) shared = u;
        }
        return new Prefixes(this, keys, shared);
    }

    private float[] Forward(Prefixes p, Sdtv2Model model, ReadOnlySpan<float> images, int count, int height, int width, LifRecorder? recorder,
        int from, Func<int, string> streamKey, Action<int>? stored)
    {
        float[]? data = null;
        if (from < 0)
        {
            from = 0;
            for (int u = p.Shared; u >= 1 && data is null; u--)
                if (cache.Get(streamKey(u)) is { } d) (from, data) = (u, d);
        }
        else if (from > 0 && (data = cache.Get(streamKey(from))) is null) from = 0;
        _batches++;
        if (from > 0) _hits++;
        _run += (long)count * (units - from);
        _saved += (long)count * from;
        using var stream = data is null ? null : model.LoadStream(model.Units[from], count, height, width, data);
        return model.Forward(images, count, height, width, stream, recorder,
            u => u <= p.Shared && !cache.Contains(streamKey(u)),
            s =>
            {
                using (s)
                {
                    var host = new float[s.Length];
                    s.CopyTo(host);
                    cache.Put(streamKey(s.UnitIndex), host);
                    stored?.Invoke(s.UnitIndex);
                }
            });
    }
}
