"""Reading a Block-Recurrent state written by another layer (meliad's feedback)."""

from keras import ops

from keras_memory.ops.attention import dense_attention


class RecurrentStateReader:
    """Lets an attention layer also attend to a recurrent state it did not write.

    The piece `XLAttention(read_recurrent_state=True)` composes: a second set
    of queries, from a projection of its own (`recurrent_query_projection`),
    attends without mask or position bias to the keys and values of a
    `BlockRecurrentAttention` layer's state, as that layer's own tokens do.
    The layer concatenates the result with its window's heads before the
    output projection.

    Args:
        layer: the `AttentionHeads` layer that reads; its projections, head
            sizes and `normalize_keys` are the reader's.

    Call arguments:
        x: float tensor `(batch, S, hidden_dim)`, the layer's input.
        recurrent_kv: `(keys, values)`, each float `(batch, num_states,
            key_value_heads, head_dim)`, from
            `BlockRecurrentAttention.recurrent_keys_values`.

    Returns:
        A float32 tensor `(batch, S, heads, head_dim)`.

    Example:
    ```python
    reader = RecurrentStateReader(layer)
    layer.recurrent_query_projection, layer.recurrent_scale = reader.build(input_shape)
    read = reader(x, recurrent_kv)
    ```

    References:
        - [Hutchins et al., 2022](https://arxiv.org/abs/2203.07852)
        - [meliad, transformer_layer.py](https://github.com/google-research/meliad)
    """

    def __init__(self, layer):
        self.layer = layer
        self.query_projection = self.scale = None

    def build(self, input_shape):
        """Creates the second queries' projection and scale; returns `(projection, scale)`.

        The scale is None without `normalize_keys`.
        """
        layer = self.layer
        self.query_projection = layer.projection(
            layer.inner_dim, input_shape, "recurrent_query_projection"
        )
        self.scale = layer.head_scale("recurrent_scale")
        return self.query_projection, self.scale

    def __call__(self, x, recurrent_kv):
        layer = self.layer
        if recurrent_kv is None or len(recurrent_kv) != 2:
            raise ValueError(
                f"Layer '{layer.name}' reads a recurrent state: call it with "
                "`recurrent_kv=(keys, values)`, each (batch, num_states, "
                f"{layer.key_value_heads}, {layer.head_dim}), from "
                "BlockRecurrentAttention.recurrent_keys_values()."
            )
        state_keys, state_values = recurrent_kv
        for name, tensor in (("keys", state_keys), ("values", state_values)):
            shape = tuple(tensor.shape)
            if len(shape) != 4 or shape[2:] != (layer.key_value_heads, layer.head_dim):
                raise ValueError(
                    f"Layer '{layer.name}': `recurrent_kv` {name} must have shape "
                    f"(batch, num_states, {layer.key_value_heads}, {layer.head_dim}); "
                    f"got {shape}."
                )
        queries = layer.scale_queries(layer.split_heads(self.query_projection(x)))
        scale = ops.abs(self.scale) if layer.normalize_keys else None
        return dense_attention(queries, state_keys, state_values, scale)
