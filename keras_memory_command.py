"""The `keras-memory` console script; outside the `keras_memory` package on purpose.

Importing `keras_memory` imports Keras, and Keras fixes its backend at that
moment (from `$KERAS_BACKEND`, else `~/.keras/keras.json`) while TensorFlow
prints its start-up logs. This module runs before that import: it picks the
backend as `--help` documents (`--backend`, else `$KERAS_BACKEND`, else jax),
refuses a `$KERAS_BACKEND` that keras-memory cannot run on in one line,
silences TensorFlow's C++ logs unless `--verbose`, and asks the package to
defer its imports (`KERAS_MEMORY_LAZY`) so `--help` and a bad flag answer
without importing Keras at all.

On Linux it first re-runs itself with tcmalloc preloaded where that is
installed and not yet loaded, and says so on stderr: glibc's `malloc` hands
each step's large temporary buffers back to the kernel, which zeroes them
again on the next step, and tcmalloc keeps them (1.11x-1.33x the tokens/s at
the d512 size on 2 cores, `docs/performance.md`). `KERAS_MEMORY_TCMALLOC=0`
turns this off; `train`'s first line and the `bench` records name the
allocator.
"""

import os
import sys

BACKENDS = ("jax", "tensorflow", "torch")

# Where Debian/Ubuntu (`libtcmalloc-minimal4`, `libgoogle-perftools4`) and
# Fedora (`gperftools-libs`) install tcmalloc; the first found is preloaded.
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
TCMALLOC_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)


def tcmalloc_library(environ, directories=TCMALLOC_DIRS):
    """The tcmalloc library to preload, or None.

    None off Linux, with `KERAS_MEMORY_TCMALLOC=0`, when `LD_PRELOAD`
    already names a tcmalloc (so the re-run does not re-run again) or a
    jemalloc (the user's choice; two allocators cannot both serve), or when
    none is installed.
    """
    if not sys.platform.startswith("linux") or environ.get("KERAS_MEMORY_TCMALLOC") == "0":
        return None
    if any(name in environ.get("LD_PRELOAD", "") for name in ("tcmalloc", "jemalloc")):
        return None  # an allocator is preloaded already: tcmalloc or the user's own
    for directory in directories:
        for name in TCMALLOC_NAMES:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                return path
    return None


def _rerun_with_tcmalloc(argv):
    """Replaces this process by the same command with tcmalloc preloaded, where installed."""
    library = tcmalloc_library(os.environ)
    if library is None or not argv or {"-h", "--help"} & set(argv):
        return
    # Said where it matters, not here: `train`'s first line and every `bench`
    # record name the allocator, and an error stays one line.
    preload = " ".join(p for p in (library, os.environ.get("LD_PRELOAD", "")) if p)
    # `-P`: `-c` would put the working directory first on `sys.path`, so a
    # checkout there (another version of keras_memory) would run instead of
    # the one this command imported; `$PYTHONPATH` still comes first.
    command = [
        sys.executable,
        "-P",
        "-c",
        "import keras_memory_command; keras_memory_command.main()",
    ]
    os.execve(sys.executable, [*command, *argv], {**os.environ, "LD_PRELOAD": preload})


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
    """Runs `keras-memory argv` (default: `sys.argv[1:]`, the console script).

    Only the console script re-runs itself with tcmalloc; a caller passing
    `argv` runs in its own process as it is.
    """
    if argv is None:
        argv = sys.argv[1:]
        _rerun_with_tcmalloc(argv)
    argv = list(argv)
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
