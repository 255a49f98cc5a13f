using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>Vector instruction set a kernel runs with. Every level below <see cref="Best"/> also works on this machine.</summary>
internal enum Isa
{
    /// <summary>Plain scalar code (no SIMD).</summary>
    Scalar = 0,
    /// <summary>128-bit vectors (SSE / ARM64 AdvSimd).</summary>
    Vector128 = 1,
    /// <summary>256-bit vectors (AVX2+FMA).</summary>
    Vector256 = 2,
    /// <summary>512-bit vectors (AVX-512F).</summary>
    Vector512 = 3,
}

/// <summary>Per-ISA register blocking and detection.</summary>
internal static class IsaInfo
{
    /// <summary>The widest vector ISA with hardware acceleration on this machine.</summary>
    public static readonly Isa Best =
        Vector512.IsHardwareAccelerated ? Isa.Vector512 :
        Vector256.IsHardwareAccelerated ? Isa.Vector256 :
        Vector128.IsHardwareAccelerated ? Isa.Vector128 : Isa.Scalar;

    /// <summary>Rows of C per GEMM micro-tile (rows of a packed A panel).</summary>
    public static int Mr(Isa isa) => isa switch
    {
        Isa.Vector512 => 8,
        Isa.Vector256 => 6,
        Isa.Vector128 => 6,
        _ => 4,
    };

    /// <summary>Columns of C per GEMM micro-tile (two vectors wide).</summary>
    public static int Nr(Isa isa) => isa switch
    {
        Isa.Vector512 => 32,
        Isa.Vector256 => 16,
        Isa.Vector128 => 8,
        _ => 4,
    };

    /// <summary>Elements per vector register.</summary>
    public static int Lanes(Isa isa) => isa switch
    {
        Isa.Vector512 => 16,
        Isa.Vector256 => 8,
        Isa.Vector128 => 4,
        _ => 1,
    };

    /// <summary>Clamps a requested ISA to what this machine supports.</summary>
    public static Isa Clamp(Isa isa) => isa > Best ? Best : isa;
}
