"""The Memorizing Transformer: the `memorizing` (kNN) and `memorizing_dense` kinds.

`KNNAttention` retrieves the top-k keys of a per-(row, head) ring buffer of
earlier segments and gates the result with its local window;
`DenseKVAttention` attends to the whole memory in one softmax (meliad's
memory2).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the API docs (griffe reads imports)
    from keras_memory.memories.memorizing.dense_kv_attention import DenseKVAttention
    from keras_memory.memories.memorizing.knn_attention import KNNAttention

# The layers are imported on first use (a module `__getattr__`), not here:
# the kind's options (`kind.py`) must import without Keras, and importing them
# runs this `__init__` first.
_LAZY = {
    "DenseKVAttention": "keras_memory.memories.memorizing.dense_kv_attention",
    "KNNAttention": "keras_memory.memories.memorizing.knn_attention",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})


__all__ = ["DenseKVAttention", "KNNAttention"]
