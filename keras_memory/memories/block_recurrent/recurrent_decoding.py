"""One-token decoding steps of the Block-Recurrent layer."""

from keras import ops

from keras_memory.ops.attention import dense_attention
from keras_memory.ops.normalization import l2_normalize


class RecurrentDecoding:
    """`BlockRecurrentAttention`'s one-token steps (see `MemoryLayer.step_buffers`).

    A token reads, as in `call_with_state`, its sliding window (the step
    buffers' keys and values) and the recurrent state as it entered the
    window; the state is updated once the window is complete
    (`next_window_buffers`), from the window's keys and values and the
    previous window's, exactly as the segment call updates it block by
    block. The buffers carry the state, so no window is ever re-read.
    """

    def step_buffers(self, state, batch_size, segment_length):
        buffers = self.window.step_buffers(state, batch_size)
        if buffers is None:
            return None
        entering = self.entering_state(state, ops.zeros((batch_size,), "bool"))
        return {**buffers, "recurrent_state": ops.cast(entering, "float32")}

    def decode_step(self, x, position, buffers, state, previous_valid):
        queries, keys, values = self.project_qkv(x)
        window = {"keys": buffers["keys"], "values": buffers["values"]}
        local, window = self.window.step(
            queries,
            keys,
            values,
            window,
            state,
            position,
            previous_valid,
            position_bias=self.position_bias if self.use_position_bias else None,
            logit_scale=self.logit_scale(self.attention_scale),
        )
        queries2 = self.split_heads(self.token_query2_projection(x))
        queries2 = l2_normalize(queries2) if self.normalize_keys else queries2 * self.head_dim**-0.5
        state_keys, state_values, _, _ = self._state_kvq(buffers["recurrent_state"])
        cross = dense_attention(
            queries2, state_keys, state_values, self.logit_scale(self.token_cross_scale)
        )
        outputs = ops.concatenate([local, ops.cast(cross, local.dtype)], axis=2)
        return self.project_output(outputs), {**buffers, **window}

    def next_window_buffers(self, buffers, state, previous_valid):
        """The state after the complete window, and the window's buffers moved on."""
        recurrent = buffers["recurrent_state"]
        state_keys, state_values, state_queries, state_queries2 = self._state_kvq(recurrent)
        own = dense_attention(
            state_queries, state_keys, state_values, self.logit_scale(self.state_scale)
        )
        # The state reads [previous window, this window]; the previous one only where it exists.
        batch, w = ops.shape(recurrent)[0], self.window_length
        seen = ops.broadcast_to(ops.cast(previous_valid[0], "bool"), (batch,))
        mask = ops.concatenate(
            [ops.repeat(seen[:, None], w, axis=1), ops.ones((batch, w), "bool")], axis=1
        )
        # The float32 buffers hold compute-dtype keys: read them in that dtype, as
        # the segment's forward pass does.
        read = dense_attention(
            state_queries2,
            ops.cast(buffers["keys"], self.compute_dtype),
            ops.cast(buffers["values"], self.compute_dtype),
            self.logit_scale(self.state_cross_scale),
            mask=mask[:, None, None, :],
        )
        recurrent = self.state_update(recurrent, own, read, self.compute_dtype)
        window = {"keys": buffers["keys"], "values": buffers["values"]}
        moved = super().next_window_buffers(window, state, previous_valid)
        return {**moved, "recurrent_state": ops.cast(recurrent, "float32")}
