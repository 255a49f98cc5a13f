using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Qsvit.Tensors;

namespace Qsvit.IO;

/// <summary>Element sizes, names and little-endian byte ↔ float32 conversions for the stored dtypes.</summary>
internal static class DTypes
{
    public static int Size(DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        DType.F64 or DType.I64 => 8,
        DType.I8 or DType.U8 or DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>The safetensors dtype name ("F32", "BOOL", ...).</summary>
    public static string SafeTensorsName(DType t) => t == DType.Bool ? "BOOL" : t.ToString();

    public static bool TryParseSafeTensorsName(string name, out DType t)
    {
        switch (name)
        {
            case "F32": t = DType.F32; return true;
            case "F16": t = DType.F16; return true;
            case "BF16": t = DType.BF16; return true;
            case "F64": t = DType.F64; return true;
            case "I64": t = DType.I64; return true;
            case "I32": t = DType.I32; return true;
            case "I16": t = DType.I16; return true;
            case "I8": t = DType.I8; return true;
            case "U8": t = DType.U8; return true;
            case "BOOL": t = DType.Bool; return true;
            default: t = DType.F32; return false;
        }
    }

    /// <summary>The stored file formats are little-endian; the fast paths reinterpret bytes in place.</summary>
    public static void EnsureLittleEndianHost()
    {
        if (!BitConverter.IsLittleEndian)
            throw new QsvitException("qsvit reads and writes checkpoints only on little-endian machines");
    }

    /// <summary>Decodes <c>dst.Length</c> little-endian elements of <paramref name="t"/> from <paramref name="src"/>.</summary>
    public static void ToFloat(ReadOnlySpan<byte> src, DType t, Span<float> dst)
    {
        if (src.Length != (long)dst.Length * Size(t)) throw new ArgumentException("source/destination size mismatch");
        switch (t)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(src).CopyTo(dst); break;
            case DType.F16: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst); break;
            case DType.BF16:
                {
                    var s = MemoryMarshal.Cast<byte, ushort>(src);
                    for (int i = 0; i < dst.Length; i++) dst[i] = BitConverter.Int32BitsToSingle(s[i] << 16);
                    break;
                }
            case DType.F64:
                {
                    var s = MemoryMarshal.Cast<byte, double>(src);
                    for (int i = 0; i < dst.Length; i++) dst[i] = (float)s[i];
                    break;
                }
            case DType.I64:
                {
                    var s = MemoryMarshal.Cast<byte, long>(src);
                    for (int i = 0; i < dst.Length; i++) dst[i] = s[i];
                    break;
                }
            case DType.I32:
                {
                    var s = MemoryMarshal.Cast<byte, int>(src);
                    for (int i = 0; i < dst.Length; i++) dst[i] = s[i];
                    break;
                }
            case DType.I16:
                {
                    var s = MemoryMarshal.Cast<byte, short>(src);
                    for (int i = 0; i < dst.Length; i++) dst[i] = s[i];
                    break;
                }
            case DType.I8:
                {
                    var s = MemoryMarshal.Cast<byte, sbyte>(src);
                    for (int i = 0; i < dst.Length; i++) dst[i] = s[i];
                    break;
                }
            case DType.U8:
                for (int i = 0; i < dst.Length; i++) dst[i] = src[i];
                break;
            case DType.Bool:
                for (int i = 0; i < dst.Length; i++) dst[i] = src[i] != 0 ? 1f : 0f;
                break;
            default: throw new ArgumentOutOfRangeException(nameof(t));
        }
    }

    /// <summary>
    /// Encodes floats as little-endian <paramref name="t"/>. Floating types round to nearest even; integer types
    /// and bool require exact values in range. Returns -1 on success, else the index of the first value that
    /// cannot be stored (nothing meaningful is left in <paramref name="dst"/> then).
    /// </summary>
    public static int FromFloat(ReadOnlySpan<float> src, DType t, Span<byte> dst)
    {
        if (dst.Length != (long)src.Length * Size(t)) throw new ArgumentException("source/destination size mismatch");
        switch (t)
        {
            case DType.F32: MemoryMarshal.AsBytes(src).CopyTo(dst); return -1;
            case DType.F16: TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(dst)); return -1;
            case DType.BF16:
                {
                    var d = MemoryMarshal.Cast<byte, ushort>(dst);
                    for (int i = 0; i < src.Length; i++) d[i] = ToBFloat16Bits(src[i]);
                    return -1;
                }
            case DType.F64:
                {
                    var d = MemoryMarshal.Cast<byte, double>(dst);
                    for (int i = 0; i < src.Length; i++) d[i] = src[i];
                    return -1;
                }
            case DType.I64:
                {
                    var d = MemoryMarshal.Cast<byte, long>(dst);
                    for (int i = 0; i < src.Length; i++)
                    {
                        float v = src[i];
                        // 2^63 is exactly representable as float; long.MaxValue is not.
                        if (!IsInteger(v) || v < -9.223372036854775808e18f || v >= 9.223372036854775808e18f) return i;
                        d[i] = (long)v;
                    }
                    return -1;
                }
            case DType.I32:
                {
                    var d = MemoryMarshal.Cast<byte, int>(dst);
                    for (int i = 0; i < src.Length; i++)
                    {
                        float v = src[i];
                        if (!IsInteger(v) || v < -2147483648f || v >= 2147483648f) return i;
                        d[i] = (int)v;
                    }
                    return -1;
                }
            case DType.I16:
                {
                    var d = MemoryMarshal.Cast<byte, short>(dst);
                    for (int i = 0; i < src.Length; i++)
                    {
                        float v = src[i];
                        if (!IsInteger(v) || v < short.MinValue || v > short.MaxValue) return i;
                        d[i] = (short)v;
                    }
                    return -1;
                }
            case DType.I8:
                for (int i = 0; i < src.Length; i++)
                {
                    float v = src[i];
                    if (!IsInteger(v) || v < sbyte.MinValue || v > sbyte.MaxValue) return i;
                    dst[i] = (byte)(sbyte)v;
                }
                return -1;
            case DType.U8:
                for (int i = 0; i < src.Length; i++)
                {
                    float v = src[i];
                    if (!IsInteger(v) || v < 0 || v > 255) return i;
                    dst[i] = (byte)v;
                }
                return -1;
            case DType.Bool:
                for (int i = 0; i < src.Length; i++)
                {
                    float v = src[i];
                    if (v != 0f && v != 1f) return i;
                    dst[i] = v == 1f ? (byte)1 : (byte)0;
                }
                return -1;
            default: throw new ArgumentOutOfRangeException(nameof(t));
        }
    }

    /// <summary>The range a stored integer type accepts, for error messages.</summary>
    public static string Range(DType t) => t switch
    {
        DType.I64 => "an integer in [-2^63, 2^63)",
        DType.I32 => "an integer in [-2^31, 2^31)",
        DType.I16 => "an integer in [-32768, 32767]",
        DType.I8 => "an integer in [-128, 127]",
        DType.U8 => "an integer in [0, 255]",
        DType.Bool => "0 or 1",
        _ => "a float",
    };

    private static bool IsInteger(float v) => MathF.Truncate(v) == v; // false for NaN and ±inf is caught by the range checks

    /// <summary>float32 → bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN.</summary>
    public static ushort ToBFloat16Bits(float f)
    {
        uint b = BitConverter.SingleToUInt32Bits(f);
        if ((b & 0x7FFF_FFFFu) > 0x7F80_0000u) return (ushort)((b >> 16) | 0x0040u);
        b += 0x7FFFu + ((b >> 16) & 1u);
        return (ushort)(b >> 16);
    }
}
