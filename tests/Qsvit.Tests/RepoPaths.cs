namespace Qsvit.Tests;

/// <summary>Locates files in the repository: the first directory above the test binaries that holds Qsvit.slnx.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Combine(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Qsvit.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no directory above {AppContext.BaseDirectory} contains Qsvit.slnx");
    }
}
