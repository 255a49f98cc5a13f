using System.CommandLine;
using Qsvit.Quantization;

namespace Qsvit.Cli.Commands;

/// <summary>Options several commands take, declared once (each command gets its own instance).</summary>
internal static class CommonOptions
{
    public static Option<int?> Threads() => new("--threads") { Description = "Worker threads (default: all cores)" };

    public static Option<bool> Json() => new("--json") { Description = "Print the result as JSON on stdout" };

    public static Option<string> Quantizer() => new("--quantizer", "-q")
    {
        Description = $"Weight quantizer: {string.Join(", ", QuantizerSpec.Names)}",
        DefaultValueFactory = _ => "paper",
    };

    /// <summary>Reads --quantizer: parsed and checked.</summary>
    public static QuantizerSpec ParseQuantizer(string text)
    {
        var spec = QuantizerSpec.Parse(text);
        spec.Validate();
        return spec;
    }
}
