using Google.Protobuf;

namespace Qsvit.IO.Onnx;

/// <summary>
/// A protobuf message built field by field and written with <see cref="CodedOutputStream"/>: enough of the wire format for
/// onnx.proto without generated code. Fields are written in the order they were added; repeated scalars are written
/// unpacked (what proto2's onnx.proto declares). Its size is computed once, after the message is complete.
/// </summary>
internal sealed class ProtoMessage
{
    private readonly List<(int Field, object Value)> _fields = new();
    private int _size = -1;

    public ProtoMessage Int(int field, long value) => Add(field, value);
    public ProtoMessage Float(int field, float value) => Add(field, value);
    public ProtoMessage String(int field, string? value) => value is null ? this : Add(field, value);
    public ProtoMessage Bytes(int field, ReadOnlyMemory<byte> value) => Add(field, UnsafeByteOperations.UnsafeWrap(value));
    public ProtoMessage Message(int field, ProtoMessage value) => Add(field, value);

    public ProtoMessage Ints(int field, IEnumerable<long> values)
    {
        foreach (long v in values) Int(field, v);
        return this;
    }

    public ProtoMessage Messages(int field, IEnumerable<ProtoMessage> values)
    {
        foreach (var v in values) Message(field, v);
        return this;
    }

    private ProtoMessage Add(int field, object value)
    {
        if (_size >= 0) throw new InvalidOperationException("message already sized");
        _fields.Add((field, value));
        return this;
    }

    /// <summary>Serialized size in bytes; protobuf messages cannot exceed 2 GiB.</summary>
    public int Size
    {
        get
        {
            if (_size >= 0) return _size;
            long size = 0;
            foreach (var (number, value) in _fields)
            {
                size += CodedOutputStream.ComputeTagSize(number);
                size += value switch
                {
                    long v => CodedOutputStream.ComputeInt64Size(v),
                    float => 4,
                    string s => CodedOutputStream.ComputeStringSize(s),
                    ByteString b => CodedOutputStream.ComputeBytesSize(b),
                    ProtoMessage m => CodedOutputStream.ComputeLengthSize(m.Size) + (long)m.Size,
                    _ => throw new InvalidOperationException(value.GetType().Name),
                };
                if (size > int.MaxValue)
                    throw new QsvitException("the ONNX model exceeds protobuf's 2 GiB limit; quantize more units or export a smaller model");
            }
            return _size = (int)size;
        }
    }

    public void WriteTo(CodedOutputStream output)
    {
        foreach (var (field, value) in _fields)
        {
            switch (value)
            {
                case long v: output.WriteTag(field, WireFormat.WireType.Varint); output.WriteInt64(v); break;
                case float f: output.WriteTag(field, WireFormat.WireType.Fixed32); output.WriteFloat(f); break;
                case string s: output.WriteTag(field, WireFormat.WireType.LengthDelimited); output.WriteString(s); break;
                case ByteString b: output.WriteTag(field, WireFormat.WireType.LengthDelimited); output.WriteBytes(b); break;
                case ProtoMessage m:
                    output.WriteTag(field, WireFormat.WireType.LengthDelimited);
                    output.WriteLength(m.Size);
                    m.WriteTo(output);
                    break;
            }
        }
    }

    public void WriteTo(Stream stream)
    {
        _ = Size;
        using var output = new CodedOutputStream(stream, leaveOpen: true);
        WriteTo(output);
        output.Flush();
    }
}
