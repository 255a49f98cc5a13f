namespace Qsvit.Backends;

/// <summary>
/// How many images a pass on a GPU should take: as many as the free device memory holds at the model's activation
/// peak per image (<see cref="Models.Sdtv2Model.ActivationBytesPerImage(int, int)"/>), less headroom, capped where a
/// larger batch no longer speeds a pass up.
/// </summary>
public static class BatchSizing
{
    /// <summary>Free memory a batch may fill (the rest is left to the library GEMMs' workspaces and other processes).</summary>
    public const double UsableFraction = 0.8;

    /// <summary>The largest useful batch for images of this size: 1024 up to 64x64 pixels, 256 up to 128x128, else 128.</summary>
    public static int Cap(int height, int width)
    {
        long pixels = (long)height * width;
        return pixels <= 64 * 64 ? 1024 : pixels <= 128 * 128 ? 256 : 128;
    }

    /// <summary>
    /// The batch for <paramref name="freeBytes"/> of free device memory, of which <paramref name="reservedBytes"/> are kept
    /// for buffers that do not grow with the batch (e.g. im2col chunks): a multiple of 8 when at least 8, at least 1,
    /// at most <see cref="Cap"/>.
    /// </summary>
    public static int FromFreeMemory(long freeBytes, long reservedBytes, long activationBytesPerImage, int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(activationBytesPerImage, 1);
        double budget = freeBytes * UsableFraction - reservedBytes;
        long fits = budget <= 0 ? 1 : (long)(budget / activationBytesPerImage);
        long batch = Math.Clamp(fits, 1, Cap(height, width));
        return (int)(batch >= 8 ? batch / 8 * 8 : batch);
    }
}
