"""Stacks of transformer blocks for each kind of memory model."""

from keras_memory.layers.block_recurrent_attention import BlockRecurrentAttention
from keras_memory.layers.dense_kv_attention import DenseKVAttention
from keras_memory.layers.input_checks import check_int
from keras_memory.layers.knn_attention import KNNAttention
from keras_memory.layers.melodi_layer import MelodiLayer
from keras_memory.layers.transformer_block import TransformerBlock
from keras_memory.layers.xl_attention import XLAttention

MODEL_KINDS = ("local", "xl", "memorizing", "memorizing_dense", "block_recurrent", "melodi")
MEMORY_KINDS = ("memorizing", "memorizing_dense")


def default_memory_layer(num_layers):
    """meliad's position of the memory layer: two thirds up (layer 8 of 12)."""
    return min(num_layers - 1, (2 * num_layers) // 3)


def default_recurrent_layer(num_layers):
    """meliad's position of the recurrent layer: third from the top (layer 9 of 12)."""
    return max(0, num_layers - 3)


def default_long_term_layer(num_layers):
    """meliad's position of Melodi's long-term layer: the middle (layer 6 of 12)."""
    return num_layers // 2


def make_blocks(
    kind,
    *,
    num_layers,
    num_heads,
    head_dim,
    intermediate_dim,
    window_length,
    stateful=False,
    dropout=0.0,
    dtype=None,
    memory_size=8192,
    num_neighbors=32,
    retrieval="exact",
    memory_layer=None,
    num_states=512,
    gate="fixed",
    variant="skip",
    recurrent_layer=None,
    state_dropout=0.0,
    feedback=False,
    summary_size=64,
    short_term_memory_size=64,
    long_term_memory_size=4096,
    long_term_increment=32,
    long_term_layer=None,
    activation=None,
    use_cache=None,
    **attention_options,
):
    """Builds the list of blocks of a `kind` model.

    Args:
        kind: str. `"xl"` (sliding window + Transformer-XL cache in every
            layer), `"local"` (sliding window, no cache: the baseline) or
            `"memorizing"` (`"xl"` with one `KNNAttention` layer),
            `"memorizing_dense"` (`"xl"` with one `DenseKVAttention` layer) or
            `"block_recurrent"` (`"xl"` with one `BlockRecurrentAttention`
            layer) or `"melodi"` (`MelodiLayer`s: short-term memory in every
            layer, long-term memory in one; build them into a `MelodiLM`).
        num_layers: int. Number of blocks.
        num_heads: int. Attention heads per layer.
        head_dim: int. Size of each head.
        intermediate_dim: int. Feed-forward width.
        window_length: int. Attention window `W`.
        stateful: bool. Stateful blocks for `model.fit`.
        dropout: float. Residual dropout.
        dtype: dtype policy of the blocks.
        memory_size: int. kNN memory entries per (row, head) (memorizing).
        num_neighbors: int. Entries retrieved per query (memorizing).
        retrieval: str. `KNNAttention` retrieval method (memorizing).
        memory_layer: int or None. Index of the kNN layer (memorizing);
            defaults to `default_memory_layer(num_layers)`.
        num_states: int. Recurrent state vectors (block_recurrent).
        gate: str. `"fixed"` or `"lstm"` (block_recurrent).
        variant: str. `"skip"`, `"dual"` or `"single"` (block_recurrent).
        recurrent_layer: int, sequence of ints or None. Index (indices) of
            the recurrent layer(s) (block_recurrent); negative indices count
            from the top; defaults to `default_recurrent_layer`.
        state_dropout: float. Training-time probability that a row drops
            its whole recurrent state for a segment (block_recurrent).
        feedback: bool or sequence of ints. Layers that also read the
            recurrent state (block_recurrent): `True` for every
            non-recurrent layer (meliad's feedback), or their indices, which
            may lie below the recurrent layer. They read the state written
            by the top recurrent layer after the previous window, so the
            model then runs the stack window by window.
        summary_size: int. Summary tokens per window (melodi).
        short_term_memory_size: int. Short-term memory tokens of every
            layer (melodi).
        long_term_memory_size: int. Long-term memory slots (melodi); 0 makes
            every layer short-term only.
        long_term_increment: int. Tokens the long-term memory gains per
            window (melodi).
        long_term_layer: int or None. Index of the long-term layer (melodi);
            defaults to `default_long_term_layer(num_layers)`.
        activation: str or None. Feed-forward activation, e.g. `"swiglu"`;
            None: `"gelu"` (`"relu"` in Melodi layers, as meliad).
        use_cache: bool or None. Whether the attention layers carry the
            Transformer-XL cache; None: every kind but `"local"` does.
            `False` with `"memorizing"` is the paper's memory without the
            XL cache (every layer local, the kNN layer's local attention
            too); `"melodi"` has no cache to choose.
        **attention_options: passed to every `XLAttention`
            (`include_self`, `normalize_keys`, `use_position_bias`, ...).

    Returns:
        A list of `TransformerBlock`.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"`kind` must be one of {MODEL_KINDS}; got {kind!r}.")
    num_layers = check_int("num_layers", num_layers)
    if memory_layer is None:
        memory_layer = default_memory_layer(num_layers)
    if kind in MEMORY_KINDS and not 0 <= memory_layer < num_layers:
        raise ValueError(f"`memory_layer` must be in [0, {num_layers}); got {memory_layer}.")
    recurrent_layers = _layer_indices(
        "recurrent_layer",
        default_recurrent_layer(num_layers) if recurrent_layer is None else recurrent_layer,
        num_layers,
    )
    readers = ()
    if feedback is True:
        readers = tuple(i for i in range(num_layers) if i not in recurrent_layers)
    elif feedback is not False:
        readers = _layer_indices("feedback", feedback, num_layers)
        if set(readers) & set(recurrent_layers):
            raise ValueError(
                f"`feedback` layers {sorted(readers)} must not include the recurrent "
                f"layer(s) {sorted(recurrent_layers)}, which read their own state."
            )
    if use_cache is None:
        use_cache = kind != "local"
    elif not isinstance(use_cache, bool):
        raise ValueError(f"`use_cache` must be a bool or None; got {use_cache!r}.")
    elif kind == "local" and use_cache:
        raise ValueError("kind='local' has no cache; use kind='xl' for `use_cache=True`.")
    elif kind == "melodi":
        raise ValueError("The melodi kind has no XL cache; do not pass `use_cache`.")
    if readers and kind != "block_recurrent":
        raise ValueError(f"`feedback` needs kind='block_recurrent'; got kind={kind!r}.")
    if kind == "melodi":
        (long_term_layer,) = _layer_indices(
            "long_term_layer",
            default_long_term_layer(num_layers) if long_term_layer is None else long_term_layer,
            num_layers,
        )
        supported = (
            "normalize_keys",
            "use_position_bias",
            "num_position_buckets",
            "max_position_distance",
        )
        unsupported = sorted(set(attention_options) - set(supported))
        if unsupported:
            raise ValueError(
                f"The melodi kind does not take {unsupported}; its layers take {list(supported)}."
            )
        melodi_options = dict(attention_options)
        return [
            MelodiLayer(
                num_heads,
                head_dim,
                window_length,
                intermediate_dim,
                summary_size=summary_size,
                short_term_memory_size=short_term_memory_size,
                long_term_memory_size=long_term_memory_size if i == long_term_layer else 0,
                long_term_increment=long_term_increment,
                activation=activation or "relu",
                dropout=dropout,
                stateful=stateful,
                dtype=dtype,
                name=f"melodi_{i}",
                **melodi_options,
            )
            for i in range(num_layers)
        ]
    blocks = []
    for i in range(num_layers):
        common = dict(stateful=stateful, dtype=dtype, name=f"attention_{i}")
        cache = {"use_cache": use_cache}
        if kind == "memorizing_dense" and i == memory_layer:
            attention = DenseKVAttention(
                num_heads,
                head_dim,
                memory_size=memory_size,
                **common,
                **{k: v for k, v in attention_options.items() if k != "use_position_bias"},
            )
        elif kind == "memorizing" and i == memory_layer:
            options = {k: v for k, v in attention_options.items() if k != "use_position_bias"}
            attention = KNNAttention(
                num_heads,
                head_dim,
                window_length,
                memory_size=memory_size,
                num_neighbors=num_neighbors,
                retrieval=retrieval,
                **cache,
                **common,
                **options,
            )
        elif kind == "block_recurrent" and i in recurrent_layers:
            attention = BlockRecurrentAttention(
                num_heads,
                head_dim,
                window_length,
                num_states=num_states,
                gate=gate,
                variant=variant,
                state_intermediate_dim=intermediate_dim,
                state_dropout=state_dropout,
                **cache,
                **common,
                **attention_options,
            )
        else:
            attention = XLAttention(
                num_heads,
                head_dim,
                window_length,
                read_recurrent_state=i in readers,
                **cache,
                **common,
                **attention_options,
            )
        blocks.append(
            TransformerBlock(
                attention=attention,
                intermediate_dim=intermediate_dim,
                activation=activation or "gelu",
                dropout=dropout,
                dtype=dtype,
                name=f"block_{i}",
            )
        )
    return blocks


def _layer_indices(arg, value, num_layers):
    """Layer indices from an int or a sequence of ints, negative ones from the top."""
    values = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"`{arg}` must be a layer index or a sequence of them; got {value!r}.")
    for v in values:
        if not -num_layers <= v < num_layers:
            raise ValueError(f"`{arg}` indices must be in [-{num_layers}, {num_layers}); got {v}.")
    return tuple(sorted({v % num_layers for v in values}))
