namespace Qsvit.Models;

/// <summary>What a state_dict entry is to the network.</summary>
public enum ParameterRole { Weight, Bias, BnWeight, BnBias, RunningMean, RunningVar, BatchesTracked }

/// <summary>The paper's layer types.</summary>
public enum LayerKind { Conv, DwConv, PwConv, RepConv, Linear }

/// <summary>One state_dict entry under its official key, with the QSViT block it belongs to.</summary>
public sealed record ParameterInfo(string Key, int[] Shape, ParameterRole Role, string Block)
{
    public long Count => Tensors.Tensor.Count(Shape);
    /// <summary>Learned parameters (what the paper's memory footprint counts); running statistics are not.</summary>
    public bool IsLearned => Role is ParameterRole.Weight or ParameterRole.Bias or ParameterRole.BnWeight or ParameterRole.BnBias;
}

/// <summary>
/// A quantizable conv/linear weight. <see cref="Block"/> is the finest QSViT block (DS_S1_B1, CONV_S2_B1, TRAN_S3_B4, HEAD),
/// <see cref="Unit"/> the paper's block-level unit (TRAN_S3 groups TRAN_S3_B1..B6), <see cref="Projection"/> W_Q/W_K/W_V/W_O for
/// attention RepConv weights and FC1/FC2 for the MLP.
/// </summary>
public sealed record WeightInfo(string Key, int[] Shape, string Block, string Unit, int Stage, LayerKind Kind, string? Projection,
    string Label, bool IsInputLayer)
{
    public long Count => Tensors.Tensor.Count(Shape);
    public int OutChannels => Shape[0];
}

/// <summary>
/// Every parameter of an SDTv2 network in the official module order, with QSViT block names and layer types.
/// Built from the configuration alone, so memory can be accounted without weights.
/// </summary>
public sealed class Sdtv2Layout
{
    public const string Head = "HEAD";

    /// <summary>The paper's 11 block-level units in setting order: "S1 units | S2 units | S3 units | S4 units".</summary>
    public static readonly IReadOnlyList<IReadOnlyList<string>> PaperStages =
    [
        ["DS_S1_B1", "CONV_S1_B1", "DS_S1_B2", "CONV_S1_B2"],
        ["DS_S2", "CONV_S2_B1", "CONV_S2_B2"],
        ["DS_S3", "TRAN_S3"],
        ["DS_S4", "TRAN_S4"],
    ];

    public static readonly IReadOnlyList<string> PaperUnits = PaperStages.SelectMany(s => s).ToArray();

    public Sdtv2Config Config { get; }
    public IReadOnlyList<ParameterInfo> Parameters { get; }
    public IReadOnlyList<WeightInfo> Weights { get; }
    /// <summary>Finest blocks in network order: DS_S1_B1 … TRAN_S3_B1 … TRAN_S4_B2, HEAD.</summary>
    public IReadOnlyList<string> Blocks { get; }

    private readonly Dictionary<string, ParameterInfo> _byKey;
    private readonly Dictionary<string, WeightInfo> _weightByKey;

    public Sdtv2Layout(Sdtv2Config config)
    {
        config.Validate();
        Config = config;
        var b = new Builder(config);
        b.Build();
        Parameters = b.Parameters;
        Weights = b.Weights;
        Blocks = b.Parameters.Select(p => p.Block).Distinct().ToArray();
        _byKey = Parameters.ToDictionary(p => p.Key, StringComparer.Ordinal);
        _weightByKey = Weights.ToDictionary(w => w.Key, StringComparer.Ordinal);
    }

    public bool TryGetParameter(string key, out ParameterInfo info) => _byKey.TryGetValue(key, out info!);
    public bool TryGetWeight(string key, out WeightInfo info) => _weightByKey.TryGetValue(key, out info!);
    public WeightInfo Weight(string key) =>
        _weightByKey.TryGetValue(key, out var w) ? w : throw new QsvitException($"'{key}' is not a quantizable weight of this model");

    /// <summary>Total learned parameters (weights, biases, BN affine), the count the paper reports.</summary>
    /// <summary>
    /// Whether the conv/linear weight <paramref name="key"/> multiplies spikes (the output of a LIF): every layer except the
    /// stem (images), SepConv's pwconv2 (after the depthwise conv) and RepConv's depthwise and pointwise convs (after BN).
    /// </summary>
    public static bool TakesSpikes(string key) =>
        !(key.StartsWith("downsample1_1.", StringComparison.Ordinal) || key.EndsWith(".Conv.pwconv2.weight", StringComparison.Ordinal)
          || key.EndsWith(".body.2.0.weight", StringComparison.Ordinal) || key.EndsWith(".body.2.1.weight", StringComparison.Ordinal));

    public long LearnedParameterCount => Parameters.Where(p => p.IsLearned).Sum(p => p.Count);

    /// <summary>Stage of a unit or block name: 1..4, or 5 for HEAD.</summary>
    public static int StageOf(string blockOrUnit) =>
        blockOrUnit == Head ? 5 : blockOrUnit.Contains("_S1") ? 1 : blockOrUnit.Contains("_S2") ? 2 : blockOrUnit.Contains("_S3") ? 3 :
        blockOrUnit.Contains("_S4") ? 4 : throw new QsvitException($"unknown block '{blockOrUnit}'");

    /// <summary>The QSViT block of an official module path, e.g. <c>block3.0.attn.q_lif</c> → TRAN_S3_B1, <c>lif</c> → HEAD.</summary>
    public static string BlockOfModule(string modulePath)
    {
        string first = modulePath.Split('.')[0];
        return first switch
        {
            "downsample1_1" => "DS_S1_B1",
            "ConvBlock1_1" => "CONV_S1_B1",
            "downsample1_2" => "DS_S1_B2",
            "ConvBlock1_2" => "CONV_S1_B2",
            "downsample2" => "DS_S2",
            "ConvBlock2_1" => "CONV_S2_B1",
            "ConvBlock2_2" => "CONV_S2_B2",
            "downsample3" => "DS_S3",
            "downsample4" => "DS_S4",
            "block3" or "block4" => $"TRAN_S{first[^1]}_B{int.Parse(modulePath.Split('.')[1]) + 1}",
            "lif" or "head" or "head_kd" => Head,
            _ => throw new QsvitException($"'{modulePath}' is not a module of SDTv2"),
        };
    }

    private sealed class Builder(Sdtv2Config c)
    {
        public readonly List<ParameterInfo> Parameters = new();
        public readonly List<WeightInfo> Weights = new();

        public void Build()
        {
            int[] d = c.EmbedDim;
            int stem = d[0] / 2;
            DownSampling("downsample1_1", "DS_S1_B1", 1, c.InChannels, stem, 7, inputLayer: true);
            ConvBlock("ConvBlock1_1.0", "CONV_S1_B1", 1, stem);
            DownSampling("downsample1_2", "DS_S1_B2", 1, stem, d[0], 3);
            ConvBlock("ConvBlock1_2.0", "CONV_S1_B2", 1, d[0]);
            DownSampling("downsample2", "DS_S2", 2, d[0], d[1], 3);
            ConvBlock("ConvBlock2_1.0", "CONV_S2_B1", 2, d[1]);
            ConvBlock("ConvBlock2_2.0", "CONV_S2_B2", 2, d[1]);
            DownSampling("downsample3", "DS_S3", 3, d[1], d[2], 3);
            for (int j = 0; j < Sdtv2Config.Stage3Depth; j++) TransformerBlock($"block3.{j}", $"TRAN_S3_B{j + 1}", "TRAN_S3", 3, d[2]);
            DownSampling("downsample4", "DS_S4", 4, d[2], d[3], 3);
            for (int j = 0; j < Sdtv2Config.Stage4Depth; j++) TransformerBlock($"block4.{j}", $"TRAN_S4_B{j + 1}", "TRAN_S4", 4, d[3]);
            Linear("head", Head, Head, 5, d[3], c.NumClasses, null, "head");
            if (c.Kd) Linear("head_kd", Head, Head, 5, d[3], c.NumClasses, null, "head_kd");
        }

        private void Weight(string key, int[] shape, string block, string unit, int stage, LayerKind kind, string? proj, string label, bool input = false)
        {
            Parameters.Add(new ParameterInfo(key, shape, ParameterRole.Weight, block));
            Weights.Add(new WeightInfo(key, shape, block, unit, stage, kind, proj, label, input));
        }

        private void Bias(string key, int n, string block) => Parameters.Add(new ParameterInfo(key, [n], ParameterRole.Bias, block));

        private void Bn(string prefix, int n, string block)
        {
            Parameters.Add(new ParameterInfo(prefix + ".weight", [n], ParameterRole.BnWeight, block));
            Parameters.Add(new ParameterInfo(prefix + ".bias", [n], ParameterRole.BnBias, block));
            Parameters.Add(new ParameterInfo(prefix + ".running_mean", [n], ParameterRole.RunningMean, block));
            Parameters.Add(new ParameterInfo(prefix + ".running_var", [n], ParameterRole.RunningVar, block));
            Parameters.Add(new ParameterInfo(prefix + ".num_batches_tracked", [], ParameterRole.BatchesTracked, block));
        }

        private void DownSampling(string p, string block, int stage, int cin, int cout, int k, bool inputLayer = false)
        {
            Weight($"{p}.encode_conv.weight", [cout, cin, k, k], block, block, stage, LayerKind.Conv, null, $"{block}.encode_conv", inputLayer);
            Bias($"{p}.encode_conv.bias", cout, block);
            Bn($"{p}.encode_bn", cout, block);
        }

        private void ConvBlock(string p, string block, int stage, int dim)
        {
            int med = 2 * dim, hidden = dim * c.MlpRatio;
            Weight($"{p}.Conv.pwconv1.weight", [med, dim, 1, 1], block, block, stage, LayerKind.PwConv, null, $"{block}.sepconv.pwconv1");
            Bn($"{p}.Conv.bn1", med, block);
            Weight($"{p}.Conv.dwconv.weight", [med, 1, 7, 7], block, block, stage, LayerKind.DwConv, null, $"{block}.sepconv.dwconv");
            Weight($"{p}.Conv.pwconv2.weight", [dim, med, 1, 1], block, block, stage, LayerKind.PwConv, null, $"{block}.sepconv.pwconv2");
            Bn($"{p}.Conv.bn2", dim, block);
            Weight($"{p}.conv1.weight", [hidden, dim, 3, 3], block, block, stage, LayerKind.Conv, null, $"{block}.conv1");
            Bn($"{p}.bn1", hidden, block);
            Weight($"{p}.conv2.weight", [dim, hidden, 3, 3], block, block, stage, LayerKind.Conv, null, $"{block}.conv2");
            Bn($"{p}.bn2", dim, block);
        }

        private void RepConv(string p, string block, string unit, int stage, int dim, string proj)
        {
            Weight($"{p}.0.body.0.weight", [dim, dim, 1, 1], block, unit, stage, LayerKind.RepConv, proj, $"{block}.{proj}.conv1x1");
            Bn($"{p}.0.body.1.bn", dim, block);
            Weight($"{p}.0.body.2.0.weight", [dim, 1, 3, 3], block, unit, stage, LayerKind.RepConv, proj, $"{block}.{proj}.dwconv3x3");
            Weight($"{p}.0.body.2.1.weight", [dim, dim, 1, 1], block, unit, stage, LayerKind.RepConv, proj, $"{block}.{proj}.pwconv");
            Bn($"{p}.0.body.2.2", dim, block);
            Bn($"{p}.1", dim, block);
        }

        private void TransformerBlock(string p, string block, string unit, int stage, int dim)
        {
            RepConv($"{p}.attn.q_conv", block, unit, stage, dim, "W_Q");
            RepConv($"{p}.attn.k_conv", block, unit, stage, dim, "W_K");
            RepConv($"{p}.attn.v_conv", block, unit, stage, dim, "W_V");
            RepConv($"{p}.attn.proj_conv", block, unit, stage, dim, "W_O");
            int hidden = dim * c.MlpRatio;
            Linear($"{p}.mlp.fc1_conv", block, unit, stage, dim, hidden, "FC1", $"{block}.mlp.fc1", conv1d: true);
            Bn($"{p}.mlp.fc1_bn", hidden, block);
            Linear($"{p}.mlp.fc2_conv", block, unit, stage, hidden, dim, "FC2", $"{block}.mlp.fc2", conv1d: true);
            Bn($"{p}.mlp.fc2_bn", dim, block);
        }

        private void Linear(string p, string block, string unit, int stage, int cin, int cout, string? proj, string label, bool conv1d = false)
        {
            Weight($"{p}.weight", conv1d ? [cout, cin, 1] : [cout, cin], block, unit, stage, LayerKind.Linear, proj, label);
            Bias($"{p}.bias", cout, block);
        }
    }
}
