"""Choosing the Keras backend and keeping the libraries quiet.

Keras fixes its backend when it is first imported. The `keras-memory`
launcher (`keras_memory_command`) sets `KERAS_BACKEND` before that import
(`--backend`, else `$KERAS_BACKEND`, else jax); when `main` is called in a
process whose Keras runs on another backend, `run_under_backend` replaces the
process with the same command run with `KERAS_BACKEND` set.
"""

import logging
import os
import sys

BACKENDS = ("jax", "tensorflow", "torch")
DEFAULT_BACKEND = "jax"


def add_backend_flag(parser):
    """Adds `--backend` to `parser`; returns its `argparse.Action`."""
    return parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help=f"Keras backend (default: $KERAS_BACKEND, else {DEFAULT_BACKEND}).",
    )


def run_under_backend(backend, argv):
    """Makes the command run on `backend` (None: `$KERAS_BACKEND`, else jax).

    Before Keras is imported, setting `KERAS_BACKEND` is enough; after, a
    process on another backend is replaced by `python -m keras_memory.cli
    argv` with `KERAS_BACKEND` set. Returns when the backend is the one asked.
    """
    wanted = backend or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = wanted
        return
    import keras

    if keras.backend.backend() != wanted:
        env = {**os.environ, "KERAS_BACKEND": wanted}
        os.execve(sys.executable, [sys.executable, "-m", "keras_memory.cli", *argv], env)


def quiet_libraries(verbose):
    """TensorFlow's C++ logs and JAX's platform notices off unless `verbose`.

    They are start-up notices (no GPU found, oneDNN in use) that bury the
    command's own output; the variable takes effect only if set before
    TensorFlow is imported, which the launcher does as well.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("jax._src.xla_bridge", "absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
