namespace Qsvit.Backends.Cpu;

/// <summary>A host array. Workspace slots may swap in a larger array between passes, never during one.</summary>
internal sealed class CpuBuffer(float[] array) : DeviceBuffer
{
    public float[] Array { get; set; } = array;
    public override long Length => Array.Length;
}
