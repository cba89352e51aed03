"""One home per memory mechanism, and the registry that names the kinds.

Each folder holds all of one mechanism's code: its layer(s), its options and
the builder of its stack of blocks. `registry` names the kinds; nothing else
in the library compares a kind's name with a string.
"""

from keras_memory.memories.block_recurrent import BlockRecurrentAttention
from keras_memory.memories.melodi import MelodiLayer
from keras_memory.memories.memorizing import DenseKVAttention, KNNAttention
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
from keras_memory.memories.transformer_xl import XLAttention

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
