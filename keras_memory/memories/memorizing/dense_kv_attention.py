"""Dense-KV memory attention: one softmax over the whole memory and the segment."""

import keras
import numpy as np
from keras import ops

from keras_memory.layers.attention_heads import AttentionHeads, accept_legacy_options
from keras_memory.ops.attention import MASKED_LOGIT, safe_softmax
from keras_memory.ops.checks import check_bool, check_int
from keras_memory.ops.query_groups import grouped_heads_einsum
from keras_memory.ops.ring_buffer import (
    check_segment_fits,
    forget_rows,
    memory_state_shapes,
    write_segment,
)

# Keys of configs saved before the redesign, at the only value they held.
LEGACY_OPTIONS = {
    "rotary": None,
    "rotary_base": 10000.0,
    "rotary_scaling": 1.0,
    "rotary_trained_window": None,
    "num_registers": 0,
    "read_recurrent_state": False,
}


@keras.saving.register_keras_serializable(package="keras_memory")
class DenseKVAttention(AttentionHeads):
    """The Memorizing Transformer's "dense KV" variant (meliad `memory2`).

    Instead of retrieving the top `k` entries, every query attends with one
    joint softmax over all `memory_size` stored (key, value) pairs (no mask,
    no position bias) and the keys of the current segment before it (causal;
    itself excluded unless `include_self`). The memory is the same per-row,
    per-head ring buffer as `KNNAttention`'s, written once per segment after
    reading, without gradient, and forgotten on `reset`. There is no XL
    cache: the memory covers the previous segments. Cost is O(S·(S + M)).

    Args:
        num_heads: int. Number of attention heads.
        head_dim: int. Size of each head.
        num_key_value_heads: int or None. Heads of the keys and values (and
            of every cache, memory and state of keys), dividing `num_heads`; 1
            is multi-query attention. None (the default): `num_heads`.
        memory_size: int. Entries per (row, head); a multiple of the segment
            length. Defaults to 32768 (meliad's default).
        include_self: bool. Let a token attend to its own key. Defaults to
            False.
        normalize_keys: bool. L2-normalise queries and keys with a learned
            per-head scale (see `AttentionHeads`). Defaults to True.
        stateful: bool. Keep the memory in variables for `model.fit`.
        kernel_initializer: initializer of the projections. Defaults to
            `"glorot_uniform"`.
        **kwargs: base layer keyword arguments.

    Call arguments:
        x: float tensor `(batch, S, hidden_dim)`.
        state: dict or None (functional form only).
        reset: bool tensor `(batch,)` or None.
        training: bool or None.

    Returns:
        Functional form: `(y, new_state)`; stateful form: `y`.

    Example:
    ```python
    attention = keras_memory.layers.DenseKVAttention(4, 16, memory_size=512)
    y, state = attention(np.random.rand(2, 128, 64).astype("float32"))
    ```

    References:
        - [Wu et al., 2022](https://arxiv.org/abs/2203.08913)
        - [meliad, memory2/dense_kv_memory.py](https://github.com/google-research/meliad)
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        memory_size=32768,
        include_self=False,
        normalize_keys=True,
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
        self.memory_size = check_int("memory_size", memory_size)
        self.include_self = check_bool("include_self", include_self)

    def build(self, input_shape):
        self._check_build_shape(input_shape)
        self.build_heads(input_shape)
        self.build_state(input_shape[0])
        self.built = True

    def state_shapes(self, batch_size):
        return memory_state_shapes(
            batch_size, self.memory_size, self.key_value_heads, self.head_dim
        )

    def check_segment_length(self, length):
        check_segment_fits(self.name, self.memory_size, length)

    def call_with_state(self, x, state, reset, training):
        length = x.shape[1]
        self.check_segment_length(length)
        queries, keys, values = self.project_qkv(x)
        memory_keys, memory_values, memory_valid = forget_rows(
            state["memory_keys"], state["memory_values"], state["memory_valid"], reset
        )
        scale = (
            # float32 like the logits it scales; autocast reads it as bfloat16.
            ops.reshape(ops.cast(ops.abs(self.attention_scale), "float32"), (1, -1, 1, 1))
            if self.normalize_keys
            else 1.0
        )
        memory_logits = grouped_heads_einsum(
            "bqhd,bmhd->bhqm", queries, ops.cast(memory_keys, queries.dtype), ops.einsum
        )
        memory_logits = ops.where(
            memory_valid[:, None, None, :],
            ops.cast(memory_logits, "float32") * scale,
            MASKED_LOGIT,
        )
        segment_logits = grouped_heads_einsum("bqhd,bkhd->bhqk", queries, keys, ops.einsum)
        causal = np.tril(np.ones((length, length), bool), k=0 if self.include_self else -1)
        segment_logits = ops.where(
            causal[None, None], ops.cast(segment_logits, "float32") * scale, MASKED_LOGIT
        )
        logits = ops.concatenate([memory_logits, segment_logits], axis=-1)
        mask = logits > MASKED_LOGIT / 2
        weights = safe_softmax(logits, mask)
        memory_weights = ops.cast(weights[..., : self.memory_size], values.dtype)
        segment_weights = ops.cast(weights[..., self.memory_size :], values.dtype)
        outputs = grouped_heads_einsum(
            "bhqm,bmhd->bqhd", memory_weights, ops.cast(memory_values, values.dtype), ops.einsum
        ) + grouped_heads_einsum("bhqk,bkhd->bqhd", segment_weights, values, ops.einsum)
        written = write_segment(
            memory_keys, memory_values, memory_valid, state["memory_pointer"], keys, values
        )
        new_state = dict(
            zip(("memory_keys", "memory_values", "memory_valid", "memory_pointer"), written)
        )
        return self.project_output(outputs), new_state

    def segment_state_names(self):
        # The memory is written after the segment that attended to it.
        return tuple(self.state_shapes(None))

    def step_buffers(self, state, batch_size, segment_length):
        """The keys and values of the segment so far, and how many tokens it holds."""
        shape = (batch_size, segment_length, self.key_value_heads, self.head_dim)
        return {
            "segment_keys": ops.zeros(shape, "float32"),
            "segment_values": ops.zeros(shape, "float32"),
            "segment_count": ops.zeros((), "int32"),
        }

    def next_window_buffers(self, buffers, state, previous_valid):
        # The segment's buffers run to the segment's end (the count wraps there).
        return buffers

    def decode_step(self, x, position, buffers, state, previous_valid):
        """One token over the memory of the segment's start and the segment so far."""
        queries, keys, values = self.project_qkv(x)
        count = buffers["segment_count"]
        start = (0, count, 0, 0)
        segment_keys = ops.slice_update(buffers["segment_keys"], start, ops.cast(keys, "float32"))
        segment_values = ops.slice_update(
            buffers["segment_values"], start, ops.cast(values, "float32")
        )
        scale = 1.0
        if self.normalize_keys:
            scale = ops.reshape(ops.cast(ops.abs(self.attention_scale), "float32"), (1, -1, 1, 1))
        memory_logits = grouped_heads_einsum(
            "bqhd,bmhd->bhqm", queries, ops.cast(state["memory_keys"], queries.dtype), ops.einsum
        )
        memory_logits = ops.where(
            ops.cast(state["memory_valid"], "bool")[:, None, None, :],
            ops.cast(memory_logits, "float32") * scale,
            MASKED_LOGIT,
        )
        segment_logits = grouped_heads_einsum(
            "bqhd,bkhd->bhqk", queries, ops.cast(segment_keys, queries.dtype), ops.einsum
        )
        places = ops.arange(segment_keys.shape[1], dtype="int32")
        seen = places <= count if self.include_self else places < count
        segment_logits = ops.where(
            seen[None, None, None, :], ops.cast(segment_logits, "float32") * scale, MASKED_LOGIT
        )
        logits = ops.concatenate([memory_logits, segment_logits], axis=-1)
        weights = safe_softmax(logits, logits > MASKED_LOGIT / 2)
        outputs = grouped_heads_einsum(
            "bhqm,bmhd->bqhd", weights[..., : self.memory_size], state["memory_values"], ops.einsum
        ) + grouped_heads_einsum(
            "bhqk,bkhd->bqhd", weights[..., self.memory_size :], segment_values, ops.einsum
        )
        buffers = {
            "segment_keys": segment_keys,
            "segment_values": segment_values,
            "segment_count": (count + 1) % segment_keys.shape[1],
        }
        return self.project_output(ops.cast(outputs, values.dtype)), buffers

    def get_config(self):
        config = super().get_config()
        config.update({"memory_size": self.memory_size, "include_self": self.include_self})
        return config

    @classmethod
    def from_config(cls, config):
        # Before the redesign the layer took every XLAttention argument and
        # switched most off; its saved configs hold these at the only values
        # it ever used (position-free over the segment and its memory).
        return super().from_config(accept_legacy_options(cls, config, LEGACY_OPTIONS))
