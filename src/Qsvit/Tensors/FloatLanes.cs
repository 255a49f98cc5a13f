using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>
/// The float vector operations the width-generic kernels need (<see cref="Depthwise"/>, <see cref="SpikeAttention"/>), one
/// struct per vector width so the JIT specializes each kernel per width.
/// </summary>
internal unsafe interface IFloatLanes<TVector> where TVector : struct
{
    static abstract int Count { get; }
    static abstract TVector Broadcast(float value);
    static abstract TVector Load(float* p);
    static abstract TVector MultiplyAdd(TVector a, TVector b, TVector c);
    static abstract TVector Multiply(TVector a, float b);
    static abstract void Store(TVector v, float* p);
}

internal unsafe readonly struct Lanes512 : IFloatLanes<Vector512<float>>
{
    public static int Count => 16;
    public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    public static Vector512<float> Load(float* p) => Vector512.Load(p);
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    public static Vector512<float> Multiply(Vector512<float> a, float b) => a * b;
    public static void Store(Vector512<float> v, float* p) => v.Store(p);
}

// MultiplyAddEstimate: fused where the hardware has FMA (x64 with FMA3, ARM64), as the scalar paths' MathF.FusedMultiplyAdd.
internal unsafe readonly struct Lanes256 : IFloatLanes<Vector256<float>>
{
    public static int Count => 8;
    public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    public static Vector256<float> Load(float* p) => Vector256.Load(p);
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    public static Vector256<float> Multiply(Vector256<float> a, float b) => a * b;
    public static void Store(Vector256<float> v, float* p) => v.Store(p);
}

internal unsafe readonly struct Lanes128 : IFloatLanes<Vector128<float>>
{
    public static int Count => 4;
    public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    public static Vector128<float> Load(float* p) => Vector128.Load(p);
    public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    public static Vector128<float> Multiply(Vector128<float> a, float b) => a * b;
    public static void Store(Vector128<float> v, float* p) => v.Store(p);
}

/// <summary>One float as a "vector" of one lane: the scalar body of the width-generic kernels.</summary>
internal unsafe readonly struct Lanes1 : IFloatLanes<float>
{
    public static int Count => 1;
    public static float Broadcast(float value) => value;
    public static float Load(float* p) => *p;
    public static float MultiplyAdd(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
    public static float Multiply(float a, float b) => a * b;
    public static void Store(float v, float* p) => *p = v;
}
