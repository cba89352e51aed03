"""Transformer-XL with a sliding window: the `local` and `xl` kinds.

`XLAttention` attends over a sliding window of `W` previous tokens with a T5
relative position bias and carries the last window's keys and values to the
next segment (the cache). Every other kind builds on its window.
"""

from typing import TYPE_CHECKING

from keras_memory.lazy_names import lazy_names

if TYPE_CHECKING:  # for type checkers and the API docs (griffe reads imports)
    from keras_memory.memories.transformer_xl.xl_attention import XLAttention

# The layers are imported on first use (a module `__getattr__`), not here:
# the kind's options (`kind.py`) must import without Keras, and importing them
# runs this `__init__` first.
_LAZY = {
    "XLAttention": "keras_memory.memories.transformer_xl.xl_attention",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = ["XLAttention"]
