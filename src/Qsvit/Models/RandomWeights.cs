using Qsvit.IO;
using Qsvit.Tensors;

namespace Qsvit.Models;

/// <summary>A reproducible random state_dict for any configuration: benchmarks and tests without a trained checkpoint.</summary>
public static class RandomWeights
{
    /// <summary>He-normal conv/linear weights, small biases, identity BatchNorm statistics with a mild random affine.</summary>
    public static StateDict Create(Sdtv2Config config, int seed = 0)
    {
        var layout = new Sdtv2Layout(config);
        var rng = new Random(seed);
        var state = new StateDict();
        foreach (var p in layout.Parameters)
        {
            var t = new Tensor(p.Shape);
            var data = t.Data;
            switch (p.Role)
            {
                case ParameterRole.Weight:
                    long fanIn = p.Count / p.Shape[0];
                    double std = Math.Sqrt(2.0 / Math.Max(1, fanIn));
                    for (int i = 0; i < data.Length; i++) data[i] = (float)(std * Gaussian(rng));
                    break;
                case ParameterRole.Bias:
                case ParameterRole.BnBias:
                    for (int i = 0; i < data.Length; i++) data[i] = (float)(0.1 * Gaussian(rng));
                    break;
                case ParameterRole.BnWeight:
                    for (int i = 0; i < data.Length; i++) data[i] = (float)(1 + 0.1 * Gaussian(rng));
                    break;
                case ParameterRole.RunningVar:
                    Array.Fill(data, 1f);
                    break;
            }
            state.Set(p.Key, t, p.Role == ParameterRole.BatchesTracked ? DType.I64 : DType.F32);
        }
        return state;
    }

    private static double Gaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
