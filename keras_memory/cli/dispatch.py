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
    failure = None
    try:
        import keras_memory

        # Every layer and model class registered, as a plain `import keras_memory` does.
        keras_memory.import_all()
        COMMANDS[args.command].run(args)
    except (KeyboardInterrupt, Interrupted) as interrupt:
        said = str(interrupt) if isinstance(interrupt, Interrupted) else "interrupted."
        failure = _failure(said, 130, args.verbose)
    except ValueError as error:
        from keras_memory.training.finite_check import NonFiniteError

        # A diverged run is not a usage error: 1, like any other failure.
        code = 1 if isinstance(error, NonFiniteError) else 2
        failure = _failure(f"error: {error}", code, args.verbose)
    except OSError as error:
        failure = _failure(f"error: {error}", 1, args.verbose)
    if failure is not None:
        # Out of the `except` block the failed call's frames are gone; collecting
        # now finalizes what they held (a TensorFlow dataset iterator of a failed
        # `fit`) while the interpreter lives, instead of after our last line with
        # a warning of its own.
        import gc

        gc.collect()
        message, code = failure
        # A multi-line message (e.g. the damaged checkpoints it tried) stays readable
        # but starts with the one line that says what happened.
        print(f"{prefix}: {message}", file=sys.stderr)
        raise SystemExit(code)


def _failure(message, code, verbose):
    """`(message, code)` of the exception being handled; its traceback first if `verbose`."""
    if verbose:
        import traceback

        traceback.print_exc()
    return message, code
