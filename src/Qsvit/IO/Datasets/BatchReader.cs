using System.Collections;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Qsvit.Tensors;

namespace Qsvit.IO.Datasets;

/// <summary>
/// Streams a dataset in batches of consecutive images, in dataset order, with bounded memory: images
/// [start, start + limit) are read in batches of <c>batchSize</c> (the last may be shorter). A background task
/// decodes up to <c>prefetch</c> batches ahead of the consumer, the images of a batch in parallel on up to
/// <c>threads</c> threads; at most prefetch + 1 batch buffers ever exist, and they are recycled: a batch is valid
/// until the next MoveNext (or Dispose). With prefetch 0 each batch is decoded when it is asked for.
/// A reader is enumerated once, by one consumer. An image that fails to read surfaces as its
/// <see cref="QsvitException"/> when its batch is reached (the lowest failing index in the batch); earlier batches
/// are delivered first. Disposing the reader, or the enumerator (leaving a foreach), stops the background work.
/// </summary>
public sealed class BatchReader : IEnumerable<ImageBatch>, IDisposable
{
    private readonly int _capacity;
    private readonly int _imageSize;
    private readonly int _slots;
    private readonly CancellationTokenSource _cts = new();
    private readonly BlockingCollection<ImageBatch> _free = new(new ConcurrentQueue<ImageBatch>());
    private readonly BlockingCollection<(ImageBatch? Batch, ExceptionDispatchInfo? Error)> _ready = new();
    private Task? _producer;
    private int _created;
    private int _nextBatch;   // prefetch 0 only
    private ImageBatch? _current;
    private bool _started, _finished, _disposed;

    public BatchReader(IImageDataset dataset, int batchSize, int? limit = null, int start = 0, int prefetch = 2, int? threads = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start, dataset.Count);
        if (limit is < 0) throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must not be negative");
        ArgumentOutOfRangeException.ThrowIfNegative(prefetch);
        int threadCount = threads ?? ComputeOptions.Default.Threads;
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1, nameof(threads));

        Dataset = dataset;
        BatchSize = batchSize;
        Start = start;
        Count = Math.Min(limit ?? int.MaxValue, dataset.Count - start);
        Prefetch = prefetch;
        Threads = threadCount;
        long imageSize = (long)dataset.Channels * dataset.Height * dataset.Width;
        _capacity = Math.Max(1, Math.Min(batchSize, Count));
        if (imageSize < 1 || imageSize * _capacity > Array.MaxLength)
            throw new ArgumentException($"a batch of {_capacity} images of {imageSize} floats does not fit in one array", nameof(batchSize));
        _imageSize = (int)imageSize;
        _slots = prefetch + 1;
    }

    public IImageDataset Dataset { get; }
    public int BatchSize { get; }

    /// <summary>Dataset index of the first image read.</summary>
    public int Start { get; }

    /// <summary>Images read in all: the limit, or fewer when the dataset ends first.</summary>
    public int Count { get; }

    /// <summary>Number of batches: Count / BatchSize rounded up.</summary>
    public int Batches => (int)(((long)Count + BatchSize - 1) / BatchSize);

    public int Prefetch { get; }
    public int Threads { get; }

    public IEnumerator<ImageBatch> GetEnumerator()
    {
        if (_started) throw new InvalidOperationException("a BatchReader can be enumerated only once");
        ObjectDisposedException.ThrowIf(_disposed, this);
        _started = true;
        if (Prefetch > 0) _producer = Task.Factory.StartNew(Produce, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        return new Enumerator(this);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _cts.Cancel();
        _producer?.Wait();   // Produce catches everything; it ends at the next image or batch boundary
        _cts.Dispose();
        _free.Dispose();
        _ready.Dispose();
    }

    private bool MoveNext()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_current != null)
        {
            Release(_current);
            _current = null;
        }
        if (_finished) return false;

        if (Prefetch == 0)
        {
            if (_nextBatch >= Batches) return Finish();
            var batch = Acquire(_cts.Token);
            try
            {
                Fill(batch, _nextBatch++, _cts.Token);
            }
            catch
            {
                Release(batch);
                _finished = true;
                throw;
            }
            _current = batch;
            return true;
        }

        if (!_ready.TryTake(out var item, Timeout.Infinite, _cts.Token)) return Finish();
        if (item.Error != null)
        {
            _finished = true;
            item.Error.Throw();
        }
        _current = item.Batch;
        return true;
    }

    private bool Finish()
    {
        _finished = true;
        return false;
    }

    private void Produce()
    {
        var token = _cts.Token;
        try
        {
            for (int b = 0; b < Batches; b++)
            {
                var batch = Acquire(token);
                Fill(batch, b, token);
                _ready.Add((batch, null), token);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _ready.Add((null, ExceptionDispatchInfo.Capture(e)), CancellationToken.None);
        }
        finally
        {
            _ready.CompleteAdding();
        }
    }

    /// <summary>A free buffer: a recycled one, a new one while fewer than prefetch + 1 exist, else wait for one.</summary>
    private ImageBatch Acquire(CancellationToken token)
    {
        if (_free.TryTake(out var batch)) return batch;
        if (_created < _slots)
        {
            _created++;
            return new ImageBatch(_capacity, _imageSize);
        }
        return _free.Take(token);
    }

    private void Release(ImageBatch batch)
    {
        if (!_disposed) _free.Add(batch);
    }

    private void Fill(ImageBatch batch, int index, CancellationToken token)
    {
        int first = Start + index * BatchSize, count = Math.Min(BatchSize, Start + Count - first);
        batch.Start = first;
        batch.Count = count;
        for (int i = 0; i < count; i++) batch.Labels[i] = Dataset.Label(first + i);

        if (Threads == 1 || count == 1)
        {
            for (int i = 0; i < count; i++)
            {
                token.ThrowIfCancellationRequested();
                Dataset.Read(first + i, batch.Images.AsSpan(i * _imageSize, _imageSize));
            }
            return;
        }

        var errors = new Exception?[count];
        var options = new ParallelOptions { MaxDegreeOfParallelism = Threads, CancellationToken = token };
        Parallel.For(0, count, options, i =>
        {
            try
            {
                Dataset.Read(first + i, batch.Images.AsSpan(i * _imageSize, _imageSize));
            }
            catch (Exception e)
            {
                errors[i] = e;
            }
        });
        foreach (var e in errors)
            if (e != null) ExceptionDispatchInfo.Throw(e);
    }

    private sealed class Enumerator(BatchReader reader) : IEnumerator<ImageBatch>
    {
        public ImageBatch Current => reader._current ?? throw new InvalidOperationException("no current batch");
        object IEnumerator.Current => Current;
        public bool MoveNext() => reader.MoveNext();
        public void Reset() => throw new NotSupportedException("a BatchReader can be enumerated only once");
        public void Dispose() => reader.Dispose();
    }
}
