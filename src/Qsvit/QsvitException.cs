namespace Qsvit;

/// <summary>A user-facing error: bad input, corrupt file, mismatched model. The message says what and where.</summary>
public class QsvitException : Exception
{
    public QsvitException(string message) : base(message) { }
    public QsvitException(string message, Exception inner) : base(message, inner) { }
}
