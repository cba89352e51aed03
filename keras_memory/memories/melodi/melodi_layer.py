"""Melodi: a transformer layer with short-term (and long-term) compressive memory."""

import keras
from keras import ops

from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.layers.feed_forward import GATED_ACTIVATIONS, FeedForward
from keras_memory.layers.memory_layer import MemoryLayer, zero_rows
from keras_memory.layers.relative_position_bias import (
    RelativePositionBias,
    check_bucket_options,
)
from keras_memory.layers.token_mixing import TokenMixing
from keras_memory.memories.melodi.long_term_memory import LongTermMemory
from keras_memory.ops.attention import dense_attention
from keras_memory.ops.checks import (
    check_activation,
    check_bool,
    check_initializer,
    check_int,
    check_number,
)
from keras_memory.ops.masks import summary_causal_mask
from keras_memory.ops.normalization import l2_normalize


@keras.saving.register_keras_serializable(package="keras_memory")
class MelodiLayer(MemoryLayer):
    """One Melodi layer: attention over [short-term memory, window, summary].

    The layer reads a segment window by window. Its input packs the
    segment's `n` windows of `W` context tokens followed by their `n` groups
    of `U` summary tokens: `(batch, n * (W + U), hidden_dim)` (`MelodiLM`
    builds it; layer 0's summary tokens are learned embeddings). For window
    `k`, with `m` this layer's short-term memory (`M` tokens, from window
    `k - 1`):

    - the context tokens `x` and summary tokens `u` attend to keys and
      values of `[m, x, u]` (one set of projections, pre-norm, T5 bias) with
      a strict causal order: context token `j` sees `m` and the context
      tokens before it, never a summary token; summary token `j` sees `m`,
      all context tokens and the summary tokens before it;
    - with a long-term memory (`long_term_memory_size > 0`), the same
      queries also attend to a FIFO of compressed tokens, mixed in by a
      learned gate (`LongTermMemory`);
    - the output projection and a feed-forward (pre-norm, residual) update
      `[x, u]` together; then token mixing (`TokenMixing`) of the updated
      `[x, u]` gives this layer's next short-term memory and the summary
      tokens passed to the next layer, and (long-term layer) the
      `long_term_increment` tokens pushed into the long-term memory, the
      oldest falling out.

    Memories are stored as embeddings; their keys and values come from the
    layer's current projections. Inside a segment, memories pass from window
    to window with their gradient; across segments, without (as every
    memory in this library). On a document start (`reset`), or before any
    window was read, the memories are empty and masked.

    The state is `short_memory` `(batch, M, hidden_dim)` and `short_valid`
    `(batch,)`; a long-term layer adds `long_memory` `(batch, L, hidden_dim)`
    and `long_valid` `(batch, L)`.

    Args:
        num_heads: int. Attention heads.
        head_dim: int. Size of each head.
        window_length: int. Context tokens per window `W`.
        intermediate_dim: int. Feed-forward width.
        summary_size: int. Summary tokens per window `U`. Defaults to 64.
        short_term_memory_size: int. Short-term memory tokens `M` (0: none,
            and no token mixing). Defaults to 64.
        long_term_memory_size: int. Long-term memory slots `L`; 0 (the
            default) makes a short-term layer.
        long_term_increment: int. Tokens added to the long-term memory per
            window. Defaults to 32.
        activation: str. Feed-forward activation. Defaults to `"relu"`
            (meliad).
        dropout: float. Residual dropout. Defaults to 0.
        epsilon: float. RMS norm epsilon. Defaults to 1e-6.
        normalize_keys: bool. L2-normalise queries and keys with a learned
            per-head scale. Defaults to True.
        use_position_bias: bool. T5 bias over `[m, x, u]`. Defaults to True.
        num_position_buckets: int. T5 buckets. Defaults to 32.
        max_position_distance: int. T5 max distance. Defaults to 128.
        stateful: bool. Keep the memories in variables for `model.fit`.
        kernel_initializer: initializer of the projections.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: float tensor `(batch, n * (W + U), hidden_dim)`: the context
            tokens of `n` windows, then their summary tokens.
        state: dict or None (functional form only).
        reset: bool tensor `(batch,)` or None.
        training: bool or None.

    Returns:
        Functional form: `(y, new_state)` with `y` packed like `x` (the
        summary part holds the next layer's summary tokens); stateful form:
        `y`.

    Example:
    ```python
    layer = keras_memory.layers.MelodiLayer(
        num_heads=4, head_dim=16, window_length=32, intermediate_dim=256,
        summary_size=8, short_term_memory_size=8,
    )
    packed = np.random.rand(2, 2 * (32 + 8), 64).astype("float32")
    y, state = layer(packed)
    ```

    References:
        - [Chen et al., 2024 (Melodi)](https://arxiv.org/abs/2410.03156)
        - [meliad, memory2/melodi_layer.py](https://github.com/google-research/meliad)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        window_length,
        intermediate_dim,
        summary_size=64,
        short_term_memory_size=64,
        long_term_memory_size=0,
        long_term_increment=32,
        activation="relu",
        dropout=0.0,
        epsilon=1e-6,
        normalize_keys=True,
        use_position_bias=True,
        num_position_buckets=32,
        max_position_distance=128,
        stateful=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(stateful=stateful, **kwargs)
        num_heads = check_int("num_heads", num_heads)
        head_dim = check_int("head_dim", head_dim)
        window_length = check_int("window_length", window_length)
        intermediate_dim = check_int("intermediate_dim", intermediate_dim)
        summary_size = check_int("summary_size", summary_size)
        short_term_memory_size = check_int("short_term_memory_size", short_term_memory_size, 0)
        long_term_memory_size = check_int("long_term_memory_size", long_term_memory_size, 0)
        long_term_increment = check_int("long_term_increment", long_term_increment)
        if long_term_memory_size and long_term_increment > long_term_memory_size:
            raise ValueError(
                f"`long_term_increment` ({long_term_increment}) must not exceed "
                f"`long_term_memory_size` ({long_term_memory_size})."
            )
        check_activation("activation", activation, extra=GATED_ACTIVATIONS)
        dropout = check_number("dropout", dropout, 0.0, 1.0)
        epsilon = check_number("epsilon", epsilon, 0.0, exclusive_minimum=True)
        normalize_keys = check_bool("normalize_keys", normalize_keys)
        use_position_bias = check_bool("use_position_bias", use_position_bias)
        num_position_buckets, max_position_distance = check_bucket_options(
            num_position_buckets,
            max_position_distance,
            names=("num_position_buckets", "max_position_distance"),
        )
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.window_length = window_length
        self.intermediate_dim = intermediate_dim
        self.summary_size = summary_size
        self.short_term_memory_size = short_term_memory_size
        self.long_term_memory_size = long_term_memory_size
        self.long_term_increment = long_term_increment
        self.activation = activation
        self.dropout = dropout
        self.epsilon = epsilon
        self.normalize_keys = normalize_keys
        self.use_position_bias = use_position_bias
        self.num_position_buckets = num_position_buckets
        self.max_position_distance = max_position_distance
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.hidden_dim = None
        self.long_term = None
        if long_term_memory_size:
            self.long_term = LongTermMemory(
                long_term_memory_size, long_term_increment, num_heads, head_dim
            )

    def _sublayer(self, layer, *shapes):
        layer.build(*shapes)
        return layer

    def _dense(self, units, shape, name):
        # A copy of the initializer each: projections never share a seeded draw.
        initializer = keras.initializers.get(keras.initializers.serialize(self.kernel_initializer))
        dense = AccumulatingDense(
            units,
            use_bias=False,
            kernel_initializer=initializer,
            dtype=self.dtype_policy,
            name=name,
        )
        return self._sublayer(dense, shape)

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        self.hidden_dim = hidden = input_shape[-1]
        batch = input_shape[0]
        w, u = self.window_length, self.summary_size
        inner = self.num_heads * self.head_dim
        token_shape = (batch, None, hidden)
        window_shape = (batch, w, hidden)
        summary_shape = (batch, u, hidden)

        def norm(name):
            return self._sublayer(
                keras.layers.RMSNormalization(
                    epsilon=self.epsilon, dtype=self.dtype_policy, name=name
                ),
                token_shape,
            )

        self.attention_norm = norm("attention_norm")
        self.ffn_norm = norm("ffn_norm")
        self.qkv_projection = self._dense(3 * inner, token_shape, "qkv_projection")
        self.output_projection = self._dense(hidden, (batch, None, inner), "output_projection")
        self.ffn = self._sublayer(
            FeedForward(
                self.intermediate_dim,
                activation=self.activation,
                kernel_initializer=keras.initializers.get(
                    keras.initializers.serialize(self.kernel_initializer)
                ),
                dtype=self.dtype_policy,
                name="ffn",
            ),
            token_shape,
        )
        self.residual_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        if self.use_position_bias:
            self.position_bias = RelativePositionBias(
                self.num_heads,
                num_buckets=self.num_position_buckets,
                max_distance=self.max_position_distance,
                dtype=self.dtype_policy,
                name="position_bias",
            )
            self.position_bias.build()
        if self.normalize_keys:
            self.attention_scale = self.add_weight(
                name="attention_scale", shape=(self.num_heads,), initializer="ones"
            )
        mixing = dict(epsilon=self.epsilon, dtype=self.dtype_policy)
        if self.short_term_memory_size:
            self.summary_mixing = self._sublayer(
                TokenMixing(u, name="summary_mixing", **mixing), window_shape, summary_shape
            )
            self.short_term_mixing = self._sublayer(
                TokenMixing(
                    self.short_term_memory_size,
                    use_norm_and_residual=self.short_term_memory_size == u,
                    name="short_term_mixing",
                    **mixing,
                ),
                window_shape,
                summary_shape,
            )
        if self.long_term is not None:
            for name, part in self.long_term.build(
                self, window_shape, summary_shape, self.epsilon
            ).items():
                setattr(self, name, part)
        self.build_state(batch)
        self.built = True

    def state_shapes(self, batch_size):
        hidden = self.hidden_dim
        shapes = {}
        if self.short_term_memory_size:
            shapes["short_memory"] = ((batch_size, self.short_term_memory_size, hidden), "float32")
            shapes["short_valid"] = ((batch_size,), "int32")
        if self.long_term is not None:
            shapes.update(self.long_term.state_shapes(batch_size, hidden))
        return shapes

    def decoding_window_length(self):  # nothing of Melodi waits for a segment's end
        return self.window_length

    def check_segment_length(self, length):
        period = self.window_length + self.summary_size
        if length is None or length % period:
            raise ValueError(
                f"Layer '{self.name}' expects `x` of shape (batch, n * (window_length + "
                f"summary_size), features) = (batch, n * {period}, features): the "
                f"segment's context tokens, then its summary tokens; got length {length}."
            )

    def num_windows(self, x):
        """Windows in a packed input of `n * (W + U)` tokens."""
        self.check_segment_length(x.shape[1])
        return x.shape[1] // (self.window_length + self.summary_size)

    def _kvq(self, x):
        """Keys, values and queries `(batch, len, heads, head_dim)` of embeddings `x`."""
        batch, length = ops.shape(x)[0], x.shape[1]
        projected = self.qkv_projection(self.attention_norm(x))
        projected = ops.reshape(projected, (batch, length, 3, self.num_heads, self.head_dim))
        keys, values, queries = projected[:, :, 0], projected[:, :, 1], projected[:, :, 2]
        if self.normalize_keys:
            return l2_normalize(keys), values, l2_normalize(queries)
        return keys, values, queries * ops.cast(self.head_dim**-0.5, queries.dtype)

    def call_with_state(self, x, state, reset, training):
        n = self.num_windows(x)
        w, u, m = self.window_length, self.summary_size, self.short_term_memory_size
        batch = ops.shape(x)[0]
        context, summary = x[:, : n * w], x[:, n * w :]
        context_kvq = self._kvq(context)
        summary_kvq = self._kvq(summary)
        keep = ops.logical_not(reset)
        scale = ops.abs(self.attention_scale) if self.normalize_keys else None

        num_queries, num_keys = w + u, m + w + u
        causal = summary_causal_mask(w, u, m)
        bias = (
            self.position_bias.compute_bias(num_queries, num_keys)
            if self.use_position_bias
            else None
        )
        if m:
            short = zero_rows(state["short_memory"], keep)
            short_valid = ops.logical_and(keep, state["short_valid"] > 0)
        if self.long_term is not None:
            long_term = self.long_term.read(state, keep, self._kvq)

        contexts, summaries = [], []
        for k in range(n):
            parts = [
                [t[:, k * w : (k + 1) * w] for t in context_kvq],
                [t[:, k * u : (k + 1) * u] for t in summary_kvq],
            ]
            key_valid = ops.ones((batch, w + u), "bool")
            if m:
                short_keys, short_values, _ = self._kvq(short)
                parts.insert(0, [short_keys, short_values, None])
                key_valid = ops.concatenate(
                    [ops.repeat(short_valid[:, None], m, axis=1), key_valid], axis=1
                )
            # Compute dtype: `dense_attention` accumulates bfloat16 in float32.
            keys, values = (ops.concatenate([p[i] for p in parts], axis=1) for i in (0, 1))
            queries = ops.concatenate([p[2] for p in parts[-2:]], axis=1)
            mask = ops.logical_and(causal[None, None], key_valid[:, None, None, :])
            attended = dense_attention(queries, keys, values, scale, mask, bias)
            if self.long_term is not None:
                attended = self.long_term.recall(attended, queries, scale, long_term)
            tokens = ops.concatenate(
                [x[:, k * w : (k + 1) * w], x[:, n * w + k * u : n * w + (k + 1) * u]], axis=1
            )
            attended = ops.reshape(
                ops.cast(attended, tokens.dtype), (batch, w + u, self.num_heads * self.head_dim)
            )
            h = tokens + self.residual_dropout(self.output_projection(attended), training=training)
            h = h + self.residual_dropout(
                self.ffn(self.ffn_norm(h), training=training), training=training
            )
            new_context, new_summary = h[:, :w], h[:, w:]
            if self.long_term is not None:
                long_term = self.long_term.write(long_term, new_context, new_summary, self._kvq)
            if m:
                short = ops.cast(self.short_term_mixing(new_context, new_summary), "float32")
                short_valid = ops.ones((batch,), "bool")
                new_summary = self.summary_mixing(new_context, new_summary)
            contexts.append(new_context)
            summaries.append(new_summary)

        new_state = {}
        if m:
            new_state["short_memory"] = short
            new_state["short_valid"] = ops.cast(short_valid, "int32")
        if self.long_term is not None:
            new_state.update(self.long_term.state(long_term))
        return ops.concatenate(contexts + summaries, axis=1), new_state

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "window_length": self.window_length,
                "intermediate_dim": self.intermediate_dim,
                "summary_size": self.summary_size,
                "short_term_memory_size": self.short_term_memory_size,
                "long_term_memory_size": self.long_term_memory_size,
                "long_term_increment": self.long_term_increment,
                "activation": self.activation,
                "dropout": self.dropout,
                "epsilon": self.epsilon,
                "normalize_keys": self.normalize_keys,
                "use_position_bias": self.use_position_bias,
                "num_position_buckets": self.num_position_buckets,
                "max_position_distance": self.max_position_distance,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
