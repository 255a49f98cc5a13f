using System.Diagnostics;
using System.Globalization;
using Qsvit.Tensors;

namespace Qsvit.Bench;

/// <summary>
/// What one parallel hand-off costs (<see cref="Compute.For"/> with empty items, and with items that each touch 64 KB),
/// by threads: the floor under every op of a pass on many cores.
///   dotnet run -c Release --project bench/Qsvit.Bench -- dispatch [seconds] [threads,...]
/// </summary>
internal static class DispatchProbe
{
    public static void Run(string[] args)
    {
        double seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 1.0;
        int[] counts = args.Length > 2 ? args[2].Split(',').Select(int.Parse).ToArray() : [2, 4, 8, 16];
        var data = new float[16 * 16384];
        Console.WriteLine("| threads | empty items: µs a call (median / best) | 64 KB items: µs a call (median / best) |");
        Console.WriteLine("|---:|---:|---:|");
        foreach (int t in counts)
        {
            string Time(Action<int> body)
            {
                var times = new List<double>();
                var clock = Stopwatch.StartNew();
                while (clock.Elapsed.TotalSeconds < seconds)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    Compute.For(t, t, body);
                    times.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
                }
                times.Sort();
                return string.Create(CultureInfo.InvariantCulture, $"{times[times.Count / 2]:F1} / {times[0]:F1}");
            }
            string empty = Time(_ => { });
            string touch = Time(i =>
            {
                var s = data.AsSpan(i * 16384, 16384);
                for (int j = 0; j < s.Length; j += 16) s[j] += 1f;
            });
            Console.WriteLine($"| {t} | {empty} | {touch} |");
        }
    }
}
