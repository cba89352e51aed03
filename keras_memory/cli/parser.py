"""`build_parser`: the `keras-memory` command line, one sub-command per module."""

from keras_memory.cli import bench, demo, evaluate, generate, train
from keras_memory.cli.command_parser import CommandParser, add_verbose_flag

# Each command's module: its `HELP`, `add_arguments(parser)` and `run(args)`.
COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "generate": generate,
    "demo": demo,
    "bench": bench,
}


def build_parser():
    """The `argparse` parser of `keras-memory COMMAND ...`."""
    parser = CommandParser(prog="keras-memory", description="Train and use memory language models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        subparser = commands.add_parser(name, help=command.HELP, description=command.HELP)
        command.add_arguments(subparser)
        add_verbose_flag(subparser)
    return parser
