using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Tensors;

namespace Qsvit.Search;

/// <summary>
/// Alg. 4's artefact: a quantized network as a safetensors file holding the dequantized (fake-quantized) float32 weights, so
/// any SDTv2 runtime loads it unchanged, with metadata saying how it was made and what model it is
/// (<see cref="ModelLoader.ConfigMetadataKey"/>, read by <see cref="ModelLoader"/> when no sidecar json is found).
/// </summary>
public static class QsvitCheckpoint
{
    public const string SettingKey = "qsvit.setting";
    public const string QuantizerKey = "qsvit.quantizer";
    public const string CorrectionKey = "qsvit.correction";

    /// <summary>Writes <paramref name="quantized"/> (made from <paramref name="source"/>) to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, LoadedModel source, QuantizedModel quantized)
    {
        var state = new StateDict();
        var weights = quantized.Weights.ToDictionary(w => w.Key, w => w.Bits, StringComparer.Ordinal);
        foreach (var (key, tensor) in quantized.StateDict)
        {
            // Quantized weights are float32 values on a b-bit grid; a half-precision source dtype would round them off it.
            bool quantizedWeight = weights.TryGetValue(key, out int bits) && bits != Quantizer.FullPrecision;
            state.Set(key, tensor, quantizedWeight ? DType.F32 : quantized.StateDict.StoredType(key));
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [SettingKey] = quantized.Setting.ToString(),
            [QuantizerKey] = quantized.Spec.ToString(),
            [ModelLoader.ConfigMetadataKey] = ModelFile.Write(source.Config, source.Normalization, source.ClassNames),
        };
        if (!quantized.Correction.IsNone) metadata[CorrectionKey] = quantized.Correction.Identity;
        SafeTensors.Write(path, state, metadata);
    }
}
