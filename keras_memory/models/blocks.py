"""Stacks of transformer blocks for each kind of memory model."""

from keras_memory.layers.transformer_block import TransformerBlock
from keras_memory.layers.xl_attention import XLAttention

MODEL_KINDS = ("local", "xl")


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
    **attention_options,
):
    """Builds the list of blocks of a `kind` model.

    Args:
        kind: str. `"xl"` (sliding window + Transformer-XL cache in every
            layer) or `"local"` (sliding window, no cache: the baseline).
        num_layers: int. Number of blocks.
        num_heads: int. Attention heads per layer.
        head_dim: int. Size of each head.
        intermediate_dim: int. Feed-forward width.
        window_length: int. Attention window `W`.
        stateful: bool. Stateful blocks for `model.fit`.
        dropout: float. Residual dropout.
        dtype: dtype policy of the blocks.
        **attention_options: passed to every `XLAttention`
            (`include_self`, `normalize_keys`, `use_position_bias`, ...).

    Returns:
        A list of `TransformerBlock`.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"`kind` must be one of {MODEL_KINDS}; got {kind!r}.")
    return [
        TransformerBlock(
            attention=XLAttention(
                num_heads,
                head_dim,
                window_length,
                use_cache=kind == "xl",
                stateful=stateful,
                dtype=dtype,
                name=f"attention_{i}",
                **attention_options,
            ),
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            dtype=dtype,
            name=f"block_{i}",
        )
        for i in range(num_layers)
    ]
