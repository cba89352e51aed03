"""The Memorizing Transformer: the `memorizing` (kNN) and `memorizing_dense` kinds.

`KNNAttention` retrieves the top-k keys of a per-(row, head) ring buffer of
earlier segments and gates the result with its local window;
`DenseKVAttention` attends to the whole memory in one softmax (meliad's
memory2).
"""

from typing import TYPE_CHECKING

from keras_memory.lazy_names import lazy_names

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


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = ["DenseKVAttention", "KNNAttention"]
