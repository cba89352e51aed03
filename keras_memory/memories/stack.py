"""What every kind's stack builder shares: the sizes, layer positions, the blocks.

A kind's builder (in its own folder) decides which attention layer each
block gets; this module wraps them into `TransformerBlock`s, resolves layer
indices, and runs a stack layer by layer, the order every kind but
Block-Recurrent feedback uses.
"""

import dataclasses

# `TransformerBlock` and `check_int` (and so Keras) are imported where they are
# used, not here: the registry imports this module, and the command line reads
# the registry to make its flags before the backend is chosen.


@dataclasses.dataclass(frozen=True)
class StackSizes:
    """The sizes and flags every block of a stack shares (see `make_blocks`)."""

    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_dim: int
    window_length: int
    stateful: bool = False
    dropout: float = 0.0
    dtype: object = None
    activation: str | None = None

    def __post_init__(self):
        from keras_memory.ops.checks import check_int

        # A Python int: layer indices are compared with it (numpy ints pass in).
        object.__setattr__(self, "num_layers", check_int("num_layers", self.num_layers))


def layer_indices(arg, value, num_layers):
    """Layer indices from an int or a sequence of ints, negative ones from the top.

    Returns:
        The sorted, distinct indices in `[0, num_layers)`.

    Raises:
        ValueError: naming `arg`, for anything but in-range ints.
    """
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


def transformer_blocks(sizes, attention_of):
    """Wraps each layer's attention into a pre-norm `TransformerBlock`.

    Args:
        sizes: `StackSizes`.
        attention_of: callable `(index, common)` -> the attention layer of
            block `index`, where `common` holds the `stateful`, `dtype` and
            `name` every attention layer takes.

    Returns:
        A list of `sizes.num_layers` blocks.
    """
    from keras_memory.layers.transformer_block import TransformerBlock

    blocks = []
    for i in range(sizes.num_layers):
        common = dict(stateful=sizes.stateful, dtype=sizes.dtype, name=f"attention_{i}")
        blocks.append(
            TransformerBlock(
                attention=attention_of(i, common),
                intermediate_dim=sizes.intermediate_dim,
                activation=sizes.activation or "gelu",
                dropout=sizes.dropout,
                dtype=sizes.dtype,
                name=f"block_{i}",
            )
        )
    return blocks


class LayerByLayer:
    """Runs a stack the usual way: each block reads the whole segment in turn."""

    def block_input_length(self, length):
        """The segment length each block reads in a call on `length` tokens."""
        return length

    def __call__(self, blocks, x, state, reset, training, stateful):
        """Returns `(hidden, new_state)`, the state a list of per-block states."""
        new_state = []
        for i, block in enumerate(blocks):
            if stateful:
                x = block(x, reset=reset, training=training)
            else:
                x, block_state = block(
                    x, state=None if state is None else state[i], reset=reset, training=training
                )
                new_state.append(block_state)
        return x, new_state
