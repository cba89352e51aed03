"""The `melodi` kind: `MelodiLayer`s, short-term memory in each, long-term in one."""

import dataclasses

from keras_memory.memories.memory_kind import MemoryKind
from keras_memory.memories.stack import layer_indices

# The layers (and so Keras) are imported by the functions that build them,
# not here: the command line reads this kind's options to make its flags
# before the backend is chosen.


def default_long_term_layer(num_layers):
    """meliad's position of Melodi's long-term layer: the middle (layer 6 of 12)."""
    return num_layers // 2


@dataclasses.dataclass(frozen=True)
class MelodiOptions:
    """Options of the `melodi` kind (meliad's base_melodi.gin defaults)."""

    summary_size: int = dataclasses.field(
        default=64, metadata={"size": True, "help": "summary tokens per window"}
    )
    short_term_memory_size: int = dataclasses.field(
        default=64, metadata={"size": True, "help": "short-term memory tokens per layer"}
    )
    long_term_memory_size: int = dataclasses.field(
        default=4096, metadata={"size": True, "help": "long-term memory slots (0: none)"}
    )
    long_term_increment: int = dataclasses.field(
        default=32, metadata={"size": True, "help": "long-term memory tokens added per window"}
    )
    long_term_layer: int | None = dataclasses.field(
        default=None, metadata={"help": "index of the long-term layer (default: the middle)"}
    )


def _melodi_blocks(sizes, options, attention_options):
    from keras_memory.memories.melodi.melodi_layer import MelodiLayer

    num_layers = sizes.num_layers
    (long_term_layer,) = layer_indices(
        "long_term_layer",
        default_long_term_layer(num_layers)
        if options.long_term_layer is None
        else options.long_term_layer,
        num_layers,
    )
    return [
        MelodiLayer(
            sizes.num_heads,
            sizes.head_dim,
            sizes.window_length,
            sizes.intermediate_dim,
            summary_size=options.summary_size,
            short_term_memory_size=options.short_term_memory_size,
            long_term_memory_size=options.long_term_memory_size if i == long_term_layer else 0,
            long_term_increment=options.long_term_increment,
            activation=sizes.activation or "relu",
            dropout=sizes.dropout,
            stateful=sizes.stateful,
            dtype=sizes.dtype,
            name=f"melodi_{i}",
            **attention_options,
        )
        for i in range(num_layers)
    ]


MELODI = MemoryKind(
    name="melodi",
    summary="short-term memory in every layer, long-term memory in the middle one (Melodi)",
    options=MelodiOptions,
    build_blocks=_melodi_blocks,
    model_class="keras_memory>MelodiLM",
    attention_options=(
        "normalize_keys",
        "use_position_bias",
        "num_position_buckets",
        "max_position_distance",
    ),
    has_cache=False,
)
