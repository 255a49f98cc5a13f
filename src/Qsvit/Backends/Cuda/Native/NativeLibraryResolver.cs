using System.Runtime.InteropServices;

namespace Qsvit.Backends.Cuda.Native;

/// <summary>
/// Where a native library was found, or why it was not: every path tried, so an error names what was looked for.
/// </summary>
public sealed record NativeLibraryResolution(IntPtr Handle, string? Path, IReadOnlyList<string> Tried)
{
    public bool Found => Handle != IntPtr.Zero;

    /// <summary>"libcublas.so.13 not found (tried: …)" for messages.</summary>
    public string Describe(string what) =>
        Found ? $"{what}: {Path}" : $"{what} not found (tried: {string.Join(", ", Tried)})";
}

/// <summary>
/// Resolves versioned CUDA libraries. The CUDA toolkit's lib64 directory is often not in the loader cache (it is not on
/// the device machine), so explicit CUDA directories are tried first for every name, in the order given, then the bare
/// names through the system loader.
/// </summary>
public static class NativeLibraryResolver
{
    /// <summary>
    /// Directories that hold CUDA libraries: <c>$CUDA_HOME</c>/<c>$CUDA_PATH</c> (lib64, lib, bin, bin/x64),
    /// /usr/local/cuda/lib64, then versioned /usr/local/cuda-*/lib64 newest first.
    /// </summary>
    public static IReadOnlyList<string> CudaDirectories()
    {
        var dirs = new List<string>();
        foreach (var variable in new[] { "CUDA_HOME", "CUDA_PATH" })
        {
            var root = Environment.GetEnvironmentVariable(variable);
            if (string.IsNullOrWhiteSpace(root)) continue;
            foreach (var sub in new[] { "lib64", "lib", "bin", Path.Combine("bin", "x64") }) dirs.Add(Path.Combine(root, sub));
        }
        if (!OperatingSystem.IsWindows())
        {
            dirs.Add("/usr/local/cuda/lib64");
            try
            {
                if (Directory.Exists("/usr/local"))
                    dirs.AddRange(Directory.GetDirectories("/usr/local", "cuda-*")
                        .OrderByDescending(d => d, StringComparer.Ordinal)
                        .Select(d => Path.Combine(d, "lib64")));
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return dirs.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// First library that loads: each name in each directory (in name order), then each bare name.
    /// <paramref name="load"/> defaults to <see cref="NativeLibrary.TryLoad(string, out IntPtr)"/>; tests pass their own.
    /// </summary>
    public static NativeLibraryResolution Resolve(IReadOnlyList<string> names, IReadOnlyList<string> directories,
        Func<string, IntPtr>? load = null)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(directories);
        load ??= TryLoad;
        var tried = new List<string>();
        foreach (var name in names)
            foreach (var dir in directories)
            {
                var path = Path.Combine(dir, name);
                tried.Add(path);
                var handle = load(path);
                if (handle != IntPtr.Zero) return new NativeLibraryResolution(handle, path, tried);
            }
        foreach (var name in names)
        {
            tried.Add(name);
            var handle = load(name);
            if (handle != IntPtr.Zero) return new NativeLibraryResolution(handle, name, tried);
        }
        return new NativeLibraryResolution(IntPtr.Zero, null, tried);
    }

    private static IntPtr TryLoad(string path) => NativeLibrary.TryLoad(path, out var handle) ? handle : IntPtr.Zero;

    /// <summary>An exported function, or a clear error naming the library and the symbol.</summary>
    internal static IntPtr Export(NativeLibraryResolution library, string symbol)
    {
        if (NativeLibrary.TryGetExport(library.Handle, symbol, out var address)) return address;
        throw new QsvitException($"{library.Path} does not export {symbol}: the library is too old or not the expected one.");
    }

    internal static IntPtr OptionalExport(NativeLibraryResolution library, string symbol)
        => NativeLibrary.TryGetExport(library.Handle, symbol, out var address) ? address : IntPtr.Zero;
}
