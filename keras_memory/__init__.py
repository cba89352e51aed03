"""keras-memory: Keras 3 memory layers for long-context language models."""

import importlib
import os

from keras_memory.version import __version__

# The subpackages, each imported whole by `import_all`.
_SUBPACKAGES = (
    "data",
    "distribution",
    "generation",
    "layers",
    "losses",
    "memories",
    "models",
    "ops",
    "optimizers",
    "training",
)


def import_all():
    """Imports every subpackage and every name it exports (and so Keras).

    Importing a layer or model class registers it with Keras
    (`keras.saving.register_keras_serializable`), which `keras.saving.load_model`
    needs to rebuild a saved `keras_memory` model. Some packages load their
    names lazily (a module `__getattr__`, so that their Keras-free parts import
    without Keras), so each package's `__all__` is resolved too.

    `import keras_memory` calls it, unless `KERAS_MEMORY_LAZY=1` is set.
    """
    for name in _SUBPACKAGES:
        package = importlib.import_module(f"{__name__}.{name}")
        for exported in getattr(package, "__all__", ()):
            getattr(package, exported)


def __getattr__(name):
    # Reached only when a subpackage is not imported yet (`KERAS_MEMORY_LAZY=1`).
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBPACKAGES})


# By default `import keras_memory` imports everything, so every Keras-serializable
# class is registered and `keras.saving.load_model` works right after it.
# `KERAS_MEMORY_LAZY=1` skips that: the `keras-memory` command's launcher sets it
# to build its parser (and answer `--help` or refuse a bad flag) without importing
# Keras or a backend, then imports what the command needs.
if os.environ.get("KERAS_MEMORY_LAZY") != "1":
    import_all()

__all__ = [
    "__version__",
    "data",
    "distribution",
    "generation",
    "import_all",
    "memories",
    "layers",
    "losses",
    "models",
    "ops",
    "optimizers",
    "training",
]
