using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

public class ReductionOrderTests
{
    [Fact]
    public void TapOrder_BlocksOf16ChannelsThenKernelPositions()
    {
        var order = ReductionOrder.TapOrder(20, 2, 1);
        // Block 0: ky=0 for channels 0..15, then ky=1; block 1 (channels 16..19) likewise.
        int[] expected =
        [
            ..Enumerable.Range(0, 16).Select(c => c * 2), ..Enumerable.Range(0, 16).Select(c => c * 2 + 1),
            ..Enumerable.Range(16, 4).Select(c => c * 2), ..Enumerable.Range(16, 4).Select(c => c * 2 + 1),
        ];
        Assert.Equal(expected, order);
        Assert.Equal(Enumerable.Range(0, 40), ReductionOrder.TapOrder(40, 1, 1));
    }

    /// <summary>Segment lengths PyTorch 2.11's oneDNN was seen to use (bench/pytorch/order_probe.py on the device).</summary>
    [Theory]
    [InlineData(128, 128, 14, 14, 80)]   // RepConv 1x1 at 14x14: 80 + 48
    [InlineData(160, 160, 14, 14, 80)]   // 80 + 80
    [InlineData(128, 512, 1, 196, 128)]  // MLP fc1 (Conv1d): one segment
    [InlineData(512, 128, 1, 196, 256)]  // MLP fc2: 256 + 256
    [InlineData(640, 160, 1, 196, 256)]
    [InlineData(32, 16, 112, 112, 32)]   // big maps: one segment (the L2 aliasing check does not cut it)
    [InlineData(128, 64, 28, 28, 128)]
    [InlineData(128, 128, 4, 4, 128)]    // CIFAR model, stage 3
    [InlineData(768, 192, 1, 16, 256)]
    public void PointwiseSegment_MatchesOneDnn(int channels, int outChannels, int h, int w, int expected)
        => Assert.Equal(expected, ReductionOrder.PointwiseSegment(channels, outChannels, h, w));

    [Fact]
    public void Segments_DirectConvolutionsAdd16ChannelBlocksAndTheBiasAfterTheFirst()
    {
        Assert.Equal((144, true), ReductionOrder.Segments(new ConvGeometry(64, 16, 3, 3, PadH: 1, PadW: 1), 32, 32));
        Assert.Equal((784, true), ReductionOrder.Segments(new ConvGeometry(3, 16, 7, 7, 2, 2, 3, 3), 224, 224));
        Assert.Equal((80, false), ReductionOrder.Segments(new ConvGeometry(128, 128, 1, 1), 14, 14));
        // 1x1 layers whose channels are not multiples of 16 are not oneDNN's 1x1 kernel's: direct rule.
        Assert.Equal((16, true), ReductionOrder.Segments(new ConvGeometry(24, 40, 1, 1), 8, 8));
    }

    [Fact]
    public void BatchNormShift_IsOneFusedMultiplyAdd()
    {
        float[] w = [1.3f], b = [0.7f], mean = [0.123456f], var = [2.5f];
        var (scale, shift) = BatchNorm.Fold(w, b, mean, var);
        float inv = 1f / MathF.Sqrt(2.5f + BatchNorm.DefaultEps);
        Assert.Equal(inv * 1.3f, scale[0]);
        Assert.Equal(MathF.FusedMultiplyAdd(-0.123456f, scale[0], 0.7f), shift[0]);
    }
}
