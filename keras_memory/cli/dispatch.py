"""`main`: runs one `keras-memory` command line.

Parses the command line (a bad flag: one line, exit 2), runs the command
under the `--backend` asked for, and turns what can go wrong into one line on
stderr: bad data or arguments (`ValueError`) exit with 2, a run that diverged
or another failure with 1, Ctrl-C with 130 (after `train` has said which
checkpoint it keeps). `--verbose` adds the traceback.
"""

import sys

from keras_memory.cli.backend import quiet_libraries, run_under_backend
from keras_memory.cli.interrupted import Interrupted
from keras_memory.cli.parser import COMMANDS, build_parser


def main(argv=None):
    """Runs `keras-memory` with `argv` (default: `sys.argv[1:]`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    run_under_backend(args.backend, argv)
    quiet_libraries(args.verbose)
    prefix = f"keras-memory {args.command}"
    try:
        import keras_memory

        # Every layer and model class registered, as a plain `import keras_memory` does.
        keras_memory.import_all()
        COMMANDS[args.command].run(args)
    except (KeyboardInterrupt, Interrupted) as interrupt:
        said = str(interrupt) if isinstance(interrupt, Interrupted) else "interrupted."
        _fail(prefix, said, 130, args.verbose)
    except ValueError as error:
        from keras_memory.training.finite_check import NonFiniteError

        # A diverged run is not a usage error: 1, like any other failure.
        _fail(
            prefix, f"error: {error}", 1 if isinstance(error, NonFiniteError) else 2, args.verbose
        )
    except OSError as error:
        _fail(prefix, f"error: {error}", 1, args.verbose)


def _fail(prefix, message, code, verbose):
    if verbose:
        import traceback

        traceback.print_exc()
    # A multi-line message (e.g. the damaged checkpoints it tried) stays readable
    # but starts with the one line that says what happened.
    print(f"{prefix}: {message}", file=sys.stderr)
    raise SystemExit(code) from None
