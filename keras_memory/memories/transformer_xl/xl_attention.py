"""Transformer-XL attention with a sliding window and a carried cache."""

import keras
from keras import ops

from keras_memory.layers.attention_heads import AttentionHeads
from keras_memory.layers.relative_position_bias import (
    check_bucket_options,
    layer_position_bias,
)
from keras_memory.layers.windowed_attention import WindowedAttention
from keras_memory.memories.transformer_xl.recurrent_reader import RecurrentStateReader
from keras_memory.ops.checks import check_bool


@keras.saving.register_keras_serializable(package="keras_memory")
class XLAttention(AttentionHeads):
    """Multi-head causal sliding-window attention with a Transformer-XL cache.

    A segment of `S = n * W` tokens is split into `n` windows of `W` tokens;
    each window attends to itself and the previous window, so every token
    sees exactly the `W` tokens before it (itself excluded by default). The
    previous window of the segment's first window is the cache: the keys and
    values of the last `W` tokens of the previous segment, carried without
    gradient. With `S == W` this is plain Transformer-XL; with
    `use_cache=False` it is local-only attention (the baseline every memory
    is compared with).

    The state is `{"keys": (batch, W, key_value_heads, head_dim), "values": (...),
    "valid": (batch,) int32}`. On a row with `reset=True` the cache is zeroed
    and masked, so the first tokens of a document attend to nothing before
    them. (meliad zeroes the cache but still attends to the zero keys; see
    docs/differences/transformer-xl.md.)

    Q/K/V and output projections have no bias. With `normalize_keys=True`
    (meliad's default) queries and keys are L2-normalised and the logits are
    multiplied by a learned per-head scale `|s|` initialised to 1; otherwise
    queries are scaled by `1/sqrt(head_dim)`.

    The layer is composed of pieces: its projections are `AttentionHeads`';
    the window, cache, compressed memory, rotary positions and registers are
    `WindowedAttention`'s; reading a recurrent state is
    `RecurrentStateReader`'s.

    Args:
        num_heads: int. Number of attention heads.
        head_dim: int. Size of each head.
        num_key_value_heads: int or None. Heads of the keys and values (and
            of every cache, memory and state of keys), dividing `num_heads`; 1
            is multi-query attention. None (the default): `num_heads`.
        window_length: int. `W`, the number of previous tokens each token
            sees; the segment length must be a multiple of it.
        use_cache: bool. Carry the last window's keys/values to the next
            segment (Transformer-XL). Defaults to True.
        include_self: bool. Let a token attend to itself (and `W - 1`
            previous tokens). Defaults to False.
        normalize_keys: bool. L2-normalise Q and K with a learned scale.
            Defaults to True.
        use_position_bias: bool. Add a T5 relative position bias. Defaults
            to True.
        num_position_buckets: int. T5 buckets. Defaults to 32.
        max_position_distance: int. T5 max distance. Defaults to 128.
        compressed_memory_size: int. Entries of a compressed memory
            (Compressive Transformer): at each segment's end the tokens that
            leave the local view (the old cache and every block but the
            last) are mean-pooled over `compression_rate` tokens (keys
            re-normalised) and pushed into a first-in first-out memory of this
            size, which every query attends to in the same softmax as its
            window, without position bias. 0 (the default) turns it off;
            needs `use_cache`.
        compression_rate: int. Tokens per compressed entry; divides
            `window_length` and the segment length. Defaults to 4.
        rotary: str or None. Rotary position embeddings on the window's
            queries and keys (and the cache's keys): `"standard"` or
            `"reversed"` (LSWT: positions counted backwards, the newest token
            at 0). Positions are taken within the segment and its cache;
            only their differences matter, so a segment of `2W` equals two
            of `W`. The cache keeps unrotated keys. None (the default): no
            rotation. Combine with `use_position_bias=False` for RoPE alone.
        rotary_base: float. Base frequency. Defaults to 10000 (LSWT raises
            it, e.g. 500000).
        rotary_scaling: float >= 1. NTK-aware scaling of the base
            (`base * s ** (d / (d - 2))`). Defaults to 1.
        rotary_trained_window: int or None. Dynamic NTK: when set, the
            scaling is at least `window_length / rotary_trained_window`, so
            a model run with a longer window than it was trained with
            stretches its wavelengths to match.
        num_registers: int. Attention registers (LSWT): this many learned
            key/value pairs that every query sees, without position, in the
            same softmax as its window (attention sinks). Defaults to 0;
            needs `use_cache`.
        read_recurrent_state: bool. Also attend to a Block-Recurrent state
            written by another layer (meliad's feedback): a second set of
            queries attends, without mask or position bias, to the state's
            keys and values passed in the call as `recurrent_kv`; the two
            results are concatenated before the output projection, as in
            the recurrent layer itself. Defaults to False.
        stateful: bool. Keep the cache in variables for `model.fit`.
        kernel_initializer: initializer of the projections.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: float tensor `(batch, S, hidden_dim)`.
        state: dict or None. The cache from the previous segment (functional
            form only); None starts a fresh one.
        reset: bool tensor `(batch,)` or None. True on a document's first
            segment.
        training: bool or None.
        recurrent_kv: `(keys, values)`, each float `(batch, num_states,
            key_value_heads, head_dim)`: the recurrent state to read (only, and
            required, with `read_recurrent_state`); see
            `BlockRecurrentAttention.recurrent_keys_values`.

    Returns:
        Functional form: `(y, new_state)` with `y` of `x`'s shape. Stateful
        form: `y`.

    Example:
    ```python
    attention = keras_memory.layers.XLAttention(
        num_heads=4, head_dim=16, window_length=32
    )
    x = np.random.rand(2, 128, 64).astype("float32")
    reset = np.array([True, True])
    y, state = attention(x, reset=reset)
    y2, state = attention(x, state=state, reset=np.array([False, True]))
    ```

    References:
        - [Dai et al., 2019](https://arxiv.org/abs/1901.02860)
        - [Hutchins et al., 2022, Sec. 3](https://arxiv.org/abs/2203.07852)
        - [meliad](https://github.com/google-research/meliad)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        window_length,
        use_cache=True,
        include_self=False,
        normalize_keys=True,
        use_position_bias=True,
        num_position_buckets=32,
        max_position_distance=128,
        compressed_memory_size=0,
        compression_rate=4,
        rotary=None,
        rotary_base=10000.0,
        rotary_scaling=1.0,
        rotary_trained_window=None,
        num_registers=0,
        read_recurrent_state=False,
        stateful=False,
        kernel_initializer="glorot_uniform",
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
        self.read_recurrent_state = check_bool("read_recurrent_state", read_recurrent_state)
        self.reader = RecurrentStateReader(self) if self.read_recurrent_state else None

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        # Creation order is the saved files' order of the layer's own
        # variables: attention scale, registers, recurrent scale.
        self.build_heads(input_shape, (1 + self.read_recurrent_state) * self.inner_dim)
        if self.use_position_bias:
            self.position_bias = layer_position_bias(self)
        for name, weight in self.window.build(self).items():
            setattr(self, name, weight)
        if self.reader is not None:
            self.recurrent_query_projection, self.recurrent_scale = self.reader.build(input_shape)
        self.build_state(input_shape[0])
        self.built = True

    def state_shapes(self, batch_size):
        return self.window.state_shapes(batch_size)

    def check_segment_length(self, length):
        self.window.check_segment_length(self.name, length)

    def call_with_state(self, x, state, reset, training, recurrent_kv=None):
        self.check_segment_length(x.shape[1])
        queries, keys, values = self.project_qkv(x)
        outputs, new_state = self.window(
            queries,
            keys,
            values,
            state,
            reset,
            position_bias=self.position_bias if self.use_position_bias else None,
            logit_scale=self.logit_scale(self.attention_scale),
        )
        if self.reader is not None:
            read = self.reader(x, recurrent_kv)
            outputs = ops.concatenate([outputs, ops.cast(read, outputs.dtype)], axis=2)
        elif recurrent_kv is not None:
            raise ValueError(
                f"Layer '{self.name}' got `recurrent_kv` but was built with "
                "`read_recurrent_state=False`."
            )
        return self.project_output(outputs), new_state

    def step_buffers(self, state, batch_size, segment_length):
        # A layer reading a recurrent state runs in the feedback stack, window by window.
        return None if self.reader is not None else self.window.step_buffers(state, batch_size)

    def decode_step(self, x, position, buffers, state, previous_valid):
        """One token's output: `call_with_state`'s for that token, from the step buffers.

        Args:
            x: `(batch, 1, hidden_dim)`: the token at `position` of its window.
            position: int32 scalar tensor.
            buffers: the dict of `step_buffers`, holding the window so far.
            state: the layer's state at the segment's start.
            previous_valid: `(previous_in_document, previous_in_segment)` bool scalars.

        Returns:
            `(y (batch, 1, hidden_dim), new buffers)`.
        """
        queries, keys, values = self.project_qkv(x)
        outputs, buffers = self.window.step(
            queries,
            keys,
            values,
            buffers,
            state,
            position,
            previous_valid,
            position_bias=self.position_bias if self.use_position_bias else None,
            logit_scale=self.logit_scale(self.attention_scale),
        )
        return self.project_output(outputs), buffers

    def get_config(self):
        config = super().get_config()
        config.update(self.window.get_config())
        config.update(
            {
                "use_position_bias": self.use_position_bias,
                "num_position_buckets": self.num_position_buckets,
                "max_position_distance": self.max_position_distance,
                "read_recurrent_state": self.read_recurrent_state,
            }
        )
        return config
