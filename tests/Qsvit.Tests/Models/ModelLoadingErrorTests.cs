using Qsvit.IO;
using Qsvit.Models;
using Qsvit.Tensors;

namespace Qsvit.Tests.Models;

/// <summary>A state_dict that does not fit the architecture, or a config that contradicts the weights, is a clear error.</summary>
public class ModelLoadingErrorTests
{
    private static readonly Sdtv2Config Tiny = new() { EmbedDim = [8, 16, 16, 16], NumHeads = 2, StemStride = 1, NumClasses = 10, Timesteps = 2, ImageHeight = 32, ImageWidth = 32 };

    [Fact]
    public void MissingKeyIsNamed()
    {
        var state = RandomWeights.Create(Tiny);
        state.Remove("block3.2.attn.k_conv.0.body.2.1.weight");
        var e = Assert.Throws<QsvitException>(() => new Sdtv2Model(Tiny, state));
        Assert.Contains("missing key 'block3.2.attn.k_conv.0.body.2.1.weight'", e.Message);
        Assert.Contains("[16, 16, 1, 1]", e.Message);
    }

    [Fact]
    public void WrongShapeNamesTheKeyAndBothShapes()
    {
        var state = RandomWeights.Create(Tiny);
        state.Set("head.weight", new Tensor(7, 16));
        var e = Assert.Throws<QsvitException>(() => new Sdtv2Model(Tiny, state));
        Assert.Contains("'head.weight': checkpoint shape [7, 16], model expects [10, 16]", e.Message);
    }

    [Fact]
    public void UnexpectedKeyIsAnErrorWhenStrict()
    {
        var state = RandomWeights.Create(Tiny);
        state.Set("extra.weight", new Tensor(3));
        Assert.Contains("unexpected key 'extra.weight'", Assert.Throws<QsvitException>(() => new Sdtv2Model(Tiny, state)).Message);
        _ = new Sdtv2Model(Tiny, state, strict: false);
    }

    [Fact]
    public void SidecarContradictingTheWeightsIsAnError()
    {
        var dir = Directory.CreateTempSubdirectory("qsvit-").FullName;
        try
        {
            var ckpt = Path.Combine(dir, "m.safetensors");
            SafeTensors.Write(ckpt, RandomWeights.Create(Tiny));
            File.WriteAllText(Path.Combine(dir, "model.json"), """{ "embed_dim": [8, 16, 32, 16], "num_heads": 2, "stem_stride": 1 }""");
            var e = Assert.Throws<QsvitException>(() => ModelLoader.Load(ckpt));
            Assert.Contains("embed_dim = [8, 16, 32, 16]", e.Message);
            Assert.Contains("[8, 16, 16, 16]", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ANonSdtv2CheckpointIsRecognised()
    {
        var dir = Directory.CreateTempSubdirectory("qsvit-").FullName;
        try
        {
            var ckpt = Path.Combine(dir, "resnet.safetensors");
            var state = new StateDict();
            state.Set("conv1.weight", new Tensor(64, 3, 7, 7));
            SafeTensors.Write(ckpt, state);
            Assert.Contains("does not look like an SDTv2", Assert.Throws<QsvitException>(() => ModelLoader.Load(ckpt)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void RandomTinyModelRuns()
    {
        var model = new Sdtv2Model(Tiny, RandomWeights.Create(Tiny));
        var images = new float[2 * 3 * 32 * 32];
        for (int i = 0; i < images.Length; i++) images[i] = (float)Math.Sin(i * 0.37);
        var logits = model.Forward(images, 2, 32, 32);
        Assert.Equal(20, logits.Length);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }
}
