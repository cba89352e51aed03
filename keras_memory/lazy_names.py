"""`lazy_names`: a package's names imported on first use (PEP 562), in one place.

The packages on the command line's parse path (`ops`, `models`, `memories`
and its folders, `layers`) must import without Keras, so the names whose
modules import Keras load when first read instead.
"""

import importlib
import sys


def lazy_names(package, names):
    """The module `__getattr__` and `__dir__` of `package` for its lazily imported `names`.

    Args:
        package: str. The package's `__name__`.
        names: dict of exported name -> the module that defines it.

    Returns:
        `(__getattr__, __dir__)`, to assign at the package's top level.

    Example:
    ```python
    _LAZY = {"MemoryLM": "keras_memory.models.memory_lm"}
    __getattr__, __dir__ = lazy_names(__name__, _LAZY)
    ```
    """

    def __getattr__(name):
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
