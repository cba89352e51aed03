"""Transformer-XL attention with a sliding window and a carried cache."""

import keras
import numpy as np
from keras import ops

from keras_memory.layers.accumulating_dense import AccumulatingDense
from keras_memory.layers.input_checks import (
    check_bool,
    check_initializer,
    check_int,
    check_number,
)
from keras_memory.layers.memory_layer import MemoryLayer
from keras_memory.layers.relative_position_bias import (
    RelativePositionBias,
    check_bucket_options,
)
from keras_memory.ops.attention import dense_attention, sliding_window_attention
from keras_memory.ops.normalization import l2_normalize
from keras_memory.ops.rotary import rotary_base, rotate


@keras.saving.register_keras_serializable(package="keras_memory")
class XLAttention(MemoryLayer):
    """Multi-head causal sliding-window attention with a Transformer-XL cache.

    A segment of `S = n * W` tokens is split into `n` windows of `W` tokens;
    each window attends to itself and the previous window, so every token
    sees exactly the `W` tokens before it (itself excluded by default). The
    previous window of the segment's first window is the cache: the keys and
    values of the last `W` tokens of the previous segment, carried without
    gradient. With `S == W` this is plain Transformer-XL; with
    `use_cache=False` it is local-only attention (the baseline every memory
    is compared with).

    The state is `{"keys": (batch, W, heads, head_dim), "values": (...),
    "valid": (batch,) int32}`. On a row with `reset=True` the cache is zeroed
    and masked, so the first tokens of a document attend to nothing before
    them. (meliad zeroes the cache but still attends to the zero keys; see
    docs/differences.md.)

    Q/K/V and output projections have no bias. With `normalize_keys=True`
    (meliad's default) queries and keys are L2-normalised and the logits are
    multiplied by a learned per-head scale `|s|` initialised to 1; otherwise
    queries are scaled by `1/sqrt(head_dim)`.

    Args:
        num_heads: int. Number of attention heads.
        head_dim: int. Size of each head.
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
            heads, head_dim)`: the recurrent state to read (only, and
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
        **kwargs,
    ):
        super().__init__(stateful=stateful, **kwargs)
        if read_recurrent_state and type(self).call_with_state is not XLAttention.call_with_state:
            raise ValueError(
                f"`read_recurrent_state` is an option of XLAttention itself; "
                f"{type(self).__name__} does not support it."
            )
        self.read_recurrent_state = check_bool("read_recurrent_state", read_recurrent_state)
        num_heads = check_int("num_heads", num_heads)
        head_dim = check_int("head_dim", head_dim)
        window_length = check_int("window_length", window_length)
        use_cache = check_bool("use_cache", use_cache)
        include_self = check_bool("include_self", include_self)
        normalize_keys = check_bool("normalize_keys", normalize_keys)
        use_position_bias = check_bool("use_position_bias", use_position_bias)
        num_position_buckets, max_position_distance = check_bucket_options(
            num_position_buckets,
            max_position_distance,
            names=("num_position_buckets", "max_position_distance"),
        )
        compressed_memory_size = check_int("compressed_memory_size", compressed_memory_size, 0)
        if compressed_memory_size:
            if not use_cache:
                raise ValueError("`compressed_memory_size` needs `use_cache=True`.")
            compression_rate = check_int("compression_rate", compression_rate)
            if window_length % compression_rate:
                raise ValueError(
                    f"`window_length` ({window_length}) must be a multiple of "
                    f"`compression_rate` ({compression_rate})."
                )
        if rotary not in (None, "standard", "reversed"):
            raise ValueError(f"`rotary` must be None, 'standard' or 'reversed'; got {rotary!r}.")
        if rotary and head_dim % 2:
            raise ValueError(f"`rotary` needs an even `head_dim`; got {head_dim}.")
        rotary_base = check_number("rotary_base", rotary_base, 0.0, exclusive_minimum=True)
        rotary_scaling = check_number("rotary_scaling", rotary_scaling, 1.0)
        rotary_trained_window = check_int(
            "rotary_trained_window", rotary_trained_window, allow_none=True
        )
        num_registers = check_int("num_registers", num_registers, 0)
        if num_registers and not use_cache:
            raise ValueError(
                "`num_registers` needs the XL cache (`use_cache=True`): registers are "
                "the LSW Transformer's sinks next to its key/value cache."
            )
        self.rotary = rotary
        self.rotary_base = rotary_base
        self.rotary_scaling = rotary_scaling
        self.rotary_trained_window = rotary_trained_window
        self.num_registers = num_registers
        self.compressed_memory_size = compressed_memory_size
        self.compression_rate = compression_rate
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.window_length = window_length
        self.use_cache = use_cache
        self.include_self = include_self
        self.normalize_keys = normalize_keys
        self.use_position_bias = use_position_bias
        self.num_position_buckets = num_position_buckets
        self.max_position_distance = max_position_distance
        self.kernel_initializer = check_initializer("kernel_initializer", kernel_initializer)
        self.hidden_dim = None

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        self.hidden_dim = input_shape[-1]
        inner_dim = self.num_heads * self.head_dim
        self.qkv_projection = AccumulatingDense(
            3 * inner_dim,
            use_bias=False,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name="qkv_projection",
        )
        self.qkv_projection.build(input_shape)
        self.output_projection = AccumulatingDense(
            self.hidden_dim,
            use_bias=False,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name="output_projection",
        )
        self.output_projection.build((*input_shape[:-1], self.attention_output_width()))
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
        if self.num_registers:
            register_shape = (self.num_registers, self.num_heads, self.head_dim)
            self.register_keys = self.add_weight(
                name="register_keys", shape=register_shape, initializer="random_normal"
            )
            self.register_values = self.add_weight(
                name="register_values", shape=register_shape, initializer="random_normal"
            )
        if self.read_recurrent_state:
            self.recurrent_query_projection = AccumulatingDense(
                inner_dim,
                use_bias=False,
                kernel_initializer=keras.initializers.get(
                    keras.initializers.serialize(self.kernel_initializer)
                ),
                dtype=self.dtype_policy,
                name="recurrent_query_projection",
            )
            self.recurrent_query_projection.build(input_shape)
            if self.normalize_keys:
                self.recurrent_scale = self.add_weight(
                    name="recurrent_scale", shape=(self.num_heads,), initializer="ones"
                )
        self.build_state(input_shape[0])
        self.built = True

    def attention_output_width(self):
        """Width of what `project_output` projects: heads x head_dim (twice
        that when the layer also reads a recurrent state)."""
        return (1 + self.read_recurrent_state) * self.num_heads * self.head_dim

    def state_shapes(self, batch_size):
        if not self.use_cache:
            return {}
        cache_shape = (batch_size, self.window_length, self.num_heads, self.head_dim)
        shapes = {
            "keys": (cache_shape, "float32"),
            "values": (cache_shape, "float32"),
            "valid": ((batch_size,), "int32"),
        }
        if self.compressed_memory_size:
            compressed = (batch_size, self.compressed_memory_size, self.num_heads, self.head_dim)
            shapes["compressed_keys"] = (compressed, "float32")
            shapes["compressed_values"] = (compressed, "float32")
            shapes["compressed_valid"] = ((batch_size, self.compressed_memory_size), "int32")
        return shapes

    def project_qkv(self, x):
        """Returns queries, keys and values `(batch, S, heads, head_dim)`.

        With `normalize_keys` the queries and keys come back L2-normalised;
        otherwise the queries come back scaled by `1/sqrt(head_dim)`.
        """
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        qkv = self.qkv_projection(x)
        qkv = ops.reshape(qkv, (batch, length, 3, self.num_heads, self.head_dim))
        queries, keys, values = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.normalize_keys:
            queries, keys = l2_normalize(queries), l2_normalize(keys)
        else:
            queries = queries * ops.cast(self.head_dim**-0.5, queries.dtype)
        return queries, keys, values

    def call_with_state(self, x, state, reset, training, recurrent_kv=None):
        self._check_segment_length(x)
        queries, keys, values = self.project_qkv(x)
        outputs, new_state = self.local_attention(queries, keys, values, state, reset)
        if self.read_recurrent_state:
            read = self._read_recurrent_state(x, recurrent_kv)
            outputs = ops.concatenate([outputs, ops.cast(read, outputs.dtype)], axis=2)
        elif recurrent_kv is not None:
            raise ValueError(
                f"Layer '{self.name}' got `recurrent_kv` but was built with "
                "`read_recurrent_state=False`."
            )
        return self.project_output(outputs), new_state

    def _read_recurrent_state(self, x, recurrent_kv):
        """Tokens attend, without mask, to the recurrent state's keys and values."""
        batch = ops.shape(x)[0]
        if recurrent_kv is None or len(recurrent_kv) != 2:
            raise ValueError(
                f"Layer '{self.name}' reads a recurrent state: call it with "
                "`recurrent_kv=(keys, values)`, each (batch, num_states, "
                f"{self.num_heads}, {self.head_dim}), from "
                "BlockRecurrentAttention.recurrent_keys_values()."
            )
        state_keys, state_values = recurrent_kv
        for name, tensor in (("keys", state_keys), ("values", state_values)):
            shape = tuple(tensor.shape)
            if len(shape) != 4 or shape[2:] != (self.num_heads, self.head_dim):
                raise ValueError(
                    f"Layer '{self.name}': `recurrent_kv` {name} must have shape "
                    f"(batch, num_states, {self.num_heads}, {self.head_dim}); got {shape}."
                )
        queries = self.recurrent_query_projection(x)
        queries = ops.reshape(queries, (batch, x.shape[1], self.num_heads, self.head_dim))
        if self.normalize_keys:
            queries, scale = l2_normalize(queries), ops.abs(self.recurrent_scale)
        else:
            queries, scale = queries * ops.cast(self.head_dim**-0.5, queries.dtype), None
        return dense_attention(queries, state_keys, state_values, scale)

    def _check_segment_length(self, x):
        self.check_segment_length(x.shape[1])

    def check_segment_length(self, length):
        if length is not None and length % self.window_length:
            raise ValueError(
                f"Layer '{self.name}': the segment length of `x` ({length}) must be a "
                f"multiple of `window_length` ({self.window_length})."
            )

    def local_attention(self, queries, keys, values, state, reset):
        """Sliding-window attention with the XL cache.

        Returns:
            `(outputs, new_cache_state)`, outputs `(batch, S, heads, head_dim)`.
        """
        cache, memory = {}, {}
        if self.use_cache:
            keep = ops.logical_not(reset)
            cache = {
                "cache_keys": zero_rows(state["keys"], keep),
                "cache_values": zero_rows(state["values"], keep),
                "cache_valid": ops.logical_and(keep, state["valid"] > 0),
            }
        if self.compressed_memory_size:
            memory = {
                "memory_keys": zero_rows(state["compressed_keys"], keep),
                "memory_values": zero_rows(state["compressed_values"], keep),
                "memory_valid": ops.logical_and(keep[:, None], state["compressed_valid"] > 0),
            }
        w = self.window_length
        attend = {**cache, **self._with_registers(memory, ops.shape(queries)[0])}
        rotated_queries, rotated_keys = queries, keys
        if self.rotary:
            length = queries.shape[1]
            rotated_queries = self._rotate(queries, np.arange(length))
            rotated_keys = self._rotate(keys, np.arange(length))
            if self.use_cache:
                attend["cache_keys"] = self._rotate(attend["cache_keys"], np.arange(-w, 0))
        outputs = sliding_window_attention(
            rotated_queries,
            rotated_keys,
            values,
            window_length=w,
            position_bias=self.position_bias.compute_bias(w, 2 * w)
            if self.use_position_bias
            else None,
            logit_scale=ops.abs(self.attention_scale) if self.normalize_keys else None,
            include_self=self.include_self,
            **attend,
        )
        new_state = {}
        if self.use_cache:
            new_state = {
                "keys": ops.cast(keys[:, -w:], "float32"),
                "values": ops.cast(values[:, -w:], "float32"),
                "valid": ops.ones_like(state["valid"]),
            }
        if self.compressed_memory_size:
            new_state.update(self._compress(keys, values, cache, memory))
        return outputs, new_state

    def _rotate(self, x, positions):
        scaling = self.rotary_scaling
        if self.rotary_trained_window:
            scaling = max(scaling, self.window_length / self.rotary_trained_window)
        base = rotary_base(self.rotary_base, self.head_dim, scaling)
        if self.rotary == "reversed":
            # Counted back from the newest token: only the sign of distances flips.
            positions = -positions
        return rotate(x, positions, base)

    def _with_registers(self, memory, batch):
        """The compressed memory (if any) with the learned registers in front."""
        if not self.num_registers:
            return memory
        keys = ops.cast(self.register_keys, "float32")
        if self.normalize_keys:
            keys = l2_normalize(keys)
        shape = (batch, self.num_registers, self.num_heads, self.head_dim)
        registers = {
            "memory_keys": ops.broadcast_to(keys[None], shape),
            "memory_values": ops.broadcast_to(
                ops.cast(self.register_values, "float32")[None], shape
            ),
            "memory_valid": ops.ones((batch, self.num_registers), "bool"),
        }
        if not memory:
            return registers
        return {
            name: ops.concatenate(
                [registers[name], ops.cast(memory[name], registers[name].dtype)], 1
            )
            for name in registers
        }

    def _compress(self, keys, values, cache, memory):
        """The compressed memory after this segment (Compressive Transformer).

        What leaves the local view at the segment's end (the old cache and
        every block but the last) is mean-pooled over `compression_rate`
        consecutive tokens and pushed into a first-in first-out memory.
        """
        w, rate = self.window_length, self.compression_rate
        batch, length = ops.shape(keys)[0], keys.shape[1]
        leaving_keys = ops.concatenate(
            [cache["cache_keys"], ops.cast(keys[:, : length - w], "float32")], axis=1
        )
        leaving_values = ops.concatenate(
            [cache["cache_values"], ops.cast(values[:, : length - w], "float32")], axis=1
        )
        leaving_valid = ops.concatenate(
            [
                ops.repeat(cache["cache_valid"][:, None], w, axis=1),
                ops.ones((batch, length - w), "bool"),
            ],
            axis=1,
        )

        def pool(tensor):
            grouped = ops.reshape(tensor, (batch, length // rate, rate, *tensor.shape[2:]))
            return ops.mean(grouped, axis=2)

        pooled_keys = pool(leaving_keys)
        if self.normalize_keys:
            pooled_keys = l2_normalize(pooled_keys)
        size = self.compressed_memory_size

        def push(old, new):
            return ops.concatenate([old, new], axis=1)[:, -size:]

        return {
            "compressed_keys": push(memory["memory_keys"], pooled_keys),
            "compressed_values": push(memory["memory_values"], pool(leaving_values)),
            "compressed_valid": ops.cast(
                push(memory["memory_valid"], leaving_valid[:, ::rate]), "int32"
            ),
        }

    def project_output(self, outputs):
        """Merges heads `(batch, S, heads, head_dim)` and applies the output projection."""
        batch, length = ops.shape(outputs)[0], ops.shape(outputs)[1]
        width = outputs.shape[2] * outputs.shape[3]
        return self.output_projection(ops.reshape(outputs, (batch, length, width)))

    def compute_output_shape(self, input_shape=None, **shapes):
        # Keras passes the input's shape as `input_shape` or `x_shape`
        # depending on whether the layer was built by a call or by build().
        shape = input_shape if input_shape is not None else shapes["x_shape"]
        # Symbolic calls (keras.Input) reach here instead of `call`: check the
        # static shape the same way (not the batch: `functional` is unknown here).
        self.check_input_shape(shape, functional=True)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "window_length": self.window_length,
                "use_cache": self.use_cache,
                "include_self": self.include_self,
                "normalize_keys": self.normalize_keys,
                "use_position_bias": self.use_position_bias,
                "num_position_buckets": self.num_position_buckets,
                "max_position_distance": self.max_position_distance,
                "compressed_memory_size": self.compressed_memory_size,
                "compression_rate": self.compression_rate,
                "rotary": self.rotary,
                "rotary_base": self.rotary_base,
                "rotary_scaling": self.rotary_scaling,
                "rotary_trained_window": self.rotary_trained_window,
                "num_registers": self.num_registers,
                "read_recurrent_state": self.read_recurrent_state,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def zero_rows(tensor, keep):
    """Zeroes the batch rows of `tensor` where `keep` is False."""
    keep = ops.reshape(keep, (-1,) + (1,) * (len(tensor.shape) - 1))
    return ops.where(keep, tensor, ops.zeros_like(tensor))
