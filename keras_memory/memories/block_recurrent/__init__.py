"""The Block-Recurrent Transformer: the `block_recurrent` kind.

`BlockRecurrentAttention` carries a gated recurrent state from window to
window; `feedback_stack` runs a whole stack window by window when other
layers read that state (meliad's feedback).
"""

from typing import TYPE_CHECKING

from keras_memory.lazy_names import lazy_names

if TYPE_CHECKING:  # for type checkers and the API docs (griffe reads imports)
    from keras_memory.memories.block_recurrent.block_recurrent_attention import (
        BlockRecurrentAttention,
    )

# The layers are imported on first use (a module `__getattr__`), not here:
# the kind's options (`kind.py`) must import without Keras, and importing them
# runs this `__init__` first.
_LAZY = {
    "BlockRecurrentAttention": "keras_memory.memories.block_recurrent.block_recurrent_attention",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = ["BlockRecurrentAttention"]
