namespace Qsvit.Tensors;

/// <summary>
/// Stack-disciplined scratch buffers reused across forward passes: the same call sequence rents the same slots,
/// so after the first batch a forward pass allocates nothing.
/// </summary>
public sealed class Arena
{
    private readonly List<float[]> _slots = new();
    private int _next;

    public float[] Rent(long length)
    {
        if (length > Array.MaxLength) throw new QsvitException($"a buffer of {length:N0} floats exceeds .NET's array limit; use a smaller batch");
        if (_next == _slots.Count) _slots.Add(new float[length]);
        else if (_slots[_next].Length < length) _slots[_next] = new float[length];
        return _slots[_next++];
    }

    public int Mark() => _next;
    public void Release(int mark) => _next = mark;
}
