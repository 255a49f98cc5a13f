using Qsvit.Backends;
using Qsvit.IO.Datasets;
using Qsvit.Models;
using Qsvit.Quantization;

namespace Qsvit.Evaluation;

/// <summary>
/// A packed model's integer path against the fp32 simulation of the same codes (fake quantization) on the same images:
/// how many predictions are identical, and the accuracy of each.
/// </summary>
public sealed record PackedComparison(EvalResult Packed, EvalResult Simulated)
{
    public int Count => Packed.Count;
    public int Identical => Packed.Predictions.Zip(Simulated.Predictions).Count(p => p.First == p.Second);
    public double IdenticalPercent => Count == 0 ? 100 : 100.0 * Identical / Count;
    /// <summary>Top-1 of the integer path minus top-1 of the simulation, in points.</summary>
    public double Top1DeltaPoints => Packed.Top1.Value - Simulated.Top1.Value;
    /// <summary>Images whose prediction differs: right only on the integer path, right only in the simulation.</summary>
    public (int PackedOnly, int SimulatedOnly) CorrectOnly =>
        (Packed.Correct.Zip(Simulated.Correct).Count(p => p.First && !p.Second), Packed.Correct.Zip(Simulated.Correct).Count(p => !p.First && p.Second));

    public static PackedComparison Run(PackedModel model, IImageDataset data, EvalOptions options, IBackend? backend = null)
    {
        EvalResult Eval(bool simulate)
        {
            using var net = new Sdtv2Model(model, simulate, backend);
            return Evaluator.Run(net, data, options);
        }
        return new PackedComparison(Eval(simulate: false), Eval(simulate: true));
    }
}
