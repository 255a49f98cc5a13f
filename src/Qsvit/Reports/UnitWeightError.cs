using Qsvit.Quantization;
using Qsvit.Search;

namespace Qsvit.Reports;

/// <summary>
/// What quantizing one unit's weights at <see cref="Bits"/> does to them: the fraction of weights clamped to the code range
/// and the signal-to-quantization-noise ratio over all of the unit's weights.
/// </summary>
public sealed record UnitWeightError(string Unit, int Bits, long Weights, double ClippedFraction, double SqnrDb)
{
    /// <summary>
    /// Every unit of the search's granularity at every quantized width, from one whole-network quantization per width
    /// (a unit's weights quantize the same whatever the other units get).
    /// </summary>
    public static IReadOnlyList<UnitWeightError> Compute(Func<QuantizationSetting, QuantizedModel> quantize, QsvitOptions options)
    {
        var result = new List<UnitWeightError>();
        var perWidth = options.QuantizedBits.ToDictionary(b => b, b => quantize(QuantizationSetting.Uniform(b)).Weights);
        foreach (var unit in options.Units)
            foreach (var b in options.QuantizedBits)
            {
                var weights = perWidth[b].Where(w => (options.Granularity == Granularity.Block ? w.Unit : w.Block) == unit).ToArray();
                long count = weights.Sum(w => w.Count);
                double clipped = weights.Sum(w => w.ClippedFraction * w.Count);
                // Signal energy is recovered from each weight's MSE and SQNR; a weight reproduced exactly adds no error.
                double error = weights.Sum(w => w.Mse * w.Count);
                double signal = weights.Where(w => double.IsFinite(w.SqnrDb)).Sum(w => w.Mse * w.Count * Math.Pow(10, w.SqnrDb / 10));
                double sqnr = error == 0 ? double.PositiveInfinity : 10 * Math.Log10(signal / error);
                result.Add(new UnitWeightError(unit, b, count, count == 0 ? 0 : clipped / count, sqnr));
            }
        return result;
    }
}
