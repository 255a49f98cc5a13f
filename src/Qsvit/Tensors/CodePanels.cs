using System.Diagnostics;
using System.Runtime.Intrinsics;

namespace Qsvit.Tensors;

/// <summary>
/// Integer weight codes of a dense or grouped (not depthwise) convolution held in the fp32 GEMM's panel layout (MR rows
/// per panel, K in <see cref="ReductionOrder.TapOrder"/>, as <see cref="ConvWeights"/> packs them) at 1, 2 or 4 bytes per
/// weight, with one scale per output channel. <see cref="Expand"/> turns them into fp32 weights for one call in a single
/// vectorised pass: value = (float)code · scale, the values <see cref="Quantization.Quantizer.Dequantize"/> gives, bit for bit.
/// For packed layers whose input is real-valued: the weights stay integer at rest, and no unpack or reorder runs per call.
/// </summary>
internal sealed unsafe class CodePanels
{
    private readonly sbyte[]? _s8;
    private readonly short[]? _s16;
    private readonly int[]? _s32;
    /// <summary>The scale of each panel row ([groups · panels · MR]; 0 in padding rows).</summary>
    private readonly float[] _rowScales;
    private readonly long _stride;
    private readonly int _k, _mr, _panels;

    public ConvGeometry Geometry { get; }
    public Isa Isa { get; }

    /// <param name="rows">fill(row0, rows, dst): integer weights of output channels [row0, row0 + rows), each row [Cin/groups, kH, kW].</param>
    /// <param name="min">Smallest integer weight (picks the storage width with <paramref name="max"/>).</param>
    /// <param name="scales">One scale per output channel.</param>
    public CodePanels(ConvGeometry g, Isa isa, int min, int max, ReadOnlySpan<float> scales, Action<int, int, Span<int>> rows)
    {
        g.Validate();
        if (g.IsDepthwise) throw new ArgumentException("depthwise weights are not packed into panels", nameof(g));
        if (scales.Length != g.OutChannels) throw new ArgumentException($"{scales.Length} scales for {g.OutChannels} output channels", nameof(scales));
        Geometry = g;
        Isa = IsaInfo.Clamp(isa);
        int coutG = g.OutChannels / g.Groups;
        _k = g.InChannels / g.Groups * g.KernelH * g.KernelW;
        _mr = IsaInfo.Mr(Isa);
        _panels = (coutG + _mr - 1) / _mr;
        _stride = GemmCore.PackedALength(coutG, _k, Isa);
        long length = _stride * g.Groups;
        if (min >= sbyte.MinValue && max <= sbyte.MaxValue) _s8 = new sbyte[length];
        else if (min >= short.MinValue && max <= short.MaxValue) _s16 = new short[length];
        else _s32 = new int[length];
        _rowScales = new float[g.Groups * _panels * _mr];
        var order = ReductionOrder.TapOrder(g.InChannels / g.Groups, g.KernelH, g.KernelW);
        var tile = new int[_mr * _k];
        for (int grp = 0; grp < g.Groups; grp++)
            for (int ip = 0; ip < _panels; ip++)
            {
                int row0 = grp * coutG + ip * _mr, n = Math.Min(_mr, coutG - ip * _mr);
                rows(row0, n, tile.AsSpan(0, n * _k));
                long at = grp * _stride + (long)ip * _k * _mr;
                for (int r = 0; r < n; r++)
                {
                    _rowScales[(grp * _panels + ip) * _mr + r] = scales[row0 + r];
                    for (int p = 0; p < _k; p++) Set(at + (long)p * _mr + r, tile[r * _k + order[p]]);
                }
            }
    }

    private void Set(long i, int v)
    {
        if (_s8 is not null) _s8[i] = (sbyte)v;
        else if (_s16 is not null) _s16[i] = (short)v;
        else _s32![i] = v;
    }

    /// <summary>The fp32 weights for one call, in a pooled buffer (dispose it after the call).</summary>
    public ConvWeights Expand() => ConvWeights.Rent(Geometry, Isa, (dst, stride, _) =>
    {
        Debug.Assert(stride == _stride);
        fixed (sbyte* p8 = _s8)
        fixed (short* p16 = _s16)
        fixed (int* p32 = _s32)
        fixed (float* ps = _rowScales)
            for (int panel = 0; panel < Geometry.Groups * _panels; panel++)
            {
                int grp = panel / _panels, ip = panel % _panels;
                long at = grp * _stride + (long)ip * _k * _mr;
                float* d = dst + at, s = ps + panel * _mr;
                if (_s8 is not null) Panel(p8 + at, d, s);
                else if (_s16 is not null) Panel(p16 + at, d, s);
                else Panel(p32 + at, d, s);
            }
    });

    // One panel: d[p·MR + r] = code[p·MR + r] · s[r]. Eight-row panels (Vector512's MR) take one Vector256 per K position.
    private void Panel(sbyte* c, float* d, float* s)
    {
        int p = 0;
        if (_mr == 8 && Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Load(s);
            for (; p < _k; p++)
            {
                var w = Vector128.WidenLower(Vector128.CreateScalar(*(long*)(c + p * 8)).AsSByte());
                var i = Vector256.Create(Vector128.WidenLower(w), Vector128.WidenUpper(w));
                (Vector256.ConvertToSingle(i) * vs).Store(d + p * 8);
            }
        }
        for (; p < _k; p++)
            for (int r = 0; r < _mr; r++) d[p * _mr + r] = c[p * _mr + r] * s[r];
    }

    private void Panel(short* c, float* d, float* s)
    {
        int p = 0;
        if (_mr == 8 && Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Load(s);
            for (; p < _k; p++)
            {
                var w = Vector128.Load(c + p * 8);
                var i = Vector256.Create(Vector128.WidenLower(w), Vector128.WidenUpper(w));
                (Vector256.ConvertToSingle(i) * vs).Store(d + p * 8);
            }
        }
        for (; p < _k; p++)
            for (int r = 0; r < _mr; r++) d[p * _mr + r] = c[p * _mr + r] * s[r];
    }

    private void Panel(int* c, float* d, float* s)
    {
        for (int p = 0; p < _k; p++)
            for (int r = 0; r < _mr; r++) d[p * _mr + r] = c[p * _mr + r] * s[r];
    }
}
