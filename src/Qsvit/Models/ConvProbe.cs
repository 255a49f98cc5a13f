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
/// Sees every conv layer of a pass where it runs (<see cref="Sdtv2Model.Probe"/>): for calibration after quantization
/// (<see cref="Quantization.QuantizationCorrector"/>), where statistics of conv inputs and outputs are needed. The probe
/// works through the backend's calibration reductions (<see cref="IBackend.AccumulateFrames"/>,
/// <see cref="IBackend.ChannelMoments"/>, <see cref="IBackend.ChannelAffines"/>), so on a GPU only per-channel or
/// per-position results cross to the host.
/// </summary>
public interface IConvProbe
{
    /// <summary>
    /// After the conv (its bias and BatchNorms applied): <paramref name="input"/> [Frames, InChannels, Height, Width] and
    /// <paramref name="output"/> [Frames, OutChannels, OutHeight, OutWidth] on <paramref name="backend"/>. The probe may
    /// change <paramref name="output"/> in place, and the pass goes on with it; it releases whatever it rents.
    /// </summary>
    void OnConv(ConvCall call, IBackend backend, DeviceBuffer input, DeviceBuffer output);

    /// <summary>Pad values for a BN-padded layer (RepConv's BNAndPadLayer, BN(0) of <paramref name="batchNorm"/>); null keeps the model's.</summary>
    float[]? PadValues(string batchNorm) => null;
}
