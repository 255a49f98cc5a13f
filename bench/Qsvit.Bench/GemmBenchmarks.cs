using BenchmarkDotNet.Attributes;
using Qsvit.Tensors;

namespace Qsvit.Bench;

public sealed record GemmShape(string Name, int M, int N, int K) : IFlopCount
{
    public double Flops => 2.0 * M * N * K;
    public override string ToString() => $"{Name} {M}x{N}x{K}";
}

/// <summary>C[M,N] = A·B, row-major; A packed per call (plain API) or once (<see cref="PackedMatrix"/>).</summary>
public class GemmBenchmarks
{
    public static IEnumerable<GemmShape> Shapes =>
    [
        new("square", 512, 512, 512),
        new("square", 1024, 1024, 1024),
        new("cifar 3x3 16-64 @32", 64, 1024, 144),
        new("cifar 3x3 64-16 @32", 16, 1024, 576),
        new("cifar 1x1 128-512 x32fr @4", 512, 512, 128),
        new("cifar 3x3 64-256 x7fr @8", 256, 448, 576),
        new("in1k 1x1 512-2048 @14", 2048, 196, 512),
        new("in1k 3x3 256-1024 @28", 1024, 784, 2304),
    ];

    [ParamsSource(nameof(Shapes))]
    public GemmShape Shape { get; set; } = null!;

    [Params(1, 2)]
    public int Threads { get; set; }

    private float[] _a = [], _b = [], _c = [];
    private PackedMatrix _packed = null!;
    private ComputeOptions _options = ComputeOptions.Default;

    [GlobalSetup]
    public void Setup()
    {
        _options = new ComputeOptions { Threads = Threads };
        var rng = new Random(42);
        _a = Data.Random(rng, Shape.M * Shape.K);
        _b = Data.Random(rng, Shape.K * Shape.N);
        _c = new float[Shape.M * Shape.N];
        _packed = PackedMatrix.Pack(_a, Shape.M, Shape.K);
    }

    [Benchmark(Baseline = true)]
    public void Sgemm() => Gemm.Sgemm(Shape.M, Shape.N, Shape.K, _a, false, _b, false, _c, options: _options);

    [Benchmark]
    public void SgemmPacked() => Gemm.Sgemm(_packed, Shape.N, _b, false, _c, options: _options);
}

internal static class Data
{
    public static float[] Random(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)rng.NextDouble() - 0.5f;
        return a;
    }

    public static float[] Spikes(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = rng.NextDouble() < 0.3 ? 1f : 0f;
        return a;
    }
}
