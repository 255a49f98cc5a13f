namespace Qsvit.Tensors;

/// <summary>Element types a checkpoint may store. Tensors are computed in float32 whatever they were stored as.</summary>
public enum DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool }

/// <summary>A dense, row-major float32 tensor. Reshape shares storage.</summary>
public sealed class Tensor
{
    public int[] Shape { get; }
    public float[] Data { get; }

    public Tensor(params int[] shape) : this(new float[Count(shape)], shape) { }

    public Tensor(float[] data, params int[] shape)
    {
        if (Count(shape) != data.Length)
            throw new ArgumentException($"shape {Format(shape)} needs {Count(shape)} elements, got {data.Length}");
        Data = data;
        Shape = (int[])shape.Clone();
    }

    public int Length => Data.Length;
    public int Rank => Shape.Length;
    public Span<float> Span => Data;

    public Tensor Reshape(params int[] shape) => new(Data, shape);
    public Tensor Clone() => new((float[])Data.Clone(), Shape);

    public static long Count(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape {Format(shape)}");
            n *= d;
        }
        return n;
    }

    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    public static bool SameShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);

    public override string ToString() => $"Tensor{Format(Shape)}";
}
