namespace Qsvit.Backends;

public enum DeviceKind { Auto, Cpu, Cuda }

/// <summary>
/// Where to run, as the user writes it: <c>auto</c> (the first usable CUDA GPU, else the CPU), <c>cpu</c>, <c>cuda</c>
/// (= cuda:0) or <c>cuda:N</c>. Several GPUs (<c>cuda:0,1</c>, <c>cuda:all</c>) are reserved for multi-GPU evaluation and
/// refused for now.
/// </summary>
public sealed record DeviceSpec(DeviceKind Kind, int Index = 0)
{
    public static DeviceSpec Auto { get; } = new(DeviceKind.Auto);
    public static DeviceSpec Cpu { get; } = new(DeviceKind.Cpu);
    public static DeviceSpec Cuda(int index = 0) => new(DeviceKind.Cuda, index);

    public static DeviceSpec Parse(string? text)
    {
        string t = (text ?? "").Trim().ToLowerInvariant();
        switch (t)
        {
            case "auto": return Auto;
            case "cpu": return Cpu;
            case "cuda" or "gpu": return Cuda(0);
        }
        if (t.StartsWith("cuda:", StringComparison.Ordinal))
        {
            string rest = t[5..];
            if (rest == "all" || rest.Contains(','))
                throw new QsvitException($"--device {text}: several GPUs at once are not supported yet; name one, e.g. cuda:0");
            if (int.TryParse(rest, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n))
                return Cuda(n);
        }
        throw new QsvitException($"--device '{text}' is not a device: use auto, cpu, cuda or cuda:N (N = 0, 1, …)");
    }

    public override string ToString() => Kind switch
    {
        DeviceKind.Auto => "auto",
        DeviceKind.Cpu => "cpu",
        _ => $"cuda:{Index}",
    };
}
