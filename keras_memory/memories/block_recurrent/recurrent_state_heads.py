"""The Block-Recurrent state as attention sees it: where a segment starts, its heads."""

from keras import ops

from keras_memory.ops.normalization import l2_normalize


class RecurrentStateHeads:
    """`BlockRecurrentAttention`'s state entering a segment, and its keys, values and queries.

    The state's keys and queries come from `RMSNorm(state)` plus learned
    per-state position embeddings, through `state_qkv_projection`: keys and
    values of `key_value_heads` heads, queries (the state reading itself)
    and second queries (the state reading the tokens) of `num_heads` heads.
    Other layers read the keys and values too (`recurrent_keys_values`).

    Example:
    ```python
    keys, values = recurrent_layer.recurrent_keys_values(state)  # (batch, N, G, head_dim)
    y, _ = reader_layer(x, state=reader_state, recurrent_kv=(keys, values))
    ```
    """

    def entering_state(self, state, forget_state):
        """The state a segment starts from: the learned one on forgotten rows."""
        start = ops.logical_or(forget_state, state["recurrent_valid"] <= 0)
        initial = ops.cast(self.initial_recurrent_state, "float32")[None]
        return ops.where(start[:, None, None], initial, state["recurrent_state"])

    def recurrent_keys_values(self, state=None, reset=None):
        """Keys and values of the state entering a segment, for layers that read it.

        Other layers built with `read_recurrent_state=True` attend to these
        (meliad's feedback): they see the state as it entered the window,
        like this layer's own tokens do.

        Args:
            state: this layer's state dict; None reads a stateful layer's
                variables.
            reset: bool tensor `(batch,)` or None; True rows read the learned
                initial state.

        Returns:
            `(keys, values)`, each `(batch, num_states, key_value_heads,
            head_dim)` in the layer's compute dtype.
        """
        if state is None:
            if not self.stateful:
                raise ValueError(
                    f"Layer '{self.name}' is not stateful: pass its `state` to "
                    "recurrent_keys_values()."
                )
            state = self.read_state()
        if reset is None:
            reset = ops.zeros_like(state["recurrent_valid"], dtype="bool")
        keys, values, _, _ = self._state_kvq(self.entering_state(state, reset))
        return keys, values

    def _state_kvq(self, recurrent):
        normed = self.state_norm(recurrent)
        normed = normed + ops.cast(self.state_position_embedding, normed.dtype)[None]
        projected = self.state_qkv_projection(normed)
        # [keys | values | queries | queries2]: the layout from before grouped queries.
        kv = self.key_value_dim
        splits = [kv, 2 * kv, 2 * kv + self.inner_dim]
        parts = [self.split_heads(p) for p in ops.split(projected, splits, axis=-1)]
        keys, values, queries, queries2 = parts
        # In the compute dtype, like the tokens' heads (`l2_normalize` sums in
        # float32): in float32 the state's three attentions held the d512 step
        # in `mixed_bfloat16` below the PyTorch peer (docs/performance.md).
        if self.normalize_keys:
            return l2_normalize(keys), values, l2_normalize(queries), l2_normalize(queries2)
        scale = self.head_dim**-0.5
        return keys, values, queries * scale, queries2 * scale
