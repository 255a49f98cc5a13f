using Qsvit.Backends;
using Qsvit.Tensors;

namespace Qsvit.Models;

/// <summary>
/// One conv layer call of a pass, as <see cref="IConvProbe"/> sees it: the layer's official keys and geometry, and the
/// input's shape. Each of the <see cref="Frames"/> frames stands for <see cref="Repeat"/> identical ones (the stem runs
/// once per image and is repeated over T afterwards).
/// </summary>
public sealed record ConvCall(ConvKeys Keys, ConvGeometry Geometry, int Frames, int Height, int Width, int Repeat)
{
    public int OutHeight => Geometry.OutH(Height);
    public int OutWidth => Geometry.OutW(Width);
}

/// <summary>
/// Sees every conv layer of a pass on the host (<see cref="Sdtv2Model.Probe"/>): for calibration after quantization
/// (<see cref="Quantization.QuantizationCorrector"/>), where statistics of conv inputs and outputs are needed. Slow by
/// design: each call copies the layer's input and output to the host.
/// </summary>
public interface IConvProbe
{
    /// <summary>
    /// After the conv (its bias and BatchNorms applied): <paramref name="input"/> [Frames, InChannels, Height, Width] and
    /// <paramref name="output"/> [Frames, OutChannels, OutHeight, OutWidth]. Returns true when it changed
    /// <paramref name="output"/>, which then goes back to the device and on through the pass.
    /// </summary>
    bool OnConv(ConvCall call, float[] input, float[] output);

    /// <summary>Pad values for a BN-padded layer (RepConv's BNAndPadLayer, BN(0) of <paramref name="batchNorm"/>); null keeps the model's.</summary>
    float[]? PadValues(string batchNorm) => null;
}
