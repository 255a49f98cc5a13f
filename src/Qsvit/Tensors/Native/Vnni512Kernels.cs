using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Qsvit.Tensors;

/// <summary>
/// <see cref="SpikeGemm"/>'s 512-bit VNNI tiles (<see cref="IntIsa.Vnni512"/>): vpdpbusd (u8 spikes × s8 codes) and vpdpwssd
/// (s16 × s16) on zmm registers. .NET 10 exposes VNNI only on 128- and 256-bit vectors (<c>AvxVnni</c>; no AVX512_VNNI
/// class), and on AVX-512 VNNI CPUs the 512-bit form does 1.8x the multiply-adds per cycle (one core of the development
/// Xeon: 315 against 177 G multiply-adds/s), 3.5x the fp32 FMA rate. So its tiles (4 × 64 and 4 × 32, each for both ops) are
/// machine code (spike_tile_vnni512.s, bytes in Vnni512Code.cs), mapped executable once and called through function
/// pointers without a GC transition (a call is a few hundred cycles of register work on pinned memory). Linux x86-64 only
/// (the System V calling convention and mmap); elsewhere <see cref="IsSupported"/> is false and <see cref="SpikeGemm"/> keeps
/// its other paths (256-bit VNNI where the CPU has AVX-VNNI), as it does when the environment sets <c>QSVIT_VNNI512=0</c>
/// (to compare them, or as a way out). AVX-VNNI is not needed: AVX-512 VNNI CPUs without it (Ice Lake, Zen 4) run these tiles.
/// </summary>
internal static unsafe partial class Vnni512Kernels
{
    /// <summary>One tile's operands, as the machine code reads them (lda and ldc in bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Args
    {
        public byte* A;
        public long Lda;
        public int* B;
        public long* Offsets;
        public long G0, G1;
        public int* C;
        public long Ldc;
    }

    /// <summary>Columns of one tile; a block's 32-column remainder runs a half-width tile.</summary>
    public const int Columns = 64;

    private static readonly delegate* unmanaged[SuppressGCTransition]<Args*, void> s_narrow, s_wide, s_narrow32, s_wide32;

    /// <summary>True where the CPU has AVX-512 VNNI (CPUID leaf 7, ECX bit 11), the runtime uses AVX-512, and the code could be mapped.</summary>
    public static bool IsSupported { get; }

    static Vnni512Kernels()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return;
        if (Environment.GetEnvironmentVariable("QSVIT_VNNI512") == "0") return;
        // Avx512BW.IsSupported also says the OS saves zmm state and AVX-512 was not switched off (DOTNET_EnableAVX512F=0).
        if (!Avx512BW.IsSupported || (X86Base.CpuId(7, 0).Ecx & (1 << 11)) == 0) return;
        var code = MapExecutable(Code);
        if (code == null) return;
        s_narrow = (delegate* unmanaged[SuppressGCTransition]<Args*, void>)(code + NarrowEntry);
        s_wide = (delegate* unmanaged[SuppressGCTransition]<Args*, void>)(code + WideEntry);
        s_narrow32 = (delegate* unmanaged[SuppressGCTransition]<Args*, void>)(code + NarrowEntry32);
        s_wide32 = (delegate* unmanaged[SuppressGCTransition]<Args*, void>)(code + WideEntry32);
        IsSupported = true;
    }

    /// <summary>C[4, 64] (or C[4, 32] when <paramref name="half"/>) (+)= A[4 rows, groups g0..g1) · B: 8-bit codes by vpdpbusd, 16-bit by vpdpwssd.</summary>
    public static void Tile(bool wide, bool half, ref Args args)
    {
        fixed (Args* p = &args)
            (half ? wide ? s_wide32 : s_narrow32 : wide ? s_wide : s_narrow)(p);
    }

    /// <summary>Copies <paramref name="code"/> into a fresh page mapped read+execute (never writable and executable at once); null if the OS refuses.</summary>
    private static byte* MapExecutable(ReadOnlySpan<byte> code)
    {
        const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;
        if (!NativeLibrary.TryLoad("libc.so.6", out var libc) && !NativeLibrary.TryLoad("libc", out libc)) return null;
        if (!NativeLibrary.TryGetExport(libc, "mmap", out var mmapAddress) || !NativeLibrary.TryGetExport(libc, "mprotect", out var mprotectAddress))
            return null;
        var mmap = (delegate* unmanaged<nint, nuint, int, int, int, nint, nint>)mmapAddress;
        var mprotect = (delegate* unmanaged<nint, nuint, int, int>)mprotectAddress;
        nuint length = (nuint)((code.Length + 4095) & ~4095);
        nint page = mmap(0, length, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (page == -1 || page == 0) return null;
        code.CopyTo(new Span<byte>((void*)page, code.Length));
        return mprotect(page, length, ProtRead | ProtExec) == 0 ? (byte*)page : null;
    }
}
