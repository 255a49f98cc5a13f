using Qsvit.Tensors;

namespace Qsvit.IO.Pickle;

/// <summary>A storage named by a persistent id ('storage', torch.XStorage, key, location, numel); its bytes live in &lt;archive&gt;/data/&lt;key&gt;.</summary>
internal sealed class StorageRef(string key, DType dtype, string storageType, long numel)
{
    public string Key { get; } = key;
    public DType DType { get; } = dtype;
    public string StorageType { get; } = storageType;
    /// <summary>Element count declared by the pickle.</summary>
    public long Numel { get; } = numel;
    /// <summary>Declared size in bytes (the host refuses element counts whose byte size would overflow).</summary>
    public long ByteLength => checked(Numel * DTypes.Size(DType));
}

/// <summary>
/// A tensor as described by torch._utils._rebuild_tensor_v2: a strided view on a storage. Nothing is read
/// until <see cref="Materialize"/>, so tensors the caller does not need (optimizer state) cost nothing.
/// </summary>
internal sealed class TorchTensorRef
{
    public StorageRef Storage { get; }
    public long Offset { get; }
    public int[] Size { get; }
    public long[] Stride { get; }
    public long Numel { get; }

    /// <summary>One past the largest storage element the view touches (0 for an empty tensor).</summary>
    public long Extent { get; }

    public bool IsContiguous { get; }

    public TorchTensorRef(StorageRef storage, long offset, int[] size, long[] stride)
    {
        if (size.Length != stride.Length)
            throw new PickleError($"tensor size {Tensor.Format(size)} and stride ({string.Join(", ", stride)}) have different ranks");
        if (offset < 0) throw new PickleError($"negative storage_offset {offset}");
        Storage = storage;
        Offset = offset;
        Size = size;
        Stride = stride;

        // All geometry in checked arithmetic: a wrapped end offset would slip past the storage-size check.
        long numel = 1, extent = offset, expected = 1;
        bool contiguous = true;
        try
        {
            for (int d = size.Length - 1; d >= 0; d--)
            {
                if (size[d] < 0) throw new PickleError($"negative dimension in tensor size {Tensor.Format(size)}");
                if (stride[d] < 0) throw new PickleError($"negative stride {stride[d]} in tensor of size {Tensor.Format(size)}");
                numel = checked(numel * size[d]);
                if (size[d] > 0) extent = checked(extent + checked((size[d] - 1) * stride[d]));
                if (size[d] != 1 && stride[d] != expected) contiguous = false;
                if (contiguous) expected = checked(expected * Math.Max(size[d], 1));
            }
            Numel = numel;
            Extent = numel == 0 ? 0 : checked(extent + 1);
            checked { _ = Extent * DTypes.Size(storage.DType); }
        }
        catch (OverflowException)
        {
            throw new PickleError($"tensor size {Tensor.Format(size)} with stride ({string.Join(", ", stride)}) at storage offset {offset} overflows");
        }
        IsContiguous = contiguous;
    }

    public string Describe() =>
        $"{Tensor.Format(Size)} {Storage.DType} at storage offset {Offset}" +
        (IsContiguous ? "" : $" with stride ({string.Join(", ", Stride)})");

    /// <summary>
    /// Builds the float32 tensor from the storage's bytes (which must hold at least <see cref="Extent"/> elements).
    /// Non-contiguous views are gathered into row-major order.
    /// </summary>
    public Tensor Materialize(ReadOnlySpan<byte> storageBytes)
    {
        int es = DTypes.Size(Storage.DType);
        if (storageBytes.Length / es < Extent) throw new ArgumentException("storage too short for tensor");
        if (Numel > Array.MaxLength) throw new ArgumentException("tensor too large");
        var data = new float[Numel];
        if (Numel == 0) return new Tensor(data, Size);
        // Extent <= storage length: every offset below fits an int.
        int start = checked((int)(Offset * es));
        if (IsContiguous)
        {
            DTypes.ToFloat(storageBytes.Slice(start, checked((int)(Numel * es))), Storage.DType, data);
            return new Tensor(data, Size);
        }

        // Decode the touched window once, then gather with an odometer over the dimensions.
        int window = checked((int)((Extent - Offset) * es));
        ReadOnlySpan<float> src;
        if (Storage.DType == DType.F32)
        {
            src = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(storageBytes.Slice(start, window));
        }
        else
        {
            var tmp = new float[window / es];
            DTypes.ToFloat(storageBytes.Slice(start, window), Storage.DType, tmp);
            src = tmp;
        }
        int rank = Size.Length;
        var idx = new int[rank];
        long pos = 0;
        for (long i = 0; i < data.Length; i++)
        {
            data[i] = src[(int)pos];
            for (int d = rank - 1; d >= 0; d--)
            {
                pos += Stride[d];
                if (++idx[d] < Size[d]) break;
                pos -= Stride[d] * Size[d];
                idx[d] = 0;
            }
        }
        return new Tensor(data, Size);
    }
}
