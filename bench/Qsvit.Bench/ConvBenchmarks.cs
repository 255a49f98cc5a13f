using BenchmarkDotNet.Attributes;
using Qsvit.Tensors;

namespace Qsvit.Bench;

public sealed record ConvShape(string Name, ConvGeometry G, int Size, int Frames) : IFlopCount
{
    public double Flops => 2.0 * Frames * G.OutChannels * (G.InChannels / G.Groups) * G.KernelH * G.KernelW * G.OutH(Size) * G.OutW(Size);
    public override string ToString() => $"{Name} F={Frames}";
}

/// <summary>The convolution layers of the SDTv2 models, over all frames (T×B) at once, with bias.</summary>
public class ConvBenchmarks
{
    private static ConvGeometry Pw(int cin, int cout) => new(cin, cout, 1, 1);
    private static ConvGeometry C3(int cin, int cout, int s = 1) => new(cin, cout, 3, 3, s, s, 1, 1);
    private static ConvGeometry Dw(int c, int k, int pad) => new(c, c, k, k, 1, 1, pad, pad, c);

    public static IEnumerable<ConvShape> Shapes =>
    [
        // CIFAR model (32x32 input), F = 128 frames (T=4 x 32 images)
        new("c stem 7x7 3-16 @32", new(3, 16, 7, 7, 1, 1, 3, 3), 32, 128),
        new("c pw 16-32 @32", Pw(16, 32), 32, 128),
        new("c dw7 32 @32", Dw(32, 7, 3), 32, 128),
        new("c pw 32-16 @32", Pw(32, 16), 32, 128),
        new("c 3x3 16-64 @32", C3(16, 64), 32, 128),
        new("c 3x3 64-16 @32", C3(64, 16), 32, 128),
        new("c 3x3s2 16-32 @32", C3(16, 32, 2), 32, 128),
        new("c pw 32-64 @16", Pw(32, 64), 16, 128),
        new("c dw7 64 @16", Dw(64, 7, 3), 16, 128),
        new("c 3x3 32-128 @16", C3(32, 128), 16, 128),
        new("c 3x3 128-32 @16", C3(128, 32), 16, 128),
        new("c 3x3s2 32-64 @16", C3(32, 64, 2), 16, 128),
        new("c pw 64-128 @8", Pw(64, 128), 8, 128),
        new("c dw7 128 @8", Dw(128, 7, 3), 8, 128),
        new("c 3x3 64-256 @8", C3(64, 256), 8, 128),
        new("c 3x3 256-64 @8", C3(256, 64), 8, 128),
        new("c 3x3s2 64-128 @8", C3(64, 128, 2), 8, 128),
        new("c 1x1 128-128 @6", Pw(128, 128), 6, 128),
        new("c dw3 p0 128 @6", Dw(128, 3, 0), 6, 128),
        new("c 1x1 128-128 @4", Pw(128, 128), 4, 128),
        new("c 1x1 128-512 @4", Pw(128, 512), 4, 128),
        new("c 1x1 512-128 @4", Pw(512, 128), 4, 128),
        new("c 3x3 128-192 @4", C3(128, 192), 4, 128),
        new("c 3x3 192-192 @4", C3(192, 192), 4, 128),
        // 55M ImageNet model (224x224 input), F = 4 frames (T=4, one image)
        new("i stem 7x7s2 3-64 @224", new(3, 64, 7, 7, 2, 2, 3, 3), 224, 4),
        new("i pw 64-128 @112", Pw(64, 128), 112, 4),
        new("i dw7 128 @112", Dw(128, 7, 3), 112, 4),
        new("i 3x3 64-256 @112", C3(64, 256), 112, 4),
        new("i 3x3 256-64 @112", C3(256, 64), 112, 4),
        new("i 3x3s2 64-128 @112", C3(64, 128, 2), 112, 4),
        new("i 3x3 128-512 @56", C3(128, 512), 56, 4),
        new("i 3x3 256-1024 @28", C3(256, 1024), 28, 4),
        new("i 1x1 512-512 @16", Pw(512, 512), 16, 4),
        new("i dw3 p0 512 @16", Dw(512, 3, 0), 16, 4),
        new("i 1x1 512-2048 @14", Pw(512, 2048), 14, 4),
        new("i 1x1 2048-512 @14", Pw(2048, 512), 14, 4),
        new("i 3x3 512-640 @14", C3(512, 640), 14, 4),
    ];

    [ParamsSource(nameof(Shapes))]
    public ConvShape Shape { get; set; } = null!;

    [Params(1, 2)]
    public int Threads { get; set; }

    private float[] _x = [], _w = [], _bias = [], _y = [];
    private ComputeOptions _options = ComputeOptions.Default;

    [GlobalSetup]
    public void Setup()
    {
        _options = new ComputeOptions { Threads = Threads };
        var g = Shape.G;
        var rng = new Random(42);
        _x = Data.Spikes(rng, Shape.Frames * g.InChannels * Shape.Size * Shape.Size);
        _w = Data.Random(rng, g.WeightLength);
        _bias = Data.Random(rng, g.OutChannels);
        _y = new float[Shape.Frames * g.OutChannels * g.OutH(Shape.Size) * g.OutW(Shape.Size)];
    }

    /// <summary>The plain API: weights as given, packed inside each call (ConvWeights.Pack saves that for F=4 layers).</summary>
    [Benchmark]
    public void Forward() => Conv2d.Forward(_x, Shape.Frames, Shape.Size, Shape.Size, _w, _bias, Shape.G, _y, _options);
}

/// <summary>Folded BatchNorm and global average pooling (memory bound; no GFLOP/s column).</summary>
public class ChannelOpsBenchmarks
{
    [Params(32, 8, 4)]
    public int Size { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    private const int Frames = 128, Channels = 128;
    private float[] _x = [], _scale = [], _shift = [], _mean = [];
    private ComputeOptions _options = ComputeOptions.Default;

    [GlobalSetup]
    public void Setup()
    {
        _options = new ComputeOptions { Threads = Threads };
        var rng = new Random(1);
        _x = Data.Random(rng, Frames * Channels * Size * Size);
        _scale = Data.Random(rng, Channels);
        _shift = Data.Random(rng, Channels);
        _mean = new float[Frames * Channels];
    }

    [Benchmark]
    public void ScaleShift() => ChannelOps.ScaleShift(_x, Frames, Channels, Size * Size, _scale, _shift, _options);

    [Benchmark]
    public void SpatialMean() => ChannelOps.SpatialMean(_x, Frames, Channels, Size * Size, _mean, _options);
}
