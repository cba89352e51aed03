"""Transformer-XL with a sliding window: the `local` and `xl` kinds.

`XLAttention` attends over a sliding window of `W` previous tokens with a T5
relative position bias and carries the last window's keys and values to the
next segment (the cache). Every other kind builds on its window.
"""

from keras_memory.memories.transformer_xl.xl_attention import XLAttention

__all__ = ["XLAttention"]
