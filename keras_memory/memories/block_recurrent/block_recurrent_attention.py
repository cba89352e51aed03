"""Block-Recurrent Transformer attention: tokens and a recurrent state, window by window."""

import keras
from keras import ops

from keras_memory.layers.attention_heads import AttentionHeads, accept_legacy_options
from keras_memory.layers.relative_position_bias import RelativePositionBias, check_bucket_options
from keras_memory.layers.windowed_attention import WindowedAttention
from keras_memory.memories.block_recurrent.recurrent_decoding import RecurrentDecoding
from keras_memory.memories.block_recurrent.recurrent_state_heads import RecurrentStateHeads
from keras_memory.memories.block_recurrent.state_update import GATES, VARIANTS, StateUpdate
from keras_memory.ops.attention import dense_attention
from keras_memory.ops.checks import check_bool, check_choice, check_int, check_number
from keras_memory.ops.normalization import l2_normalize


@keras.saving.register_keras_serializable(package="keras_memory")
class BlockRecurrentAttention(RecurrentDecoding, RecurrentStateHeads, AttentionHeads):
    """The recurrent layer of the Block-Recurrent Transformer.

    A segment is read in blocks of `window_length` tokens. Alongside the
    tokens the layer carries `num_states` state vectors of width
    `hidden_dim`. For each block, with `c` the state entering it:

    - tokens attend to themselves (`WindowedAttention`: the causal sliding
      window with the Transformer-XL cache, and a T5 bias) and, with a
      second set of queries, to `c` (no mask). The two results are concatenated
      over heads and projected back to `hidden_dim`: this is the layer's
      output, added to the residual stream by the enclosing block;
    - the state attends to itself (no mask) and, with a second set of
      queries, to the token keys of [previous block, current block]; the
      two results are concatenated, projected, and gated into `c` to give
      the state of the next block.

    The state's keys and queries come from `RMSNorm(c)` plus learned
    per-state position embeddings. How the state takes in its attention
    outputs is `StateUpdate`'s: a `"fixed"` gate `sigmoid(b)` or `"lstm"`
    gates computed from the outputs (`gate`), with no feed-forward on the
    state path (`"skip"`), a gated one after the projection (`"dual"`) or
    one instead of it (`"single"`) (`variant`).

    The state is differentiable from block to block inside a segment and
    carried to the next segment without gradient. A row with `reset=True`
    (or whose state was never set) starts from the learned initial state
    `(num_states, hidden_dim)`, drawn from N(0, 0.1).

    The state adds `recurrent_state` `(batch, num_states, hidden_dim)` and
    `recurrent_valid` `(batch,)` to the window's cache.

    Args:
        num_heads: int. Attention heads (tokens and state alike).
        head_dim: int. Size of each head.
        num_key_value_heads: int or None. Heads of the keys and values (and
            of every cache, memory and state of keys), dividing `num_heads`; 1
            is multi-query attention. None (the default): `num_heads`.
        window_length: int. Block size `W`; the segment length must be a
            multiple of it.
        num_states: int. State vectors `N`. Defaults to 512 (meliad).
        gate: str. `"fixed"` (the paper's best) or `"lstm"`.
        variant: str. `"skip"` (the paper's best), `"dual"` or `"single"`.
        state_intermediate_dim: int or None. Hidden width of the state's
            feed-forward (`"dual"` / `"single"`); defaults to 4x hidden_dim.
        state_dropout: float. In training, the probability that a row
            starts a segment from the learned initial state instead of its
            carried state (the PyTorch port's dropout of whole states).
            Defaults to 0.
        memory_dropout: float. In training, the probability that a row
            ignores its XL cache for a segment. Defaults to 0.
        seed: int or None. Seed of the two dropouts.
        use_cache: bool. Carry the XL cache. Defaults to True.
        include_self: bool. See `XLAttention`.
        normalize_keys: bool. See `XLAttention`; also for the state.
        use_position_bias: bool. T5 bias on the token self-attention.
        num_position_buckets: int. See `XLAttention`.
        max_position_distance: int. See `XLAttention`.
        stateful: bool. Keep cache and state in variables for `model.fit`.
        kernel_initializer: initializer of the projections.
        compressed_memory_size: int. See `XLAttention`. Defaults to 0.
        compression_rate: int. See `XLAttention`. Defaults to 4.
        rotary: str or None. See `XLAttention`. Defaults to None.
        rotary_base: float. See `XLAttention`. Defaults to 10000.
        rotary_scaling: float. See `XLAttention`. Defaults to 1.
        rotary_trained_window: int or None. See `XLAttention`.
        num_registers: int. See `XLAttention`. Defaults to 0.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: float tensor `(batch, S, hidden_dim)`, `S` a multiple of `W`.
        state: dict or None (functional form only).
        reset: bool tensor `(batch,)` or None.
        training: bool or None.

    Returns:
        Functional form: `(y, new_state)`; stateful form: `y`.

    Example:
    ```python
    attention = keras_memory.layers.BlockRecurrentAttention(
        num_heads=4, head_dim=16, window_length=32, num_states=16
    )
    y, state = attention(np.random.rand(2, 64, 64).astype("float32"))
    ```

    References:
        - [Hutchins et al., 2022](https://arxiv.org/abs/2203.07852)
        - [meliad, memory/transformer_layer.py](https://github.com/google-research/meliad)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        window_length,
        num_states=512,
        gate="fixed",
        variant="skip",
        state_intermediate_dim=None,
        state_dropout=0.0,
        memory_dropout=0.0,
        seed=None,
        use_cache=True,
        include_self=False,
        normalize_keys=True,
        use_position_bias=True,
        num_position_buckets=32,
        max_position_distance=128,
        stateful=False,
        kernel_initializer="glorot_uniform",
        compressed_memory_size=0,
        compression_rate=4,
        rotary=None,
        rotary_base=10000.0,
        rotary_scaling=1.0,
        rotary_trained_window=None,
        num_registers=0,
        num_key_value_heads=None,
        **kwargs,
    ):
        super().__init__(
            num_heads,
            head_dim,
            normalize_keys=normalize_keys,
            kernel_initializer=kernel_initializer,
            stateful=stateful,
            num_key_value_heads=num_key_value_heads,
            **kwargs,
        )
        self.window = WindowedAttention(
            self.key_value_heads,
            self.head_dim,
            window_length,
            use_cache=use_cache,
            include_self=include_self,
            normalize_keys=self.normalize_keys,
            compressed_memory_size=compressed_memory_size,
            compression_rate=compression_rate,
            rotary=rotary,
            rotary_base=rotary_base,
            rotary_scaling=rotary_scaling,
            rotary_trained_window=rotary_trained_window,
            num_registers=num_registers,
        )
        # The window's options are this layer's arguments: kept as attributes too.
        for name, value in self.window.get_config().items():
            setattr(self, name, value)
        self.use_position_bias = check_bool("use_position_bias", use_position_bias)
        self.num_position_buckets, self.max_position_distance = check_bucket_options(
            num_position_buckets,
            max_position_distance,
            names=("num_position_buckets", "max_position_distance"),
        )
        self.num_states = check_int("num_states", num_states)
        self.gate = check_choice("gate", gate, GATES)
        self.variant = check_choice("variant", variant, VARIANTS)
        self.state_intermediate_dim = check_int(
            "state_intermediate_dim", state_intermediate_dim, allow_none=True
        )
        self.state_dropout = check_number("state_dropout", state_dropout, 0.0, 1.0)
        self.memory_dropout = check_number("memory_dropout", memory_dropout, 0.0, 1.0)
        self.seed = check_int("seed", seed, 0, allow_none=True)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.state_update = StateUpdate(
            self.gate, self.variant, self.num_states, self.state_intermediate_dim
        )

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        hidden = input_shape[-1]
        inner = self.inner_dim
        # Creation order is the saved files' order of the layer's own
        # variables: the state's, its scales, its gates, then the tokens'.
        self.initial_recurrent_state = self.add_weight(
            name="initial_recurrent_state",
            shape=(self.num_states, hidden),
            initializer=keras.initializers.RandomNormal(stddev=0.1),
        )
        self.state_position_embedding = self.add_weight(
            name="state_position_embedding",
            shape=(self.num_states, hidden),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
        )
        state_shape = (None, self.num_states, hidden)
        self.state_norm = keras.layers.RMSNormalization(epsilon=1e-6, dtype=self.dtype_policy)
        self.state_norm.build(state_shape)
        # keys, values, queries and cross-attention queries of the state.
        self.state_qkv_projection = self.projection(
            2 * self.key_value_dim + 2 * inner, state_shape, "state_qkv_projection"
        )
        self.token_query2_projection = self.projection(
            inner, input_shape, "token_query2_projection"
        )
        self.token_cross_scale = self.head_scale("token_cross_scale")
        self.state_scale = self.head_scale("state_scale")
        self.state_cross_scale = self.head_scale("state_cross_scale")
        for name, part in self.state_update.build(self, hidden, 2 * inner).items():
            setattr(self, name, part)
        # Self- and cross-attention outputs are concatenated over heads.
        self.build_heads(input_shape, 2 * inner)
        if self.use_position_bias:
            self.position_bias = RelativePositionBias(
                self.num_heads,
                num_buckets=self.num_position_buckets,
                max_distance=self.max_position_distance,
                dtype=self.dtype_policy,
                name="position_bias",
            )
            self.position_bias.build()
        for name, weight in self.window.build(self).items():
            setattr(self, name, weight)
        self.build_state(input_shape[0])
        self.built = True

    def state_shapes(self, batch_size):
        hidden = self.hidden_dim
        return {
            **self.window.state_shapes(batch_size),
            "recurrent_state": ((batch_size, self.num_states, hidden), "float32"),
            "recurrent_valid": ((batch_size,), "int32"),
        }

    def check_segment_length(self, length):
        self.window.check_segment_length(self.name, length)

    def forget_masks(self, reset, training):
        """Rows that start from the initial state and rows that drop their cache.

        Both are `reset`, plus, in training, the rows that `state_dropout` and
        `memory_dropout` draw for this segment.

        Returns:
            `(forget_state, forget_cache)`, bool tensors `(batch,)`.
        """
        if not (training and (self.state_dropout or self.memory_dropout)):
            return reset, reset
        draws = keras.random.uniform((2, ops.shape(reset)[0]), seed=self.seed_generator)
        return (
            ops.logical_or(reset, draws[0] < self.state_dropout),
            ops.logical_or(reset, draws[1] < self.memory_dropout),
        )

    def call_with_state(self, x, state, reset, training, forget=None):
        """`forget`: `(forget_state, forget_cache)` from `forget_masks`, when
        the caller (a model reading this layer's state elsewhere) drew them."""
        self.check_segment_length(x.shape[1])
        w = self.window_length
        batch = ops.shape(x)[0]
        forget_state, forget_cache = forget or self.forget_masks(reset, training)
        queries, keys, values = self.project_qkv(x)
        local, new_state = self.window(
            queries,
            keys,
            values,
            state,
            forget_cache,
            position_bias=self.position_bias if self.use_position_bias else None,
            logit_scale=self.logit_scale(self.attention_scale),
        )
        queries2 = self.split_heads(self.token_query2_projection(x))
        queries2 = l2_normalize(queries2) if self.normalize_keys else queries2 * self.head_dim**-0.5
        recurrent = self.entering_state(state, forget_state)

        # The state's first block reads the previous segment's last block.
        if self.use_cache:
            cache = self.window.read_cache(state, forget_cache)
            previous_keys, previous_values = cache["cache_keys"], cache["cache_values"]
            previous_valid = cache["cache_valid"]
        else:
            previous_keys = ops.zeros_like(keys[:, :w])
            previous_values = ops.zeros_like(values[:, :w])
            previous_valid = ops.zeros((batch,), "bool")

        crosses = []
        for block in range(x.shape[1] // w):
            span = slice(block * w, (block + 1) * w)
            state_keys, state_values, state_queries, state_queries2 = self._state_kvq(recurrent)
            # Tokens read the state as it entered this block.
            crosses.append(
                dense_attention(
                    queries2[:, span],
                    state_keys,
                    state_values,
                    self.logit_scale(self.token_cross_scale),
                )
            )
            own = dense_attention(
                state_queries, state_keys, state_values, self.logit_scale(self.state_scale)
            )
            # In the compute dtype, like the state's heads (`_state_kvq`); the
            # float32 cache holds the same values.
            block_keys = ops.concatenate([ops.cast(previous_keys, keys.dtype), keys[:, span]], 1)
            block_values = ops.concatenate(
                [ops.cast(previous_values, values.dtype), values[:, span]], 1
            )
            mask = ops.concatenate(
                [
                    ops.repeat(previous_valid[:, None], w, axis=1),
                    ops.ones((batch, w), "bool"),
                ],
                axis=1,
            )
            read = dense_attention(
                state_queries2,
                block_keys,
                block_values,
                self.logit_scale(self.state_cross_scale),
                mask=mask[:, None, None, :],
            )
            recurrent = self.state_update(recurrent, own, read, self.compute_dtype)
            previous_keys, previous_values = keys[:, span], values[:, span]
            previous_valid = ops.ones((batch,), "bool")

        cross = ops.cast(ops.concatenate(crosses, axis=1), local.dtype)
        outputs = self.project_output(ops.concatenate([local, cross], axis=2))
        new_state["recurrent_state"] = ops.cast(recurrent, "float32")
        new_state["recurrent_valid"] = ops.ones((batch,), "int32")
        return outputs, new_state

    def get_config(self):
        config = super().get_config()
        config.update(self.window.get_config())
        config.update(
            {
                "use_position_bias": self.use_position_bias,
                "num_position_buckets": self.num_position_buckets,
                "max_position_distance": self.max_position_distance,
                "num_states": self.num_states,
                "gate": self.gate,
                "variant": self.variant,
                "state_intermediate_dim": self.state_intermediate_dim,
                "state_dropout": self.state_dropout,
                "memory_dropout": self.memory_dropout,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Before the redesign the layer took (and saved) every XLAttention
        # argument; reading another layer's recurrent state it refused.
        return super().from_config(
            accept_legacy_options(cls, config, {"read_recurrent_state": False})
        )
