namespace Qsvit.Backends;

/// <summary>
/// float32 storage owned by a backend: a host array on the CPU, device memory on a GPU. <see cref="Length"/> is the
/// capacity in floats; ops take their extents explicitly and never read past them. Only the backend that made a buffer
/// may use it. Workspace buffers (<see cref="IBackend.Rent"/>) belong to the backend's workspace and are not disposed by
/// the caller; buffers from <see cref="IBackend.Allocate"/> are the caller's to dispose.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    public abstract long Length { get; }
    public virtual void Dispose() { }
}
