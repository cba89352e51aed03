"""`main`: the `keras-memory` console script.

Parses the command line, re-runs it under `--backend` when that differs
from `$KERAS_BACKEND`, runs the command and turns a `ValueError` (bad data or
arguments) into one line on stderr and exit code 2.
"""

import sys

from keras_memory.cli.backend import run_under_backend
from keras_memory.cli.parser import COMMANDS, build_parser


def main(argv=None):
    """Runs `keras-memory` with `argv` (default: `sys.argv[1:]`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    run_under_backend(args.backend, argv)
    try:
        COMMANDS[args.command].run(args)
    except ValueError as error:
        # Bad data or arguments: one clear line, no traceback, exit code 2.
        print(f"keras-memory {args.command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
