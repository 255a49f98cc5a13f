using System.Globalization;

namespace Qsvit.Backends;

public enum DeviceKind { Auto, Cpu, Cuda }

/// <summary>
/// Where to run, as the user writes it: <c>auto</c> (the first usable CUDA GPU, else the CPU), <c>cpu</c>, <c>cuda</c>
/// (= cuda:0), <c>cuda:N</c>, or several GPUs of one host: a list <c>cuda:0,1</c> or <c>cuda:all</c> (every GPU found),
/// which split each evaluation's batches across the GPUs (<see cref="DeviceGroup"/>).
/// </summary>
public sealed record DeviceSpec
{
    public DeviceSpec(DeviceKind kind, int index = 0)
    {
        Kind = kind;
        Index = index;
        Indices = kind == DeviceKind.Cuda ? [index] : [];
    }

    private DeviceSpec(IReadOnlyList<int> indices, bool all)
    {
        Kind = DeviceKind.Cuda;
        Index = indices.Count > 0 ? indices[0] : 0;
        Indices = indices;
        AllGpus = all;
    }

    public DeviceKind Kind { get; }
    /// <summary>The (first) GPU's index.</summary>
    public int Index { get; }
    /// <summary>The GPUs named, in order (one for cuda:N; empty for cpu, auto and cuda:all before it is opened).</summary>
    public IReadOnlyList<int> Indices { get; }
    /// <summary>cuda:all: every GPU the driver reports.</summary>
    public bool AllGpus { get; }
    /// <summary>Several GPUs (a list or all): evaluations split their batches across them.</summary>
    public bool IsGroup => AllGpus || Indices.Count > 1;

    public static DeviceSpec Auto { get; } = new(DeviceKind.Auto);
    public static DeviceSpec Cpu { get; } = new(DeviceKind.Cpu);
    public static DeviceSpec Cuda(int index = 0) => new(DeviceKind.Cuda, index);
    /// <summary>cuda:all, or (with indices) the list of GPUs, e.g. cuda:0,1.</summary>
    public static DeviceSpec CudaGroup(params int[] indices) => indices.Length switch
    {
        0 => new DeviceSpec([], all: true),
        1 => Cuda(indices[0]),
        _ => new DeviceSpec(indices.ToArray(), all: false),
    };

    public static DeviceSpec Parse(string? text)
    {
        string t = (text ?? "").Trim().ToLowerInvariant();
        switch (t)
        {
            case "auto": return Auto;
            case "cpu": return Cpu;
            case "cuda" or "gpu": return Cuda(0);
            case "cuda:all": return CudaGroup();
        }
        if (t.StartsWith("cuda:", StringComparison.Ordinal))
        {
            var parts = t[5..].Split(',');
            var indices = new int[parts.Length];
            bool ok = true;
            for (int i = 0; i < parts.Length && ok; i++)
                ok = int.TryParse(parts[i].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out indices[i]);
            if (ok)
            {
                if (indices.Distinct().Count() != indices.Length)
                    throw new QsvitException($"--device '{text}' names a GPU twice: list each GPU once, e.g. cuda:0,1");
                return CudaGroup(indices);
            }
        }
        throw new QsvitException($"--device '{text}' is not a device: use auto, cpu, cuda, cuda:N (N = 0, 1, …), a list of GPUs " +
                                 "such as cuda:0,1, or cuda:all");
    }

    public bool Equals(DeviceSpec? other) =>
        other is not null && Kind == other.Kind && AllGpus == other.AllGpus && Indices.SequenceEqual(other.Indices);

    public override int GetHashCode() => HashCode.Combine(Kind, AllGpus, Indices.Count > 0 ? Indices[0] : 0, Indices.Count);

    public override string ToString() => Kind switch
    {
        DeviceKind.Auto => "auto",
        DeviceKind.Cpu => "cpu",
        _ when AllGpus => "cuda:all",
        _ => $"cuda:{string.Join(",", Indices)}",
    };
}
