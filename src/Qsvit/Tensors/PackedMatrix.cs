using System.Runtime.CompilerServices;

namespace Qsvit.Tensors;

/// <summary>
/// A constant left-hand GEMM operand (e.g. a weight matrix [rows, cols]) packed once into the register-tile layout of
/// the GEMM micro-kernel, for <see cref="Gemm.Sgemm(PackedMatrix, int, ReadOnlySpan{float}, bool, Span{float}, ReadOnlySpan{float}, bool)"/>.
/// Immutable and safe to share between threads.
/// </summary>
public sealed unsafe class PackedMatrix
{
    private readonly float[] _data; // pinned (POH): the pointer below stays valid
    private readonly int _offset;

    /// <summary>Rows of the logical matrix (M of a GEMM).</summary>
    public int Rows { get; }
    /// <summary>Columns of the logical matrix (K of a GEMM).</summary>
    public int Cols { get; }
    internal Isa Isa { get; }
    internal float* Pointer => (float*)Unsafe.AsPointer(ref _data[_offset]);

    private PackedMatrix(int rows, int cols, Isa isa)
    {
        Rows = rows;
        Cols = cols;
        Isa = isa;
        _data = GC.AllocateUninitializedArray<float>(checked((int)GemmCore.PackedALength(rows, cols, isa) + 16), pinned: true);
        fixed (float* p = _data) _offset = (int)(GemmCore.Align64(p) - p);
    }

    /// <summary>Packs <paramref name="a"/>: [rows, cols] row-major, or [cols, rows] when <paramref name="transpose"/>.</summary>
    public static PackedMatrix Pack(ReadOnlySpan<float> a, int rows, int cols, bool transpose = false)
        => Pack(a, rows, cols, transpose, IsaInfo.Best);

    internal static PackedMatrix Pack(ReadOnlySpan<float> a, int rows, int cols, bool transpose, Isa isa)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        if (a.Length < (long)rows * cols) throw new ArgumentException($"a has {a.Length} elements, needs {(long)rows * cols}", nameof(a));
        var pm = new PackedMatrix(rows, cols, IsaInfo.Clamp(isa));
        fixed (float* pa = a)
            GemmCore.PackA(pa, rows, cols, transpose ? rows : cols, transpose, pm.Isa, pm.Pointer);
        return pm;
    }
}
