using System.Diagnostics;
using Qsvit.IO.Datasets;

namespace Qsvit.Tests.IO.Datasets;

public class BatchReaderTests
{
    /// <summary>An in-memory dataset whose pixels encode the image index; can be slowed down or made to fail.</summary>
    private sealed class FakeDataset(int count, int delayMs = 0, int failAt = -1) : IImageDataset
    {
        public readonly ManualResetEventSlim Touched = new();
        public int TouchThreshold = int.MaxValue;
        private int _reads;

        public string Name => "fake";
        public int Count => count;
        public int Channels => 2;
        public int Height => 3;
        public int Width => 4;
        public IReadOnlyList<string> ClassNames { get; } = ["a", "b", "c"];
        public int Reads => Volatile.Read(ref _reads);
        public int Label(int index) => index * 7 % 3;

        public void Read(int index, Span<float> destination)
        {
            Interlocked.Increment(ref _reads);
            if (index >= TouchThreshold) Touched.Set();
            if (delayMs > 0) Thread.Sleep(delayMs);
            if (index == failAt) throw new QsvitException($"image {index} is broken");
            for (int i = 0; i < 24; i++) destination[i] = index * 100 + i;
        }
    }

    private static float[] Sequential(IImageDataset ds, int index)
    {
        var image = new float[ds.Channels * ds.Height * ds.Width];
        ds.Read(index, image);
        return image;
    }

    private static void AssertMatchesSequential(IImageDataset ds, int batchSize, int? limit, int start, int prefetch, int threads)
    {
        int expectedCount = Math.Min(limit ?? int.MaxValue, ds.Count - start);
        int size = ds.Channels * ds.Height * ds.Width, next = start, batches = 0;
        var seen = new HashSet<ImageBatch>(ReferenceEqualityComparer.Instance);
        using var reader = new BatchReader(ds, batchSize, limit, start, prefetch, threads);
        Assert.Equal(expectedCount, reader.Count);
        foreach (var batch in reader)
        {
            seen.Add(batch);
            Assert.Equal(next, batch.Start);
            Assert.Equal(Math.Min(batchSize, start + expectedCount - next), batch.Count);
            Assert.True(batch.Images.Length >= batch.Count * size);
            for (int i = 0; i < batch.Count; i++)
            {
                Assert.Equal(ds.Label(next + i), batch.Labels[i]);
                Assert.Equal(Sequential(ds, next + i), batch.Image(i).ToArray());
            }
            next += batch.Count;
            batches++;
        }
        Assert.Equal(start + expectedCount, next);
        Assert.Equal(reader.Batches, batches);
        Assert.True(seen.Count <= prefetch + 1, $"{seen.Count} batch buffers for prefetch {prefetch}");
    }

    [Theory]
    [InlineData(7, null, 0, 2, 1)]
    [InlineData(7, null, 0, 2, 2)]
    [InlineData(4, null, 0, 1, 2)]
    [InlineData(5, 12, 0, 2, 2)]
    [InlineData(5, 12, 3, 2, 1)]
    [InlineData(1, null, 0, 3, 2)]
    [InlineData(23, null, 0, 2, 2)]
    [InlineData(64, null, 0, 2, 2)]
    [InlineData(6, null, 0, 0, 2)]
    [InlineData(6, 100, 20, 0, 1)]
    [InlineData(3, 0, 0, 2, 2)]
    public void MatchesSequentialRead(int batchSize, int? limit, int start, int prefetch, int threads) =>
        AssertMatchesSequential(new FakeDataset(23), batchSize, limit, start, prefetch, threads);

    [Theory]
    [InlineData(64, 1)]
    [InlineData(64, 2)]
    [InlineData(100, 2)]
    public void Cifar_MatchesSequentialRead(int batchSize, int threads)
    {
        var ds = DatasetLoader.Open(RepoPaths.Combine("data", "cifar10", "val.bin"), DatasetOptions.Default);
        AssertMatchesSequential(ds, batchSize, limit: 333, start: 0, prefetch: 2, threads);
        AssertMatchesSequential(ds, batchSize, limit: null, start: 4_900, prefetch: 1, threads);
    }

    [Fact]
    public void ImageFolder_MatchesSequentialRead()
    {
        using var dir = new TempDir();
        for (int i = 0; i < 11; i++)
            File.WriteAllBytes(dir.File($"c{i % 3}", $"{i}.png"), TestFiles.Png(TestFiles.Pattern(20 + i, 17, i), 20 + i, 17, 3));
        var ds = DatasetLoader.Open(dir.Path, DatasetOptions.Default with { ResizeShorter = 12, CropSize = 10 });
        AssertMatchesSequential(ds, 4, null, 0, 2, 2);
    }

    [Fact]
    public void DecodesTheNextBatchWhileTheCurrentOneIsHeld()
    {
        var ds = new FakeDataset(40) { TouchThreshold = 10 };
        using var reader = new BatchReader(ds, 10, prefetch: 1, threads: 2);
        using var e = reader.GetEnumerator();
        Assert.True(e.MoveNext());
        Assert.Equal(0, e.Current.Start);
        Assert.True(ds.Touched.Wait(TimeSpan.FromSeconds(30)), "batch 1 was not decoded while batch 0 was held");
    }

    [Fact]
    public void PrefetchIsBounded()
    {
        var ds = new FakeDataset(100);
        using var reader = new BatchReader(ds, 10, prefetch: 2, threads: 2);
        using var e = reader.GetEnumerator();
        Assert.True(e.MoveNext());
        Thread.Sleep(300);
        // Batch 0 held by us, plus at most 2 more buffers: no more than 3 batches decoded.
        Assert.InRange(ds.Reads, 10, 30);
    }

    [Fact]
    public async Task DisposingMidStream_DoesNotHang()
    {
        var ds = new FakeDataset(1000, delayMs: 2);
        var run = Task.Run(() =>
        {
            using var reader = new BatchReader(ds, 16, prefetch: 2, threads: 2);
            foreach (var batch in reader)
                if (batch.Start >= 32) break;
        });
        await run.WaitAsync(TimeSpan.FromSeconds(60));   // a TimeoutException means leaving the loop hung
        int reads = ds.Reads;
        Thread.Sleep(100);
        Assert.Equal(reads, ds.Reads);   // the background decoding stopped
        Assert.True(reads < 1000);

        var sw = Stopwatch.StartNew();
        var reader2 = new BatchReader(new FakeDataset(1000, delayMs: 2), 16, prefetch: 3, threads: 2);
        var e = reader2.GetEnumerator();
        Assert.True(e.MoveNext());
        reader2.Dispose();
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30));
        Assert.Throws<ObjectDisposedException>(() => e.MoveNext());
    }

    [Theory]
    [InlineData(0, 2)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    public void ReadErrors_SurfaceAtTheirBatch(int prefetch, int threads)
    {
        var ds = new FakeDataset(30, failAt: 13);
        using var reader = new BatchReader(ds, 5, prefetch: prefetch, threads: threads);
        var starts = new List<int>();
        var ex = Assert.Throws<QsvitException>(() =>
        {
            foreach (var batch in reader) starts.Add(batch.Start);
        });
        Assert.Equal([0, 5], starts);
        Assert.Contains("image 13", ex.Message);
    }

    [Fact]
    public void EnumeratesOnce_AndChecksArguments()
    {
        var ds = new FakeDataset(5);
        using var reader = new BatchReader(ds, 2);
        Assert.Equal(3, reader.Batches);
        Assert.Equal(3, reader.Count());
        Assert.Throws<InvalidOperationException>(() => reader.GetEnumerator());
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchReader(ds, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchReader(ds, 2, start: 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchReader(ds, 2, limit: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchReader(ds, 2, prefetch: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchReader(ds, 2, threads: 0));
    }
}
