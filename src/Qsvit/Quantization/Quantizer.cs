using System.Buffers;
using System.Collections.Immutable;
using System.Numerics.Tensors;
using Qsvit.Tensors;
using Tensor = Qsvit.Tensors.Tensor;

namespace Qsvit.Quantization;

/// <summary>
/// Integer codes of one quantized tensor are read as <c>(code - ZeroPoints[g]) * Scales[g]</c> (float32), where g is the
/// tensor (one group) or the output channel (axis 0). Codes lie in [Qmin, Qmax].
/// </summary>
public sealed record QuantizationParams(int Bits, QuantizerSpec Spec, int Qmin, int Qmax, ImmutableArray<float> Scales,
    ImmutableArray<int> ZeroPoints)
{
    public int Groups => Scales.Length;
}

/// <summary>What quantizing one tensor did. <see cref="Params"/> is null at 32 bits (the tensor is left as is).</summary>
public sealed record QuantizationResult(QuantizationParams? Params, long Count, long ClippedCount, double SquaredError,
    double SquaredSignal)
{
    public int Bits => Params?.Bits ?? Quantizer.FullPrecision;
    public int ScaleCount => Params?.Groups ?? 0;
    /// <summary>Fraction of elements whose rounded code fell outside [Qmin, Qmax] and was clamped.</summary>
    public double ClippedFraction => Count == 0 ? 0 : (double)ClippedCount / Count;
    public double Mse => Count == 0 ? 0 : SquaredError / Count;
    /// <summary>Signal-to-quantization-noise ratio in dB; +infinity when the tensor is reproduced exactly.</summary>
    public double SqnrDb => SquaredError == 0 ? double.PositiveInfinity : 10 * Math.Log10(SquaredSignal / SquaredError);
}

/// <summary>
/// Simulated (fake) quantization of weight tensors: codes are computed, then dequantized back into float32, so the fake-quant
/// weight is exactly what an integer model holding the codes would compute with. All arithmetic is float32 in the order
/// PyTorch evaluates the same expressions on the CPU: q = clamp(round_half_even(w / S) [+ zp], Qmin, Qmax), w' = (q - zp) * S.
/// </summary>
public static class Quantizer
{
    public const int FullPrecision = 32;
    public const int MinBits = 2, MaxBits = 16;
    /// <summary>
    /// The MSE search tries clipping ratios k/ClipCandidates of the full range, k = 1..ClipCandidates: symmetric clips at
    /// ratio·max|W|, asymmetric shrinks both ends of its zero-including range towards 0 by the ratio.
    /// </summary>
    public const int ClipCandidates = 100;

    // Error sums are taken in float32 chunks of this size and accumulated in double: vectorized yet precise, and the search
    // and the final report see identical chunking, so the chosen range is never reported worse than the full one.
    private const int Chunk = 1024;

    public static bool IsValidBits(int bits) => bits is >= MinBits and <= MaxBits or FullPrecision;

    public static void ValidateBits(int bits)
    {
        if (!IsValidBits(bits))
            throw new QsvitException($"bit width {bits} is not supported; allowed {MinBits}..{MaxBits}, or {FullPrecision} (full precision)");
    }

    /// <summary>
    /// The code range of a kind: paper [-2^(b-1), 2^(b-1)-1] (Eq. 2-3); symmetric the restricted [-(2^(b-1)-1), 2^(b-1)-1],
    /// so that negating a weight negates its code exactly and max|W| maps onto the largest code either way;
    /// asymmetric [0, 2^b-1].
    /// </summary>
    public static (int Qmin, int Qmax) CodeRange(int bits, QuantizerKind kind)
    {
        ValidateBits(bits);
        if (bits == FullPrecision) throw new QsvitException("32 bits is full precision and has no integer code range");
        int half = 1 << (bits - 1);
        return kind switch
        {
            QuantizerKind.Paper => (-half, half - 1),
            QuantizerKind.Symmetric => (-(half - 1), half - 1),
            _ => (0, (1 << bits) - 1),
        };
    }

    /// <summary>Replaces <paramref name="w"/> by its fake-quantized values in <paramref name="output"/> (which may alias it).</summary>
    public static QuantizationResult Quantize(ReadOnlySpan<float> w, ReadOnlySpan<int> shape, int bits, QuantizerSpec spec,
        Span<float> output, ComputeOptions? options = null)
    {
        if (output.Length != w.Length) throw new ArgumentException($"output has {output.Length} elements, weight {w.Length}");
        ValidateBits(bits);
        spec.Validate();
        CheckTensor(w, shape);
        double signal = SumOfSquares(w);
        if (bits == FullPrecision)
        {
            w.CopyTo(output);
            return new QuantizationResult(null, w.Length, 0, 0, signal);
        }

        int[] rented = ArrayPool<int>.Shared.Rent(w.Length);
        try
        {
            Span<int> codes = rented.AsSpan(0, w.Length);
            var p = Encode(w, shape, bits, spec, codes, out long clipped, options ?? ComputeOptions.Default);
            // Error is measured per group with the search's chunking before output (possibly aliasing w) is written.
            double error = 0;
            int len = w.Length / p.Groups;
            Span<float> scratch = stackalloc float[Chunk];
            for (int g = 0; g < p.Groups; g++)
                error += DequantizeAndCompare(w.Slice(g * len, len), codes.Slice(g * len, len), p.Scales[g], p.ZeroPoints[g], scratch);
            Dequantize(codes, p, output);
            return new QuantizationResult(p, w.Length, clipped, error, signal);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>Integer codes of <paramref name="w"/> (one per element) and the scales/zero points that read them back.</summary>
    public static QuantizationParams QuantizeToCodes(ReadOnlySpan<float> w, ReadOnlySpan<int> shape, int bits, QuantizerSpec spec,
        Span<int> codes, ComputeOptions? options = null)
    {
        if (codes.Length != w.Length) throw new ArgumentException($"codes has {codes.Length} elements, weight {w.Length}");
        ValidateBits(bits);
        if (bits == FullPrecision) throw new QsvitException("32 bits is full precision: there are no integer codes to produce");
        spec.Validate();
        CheckTensor(w, shape);
        return Encode(w, shape, bits, spec, codes, out _, options ?? ComputeOptions.Default);
    }

    /// <summary>output = (codes - zero point) * scale, per group, in float32.</summary>
    public static void Dequantize(ReadOnlySpan<int> codes, QuantizationParams p, Span<float> output)
    {
        if (output.Length != codes.Length) throw new ArgumentException($"output has {output.Length} elements, codes {codes.Length}");
        if (p.Groups == 0 || codes.Length % p.Groups != 0)
            throw new ArgumentException($"{codes.Length} codes do not split into {p.Groups} groups");
        int len = codes.Length / p.Groups;
        for (int g = 0; g < p.Groups; g++)
        {
            float s = p.Scales[g];
            int zp = p.ZeroPoints[g];
            var c = codes.Slice(g * len, len);
            var o = output.Slice(g * len, len);
            for (int i = 0; i < c.Length; i++) o[i] = (c[i] - zp) * s;
        }
    }

    private static void CheckTensor(ReadOnlySpan<float> w, ReadOnlySpan<int> shape)
    {
        if (Tensor.Count(shape) != w.Length)
            throw new ArgumentException($"shape {Tensor.Format(shape)} needs {Tensor.Count(shape)} elements, got {w.Length}");
        if (w.Length == 0) throw new QsvitException("cannot quantize an empty tensor");
        float min = TensorPrimitives.Min(w), max = TensorPrimitives.Max(w);
        if (!float.IsFinite(min) || !float.IsFinite(max)) throw new QsvitException("weight tensor contains NaN or infinity");
    }

    private static QuantizationParams Encode(ReadOnlySpan<float> w, ReadOnlySpan<int> shape, int bits, QuantizerSpec spec,
        Span<int> codes, out long clipped, ComputeOptions options)
    {
        var (qmin, qmax) = CodeRange(bits, spec.Kind);
        int groups = spec.PerChannel && shape.Length > 0 ? shape[0] : 1;
        int len = w.Length / groups;
        var scales = new float[groups];
        var zeroPoints = new int[groups];
        ChooseRanges(w, groups, len, spec, qmin, qmax, scales, zeroPoints, options);

        clipped = 0;
        for (int g = 0; g < groups; g++)
            clipped += EncodeGroup(w.Slice(g * len, len), scales[g], zeroPoints[g], qmin, qmax, codes.Slice(g * len, len));
        return new QuantizationParams(bits, spec, qmin, qmax, ImmutableArray.Create(scales), ImmutableArray.Create(zeroPoints));
    }

    private static long EncodeGroup(ReadOnlySpan<float> w, float scale, int zp, int qmin, int qmax, Span<int> codes)
    {
        // Clamp the zero-centred code to [Qmin - zp, Qmax - zp] before adding zp: identical to clamping code + zp, and
        // exactly the float arithmetic the MSE search uses.
        float lo = qmin - zp, hi = qmax - zp;
        long clipped = 0;
        for (int i = 0; i < w.Length; i++)
        {
            float r = MathF.Round(w[i] / scale, MidpointRounding.ToEven);
            if (r < lo) { r = lo; clipped++; }
            else if (r > hi) { r = hi; clipped++; }
            codes[i] = (int)r + zp;
        }
        return clipped;
    }

    private static unsafe void ChooseRanges(ReadOnlySpan<float> w, int groups, int len, QuantizerSpec spec, int qmin, int qmax,
        float[] scales, int[] zeroPoints, ComputeOptions options)
    {
        if (!spec.MseClipping)
        {
            for (int g = 0; g < groups; g++)
            {
                var (lo, hi) = FullRange(w.Slice(g * len, len), spec.Kind);
                (scales[g], zeroPoints[g]) = RangeToScale(spec.Kind, lo, hi, qmin, qmax);
            }
            return;
        }

        // The search costs ClipCandidates passes: spread channels (or, for one tensor-wide group, candidates) over threads.
        fixed (float* p = w)
        {
            nint address = (nint)p;
            if (groups > 1)
                Parallel.For(0, groups, options.Parallel, g =>
                {
                    var group = new ReadOnlySpan<float>((float*)address + (long)g * len, len);
                    (scales[g], zeroPoints[g]) = SearchClipping(group, spec.Kind, qmin, qmax, null);
                });
            else
                (scales[0], zeroPoints[0]) = SearchClipping(w, spec.Kind, qmin, qmax, options);
        }
    }

    /// <summary>The clipping range the quantizer covers before any search: paper [min, max]; symmetric [-max|W|, max|W|];
    /// asymmetric [min, max] widened to include 0 so that 0 gets an exact code.</summary>
    private static (float Lo, float Hi) FullRange(ReadOnlySpan<float> w, QuantizerKind kind)
    {
        float min = TensorPrimitives.Min(w), max = TensorPrimitives.Max(w);
        return kind switch
        {
            QuantizerKind.Paper => (min, max),
            QuantizerKind.Symmetric => (-Math.Max(-min, max), Math.Max(-min, max)),
            _ => (Math.Min(min, 0f), Math.Max(max, 0f)),
        };
    }

    private static (float Scale, int ZeroPoint) RangeToScale(QuantizerKind kind, float lo, float hi, int qmin, int qmax)
    {
        switch (kind)
        {
            case QuantizerKind.Paper:
            {
                // Eq. 1 in float32: (max - min) / (Qmax - Qmin), a true division as PyTorch does on the CPU (on CUDA it
                // multiplies by a float reciprocal, which can differ by one ulp). A constant tensor has no range (PyTorch
                // would produce NaN or 0); fall back to |c| / Qmax so the constant survives, or 1 for all zeros.
                float s = (hi - lo) / (float)(qmax - qmin);
                return (IsUsable(s) ? s : Fallback(Math.Max(Math.Abs(lo), Math.Abs(hi)), qmax), 0);
            }
            case QuantizerKind.Symmetric:
                return (Fallback(hi, qmax), 0);
            default:
            {
                // lo <= 0 <= hi. The zero point is the (clamped) integer code of 0, so 0 dequantizes to exactly 0.
                float s = (hi - lo) / (float)(qmax - qmin);
                if (!IsUsable(s)) return (1f, 0);
                int zp = (int)Math.Clamp(MathF.Round(-lo / s, MidpointRounding.ToEven), qmin, qmax);
                return (s, zp);
            }
        }
    }

    private static bool IsUsable(float scale) => scale > 0 && float.IsFinite(scale);

    private static float Fallback(float magnitude, int qmax)
    {
        float s = magnitude / qmax;
        return IsUsable(s) ? s : 1f;
    }

    private static unsafe (float Scale, int ZeroPoint) SearchClipping(ReadOnlySpan<float> w, QuantizerKind kind, int qmin, int qmax,
        ComputeOptions? parallel)
    {
        var (lo, hi) = FullRange(w, kind);
        var errors = new double[ClipCandidates + 1];
        var choices = new (float Scale, int ZeroPoint)[ClipCandidates + 1];
        fixed (float* p = w)
        {
            nint address = (nint)p;
            int length = w.Length;
            void Try(int k)
            {
                float ratio = k / (float)ClipCandidates;
                var choice = RangeToScale(kind, ratio * lo, ratio * hi, qmin, qmax);
                choices[k] = choice;
                var span = new ReadOnlySpan<float>((float*)address, length);
                Span<float> scratch = stackalloc float[Chunk];
                errors[k] = RoundTripError(span, choice.Scale, qmin - choice.ZeroPoint, qmax - choice.ZeroPoint, scratch);
            }

            if (parallel is not null) Parallel.For(1, ClipCandidates + 1, parallel.Parallel, Try);
            else for (int k = 1; k <= ClipCandidates; k++) Try(k);
        }

        // Ties go to the wider range; ratio 1 is exactly the max-range quantizer, so the search is never worse than it.
        int best = ClipCandidates;
        for (int k = ClipCandidates - 1; k >= 1; k--)
            if (errors[k] < errors[best]) best = k;
        return choices[best];
    }

    /// <summary>Σ (w - clamp(round(w / s), lo, hi) * s)² in the chunked order shared with <see cref="DequantizeAndCompare"/>.</summary>
    private static double RoundTripError(ReadOnlySpan<float> w, float scale, float lo, float hi, Span<float> scratch)
    {
        double sum = 0;
        for (int i = 0; i < w.Length; i += Chunk)
        {
            var x = w.Slice(i, Math.Min(Chunk, w.Length - i));
            var t = scratch[..x.Length];
            TensorPrimitives.Divide(x, scale, t);
            TensorPrimitives.Round(t, MidpointRounding.ToEven, t);
            TensorPrimitives.Clamp(t, lo, hi, t);
            TensorPrimitives.Multiply(t, scale, t);
            TensorPrimitives.Subtract(x, t, t);
            sum += TensorPrimitives.SumOfSquares<float>(t);
        }
        return sum;
    }

    private static double DequantizeAndCompare(ReadOnlySpan<float> w, ReadOnlySpan<int> codes, float scale, int zp, Span<float> scratch)
    {
        double sum = 0;
        for (int i = 0; i < w.Length; i += Chunk)
        {
            var x = w.Slice(i, Math.Min(Chunk, w.Length - i));
            var c = codes.Slice(i, x.Length);
            var t = scratch[..x.Length];
            for (int j = 0; j < t.Length; j++) t[j] = (c[j] - zp) * scale;
            TensorPrimitives.Subtract(x, t, t);
            sum += TensorPrimitives.SumOfSquares<float>(t);
        }
        return sum;
    }

    private static double SumOfSquares(ReadOnlySpan<float> w)
    {
        double sum = 0;
        for (int i = 0; i < w.Length; i += Chunk)
            sum += TensorPrimitives.SumOfSquares<float>(w.Slice(i, Math.Min(Chunk, w.Length - i)));
        return sum;
    }
}
