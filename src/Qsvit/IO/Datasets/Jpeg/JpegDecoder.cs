using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Qsvit.IO.Datasets.Jpeg;

/// <summary>
/// Decodes a Huffman-coded JPEG (baseline, extended and progressive with successive approximation; 8-bit samples;
/// restart intervals) to interleaved RGB with the same bytes as PIL's <c>Image.open(f).convert("RGB")</c> over
/// libjpeg-turbo with its defaults: the accurate integer IDCT, fancy chroma upsampling, libjpeg's colour-space guess
/// from the JFIF/Adobe markers and component ids, its YCbCr tables, and PIL's CMYK handling. Written from ITU T.81 and
/// libjpeg's documented behaviour. All scans are decoded into coefficient planes first, then transformed, upsampled
/// and converted row by row.
/// <para>Corrupt data is refused rather than concealed: entropy-coded data that runs into a marker or the end of the
/// file, an invalid Huffman code or a missing restart marker is a <see cref="QsvitException"/> naming the file
/// (libjpeg would warn and fill in gray). The caller has already walked the header (<see cref="ImageDecoder"/>).</para>
/// </summary>
internal sealed class JpegDecoder
{
    /// <summary>More scans than any encoder writes (libjpeg-turbo's progressive scripts use about ten).</summary>
    private const int MaxScans = 1000;

    /// <summary>Zig-zag index to natural index, with 16 extra entries as libjpeg has so corrupt runs stay in the block.</summary>
    private static readonly byte[] NaturalOrder =
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
        28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
        54, 47, 55, 62, 63,
        63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    ];

    private sealed class Component
    {
        public int Id, H, V, QuantIndex;
        public int Width, Height;                 // libjpeg's downsampled size, in samples
        public int BlocksW, BlocksH;              // blocks that hold those samples
        public int StrideBlocks, RowsBlocks;      // blocks allocated: the MCU grid
        public short[] Coefs = [];
        public short[]? Quant;                    // latched at the component's first scan, as libjpeg does
        public int DcPred;
        public JpegHuffman? Dc, Ac;
        public bool Seen;
    }

    private readonly byte[] _data;
    private readonly string _path;
    private int _pos;

    private readonly short[]?[] _quant = new short[4][];
    private readonly JpegHuffman?[] _dcTables = new JpegHuffman[4], _acTables = new JpegHuffman[4];
    private Component[] _comps = [];
    private int _width, _height, _hMax, _vMax, _mcusX, _mcusY, _restartInterval, _scans;
    private bool _progressive, _jfif, _adobe;
    private int _adobeTransform;

    // Bit reader: MSB-aligned buffer; bytes past a marker or the file's end read as zeros and are counted.
    private ulong _bits;
    private int _nbits, _padBytes;
    private bool _atMarker;
    private int _eobRun;

    private JpegDecoder(byte[] data, string path)
    {
        _data = data;
        _path = path;
    }

    public static byte[] DecodeRgb(byte[] data, string path, out int width, out int height)
    {
        var d = new JpegDecoder(data, path);
        try
        {
            d.ReadAll();
            width = d._width;
            height = d._height;
            return d.Output();
        }
        finally
        {
            foreach (var c in d._comps)
                if (c.Coefs.Length > 0) ArrayPool<short>.Shared.Return(c.Coefs);
        }
    }

    private QsvitException Corrupt(string what) => new($"{_path}: corrupt JPEG: {what}");

    private QsvitException Truncated(string where) => new($"{_path}: JPEG ends early (truncated file?): {where}");

    // ---- markers ------------------------------------------------------------------------------------------------

    private void ReadAll()
    {
        _pos = 2;
        bool sawEoi = false;
        while (!sawEoi)
        {
            int marker = NextMarker();
            if (marker < 0)
            {
                // The file ends between scans. A one-pass file whose every component has been decoded is complete
                // without its EOI; anything else is missing data (PIL refuses it as truncated too).
                if (_comps.Length > 0 && !_progressive && _comps.All(c => c.Seen)) break;
                throw Truncated($"no end-of-image marker after {_scans} scan(s)");
            }
            switch (marker)
            {
                case 0xD8: throw Corrupt($"a second start-of-image marker at offset {_pos - 2}");
                case 0xD9: sawEoi = true; break;
                case >= 0xD0 and <= 0xD7: break;   // a stray restart marker: libjpeg skips it too
                case 0x01: break;
                default:
                    int length = SegmentLength(marker);
                    var seg = _data.AsSpan(_pos + 2, length - 2);
                    switch (marker)
                    {
                        case 0xC0 or 0xC1 or 0xC2: ReadFrame(seg, marker == 0xC2); break;
                        case 0xC4: ReadHuffmanTables(seg); break;
                        case 0xDB: ReadQuantTables(seg); break;
                        case 0xDD:
                            if (seg.Length < 2) throw Corrupt("restart-interval segment too short");
                            _restartInterval = BinaryPrimitives.ReadUInt16BigEndian(seg);
                            break;
                        case 0xE0:
                            if (seg.Length >= 14 && seg[..5].SequenceEqual("JFIF\0"u8)) _jfif = true;
                            break;
                        case 0xEE:
                            if (seg.Length >= 12 && seg[..5].SequenceEqual("Adobe"u8)) { _adobe = true; _adobeTransform = seg[11]; }
                            break;
                        case 0xDA:
                            _pos += length;
                            ReadScan(seg);
                            continue;
                        case >= 0xC3 and <= 0xCF and not 0xC8:
                            throw new QsvitException($"{_path}: a JPEG of type SOF{marker - 0xC0} (lossless, hierarchical or arithmetic-coded) is not supported");
                        case 0xDC: throw new QsvitException($"{_path}: a JPEG whose height comes later (DNL marker) is not supported");
                    }
                    _pos += length;
                    break;
            }
        }
        if (_comps.Length == 0) throw Corrupt("no frame header");
        foreach (var c in _comps)
            if (!c.Seen) throw Corrupt($"component {c.Id} appears in no scan");
    }

    /// <summary>The next marker code at or after <see cref="_pos"/> (garbage bytes before it skipped, as libjpeg does), or −1 at the end.</summary>
    private int NextMarker()
    {
        while (true)
        {
            while (_pos < _data.Length && _data[_pos] != 0xFF) _pos++;
            while (_pos < _data.Length && _data[_pos] == 0xFF) _pos++;
            if (_pos >= _data.Length) return -1;
            int m = _data[_pos++];
            if (m != 0) return m;
        }
    }

    private int SegmentLength(int marker)
    {
        if (_pos + 2 > _data.Length) throw Truncated($"in the length of segment 0xFF{marker:X2} at offset {_pos}");
        int length = BinaryPrimitives.ReadUInt16BigEndian(_data.AsSpan(_pos));
        if (length < 2 || _pos + length > _data.Length)
            throw Truncated($"inside segment 0xFF{marker:X2} at offset {_pos}, which declares {length} bytes but {_data.Length - _pos} remain");
        return length;
    }

    private void ReadFrame(ReadOnlySpan<byte> seg, bool progressive)
    {
        if (_comps.Length > 0) throw Corrupt("a second frame header");
        if (seg.Length < 6) throw Corrupt($"frame header of {seg.Length} bytes");
        if (seg[0] != 8) throw new QsvitException($"{_path}: a {seg[0]}-bit JPEG; only 8-bit samples are supported");
        _height = BinaryPrimitives.ReadUInt16BigEndian(seg[1..]);
        _width = BinaryPrimitives.ReadUInt16BigEndian(seg[3..]);
        int n = seg[5];
        if (n is not (1 or 3 or 4) || seg.Length != 6 + 3 * n) throw Corrupt($"frame header with {n} components in {seg.Length} bytes");
        if (_width == 0 || _height == 0) throw Corrupt($"frame of {_width}x{_height} samples");
        _progressive = progressive;
        var comps = new Component[n];
        for (int i = 0; i < n; i++)
        {
            var s = seg.Slice(6 + 3 * i, 3);
            int h = s[1] >> 4, v = s[1] & 15;
            if (h is < 1 or > 4 || v is < 1 or > 4) throw Corrupt($"component {s[0]} has sampling factors {h}x{v}");
            if (s[2] > 3) throw Corrupt($"component {s[0]} names quantization table {s[2]}");
            for (int j = 0; j < i; j++)
                if (comps[j].Id == s[0]) throw Corrupt($"two components with id {s[0]}");
            comps[i] = new Component { Id = s[0], H = h, V = v, QuantIndex = s[2] };
        }
        _hMax = comps.Max(c => c.H);
        _vMax = comps.Max(c => c.V);
        _mcusX = (_width + 8 * _hMax - 1) / (8 * _hMax);
        _mcusY = (_height + 8 * _vMax - 1) / (8 * _vMax);
        foreach (var c in comps)
        {
            if (_hMax % c.H != 0 || _vMax % c.V != 0)
                throw new QsvitException($"{_path}: a JPEG with fractional sampling ratios ({c.H}x{c.V} of {_hMax}x{_vMax}) is not supported (nor by libjpeg)");
            c.Width = (int)(((long)_width * c.H + _hMax - 1) / _hMax);
            c.Height = (int)(((long)_height * c.V + _vMax - 1) / _vMax);
            c.BlocksW = (c.Width + 7) / 8;
            c.BlocksH = (c.Height + 7) / 8;
            c.StrideBlocks = _mcusX * c.H;
            c.RowsBlocks = _mcusY * c.V;
        }
        // Allocate only once the sizes are known to be sane (the caller has checked the pixel limit).
        _comps = comps;
        foreach (var c in comps)
        {
            int count = checked(c.StrideBlocks * c.RowsBlocks * 64);
            c.Coefs = ArrayPool<short>.Shared.Rent(count);
            Array.Clear(c.Coefs, 0, count);
        }
    }

    private void ReadHuffmanTables(ReadOnlySpan<byte> seg)
    {
        while (seg.Length > 0)
        {
            if (seg.Length < 17) throw Corrupt("Huffman table segment too short");
            int cls = seg[0] >> 4, index = seg[0] & 15;
            if (cls > 1 || index > 3) throw Corrupt($"Huffman table class {cls} index {index}");
            int total = 0;
            for (int i = 1; i <= 16; i++) total += seg[i];
            if (total > 256 || seg.Length < 17 + total) throw Corrupt($"Huffman table of {total} symbols in {seg.Length - 17} bytes");
            var table = JpegHuffman.Build(seg.Slice(1, 16), seg.Slice(17, total), cls == 0)
                        ?? throw Corrupt($"invalid Huffman table (class {cls}, index {index})");
            (cls == 0 ? _dcTables : _acTables)[index] = table;
            seg = seg[(17 + total)..];
        }
    }

    private void ReadQuantTables(ReadOnlySpan<byte> seg)
    {
        while (seg.Length > 0)
        {
            int precision = seg[0] >> 4, index = seg[0] & 15;
            if (precision > 1 || index > 3) throw Corrupt($"quantization table precision {precision} index {index}");
            int size = 1 + 64 * (precision + 1);
            if (seg.Length < size) throw Corrupt("quantization table segment too short");
            var q = new short[64];
            for (int k = 0; k < 64; k++)
                q[NaturalOrder[k]] = (short)(precision == 0 ? seg[1 + k] : BinaryPrimitives.ReadUInt16BigEndian(seg[(1 + 2 * k)..]));
            _quant[index] = q;
            seg = seg[size..];
        }
    }

    // ---- scans --------------------------------------------------------------------------------------------------

    private void ReadScan(ReadOnlySpan<byte> seg)
    {
        if (_comps.Length == 0) throw Corrupt("image data (SOS) before the frame header");
        if (++_scans > MaxScans) throw Corrupt($"more than {MaxScans} scans");
        int n = seg.Length > 0 ? seg[0] : 0;
        if (n is < 1 or > 4 || seg.Length != 4 + 2 * n) throw Corrupt($"scan header with {n} components in {seg.Length} bytes");
        var comps = new Component[n];
        int blocksPerMcu = 0;
        for (int i = 0; i < n; i++)
        {
            int id = seg[1 + 2 * i], tables = seg[2 + 2 * i];
            var c = _comps.FirstOrDefault(x => x.Id == id) ?? throw Corrupt($"scan names component {id}, which the frame lacks");
            if (Array.IndexOf(comps, c) >= 0) throw Corrupt($"scan names component {id} twice");
            comps[i] = c;
            c.Dc = Table(_dcTables, tables >> 4, dc: true);
            c.Ac = Table(_acTables, tables & 15, dc: false);
            blocksPerMcu += c.H * c.V;
        }
        if (n > 1 && blocksPerMcu > 10) throw Corrupt($"an MCU of {blocksPerMcu} blocks (at most 10 allowed)");
        int ss = seg[1 + 2 * n], se = seg[2 + 2 * n], ah = seg[3 + 2 * n] >> 4, al = seg[3 + 2 * n] & 15;
        if (_progressive)
        {
            bool ok = ss == 0 ? se == 0 : ss <= se && se <= 63 && n == 1;
            if (!ok || ah > 13 || al > 13) throw Corrupt($"progressive scan parameters Ss={ss} Se={se} Ah={ah} Al={al}");
        }
        else if (ss != 0 || se != 63 || ah != 0 || al != 0)
            throw Corrupt($"sequential scan parameters Ss={ss} Se={se} Ah={ah} Al={al}");

        foreach (var c in comps)
        {
            // Only the tables this scan uses must exist.
            bool needDc = !_progressive || (ss == 0 && ah == 0), needAc = !_progressive || ss > 0;
            if (needDc && c.Dc is null) throw Corrupt($"scan uses a DC Huffman table that is not defined (component {c.Id})");
            if (needAc && c.Ac is null) throw Corrupt($"scan uses an AC Huffman table that is not defined (component {c.Id})");
            if (c.Quant is null)
                c.Quant = (short[]?)_quant[c.QuantIndex]?.Clone() ?? throw Corrupt($"component {c.Id} uses quantization table {c.QuantIndex}, which is not defined");
            c.Seen = true;
            c.DcPred = 0;
        }
        ResetBits();
        _eobRun = 0;

        int kind = !_progressive ? 0 : ss == 0 ? (ah == 0 ? 1 : 2) : (ah == 0 ? 3 : 4);
        int mcus, mcusX;
        if (n == 1)
        {
            mcusX = comps[0].BlocksW;
            mcus = comps[0].BlocksW * comps[0].BlocksH;
        }
        else
        {
            mcusX = _mcusX;
            mcus = _mcusX * _mcusY;
        }
        int restartsLeft = _restartInterval, nextRestart = 0;
        for (int m = 0; m < mcus; m++)
        {
            if (_restartInterval > 0)
            {
                if (restartsLeft == 0)
                {
                    ReadRestart(nextRestart);
                    nextRestart = (nextRestart + 1) & 7;
                    restartsLeft = _restartInterval;
                    foreach (var c in comps) c.DcPred = 0;
                    _eobRun = 0;
                }
                restartsLeft--;
            }
            int my = m / mcusX, mx = m % mcusX;
            if (n == 1)
                DecodeBlock(comps[0], (my * comps[0].StrideBlocks + mx) * 64, kind, ss, se, al);
            else
                foreach (var c in comps)
                    for (int v = 0; v < c.V; v++)
                        for (int h = 0; h < c.H; h++)
                            DecodeBlock(c, ((my * c.V + v) * c.StrideBlocks + mx * c.H + h) * 64, kind, ss, se, al);
            if (_padBytes * 8 > _nbits) throw DataEnds();
        }
        // Leave the reader at the first byte not consumed; the marker loop skips any padding after it.
        ResetBits();
    }

    /// <summary>A table slot as libjpeg-turbo fills it: slots 0 and 1 left undefined hold the T.81 K.3 tables.</summary>
    private static JpegHuffman? Table(JpegHuffman?[] slots, int index, bool dc) =>
        index > 3 ? null : slots[index] ??= index < 2 ? JpegHuffman.Standard(dc, index) : null;

    private QsvitException DataEnds() =>
        _pos >= _data.Length
            ? Truncated($"inside the image data of scan {_scans}")
            : Corrupt($"the image data of scan {_scans} ends early (premature end of data segment at offset {_pos})");

    private void ReadRestart(int expected)
    {
        if (_padBytes * 8 > _nbits) throw DataEnds();
        ResetBits();
        int m = NextMarker();
        if (m != 0xD0 + expected)
            throw m < 0 ? Truncated($"inside the image data of scan {_scans}")
                        : Corrupt($"expected restart marker RST{expected} in scan {_scans}, found 0xFF{m:X2} at offset {_pos - 2}");
    }

    /// <summary>
    /// Drops buffered bits. Read-ahead never passes a marker, so the marker walk from <see cref="_pos"/> finds the
    /// next one (stepping over any stuffed bytes that were buffered but not used).
    /// </summary>
    private void ResetBits()
    {
        _bits = 0;
        _nbits = 0;
        _padBytes = 0;
        _atMarker = false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Fill()
    {
        while (_nbits <= 56)
        {
            int b = 0;
            if (_atMarker || _pos >= _data.Length) _padBytes++;
            else
            {
                b = _data[_pos];
                if (b == 0xFF)
                {
                    int next = _pos + 1 < _data.Length ? _data[_pos + 1] : -1;
                    if (next == 0) _pos += 2;
                    else
                    {
                        _atMarker = true;   // a marker (or the end of the file): zeros from here on
                        _padBytes++;
                        b = 0;
                    }
                }
                else _pos++;
            }
            _bits |= (ulong)b << (56 - _nbits);
            _nbits += 8;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Bits(int n)
    {
        if (_nbits < n) Fill();
        int v = (int)(_bits >> (64 - n));
        _bits <<= n;
        _nbits -= n;
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Bit()
    {
        if (_nbits < 1) Fill();
        int v = (int)(_bits >> 63);
        _bits <<= 1;
        _nbits--;
        return v;
    }

    /// <summary>A value of <paramref name="s"/> bits in T.81's sign-magnitude form (EXTEND).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Receive(int s)
    {
        if (s == 0) return 0;
        int v = Bits(s);
        return v < 1 << (s - 1) ? v + (-1 << s) + 1 : v;
    }

    private int Decode(JpegHuffman t)
    {
        if (_nbits < 16) Fill();
        int e = t.Lookup[(int)(_bits >> (64 - JpegHuffman.LookBits))];
        if (e != 0)
        {
            int len = e >> 8;
            _bits <<= len;
            _nbits -= len;
            return e & 0xFF;
        }
        int l = JpegHuffman.LookBits + 1;
        int code = (int)(_bits >> (64 - l));
        while (code > t.MaxCode[l])
        {
            l++;
            if (l > 16) throw _padBytes > 0 ? DataEnds() : Corrupt($"invalid Huffman code in scan {_scans} near offset {_pos}");
            code = (int)(_bits >> (64 - l));
        }
        _bits <<= l;
        _nbits -= l;
        return t.Values[t.Offset[l] + code];
    }

    private void DecodeBlock(Component c, int offset, int kind, int ss, int se, int al)
    {
        var block = c.Coefs.AsSpan(offset, 64);
        switch (kind)
        {
            case 0:   // sequential
            {
                int s = Decode(c.Dc!);
                c.DcPred = unchecked(c.DcPred + Receive(s));
                block[0] = unchecked((short)c.DcPred);
                var ac = c.Ac!;
                for (int k = 1; k < 64; k++)
                {
                    int rs = Decode(ac), r = rs >> 4;
                    s = rs & 15;
                    if (s != 0)
                    {
                        k += r;
                        block[NaturalOrder[k]] = (short)Receive(s);
                    }
                    else if (r == 15) k += 15;
                    else break;
                }
                break;
            }
            case 1:   // progressive DC, first pass
            {
                int s = Decode(c.Dc!);
                c.DcPred = unchecked(c.DcPred + Receive(s));
                block[0] = unchecked((short)(c.DcPred << al));
                break;
            }
            case 2:   // progressive DC, refinement
                if (Bit() != 0) block[0] |= (short)(1 << al);
                break;
            case 3:   // progressive AC, first pass
            {
                if (_eobRun > 0)
                {
                    _eobRun--;
                    break;
                }
                var ac = c.Ac!;
                for (int k = ss; k <= se; k++)
                {
                    int rs = Decode(ac), r = rs >> 4, s = rs & 15;
                    if (s != 0)
                    {
                        k += r;
                        block[NaturalOrder[k]] = unchecked((short)(Receive(s) << al));
                    }
                    else if (r == 15) k += 15;
                    else
                    {
                        _eobRun = (1 << r) - 1;
                        if (r > 0) _eobRun += Bits(r);
                        break;
                    }
                }
                break;
            }
            default:   // progressive AC, refinement
                RefineAc(c, block, ss, se, al);
                break;
        }
    }

    private void RefineAc(Component c, Span<short> block, int ss, int se, int al)
    {
        int p1 = 1 << al, m1 = -1 << al;
        int k = ss;
        if (_eobRun == 0)
        {
            var ac = c.Ac!;
            for (; k <= se; k++)
            {
                int rs = Decode(ac), r = rs >> 4, s = rs & 15;
                if (s != 0)
                    s = Bit() != 0 ? p1 : m1;   // a newly nonzero coefficient is always ±1 at this bit
                else if (r != 15)
                {
                    _eobRun = 1 << r;
                    if (r > 0) _eobRun += Bits(r);
                    break;
                }
                // Skip r zero coefficients (refining the nonzero ones passed on the way), then place the new one.
                do
                {
                    int z = NaturalOrder[k];
                    if (block[z] != 0)
                    {
                        if (Bit() != 0 && (block[z] & p1) == 0)
                            block[z] = unchecked((short)(block[z] >= 0 ? block[z] + p1 : block[z] + m1));
                    }
                    else if (--r < 0) break;
                    k++;
                } while (k <= se);
                if (s != 0) block[NaturalOrder[k]] = (short)s;
            }
        }
        if (_eobRun > 0)
        {
            // In an end-of-band run: only the correction bits of coefficients already nonzero.
            for (; k <= se; k++)
            {
                int z = NaturalOrder[k];
                if (block[z] != 0 && Bit() != 0 && (block[z] & p1) == 0)
                    block[z] = unchecked((short)(block[z] >= 0 ? block[z] + p1 : block[z] + m1));
            }
            _eobRun--;
        }
    }

    // ---- output -------------------------------------------------------------------------------------------------

    /// <summary>libjpeg's colour-space guess (jdapimin's defaults) for the frame's component count.</summary>
    private enum ColorSpace { Gray, YCbCr, Rgb, Cmyk, Ycck }

    private ColorSpace Space()
    {
        switch (_comps.Length)
        {
            case 1: return ColorSpace.Gray;
            case 3:
                if (_jfif) return ColorSpace.YCbCr;
                if (_adobe) return _adobeTransform == 0 ? ColorSpace.Rgb : ColorSpace.YCbCr;
                if (_comps[0].Id == 'R' && _comps[1].Id == 'G' && _comps[2].Id == 'B') return ColorSpace.Rgb;
                return ColorSpace.YCbCr;
            default:
                return _adobe && _adobeTransform != 0 ? ColorSpace.Ycck : ColorSpace.Cmyk;
        }
    }

    private byte[] Output()
    {
        int n = _comps.Length;
        var planes = new byte[n][];
        var rows = new byte[n][];
        try
        {
            for (int i = 0; i < n; i++)
            {
                var c = _comps[i];
                int stride = c.BlocksW * 8;
                planes[i] = ArrayPool<byte>.Shared.Rent(checked(stride * c.BlocksH * 8));
                for (int by = 0; by < c.BlocksH; by++)
                    for (int bx = 0; bx < c.BlocksW; bx++)
                        JpegIdct.Transform(c.Coefs.AsSpan((by * c.StrideBlocks + bx) * 64, 64), c.Quant,
                            planes[i].AsSpan(by * 8 * stride + bx * 8), stride);
                rows[i] = ArrayPool<byte>.Shared.Rent(_width);
            }
            var rgb = new byte[checked(_width * _height * 3)];
            var space = Space();
            for (int y = 0; y < _height; y++)
            {
                for (int i = 0; i < n; i++)
                {
                    var c = _comps[i];
                    JpegColor.UpsampleRow(planes[i], c.BlocksW * 8, c.Width, c.Height, _hMax / c.H, _vMax / c.V, y,
                        rows[i].AsSpan(0, _width));
                }
                var o = rgb.AsSpan(y * _width * 3, _width * 3);
                ReadOnlySpan<byte> r0 = rows[0].AsSpan(0, _width);
                switch (space)
                {
                    case ColorSpace.Gray: JpegColor.GrayToRgb(r0, o); break;
                    case ColorSpace.YCbCr: JpegColor.YccToRgb(r0, rows[1].AsSpan(0, _width), rows[2].AsSpan(0, _width), o); break;
                    case ColorSpace.Rgb: JpegColor.Interleave(r0, rows[1].AsSpan(0, _width), rows[2].AsSpan(0, _width), o); break;
                    default:
                        JpegColor.CmykToRgb(r0, rows[1].AsSpan(0, _width), rows[2].AsSpan(0, _width), rows[3].AsSpan(0, _width),
                            space == ColorSpace.Ycck, o);
                        break;
                }
            }
            return rgb;
        }
        finally
        {
            foreach (var p in planes) if (p is not null) ArrayPool<byte>.Shared.Return(p);
            foreach (var r in rows) if (r is not null) ArrayPool<byte>.Shared.Return(r);
        }
    }
}
