"""Choosing the Keras backend: `--backend` re-runs the command under it.

Keras fixes its backend when it is first imported, which importing
`keras_memory` does; a `--backend` other than `$KERAS_BACKEND` therefore
replaces this process with the same command run with `KERAS_BACKEND` set.
"""

import os
import sys

BACKENDS = ("jax", "tensorflow", "torch")


def add_backend_flag(parser):
    """Adds `--backend` to `parser`; returns its `argparse.Action`."""
    return parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend (default: $KERAS_BACKEND, else jax).",
    )


def run_under_backend(backend, argv):
    """Re-runs `keras-memory argv` with `KERAS_BACKEND=backend` unless it is set so already.

    Returns only when no re-run is needed (`backend` None or already the one).
    """
    if backend and os.environ.get("KERAS_BACKEND") != backend:
        env = {**os.environ, "KERAS_BACKEND": backend}
        os.execve(sys.executable, [sys.executable, "-m", "keras_memory.cli", *argv], env)
