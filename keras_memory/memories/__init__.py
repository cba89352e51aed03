"""One home per memory mechanism, and the registry that names the kinds.

Each folder holds all of one mechanism's code: its layer(s), its options and
the builder of its stack of blocks. `registry` names the kinds; nothing else
in the library compares a kind's name with a string.
"""

from typing import TYPE_CHECKING

from keras_memory.lazy_names import lazy_names
from keras_memory.memories.memory_kind import MemoryKind
from keras_memory.memories.registry import (
    MODEL_KINDS,
    get_kind,
    kind_names,
    make_blocks,
    register_kind,
    stack_runner,
    unregister_kind,
)
from keras_memory.memories.stack import LayerByLayer, StackSizes, transformer_blocks

if TYPE_CHECKING:  # for type checkers and the API docs (griffe reads imports)
    from keras_memory.memories.block_recurrent.block_recurrent_attention import (
        BlockRecurrentAttention,
    )
    from keras_memory.memories.melodi.melodi_layer import MelodiLayer
    from keras_memory.memories.memorizing.dense_kv_attention import DenseKVAttention
    from keras_memory.memories.memorizing.knn_attention import KNNAttention
    from keras_memory.memories.transformer_xl.xl_attention import XLAttention

# Each mechanism's layers are imported on first use (a module `__getattr__`):
# the registry, the kinds and their options import without Keras, so the
# command line can make its flags from them before the backend is chosen.
_LAZY = {
    "BlockRecurrentAttention": "keras_memory.memories.block_recurrent.block_recurrent_attention",
    "DenseKVAttention": "keras_memory.memories.memorizing.dense_kv_attention",
    "KNNAttention": "keras_memory.memories.memorizing.knn_attention",
    "MelodiLayer": "keras_memory.memories.melodi.melodi_layer",
    "XLAttention": "keras_memory.memories.transformer_xl.xl_attention",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    "MODEL_KINDS",
    "BlockRecurrentAttention",
    "DenseKVAttention",
    "KNNAttention",
    "LayerByLayer",
    "MelodiLayer",
    "MemoryKind",
    "StackSizes",
    "XLAttention",
    "get_kind",
    "kind_names",
    "make_blocks",
    "register_kind",
    "stack_runner",
    "transformer_blocks",
    "unregister_kind",
]
