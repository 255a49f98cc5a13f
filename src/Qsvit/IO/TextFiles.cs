using System.Text.Json;
using System.Text.Json.Serialization;

namespace Qsvit.IO;

/// <summary>Writing the text files qsvit produces (manifests, reports, figures): whole or not at all, one JSON style.</summary>
public static class TextFiles
{
    /// <summary>The one JSON style of every file and --json output: indented, snake_case names, NaN allowed, nulls left out.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Writes beside the target and renames over it, so a reader (or a run killed mid-write) never sees half a file.</summary>
    public static void WriteAtomically(string path, string text)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }
}
