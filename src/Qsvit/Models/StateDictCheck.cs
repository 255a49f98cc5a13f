using Qsvit.IO;
using Qsvit.Tensors;

namespace Qsvit.Models;

/// <summary>Checks a state_dict against the architecture: every key present with the right shape.</summary>
public static class StateDictCheck
{
    /// <param name="strict">Also reject keys the architecture does not have (like torch's load_state_dict(strict=True)).</param>
    public static void Validate(Sdtv2Layout layout, StateDict state, bool strict)
    {
        var problems = new List<string>();
        foreach (var p in layout.Parameters)
        {
            if (!state.TryGetValue(p.Key, out var t))
            {
                // num_batches_tracked is bookkeeping that eval never reads; older checkpoints omit it.
                if (p.Role != ParameterRole.BatchesTracked) problems.Add($"missing key '{p.Key}' (expected shape {Tensor.Format(p.Shape)})");
                continue;
            }
            if (!Tensor.SameShape(t.Shape, p.Shape) && !(p.Role == ParameterRole.BatchesTracked && t.Length == 1))
                problems.Add($"'{p.Key}': checkpoint shape {Tensor.Format(t.Shape)}, model expects {Tensor.Format(p.Shape)}");
        }
        if (strict)
            foreach (var key in state.Keys)
                if (!layout.TryGetParameter(key, out _)) problems.Add($"unexpected key '{key}' {Tensor.Format(state[key].Shape)}");
        if (problems.Count == 0) return;
        const int shown = 12;
        var text = string.Join(Environment.NewLine + "  ", problems.Take(shown));
        if (problems.Count > shown) text += $"{Environment.NewLine}  … and {problems.Count - shown} more";
        throw new QsvitException($"state_dict does not fit {layout.Config}:{Environment.NewLine}  {text}");
    }
}
