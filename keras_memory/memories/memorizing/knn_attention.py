"""kNN-augmented attention: local attention gated with a large external memory."""

import keras
from keras import ops

from keras_memory.backend.scann_index import check_scann, memory_index
from keras_memory.layers.attention_heads import AttentionHeads, accept_legacy_options
from keras_memory.layers.relative_position_bias import check_bucket_options, layer_position_bias
from keras_memory.layers.smeared_keys import SmearedKeys
from keras_memory.layers.windowed_attention import WindowedAttention
from keras_memory.memories.memorizing.host_placement import HostPlacement
from keras_memory.memories.memorizing.memory_readout import MemoryReadout
from keras_memory.ops.attention import MASKED_LOGIT
from keras_memory.ops.checks import check_bool, check_int
from keras_memory.ops.knn import gather_memory, retrieve_top_k
from keras_memory.ops.query_groups import fold_query_groups, unfold_query_groups
from keras_memory.ops.retrieval_methods import MEMORY_PLACEMENTS, RETRIEVAL_METHODS
from keras_memory.ops.ring_buffer import (
    check_segment_fits,
    forget_rows,
    memory_state_shapes,
    write_segment,
)


@keras.saving.register_keras_serializable(package="keras_memory")
class KNNAttention(HostPlacement, MemoryReadout, AttentionHeads):
    """Memorizing Transformer attention: sliding window + XL cache + kNN memory.

    Each head attends twice: locally (causal sliding window over the segment
    with the Transformer-XL cache, no position bias, as in meliad's memory
    layer) and to the `num_neighbors` entries of an external memory whose
    keys score highest against its query (one softmax over those `k`). The
    two results are mixed per head by a learned gate `g = sigmoid(b)`, `b`
    initialised to 0 (so `g = 0.5`): `y = (1 - g) * local + g * memory`,
    before the output projection (`keras_memory.memories.memorizing.
    memory_readout`; two options change the gate's start and the memory's
    logit scale).

    The memory holds, per batch row and head, the (normalised) keys and the
    values of the last `memory_size` tokens of the document, in a ring
    buffer. A segment first retrieves, then writes its own keys, so queries
    only see previous segments (the local attention covers the current
    one); entries are written without gradient, and a row with `reset=True`
    forgets its memory before retrieving. `memory_size` must be a multiple
    of the segment length, so a segment is written as one contiguous block.
    Retrieval is exact top-k on device by default, chunked over the memory;
    see `retrieval` for the approximate methods.

    With `memory_placement="host"` the memory lives in host RAM, searched by
    ScaNN, so it can outgrow the device (`HostPlacement`). With grouped
    queries (`num_key_value_heads`) it holds the key heads only; each query
    head finds its own neighbours in its key head's memory.

    The local attention is `WindowedAttention`'s, with its options (cache,
    compressed memory, rotary positions, registers; the LSWT presets use the
    last two). The state adds `memory_keys`, `memory_values` `(batch,
    memory_size, heads, head_dim)`, `memory_valid` `(batch, memory_size)`
    and the shared write position `memory_pointer` to the window's cache
    (`heads`: the key heads).

    Args:
        num_heads: int. Number of attention heads.
        head_dim: int. Size of each head.
        window_length: int. Local attention window `W`.
        memory_size: int. Entries per (row, head). Defaults to 8192.
        num_neighbors: int. `k`, entries retrieved per query. Defaults to 32.
        num_key_value_heads: int or None. See `AttentionHeads`.
        retrieval: str. How the `k` entries are found: `"exact"` (top-k on
            device, chunked), `"bucketed"` (meliad's strided argmax, one pass,
            approximate), `"approx"` (`jax.lax.approx_max_k` /
            `tf.math.approx_max_k`; exact on torch) or `"scann"` (a ScaNN index
            per (row, head) on the host, faster than exact search on CPU at
            large memories; not on TPU cores). The layer's host indexes follow
            its memory by dynamic updates (`keras_memory.backend.scann_index`).
            Defaults to `"exact"` on the device and `"scann"` (the only
            method) on the host.
        memory_placement: str. `"device"` (a ring buffer in the state) or
            `"host"` (host RAM, searched by ScaNN; see above). Defaults to
            `"device"`.
        use_cache: bool. Carry the XL cache. Defaults to True.
        include_self: bool. See `XLAttention`.
        normalize_keys: bool. See `XLAttention`; the memory holds normalised
            keys when True.
        chunk_size: int. Memory entries scored at a time. Defaults to 8192.
        stateful: bool. Keep cache and memory in variables for `model.fit`.
        kernel_initializer: initializer of the projections.
        compressed_memory_size: int. See `XLAttention`. Defaults to 0.
        compression_rate: int. See `XLAttention`. Defaults to 4.
        rotary: str or None. See `XLAttention`. Defaults to None.
        rotary_base: float. See `XLAttention`. Defaults to 10000.
        rotary_scaling: float. See `XLAttention`. Defaults to 1.
        rotary_trained_window: int or None. See `XLAttention`.
        num_registers: int. See `XLAttention`. Defaults to 0.
        use_position_bias: bool. A T5 position bias in the local attention;
            meliad's memory layer has none. Defaults to False.
        num_position_buckets: int. See `XLAttention`. Defaults to 32.
        max_position_distance: int. See `XLAttention`. Defaults to 128.
        smear_keys: bool. Mix each key with the previous token's
            (`keras_memory.layers.smeared_keys`), locally and in the memory,
            so one layer can copy what followed a context. Not in the paper.
            Defaults to False.
        memory_gate_bias: float. The gate's initial logit: 0 (the paper)
            starts at one half, negative values with the memory mostly
            shut. Defaults to 0.
        memory_scale: float or None. A learned per-head scale of the
            memory's logits of its own, initialised to this value; None
            (the paper) shares the local attention's (with `normalize_keys`).
            Defaults to None.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: float tensor `(batch, S, hidden_dim)`; `memory_size % S == 0`.
        state: dict or None (functional form only).
        reset: bool tensor `(batch,)` or None.
        training: bool or None.

    Returns:
        Functional form: `(y, new_state)`; stateful form: `y`.

    Example:
    ```python
    attention = keras_memory.layers.KNNAttention(
        num_heads=4, head_dim=16, window_length=32, memory_size=1024, num_neighbors=8
    )
    y, state = attention(np.random.rand(2, 128, 64).astype("float32"))
    ```

    References:
        - [Wu et al., 2022](https://arxiv.org/abs/2203.08913)
        - [meliad, memory/memory_layer.py](https://github.com/google-research/meliad)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        window_length,
        memory_size=8192,
        num_neighbors=32,
        retrieval=None,
        use_cache=True,
        include_self=False,
        normalize_keys=True,
        chunk_size=8192,
        stateful=False,
        kernel_initializer="glorot_uniform",
        compressed_memory_size=0,
        compression_rate=4,
        rotary=None,
        rotary_base=10000.0,
        rotary_scaling=1.0,
        rotary_trained_window=None,
        num_registers=0,
        memory_placement="device",
        use_position_bias=False,
        num_position_buckets=32,
        max_position_distance=128,
        smear_keys=False,
        memory_gate_bias=0.0,
        memory_scale=None,
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
        # The local attention: meliad's memory layer has no position bias.
        self.use_position_bias = check_bool("use_position_bias", use_position_bias)
        self.num_position_buckets, self.max_position_distance = check_bucket_options(
            num_position_buckets,
            max_position_distance,
            names=("num_position_buckets", "max_position_distance"),
        )
        self.smear_keys = check_bool("smear_keys", smear_keys)
        self.init_readout(memory_gate_bias, memory_scale)
        self.smearing = (
            SmearedKeys(self.key_value_heads, self.head_dim, self.normalize_keys)
            if self.smear_keys
            else None
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
        memory_size = check_int("memory_size", memory_size)
        num_neighbors = check_int("num_neighbors", num_neighbors)
        chunk_size = check_int("chunk_size", chunk_size)
        if memory_placement not in MEMORY_PLACEMENTS:
            raise ValueError(
                f"`memory_placement` must be one of {MEMORY_PLACEMENTS}; got {memory_placement!r}."
            )
        on_host = memory_placement == "host"
        if retrieval is None:
            retrieval = "scann" if on_host else "exact"
        if on_host and retrieval != "scann":
            raise ValueError(
                "memory_placement='host' searches the memory with ScaNN on the host: `retrieval` "
                f"must be 'scann' (or None); got {retrieval!r}."
            )
        if retrieval not in RETRIEVAL_METHODS:
            raise ValueError(f"`retrieval` must be one of {RETRIEVAL_METHODS}; got {retrieval!r}.")
        if retrieval == "bucketed" and memory_size % num_neighbors:
            raise ValueError(
                f"retrieval='bucketed' needs `memory_size` ({memory_size}) to be a multiple "
                f"of `num_neighbors` ({num_neighbors})."
            )
        if num_neighbors > memory_size:
            raise ValueError(
                f"`num_neighbors` ({num_neighbors}) must be <= `memory_size` ({memory_size})."
            )
        if retrieval == "scann":
            check_scann()  # fail at construction, not at the first lookup
        self.memory_size = memory_size
        self.num_neighbors = num_neighbors
        self.retrieval = retrieval
        self.chunk_size = chunk_size
        self.memory_placement = memory_placement
        self.init_host_memory(on_host)
        if retrieval == "scann" and keras.backend.backend() == "tensorflow":
            # The host call is a tf.numpy_function, which XLA cannot compile:
            # `compile(jit_compile=True)` then proceeds without XLA, and says so.
            self.supports_jit = False

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        # Creation order is the saved files' order of the layer's own
        # variables: memory gate, attention scale, registers, then the
        # options' weights in the order they were added.
        self.build_gate()
        self.build_heads(input_shape)
        for name, weight in self.window.build(self).items():
            setattr(self, name, weight)
        self.position_bias = layer_position_bias(self)
        if self.smearing is not None:
            self.key_smear = self.smearing.build(self)
        self.build_memory_scale()
        self.build_state(input_shape[0])
        self.built = True

    def state_shapes(self, batch_size):
        if self.host_memory is not None:
            # The entries live on the host; the device keeps where to write
            # next and the step the host memory checks it follows.
            memory = {"memory_pointer": ((), "int32"), "memory_step": ((), "int32")}
        else:
            sizes = (self.memory_size, self.key_value_heads, self.head_dim)
            memory = memory_state_shapes(batch_size, *sizes)
        if self.smearing is not None:
            memory.update(self.smearing.state_shapes(batch_size))
        return {**self.window.state_shapes(batch_size), **memory}

    def segment_state_names(self):
        # The memory is written after the segment that searched it.
        memory = set(self.state_shapes(None)) - set(self.window.state_shapes(None))
        memory.discard("smear_key")  # carried call to call, like the cache
        return (*self.window.segment_state_names(), *sorted(memory))

    def check_segment_length(self, length):
        self.window.check_segment_length(self.name, length)
        check_segment_fits(self.name, self.memory_size, length)

    def call_with_state(self, x, state, reset, training):
        self.check_segment_length(x.shape[1])
        queries, keys, values = self.project_qkv(x)
        if self.smearing is not None:
            keys, smear_key = self.smearing(keys, state, reset)
        local, new_state = self.window(
            queries,
            keys,
            values,
            state,
            reset,
            position_bias=self.position_bias,
            logit_scale=self.logit_scale(self.attention_scale),
        )
        if self.smearing is not None:
            new_state["smear_key"] = smear_key
        if self.host_memory is not None:
            return self.call_host_memory(queries, keys, values, local, state, new_state, reset)

        memory_keys, memory_values, memory_valid = forget_rows(
            state["memory_keys"], state["memory_values"], state["memory_valid"], reset
        )
        remembered = self._memory_attention(queries, memory_keys, memory_values, memory_valid)
        outputs = self._gated(local, remembered)

        written = write_segment(
            memory_keys, memory_values, memory_valid, state["memory_pointer"], keys, values
        )
        new_state.update(
            zip(("memory_keys", "memory_values", "memory_valid", "memory_pointer"), written)
        )
        return self.project_output(outputs), new_state

    def step_buffers(self, state, batch_size, segment_length):
        # The device ring's ScaNN index is searched by segment: that layer
        # decodes by window re-reads. A host memory is searched without a
        # write by a step (a window re-read would write it again).
        if self.retrieval == "scann" and self.host_memory is None:
            return None
        if self.smearing is not None:
            # A token's key needs the previous token's before smearing, which
            # the buffers (holding smeared keys) lack: decode by window re-reads,
            # which carry it in the state.
            return None
        return self.window.step_buffers(state, batch_size)

    def decode_step(self, x, position, buffers, state, previous_valid):
        """One token's output from the step buffers and the memory of the segment's start."""
        queries, keys, values = self.project_qkv(x)
        local, buffers = self.window.step(
            queries,
            keys,
            values,
            buffers,
            state,
            position,
            previous_valid,
            position_bias=self.position_bias,
            logit_scale=self.logit_scale(self.attention_scale),
        )
        if self.host_memory is not None:
            remembered = self.search_host_memory(queries, state)
        else:
            remembered = self._memory_attention(
                queries, state["memory_keys"], state["memory_values"], state["memory_valid"]
            )
        return self.project_output(self._gated(local, remembered)), buffers

    def _memory_attention(self, queries, memory_keys, memory_values, memory_valid):
        """Softmax over the `k` best memory entries of each query: `(batch, S, heads, dim)`."""
        # The search is not differentiated: the gradient of its scores would
        # flow through every memory entry's score (one more memory-sized
        # product per step), yet only the `k` chosen ones reach the output.
        # Their scores are recomputed below, with the gradient to the queries.
        search = fold_query_groups(ops.convert_to_tensor(queries), self.key_value_heads)
        scores, indices = retrieve_top_k(
            self.retrieval,
            ops.stop_gradient(search),
            memory_keys,
            memory_valid,
            self.num_neighbors,
            self.chunk_size,
            scann_index=memory_index(self) if self.retrieval == "scann" else None,
        )
        found = ops.stop_gradient(scores) > MASKED_LOGIT / 2
        keys = gather_memory(memory_keys, indices)  # (batch, key heads, S * R, k, dim)
        values = gather_memory(memory_values, indices)
        found, keys, values = (
            unfold_query_groups(t, self.num_heads) for t in (found, keys, values)
        )
        return self._attend_retrieved(queries, keys, values, found)

    def get_config(self):
        config = super().get_config()
        config.update(self.window.get_config())
        config.update(
            {
                "memory_size": self.memory_size,
                "num_neighbors": self.num_neighbors,
                "retrieval": self.retrieval,
                "chunk_size": self.chunk_size,
                "memory_placement": self.memory_placement,
                "use_position_bias": self.use_position_bias,
                "num_position_buckets": self.num_position_buckets,
                "max_position_distance": self.max_position_distance,
                "smear_keys": self.smear_keys,
                **self.readout_config(),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Before the redesign the layer took (and saved) every XLAttention
        # argument; reading a recurrent state it refused.
        return super().from_config(
            accept_legacy_options(cls, config, {"read_recurrent_state": False})
        )
