using System.CommandLine;
using Qsvit.Cli;
using Qsvit.Cli.Commands;

var root = new RootCommand("qsvit: run, quantize and search mixed-precision settings for spiking vision transformers (SDTv2).")
{
    EvalCommand.Create(),
    BenchCommand.Create(),
    MemoryCommand.Create(),
    SensitivityCommand.Create(),
    SearchCommand.Create(),
    ApplyCommand.Create(),
    ExportCommand.Create(),
};
return Cli.Run(root, args);
