"""The `block_recurrent` kind: an XL stack with recurrent layer(s) and optional feedback."""

import dataclasses

from keras_memory.memories.block_recurrent.state_choices import GATES, VARIANTS
from keras_memory.memories.memory_kind import MemoryKind
from keras_memory.memories.stack import layer_indices, transformer_blocks

# The layers (and so Keras) are imported by the functions that build or run
# them, not here: the command line reads this kind's options to make its
# flags before the backend is chosen.


def default_recurrent_layer(num_layers):
    """meliad's position of the recurrent layer: third from the top (layer 9 of 12)."""
    return max(0, num_layers - 3)


@dataclasses.dataclass(frozen=True)
class BlockRecurrentOptions:
    """Options of the `block_recurrent` kind."""

    num_states: int = dataclasses.field(
        default=512, metadata={"size": True, "help": "recurrent state vectors (meliad: 512)"}
    )
    gate: str = dataclasses.field(
        default="fixed",
        metadata={"help": "state gate (the paper's best: fixed)", "choices": GATES},
    )
    variant: str = dataclasses.field(
        default="skip",
        metadata={
            "help": "state feed-forward: none (skip, the paper's best), gated (dual) or one "
            "gated feed-forward instead of the projection (single)",
            "choices": VARIANTS,
        },
    )
    recurrent_layer: object = dataclasses.field(
        default=None,
        metadata={"help": "index (or indices) of the recurrent layer(s); default: third from top"},
    )
    state_dropout: float = dataclasses.field(
        default=0.0,
        metadata={"help": "training-time probability that a row drops its state for a segment"},
    )
    memory_dropout: float = dataclasses.field(
        default=0.0,
        metadata={
            "help": "training-time probability that a row ignores the recurrent layer's XL "
            "cache for a segment"
        },
    )
    feedback: object = dataclasses.field(
        default=False,
        metadata={
            "help": "layers that also read the state written after the previous window: True "
            "for every other layer (meliad's feedback) or their indices",
        },
    )


def _block_recurrent_blocks(sizes, options, attention_options):
    from keras_memory.memories.block_recurrent.block_recurrent_attention import (
        BlockRecurrentAttention,
    )
    from keras_memory.memories.transformer_xl.xl_attention import XLAttention

    num_layers = sizes.num_layers
    recurrent_layers = layer_indices(
        "recurrent_layer",
        default_recurrent_layer(num_layers)
        if options.recurrent_layer is None
        else options.recurrent_layer,
        num_layers,
    )
    readers = ()
    if options.feedback is True:
        readers = tuple(i for i in range(num_layers) if i not in recurrent_layers)
    elif options.feedback is not False:
        readers = layer_indices("feedback", options.feedback, num_layers)
        if set(readers) & set(recurrent_layers):
            raise ValueError(
                f"`feedback` layers {sorted(readers)} must not include the recurrent "
                f"layer(s) {sorted(recurrent_layers)}, which read their own state."
            )
    attention_options = {"use_cache": True, **attention_options}

    def attention(i, common):
        if i in recurrent_layers:
            return BlockRecurrentAttention(
                sizes.num_heads,
                sizes.head_dim,
                sizes.window_length,
                num_states=options.num_states,
                gate=options.gate,
                variant=options.variant,
                state_intermediate_dim=sizes.intermediate_dim,
                state_dropout=options.state_dropout,
                memory_dropout=options.memory_dropout,
                **common,
                **attention_options,
            )
        return XLAttention(
            sizes.num_heads,
            sizes.head_dim,
            sizes.window_length,
            read_recurrent_state=i in readers,
            **common,
            **attention_options,
        )

    return transformer_blocks(sizes, attention)


def _feedback_runner(blocks):
    from keras_memory.memories.block_recurrent.feedback_stack import feedback_runner

    return feedback_runner(blocks)


BLOCK_RECURRENT = MemoryKind(
    name="block_recurrent",
    summary="xl plus a Block-Recurrent layer (a gated state carried window to window)",
    options=BlockRecurrentOptions,
    build_blocks=_block_recurrent_blocks,
    stack_runner=_feedback_runner,
)
