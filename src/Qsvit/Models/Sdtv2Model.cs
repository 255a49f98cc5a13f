using System.Numerics.Tensors;
using Qsvit.IO;
using Qsvit.Snn;
using Qsvit.Tensors;

namespace Qsvit.Models;

/// <summary>
/// Inference for the official SDTv2 (classification/models.py, Spiking_vit_MetaFormer) in eval mode.
/// Activations are time-first frames [T·B, C, H, W] (PyTorch's x.flatten(0, 1)). BatchNorms run as PyTorch runs them
/// unless <see cref="FoldBatchNorm"/> folds them into the preceding convs.
/// Not thread-safe: one instance per thread (kernels parallelize internally).
/// </summary>
public sealed class Sdtv2Model
{
    public Sdtv2Config Config { get; }
    public Sdtv2Layout Layout { get; }
    /// <summary>The weights this instance runs (fp32 or fake-quantized), under the official keys.</summary>
    public StateDict State { get; }
    /// <summary>LIF layers in forward call order.</summary>
    public IReadOnlyList<string> LifNames { get; }
    /// <summary>BatchNorms merged into conv weights: faster, rounding differs from PyTorch in the last bits.</summary>
    public bool FoldBatchNorm { get; }

    private readonly ConvBn _stem;
    private readonly ConvBlock[] _convBlocks;
    private readonly ConvBn[] _downsamples; // downsample1_2, 2, 3, 4
    private readonly TransformerBlock[] _blocks3, _blocks4;
    private readonly float[] _headW, _headB;
    private readonly float[]? _headKdW, _headKdB;
    private readonly Arena _arena = new();

    public Sdtv2Model(Sdtv2Config config, StateDict state, bool strict = true, bool foldBatchNorm = false)
    {
        config.Validate();
        bool fold = FoldBatchNorm = foldBatchNorm;
        Config = config;
        Layout = new Sdtv2Layout(config);
        StateDictCheck.Validate(Layout, state, strict);
        State = state;

        int[] d = config.EmbedDim;
        _stem = new ConvBn(state, "downsample1_1.encode_conv.weight", "downsample1_1.encode_conv.bias",
            new ConvGeometry(config.InChannels, d[0] / 2, 7, 7, config.StemStride, config.StemStride, 3, 3), fold, "downsample1_1.encode_bn");
        _convBlocks =
        [
            new ConvBlock(state, "ConvBlock1_1.0", d[0] / 2, config.MlpRatio, fold),
            new ConvBlock(state, "ConvBlock1_2.0", d[0], config.MlpRatio, fold),
            new ConvBlock(state, "ConvBlock2_1.0", d[1], config.MlpRatio, fold),
            new ConvBlock(state, "ConvBlock2_2.0", d[1], config.MlpRatio, fold),
        ];
        _downsamples =
        [
            DownSampling(state, "downsample1_2", d[0] / 2, d[0], 2, fold),
            DownSampling(state, "downsample2", d[0], d[1], 2, fold),
            DownSampling(state, "downsample3", d[1], d[2], 2, fold),
            DownSampling(state, "downsample4", d[2], d[3], 1, fold),
        ];
        _blocks3 = Enumerable.Range(0, Sdtv2Config.Stage3Depth).Select(j => new TransformerBlock(state, $"block3.{j}", d[2], config, fold)).ToArray();
        _blocks4 = Enumerable.Range(0, Sdtv2Config.Stage4Depth).Select(j => new TransformerBlock(state, $"block4.{j}", d[3], config, fold)).ToArray();
        _headW = state["head.weight"].Data;
        _headB = state["head.bias"].Data;
        if (config.Kd)
        {
            _headKdW = state["head_kd.weight"].Data;
            _headKdB = state["head_kd.bias"].Data;
        }
        LifNames = BuildLifNames();
    }

    private static ConvBn DownSampling(StateDict s, string p, int cin, int cout, int stride, bool fold) =>
        new ConvBn(s, $"{p}.encode_conv.weight", $"{p}.encode_conv.bias", new ConvGeometry(cin, cout, 3, 3, stride, stride, 1, 1), fold, $"{p}.encode_bn");

    /// <summary>
    /// Logits [batch, classes] for normalized NCHW images [batch, InChannels, H, W], averaged over the T timesteps
    /// (and over head and head_kd with kd).
    /// </summary>
    public float[] Forward(ReadOnlySpan<float> images, int batch, int height, int width, ILifObserver? observer = null)
    {
        int c0 = Config.InChannels;
        if (images.Length < (long)batch * c0 * height * width)
            throw new ArgumentException($"images hold {images.Length} floats, need {batch}x{c0}x{height}x{width}");
        _arena.Release(0);
        var ctx = new Pass(this, observer, batch);
        int T = Config.Timesteps;

        // The official model repeats the image over T; the stem conv sees identical frames, so run it once and replicate.
        var input = _arena.Rent((long)batch * c0 * height * width);
        images[..(batch * c0 * height * width)].CopyTo(input);
        int h = _stem.OutH(height), w = _stem.OutW(width), ch = _stem.Geometry.OutChannels;
        int frame = ch * h * w;
        long maxStream = MaxStreamLength(batch, h, w);
        var x = _arena.Rent(maxStream);
        _stem.Run(input, batch, height, width, x);
        for (int t = 1; t < T; t++) Array.Copy(x, 0, x, (long)t * batch * frame, (long)batch * frame);

        var y = _arena.Rent(maxStream);
        _convBlocks[0].Run(ctx, x, ch, h, w);
        (x, y, ch, h, w) = ctx.Down(_downsamples[0], x, y, ch, h, w);
        _convBlocks[1].Run(ctx, x, ch, h, w);
        (x, y, ch, h, w) = ctx.Down(_downsamples[1], x, y, ch, h, w);
        _convBlocks[2].Run(ctx, x, ch, h, w);
        _convBlocks[3].Run(ctx, x, ch, h, w);
        (x, y, ch, h, w) = ctx.Down(_downsamples[2], x, y, ch, h, w);
        foreach (var b in _blocks3) b.Run(ctx, x, h, w);
        (x, _, ch, h, w) = ctx.Down(_downsamples[3], x, y, ch, h, w);
        foreach (var b in _blocks4) b.Run(ctx, x, h, w);
        return Head(ctx, x, ch, h * w);
    }

    private float[] Head(Pass ctx, float[] x, int ch, int spatial)
    {
        int frames = ctx.Frames, classes = Config.NumClasses, T = Config.Timesteps, batch = ctx.Batch;
        var pooled = _arena.Rent((long)frames * ch);
        ChannelOps.SpatialMean(x.AsSpan(0, frames * ch * spatial), frames, ch, spatial, pooled);
        var spikes = ctx.Lif(pooled, frames * ch, MultiStepLif.DefaultThreshold);
        var perStep = _arena.Rent((long)frames * classes);
        var logits = new float[batch * classes];
        // Both heads read the spikes of the final lif (the reference outputs agree with this, not with head(x)).
        MeanOverTime(spikes, _headW, _headB, perStep, logits);
        if (_headKdW is not null)
        {
            var kd = new float[batch * classes];
            MeanOverTime(spikes, _headKdW, _headKdB!, perStep, kd);
            for (int i = 0; i < logits.Length; i++) logits[i] = (logits[i] + kd[i]) / 2f;
        }
        return logits;

        void MeanOverTime(float[] features, float[] weight, float[] bias, float[] buffer, float[] result)
        {
            Gemm.Sgemm(frames, classes, ch, features.AsSpan(0, frames * ch), false, weight, true, buffer.AsSpan(0, frames * classes));
            for (int f = 0; f < frames; f++) TensorPrimitives.Add(buffer.AsSpan(f * classes, classes), bias, buffer.AsSpan(f * classes, classes));
            for (int b = 0; b < batch; b++)
            {
                var dst = result.AsSpan(b * classes, classes);
                for (int t = 0; t < T; t++) TensorPrimitives.Add(dst, buffer.AsSpan((t * batch + b) * classes, classes), dst);
                TensorPrimitives.Divide(dst, T, dst);
            }
        }
    }

    private long MaxStreamLength(int batch, int h, int w)
    {
        int[] d = Config.EmbedDim;
        long frames = (long)batch * Config.Timesteps;
        int h2 = (h + 1) / 2, w2 = (w + 1) / 2;
        return frames * Math.Max((long)d[0] / 2 * h * w, (long)d[0] * h2 * w2);
    }

    private IReadOnlyList<string> BuildLifNames()
    {
        var names = new List<string>();
        void Conv(string p) => names.AddRange([$"{p}.Conv.lif1", $"{p}.Conv.lif2", $"{p}.lif1", $"{p}.lif2"]);
        void Block(string p) => names.AddRange([$"{p}.attn.head_lif", $"{p}.attn.q_lif", $"{p}.attn.k_lif", $"{p}.attn.v_lif",
            $"{p}.attn.attn_lif", $"{p}.mlp.fc1_lif", $"{p}.mlp.fc2_lif"]);
        Conv("ConvBlock1_1.0");
        names.Add("downsample1_2.encode_lif");
        Conv("ConvBlock1_2.0");
        names.Add("downsample2.encode_lif");
        Conv("ConvBlock2_1.0");
        Conv("ConvBlock2_2.0");
        names.Add("downsample3.encode_lif");
        for (int j = 0; j < Sdtv2Config.Stage3Depth; j++) Block($"block3.{j}");
        names.Add("downsample4.encode_lif");
        for (int j = 0; j < Sdtv2Config.Stage4Depth; j++) Block($"block4.{j}");
        names.Add("lif");
        return names;
    }

    /// <summary>State of one forward pass: the frame count, the LIF call counter and the observer.</summary>
    private sealed class Pass(Sdtv2Model model, ILifObserver? observer, int batch)
    {
        private int _lifIndex;
        public int Batch => batch;
        public int Frames => batch * model.Config.Timesteps;
        public Arena Arena => model._arena;

        /// <summary>Spikes of a LIF layer over [T, …] data, from the arena.</summary>
        public float[] Lif(float[] input, long length, float threshold)
        {
            var spikes = Arena.Rent(length);
            float[]? membrane = observer is { WantsMembrane: true } ? Arena.Rent(length) : null;
            long count = MultiStepLif.Forward(input, spikes, (int)length, model.Config.Timesteps, threshold, membrane);
            observer?.Observe(_lifIndex, model.LifNames[_lifIndex], membrane is null ? default : membrane.AsSpan(0, (int)length),
                spikes.AsSpan(0, (int)length), count);
            _lifIndex++;
            return spikes;
        }

        /// <summary>MS_DownSampling with encode_lif: writes the new stream into <paramref name="into"/> and swaps buffers.</summary>
        public (float[] X, float[] Y, int C, int H, int W) Down(ConvBn conv, float[] x, float[] into, int c, int h, int w)
        {
            int mark = Arena.Mark();
            var s = Lif(x, (long)Frames * c * h * w, MultiStepLif.DefaultThreshold);
            conv.Run(s, Frames, h, w, into);
            Arena.Release(mark);
            return (into, x, conv.Geometry.OutChannels, conv.OutH(h), conv.OutW(w));
        }
    }

    /// <summary>MS_ConvBlock: x += SepConv(x); x += bn2(conv2(lif2(bn1(conv1(lif1(x)))))).</summary>
    private sealed class ConvBlock
    {
        private readonly ConvBn _pw1, _dw, _pw2, _conv1, _conv2;

        public ConvBlock(StateDict s, string p, int dim, int mlpRatio, bool fold)
        {
            int med = 2 * dim, hidden = dim * mlpRatio;
            _pw1 = new ConvBn(s, $"{p}.Conv.pwconv1.weight", null, new ConvGeometry(dim, med, 1, 1), fold, $"{p}.Conv.bn1");
            _dw = new ConvBn(s, $"{p}.Conv.dwconv.weight", null, new ConvGeometry(med, med, 7, 7, 1, 1, 3, 3, med), fold);
            _pw2 = new ConvBn(s, $"{p}.Conv.pwconv2.weight", null, new ConvGeometry(med, dim, 1, 1), fold, $"{p}.Conv.bn2");
            _conv1 = new ConvBn(s, $"{p}.conv1.weight", null, new ConvGeometry(dim, hidden, 3, 3, 1, 1, 1, 1), fold, $"{p}.bn1");
            _conv2 = new ConvBn(s, $"{p}.conv2.weight", null, new ConvGeometry(hidden, dim, 3, 3, 1, 1, 1, 1), fold, $"{p}.bn2");
        }

        public void Run(Pass ctx, float[] x, int c, int h, int w)
        {
            int frames = ctx.Frames;
            long n = (long)frames * c * h * w;
            int mark = ctx.Arena.Mark();
            var s1 = ctx.Lif(x, n, MultiStepLif.DefaultThreshold);
            var a = ctx.Arena.Rent(n * 2);
            _pw1.Run(s1, frames, h, w, a);
            var s2 = ctx.Lif(a, n * 2, MultiStepLif.DefaultThreshold);
            _dw.Run(s2, frames, h, w, a);
            var e = ctx.Arena.Rent(n);
            _pw2.Run(a, frames, h, w, e);
            TensorPrimitives.Add(x.AsSpan(0, (int)n), e.AsSpan(0, (int)n), x.AsSpan(0, (int)n));
            ctx.Arena.Release(mark);

            var s3 = ctx.Lif(x, n, MultiStepLif.DefaultThreshold);
            long hiddenN = n / c * _conv1.Geometry.OutChannels;
            var f = ctx.Arena.Rent(hiddenN);
            _conv1.Run(s3, frames, h, w, f);
            var s4 = ctx.Lif(f, hiddenN, MultiStepLif.DefaultThreshold);
            var g = ctx.Arena.Rent(n);
            _conv2.Run(s4, frames, h, w, g);
            TensorPrimitives.Add(x.AsSpan(0, (int)n), g.AsSpan(0, (int)n), x.AsSpan(0, (int)n));
            ctx.Arena.Release(mark);
        }
    }

    /// <summary>RepConv + BatchNorm: BN-padded 1x1 conv, 3x3 depthwise (no padding), 1x1 conv, two BNs.</summary>
    private sealed class RepConvBn
    {
        private readonly ConvBn _conv1x1, _dw, _pw;

        public RepConvBn(StateDict s, string p, int dim, bool fold)
        {
            // Folding BNAndPadLayer's BN into the 1x1 conv makes its bias equal the pad value BN(0).
            _conv1x1 = new ConvBn(s, $"{p}.0.body.0.weight", null, new ConvGeometry(dim, dim, 1, 1), fold, $"{p}.0.body.1.bn");
            _dw = new ConvBn(s, $"{p}.0.body.2.0.weight", null, new ConvGeometry(dim, dim, 3, 3, 1, 1, 0, 0, dim), fold);
            _pw = new ConvBn(s, $"{p}.0.body.2.1.weight", null, new ConvGeometry(dim, dim, 1, 1), fold, $"{p}.0.body.2.2", $"{p}.1");
        }

        public void Run(Pass ctx, float[] spikes, int c, int h, int w, float[] output)
        {
            int frames = ctx.Frames, ph = h + 2, pw = w + 2;
            int mark = ctx.Arena.Mark();
            var inner = ctx.Arena.Rent((long)frames * c * h * w);
            _conv1x1.Run(spikes, frames, h, w, inner);
            var padded = ctx.Arena.Rent((long)frames * c * ph * pw);
            var pad = _conv1x1.FoldedPad ?? _conv1x1.PadValues;
            for (int fc = 0; fc < frames * c; fc++)
            {
                var plane = padded.AsSpan(fc * ph * pw, ph * pw);
                plane.Fill(pad[fc % c]);
                for (int y = 0; y < h; y++)
                    inner.AsSpan((fc * h + y) * w, w).CopyTo(plane.Slice((y + 1) * pw + 1, w));
            }
            _dw.Run(padded, frames, ph, pw, inner);
            _pw.Run(inner, frames, h, w, output);
            ctx.Arena.Release(mark);
        }
    }

    /// <summary>MS_Block: x += proj(attn_lif(SDSA(q, k, v))); x += MLP(x).</summary>
    private sealed class TransformerBlock
    {
        private readonly RepConvBn _q, _k, _v, _proj;
        private readonly ConvBn _fc1, _fc2;
        private readonly int _heads;

        public TransformerBlock(StateDict s, string p, int dim, Sdtv2Config config, bool fold)
        {
            _q = new RepConvBn(s, $"{p}.attn.q_conv", dim, fold);
            _k = new RepConvBn(s, $"{p}.attn.k_conv", dim, fold);
            _v = new RepConvBn(s, $"{p}.attn.v_conv", dim, fold);
            _proj = new RepConvBn(s, $"{p}.attn.proj_conv", dim, fold);
            int hidden = dim * config.MlpRatio;
            _fc1 = new ConvBn(s, $"{p}.mlp.fc1_conv.weight", $"{p}.mlp.fc1_conv.bias", new ConvGeometry(dim, hidden, 1, 1), fold, $"{p}.mlp.fc1_bn");
            _fc2 = new ConvBn(s, $"{p}.mlp.fc2_conv.weight", $"{p}.mlp.fc2_conv.bias", new ConvGeometry(hidden, dim, 1, 1), fold, $"{p}.mlp.fc2_bn");
            _heads = config.NumHeads;
        }

        public void Run(Pass ctx, float[] x, int h, int w)
        {
            int frames = ctx.Frames, c = _fc2.Geometry.OutChannels, tokens = h * w;
            long n = (long)frames * c * tokens;
            int mark = ctx.Arena.Mark();
            var s = ctx.Lif(x, n, MultiStepLif.DefaultThreshold);
            var q = ctx.Arena.Rent(n);
            var k = ctx.Arena.Rent(n);
            var v = ctx.Arena.Rent(n);
            _q.Run(ctx, s, c, h, w, q);
            _k.Run(ctx, s, c, h, w, k);
            _v.Run(ctx, s, c, h, w, v);
            var sq = ctx.Lif(q, n, MultiStepLif.DefaultThreshold);
            var sk = ctx.Lif(k, n, MultiStepLif.DefaultThreshold);
            var sv = ctx.Lif(v, n, MultiStepLif.DefaultThreshold);
            SpikeDrivenSelfAttention(sq, sk, sv, q, frames, c, tokens);
            var sa = ctx.Lif(q, n, MultiStepLif.AttentionThreshold);
            _proj.Run(ctx, sa, c, h, w, k);
            TensorPrimitives.Add(x.AsSpan(0, (int)n), k.AsSpan(0, (int)n), x.AsSpan(0, (int)n));
            ctx.Arena.Release(mark);

            var m1 = ctx.Lif(x, n, MultiStepLif.DefaultThreshold);
            long hiddenN = n / c * _fc1.Geometry.OutChannels;
            var hid = ctx.Arena.Rent(hiddenN);
            _fc1.Run(m1, frames, 1, tokens, hid);
            var m2 = ctx.Lif(hid, hiddenN, MultiStepLif.DefaultThreshold);
            var o = ctx.Arena.Rent(n);
            _fc2.Run(m2, frames, 1, tokens, o);
            TensorPrimitives.Add(x.AsSpan(0, (int)n), o.AsSpan(0, (int)n), x.AsSpan(0, (int)n));
            ctx.Arena.Release(mark);
        }

        /// <summary>
        /// SDSA per frame and head on channel-major [C, N] data: out_h = ((Q_h·(K_hᵀ·V_h))·0.125)ᵀ, written as
        /// (K_h·V_hᵀ)ᵀ·Q_h over the [d, N] slices, which lands directly in the official [C, N] output layout.
        /// </summary>
        private void SpikeDrivenSelfAttention(float[] q, float[] k, float[] v, float[] output, int frames, int c, int tokens)
        {
            int d = c / _heads, heads = _heads, planes = frames * heads;
            void One(int idx, float[] kv)
            {
                int off = idx * d * tokens;
                Gemm.Sgemm(d, d, tokens, k.AsSpan(off, d * tokens), false, v.AsSpan(off, d * tokens), true, kv);
                var dst = output.AsSpan(off, d * tokens);
                Gemm.Sgemm(d, tokens, d, kv, true, q.AsSpan(off, d * tokens), false, dst);
                TensorPrimitives.Multiply(dst, 0.125f, dst);
            }
            if (Compute.Threads == 1) { var kv = new float[d * d]; for (int i = 0; i < planes; i++) One(i, kv); return; }
            Parallel.For(0, planes, Compute.Options, () => new float[d * d], (i, _, kv) => { One(i, kv); return kv; }, _ => { });
        }
    }
}
