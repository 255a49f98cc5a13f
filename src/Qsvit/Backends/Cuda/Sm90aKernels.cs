using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Qsvit.Backends.Cuda;

/// <summary>
/// Loads ILGPU kernels whose inline PTX uses Hopper's architecture-specific instructions (<c>wgmma</c>, issue 13): those
/// assemble only for the target <c>sm_90a</c>, and ILGPU 1.5.3 writes the lowest target its features need (<c>sm_80</c> for
/// mma.sync and cp.async) with no way to ask for another. So the kernel is compiled to PTX by ILGPU's own backend, its
/// target line (and a PTX ISA below 8.0, which
/// <c>wgmma</c> needs) rewritten, and the text loaded back through ILGPU as a compiled kernel: launches, parameters and
/// streams stay ILGPU's. The compiled-kernel constructor is internal to ILGPU, so it is reached by reflection; where that
/// or the load fails (another ILGPU version, a driver without the ISA) the loader returns null and the caller keeps its
/// other kernels.
/// </summary>
internal static partial class Sm90aKernels
{
    /// <summary>Whether <paramref name="acc"/> runs sm_90a code: compute capability 9.0 exactly (the "a" features are not forward compatible).</summary>
    public static bool Supported(Accelerator acc) =>
        acc is CudaAccelerator cuda && cuda.Architecture is { Major: 9, Minor: 0 };

    /// <summary>
    /// The explicitly grouped kernel <paramref name="kernel"/> built for sm_90a, as a launcher on the default stream
    /// (<typeparamref name="TLauncher"/>: <c>Action&lt;AcceleratorStream, KernelConfig, …&gt;</c>), or null with
    /// <paramref name="why"/> set where it cannot be built here.
    /// </summary>
    /// <param name="dynamicSharedBytes">Dynamic shared memory its launches ask for: above 48 KB the function must be allowed it first.</param>
    /// <param name="specialization">
    /// Its launch bounds (ILGPU writes them as <c>.maxntid</c> and <c>.minnctapersm</c>): ptxas keeps a thread's registers
    /// within what that many blocks a multiprocessor leave.
    /// </param>
    public static TLauncher? Load<TLauncher>(Accelerator acc, Delegate kernel, int dynamicSharedBytes, KernelSpecialization specialization, out string? why)
        where TLauncher : Delegate
    {
        why = null;
        if (!Supported(acc))
        {
            why = "not an sm_90 GPU";
            return null;
        }
        try
        {
            var compiled = (PTXCompiledKernel)acc.GetBackend().Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method), specialization);
            string ptx = Retarget(compiled.PTXAssembly);
            var entryPoint = typeof(CompiledKernel).GetProperty("EntryPoint", BindingFlags.Instance | BindingFlags.NonPublic)?.GetValue(compiled)
                ?? throw new MissingMemberException("CompiledKernel.EntryPoint");
            var constructor = typeof(PTXCompiledKernel).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic)
                .SingleOrDefault(c => c.GetParameters().Length == 4) ?? throw new MissingMemberException("PTXCompiledKernel(Context, EntryPoint, KernelInfo, string)");
            var retargeted = (PTXCompiledKernel)constructor.Invoke([compiled.Context, entryPoint, compiled.Info, ptx]);
            // ILGPU traces the driver's JIT log where a module fails to load: keep it for the reason.
            using var log = new StringWriter();
            using var listener = new TextWriterTraceListener(log);
            Trace.Listeners.Add(listener);
            try
            {
                var loaded = acc.LoadKernel(retargeted);
                if (dynamicSharedBytes > 48 * 1024)
                {
                    int status = SetFunctionAttribute(((CudaKernel)loaded).FunctionPtr, MaxDynamicSharedSizeBytes, dynamicSharedBytes);
                    if (status != 0)
                    {
                        why = $"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {dynamicSharedBytes}) failed with CUDA error {status}";
                        return null;
                    }
                }
                return loaded.CreateLauncherDelegate<TLauncher>();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                listener.Flush();
                why = $"{e.GetType().Name}: {e.Message} {log.ToString().ReplaceLineEndings(" ").Trim()}".Trim();
                return null;
            }
            finally
            {
                Trace.Listeners.Remove(listener);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            why = $"{e.GetType().Name}: {e.Message}";
            return null;
        }
    }

    /// <summary>PTX for sm_90a: the <c>.target</c> line names sm_90a (its options kept), and a <c>.version</c> below 8.0 becomes 8.0.</summary>
    internal static string Retarget(string ptx)
    {
        if (!TargetLine().IsMatch(ptx)) throw new FormatException("the PTX has no .target sm_XX line");
        string targeted = TargetLine().Replace(ptx, m => m.Groups[1].Value + "sm_90a" + m.Groups[2].Value, 1);
        return VersionLine().Replace(targeted, m =>
            double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) < 8.0 ? m.Groups[1].Value + "8.0" : m.Value, 1);
    }

    /// <summary>CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.</summary>
    private const int MaxDynamicSharedSizeBytes = 8;

    /// <summary>The driver API's cuFuncSetAttribute (from the driver library ILGPU opened already); a CUresult.</summary>
    private static unsafe int SetFunctionAttribute(IntPtr function, int attribute, int value)
    {
        var driver = NativeLibrary.Load(GpuDevice.DriverLibrary);
        var set = (delegate* unmanaged<IntPtr, int, int, int>)NativeLibrary.GetExport(driver, "cuFuncSetAttribute");
        return set(function, attribute, value);
    }

    [GeneratedRegex(@"^(\s*\.target\s+)sm_[0-9]+[a-z]?(?![0-9a-z])(.*)$", RegexOptions.Multiline)]
    private static partial Regex TargetLine();

    [GeneratedRegex(@"^(\s*\.version\s+)([0-9]+\.[0-9]+)", RegexOptions.Multiline)]
    private static partial Regex VersionLine();
}
