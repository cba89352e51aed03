"""The Block-Recurrent Transformer: the `block_recurrent` kind.

`BlockRecurrentAttention` carries a gated recurrent state from window to
window; `feedback_stack` runs a whole stack window by window when other
layers read that state (meliad's feedback).
"""

from keras_memory.memories.block_recurrent.block_recurrent_attention import (
    BlockRecurrentAttention,
)

__all__ = ["BlockRecurrentAttention"]
