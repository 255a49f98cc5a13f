using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// a·b + c rounded once, chosen per accelerator when a kernel is loaded (ILGPU leaves MathF.FusedMultiplyAdd unresolved
/// in PTX, and a branch on the accelerator type is not folded away).
/// </summary>
internal interface IFma
{
    float Fma(float a, float b, float c);
}

/// <summary>On a GPU: ILGPU emits mul.f32 and add.f32 without rounding modifiers, which ptxas contracts into fma.rn.f32.</summary>
internal readonly struct ContractedFma : IFma
{
    public float Fma(float a, float b, float c) => a * b + c;
}

/// <summary>On ILGPU's CPU accelerator (.NET code): the hardware FMA, as the CPU kernels use it.</summary>
internal readonly struct ExactFma : IFma
{
    public float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
}

/// <summary>Four floats held in registers (a row or column slice of a thread's output tile).</summary>
internal struct F4
{
    public float X, Y, Z, W;

    public F4(float x, float y, float z, float w)
    {
        X = x; Y = y; Z = z; W = w;
    }

    public static F4 Fma<TFma>(float a, F4 b, F4 c) where TFma : struct, IFma
    {
        var f = default(TFma);
        return new(f.Fma(a, b.X, c.X), f.Fma(a, b.Y, c.Y), f.Fma(a, b.Z, c.Z), f.Fma(a, b.W, c.W));
    }

    public readonly float Get(int j) => j == 0 ? X : j == 1 ? Y : j == 2 ? Z : W;
}

/// <summary>
/// Scalars of one GEMM launch. C(m, n) = Σ_k A(m, k)·B(k, n) over <see cref="Batches"/> independent problems (index z).
/// A(m, k) = a[z·ABatch + m·LdaM + k·LdaK]. B is either a strided matrix, b[z·BBatch + k·LdbK + n·LdbN], or (Conv ≠ 0)
/// the implicit im2col matrix of an NCHW input: column n = (image, oy, ox), row k = taps[k] = (c, ky, kx) packed as
/// c·256 + ky·16 + kx, so K runs in the CPU's summation order (<see cref="Tensors.ReductionOrder"/>).
/// C(m, n) = c[z·CBatch + (n / Cols)·CImage + m·LdcM + (n mod Cols)·LdcN].
/// </summary>
internal struct GemmArgs
{
    public int M, N, K, Batches, NTiles;
    /// <summary>Threads per edge of the group (E×E threads, a 4E×4E tile).</summary>
    public int GroupEdge;
    public int ABatch, LdaM, LdaK;
    public int BBatch, LdbK, LdbN;
    public int CBatch, CImage, Cols, LdcM, LdcN;
    // Implicit convolution input geometry (Conv ≠ 0).
    public int Conv, InChannels, CinG, H, W, OW, StrideH, StrideW, PadH, PadW;
    /// <summary>K is summed in segments of this length, each from zero and added to C (oneDNN's order).</summary>
    public int Segment;
    /// <summary>0: no bias; 1: the first segment's chain starts from the bias; 2: the bias is added after the first segment.</summary>
    public int BiasMode;
    /// <summary>Bias and BatchNorm channel of row m: z·RowsPerBatch + m.</summary>
    public int RowsPerBatch;
    /// <summary>Number of BatchNorms applied after the sum, each y = fma(y, scale, shift); bn holds scale0, shift0, scale1, shift1 per channel blocks.</summary>
    public int BnCount, BnChannels;
    /// <summary>Final multiplier (1 for none), applied after bias and BNs.</summary>
    public float Alpha;
}

/// <summary>
/// Scalars of a depthwise convolution launch: each group computes a TileH×TileW block of outputs in each of
/// PlanesPerGroup consecutive (frame, channel) planes from an InTileH×InTileW input tile (halo included) in shared memory.
/// Groups are numbered (plane group, tile row, tile column).
/// </summary>
internal struct DepthwiseArgs
{
    public int Planes, Channels, H, W, OH, OW, KH, KW, StrideH, StrideW, PadH, PadW, HasBias, BnCount;
    public int TileH, TileW, TilesY, TilesX, PlanesPerGroup, InTileH, InTileW;
    /// <summary>Threads per tile row: each takes the row's columns lx, lx + Strips, lx + 2·Strips, lx + 3·Strips.</summary>
    public int Strips;
    /// <summary>Output rows per thread: 1, or 2 (stride 1 only: two neighbouring rows share KH − 1 of their input rows, so each staged value is read once for both).</summary>
    public int Rows;
    /// <summary>1 when each group's input tiles are whole unpadded planes, i.e. one contiguous run of the input (RepConv's 3×3).</summary>
    public int WholePlanes;
    /// <summary>
    /// Width of a BN-pad border read on the fly (0: none): H×W is the padded map, the input holds its interior, and a
    /// border pixel of channel c is the kernel's border[c] (RepConv's BNAndPadLayer fused into its depthwise conv).
    /// </summary>
    public int Border;
    /// <summary>
    /// <see cref="GpuKernels.DepthwiseStrips{TFma, TTaps}"/> only: row pitch of the staged input tile and of the output
    /// tile (odd, so threads on neighbouring rows read different banks), and each plane's share of both tiles.
    /// </summary>
    /// <remarks><see cref="GpuKernels.DepthwiseBlocks{TFma}"/>: Pitch and PlaneFloats count 16-byte chunks, Rows counts blocks
    /// of four output rows per tile, Strips strips of four columns per tile row. <see cref="GpuKernels.DepthwisePlanes{TFma}"/>:
    /// the same units, Rows blocks of eight output rows per plane, PlanesPerGroup planes per batch.</remarks>
    public int Pitch, PlaneFloats, OutPitch, OutPlaneFloats;
    /// <summary><see cref="GpuKernels.DepthwiseBlocks{TFma}"/>: 1 when the input's rows are 16-byte chunks (W a multiple of 4, input aligned), likewise the output's.</summary>
    public int Vec, VecOut;
    /// <summary>fl(1 / Channels), for <see cref="GpuKernels.SmallDiv"/>.</summary>
    public float ChannelsInverse;
}

/// <summary>
/// Scalars of a direct convolution of a few input channels (<see cref="GpuKernels.SmallInputConv{TFma}"/>, the stem): each
/// group computes a TileH×TileW tile of outputs of one frame for <see cref="GpuKernels.SmallInputChannels"/> output channels
/// from the tile's input patch (PatchH×PatchW per channel, halo and zero padding included) in shared memory. Groups are
/// numbered (frame, channel block, tile row, tile column). The output is written <see cref="Copies"/> times,
/// <see cref="CopyStride"/> floats apart (the official model repeats the image over T).
/// </summary>
internal struct SmallInputArgs
{
    public int InChannels, H, W, OutChannels, OH, OW, KH, KW, StrideH, StrideW, PadH, PadW, K;
    public int TileH, TileW, TilesY, TilesX, ChannelBlocks, PatchH, PatchW;
    public int HasBias, BnCount, Copies, CopyStride;
}

/// <summary>Eight floats in registers: a thread's strip of outputs (<see cref="IStripTaps"/>; strips of four use <see cref="A"/> only).</summary>
internal struct F8(F4 a, F4 b)
{
    public F4 A = a, B = b;
}

/// <summary>
/// The taps of one kernel row for <see cref="GpuKernels.DepthwiseStrips{TFma, TTaps}"/>, written out for a fixed kernel
/// size and strip width so the row's inputs and weights sit in registers: X neighbouring outputs read K + X − 1 staged
/// inputs once.
/// </summary>
internal interface IStripTaps
{
    /// <summary>Kernel edge (K×K).</summary>
    int K { get; }

    /// <summary>Outputs per thread (4 or 8, neighbouring columns of a row).</summary>
    int X { get; }

    /// <summary>
    /// acc.j = fma(w[kx], row[j + kx], acc.j) for kx = 0 … K − 1 in order, j &lt; X (A holds j = 0 … 3, B j = 4 … 7). The
    /// views start at the row's first value and weight, so every load has a constant offset (one address computation
    /// per row, not one per load).
    /// </summary>
    F8 Row<TFma>(ArrayView<float> row, ArrayView<float> w, F8 acc) where TFma : struct, IFma;
}

/// <summary>3×3 taps, four outputs per thread (RepConv's BN-padded depthwise conv).</summary>
internal readonly struct Taps3 : IStripTaps
{
    public int K => 3;
    public int X => 4;

    public F8 Row<TFma>(ArrayView<float> row, ArrayView<float> w, F8 acc) where TFma : struct, IFma =>
        new(Row<TFma>(row[0], row[1], row[2], row[3], row[4], row[5], w[0], w[1], w[2], acc.A), acc.B);

    /// <summary>The row's FMAs on values and weights already in registers.</summary>
    internal static F4 Row<TFma>(float v0, float v1, float v2, float v3, float v4, float v5, float w0, float w1, float w2, F4 acc)
        where TFma : struct, IFma
    {
        var f = default(TFma);
        return new F4(
            f.Fma(w2, v2, f.Fma(w1, v1, f.Fma(w0, v0, acc.X))),
            f.Fma(w2, v3, f.Fma(w1, v2, f.Fma(w0, v1, acc.Y))),
            f.Fma(w2, v4, f.Fma(w1, v3, f.Fma(w0, v2, acc.Z))),
            f.Fma(w2, v5, f.Fma(w1, v4, f.Fma(w0, v3, acc.W))));
    }
}

/// <summary>7×7 taps, four outputs per thread (the ConvBlocks' depthwise conv on maps whose width is no multiple of 8).</summary>
internal readonly struct Taps7 : IStripTaps
{
    public int K => 7;
    public int X => 4;

    public F8 Row<TFma>(ArrayView<float> row, ArrayView<float> w, F8 acc) where TFma : struct, IFma
    {
        float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6];
        float v0 = row[0], v1 = row[1], v2 = row[2], v3 = row[3], v4 = row[4];
        float v5 = row[5], v6 = row[6], v7 = row[7], v8 = row[8], v9 = row[9];
        return new F8(new F4(
            Chain7<TFma>(acc.A.X, w0, w1, w2, w3, w4, w5, w6, v0, v1, v2, v3, v4, v5, v6),
            Chain7<TFma>(acc.A.Y, w0, w1, w2, w3, w4, w5, w6, v1, v2, v3, v4, v5, v6, v7),
            Chain7<TFma>(acc.A.Z, w0, w1, w2, w3, w4, w5, w6, v2, v3, v4, v5, v6, v7, v8),
            Chain7<TFma>(acc.A.W, w0, w1, w2, w3, w4, w5, w6, v3, v4, v5, v6, v7, v8, v9)), acc.B);
    }

    internal static float Chain7<TFma>(float s, float w0, float w1, float w2, float w3, float w4, float w5, float w6,
        float v0, float v1, float v2, float v3, float v4, float v5, float v6) where TFma : struct, IFma
    {
        var f = default(TFma);
        s = f.Fma(w0, v0, s);
        s = f.Fma(w1, v1, s);
        s = f.Fma(w2, v2, s);
        s = f.Fma(w3, v3, s);
        s = f.Fma(w4, v4, s);
        s = f.Fma(w5, v5, s);
        return f.Fma(w6, v6, s);
    }
}

/// <summary>7×7 taps, eight outputs per thread (14 staged reads and 7 weights for 56 FMAs per kernel row; maps whose width is a multiple of 8).</summary>
internal readonly struct Taps7x8 : IStripTaps
{
    public int K => 7;
    public int X => 8;

    public F8 Row<TFma>(ArrayView<float> row, ArrayView<float> w, F8 acc) where TFma : struct, IFma
    {
        float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6];
        float v0 = row[0], v1 = row[1], v2 = row[2], v3 = row[3], v4 = row[4], v5 = row[5], v6 = row[6];
        float v7 = row[7], v8 = row[8], v9 = row[9], v10 = row[10], v11 = row[11], v12 = row[12], v13 = row[13];
        return new F8(
            new F4(
                Taps7.Chain7<TFma>(acc.A.X, w0, w1, w2, w3, w4, w5, w6, v0, v1, v2, v3, v4, v5, v6),
                Taps7.Chain7<TFma>(acc.A.Y, w0, w1, w2, w3, w4, w5, w6, v1, v2, v3, v4, v5, v6, v7),
                Taps7.Chain7<TFma>(acc.A.Z, w0, w1, w2, w3, w4, w5, w6, v2, v3, v4, v5, v6, v7, v8),
                Taps7.Chain7<TFma>(acc.A.W, w0, w1, w2, w3, w4, w5, w6, v3, v4, v5, v6, v7, v8, v9)),
            new F4(
                Taps7.Chain7<TFma>(acc.B.X, w0, w1, w2, w3, w4, w5, w6, v4, v5, v6, v7, v8, v9, v10),
                Taps7.Chain7<TFma>(acc.B.Y, w0, w1, w2, w3, w4, w5, w6, v5, v6, v7, v8, v9, v10, v11),
                Taps7.Chain7<TFma>(acc.B.Z, w0, w1, w2, w3, w4, w5, w6, v6, v7, v8, v9, v10, v11, v12),
                Taps7.Chain7<TFma>(acc.B.W, w0, w1, w2, w3, w4, w5, w6, v7, v8, v9, v10, v11, v12, v13)));
    }
}

/// <summary>A thread's 4×4 outputs in <see cref="GpuKernels.DepthwiseBlocks{TFma}"/>: four rows of four neighbouring columns.</summary>
internal struct F16(F4 r0, F4 r1, F4 r2, F4 r3)
{
    public F4 R0 = r0, R1 = r1, R2 = r2, R3 = r3;

    public F16(F4 all) : this(all, all, all, all) { }
}

/// <summary>A thread's 8×4 outputs in <see cref="GpuKernels.DepthwisePlanes{TFma}"/>: eight rows of four neighbouring columns.</summary>
internal struct F4x8
{
    public F4 R0, R1, R2, R3, R4, R5, R6, R7;

    public F4x8(F4 all)
    {
        R0 = R1 = R2 = R3 = R4 = R5 = R6 = R7 = all;
    }
}

/// <summary>One row of a 7×7 kernel in registers.</summary>
internal struct W7
{
    public float A, B, C, D, E, F, G;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static W7 Load(ArrayView<float> w, int at) =>
        new() { A = w[at], B = w[at + 1], C = w[at + 2], D = w[at + 3], E = w[at + 4], F = w[at + 5], G = w[at + 6] };
}

/// <summary>
/// The FMAs of <see cref="GpuKernels.DepthwiseBlocks{TFma}"/> (7×7, padding 3), written out so that the channel's 49
/// weights, the staged row and the 16 outputs stay in registers.
/// </summary>
internal readonly struct BlockTaps7
{
    public W7 R0 { get; init; }
    public W7 R1 { get; init; }
    public W7 R2 { get; init; }
    public W7 R3 { get; init; }
    public W7 R4 { get; init; }
    public W7 R5 { get; init; }
    public W7 R6 { get; init; }

    /// <summary>The channel's kernel, rows ky = 0 … 6.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BlockTaps7 Load(ArrayView<float> w) => new()
    {
        R0 = W7.Load(w, 0), R1 = W7.Load(w, 7), R2 = W7.Load(w, 14), R3 = W7.Load(w, 21), R4 = W7.Load(w, 28), R5 = W7.Load(w, 35), R6 = W7.Load(w, 42),
    };

    /// <summary>Row <paramref name="ky"/> (a constant wherever it is called, so this folds away).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private W7 Row(int ky) => ky == 0 ? R0 : ky == 1 ? R1 : ky == 2 ? R2 : ky == 3 ? R3 : ky == 4 ? R4 : ky == 5 ? R5 : R6;

    /// <summary>
    /// The thread's outputs after its input rows j = jLo … jHi − 1 of ten (row j at chunk at + j·pitch of the tile; chunks
    /// at, at + 1, at + 2 hold map columns ox − 4 … ox + 7): each row, read once, adds taps ky = j − r to output row
    /// r = 0 … 3, kx in order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public F16 Block<TFma>(ArrayView<Floats4> tile, int at, int pitch, int jLo, int jHi, F16 acc) where TFma : struct, IFma
    {
        acc = Input<TFma>(0, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(1, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(2, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(3, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(4, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(5, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(6, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(7, tile, at, pitch, jLo, jHi, acc);
        acc = Input<TFma>(8, tile, at, pitch, jLo, jHi, acc);
        return Input<TFma>(9, tile, at, pitch, jLo, jHi, acc);
    }

    /// <summary>
    /// <see cref="Block{TFma}"/> for eight output rows (<see cref="F4x8"/>): input rows j = jLo … jHi − 1 of fourteen, each
    /// read once (three 16-byte loads) for the up to seven output rows r = j − 6 … j that use it, tap ky = j − r.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public F4x8 Block8<TFma>(ArrayView<Floats4> tile, int at, int pitch, int jLo, int jHi, F4x8 acc) where TFma : struct, IFma
    {
        acc = Input8<TFma>(0, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(1, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(2, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(3, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(4, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(5, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(6, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(7, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(8, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(9, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(10, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(11, tile, at, pitch, jLo, jHi, acc);
        acc = Input8<TFma>(12, tile, at, pitch, jLo, jHi, acc);
        return Input8<TFma>(13, tile, at, pitch, jLo, jHi, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private F4x8 Input8<TFma>(int j, ArrayView<Floats4> tile, int at, int pitch, int jLo, int jHi, F4x8 acc) where TFma : struct, IFma
    {
        if (j < jLo || j >= jHi) return acc;
        int row = at + j * pitch;
        Floats4 a = tile[row], b = tile[row + 1], c = tile[row + 2];
        if (j <= 6) acc.R0 = Row<TFma>(acc.R0, Row(j), a, b, c);
        if (j >= 1 && j <= 7) acc.R1 = Row<TFma>(acc.R1, Row(j - 1), a, b, c);
        if (j >= 2 && j <= 8) acc.R2 = Row<TFma>(acc.R2, Row(j - 2), a, b, c);
        if (j >= 3 && j <= 9) acc.R3 = Row<TFma>(acc.R3, Row(j - 3), a, b, c);
        if (j >= 4 && j <= 10) acc.R4 = Row<TFma>(acc.R4, Row(j - 4), a, b, c);
        if (j >= 5 && j <= 11) acc.R5 = Row<TFma>(acc.R5, Row(j - 5), a, b, c);
        if (j >= 6 && j <= 12) acc.R6 = Row<TFma>(acc.R6, Row(j - 6), a, b, c);
        if (j >= 7) acc.R7 = Row<TFma>(acc.R7, Row(j - 7), a, b, c);
        return acc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private F16 Input<TFma>(int j, ArrayView<Floats4> tile, int at, int pitch, int jLo, int jHi, F16 acc) where TFma : struct, IFma
    {
        if (j < jLo || j >= jHi) return acc;
        int row = at + j * pitch;
        Floats4 a = tile[row], b = tile[row + 1], c = tile[row + 2];
        if (j <= 6) acc.R0 = Row<TFma>(acc.R0, Row(j), a, b, c);
        if (j >= 1 && j <= 7) acc.R1 = Row<TFma>(acc.R1, Row(j - 1), a, b, c);
        if (j >= 2 && j <= 8) acc.R2 = Row<TFma>(acc.R2, Row(j - 2), a, b, c);
        if (j >= 3) acc.R3 = Row<TFma>(acc.R3, Row(j - 3), a, b, c);
        return acc;
    }

    /// <summary>Map columns ox − 3 … ox + 6 are a.Y … a.W, b.X … b.W, c.X … c.Z.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static F4 Row<TFma>(F4 acc, W7 w, Floats4 a, Floats4 b, Floats4 c) where TFma : struct, IFma => new(
        Taps7.Chain7<TFma>(acc.X, w.A, w.B, w.C, w.D, w.E, w.F, w.G, a.Y, a.Z, a.W, b.X, b.Y, b.Z, b.W),
        Taps7.Chain7<TFma>(acc.Y, w.A, w.B, w.C, w.D, w.E, w.F, w.G, a.Z, a.W, b.X, b.Y, b.Z, b.W, c.X),
        Taps7.Chain7<TFma>(acc.Z, w.A, w.B, w.C, w.D, w.E, w.F, w.G, a.W, b.X, b.Y, b.Z, b.W, c.X, c.Y),
        Taps7.Chain7<TFma>(acc.W, w.A, w.B, w.C, w.D, w.E, w.F, w.G, b.X, b.Y, b.Z, b.W, c.X, c.Y, c.Z));
}

/// <summary>A value for a depthwise group's staged input tile and its place there.</summary>
internal readonly struct StagedFloat(float value, int at)
{
    public readonly float Value = value;
    public readonly int At = at;
}

/// <summary>One output column of a depthwise thread: its output x and its place in the input tile.</summary>
internal readonly struct DepthwiseColumn
{
    public readonly int Ox, At;

    private DepthwiseColumn(int ox, int at)
    {
        Ox = ox;
        At = at;
    }

    /// <summary>Tile column <paramref name="lx"/>; outside the tile or the map it stores nothing and reads the tile's start.</summary>
    public static DepthwiseColumn Of(DepthwiseArgs p, int ox0, int ix0, int lx, int row)
    {
        int ox = ox0 + lx;
        if (lx >= p.TileW || ox >= p.OW) return new DepthwiseColumn(-1, 0);
        return new DepthwiseColumn(ox, row + ox * p.StrideW - p.PadW - ix0);
    }

    /// <summary>The BNs, then the store (nothing for a column outside the tile or the map).</summary>
    public static void Store<TFma>(ArrayView<float> y, ArrayView<float> bn, DepthwiseArgs p, int ch, int outRow, DepthwiseColumn c, float s)
        where TFma : struct, IFma
    {
        if (c.Ox < 0) return;
        for (int b = 0; b < p.BnCount; b++)
            s = default(TFma).Fma(s, bn[2 * b * p.Channels + ch], bn[(2 * b + 1) * p.Channels + ch]);
        y[outRow + c.Ox] = s;
    }
}

/// <summary>
/// The ILGPU kernels of the CUDA backend. Every kernel computes what the CPU kernel computes, in the same float32
/// operation order where the CPU's order is fixed (FMA chains, K segments, BN as one FMA), so the ILGPU path agrees
/// with the CPU backend to the last bit on most elements. Reductions are deterministic: no float atomics.
/// </summary>
internal static class GpuKernels
{
    /// <summary>Threads per edge of a GEMM group on a GPU (16×16 threads, 4×4 outputs each: a 64×64 tile).</summary>
    public const int GpuGroupEdge = 16, TileK = 16, MaxTile = 4 * GpuGroupEdge;
    /// <summary>Most threads of a reduction group (its shared tree is this long).</summary>
    public const int MaxReduceThreads = 256;
    /// <summary>Shared floats of a depthwise group's input tiles (16 KiB).</summary>
    public const int DepthwiseTileFloats = 4096;

    // ------------------------------------------------------------------ tiled GEMM / implicit-GEMM convolution

    /// <summary>
    /// A (4·E)×(4·E) output tile per group of E×E threads, E = <see cref="GemmArgs.GroupEdge"/> (16 on a GPU, 1 on ILGPU's
    /// CPU accelerator, where group barriers cost OS thread switches). Each thread holds 4×4 outputs in scalar registers
    /// (rows ty + E·i, columns tx + E·j, so stores coalesce); A and B tiles of 16 k-steps are staged in shared memory,
    /// and each column's input coordinates are decoded once per group into shared memory, so the K loop divides nothing.
    /// </summary>
    public static void Gemm<TFma>(ArrayView<float> a, ArrayView<float> b, ArrayView<int> taps, ArrayView<float> c,
        ArrayView<float> bias, ArrayView<float> bn, GemmArgs p) where TFma : struct, IFma
    {
        var aTile = SharedMemory.Allocate<float>(TileK * MaxTile);
        var bTile = SharedMemory.Allocate<float>(TileK * MaxTile);
        var colBase = SharedMemory.Allocate<int>(MaxTile);
        var colY = SharedMemory.Allocate<int>(MaxTile);
        var colX = SharedMemory.Allocate<int>(MaxTile);
        int e = p.GroupEdge, threads = e * e, tile = 4 * e;
        int tid = Group.IdxX, tx = tid % e, ty = tid / e;
        int nTile = Grid.IdxX % p.NTiles, z = Grid.IdxX / p.NTiles;
        int m0 = Grid.IdxY * tile, n0 = nTile * tile;

        // Decode the tile's columns once: base offset and, for a convolution, the top-left input pixel of the window.
        for (int j = tid; j < tile; j += threads)
        {
            int col = n0 + j, bse = -1, iy0 = 0, ix0 = 0;
            if (col < p.N)
            {
                if (p.Conv != 0)
                {
                    int ohw = p.Cols, img = col / ohw, pix = col - img * ohw, oy = pix / p.OW, ox = pix - oy * p.OW;
                    iy0 = oy * p.StrideH - p.PadH;
                    ix0 = ox * p.StrideW - p.PadW;
                    bse = (img * p.InChannels + z * p.CinG) * p.H * p.W;
                }
                else bse = z * p.BBatch + col * p.LdbN;
            }
            colBase[j] = bse;
            colY[j] = iy0;
            colX[j] = ix0;
        }
        Group.Barrier();

        // Initial accumulators: the bias when the first segment's chain starts from it.
        int r0 = m0 + ty, c0 = n0 + tx;
        var acc0 = Start(bias, p, z, r0);
        var acc1 = Start(bias, p, z, r0 + e);
        var acc2 = Start(bias, p, z, r0 + 2 * e);
        var acc3 = Start(bias, p, z, r0 + 3 * e);
        int segEnd = p.Segment < p.K ? p.Segment : p.K;
        int flushed = 0;
        // B loads walk (kk, column) pairs threads apart without dividing: column += dc, kk += dk (+1 on wrap).
        int dk = threads / tile, dc = threads - dk * tile;

        for (int k0 = 0; k0 < p.K; k0 += TileK)
        {
            for (int i = tid; i < tile * TileK; i += threads)
            {
                int r = i >> 4, kk = i & (TileK - 1), row = m0 + r, k = k0 + kk;
                aTile[kk * tile + r] = row < p.M && k < p.K ? a[z * p.ABatch + row * p.LdaM + k * p.LdaK] : 0f;
            }
            int bc = tid % tile, bk = tid / tile;
            for (int i = tid; i < tile * TileK; i += threads)
            {
                int k = k0 + bk, bse = colBase[bc];
                float v = 0f;
                if (bse >= 0 && k < p.K)
                {
                    if (p.Conv != 0)
                    {
                        int t = taps[k];
                        int iy = colY[bc] + ((t >> 4) & 15), ix = colX[bc] + (t & 15);
                        if (iy >= 0 && iy < p.H && ix >= 0 && ix < p.W) v = b[bse + ((t >> 8) * p.H + iy) * p.W + ix];
                    }
                    else v = b[bse + k * p.LdbK];
                }
                bTile[bk * tile + bc] = v;
                bc += dc;
                bk += dk;
                if (bc >= tile)
                {
                    bc -= tile;
                    bk++;
                }
            }
            Group.Barrier();
            int kEnd = p.K - k0 < TileK ? p.K - k0 : TileK;
            for (int kk = 0; kk < kEnd; kk++)
            {
                if (k0 + kk == segEnd)
                {
                    // A segment ends: add its sum to C (the first one writes C) and start the next from zero.
                    FlushRow<TFma>(c, bias, bn, p, z, r0, c0, e, acc0, flushed, false);
                    FlushRow<TFma>(c, bias, bn, p, z, r0 + e, c0, e, acc1, flushed, false);
                    FlushRow<TFma>(c, bias, bn, p, z, r0 + 2 * e, c0, e, acc2, flushed, false);
                    FlushRow<TFma>(c, bias, bn, p, z, r0 + 3 * e, c0, e, acc3, flushed, false);
                    flushed = 1;
                    acc0 = default;
                    acc1 = default;
                    acc2 = default;
                    acc3 = default;
                    segEnd = segEnd + p.Segment < p.K ? segEnd + p.Segment : p.K;
                }
                int ar = kk * tile + ty, br = kk * tile + tx;
                var bv = new F4(bTile[br], bTile[br + e], bTile[br + 2 * e], bTile[br + 3 * e]);
                acc0 = F4.Fma<TFma>(aTile[ar], bv, acc0);
                acc1 = F4.Fma<TFma>(aTile[ar + e], bv, acc1);
                acc2 = F4.Fma<TFma>(aTile[ar + 2 * e], bv, acc2);
                acc3 = F4.Fma<TFma>(aTile[ar + 3 * e], bv, acc3);
            }
            Group.Barrier();
        }
        FlushRow<TFma>(c, bias, bn, p, z, r0, c0, e, acc0, flushed, true);
        FlushRow<TFma>(c, bias, bn, p, z, r0 + e, c0, e, acc1, flushed, true);
        FlushRow<TFma>(c, bias, bn, p, z, r0 + 2 * e, c0, e, acc2, flushed, true);
        FlushRow<TFma>(c, bias, bn, p, z, r0 + 3 * e, c0, e, acc3, flushed, true);
    }

    private static F4 Start(ArrayView<float> bias, GemmArgs p, int z, int row)
    {
        if (p.BiasMode != 1 || row >= p.M) return default;
        float v = bias[z * p.RowsPerBatch + row];
        return new F4(v, v, v, v);
    }

    /// <summary>Adds one segment's sums to C for a thread's row (4 columns, <paramref name="step"/> apart); the last one also runs the epilogue.</summary>
    private static void FlushRow<TFma>(ArrayView<float> c, ArrayView<float> bias, ArrayView<float> bn, GemmArgs p, int z, int row,
        int col0, int step, F4 acc, int flushed, bool last) where TFma : struct, IFma
    {
        if (row >= p.M) return;
        int channel = z * p.RowsPerBatch + row;
        for (int j = 0; j < 4; j++)
        {
            int col = col0 + step * j;
            if (col >= p.N) return;
            int img = col / p.Cols, rest = col - img * p.Cols;
            int at = z * p.CBatch + img * p.CImage + row * p.LdcM + rest * p.LdcN;
            float v = acc.Get(j);
            if (flushed != 0) v = c[at] + v;
            else if (p.BiasMode == 2) v += bias[channel];
            if (last)
            {
                for (int i = 0; i < p.BnCount; i++)
                    v = default(TFma).Fma(v, bn[(2 * i) * p.BnChannels + channel], bn[(2 * i + 1) * p.BnChannels + channel]);
                if (p.Alpha != 1f) v *= p.Alpha;
            }
            c[at] = v;
        }
    }

    // ------------------------------------------------------------------ direct convolution of a few input channels (the stem)

    /// <summary>Output channels per group of <see cref="SmallInputConv{TFma}"/>, and output pixels per tile.</summary>
    public const int SmallInputChannels = 16, SmallInputPixels = 256;
    /// <summary>Shared floats of <see cref="SmallInputConv{TFma}"/>: the input patch, and the weights of a channel block ([K, 16]).</summary>
    public const int SmallInputPatchFloats = 7168, SmallInputMaxK = 256;

    /// <summary>
    /// A dense convolution of a few input channels (<see cref="SmallInputArgs"/>; the stem's 7×7 over RGB), in the order of
    /// <see cref="Gemm{TFma}"/>'s implicit convolution, so the values are that kernel's to the last bit: per output one FMA
    /// chain from zero over K in tap order (a single segment: fewer than 16 input channels), a tap outside the map
    /// reading zero, then the bias added, then the BNs. The group stages its tile's input patch and its 16 channels'
    /// weights (tap-major) in shared memory; each work item is 4 pixels (64 apart) × 4 channels, so a tap costs 8
    /// shared loads for 16 FMAs, and neighbouring threads take neighbouring pixels (contiguous loads and stores).
    /// Unlike im2col, nothing but the output is written to memory, and the copies over T come from the same registers.
    /// </summary>
    public static void SmallInputConv<TFma>(ArrayView<float> x, ArrayView<float> w, ArrayView<int> taps, ArrayView<float> bias,
        ArrayView<float> bn, ArrayView<float> y, SmallInputArgs p) where TFma : struct, IFma
    {
        var patch = SharedMemory.Allocate<float>(SmallInputPatchFloats);
        var weights = SharedMemory.Allocate<float>(SmallInputMaxK * SmallInputChannels);
        var offsets = SharedMemory.Allocate<int>(SmallInputMaxK);
        int tid = Group.IdxX, threads = Group.DimX;
        int g = Grid.IdxX, tx = g % p.TilesX;
        g /= p.TilesX;
        int ty = g % p.TilesY;
        g /= p.TilesY;
        int cb = g % p.ChannelBlocks, f = g / p.ChannelBlocks;
        int oy0 = ty * p.TileH, ox0 = tx * p.TileW, co0 = cb * SmallInputChannels;
        int iy0 = oy0 * p.StrideH - p.PadH, ix0 = ox0 * p.StrideW - p.PadW, plane = p.PatchH * p.PatchW;

        for (int e = tid; e < p.InChannels * plane; e += threads)
        {
            int c = e / plane, r = e - c * plane, py = r / p.PatchW, px = r - py * p.PatchW, iy = iy0 + py, ix = ix0 + px;
            patch[e] = iy >= 0 && iy < p.H && ix >= 0 && ix < p.W ? x[((f * p.InChannels + c) * p.H + iy) * p.W + ix] : 0f;
        }
        for (int e = tid; e < p.K * SmallInputChannels; e += threads)
        {
            int k = e / SmallInputChannels, cl = e - k * SmallInputChannels, co = co0 + cl;
            weights[e] = co < p.OutChannels ? w[co * p.K + k] : 0f;
        }
        for (int k = tid; k < p.K; k += threads)
        {
            int t = taps[k];
            offsets[k] = ((t >> 8) * p.PatchH + ((t >> 4) & 15)) * p.PatchW + (t & 15);
        }
        Group.Barrier();

        int ohw = p.OH * p.OW;
        for (int item = tid; item < SmallInputPixels; item += threads)
        {
            int slot = item & 63, cg = item >> 6;
            // The item's four pixels: tile positions slot + 64·i; one outside the tile or the map reads the patch's origin and is not stored.
            int b0 = -1, b1 = -1, b2 = -1, b3 = -1, at0 = 0, at1 = 0, at2 = 0, at3 = 0;
            SmallInputPixel(p, slot, oy0, ox0, ref b0, ref at0);
            SmallInputPixel(p, slot + 64, oy0, ox0, ref b1, ref at1);
            SmallInputPixel(p, slot + 128, oy0, ox0, ref b2, ref at2);
            SmallInputPixel(p, slot + 192, oy0, ox0, ref b3, ref at3);
            int r0 = b0 < 0 ? 0 : b0, r1 = b1 < 0 ? 0 : b1, r2 = b2 < 0 ? 0 : b2, r3 = b3 < 0 ? 0 : b3;
            F4 a0 = default, a1 = default, a2 = default, a3 = default; // a_j: channel co0 + 4·cg + j, pixels 0..3
            for (int k = 0; k < p.K; k++)
            {
                int off = offsets[k], wk = k * SmallInputChannels + 4 * cg;
                var v = new F4(patch[r0 + off], patch[r1 + off], patch[r2 + off], patch[r3 + off]);
                a0 = F4.Fma<TFma>(weights[wk], v, a0);
                a1 = F4.Fma<TFma>(weights[wk + 1], v, a1);
                a2 = F4.Fma<TFma>(weights[wk + 2], v, a2);
                a3 = F4.Fma<TFma>(weights[wk + 3], v, a3);
            }
            int co = co0 + 4 * cg;
            SmallInputStore<TFma>(y, bias, bn, p, co, f, ohw, a0, b0, b1, b2, b3, at0, at1, at2, at3);
            SmallInputStore<TFma>(y, bias, bn, p, co + 1, f, ohw, a1, b0, b1, b2, b3, at0, at1, at2, at3);
            SmallInputStore<TFma>(y, bias, bn, p, co + 2, f, ohw, a2, b0, b1, b2, b3, at0, at1, at2, at3);
            SmallInputStore<TFma>(y, bias, bn, p, co + 3, f, ohw, a3, b0, b1, b2, b3, at0, at1, at2, at3);
        }
    }

    /// <summary>Tile position <paramref name="q"/>: its window's offset in the patch (−1 outside the tile or the map) and its output pixel.</summary>
    private static void SmallInputPixel(SmallInputArgs p, int q, int oy0, int ox0, ref int patchAt, ref int pixel)
    {
        int ly = q / p.TileW, lx = q - ly * p.TileW, oy = oy0 + ly, ox = ox0 + lx;
        if (ly >= p.TileH || oy >= p.OH || ox >= p.OW) return;
        patchAt = ly * p.StrideH * p.PatchW + lx * p.StrideW;
        pixel = oy * p.OW + ox;
    }

    private static void SmallInputStore<TFma>(ArrayView<float> y, ArrayView<float> bias, ArrayView<float> bn, SmallInputArgs p, int co, int f, int ohw,
        F4 acc, int b0, int b1, int b2, int b3, int at0, int at1, int at2, int at3) where TFma : struct, IFma
    {
        if (co >= p.OutChannels) return;
        int plane = (f * p.OutChannels + co) * ohw;
        SmallInputStore1<TFma>(y, bias, bn, p, co, plane, acc.X, b0, at0);
        SmallInputStore1<TFma>(y, bias, bn, p, co, plane, acc.Y, b1, at1);
        SmallInputStore1<TFma>(y, bias, bn, p, co, plane, acc.Z, b2, at2);
        SmallInputStore1<TFma>(y, bias, bn, p, co, plane, acc.W, b3, at3);
    }

    private static void SmallInputStore1<TFma>(ArrayView<float> y, ArrayView<float> bias, ArrayView<float> bn, SmallInputArgs p, int co, int plane,
        float v, int patchAt, int pixel) where TFma : struct, IFma
    {
        if (patchAt < 0) return;
        if (p.HasBias != 0) v += bias[co];
        for (int b = 0; b < p.BnCount; b++) v = default(TFma).Fma(v, bn[2 * b * p.OutChannels + co], bn[(2 * b + 1) * p.OutChannels + co]);
        int at = plane + pixel;
        for (int t = 0; t < p.Copies; t++) y[at + t * p.CopyStride] = v;
    }

    // ------------------------------------------------------------------ cuBLAS path: im2col and the channel epilogue

    /// <summary>
    /// cols[f, k, p] = x[f0 + f, taps[k].c, oy·sh − ph + ky, ox·sw − pw + kx] (0 outside) for a chunk of frames: each frame's
    /// [K, OH·OW] column matrix, K in the layer's tap order (the order of its stored weights).
    /// </summary>
    public static void Im2Col(Index1D i, ArrayView<float> x, ArrayView<int> taps, ArrayView<float> cols, int frame0, int k,
        int inChannels, int h, int w, int ow, int ohw, int sh, int sw, int ph, int pw)
    {
        int perFrame = k * ohw, f = i / perFrame, rest = i - f * perFrame, kk = rest / ohw, pix = rest - kk * ohw;
        int oy = pix / ow, ox = pix - oy * ow, t = taps[kk];
        int iy = oy * sh - ph + ((t >> 4) & 15), ix = ox * sw - pw + (t & 15);
        cols[i] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(((frame0 + f) * inChannels + (t >> 8)) * h + iy) * w + ix] : 0f;
    }

    /// <summary>Edge of the square tile <see cref="ToPixelMajor"/> transposes through shared memory.</summary>
    public const int TransposeTile = 32;

    /// <summary>
    /// xt[n, c] = x[frame0 + n / spatial, c, n mod spatial] for the pixels n of a run of frames: [frames, C, spatial] →
    /// [frames·spatial, C], one TransposeTile² block per group (any group size), read and written contiguously.
    /// </summary>
    public static void ToPixelMajor(ArrayView<float> x, ArrayView<float> xt, int frame0, int pixels, int channels, int spatial)
    {
        var tile = SharedMemory.Allocate<float>(TransposeTile * (TransposeTile + 1));
        int cTiles = (channels + TransposeTile - 1) / TransposeTile;
        int n0 = Grid.IdxX / cTiles * TransposeTile, c0 = Grid.IdxX % cTiles * TransposeTile;
        for (int e = Group.IdxX; e < TransposeTile * TransposeTile; e += Group.DimX)
        {
            int tn = e % TransposeTile, tc = e / TransposeTile, n = n0 + tn, c = c0 + tc;
            if (n < pixels && c < channels)
            {
                int f = n / spatial;
                tile[tc * (TransposeTile + 1) + tn] = x[((long)(frame0 + f) * channels + c) * spatial + (n - f * spatial)];
            }
        }
        Group.Barrier();
        for (int e = Group.IdxX; e < TransposeTile * TransposeTile; e += Group.DimX)
        {
            int tc = e % TransposeTile, tn = e / TransposeTile, n = n0 + tn, c = c0 + tc;
            if (n < pixels && c < channels) xt[(long)n * channels + c] = tile[tc * (TransposeTile + 1) + tn];
        }
    }

    /// <summary>
    /// y[frame0 + f, m, p] = rows[m, f·spatial + p] (a GEMM's [M, pixels] result, row stride <paramref name="pixels"/>),
    /// + bias[m] when given, then each BN as one FMA: <see cref="ChannelEpilogue{TFma}"/> with the layout turned back.
    /// </summary>
    /// <remarks><paramref name="perThread"/> consecutive outputs of one plane per thread (spatial a multiple of it): fewer index divisions.</remarks>
    public static void RowsEpilogue<TFma>(Index1D i, ArrayView<float> rows, ArrayView<float> y, ArrayView<float> bias, ArrayView<float> bn,
        int hasBias, int bnCount, int channels, int spatial, int pixels, int frame0, int perThread) where TFma : struct, IFma
    {
        int first = i * perThread, mo = channels * spatial, f = first / mo, rest = first - f * mo, m = rest / spatial, p = rest - m * spatial;
        long from = (long)m * pixels + f * spatial + p, to = (long)frame0 * mo + first;
        for (int k = 0; k < perThread; k++)
        {
            float v = rows[from + k];
            if (hasBias != 0) v += bias[m];
            for (int b = 0; b < bnCount; b++) v = default(TFma).Fma(v, bn[2 * b * channels + m], bn[(2 * b + 1) * channels + m]);
            y[to + k] = v;
        }
    }

    /// <summary>y = y + bias[c] (when given), then each BN as one FMA, over [frames, channels, spatial].</summary>
    public static void ChannelEpilogue<TFma>(Index1D i, ArrayView<float> y, ArrayView<float> bias, ArrayView<float> bn, int hasBias,
        int bnCount, int channels, int spatial) where TFma : struct, IFma
    {
        int ch = (i / spatial) % channels;
        float v = y[i];
        if (hasBias != 0) v += bias[ch];
        for (int b = 0; b < bnCount; b++) v = default(TFma).Fma(v, bn[2 * b * channels + ch], bn[(2 * b + 1) * channels + ch]);
        y[i] = v;
    }

    // ------------------------------------------------------------------ depthwise (and any direct) convolution

    /// <summary>
    /// A tile of outputs per group (<see cref="DepthwiseArgs"/>): the group stages its input tile with halo in shared
    /// memory (zeros outside the map), then each thread computes four outputs of a tile row, each as bias, then an FMA
    /// chain over the taps in (ky, kx) order, then the BNs. Rows outside the map are skipped, as the CPU kernel skips
    /// them; a column outside it reads the tile's zero: fma(w, 0, s) = s, the CPU's skipped tap (only a zero sum's sign
    /// may differ), without a branch per tap. Neighbouring threads take neighbouring columns, so loads, shared reads and
    /// stores are contiguous.
    /// </summary>
    public static void Depthwise<TFma>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, ArrayView<float> border, DepthwiseArgs p) where TFma : struct, IFma
    {
        var tile = SharedMemory.Allocate<float>(DepthwiseTileFloats);
        int tid = Group.IdxX, threads = Group.DimX;
        int tilesPerPlane = p.TilesY * p.TilesX, group = Grid.IdxX;
        int planeGroup = group / tilesPerPlane, t = group - planeGroup * tilesPerPlane, tileY = t / p.TilesX, tileX = t - tileY * p.TilesX;
        int oy0 = tileY * p.TileH, ox0 = tileX * p.TileW;
        int iy0 = oy0 * p.StrideH - p.PadH, ix0 = ox0 * p.StrideW - p.PadW;
        int plane0 = planeGroup * p.PlanesPerGroup, inTile = p.InTileH * p.InTileW, hw = p.H * p.W;
        float invInTile = 1f / inTile, invInTileW = 1f / p.InTileW;
        if (p.Border != 0)
        {
            // The padded map's tile: interior pixels from x, border pixels the channel's pad value, zeros beyond the map.
            int ih = p.H - 2 * p.Border, iw = p.W - 2 * p.Border;
            for (int i = tid; i < p.PlanesPerGroup * inTile; i += threads)
            {
                int q = SmallDiv(i, invInTile), r = i - q * inTile, ry = SmallDiv(r, invInTileW), rx = r - ry * p.InTileW;
                int plane = plane0 + q, iy = iy0 + ry, ix = ix0 + rx, jy = iy - p.Border, jx = ix - p.Border;
                float v = 0f;
                if (plane < p.Planes && iy >= 0 && iy < p.H && ix >= 0 && ix < p.W)
                    v = jy >= 0 && jy < ih && jx >= 0 && jx < iw ? x[(plane * ih + jy) * iw + jx] : border[plane % p.Channels];
                tile[i] = v;
            }
        }
        else if (p.WholePlanes != 0)
        {
            // The tiles are planes plane0 … in order: one contiguous copy, nothing to decode.
            int start = plane0 * hw, end = (p.Planes - plane0) * hw;
            for (int i = tid; i < p.PlanesPerGroup * inTile; i += threads) tile[i] = i < end ? x[start + i] : 0f;
        }
        else
            for (int i = tid; i < p.PlanesPerGroup * inTile; i += threads)
            {
                int q = SmallDiv(i, invInTile), r = i - q * inTile, ry = SmallDiv(r, invInTileW), rx = r - ry * p.InTileW;
                int plane = plane0 + q, iy = iy0 + ry, ix = ix0 + rx;
                tile[i] = plane < p.Planes && iy >= 0 && iy < p.H && ix >= 0 && ix < p.W ? x[plane * hw + iy * p.W + ix] : 0f;
            }
        Group.Barrier();
        // Each thread takes four outputs of one row, Strips columns apart (neighbouring threads, neighbouring columns):
        // they share the row's taps, so each weight is loaded once for four FMAs.
        int strips = p.Strips, slotsPerPlane = (p.TileH + p.Rows - 1) / p.Rows * strips, taps = p.KH * p.KW, ohw = p.OH * p.OW;
        float invSlots = 1f / slotsPerPlane, invStrips = 1f / strips;
        for (int slot = tid; slot < p.PlanesPerGroup * slotsPerPlane; slot += threads)
        {
            int q = SmallDiv(slot, invSlots), r = slot - q * slotsPerPlane, rowSlot = SmallDiv(r, invStrips), lx = r - rowSlot * strips;
            int ly = rowSlot * p.Rows, plane = plane0 + q, oy = oy0 + ly;
            if (plane >= p.Planes || oy >= p.OH) continue;
            if (p.Rows == 2 && ly + 1 < p.TileH && oy + 1 < p.OH)
            {
                DepthwiseRowPair<TFma>(tile, w, bias, bn, y, p, q * inTile + (oy - p.PadH - iy0) * p.InTileW, plane, oy, ox0, ix0, lx);
                continue;
            }
            int ch = plane % p.Channels;
            float start = p.HasBias != 0 ? bias[ch] : 0f;
            int top = oy * p.StrideH - p.PadH;
            int kyLo = top < 0 ? -top : 0, kyHi = p.H - top < p.KH ? p.H - top : p.KH;
            int row = q * inTile + (top - iy0) * p.InTileW;
            var o0 = DepthwiseColumn.Of(p, ox0, ix0, lx, row);
            var o1 = DepthwiseColumn.Of(p, ox0, ix0, lx + strips, row);
            var o2 = DepthwiseColumn.Of(p, ox0, ix0, lx + 2 * strips, row);
            var o3 = DepthwiseColumn.Of(p, ox0, ix0, lx + 3 * strips, row);
            float s0 = start, s1 = start, s2 = start, s3 = start;
            int wBase = ch * taps;
            for (int ky = kyLo; ky < kyHi; ky++)
            {
                int wRow = wBase + ky * p.KW, tRow = ky * p.InTileW;
                for (int kx = 0; kx < p.KW; kx++)
                {
                    float wv = w[wRow + kx];
                    int at = tRow + kx;
                    s0 = default(TFma).Fma(wv, tile[o0.At + at], s0);
                    s1 = default(TFma).Fma(wv, tile[o1.At + at], s1);
                    s2 = default(TFma).Fma(wv, tile[o2.At + at], s2);
                    s3 = default(TFma).Fma(wv, tile[o3.At + at], s3);
                }
            }
            int outRow = plane * ohw + oy * p.OW;
            DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o0, s0);
            DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o1, s1);
            DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o2, s2);
            DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o3, s3);
        }
    }

    /// <summary>
    /// Outputs (oy, four columns) and (oy + 1, the same columns) of one plane of <see cref="Depthwise{TFma}"/> at stride 1,
    /// reading each staged input row once for both: input row j of the pair's KH + 1 is tap ky = j of row oy and ky = j − 1
    /// of row oy + 1. Each output's FMA chain runs its taps in (ky, kx) order from the bias, rows outside the map skipped
    /// and columns outside it reading the tile's zero, as the one-row loop: the same values bit for bit.
    /// </summary>
    private static void DepthwiseRowPair<TFma>(ArrayView<float> tile, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, DepthwiseArgs p, int row, int plane, int oy, int ox0, int ix0, int lx) where TFma : struct, IFma
    {
        int strips = p.Strips, ch = plane % p.Channels, top = oy - p.PadH, wBase = ch * p.KH * p.KW;
        var o0 = DepthwiseColumn.Of(p, ox0, ix0, lx, row);
        var o1 = DepthwiseColumn.Of(p, ox0, ix0, lx + strips, row);
        var o2 = DepthwiseColumn.Of(p, ox0, ix0, lx + 2 * strips, row);
        var o3 = DepthwiseColumn.Of(p, ox0, ix0, lx + 3 * strips, row);
        float start = p.HasBias != 0 ? bias[ch] : 0f;
        float a0 = start, a1 = start, a2 = start, a3 = start, b0 = start, b1 = start, b2 = start, b3 = start;
        for (int j = 0; j <= p.KH; j++)
        {
            int iy = top + j;
            if (iy < 0 || iy >= p.H) continue;
            int tRow = j * p.InTileW;
            for (int kx = 0; kx < p.KW; kx++)
            {
                int at = tRow + kx;
                float v0 = tile[o0.At + at], v1 = tile[o1.At + at], v2 = tile[o2.At + at], v3 = tile[o3.At + at];
                if (j < p.KH)
                {
                    float wa = w[wBase + j * p.KW + kx];
                    a0 = default(TFma).Fma(wa, v0, a0);
                    a1 = default(TFma).Fma(wa, v1, a1);
                    a2 = default(TFma).Fma(wa, v2, a2);
                    a3 = default(TFma).Fma(wa, v3, a3);
                }
                if (j > 0)
                {
                    float wb = w[wBase + (j - 1) * p.KW + kx];
                    b0 = default(TFma).Fma(wb, v0, b0);
                    b1 = default(TFma).Fma(wb, v1, b1);
                    b2 = default(TFma).Fma(wb, v2, b2);
                    b3 = default(TFma).Fma(wb, v3, b3);
                }
            }
        }
        int outRow = plane * p.OH * p.OW + oy * p.OW;
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o0, a0);
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o1, a1);
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o2, a2);
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o3, a3);
        outRow += p.OW;
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o0, b0);
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o1, b1);
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o2, b2);
        DepthwiseColumn.Store<TFma>(y, bn, p, ch, outRow, o3, b3);
    }

    /// <summary>Floats of a <see cref="DepthwiseStrips{TFma, TTaps}"/> group's output tile (16 KiB).</summary>
    public const int DepthwiseOutFloats = 4096;

    /// <summary>
    /// A stride-1 K×K depthwise conv (K = 3 or 7, <typeparamref name="TTaps"/>), same tiles and staging as
    /// <see cref="Depthwise{TFma}"/> (zeros outside the map, or the BN-pad border read on the fly) but each thread takes
    /// X = 4 or 8 neighbouring outputs of a row: per kernel row it reads K + X − 1 staged inputs and K weights into
    /// registers for X·K FMAs (the generic kernel: one shared read per FMA). Neighbouring threads take neighbouring rows (odd pitch: no
    /// bank conflicts); the results go through a shared output tile so the stores are contiguous. Each output's FMA chain
    /// is the generic kernel's: bias, taps in (ky, kx) order with rows outside the map skipped and columns outside it
    /// reading the tile's zero, then the BNs, so the values are the same bit for bit.
    /// </summary>
    public static void DepthwiseStrips<TFma, TTaps>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, ArrayView<float> border, DepthwiseArgs p) where TFma : struct, IFma where TTaps : struct, IStripTaps
    {
        var tile = SharedMemory.Allocate<float>(DepthwiseTileFloats);
        var outTile = SharedMemory.Allocate<float>(DepthwiseOutFloats);
        int tid = Group.IdxX, threads = Group.DimX, k = default(TTaps).K, xw = default(TTaps).X;
        int tilesPerPlane = p.TilesY * p.TilesX, group = Grid.IdxX;
        int planeGroup = group / tilesPerPlane, t = group - planeGroup * tilesPerPlane, tileY = t / p.TilesX, tileX = t - tileY * p.TilesX;
        int oy0 = tileY * p.TileH, ox0 = tileX * p.TileW, iy0 = oy0 - p.PadH, ix0 = ox0 - p.PadW;
        int plane0 = planeGroup * p.PlanesPerGroup, inTile = p.InTileH * p.InTileW;
        float invInTile = 1f / inTile, invInTileW = 1f / p.InTileW;
        // Four values per thread and round, loaded before any is stored: the loads are in flight together.
        int staged = p.PlanesPerGroup * inTile;
        for (int i = tid; i < staged; i += 4 * threads)
        {
            var a = StagedValue(x, border, p, i, plane0, iy0, ix0, invInTile, invInTileW);
            var b = StagedValue(x, border, p, i + threads, plane0, iy0, ix0, invInTile, invInTileW);
            var c = StagedValue(x, border, p, i + 2 * threads, plane0, iy0, ix0, invInTile, invInTileW);
            var d = StagedValue(x, border, p, i + 3 * threads, plane0, iy0, ix0, invInTile, invInTileW);
            tile[a.At] = a.Value;
            if (i + threads < staged) tile[b.At] = b.Value;
            if (i + 2 * threads < staged) tile[c.At] = c.Value;
            if (i + 3 * threads < staged) tile[d.At] = d.Value;
        }
        Group.Barrier();
        // Slots (plane, strip, row), rows fastest.
        int strips = p.Strips, slots = p.PlanesPerGroup * strips * p.TileH, kk = k * k;
        float invTileH = 1f / p.TileH, invStrips = 1f / strips;
        for (int slot = tid; slot < slots; slot += threads)
        {
            int rest = SmallDiv(slot, invTileH), ly = slot - rest * p.TileH, q = SmallDiv(rest, invStrips), lx = xw * (rest - q * strips);
            int plane = plane0 + q, oy = oy0 + ly;
            if (plane >= p.Planes || oy >= p.OH) continue;
            int ch = ChannelOf(plane, p), top = oy - p.PadH;
            float start = p.HasBias != 0 ? bias[ch] : 0f;
            var acc = new F8(new F4(start, start, start, start), new F4(start, start, start, start));
            int kyLo = top < 0 ? -top : 0, kyHi = p.H - top < k ? p.H - top : k;
            int at = q * p.PlaneFloats + (top - iy0) * p.Pitch + lx, wAt = ch * kk;
            for (int ky = kyLo; ky < kyHi; ky++)
                acc = default(TTaps).Row<TFma>(tile.SubView(at + ky * p.Pitch, k + xw - 1), w.SubView(wAt + ky * k, k), acc);
            for (int b = 0; b < p.BnCount; b++)
            {
                float scale = bn[2 * b * p.Channels + ch], shift = bn[(2 * b + 1) * p.Channels + ch];
                acc = new F8(Bn<TFma>(acc.A, scale, shift), xw > 4 ? Bn<TFma>(acc.B, scale, shift) : acc.B);
            }
            var o = outTile.SubView(q * p.OutPlaneFloats + ly * p.OutPitch + lx, xw);
            o[0] = acc.A.X;
            o[1] = acc.A.Y;
            o[2] = acc.A.Z;
            o[3] = acc.A.W;
            if (xw > 4)
            {
                o[4] = acc.B.X;
                o[5] = acc.B.Y;
                o[6] = acc.B.Z;
                o[7] = acc.B.W;
            }
        }
        Group.Barrier();
        // Contiguous stores: each plane's tile rows in order.
        int tileOut = p.TileH * p.TileW, ohw = p.OH * p.OW;
        float invTileOut = 1f / tileOut, invTileW = 1f / p.TileW;
        for (int i = tid; i < p.PlanesPerGroup * tileOut; i += threads)
        {
            int q = SmallDiv(i, invTileOut), r = i - q * tileOut, ly = SmallDiv(r, invTileW), lx = r - ly * p.TileW;
            int plane = plane0 + q, oy = oy0 + ly, ox = ox0 + lx;
            if (plane < p.Planes && oy < p.OH && ox < p.OW) y[plane * ohw + oy * p.OW + ox] = outTile[q * p.OutPlaneFloats + ly * p.OutPitch + lx];
        }
    }

    /// <summary>
    /// RepConv's BN-padded 3×3 depthwise conv on small maps, read straight from the map (no staging, no barrier): each
    /// thread takes four neighbouring outputs of a row, loads the 3 × 6 values they need (the plane's pad value where
    /// the padded map's border is) and its channel's 9 weights into registers. Groups take whole planes
    /// (<see cref="DepthwiseArgs.PlanesPerGroup"/>, <see cref="DepthwiseArgs.Strips"/> strips per row); H×W is the padded
    /// map, OH×OW = (H − 2)×(W − 2) its interior, the input. The FMA chains are <see cref="DepthwiseStrips{TFma, TTaps}"/>'s
    /// with <see cref="Taps3"/>, so the values are the same bit for bit.
    /// </summary>
    public static void DepthwiseBorder3<TFma>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, ArrayView<float> border, DepthwiseArgs p) where TFma : struct, IFma
    {
        int ih = p.OH, iw = p.OW, perPlane = ih * p.Strips, slots = p.PlanesPerGroup * perPlane;
        float invPerPlane = 1f / perPlane, invStrips = 1f / p.Strips;
        for (int slot = Group.IdxX; slot < slots; slot += Group.DimX)
        {
            int q = SmallDiv(slot, invPerPlane), r = slot - q * perPlane, oy = SmallDiv(r, invStrips), ox = 4 * (r - oy * p.Strips);
            int plane = Grid.IdxX * p.PlanesPerGroup + q;
            if (plane >= p.Planes) continue;
            int ch = ChannelOf(plane, p);
            float pad = border[ch], start = p.HasBias != 0 ? bias[ch] : 0f;
            var v = new F4(start, start, start, start);
            var wc = w.SubView(ch * 9, 9);
            v = BorderRow<TFma>(x, plane, oy - 1, ox, ih, iw, pad, wc[0], wc[1], wc[2], v);
            v = BorderRow<TFma>(x, plane, oy, ox, ih, iw, pad, wc[3], wc[4], wc[5], v);
            v = BorderRow<TFma>(x, plane, oy + 1, ox, ih, iw, pad, wc[6], wc[7], wc[8], v);
            v = Bns<TFma>(v, bn, p, ch);
            int at = (plane * ih + oy) * iw + ox;
            y[at] = v.X;
            if (ox + 1 < iw) y[at + 1] = v.Y;
            if (ox + 2 < iw) y[at + 2] = v.Z;
            if (ox + 3 < iw) y[at + 3] = v.W;
        }
    }

    /// <summary>
    /// <see cref="DepthwiseBorder3{TFma}"/> on 4 × 4 maps (CIFAR's RepConvs), one thread per plane: its four rows as four
    /// 16-byte loads issued together, its channel's weights, pad value, bias and BNs loaded once for 16 outputs (rather than
    /// once per row of four), each output row one 16-byte store. Every output is <see cref="BorderRow{TFma}"/>'s chain on the
    /// same values (the pad value left and right of each row, a row of pad values above and below the map): the same bits.
    /// x and y are 16-byte aligned (<see cref="GpuOps.Border3PlanesFit"/>).
    /// </summary>
    public static void DepthwiseBorder3Planes<TFma>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, ArrayView<float> border, DepthwiseArgs p) where TFma : struct, IFma
    {
        int plane = Grid.IdxX * Group.DimX + Group.IdxX;
        if (plane >= p.Planes) return;
        var rows = x.Cast<Floats4>();
        long at = (long)plane * 4;
        var r0 = rows[at];
        var r1 = rows[at + 1];
        var r2 = rows[at + 2];
        var r3 = rows[at + 3];
        int ch = ChannelOf(plane, p);
        float pad = border[ch], start = p.HasBias != 0 ? bias[ch] : 0f;
        var wc = w.SubView(ch * 9, 9);
        float w0 = wc[0], w1 = wc[1], w2 = wc[2], w3 = wc[3], w4 = wc[4], w5 = wc[5], w6 = wc[6], w7 = wc[7], w8 = wc[8];
        var edge = new Floats4 { X = pad, Y = pad, Z = pad, W = pad };
        var outRows = y.Cast<Floats4>();
        outRows[at] = PlaneRow<TFma>(edge, r0, r1, pad, start, w0, w1, w2, w3, w4, w5, w6, w7, w8, bn, p, ch);
        outRows[at + 1] = PlaneRow<TFma>(r0, r1, r2, pad, start, w0, w1, w2, w3, w4, w5, w6, w7, w8, bn, p, ch);
        outRows[at + 2] = PlaneRow<TFma>(r1, r2, r3, pad, start, w0, w1, w2, w3, w4, w5, w6, w7, w8, bn, p, ch);
        outRows[at + 3] = PlaneRow<TFma>(r2, r3, edge, pad, start, w0, w1, w2, w3, w4, w5, w6, w7, w8, bn, p, ch);
    }

    /// <summary>One output row of <see cref="DepthwiseBorder3Planes{TFma}"/> from the input rows above, at and below it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Floats4 PlaneRow<TFma>(Floats4 above, Floats4 row, Floats4 below, float pad, float start,
        float w0, float w1, float w2, float w3, float w4, float w5, float w6, float w7, float w8, ArrayView<float> bn, DepthwiseArgs p, int ch)
        where TFma : struct, IFma
    {
        var v = new F4(start, start, start, start);
        v = Taps3.Row<TFma>(pad, above.X, above.Y, above.Z, above.W, pad, w0, w1, w2, v);
        v = Taps3.Row<TFma>(pad, row.X, row.Y, row.Z, row.W, pad, w3, w4, w5, v);
        v = Taps3.Row<TFma>(pad, below.X, below.Y, below.Z, below.W, pad, w6, w7, w8, v);
        v = Bns<TFma>(v, bn, p, ch);
        return new Floats4 { X = v.X, Y = v.Y, Z = v.Z, W = v.W };
    }

    /// <summary>
    /// One kernel row of <see cref="DepthwiseBorder3{TFma}"/>: padded-map row jy + 1, columns ox … ox + 5, of a BN-padded map
    /// whose interior (ih × iw) is plane <paramref name="plane"/> of x (interior row jy, columns ox − 1 … ox + 4; the pad
    /// value outside), through <see cref="Taps3.Row{TFma}(float, float, float, float, float, float, float, float, float, F4)"/>.
    /// </summary>
    private static F4 BorderRow<TFma>(ArrayView<float> x, int plane, int jy, int ox, int ih, int iw, float pad, float w0, float w1, float w2, F4 acc)
        where TFma : struct, IFma
    {
        bool inside = jy >= 0 && jy < ih;
        int at = (plane * ih + jy) * iw + ox - 1;
        float v0 = inside && ox >= 1 ? x[at] : pad;
        float v1 = inside && ox < iw ? x[at + 1] : pad;
        float v2 = inside && ox + 1 < iw ? x[at + 2] : pad;
        float v3 = inside && ox + 2 < iw ? x[at + 3] : pad;
        float v4 = inside && ox + 3 < iw ? x[at + 4] : pad;
        float v5 = inside && ox + 4 < iw ? x[at + 5] : pad;
        return Taps3.Row<TFma>(v0, v1, v2, v3, v4, v5, w0, w1, w2, acc);
    }

    // ------------------------------------------------------------------ depthwise 7×7, 4×4 outputs per thread

    /// <summary>Shared 16-byte chunks of a <see cref="DepthwiseBlocks{TFma}"/> group's input tiles (24 KiB).</summary>
    public const int DepthwiseBlockChunks = 1536;

    /// <summary>
    /// The ConvBlocks' SepConv depthwise conv (7×7, stride 1, zero padding 3). Each thread computes a 4×4 block of outputs
    /// (four rows of four neighbouring columns) with the channel's 49 weights in registers: it reads each of its ten staged
    /// input rows once, as three 16-byte shared loads, for every output row that uses it. The group stages its tiles
    /// (<see cref="DepthwiseArgs"/>: PlanesPerGroup planes, or one tile of a plane, with three halo rows above and below and
    /// a chunk of four columns on each side) in 16-byte chunks (one global load each where <see cref="DepthwiseArgs.Vec"/>),
    /// and each thread stores its rows straight from registers. Each output is the generic kernel's FMA chain: bias, taps in
    /// (ky, kx) order (input row j of the thread is tap ky = j − r of its output row r, so each row's taps come in ky
    /// order), rows outside the map skipped and columns outside it reading the staged zero, then the BNs: the same values
    /// bit for bit.
    /// </summary>
    public static void DepthwiseBlocks<TFma>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, DepthwiseArgs p) where TFma : struct, IFma
    {
        const int pad = 3;
        var tile = SharedMemory.Allocate<Floats4>(DepthwiseBlockChunks);
        int tid = Group.IdxX, threads = Group.DimX;
        int tilesPerPlane = p.TilesY * p.TilesX, group = Grid.IdxX;
        int planeGroup = group / tilesPerPlane, t = group - planeGroup * tilesPerPlane, tileY = t / p.TilesX, tileX = t - tileY * p.TilesX;
        int oy0 = tileY * p.TileH, ox0 = tileX * p.TileW, plane0 = planeGroup * p.PlanesPerGroup;
        // Chunk c of staged row r of plane q holds map row oy0 − 3 + r, columns ox0 − 4 + 4c … + 3.
        int chunks = p.Pitch, planeChunks = p.PlaneFloats, staged = p.PlanesPerGroup * planeChunks;
        // Four chunks per thread and round, loaded before any is stored: the loads are in flight together.
        float invPlane = 1f / planeChunks, invChunks = 1f / chunks;
        for (int i = tid; i < staged; i += 4 * threads)
        {
            var a = StagedChunk(x, p, i, plane0, oy0 - pad, ox0 - 4, invPlane, invChunks);
            var b = StagedChunk(x, p, i + threads, plane0, oy0 - pad, ox0 - 4, invPlane, invChunks);
            var c = StagedChunk(x, p, i + 2 * threads, plane0, oy0 - pad, ox0 - 4, invPlane, invChunks);
            var d = StagedChunk(x, p, i + 3 * threads, plane0, oy0 - pad, ox0 - 4, invPlane, invChunks);
            tile[i] = a;
            if (i + threads < staged) tile[i + threads] = b;
            if (i + 2 * threads < staged) tile[i + 2 * threads] = c;
            if (i + 3 * threads < staged) tile[i + 3 * threads] = d;
        }
        Group.Barrier();
        int blocks = p.Strips * p.Rows, slots = p.PlanesPerGroup * blocks, ohw = p.OH * p.OW;
        var outQuads = y.Cast<Floats4>();
        for (int slot = tid; slot < slots; slot += threads)
        {
            // Neighbouring threads take neighbouring strips of a row: their 16-byte shared loads hit distinct banks.
            int q = slot / blocks, r = slot - q * blocks, rb = r / p.Strips, s = r - rb * p.Strips;
            int plane = plane0 + q, oy = oy0 + 4 * rb, ox = ox0 + 4 * s;
            if (plane >= p.Planes || oy >= p.OH || ox >= p.OW) continue;
            int ch = ChannelOf(plane, p);
            float start = p.HasBias != 0 ? bias[ch] : 0f;
            // Input row j is map row oy − 3 + j: rows outside the map are skipped.
            int jLo = pad - oy > 0 ? pad - oy : 0, jHi = p.H - oy + pad < 10 ? p.H - oy + pad : 10;
            var acc = BlockTaps7.Load(w.SubView(ch * 49, 49))
                .Block<TFma>(tile, q * planeChunks + 4 * rb * chunks + s, chunks, jLo, jHi, new F16(new F4(start, start, start, start)));
            for (int b = 0; b < p.BnCount; b++)
            {
                float scale = bn[2 * b * p.Channels + ch], shift = bn[(2 * b + 1) * p.Channels + ch];
                acc = new F16(Bn<TFma>(acc.R0, scale, shift), Bn<TFma>(acc.R1, scale, shift), Bn<TFma>(acc.R2, scale, shift), Bn<TFma>(acc.R3, scale, shift));
            }
            long at = (long)plane * ohw + (long)oy * p.OW + ox;
            StoreRow(y, outQuads, p, at, oy, ox, acc.R0);
            StoreRow(y, outQuads, p, at + p.OW, oy + 1, ox, acc.R1);
            StoreRow(y, outQuads, p, at + 2 * p.OW, oy + 2, ox, acc.R2);
            StoreRow(y, outQuads, p, at + 3 * p.OW, oy + 3, ox, acc.R3);
        }
    }

    /// <summary>
    /// Chunk <paramref name="i"/> of a <see cref="DepthwiseBlocks{TFma}"/> group's staged tiles (planes, rows, chunks in
    /// order; row 0 is map row <paramref name="iy0"/>, chunk 0 starts at column <paramref name="ix0"/>): the map's values,
    /// zeros outside it and past the group's planes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Floats4 StagedChunk(ArrayView<float> x, DepthwiseArgs p, int i, int plane0, int iy0, int ix0, float invPlane, float invChunks)
    {
        int q = SmallDiv(i, invPlane), r = i - q * p.PlaneFloats, row = SmallDiv(r, invChunks), c = r - row * p.Pitch;
        int plane = plane0 + q, iy = iy0 + row, ix = ix0 + 4 * c;
        if (q >= p.PlanesPerGroup || plane >= p.Planes || iy < 0 || iy >= p.H) return default;
        long at = ((long)plane * p.H + iy) * p.W + ix;
        if (p.Vec != 0) return ix >= 0 && ix < p.W ? x.Cast<Floats4>()[at >> 2] : default;
        return new Floats4
        {
            X = ix >= 0 && ix < p.W ? x[at] : 0f,
            Y = ix + 1 >= 0 && ix + 1 < p.W ? x[at + 1] : 0f,
            Z = ix + 2 >= 0 && ix + 2 < p.W ? x[at + 2] : 0f,
            W = ix + 3 >= 0 && ix + 3 < p.W ? x[at + 3] : 0f,
        };
    }

    /// <summary>Four outputs of one row of <see cref="DepthwiseBlocks{TFma}"/> at output index <paramref name="at"/>: one 16-byte store where aligned, nothing past the map.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(ArrayView<float> y, ArrayView<Floats4> quads, DepthwiseArgs p, long at, int oy, int ox, F4 v)
    {
        if (oy >= p.OH) return;
        if (p.VecOut != 0)
        {
            quads[at >> 2] = new Floats4 { X = v.X, Y = v.Y, Z = v.Z, W = v.W };
            return;
        }
        y[at] = v.X;
        if (ox + 1 < p.OW) y[at + 1] = v.Y;
        if (ox + 2 < p.OW) y[at + 2] = v.Z;
        if (ox + 3 < p.OW) y[at + 3] = v.W;
    }

    // ------------------------------------------------------------------ depthwise 7×7 on whole small planes

    /// <summary>Most shared 16-byte chunks of a <see cref="DepthwisePlanes{TFma}"/> group's planes (32 KiB; dynamic, a launch asks for what its planes take).</summary>
    public const int DepthwisePlaneChunks = 2048;

    /// <summary>
    /// The ConvBlocks' SepConv depthwise conv (7×7, stride 1, zero padding 3) on maps whose planes fit a group whole
    /// (<see cref="DepthwiseArgs"/>: batches of PlanesPerGroup planes, Strips = W / 4 strips of four columns and Rows blocks
    /// of eight output rows per plane). A group copies a batch, one contiguous run of the input, into shared memory as
    /// 16-byte chunks with a zero chunk between rows (row y at y·Pitch + 1, Pitch = W / 4 + 1; halo rows are never staged:
    /// rows outside the map are skipped), planes PlaneFloats chunks apart (≡ Strips mod 8, so the eight lanes of a 16-byte
    /// shared load, neighbouring strips and planes of one row block, hit distinct banks). Each thread computes 8 × 4
    /// outputs with the channel's 49 weights in registers, reading each of its 14 input rows once (three 16-byte loads)
    /// for every output row that uses it (<see cref="BlockTaps7.Block8{TFma}"/>), and stores its rows as 16-byte chunks.
    /// Groups take batches Grid.DimX apart, and each thread loads its first four chunks of the next batch before computing
    /// this one's outputs: the loads are in flight during the FMAs (one batch per group left a third of the issue slots
    /// idle in ncu: 2–3 groups per SM, their staging and compute in step). Each output's FMA chain is the generic kernel's:
    /// bias, taps in (ky, kx) order with rows outside the map skipped and columns outside it reading the staged zero, then
    /// the BNs: the same values bit for bit. Needs W a multiple of 4 and both views 16-byte aligned.
    /// </summary>
    public static void DepthwisePlanes<TFma>(ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, DepthwiseArgs p) where TFma : struct, IFma
    {
        var tile = SharedMemory.GetDynamic<Floats4>();
        int tid = Group.IdxX, threads = Group.DimX;
        int quads = p.Strips, pitch = p.Pitch, planeChunks = p.PlaneFloats, planeQuads = p.H * quads;
        int batches = (p.Planes + p.PlanesPerGroup - 1) / p.PlanesPerGroup;
        // The zero chunk left of each staged row (the last row's right one too); the planes' copies never overwrite them.
        int edges = p.PlanesPerGroup * (p.H + 1);
        float invEdges = 1f / (p.H + 1), invPlane = 1f / planeQuads, invQuads = 1f / quads;
        for (int e = tid; e < edges; e += threads)
        {
            int q = SmallDiv(e, invEdges);
            tile[q * planeChunks + (e - q * (p.H + 1)) * pitch] = default;
        }
        int batch = Grid.IdxX;
        if (batch >= batches) return;
        StagePlanes(tile, x, p, batch, tid, threads, 0, planeQuads, invPlane, invQuads);
        for (; batch < batches; batch += Grid.DimX)
        {
            int next = batch + Grid.DimX, nextPlane0 = next * p.PlanesPerGroup;
            int nextTotal = next < batches ? (p.Planes - nextPlane0 < p.PlanesPerGroup ? p.Planes - nextPlane0 : p.PlanesPerGroup) * planeQuads : 0;
            var nextSource = x.Cast<Floats4>().SubView(next < batches ? (long)nextPlane0 * planeQuads : 0);
            int i1 = tid + threads, i2 = tid + 2 * threads, i3 = tid + 3 * threads;
            var a = tid < nextTotal ? nextSource[tid] : default;
            var b = i1 < nextTotal ? nextSource[i1] : default;
            var c = i2 < nextTotal ? nextSource[i2] : default;
            var d = i3 < nextTotal ? nextSource[i3] : default;
            Group.Barrier(); // this batch is staged
            PlanesOutputs<TFma>(tile, w, bias, bn, y, p, batch * p.PlanesPerGroup, tid, threads, invQuads);
            if (next >= batches) break;
            Group.Barrier(); // this batch is read
            if (tid < nextTotal) tile[PlaneChunk(tid, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = a;
            if (i1 < nextTotal) tile[PlaneChunk(i1, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = b;
            if (i2 < nextTotal) tile[PlaneChunk(i2, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = c;
            if (i3 < nextTotal) tile[PlaneChunk(i3, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = d;
            StagePlanes(tile, x, p, next, tid, threads, 4 * threads, planeQuads, invPlane, invQuads);
        }
    }

    /// <summary>
    /// Chunks <paramref name="from"/> … of batch <paramref name="batch"/>'s planes (one contiguous run of the input) into a
    /// <see cref="DepthwisePlanes{TFma}"/> tile, four per thread and round, loaded before any is stored so the loads are in
    /// flight together.
    /// </summary>
    private static void StagePlanes(ArrayView<Floats4> tile, ArrayView<float> x, DepthwiseArgs p, int batch, int tid, int threads, int from,
        int planeQuads, float invPlane, float invQuads)
    {
        int plane0 = batch * p.PlanesPerGroup, planes = p.Planes - plane0 < p.PlanesPerGroup ? p.Planes - plane0 : p.PlanesPerGroup;
        int quads = p.Strips, pitch = p.Pitch, planeChunks = p.PlaneFloats;
        var source = x.Cast<Floats4>().SubView((long)plane0 * planeQuads);
        int total = planes * planeQuads;
        for (int i = from + tid; i < total; i += 4 * threads)
        {
            int i1 = i + threads, i2 = i + 2 * threads, i3 = i + 3 * threads;
            var a = source[i];
            var b = i1 < total ? source[i1] : default;
            var c = i2 < total ? source[i2] : default;
            var d = i3 < total ? source[i3] : default;
            tile[PlaneChunk(i, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = a;
            if (i1 < total) tile[PlaneChunk(i1, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = b;
            if (i2 < total) tile[PlaneChunk(i2, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = c;
            if (i3 < total) tile[PlaneChunk(i3, planeQuads, quads, pitch, planeChunks, invPlane, invQuads)] = d;
        }
    }

    /// <summary>Where chunk <paramref name="i"/> of a <see cref="DepthwisePlanes{TFma}"/> batch's run of the input goes in its tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int PlaneChunk(int i, int planeQuads, int quads, int pitch, int planeChunks, float invPlane, float invQuads)
    {
        int q = SmallDiv(i, invPlane), r = i - q * planeQuads, row = SmallDiv(r, invQuads);
        return q * planeChunks + row * pitch + 1 + r - row * quads;
    }

    /// <summary>The outputs of the staged planes <paramref name="plane0"/> … of a <see cref="DepthwisePlanes{TFma}"/> group: slots (row block, plane, strip), strips fastest.</summary>
    private static void PlanesOutputs<TFma>(ArrayView<Floats4> tile, ArrayView<float> w, ArrayView<float> bias, ArrayView<float> bn,
        ArrayView<float> y, DepthwiseArgs p, int plane0, int tid, int threads, float invQuads) where TFma : struct, IFma
    {
        const int pad = 3, rows = 8;
        int quads = p.Strips, pitch = p.Pitch, planeChunks = p.PlaneFloats;
        int planes = p.Planes - plane0 < p.PlanesPerGroup ? p.Planes - plane0 : p.PlanesPerGroup;
        int perBlock = planes * quads, slots = p.Rows * perBlock, ohw = p.H * p.W;
        float invPerBlock = 1f / perBlock;
        var outQuads = y.Cast<Floats4>();
        for (int slot = tid; slot < slots; slot += threads)
        {
            int rb = SmallDiv(slot, invPerBlock), r = slot - rb * perBlock, q = SmallDiv(r, invQuads), s = r - q * quads;
            int plane = plane0 + q, oy = rows * rb, ch = ChannelOf(plane, p);
            float start = p.HasBias != 0 ? bias[ch] : 0f;
            // Input row j of the thread is map row oy − 3 + j: rows outside the map are skipped.
            int jLo = pad - oy > 0 ? pad - oy : 0, jHi = p.H - oy + pad < rows + 6 ? p.H - oy + pad : rows + 6;
            var acc = BlockTaps7.Load(w.SubView(ch * 49, 49))
                .Block8<TFma>(tile, q * planeChunks + (oy - pad) * pitch + s, pitch, jLo, jHi, new F4x8(new F4(start, start, start, start)));
            for (int b = 0; b < p.BnCount; b++)
            {
                float scale = bn[2 * b * p.Channels + ch], shift = bn[(2 * b + 1) * p.Channels + ch];
                acc.R0 = Bn<TFma>(acc.R0, scale, shift);
                acc.R1 = Bn<TFma>(acc.R1, scale, shift);
                acc.R2 = Bn<TFma>(acc.R2, scale, shift);
                acc.R3 = Bn<TFma>(acc.R3, scale, shift);
                acc.R4 = Bn<TFma>(acc.R4, scale, shift);
                acc.R5 = Bn<TFma>(acc.R5, scale, shift);
                acc.R6 = Bn<TFma>(acc.R6, scale, shift);
                acc.R7 = Bn<TFma>(acc.R7, scale, shift);
            }
            long o = ((long)plane * ohw + (long)oy * p.W) / 4 + s;
            int wq = quads;
            StoreQuad(outQuads, o, oy < p.H, acc.R0);
            StoreQuad(outQuads, o + wq, oy + 1 < p.H, acc.R1);
            StoreQuad(outQuads, o + 2 * wq, oy + 2 < p.H, acc.R2);
            StoreQuad(outQuads, o + 3 * wq, oy + 3 < p.H, acc.R3);
            StoreQuad(outQuads, o + 4 * wq, oy + 4 < p.H, acc.R4);
            StoreQuad(outQuads, o + 5 * wq, oy + 5 < p.H, acc.R5);
            StoreQuad(outQuads, o + 6 * wq, oy + 6 < p.H, acc.R6);
            StoreQuad(outQuads, o + 7 * wq, oy + 7 < p.H, acc.R7);
        }
    }

    /// <summary>Four outputs as one 16-byte store, nothing for a row past the map.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreQuad(ArrayView<Floats4> quads, long at, bool inside, F4 v)
    {
        if (inside) quads[at] = new Floats4 { X = v.X, Y = v.Y, Z = v.Z, W = v.W };
    }

    /// <summary>Four outputs of channel <paramref name="ch"/> through the layer's BNs in order (each one FMA: <see cref="Bn{TFma}"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static F4 Bns<TFma>(F4 v, ArrayView<float> bn, DepthwiseArgs p, int ch) where TFma : struct, IFma
    {
        for (int b = 0; b < p.BnCount; b++) v = Bn<TFma>(v, bn[2 * b * p.Channels + ch], bn[(2 * b + 1) * p.Channels + ch]);
        return v;
    }

    /// <summary>Each of four values through one BN as one FMA.</summary>
    private static F4 Bn<TFma>(F4 v, float scale, float shift) where TFma : struct, IFma
    {
        var f = default(TFma);
        return new F4(f.Fma(v.X, scale, shift), f.Fma(v.Y, scale, shift), f.Fma(v.Z, scale, shift), f.Fma(v.W, scale, shift));
    }

    /// <summary>plane mod Channels: by the float reciprocal where <see cref="SmallDiv"/> is exact (planes &lt; 2²¹), else by an integer division.</summary>
    private static int ChannelOf(int plane, DepthwiseArgs p) =>
        p.Planes <= 1 << 21 ? plane - SmallDiv(plane, p.ChannelsInverse) * p.Channels : plane % p.Channels;

    /// <summary>
    /// Input tile element <paramref name="i"/> of a <see cref="DepthwiseStrips{TFma, TTaps}"/> group (planes, rows, columns
    /// in order) and where it goes in the pitched tile: the interior value, the plane's BN-pad value on its border, or
    /// zero outside the map (or past the group's planes or tile).
    /// </summary>
    private static StagedFloat StagedValue(ArrayView<float> x, ArrayView<float> border, DepthwiseArgs p, int i, int plane0, int iy0, int ix0,
        float invInTile, float invInTileW)
    {
        int inTile = p.InTileH * p.InTileW;
        int q = SmallDiv(i, invInTile), r = i - q * inTile, ry = SmallDiv(r, invInTileW), rx = r - ry * p.InTileW;
        int plane = plane0 + q, iy = iy0 + ry, ix = ix0 + rx, jy = iy - p.Border, jx = ix - p.Border;
        int ih = p.H - 2 * p.Border, iw = p.W - 2 * p.Border;
        float v = 0f;
        if (q < p.PlanesPerGroup && plane < p.Planes && iy >= 0 && iy < p.H && ix >= 0 && ix < p.W)
            v = jy >= 0 && jy < ih && jx >= 0 && jx < iw ? x[(plane * ih + jy) * iw + jx] : border[ChannelOf(plane, p)];
        return new StagedFloat(v, q * p.PlaneFloats + ry * p.Pitch + rx);
    }

    /// <summary>
    /// ⌊i / d⌋ for 0 ≤ i &lt; 2^21 and d ≥ 1 from <paramref name="inverse"/> = fl(1/d): (i + ½)/d lies at least ½/d from an
    /// integer and the two float roundings move it by less than (i/d)·2^-23 &lt; ¼/d, so the floor is exact. A few
    /// instructions where an integer division by a runtime divisor takes dozens (the depthwise tiles' index arithmetic).
    /// </summary>
    internal static int SmallDiv(int i, float inverse) => (int)((i + 0.5f) * inverse);

    // ------------------------------------------------------------------ spike-driven self-attention on small planes

    /// <summary>Shared floats of a <see cref="SmallAttention"/> group: K, V and Q of one plane (rows at <see cref="SmallAttentionPitch"/>), and its kv.</summary>
    public const int SmallAttentionFloats = 4096;

    /// <summary>Row pitch of K, V and Q in <see cref="SmallAttention"/>'s shared memory: the token count made odd.</summary>
    public static int SmallAttentionPitch(int tokens) => tokens | 1;

    /// <summary>
    /// SDSA of one (frame, head) plane per group, where K, V, Q ([d, N] each) and kv ([d, d]) fit shared memory (CIFAR's 4×4
    /// maps: N = 16): kv[i, j] = Σ_n K[i, n]·V[j, n], then out[j, n] = (Σ_i kv[i, j]·Q[i, n])·scale. One launch instead of
    /// two batched library GEMMs over tiny matrices. q, k, v are spikes, so every product is 0 or 1 and every sum an
    /// integer below 2²⁴: exact in any order, the fp32 SGEMMs' result bit for bit.
    /// </summary>
    public static void SmallAttention(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> output, int d, int tokens, float scale)
    {
        var shared = SharedMemory.Allocate<float>(SmallAttentionFloats);
        // Rows of K, V and Q at an odd pitch: the threads of a warp read rows j, j + 1, … of V in different banks.
        int tid = Group.IdxX, threads = Group.DimX, slice = d * tokens, at = Grid.IdxX * slice, pitch = SmallAttentionPitch(tokens), rows = d * pitch;
        float invD = 1f / d, invTokens = 1f / tokens;
        for (int i = tid; i < slice; i += threads)
        {
            float kk = k[at + i], vv = v[at + i], qq = q[at + i]; // three loads in flight before the stores
            int r = SmallDiv(i, invTokens), to = r * pitch + i - r * tokens;
            shared[to] = kk;
            shared[rows + to] = vv;
            shared[2 * rows + to] = qq;
        }
        Group.Barrier();
        int kvAt = 3 * rows;
        KeyValues(shared, d, tokens, pitch, kvAt, invD);
        Group.Barrier();
        for (int e = tid; e < slice; e += threads) output[at + e] = AttentionSum(shared, e, d, tokens, pitch, kvAt, invTokens) * scale;
    }

    /// <summary>
    /// kv[i, j] = Σ_n K[i, n]·V[j, n] into shared[kvAt …] (d × d), the group's threads sharing the sums, from the K and V
    /// tiles at the start of <paramref name="shared"/> (rows at <paramref name="pitch"/>, V after K's d rows).
    /// </summary>
    private static void KeyValues(ArrayView<float> shared, int d, int tokens, int pitch, int kvAt, float invD)
    {
        for (int e = Group.IdxX; e < d * d; e += Group.DimX)
        {
            int i = SmallDiv(e, invD), j = e - i * d;
            var kRow = shared.SubView(i * pitch, tokens);
            var vRow = shared.SubView((d + j) * pitch, tokens);
            float s = 0f;
            for (int n = 0; n < tokens; n++) s += kRow[n] * vRow[n];
            shared[kvAt + e] = s;
        }
    }

    /// <summary>Σ_i kv[i, j]·Q[i, n] for element e = j·tokens + n of a plane (Q's tile after K's and V's), before the scale.</summary>
    private static float AttentionSum(ArrayView<float> shared, int e, int d, int tokens, int pitch, int kvAt, float invTokens)
    {
        int j = SmallDiv(e, invTokens), n = e - j * tokens, qAt = 2 * d * pitch + n;
        float s = 0f;
        for (int i = 0; i < d; i++) s += shared[kvAt + i * d + j] * shared[qAt + i * pitch];
        return s;
    }

    /// <summary>Shared floats of a <see cref="SmallAttentionLif"/> group: <see cref="SmallAttention"/>'s, and four membranes per element of a plane.</summary>
    public const int SmallAttentionLifFloats = 6144;

    /// <summary>
    /// MS_Block's attention core on small planes, one (image, head) per group, its T frames in order: the LIF of q, k and v
    /// (threshold <paramref name="threshold"/>) from their pre-activations, <see cref="SmallAttention"/>'s SDSA of those
    /// spikes, and attn_lif (<paramref name="attentionThreshold"/>) of its output, written as spikes. Every element keeps its
    /// four membranes in shared memory from step to step (the same thread owns it at every step); each step is the LIF
    /// kernel's arithmetic and the attention's exact integer sums, so the spikes are those of the five ops bit for bit,
    /// without writing or reading the three spike maps and the attention's output. With <paramref name="countSlot"/> ≥ 0 the
    /// spikes of the four layers are added to counts[countSlot + 0 … 3] (integer atomics, once per group).
    /// </summary>
    public static void SmallAttentionLif(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> spikes, ArrayView<long> counts,
        int batch, int heads, int d, int tokens, int timesteps, float scale, float threshold, float attentionThreshold, int countSlot)
    {
        var shared = SharedMemory.Allocate<float>(SmallAttentionLifFloats);
        var fired = SharedMemory.Allocate<int>(4);
        int tid = Group.IdxX, threads = Group.DimX, slice = d * tokens, pitch = SmallAttentionPitch(tokens), rows = d * pitch;
        int b = Grid.IdxX / heads, head = Grid.IdxX - b * heads;
        int kvAt = 3 * rows, membranes = kvAt + d * d; // q, k, v and attn membranes: slice floats each
        float invD = 1f / d, invTokens = 1f / tokens;
        for (int i = tid; i < 4 * slice; i += threads) shared[membranes + i] = 0f;
        for (int j = tid; j < 4; j += threads) fired[j] = 0;
        Group.Barrier(); // another thread may own an element whose membrane this one cleared
        int firedQ = 0, firedK = 0, firedV = 0, firedA = 0;
        for (int t = 0; t < timesteps; t++)
        {
            int at = ((t * batch + b) * heads + head) * slice;
            for (int i = tid; i < slice; i += threads)
            {
                float kk = k[at + i], vv = v[at + i], qq = q[at + i]; // three loads in flight before the stores
                int r = SmallDiv(i, invTokens), to = r * pitch + i - r * tokens;
                shared[to] = LifStep(shared, membranes + slice + i, kk, threshold, ref firedK);
                shared[rows + to] = LifStep(shared, membranes + 2 * slice + i, vv, threshold, ref firedV);
                shared[2 * rows + to] = LifStep(shared, membranes + i, qq, threshold, ref firedQ);
            }
            Group.Barrier();
            KeyValues(shared, d, tokens, pitch, kvAt, invD);
            Group.Barrier();
            for (int e = tid; e < slice; e += threads)
                spikes[at + e] = LifStep(shared, membranes + 3 * slice + e, AttentionSum(shared, e, d, tokens, pitch, kvAt, invTokens) * scale,
                    attentionThreshold, ref firedA);
            Group.Barrier(); // the next step overwrites the spike tiles and kv
        }
        if (countSlot < 0) return;
        if (firedQ != 0) Atomic.Add(ref fired[0], firedQ);
        if (firedK != 0) Atomic.Add(ref fired[1], firedK);
        if (firedV != 0) Atomic.Add(ref fired[2], firedV);
        if (firedA != 0) Atomic.Add(ref fired[3], firedA);
        Group.Barrier();
        for (int j = tid; j < 4; j += threads)
            if (fired[j] != 0) Atomic.Add(ref counts[countSlot + j], (long)fired[j]);
    }

    /// <summary>One LIF step of the neuron whose membrane is shared[at] (<see cref="Lif"/>'s arithmetic): the spike, as 0 or 1.</summary>
    internal static float LifStep(ArrayView<float> shared, int at, float x, float threshold, ref int fired)
    {
        float v = shared[at];
        float h = v + (x - v) * 0.5f;
        bool fire = h >= threshold;
        shared[at] = fire ? 0f : h;
        fired += fire ? 1 : 0;
        return fire ? 1f : 0f;
    }

    // ------------------------------------------------------------------ LIF over T

    /// <summary>
    /// MultiStepLIF over T time-major steps of <paramref name="perStep"/> neurons, one thread per neuron:
    /// H = V + (X − V)·0.5, S = H ≥ Vth, V = S ? 0 : H. Writes spikes, H when <paramref name="keepMembrane"/> ≠ 0, and adds
    /// the group's spike count to counts[slot] (integer atomics: the total is exact and order-free); slot &lt; 0 counts
    /// nothing (a plain pass: no atomics on one address from every group).
    /// </summary>
    public static void Lif(ArrayView<float> x, ArrayView<float> spikes, ArrayView<float> membrane, ArrayView<long> counts,
        int perStep, int timesteps, float threshold, int keepMembrane, int slot)
    {
        var groupCount = SharedMemory.Allocate<int>(1);
        int n = Grid.GlobalIndex.X;
        bool count = slot >= 0;   // the same for the whole group, so the barriers below are reached by all its threads
        if (count)
        {
            if (Group.IdxX == 0) groupCount[0] = 0;
            Group.Barrier();
        }
        int fired = 0;
        if (n < perStep)
        {
            float v = 0f;
            // Four steps' inputs are loaded before their stores (which might alias them for all the compiler knows), so
            // the loads overlap instead of waiting one after another.
            for (int t0 = 0; t0 < timesteps; t0 += 4)
            {
                var xs = LoadSteps(x, t0 * perStep + n, perStep, timesteps - t0);
                for (int j = 0; j < 4 && t0 + j < timesteps; j++)
                {
                    int at = (t0 + j) * perStep + n;
                    float h = v + (xs.Get(j) - v) * 0.5f; // (x − v)·0.5 is exact, so a contracted FMA gives the same value
                    bool fire = h >= threshold;
                    spikes[at] = fire ? 1f : 0f;
                    if (keepMembrane != 0) membrane[at] = h;
                    v = fire ? 0f : h;
                    fired += fire ? 1 : 0;
                }
            }
        }
        if (!count) return;
        if (fired != 0) Atomic.Add(ref groupCount[0], fired);
        Group.Barrier();
        if (Group.IdxX == 0 && groupCount[0] != 0) Atomic.Add(ref counts[slot], (long)groupCount[0]);
    }

    /// <summary>
    /// x += y, then <see cref="Lif"/> of x (no recorder) in one pass, one thread per neuron: each step's sum is rounded
    /// once and stored, and the LIF reads it, exactly as the Add kernel followed by the LIF kernel.
    /// </summary>
    public static void AddLif(Index1D n, ArrayView<float> x, ArrayView<float> y, ArrayView<float> spikes, int perStep, int timesteps, float threshold)
    {
        float v = 0f;
        for (int t0 = 0; t0 < timesteps; t0 += 4)
        {
            // Four steps' loads before their stores (see Lif).
            var xs = LoadSteps(x, t0 * perStep + n, perStep, timesteps - t0);
            var ys = LoadSteps(y, t0 * perStep + n, perStep, timesteps - t0);
            for (int j = 0; j < 4 && t0 + j < timesteps; j++)
            {
                int at = (t0 + j) * perStep + n;
                float sum = xs.Get(j) + ys.Get(j);
                x[at] = sum;
                float h = v + (sum - v) * 0.5f;
                bool fire = h >= threshold;
                spikes[at] = fire ? 1f : 0f;
                v = fire ? 0f : h;
            }
        }
    }

    /// <summary>view[at + j·step] for j &lt; min(4, count), zeros beyond.</summary>
    private static F4 LoadSteps(ArrayView<float> view, int at, int step, int count) => new(
        view[at],
        count > 1 ? view[at + step] : 0f,
        count > 2 ? view[at + 2 * step] : 0f,
        count > 3 ? view[at + 3 * step] : 0f);

    // ------------------------------------------------------------------ elementwise glue

    /// <summary>x += y over [4·i, 4·i + 4) ∩ [0, length): the eight loads in flight before the stores.</summary>
    public static void Add(Index1D i, ArrayView<float> x, ArrayView<float> y, int length)
    {
        int at = 4 * i;
        if (at + 3 < length)
        {
            float x0 = x[at], x1 = x[at + 1], x2 = x[at + 2], x3 = x[at + 3];
            float y0 = y[at], y1 = y[at + 1], y2 = y[at + 2], y3 = y[at + 3];
            x[at] = x0 + y0;
            x[at + 1] = x1 + y1;
            x[at + 2] = x2 + y2;
            x[at + 3] = x3 + y3;
            return;
        }
        for (int j = at; j < length; j++) x[j] = x[j] + y[j];
    }

    /// <summary>x[t·block + i] = x[i] for t ≥ 1: the official model repeats the image over T.</summary>
    public static void RepeatOverTime(Index1D i, ArrayView<float> x, int block) => x[block + i] = x[i % block];

    /// <summary>RepConv's BNAndPadLayer: the map inside a border of <paramref name="pad"/> pixels filled with the per-channel value BN(0).</summary>
    public static void PadBorder(Index1D i, ArrayView<float> inner, ArrayView<float> values, ArrayView<float> padded,
        int channels, int h, int w, int pad)
    {
        int ph = h + 2 * pad, pw = w + 2 * pad, planeLen = ph * pw, plane = i / planeLen, rest = i - plane * planeLen;
        int y = rest / pw - pad, xx = rest % pw - pad;
        padded[i] = y >= 0 && y < h && xx >= 0 && xx < w ? inner[(plane * h + y) * w + xx] : values[plane % channels];
    }

    /// <summary>output[row] = Σ x[row, :] (in order) · (1 / spatial), one thread per (frame, channel) row.</summary>
    public static void SpatialMean(Index1D row, ArrayView<float> x, ArrayView<float> output, int spatial, float inverse)
    {
        float s = 0f;
        int at = row * spatial;
        for (int j = 0; j < spatial; j++) s += x[at + j];
        output[row] = s * inverse;
    }

    /// <summary>
    /// logits[b, j] = mean over t of perStep[t·batch + b, j] (summed in t order, divided by T), and with kd the mean of
    /// both heads' results, as the CPU computes it.
    /// </summary>
    public static void MeanOverTime(Index1D i, ArrayView<float> head, ArrayView<float> headKd, ArrayView<float> logits,
        int batch, int classes, int timesteps, int kd)
    {
        int b = i / classes, j = i - b * classes;
        float s = 0f, s2 = 0f;
        for (int t = 0; t < timesteps; t++)
        {
            int at = (t * batch + b) * classes + j;
            s += head[at];
            if (kd != 0) s2 += headKd[at];
        }
        s /= timesteps;
        if (kd != 0) s = (s + s2 / timesteps) / 2f;
        logits[i] = s;
    }

    // ------------------------------------------------------------------ deterministic reductions

    /// <summary>
    /// Per-group partial of Σ (x − reference)² in double (reference optional: hasReference = 0 gives Σ x²), over a fixed
    /// contiguous chunk per group, tree-reduced in a fixed order; and the number of positions where the spikes differ
    /// (integer atomics). Run <see cref="SumPartials"/> after it.
    /// </summary>
    public static void SquaredDiffPartials(ArrayView<float> x, ArrayView<float> reference, int hasReference,
        ArrayView<float> spikes, ArrayView<float> refSpikes, int hasSpikes, int length, int chunk,
        ArrayView<double> partials, ArrayView<long> mismatches, int slot)
    {
        var tree = SharedMemory.Allocate<double>(MaxReduceThreads);
        var groupMismatch = SharedMemory.Allocate<int>(1);
        int tid = Group.IdxX, start = Grid.IdxX * chunk, end = start + chunk < length ? start + chunk : length;
        if (tid == 0) groupMismatch[0] = 0;
        double s = 0;
        int differ = 0;
        int threads = Group.DimX; // a power of two
        for (int j = start + tid; j < end; j += threads)
        {
            double d = hasReference != 0 ? (double)x[j] - reference[j] : x[j];
            s += d * d;
            if (hasSpikes != 0 && (spikes[j] != 0f) != (refSpikes[j] != 0f)) differ++;
        }
        tree[tid] = s;
        Group.Barrier();
        for (int half = threads / 2; half > 0; half /= 2)
        {
            if (tid < half) tree[tid] = tree[tid] + tree[tid + half];
            Group.Barrier();
        }
        if (differ != 0) Atomic.Add(ref groupMismatch[0], differ);
        Group.Barrier();
        if (tid == 0)
        {
            partials[Grid.IdxX] = tree[0];
            if (groupMismatch[0] != 0) Atomic.Add(ref mismatches[slot], (long)groupMismatch[0]);
        }
    }

    /// <summary>One thread: sums[slot] += Σ partials[0..count) in index order.</summary>
    public static void SumPartials(Index1D i, ArrayView<double> partials, int count, ArrayView<double> sums, int slot)
    {
        double s = 0;
        for (int j = 0; j < count; j++) s += partials[j];
        sums[slot] = sums[slot] + s;
    }
}
