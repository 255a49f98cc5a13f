namespace Qsvit.IO.Pickle;

/// <summary>
/// Gives meaning to the few pickle operations that would run code in Python. The unpickler never
/// imports or calls anything: it asks the host, which only knows an explicit allow-list and throws
/// <see cref="PickleError"/> for everything else.
/// </summary>
internal interface IPickleHost
{
    /// <summary>GLOBAL / STACK_GLOBAL / INST: returns a marker for an allow-listed global or throws.</summary>
    object ResolveGlobal(string module, string name);

    /// <summary>REDUCE: callable(*args).</summary>
    object? Call(object? callable, PyTuple args);

    /// <summary>NEWOBJ / NEWOBJ_EX / OBJ / INST: cls.__new__(cls, *args, **kwargs).</summary>
    object? NewObject(object? cls, PyTuple args, PyDict? kwargs);

    /// <summary>BUILD: target.__setstate__(state), in place.</summary>
    void Build(object? target, object? state);

    /// <summary>PERSID / BINPERSID: the object a persistent id stands for.</summary>
    object? PersistentLoad(object? pid);
}
