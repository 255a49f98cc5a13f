using System.Text.Json.Nodes;
using Qsvit.Models;
using Qsvit.Quantization;
using Qsvit.Search;
using Qsvit.Tests.IO.Datasets;
using Qsvit.Tensors;

namespace Qsvit.Tests.Search;

/// <summary>Searches with corrections after quantization (issue 11): what they evaluate, what they save, what they resume.</summary>
public sealed class CorrectionRunTests
{
    private static readonly CorrectionOptions Bn = new() { BatchNorm = true, CalibrationImages = 4 };
    private static readonly QuantizationSetting Late = QuantizationSetting.Parse("32,32,32,32|32,32,4|4,4|4,4");

    [Fact]
    public void ARunResumedWithOtherCorrections_IsRefused_AndAManifestFromBeforeCorrectionsMeansNone()
    {
        using var dir = new TempDir();
        // Calibration images on the search split itself, so that only the correction field differs.
        var spec = RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 4) with { CorrectionApart = false };
        using (SearchRun.Open(spec)) { }
        var e = Assert.Throws<QsvitException>(() => SearchRun.Open(spec with { Correction = Bn }));
        Assert.Contains("correction was 'none', now 'bn on 4 images'", e.Message);

        // A manifest written before corrections existed has no such field: it was made without them.
        string manifest = Path.Combine(spec.RunDirectory!, RunStore.ManifestFile);
        var root = JsonNode.Parse(File.ReadAllText(manifest))!.AsObject();
        Assert.True(root["identity"]!.AsObject().Remove("correction"));
        File.WriteAllText(manifest, root.ToJsonString());
        Assert.Throws<QsvitException>(() => SearchRun.Open(spec with { Correction = Bn }));
        using (SearchRun.Open(spec)) { }
        Assert.Equal("none", JsonNode.Parse(File.ReadAllText(manifest))!["identity"]!["correction"]!.GetValue<string>());
    }

    [Fact]
    public void WithoutCorrections_EvaluationsQuantizeExactlyAsBefore()
    {
        using var dir = new TempDir();
        using var run = SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 4));
        var evaluated = run.Evaluator.Quantize(Late);
        var plain = ModelQuantizer.Apply(run.Model.State, run.Layout, Late, run.Quantizer);
        foreach (var key in plain.StateDict.Keys) Assert.Equal(plain.StateDict[key].Data, evaluated.StateDict[key].Data);
        Assert.True(evaluated.Correction.IsNone);
        Assert.Equal(0, run.Evaluator.CorrectionImages(10));
        Assert.Equal(0, run.Evaluator.CorrectionPasses);
    }

    [Fact]
    public void Candidates_AreEvaluatedCorrected_FromTheFirstQuantizedUnitOn_AndTheCostIsCounted()
    {
        using var dir = new TempDir();
        using var run = SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 6) with { Correction = Bn with { Bias = true } });
        var corrected = run.Evaluator.Quantize(Late);
        var plain = run.Evaluator.QuantizeWeights(Late);
        Assert.Equal("bias,bn", corrected.Correction.ToString());
        foreach (var p in run.Layout.Parameters.Where(p => p.Role == ParameterRole.RunningVar))
        {
            // Units before the first quantized one keep the fp32 statistics (and tensors); from it on they are re-estimated.
            bool quantizedSoFar = Sdtv2Layout.StageOf(p.Block) > 2 || p.Block == "CONV_S2_B2";
            if (quantizedSoFar) Assert.NotEqual(plain.StateDict[p.Key].Data, corrected.StateDict[p.Key].Data);
            else Assert.Same(plain.StateDict[p.Key], corrected.StateDict[p.Key]);
        }
        Assert.Same(corrected, run.Evaluator.Quantize(Late));   // one BN pass per setting
        Assert.Equal(2, run.Evaluator.CorrectionPasses);        // the fp32 means, then Late's BN pass
        Assert.Equal(4 + 4 * 3, run.Evaluator.CorrectionImages(3));
    }

    [Fact]
    public void PrefixReuse_GivesTheSameCorrectedResults_AsWholePasses()
    {
        using var dir = new TempDir();
        var spec = RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 8) with { Correction = Bn };
        var settings = new[] { QuantizationSetting.Uniform(32), Late, Late.With("TRAN_S4", 8), Late.With("DS_S4", 8) };
        AccuracyRecord[] Evaluate(SearchRunSpec s)
        {
            using var run = SearchRun.Open(s);
            return settings.Select(x => run.Evaluator.Accuracy(x, SearchRun.SearchSplit)).ToArray();
        }
        var reused = Evaluate(spec);
        var whole = Evaluate(spec with { CacheMegabytes = 0, RunDirectory = Path.Combine(dir.Path, "whole") });
        for (int i = 0; i < settings.Length; i++) Assert.Equal(whole[i].CorrectMask, reused[i].CorrectMask);
    }

    [Fact]
    public void ThePackedModel_CarriesTheCorrectedBatchNorms()
    {
        using var dir = new TempDir();
        using var run = SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 8) with { Correction = Bn });
        var packed = PackedModel.Load(run.SavePackedModel(Late, Path.Combine(dir.Path, "report")));
        var state = run.Evaluator.Quantize(Late).StateDict;
        const string bn = "block4.0.mlp.fc1_bn";
        var (scale, shift) = BatchNorm.Fold(state[bn + ".weight"].Data, state[bn + ".bias"].Data, state[bn + ".running_mean"].Data, state[bn + ".running_var"].Data);
        Assert.Equal(scale, packed.BatchNorm(bn).Scale);
        Assert.Equal(shift, packed.BatchNorm(bn).Shift);
        Assert.NotEqual(run.Model.State[bn + ".running_mean"].Data, state[bn + ".running_mean"].Data);
    }

    [Fact]
    public void Calibration_images_are_held_apart_from_the_search_split_and_are_the_ones_spread_over_it()
    {
        using var dir = new TempDir();
        var spec = RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 8) with { Correction = Bn };
        using var apart = SearchRun.Open(spec);
        using var shared = SearchRun.Open(spec with { CorrectionApart = false, RunDirectory = Path.Combine(dir.Path, "shared") });

        // Decisions use images 1, 3, 5, 7; the corrections calibrate on 0, 2, 4, 6, the very images they are spread over
        // when they share the search split, so the corrected networks are the same.
        var search = apart.Splits[SearchRun.SearchSplit];
        var all = shared.Splits[SearchRun.SearchSplit];
        Assert.Equal(4, search.Count);
        Assert.Equal(8, all.Count);
        var (a, b) = (new float[3 * 32 * 32], new float[3 * 32 * 32]);
        for (int i = 0; i < 4; i++)
        {
            search.Read(i, a);
            all.Read(2 * i + 1, b);
            Assert.Equal(b, a);
            Assert.Equal(all.Label(2 * i + 1), search.Label(i));
        }
        Assert.Equal(4, apart.Evaluator.CorrectionImagesUsed);
        var corrected = apart.Evaluator.Quantize(Late).StateDict;
        var reference = shared.Evaluator.Quantize(Late).StateDict;
        foreach (var key in reference.Keys) Assert.Equal(reference[key].Data, corrected[key].Data);
        Assert.Equal(4, apart.Evaluator.Accuracy(QuantizationSetting.Uniform(32), SearchRun.SearchSplit).Count);

        // The split a run decides on is part of its identity: one directory holds one or the other.
        Assert.Contains("first 8 less 4 spread evenly for the corrections", apart.Identity[SearchRun.SearchSplit]);
        apart.Dispose();
        Assert.Throws<QsvitException>(() => SearchRun.Open(spec with { CorrectionApart = false }));
        // Without corrections nothing is held apart.
        using var plain = SearchRun.Open(spec with { Correction = CorrectionOptions.None, RunDirectory = Path.Combine(dir.Path, "plain") });
        Assert.Equal(8, plain.Splits[SearchRun.SearchSplit].Count);
    }

    [Fact]
    public void Holding_apart_as_many_images_as_the_split_has_is_refused()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<QsvitException>(() => SearchRun.Open(RunFixtures.Spec(dir.Path, SearchMethod.Qsvit, images: 4) with { Correction = Bn }));
        Assert.Contains("has 4 images: it cannot hold 4 apart", e.Message);
    }
}
