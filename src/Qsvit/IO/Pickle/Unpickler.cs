using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace Qsvit.IO.Pickle;

/// <summary>
/// A pickle (protocols 0-5) data reader. It is a stack machine over plain values: it builds lists,
/// tuples, dicts, sets, numbers, strings and bytes itself and hands every operation that would import
/// or call something in Python (globals, REDUCE, NEWOBJ, BUILD, persistent ids) to an <see cref="IPickleHost"/>.
/// Every malformed input surfaces as a <see cref="QsvitException"/> naming the source, offset and opcode.
/// </summary>
internal sealed class Unpickler
{
    private const int HighestProtocol = 5;

    /// <summary>Largest integer read, in decimal digits (CPython's default int-from-text limit) ...</summary>
    internal const int MaxIntDigits = 4300;

    /// <summary>... and in bytes for the binary LONG opcodes (2^14,288 is just over 4300 digits).</summary>
    internal const int MaxIntBytes = 1786;

    private readonly byte[] _data;
    private readonly string _context;
    private readonly IPickleHost _host;
    private readonly List<object?> _stack = new();
    private readonly List<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();
    private int _pos;
    private int _opStart;
    private byte _op;

    private Unpickler(byte[] data, string context, IPickleHost host)
    {
        _data = data;
        _context = context;
        _host = host;
    }

    /// <summary>Reads one pickled object. <paramref name="context"/> starts every error message, e.g. "checkpoint 'x.pth' (x/data.pkl)".</summary>
    public static object? Load(byte[] data, string context, IPickleHost host) => new Unpickler(data, context, host).Run();

    private object? Run()
    {
        try
        {
            while (true)
            {
                _opStart = _pos;
                if (_pos >= _data.Length)
                {
                    _op = 0;
                    throw new PickleError($"pickle ends early after {_data.Length} bytes without a STOP opcode");
                }
                _op = _data[_pos++];
                if (_op == (byte)'.') // STOP
                {
                    if (_marks.Count > 0) throw new PickleError("STOP with an unclosed MARK");
                    return Pop();
                }
                Step();
            }
        }
        catch (PickleError e)
        {
            throw new QsvitException($"{_context}: {e.Message} [pickle offset {_opStart}, opcode {OpName(_op)}]");
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or OverflowException
                                      or FormatException or DecoderFallbackException or IndexOutOfRangeException)
        {
            throw new QsvitException($"{_context}: malformed pickle: {e.Message} [pickle offset {_opStart}, opcode {OpName(_op)}]", e);
        }
    }

    private void Step()
    {
        switch (_op)
        {
            // ---- framing and protocol ----
            case 0x80: // PROTO
                {
                    int proto = ReadByte();
                    if (proto > HighestProtocol) throw new PickleError($"unsupported pickle protocol {proto} (expected 0-{HighestProtocol})");
                    break;
                }
            case 0x95: // FRAME
                {
                    ulong len = ReadUInt64();
                    if (len > (ulong)(_data.Length - _pos))
                        throw new PickleError($"pickle ends early: FRAME announces {len} bytes but only {_data.Length - _pos} remain");
                    break; // the whole stream is in memory: frames need no handling
                }

            // ---- stack manipulation ----
            case (byte)'(': _marks.Add(_stack.Count); break; // MARK
            case (byte)'0': // POP
                if (_stack.Count > MarkFloor()) _stack.RemoveAt(_stack.Count - 1);
                else if (_marks.Count > 0 && _marks[^1] == _stack.Count) _marks.RemoveAt(_marks.Count - 1);
                else throw Underflow(1);
                break;
            case (byte)'1': PopMark(); break; // POP_MARK
            case (byte)'2': Push(Peek()); break; // DUP

            // ---- constants ----
            case (byte)'N': Push(null); break;
            case 0x88: Push(true); break;
            case 0x89: Push(false); break;

            // ---- integers ----
            case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
            case (byte)'K': Push((long)ReadByte()); break; // BININT1
            case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
            case 0x8a: Push(ReadLong(ReadByte())); break; // LONG1
            case 0x8b: // LONG4
                {
                    int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
                    if (n < 0) throw new PickleError($"LONG4 with negative byte count {n}");
                    if (n > MaxIntBytes) throw new PickleError($"LONG4 integer of {n} bytes is larger than the {MaxIntBytes}-byte limit (about {MaxIntDigits} digits)");
                    Push(ReadLong(n));
                    break;
                }
            case (byte)'I': // INT (text); "00"/"01" are protocol-0 False/True
                {
                    string line = ReadLine();
                    if (line == "00") Push(false);
                    else if (line == "01") Push(true);
                    else Push(ParseInteger(line, "INT"));
                    break;
                }
            case (byte)'L': // LONG (text)
                {
                    string line = ReadLine();
                    Push(ParseInteger(line.EndsWith('L') ? line[..^1] : line, "LONG"));
                    break;
                }

            // ---- floats ----
            case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
            case (byte)'F': Push(ParseFloat(ReadLine())); break; // FLOAT (text)

            // ---- strings and bytes ----
            case (byte)'X': Push(Utf8(Take(ReadUInt32()))); break; // BINUNICODE
            case 0x8c: Push(Utf8(Take(ReadByte()))); break; // SHORT_BINUNICODE
            case 0x8d: Push(Utf8(Take(ReadUInt64()))); break; // BINUNICODE8
            case (byte)'V': Push(DecodeRawUnicodeEscape(ReadLine())); break; // UNICODE (text)
            case (byte)'T': // BINSTRING (python 2 str, decoded like torch.load does: utf-8)
                {
                    int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4));
                    if (n < 0) throw new PickleError($"BINSTRING with negative length {n}");
                    Push(Utf8(Take(n)));
                    break;
                }
            case (byte)'U': Push(Utf8(Take(ReadByte()))); break; // SHORT_BINSTRING
            case (byte)'S': Push(DecodeStringLiteral(ReadLine())); break; // STRING (text repr)
            case (byte)'B': Push(Take(ReadUInt32()).ToArray()); break; // BINBYTES
            case (byte)'C': Push(Take(ReadByte()).ToArray()); break; // SHORT_BINBYTES
            case 0x8e: Push(Take(ReadUInt64()).ToArray()); break; // BINBYTES8
            case 0x96: Push(Take(ReadUInt64()).ToArray()); break; // BYTEARRAY8
            case 0x97: throw new PickleError("NEXT_BUFFER (out-of-band buffer) is not supported in a file");
            case 0x98: break; // READONLY_BUFFER: no-op on an in-band value

            // ---- containers ----
            case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
            case (byte)'l': Push(new List<object?>(PopMark())); break; // LIST
            case (byte)')': Push(PyTuple.Empty); break; // EMPTY_TUPLE
            case (byte)'t': Push(new PyTuple(PopMark())); break; // TUPLE
            case 0x85: Push(new PyTuple([Pop()])); break; // TUPLE1
            case 0x86: { var b = Pop(); var a = Pop(); Push(new PyTuple([a, b])); break; } // TUPLE2
            case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new PyTuple([a, b, c])); break; } // TUPLE3
            case (byte)'}': Push(new PyDict("dict")); break; // EMPTY_DICT
            case (byte)'d': // DICT
                {
                    var items = PopMark();
                    var d = new PyDict("dict");
                    SetItems(d, items);
                    Push(d);
                    break;
                }
            case 0x8f: Push(new PySet(frozen: false)); break; // EMPTY_SET
            case 0x91: // FROZENSET
                {
                    var s = new PySet(frozen: true);
                    foreach (var item in PopMark()) s.Add(item);
                    Push(s);
                    break;
                }
            case (byte)'a': // APPEND
                {
                    var v = Pop();
                    AsList(Peek()).Add(v);
                    break;
                }
            case (byte)'e': // APPENDS
                {
                    var items = PopMark();
                    AsList(Peek()).AddRange(items);
                    break;
                }
            case (byte)'s': // SETITEM
                {
                    var v = Pop();
                    var k = Pop();
                    AsDict(Peek()).Set(k, v);
                    break;
                }
            case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    SetItems(AsDict(Peek()), items);
                    break;
                }
            case 0x90: // ADDITEMS
                {
                    var items = PopMark();
                    if (Peek() is not PySet set || set.Frozen) throw new PickleError($"ADDITEMS needs a set, found {PyDescribe.TypeOf(Peek())}");
                    foreach (var item in items) set.Add(item);
                    break;
                }

            // ---- memo ----
            case (byte)'p': MemoPut(ParseMemoIndex(ReadLine())); break; // PUT
            case (byte)'q': MemoPut(ReadByte()); break; // BINPUT
            case (byte)'r': MemoPut(ReadUInt32()); break; // LONG_BINPUT
            case 0x94: MemoPut(_memo.Count); break; // MEMOIZE
            case (byte)'g': MemoGet(ParseMemoIndex(ReadLine())); break; // GET
            case (byte)'h': MemoGet(ReadByte()); break; // BINGET
            case (byte)'j': MemoGet(ReadUInt32()); break; // LONG_BINGET

            // ---- globals and objects: delegated to the host ----
            case (byte)'c': // GLOBAL
                {
                    string module = ReadLine();
                    string name = ReadLine();
                    Push(_host.ResolveGlobal(module, name));
                    break;
                }
            case 0x93: // STACK_GLOBAL
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n)
                        throw new PickleError($"STACK_GLOBAL needs two strings, found {PyDescribe.TypeOf(module)} and {PyDescribe.TypeOf(name)}");
                    Push(_host.ResolveGlobal(m, n));
                    break;
                }
            case (byte)'R': // REDUCE
                {
                    var args = Pop();
                    var callable = Pop();
                    if (args is not PyTuple t) throw new PickleError($"REDUCE needs an argument tuple, found {PyDescribe.TypeOf(args)}");
                    Push(_host.Call(callable, t));
                    break;
                }
            case 0x81: // NEWOBJ
                {
                    var args = Pop();
                    var cls = Pop();
                    if (args is not PyTuple t) throw new PickleError($"NEWOBJ needs an argument tuple, found {PyDescribe.TypeOf(args)}");
                    Push(_host.NewObject(cls, t, null));
                    break;
                }
            case 0x92: // NEWOBJ_EX
                {
                    var kwargs = Pop();
                    var args = Pop();
                    var cls = Pop();
                    if (args is not PyTuple t || kwargs is not PyDict kw)
                        throw new PickleError($"NEWOBJ_EX needs a tuple and a dict, found {PyDescribe.TypeOf(args)} and {PyDescribe.TypeOf(kwargs)}");
                    Push(_host.NewObject(cls, t, kw));
                    break;
                }
            case (byte)'o': // OBJ
                {
                    var items = PopMark();
                    if (items.Length == 0) throw new PickleError("OBJ with no class after MARK");
                    Push(_host.NewObject(items[0], new PyTuple(items[1..]), null));
                    break;
                }
            case (byte)'i': // INST
                {
                    string module = ReadLine();
                    string name = ReadLine();
                    var cls = _host.ResolveGlobal(module, name);
                    Push(_host.NewObject(cls, new PyTuple(PopMark()), null));
                    break;
                }
            case (byte)'b': // BUILD
                {
                    var state = Pop();
                    _host.Build(Peek(), state);
                    break;
                }
            case (byte)'Q': Push(_host.PersistentLoad(Pop())); break; // BINPERSID
            case (byte)'P': Push(_host.PersistentLoad(ReadLine())); break; // PERSID
            case 0x82 or 0x83 or 0x84: // EXT1 / EXT2 / EXT4
                throw new PickleError("extension-registry opcodes (copyreg EXT codes) are not supported");

            default:
                throw new PickleError($"unknown pickle opcode 0x{_op:x2}");
        }
    }

    // ------------------------------------------------------------------ stack

    private int MarkFloor() => _marks.Count > 0 ? _marks[^1] : 0;

    private void Push(object? v) => _stack.Add(v);

    private object? Pop()
    {
        if (_stack.Count <= MarkFloor()) throw Underflow(1);
        var v = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    private object? Peek()
    {
        if (_stack.Count <= MarkFloor()) throw Underflow(1);
        return _stack[^1];
    }

    private object?[] PopMark()
    {
        if (_marks.Count == 0) throw new PickleError("no MARK on the stack");
        int m = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(m, _stack.Count - m).ToArray();
        _stack.RemoveRange(m, _stack.Count - m);
        return items;
    }

    private PickleError Underflow(int needed) =>
        new($"stack underflow: the opcode needs {needed} value(s) but the stack{(_marks.Count > 0 ? " above the last MARK" : "")} is empty");

    private static List<object?> AsList(object? v) =>
        v as List<object?> ?? throw new PickleError($"cannot append to a {PyDescribe.TypeOf(v)} (expected a list)");

    private static PyDict AsDict(object? v) =>
        v as PyDict ?? throw new PickleError($"cannot set items on a {PyDescribe.TypeOf(v)} (expected a dict)");

    private static void SetItems(PyDict d, object?[] items)
    {
        if (items.Length % 2 != 0) throw new PickleError($"odd number of values ({items.Length}) for dict key/value pairs");
        for (int i = 0; i < items.Length; i += 2) d.Set(items[i], items[i + 1]);
    }

    private void MemoPut(long index)
    {
        _memo[index] = Peek();
    }

    private void MemoGet(long index)
    {
        if (!_memo.TryGetValue(index, out var v)) throw new PickleError($"memo index {index} was never stored");
        Push(v);
    }

    // ------------------------------------------------------------------ raw reads

    private int ReadByte()
    {
        if (_pos >= _data.Length) throw EndsEarly(1);
        return _data[_pos++];
    }

    private long ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    private ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    private ReadOnlySpan<byte> Take(long n)
    {
        if (n < 0 || n > _data.Length - _pos) throw EndsEarly(n);
        var span = _data.AsSpan(_pos, (int)n);
        _pos += (int)n;
        return span;
    }

    private ReadOnlySpan<byte> Take(ulong n) => n > int.MaxValue ? throw EndsEarly(long.MaxValue) : Take((long)n);

    private PickleError EndsEarly(long needed) =>
        new(needed == long.MaxValue
            ? $"pickle ends early: a length field announces more bytes than the file holds ({_data.Length - _pos} remain)"
            : $"pickle ends early: {needed} more byte(s) needed but only {_data.Length - _pos} remain");

    private string ReadLine()
    {
        int nl = Array.IndexOf(_data, (byte)'\n', _pos);
        if (nl < 0) throw new PickleError($"pickle ends early: a text argument has no terminating newline ({_data.Length - _pos} bytes remain)");
        string s = Encoding.Latin1.GetString(_data, _pos, nl - _pos);
        _pos = nl + 1;
        return s.EndsWith('\r') ? s[..^1] : s;
    }

    private static string Utf8(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    private object ReadLong(int n)
    {
        var bytes = Take(n);
        if (n == 0) return 0L;
        var v = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v;
    }

    // ------------------------------------------------------------------ text-protocol parsing

    private static object ParseInteger(string s, string op)
    {
        if (s.Length > MaxIntDigits + 1)
            throw new PickleError($"{op} argument of {s.Length} characters exceeds the {MaxIntDigits}-digit integer limit");
        if (long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return l;
        if (BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var b)) return b;
        throw new PickleError($"{op} argument '{Clip(s)}' is not an integer");
    }

    private static double ParseFloat(string s)
    {
        switch (s.Trim().ToLowerInvariant())
        {
            case "inf" or "+inf": return double.PositiveInfinity;
            case "-inf": return double.NegativeInfinity;
            case "nan" or "+nan" or "-nan": return double.NaN;
        }
        if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return d;
        throw new PickleError($"FLOAT argument '{Clip(s)}' is not a number");
    }

    private static long ParseMemoIndex(string s) =>
        long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i
            : throw new PickleError($"memo index '{Clip(s)}' is not a non-negative integer");

    private static string Clip(string s) => s.Length > 40 ? s[..40] + "…" : s;

    /// <summary>Protocol-0 UNICODE: latin-1 text with \uXXXX and \UXXXXXXXX escapes.</summary>
    private static string DecodeRawUnicodeEscape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length && (s[i + 1] == 'u' || s[i + 1] == 'U'))
            {
                int digits = s[i + 1] == 'u' ? 4 : 8;
                if (i + 2 + digits > s.Length || !int.TryParse(s.AsSpan(i + 2, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int cp)
                    || cp < 0 || cp > 0x10FFFF)
                    throw new PickleError($"bad \\{s[i + 1]} escape in UNICODE argument '{Clip(s)}'");
                sb.Append(char.ConvertFromUtf32(cp));
                i += 1 + digits;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    /// <summary>Protocol-0 STRING: a quoted Python 2 str literal; its bytes are decoded as UTF-8 like torch.load does.</summary>
    private static string DecodeStringLiteral(string s)
    {
        if (s.Length < 2 || s[0] != s[^1] || (s[0] != '\'' && s[0] != '"'))
            throw new PickleError($"STRING argument {Clip(s)} is not a quoted string");
        var body = s[1..^1];
        var bytes = new List<byte>(body.Length);
        for (int i = 0; i < body.Length; i++)
        {
            char c = body[i];
            if (c != '\\') { bytes.Add((byte)c); continue; }
            if (++i >= body.Length) throw new PickleError($"STRING argument {Clip(s)} ends in a lone backslash");
            char e = body[i];
            switch (e)
            {
                case 'n': bytes.Add((byte)'\n'); break;
                case 'r': bytes.Add((byte)'\r'); break;
                case 't': bytes.Add((byte)'\t'); break;
                case 'a': bytes.Add(7); break;
                case 'b': bytes.Add(8); break;
                case 'f': bytes.Add(12); break;
                case 'v': bytes.Add(11); break;
                case '\\' or '\'' or '"': bytes.Add((byte)e); break;
                case 'x':
                    if (i + 2 >= body.Length || !byte.TryParse(body.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hx))
                        throw new PickleError($"bad \\x escape in STRING argument {Clip(s)}");
                    bytes.Add(hx);
                    i += 2;
                    break;
                case >= '0' and <= '7':
                    {
                        int v = 0, k = 0;
                        while (k < 3 && i < body.Length && body[i] >= '0' && body[i] <= '7') { v = v * 8 + (body[i] - '0'); i++; k++; }
                        i--;
                        bytes.Add((byte)v);
                        break;
                    }
                default: bytes.Add((byte)'\\'); bytes.Add((byte)e); break;
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    // ------------------------------------------------------------------ names

    internal static string OpName(byte op) => op switch
    {
        0 => "(end of data)",
        (byte)'(' => "MARK", (byte)'.' => "STOP", (byte)'0' => "POP", (byte)'1' => "POP_MARK", (byte)'2' => "DUP",
        (byte)'F' => "FLOAT", (byte)'I' => "INT", (byte)'J' => "BININT", (byte)'K' => "BININT1", (byte)'L' => "LONG",
        (byte)'M' => "BININT2", (byte)'N' => "NONE", (byte)'P' => "PERSID", (byte)'Q' => "BINPERSID", (byte)'R' => "REDUCE",
        (byte)'S' => "STRING", (byte)'T' => "BINSTRING", (byte)'U' => "SHORT_BINSTRING", (byte)'V' => "UNICODE",
        (byte)'X' => "BINUNICODE", (byte)'a' => "APPEND", (byte)'b' => "BUILD", (byte)'c' => "GLOBAL", (byte)'d' => "DICT",
        (byte)'}' => "EMPTY_DICT", (byte)'e' => "APPENDS", (byte)'g' => "GET", (byte)'h' => "BINGET", (byte)'i' => "INST",
        (byte)'j' => "LONG_BINGET", (byte)'l' => "LIST", (byte)']' => "EMPTY_LIST", (byte)'o' => "OBJ", (byte)'p' => "PUT",
        (byte)'q' => "BINPUT", (byte)'r' => "LONG_BINPUT", (byte)'s' => "SETITEM", (byte)'t' => "TUPLE", (byte)')' => "EMPTY_TUPLE",
        (byte)'u' => "SETITEMS", (byte)'G' => "BINFLOAT", (byte)'B' => "BINBYTES", (byte)'C' => "SHORT_BINBYTES",
        0x80 => "PROTO", 0x81 => "NEWOBJ", 0x82 => "EXT1", 0x83 => "EXT2", 0x84 => "EXT4", 0x85 => "TUPLE1", 0x86 => "TUPLE2",
        0x87 => "TUPLE3", 0x88 => "NEWTRUE", 0x89 => "NEWFALSE", 0x8a => "LONG1", 0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE", 0x8d => "BINUNICODE8", 0x8e => "BINBYTES8", 0x8f => "EMPTY_SET", 0x90 => "ADDITEMS",
        0x91 => "FROZENSET", 0x92 => "NEWOBJ_EX", 0x93 => "STACK_GLOBAL", 0x94 => "MEMOIZE", 0x95 => "FRAME",
        0x96 => "BYTEARRAY8", 0x97 => "NEXT_BUFFER", 0x98 => "READONLY_BUFFER",
        _ => $"0x{op:x2}",
    };
}
