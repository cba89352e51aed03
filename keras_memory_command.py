"""The `keras-memory` console script; outside the `keras_memory` package on purpose.

Importing `keras_memory` imports Keras, and Keras fixes its backend at that
moment (from `$KERAS_BACKEND`, else `~/.keras/keras.json`) while TensorFlow
prints its start-up logs. This module runs before that import: it picks the
backend as `--help` documents (`--backend`, else `$KERAS_BACKEND`, else jax),
refuses a `$KERAS_BACKEND` that keras-memory cannot run on in one line,
silences TensorFlow's C++ logs unless `--verbose`, and asks the package to
defer its imports (`KERAS_MEMORY_LAZY`) so `--help` and a bad flag answer
without importing Keras at all.
"""

import os
import sys

BACKENDS = ("jax", "tensorflow", "torch")


def _flag_value(argv, flag):
    """The value typed after `flag` (`--flag V` or `--flag=V`), or None."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv=None):
    """Runs `keras-memory argv` (default: `sys.argv[1:]`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    backend = _flag_value(argv, "--backend")
    configured = os.environ.get("KERAS_BACKEND")
    if backend in BACKENDS:
        os.environ["KERAS_BACKEND"] = backend
    elif configured is None:
        os.environ["KERAS_BACKEND"] = "jax"
    elif configured not in BACKENDS and not {"-h", "--help"} & set(argv):
        print(
            f"keras-memory: error: KERAS_BACKEND={configured} is not a backend keras-memory "
            f"runs on; set it to one of {', '.join(BACKENDS)} or pass --backend.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    elif configured not in BACKENDS:
        # --help reads no backend; the parser must still import.
        os.environ["KERAS_BACKEND"] = "jax"
    if "--verbose" not in argv:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ["KERAS_MEMORY_LAZY"] = "1"
    try:
        from keras_memory.cli.dispatch import main as run_command
    finally:
        # Only this import is lazy: code the command starts imports as usual.
        del os.environ["KERAS_MEMORY_LAZY"]
    run_command(argv)


if __name__ == "__main__":
    main()
