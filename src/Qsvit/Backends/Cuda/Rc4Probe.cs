namespace Qsvit.Backends.Cuda;

/// <summary>
/// Probe switches of branch repconv4 (measurement builds only): QSVIT_PROBE_RC4 lists the changes that run ('i' the int8
/// 1×1's whole stage, 'r' the real 1×1's whole stage, '6' six row warps for 129–192 rows, 'd' the depthwise plane per
/// thread); unset runs all, "0" none (today's path).
/// </summary>
internal static class Rc4Probe
{
    /// <summary>Settable for tests (which compare both paths).</summary>
    internal static string Value { get; set; } = Environment.GetEnvironmentVariable("QSVIT_PROBE_RC4") ?? "ir6d";

    public static bool IntWhole => Value.Contains('i');
    public static bool RealWhole => Value.Contains('r');
    public static bool SixWarps => Value.Contains('6');
    public static bool Planes => Value.Contains('d');
}
