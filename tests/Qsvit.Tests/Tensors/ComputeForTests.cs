using Qsvit.Tensors;

namespace Qsvit.Tests.Tensors;

/// <summary>
/// <see cref="Compute.For"/> on the <see cref="SpinPool"/> (or Parallel.For where the pool is busy): every item once, no
/// more threads at a time than asked, nested and concurrent calls, a body's exception.
/// </summary>
public sealed class ComputeForTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 2)]
    [InlineData(1000, 3)]
    [InlineData(5, 64)]
    public void EveryItemRunsOnce(int count, int threads)
    {
        var runs = new int[count];
        for (int call = 0; call < 50; call++) Compute.For(count, threads, i => Interlocked.Increment(ref runs[i]));
        Assert.All(runs, r => Assert.Equal(50, r));
    }

    [Fact]
    public void NoMoreThreadsAtATimeThanAsked()
    {
        foreach (int threads in new[] { 2, 3 })
        {
            int active = 0, most = 0;
            Compute.For(200, threads, _ =>
            {
                int now = Interlocked.Increment(ref active);
                int seen;
                while (now > (seen = Volatile.Read(ref most))) Interlocked.CompareExchange(ref most, now, seen);
                Thread.SpinWait(2000);
                Interlocked.Decrement(ref active);
            });
            Assert.InRange(most, 1, threads);
        }
    }

    [Fact]
    public void NestedAndConcurrentCallsRunEveryItem()
    {
        var runs = new int[4, 6, 9];
        Parallel.For(0, 4, caller =>
        {
            for (int repeat = 0; repeat < 20; repeat++)
                Compute.For(6, 2, i => Compute.For(9, 2, j => Interlocked.Increment(ref runs[caller, i, j])));
        });
        foreach (int r in runs) Assert.Equal(20, r);
    }

    [Fact]
    public void AFailingItemThrowsAndThePoolRunsOn()
    {
        var runs = new int[40];
        var e = Assert.Throws<AggregateException>(() => Compute.For(40, 2, i =>
        {
            Interlocked.Increment(ref runs[i]);
            if (i == 13) throw new InvalidOperationException("item 13");
        }));
        Assert.Equal("item 13", Assert.Single(e.InnerExceptions).Message);
        Assert.All(runs, r => Assert.InRange(r, 0, 1)); // Parallel.For (where the pool was busy) may skip items after a failure
        // The pool is usable again.
        int sum = 0;
        Compute.For(10, 2, i => Interlocked.Add(ref sum, i));
        Assert.Equal(45, sum);
    }
}
