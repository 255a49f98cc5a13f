namespace Qsvit.Tests;

/// <summary>Locates repository files: the root is the nearest directory above the test binaries holding Qsvit.slnx.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Combine(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Qsvit.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no Qsvit.slnx above {AppContext.BaseDirectory}");
    }
}
