"""The speed ceiling's block: a plain pre-norm decoder block of stock Keras layers.

`keras_memory.bench.ceiling.dense_decoder` stacks them; see that module for
the two attention patterns (`block`, `window2`). The block lives apart from
`ceiling` so that `ceiling`, whose flags the command line adds before Keras
is imported, imports Keras only when it builds a model.
"""

from keras import layers, ops

from keras_memory.ops.masks import window_mask


class DecoderBlock(layers.Layer):
    """A pre-norm decoder block: windowed multi-head attention, then a ReLU feed-forward."""

    def __init__(
        self, hidden_dim, num_heads, head_dim, intermediate_dim, window_length, attention, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_heads, self.head_dim = num_heads, head_dim
        self.window_length, self.attention = window_length, attention
        policy = self.dtype_policy
        self.attention_norm = layers.RMSNormalization(dtype=policy)
        self.qkv = layers.Dense(3 * num_heads * head_dim, use_bias=False, dtype=policy)
        self.attention_output = layers.Dense(hidden_dim, use_bias=False, dtype=policy)
        self.feed_forward_norm = layers.RMSNormalization(dtype=policy)
        self.hidden = layers.Dense(
            intermediate_dim, use_bias=False, activation="relu", dtype=policy
        )
        self.feed_forward_output = layers.Dense(hidden_dim, use_bias=False, dtype=policy)
        # (queries of a window, keys of [previous window, window]), for `window2`.
        self.band = window_mask(window_length, 2 * window_length, window_length, include_self=True)

    def build(self, input_shape):
        attention_shape = (*input_shape[:-1], self.num_heads * self.head_dim)
        for layer, shape in (
            (self.attention_norm, input_shape),
            (self.qkv, input_shape),
            (self.attention_output, attention_shape),
            (self.feed_forward_norm, input_shape),
            (self.hidden, input_shape),
            (self.feed_forward_output, (*input_shape[:-1], self.hidden.units)),
        ):
            layer.build(shape)

    def call(self, x):
        length = x.shape[1]
        w, heads, head_dim = self.window_length, self.num_heads, self.head_dim
        q, k, v = ops.split(self.qkv(self.attention_norm(x)), 3, axis=-1)
        # One row per window: (batch * windows, w, heads, head_dim).
        q = ops.reshape(q, (-1, w, heads, head_dim))
        if self.attention == "block":
            k = ops.reshape(k, (-1, w, heads, head_dim))
            v = ops.reshape(v, (-1, w, heads, head_dim))
            y = ops.dot_product_attention(q, k, v, is_causal=True)
        else:
            k, v = self._with_previous_window(k), self._with_previous_window(v)
            band = ops.convert_to_tensor(self.band[None, None])
            y = ops.dot_product_attention(q, k, v, mask=band)
        x = x + self.attention_output(ops.reshape(y, (-1, length, heads * head_dim)))
        return x + self.feed_forward_output(self.hidden(self.feed_forward_norm(x)))

    def _with_previous_window(self, t):
        """`(batch, length, width)` -> `(batch * windows, 2 w, heads, head_dim)`: each
        window's keys (or values) after the previous window's, zeros before the first."""
        w, heads, head_dim = self.window_length, self.num_heads, self.head_dim
        t = ops.reshape(t, (-1, t.shape[1] // w, w, heads, head_dim))
        previous = ops.concatenate([ops.zeros_like(t[:, :1]), t[:, :-1]], axis=1)
        return ops.reshape(ops.concatenate([previous, t], axis=2), (-1, 2 * w, heads, head_dim))
