using Qsvit.Tensors;

namespace Qsvit.Quantization;

/// <summary>
/// One quantized weight at its bit width: codes q ∈ [Qmin, Qmax] stored as q − Qmin in <see cref="BitPacking"/> fields
/// of <see cref="Bits"/> bits, one scale (and zero point) per group, a group being the whole tensor or one output
/// channel (axis 0). The value of element i of group g is (q_i − ZeroPoints[g]) · Scales[g], as <see cref="Quantizer"/> computes it.
/// </summary>
public sealed record PackedWeight(string Key, int[] Shape, int Bits, int Qmin, int Qmax, float[] Scales, int[] ZeroPoints, byte[] Codes)
{
    public long Count => Tensor.Count(Shape);
    public int Groups => Scales.Length;
    public int OutChannels => Shape[0];
    /// <summary>Elements per output channel (the GEMM's K).</summary>
    public int RowLength => (int)(Count / OutChannels);

    /// <summary>Quantizes <paramref name="w"/> and packs its codes.</summary>
    public static PackedWeight Quantize(string key, ReadOnlySpan<float> w, int[] shape, int bits, QuantizerSpec spec)
    {
        var codes = new int[w.Length];
        var p = Quantizer.QuantizeToCodes(w, shape, bits, spec, codes);
        for (int i = 0; i < codes.Length; i++) codes[i] -= p.Qmin;
        var packed = new byte[BitPacking.ByteCount(codes.Length, bits)];
        BitPacking.Pack(codes, bits, packed);
        return new PackedWeight(key, shape, bits, p.Qmin, p.Qmax, p.Scales.ToArray(), p.ZeroPoints.ToArray(), packed);
    }

    /// <summary>Throws a <see cref="QsvitException"/> naming <paramref name="where"/> when the parts disagree.</summary>
    public void Validate(string where)
    {
        if (!BitPacking.IsPackable(Bits) || Bits < Quantizer.MinBits)
            throw new QsvitException($"{where}: '{Key}' has {Bits}-bit codes; packed weights have {Quantizer.MinBits}..{Quantizer.MaxBits} bits");
        if (Shape.Length == 0 || Shape.Any(d => d <= 0)) throw new QsvitException($"{where}: '{Key}' has shape {Tensor.Format(Shape)}");
        long need = BitPacking.ByteCount(Count, Bits);
        if (Codes.LongLength != need)
            throw new QsvitException($"{where}: '{Key}' has {Codes.LongLength} code bytes, but shape {Tensor.Format(Shape)} at {Bits} bits needs {need}");
        if (Groups != 1 && Groups != OutChannels)
            throw new QsvitException($"{where}: '{Key}' has {Groups} scales; expected 1 (per tensor) or {OutChannels} (per output channel)");
        if (ZeroPoints.Length != Groups)
            throw new QsvitException($"{where}: '{Key}' has {ZeroPoints.Length} zero points for {Groups} scales");
        if (Qmax - Qmin != (1 << Bits) - 1 && Qmax - Qmin != (1 << Bits) - 2)
            throw new QsvitException($"{where}: '{Key}' code range [{Qmin}, {Qmax}] does not match {Bits} bits");
        foreach (float s in Scales)
            if (!(s > 0) || !float.IsFinite(s)) throw new QsvitException($"{where}: '{Key}' has scale {s}; scales must be positive and finite");
        foreach (int z in ZeroPoints)
            if (z < Qmin || z > Qmax) throw new QsvitException($"{where}: '{Key}' has zero point {z} outside its code range [{Qmin}, {Qmax}]");
    }

    /// <summary>The integer weights q − zero point of output channels [row0, row0 + rows), row-major.</summary>
    public void IntegerRows(int row0, int rows, Span<int> dst)
    {
        int k = RowLength;
        BitPacking.Unpack(Codes, Bits, (long)row0 * k, dst[..(rows * k)]);
        for (int r = 0; r < rows; r++)
        {
            int zp = ZeroPoints[Groups == 1 ? 0 : row0 + r] - Qmin;
            var row = dst.Slice(r * k, k);
            for (int i = 0; i < row.Length; i++) row[i] -= zp;
        }
    }

    /// <summary>The dequantized values of output channels [row0, row0 + rows), exactly as <see cref="Quantizer.Dequantize"/> computes them.</summary>
    public void DequantizeRows(int row0, int rows, Span<int> scratch, Span<float> dst)
    {
        int k = RowLength;
        IntegerRows(row0, rows, scratch);
        for (int r = 0; r < rows; r++)
        {
            float s = Scales[Groups == 1 ? 0 : row0 + r];
            var src = scratch.Slice(r * k, k);
            var o = dst.Slice(r * k, k);
            for (int i = 0; i < o.Length; i++) o[i] = src[i] * s;
        }
    }

    /// <summary>The whole tensor dequantized (fp32), for the simulated path and for layers too small to matter (the head).</summary>
    public float[] Dequantize()
    {
        var values = new float[Count];
        var scratch = new int[Count];
        DequantizeRows(0, OutChannels, scratch, values);
        return values;
    }

    /// <summary>Smallest and largest integer weight q − zero point over the tensor.</summary>
    public (int Min, int Max) IntegerRange()
    {
        int zmin = ZeroPoints.Min(), zmax = ZeroPoints.Max();
        return (Qmin - zmax, Qmax - zmin);
    }
}
