"""The `memorizing` and `memorizing_dense` kinds: an XL stack with one memory layer."""

import dataclasses

from keras_memory.memories.memory_kind import MemoryKind
from keras_memory.memories.stack import transformer_blocks
from keras_memory.ops.retrieval_methods import MEMORY_PLACEMENTS, RETRIEVAL_METHODS

# The layers (and so Keras) are imported by the functions that build them,
# not here: the command line reads this kind's options to make its flags
# before the backend is chosen.


def default_memory_layer(num_layers):
    """meliad's position of the memory layer: two thirds up (layer 8 of 12)."""
    return min(num_layers - 1, (2 * num_layers) // 3)


def _memory_size_field():
    # Both memorizing kinds size their memory alike.
    return dataclasses.field(
        default=8192,
        metadata={
            "size": True,
            "help": "memory entries per (row, head); a multiple of the segment length",
        },
    )


@dataclasses.dataclass(frozen=True)
class MemorizingOptions:
    """Options of the `memorizing` kind (a kNN memory in one layer)."""

    memory_size: int = _memory_size_field()
    num_neighbors: int = dataclasses.field(
        default=32, metadata={"size": True, "help": "memory entries retrieved per query"}
    )
    retrieval: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "how the neighbours are found (default: exact on the device, scann on the "
            "host)",
            "choices": RETRIEVAL_METHODS,
        },
    )
    memory_placement: str = dataclasses.field(
        default="device",
        metadata={
            "help": "where the memory's entries live: a ring in device memory, or host RAM "
            "searched by ScaNN (memories larger than the device)",
            "choices": MEMORY_PLACEMENTS,
        },
    )
    memory_layer: int | None = dataclasses.field(
        default=None,
        metadata={"help": "index of the memory layer (default: two thirds up, as meliad)"},
    )
    local_position_bias: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "give the memory layer's local attention a T5 position bias (meliad's has none)"
        },
    )
    smear_keys: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "mix each key of the memory layer with the previous token's (learned "
            "weight): what followed a context can then be copied from the memory (not in "
            "the paper)"
        },
    )
    memory_gate_bias: float = dataclasses.field(
        default=0.0,
        metadata={
            "help": "initial logit of the memory layer's per-head gate: 0 starts at one half "
            "(the paper), negative values with the memory mostly shut"
        },
    )
    memory_scale: float | None = dataclasses.field(
        default=None,
        metadata={
            "help": "give the memory's softmax a learned logit scale of its own, starting at "
            "this value (default: it shares the local attention's, as in the paper)"
        },
    )


@dataclasses.dataclass(frozen=True)
class DenseMemoryOptions:
    """Options of the `memorizing_dense` kind (a dense-KV memory in one layer)."""

    memory_size: int = _memory_size_field()
    memory_layer: int | None = dataclasses.field(
        default=None,
        metadata={"help": "index of the memory layer (default: two thirds up, as meliad)"},
    )


def _memory_layer_index(options, num_layers):
    index = (
        default_memory_layer(num_layers) if options.memory_layer is None else options.memory_layer
    )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < num_layers:
        raise ValueError(f"`memory_layer` must be in [0, {num_layers}); got {index!r}.")
    return index


_POSITION_BIAS_OPTIONS = ("use_position_bias", "num_position_buckets", "max_position_distance")


def _without_position_bias(attention_options):
    # The memory layer attends without position bias (meliad's memory layer).
    return {k: v for k, v in attention_options.items() if k not in _POSITION_BIAS_OPTIONS}


def _bucket_options(attention_options):
    # Whether the memory layer's local attention has a position bias is the
    # kind's `local_position_bias`; the sizes of its buckets are the stack's.
    options = _without_position_bias(attention_options)
    for name in _POSITION_BIAS_OPTIONS[1:]:
        if name in attention_options:
            options[name] = attention_options[name]
    return options


def _knn_blocks(sizes, options, attention_options):
    from keras_memory.memories.memorizing.knn_attention import KNNAttention
    from keras_memory.memories.transformer_xl.xl_attention import XLAttention

    memory_layer = _memory_layer_index(options, sizes.num_layers)
    attention_options = {"use_cache": True, **attention_options}

    def attention(i, common):
        if i == memory_layer:
            return KNNAttention(
                sizes.num_heads,
                sizes.head_dim,
                sizes.window_length,
                memory_size=options.memory_size,
                num_neighbors=options.num_neighbors,
                retrieval=options.retrieval,
                memory_placement=options.memory_placement,
                use_position_bias=options.local_position_bias,
                smear_keys=options.smear_keys,
                memory_gate_bias=options.memory_gate_bias,
                memory_scale=options.memory_scale,
                **common,
                **_bucket_options(attention_options),
            )
        return XLAttention(
            sizes.num_heads, sizes.head_dim, sizes.window_length, **common, **attention_options
        )

    return transformer_blocks(sizes, attention)


def _dense_blocks(sizes, options, attention_options):
    from keras_memory.memories.memorizing.dense_kv_attention import DenseKVAttention
    from keras_memory.memories.transformer_xl.xl_attention import XLAttention

    memory_layer = _memory_layer_index(options, sizes.num_layers)
    attention_options = {"use_cache": True, **attention_options}

    def attention(i, common):
        if i == memory_layer:
            # Dense over the segment and its memory: no window, cache or positions.
            dense_options = {
                k: v
                for k, v in attention_options.items()
                if k
                in ("include_self", "normalize_keys", "kernel_initializer", "num_key_value_heads")
            }
            return DenseKVAttention(
                sizes.num_heads,
                sizes.head_dim,
                memory_size=options.memory_size,
                **common,
                **dense_options,
            )
        return XLAttention(
            sizes.num_heads, sizes.head_dim, sizes.window_length, **common, **attention_options
        )

    return transformer_blocks(sizes, attention)


MEMORIZING = MemoryKind(
    name="memorizing",
    summary="xl plus one kNN-memory layer (Memorizing Transformer)",
    options=MemorizingOptions,
    build_blocks=_knn_blocks,
)
MEMORIZING_DENSE = MemoryKind(
    name="memorizing_dense",
    summary="xl plus one dense-KV memory layer (meliad's memory2)",
    options=DenseMemoryOptions,
    build_blocks=_dense_blocks,
)
