"""Causal sliding-window attention with the Transformer-XL cache, as a piece to compose."""

import numpy as np
from keras import ops

from keras_memory.layers.attention_registers import AttentionRegisters, check_num_registers
from keras_memory.layers.compressed_memory import CompressedMemory, check_compression_options
from keras_memory.layers.memory_layer import zero_rows
from keras_memory.layers.rotary_positions import RotaryPositions, check_rotary_options
from keras_memory.ops.attention import sliding_window_attention, window_step_attention
from keras_memory.ops.checks import check_bool, check_int


class WindowedAttention:
    """The local attention of `XLAttention`, `KNNAttention` and `BlockRecurrentAttention`.

    Not a layer: a piece those layers compose, holding the options of their
    local attention and the code that runs it on the queries, keys and
    values their own projections made. A segment of `S = n * W` tokens is
    split into `n` windows of `W` tokens; each window attends to itself and
    the previous window, so every token sees exactly the `W` tokens before
    it (itself excluded by default). The previous window of the segment's
    first window is the cache: the keys and values of the last `W` tokens of
    the previous segment, carried without gradient. With `S == W` this is
    plain Transformer-XL; with `use_cache=False` it is local-only attention.

    Three options join the window in the same softmax, each its own piece:
    the compressed memory (`CompressedMemory`), attention registers
    (`AttentionRegisters`, weights of the owning layer, created by `build`)
    and rotary positions (`RotaryPositions`). The owning layer passes its
    T5 position bias (a `RelativePositionBias`) and logit scale in the call.

    The state is `{"keys": (batch, W, key_heads, head_dim), "values": (...),
    "valid": (batch,) int32}` with the cache, plus the compressed memory's
    entries. On a row with `reset=True` the cache and memory are zeroed and
    masked, so the first tokens of a document attend to nothing before them.

    Args:
        num_heads: int. Heads of the keys and values (the owning layer's
            `key_value_heads`; the queries may have a multiple of them).
        head_dim: int. Size of each head.
        window_length: int. `W`, the number of previous tokens each token
            sees; the segment length must be a multiple of it.
        use_cache: bool. Carry the last window's keys and values to the next
            segment (Transformer-XL). Defaults to True.
        include_self: bool. Let a token attend to itself (and `W - 1`
            previous tokens). Defaults to False.
        normalize_keys: bool. Whether the layer's keys are L2-normalised (so
            are the registers' keys and the compressed memory's). Defaults
            to True.
        compressed_memory_size: int. Entries of a compressed memory; 0 (the
            default) turns it off; needs `use_cache`.
        compression_rate: int. Tokens per compressed entry; divides
            `window_length` and the segment length. Defaults to 4.
        rotary: str or None. `"standard"` or `"reversed"` rotary positions on
            the window's queries and keys (and the cache's keys); positions
            are taken within the segment and its cache, and the cache keeps
            unrotated keys. None (the default): no rotation.
        rotary_base: float. Base frequency. Defaults to 10000.
        rotary_scaling: float >= 1. NTK-aware scaling of the base.
            Defaults to 1.
        rotary_trained_window: int or None. Dynamic NTK: the scaling is at
            least `window_length / rotary_trained_window`.
        num_registers: int. Attention registers; 0 (the default): none;
            needs `use_cache`.

    Call arguments:
        queries: float tensor `(batch, S, heads, head_dim)`, scaled or
            normalised by the layer.
        keys: float tensor `(batch, S, key_heads, head_dim)`.
        values: float tensor like `keys`.
        state: dict. The layer's state (the cache and memory entries here).
        reset: bool tensor `(batch,)`. Rows that forget their cache and memory.
        position_bias: `RelativePositionBias` or None. The layer's T5 bias
            over each window's `(W, 2W)` query-key distances.
        logit_scale: float tensor `(heads,)` or None.

    Returns:
        `(outputs, new_state)`: outputs `(batch, S, heads, head_dim)` in the
        dtype of `values`; `new_state` the entries of `state_shapes`.

    Example:
    ```python
    window = WindowedAttention(num_heads=2, head_dim=8, window_length=4)
    queries = keys = values = np.random.rand(1, 8, 2, 8).astype("float32")
    state = {name: np.zeros(shape, dtype) for name, (shape, dtype) in
             window.state_shapes(1).items()}
    outputs, state = window(queries, keys, values, state, reset=np.array([True]))
    ```

    References:
        - [Dai et al., 2019](https://arxiv.org/abs/1901.02860)
        - [Hutchins et al., 2022, Sec. 3](https://arxiv.org/abs/2203.07852)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        window_length,
        use_cache=True,
        include_self=False,
        normalize_keys=True,
        compressed_memory_size=0,
        compression_rate=4,
        rotary=None,
        rotary_base=10000.0,
        rotary_scaling=1.0,
        rotary_trained_window=None,
        num_registers=0,
    ):
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.normalize_keys = normalize_keys
        self.window_length = check_int("window_length", window_length)
        self.use_cache = check_bool("use_cache", use_cache)
        self.include_self = check_bool("include_self", include_self)
        self.compressed_memory_size, self.compression_rate = check_compression_options(
            compressed_memory_size, compression_rate, self.window_length, self.use_cache
        )
        self.rotary, self.rotary_base, self.rotary_scaling, self.rotary_trained_window = (
            check_rotary_options(
                rotary, rotary_base, rotary_scaling, rotary_trained_window, head_dim
            )
        )
        self.num_registers = check_num_registers(num_registers, self.use_cache)
        self.compressed_memory = None
        if self.compressed_memory_size:
            self.compressed_memory = CompressedMemory(
                self.compressed_memory_size,
                self.compression_rate,
                self.window_length,
                num_heads,
                head_dim,
                normalize_keys,
            )
        self.rotary_positions = None
        if self.rotary:
            self.rotary_positions = RotaryPositions(
                self.rotary,
                head_dim,
                self.window_length,
                self.rotary_base,
                self.rotary_scaling,
                self.rotary_trained_window,
            )
        self.registers = None
        if self.num_registers:
            self.registers = AttentionRegisters(
                self.num_registers, num_heads, head_dim, normalize_keys
            )

    def get_config(self):
        """The window's options, as the owning layer's config holds them."""
        return {
            "window_length": self.window_length,
            "use_cache": self.use_cache,
            "include_self": self.include_self,
            "compressed_memory_size": self.compressed_memory_size,
            "compression_rate": self.compression_rate,
            "rotary": self.rotary,
            "rotary_base": self.rotary_base,
            "rotary_scaling": self.rotary_scaling,
            "rotary_trained_window": self.rotary_trained_window,
            "num_registers": self.num_registers,
        }

    def build(self, layer):
        """Creates the window's weights (the registers) on `layer`.

        Returns:
            `{attribute name: variable}` of what it created, for the layer to
            keep under those names; empty without registers.
        """
        if self.registers is None:
            return {}
        keys, values = self.registers.build(layer)
        return {"register_keys": keys, "register_values": values}

    def state_shapes(self, batch_size):
        """`{name: (shape, dtype)}` of the cache and the compressed memory."""
        if not self.use_cache:
            return {}
        cache_shape = (batch_size, self.window_length, self.num_heads, self.head_dim)
        shapes = {
            "keys": (cache_shape, "float32"),
            "values": (cache_shape, "float32"),
            "valid": ((batch_size,), "int32"),
        }
        if self.compressed_memory is not None:
            shapes.update(self.compressed_memory.state_shapes(batch_size))
        return shapes

    def decoding_window_length(self):
        """`W` with the cache: a window's call then reads all its tokens see; else None.

        Without the cache a segment's first window sees nothing before it
        while later windows see the previous one: only whole segments are
        exact (see `MemoryLayer.decoding_window_length`). The same holds
        with rotary positions next to registers or a compressed memory:
        their keys carry no position, so a query's logit to them depends on
        the query's position in its segment, not only on distances.
        """
        unpositioned = self.registers is not None or self.compressed_memory is not None
        if not self.use_cache or (self.rotary_positions is not None and unpositioned):
            return None
        return self.window_length

    def segment_state_names(self):
        """The compressed memory's entries: compressed once per segment, at its end."""
        if self.compressed_memory is None:
            return ()
        return tuple(self.compressed_memory.state_shapes(None))

    def step_buffers(self, state, batch_size):
        """Keys and values of `[previous window, current window]` for one-token steps.

        The previous window starts as the cache of `state` (zeros without
        one); the current window fills as the tokens come (`step`). None
        where a step would not be exact: rotary queries next to position-free
        registers or compressed entries (see `decoding_window_length`).
        """
        if self.rotary_positions is not None and (
            self.registers is not None or self.compressed_memory is not None
        ):
            return None
        shape = (batch_size, self.window_length, self.num_heads, self.head_dim)
        empty = ops.zeros(shape, "float32")
        previous = (state["keys"], state["values"]) if self.use_cache else (empty, empty)
        return {
            "keys": ops.concatenate([ops.cast(previous[0], "float32"), empty], axis=1),
            "values": ops.concatenate([ops.cast(previous[1], "float32"), empty], axis=1),
        }

    def step(self, query, key, value, buffers, state, position, previous_valid, **scores):
        """One token's attention; what `__call__` gives that token, from the buffers.

        Args:
            query: `(batch, 1, heads, head_dim)`, scaled or normalised.
            key: like `query`; written into the buffers at `position`.
            value: like `query`.
            buffers: the dict of `step_buffers`.
            state: the layer's state (the compressed memory is read from it).
            position: int32 scalar tensor: the token's place in its window.
            previous_valid: `(previous_in_document, previous_in_segment)`,
                bool scalars: whether the cache (carried across segments)
                and the previous window of the segment (local attention) exist.
            **scores: `position_bias` (a `RelativePositionBias` or None) and
                `logit_scale`, as in `__call__`.

        Returns:
            `(outputs (batch, 1, heads, head_dim), new buffers)`.
        """
        w = self.window_length
        start = (0, w + ops.cast(position, "int32"), 0, 0)
        buffers = {
            "keys": ops.slice_update(buffers["keys"], start, ops.cast(key, "float32")),
            "values": ops.slice_update(buffers["values"], start, ops.cast(value, "float32")),
        }
        batch = ops.shape(query)[0]
        seen = previous_valid[0] if self.use_cache else previous_valid[1]
        memory = {}
        if self.compressed_memory is not None:
            memory = self.compressed_memory.read(state, ops.ones((batch,), "bool"))
        if self.registers is not None:
            memory = self.registers.prepend(memory, batch)
        keys = buffers["keys"]
        if self.rotary_positions is not None:
            # A traced position: rotate the query at every place of the window, keep its own.
            places = ops.repeat(query, w, axis=1)
            query = ops.take(
                self.rotary_positions(places, np.arange(w)), ops.reshape(position, (1,)), axis=1
            )
            keys = self.rotary_positions(keys, np.arange(-w, w))
        bias = scores.get("position_bias")
        outputs = window_step_attention(
            query,
            ops.cast(keys, query.dtype),
            ops.cast(buffers["values"], query.dtype),
            position,
            window_length=w,
            previous_valid=ops.broadcast_to(ops.cast(seen, "bool"), (batch,)),
            position_bias=None if bias is None else _bias_row(bias, w, position),
            logit_scale=scores.get("logit_scale"),
            include_self=self.include_self,
            **memory,
        )
        return outputs, buffers

    def check_segment_length(self, layer_name, length):
        """Raises ValueError unless `length` (None: unknown) is a multiple of the window."""
        if length is not None and length % self.window_length:
            raise ValueError(
                f"Layer '{layer_name}': the segment length of `x` ({length}) must be a "
                f"multiple of `window_length` ({self.window_length})."
            )

    def read_cache(self, state, reset):
        """The cache a segment reads: rows that `reset` see it zeroed and invalid.

        Returns:
            A dict of `cache_keys`, `cache_values` and bool `cache_valid`;
            empty without `use_cache`.
        """
        if not self.use_cache:
            return {}
        keep = ops.logical_not(reset)
        return {
            "cache_keys": zero_rows(state["keys"], keep),
            "cache_values": zero_rows(state["values"], keep),
            "cache_valid": ops.logical_and(keep, state["valid"] > 0),
        }

    def __call__(self, queries, keys, values, state, reset, position_bias=None, logit_scale=None):
        cache, compressed = self.read_cache(state, reset), {}
        if self.compressed_memory is not None:
            compressed = self.compressed_memory.read(state, ops.logical_not(reset))
        memory = compressed
        if self.registers is not None:
            memory = self.registers.prepend(compressed, ops.shape(queries)[0])
        attend = {**cache, **memory}
        w = self.window_length
        if self.rotary_positions is not None:
            length = queries.shape[1]
            queries = self.rotary_positions(queries, np.arange(length))
            rotated_keys = self.rotary_positions(keys, np.arange(length))
            if self.use_cache:
                # The cache keeps unrotated keys: they sit at -W..-1 of this segment.
                attend["cache_keys"] = self.rotary_positions(attend["cache_keys"], np.arange(-w, 0))
        else:
            rotated_keys = keys
        outputs = sliding_window_attention(
            queries,
            rotated_keys,
            values,
            window_length=w,
            position_bias=None if position_bias is None else position_bias.compute_bias(w, 2 * w),
            logit_scale=logit_scale,
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
        if self.compressed_memory is not None:
            new_state.update(self.compressed_memory.compress(keys, values, cache, compressed))
        return outputs, new_state


def _bias_row(position_bias, window_length, position):
    """`position_bias.compute_bias(W, 2W)[:, position]`, gathering one row only."""
    buckets = position_bias.buckets(window_length, 2 * window_length)
    row = ops.take(ops.convert_to_tensor(buckets), ops.cast(position, "int32"), axis=0)
    return ops.take(position_bias.table, row, axis=1)
