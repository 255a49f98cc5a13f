using System.Diagnostics;
using System.Globalization;
using Qsvit.IO.Datasets.Jpeg;
using StbImageSharp;

namespace Qsvit.Bench;

/// <summary>
/// JPEG decoding time, qsvit's PIL-exact decoder against StbImageSharp (what qsvit used before), one thread, in
/// interleaved rounds keeping the fastest run of each (robust on a busy machine). Prints a Markdown table.
///   dotnet run -c Release --project bench/Qsvit.Bench -- jpeg [seconds-per-file] FILE.jpg...
/// </summary>
internal static class JpegBench
{
    public static void Run(string[] args)
    {
        double seconds = double.Parse(args[1], CultureInfo.InvariantCulture);
        Console.WriteLine($"{Environment.ProcessorCount} logical CPUs; best of interleaved runs over {seconds} s per file and decoder");
        Console.WriteLine();
        Console.WriteLine("| File | Size | qsvit (ms) | StbImageSharp (ms) | qsvit / Stb |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        foreach (string file in args.Skip(2))
        {
            var bytes = File.ReadAllBytes(file);
            var image = ImageResult.FromMemory(bytes, ColorComponents.RedGreenBlue);
            Action[] decoders =
            [
                () => JpegDecoder.DecodeRgb(bytes, file, out _, out _),
                () => ImageResult.FromMemory(bytes, ColorComponents.RedGreenBlue),
            ];
            var best = new[] { double.MaxValue, double.MaxValue };
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < 2 * seconds)
                for (int d = 0; d < decoders.Length; d++)
                {
                    var t = Stopwatch.StartNew();
                    decoders[d]();
                    best[d] = Math.Min(best[d], t.Elapsed.TotalMilliseconds);
                }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Path.GetFileName(file)} | {image.Width}x{image.Height} | {best[0]:F2} | {best[1]:F2} | {best[0] / best[1]:F2} |"));
        }
    }
}
