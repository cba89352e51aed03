"""`build_parser`: the `keras-memory` command line, one sub-command per module."""

import argparse

from keras_memory.cli import bench, demo, evaluate, generate, train

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
    parser = argparse.ArgumentParser(
        prog="keras-memory", description="Train and use memory language models."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(commands.add_parser(name, help=command.HELP))
    return parser
