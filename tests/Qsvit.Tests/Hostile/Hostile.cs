using System.Buffers.Binary;
using System.IO.Compression;
using Xunit.Sdk;

namespace Qsvit.Tests.Hostile;

/// <summary>
/// Runs a reader on hostile input on its own thread, under the test's own time limit, and measures what that thread
/// allocated. A hang fails the test instead of stalling the run; any exception but <see cref="QsvitException"/> escapes.
/// </summary>
internal static class Guarded
{
    /// <summary>Generous on a loaded 2-core CI machine; every case here finishes in well under a second.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    public static (QsvitException Error, long Allocated) Refuses(Action load, TimeSpan? limit = null)
    {
        var (error, allocated) = Run(load, limit);
        return (error ?? throw new XunitException("expected a QsvitException, but the input was accepted"), allocated);
    }

    /// <summary>Bytes allocated by a load that must succeed.</summary>
    public static long Accepts(Action load, TimeSpan? limit = null)
    {
        var (error, allocated) = Run(load, limit);
        if (error is not null) throw new XunitException($"expected the input to load, but: {error.Message}");
        return allocated;
    }

    public static (QsvitException? Error, long Allocated) Run(Action load, TimeSpan? limit = null)
    {
        var timeout = limit ?? Limit;
        using var cts = new CancellationTokenSource(timeout);
        var task = Task.Factory.StartNew(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                load();
                return ((QsvitException?)null, GC.GetAllocatedBytesForCurrentThread() - before);
            }
            catch (QsvitException e)
            {
                return (e, GC.GetAllocatedBytesForCurrentThread() - before);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            task.Wait(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new XunitException($"the reader did not finish within {timeout.TotalSeconds} s (a hang)");
        }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1)
        {
            throw new XunitException($"escaped as {e.InnerException!.GetType().Name} instead of a QsvitException: {e.InnerException}");
        }
        return task.Result;
    }

    public const long MiB = 1 << 20;
}

/// <summary>A zip writer that can lie: declared sizes and compression are chosen per entry (ZipArchive cannot write lies).</summary>
internal static class RawZip
{
    public sealed record Entry(string Name, byte[] Data, bool Deflate = false, uint? DeclaredSize = null);

    public static byte[] Build(params Entry[] entries)
    {
        var file = new MemoryStream();
        var central = new MemoryStream();
        foreach (var e in entries)
        {
            byte[] stored = e.Deflate ? DeflateRaw(e.Data) : e.Data;
            uint crc = Qsvit.IO.Crc32.Compute(e.Data);
            uint size = e.DeclaredSize ?? (uint)e.Data.Length;
            var name = System.Text.Encoding.UTF8.GetBytes(e.Name);
            ushort method = (ushort)(e.Deflate ? 8 : 0);
            uint offset = (uint)file.Position;

            Write32(file, 0x04034b50); Write16(file, 20); Write16(file, 0); Write16(file, method); Write16(file, 0); Write16(file, 0x21);
            Write32(file, crc); Write32(file, (uint)stored.Length); Write32(file, size); Write16(file, (ushort)name.Length); Write16(file, 0);
            file.Write(name);
            file.Write(stored);

            Write32(central, 0x02014b50); Write16(central, 20); Write16(central, 20); Write16(central, 0); Write16(central, method);
            Write16(central, 0); Write16(central, 0x21); Write32(central, crc); Write32(central, (uint)stored.Length); Write32(central, size);
            Write16(central, (ushort)name.Length); Write16(central, 0); Write16(central, 0); Write16(central, 0); Write16(central, 0);
            Write32(central, 0); Write32(central, offset);
            central.Write(name);
        }
        uint cdOffset = (uint)file.Position;
        central.Position = 0;
        central.CopyTo(file);
        Write32(file, 0x06054b50); Write16(file, 0); Write16(file, 0); Write16(file, (ushort)entries.Length); Write16(file, (ushort)entries.Length);
        Write32(file, (uint)central.Length); Write32(file, cdOffset); Write16(file, 0);
        return file.ToArray();
    }

    public static byte[] DeflateRaw(byte[] data)
    {
        var ms = new MemoryStream();
        using (var d = new DeflateStream(ms, CompressionLevel.Fastest, leaveOpen: true)) d.Write(data);
        return ms.ToArray();
    }

    private static void Write16(Stream s, ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); s.Write(b); }
    private static void Write32(Stream s, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b); }
}
