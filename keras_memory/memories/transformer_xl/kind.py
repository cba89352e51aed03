"""The `local` and `xl` kinds: every block a sliding-window `XLAttention`."""

import dataclasses

from keras_memory.memories.memory_kind import MemoryKind
from keras_memory.memories.stack import transformer_blocks

# The layers (and so Keras) are imported by the functions that build them,
# not here: the command line reads this kind's options to make its flags
# before the backend is chosen.


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The kind has no options of its own (the attention options apply)."""


def _xl_blocks(use_cache):
    def build(sizes, options, attention_options):
        from keras_memory.memories.transformer_xl.xl_attention import XLAttention

        attention_options = {"use_cache": use_cache, **attention_options}
        if not use_cache and attention_options["use_cache"]:
            raise ValueError("kind='local' has no cache; use kind='xl' for `use_cache=True`.")
        return transformer_blocks(
            sizes,
            lambda i, common: XLAttention(
                sizes.num_heads,
                sizes.head_dim,
                sizes.window_length,
                **common,
                **attention_options,
            ),
        )

    return build


LOCAL = MemoryKind(
    name="local",
    summary="sliding window, no cache: the baseline every memory is compared with",
    options=NoOptions,
    build_blocks=_xl_blocks(use_cache=False),
)
XL = MemoryKind(
    name="xl",
    summary="sliding window + Transformer-XL cache in every layer",
    options=NoOptions,
    build_blocks=_xl_blocks(use_cache=True),
)
