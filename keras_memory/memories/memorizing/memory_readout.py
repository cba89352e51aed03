"""The memory's read-out: one softmax over the retrieved entries, and the gate that mixes it in."""

import math

import keras
from keras import ops

from keras_memory.ops.attention import MASKED_LOGIT, safe_softmax
from keras_memory.ops.checks import check_number


class MemoryReadout:
    """What `KNNAttention` does with the `k` entries a query retrieved.

    Each query's scores against its retrieved keys go through one softmax,
    and the weighted values are mixed with the local attention's output by a
    per-head gate `g = sigmoid(memory_gate)`: `(1 - g) * local + g * memory`.

    In the paper (and by default) the gate starts at one half
    (`memory_gate_bias=0`) and the memory's logits share the local
    attention's learned scale. Two options change that, for small models
    that must learn to use the memory in few steps:

    - `memory_gate_bias`: the gate's initial logit. Negative values start
      with the memory mostly shut, so the mean of `k` unrelated neighbours
      does not blur every head from the first step.
    - `memory_scale`: the memory's softmax gets its own learned per-head
      scale, initialised to this value. With normalised keys a logit is a
      cosine times the scale; at the shared scale's start (1) the softmax
      over `k` neighbours is nearly flat, so the one right entry cannot
      stand out, while a sharp local attention is slow to learn. Without
      `normalize_keys` there is no shared scale (the queries come scaled by
      `1/sqrt(head_dim)`), and this one multiplies those logits.

    A mixin, not a layer: the layer calls `init_readout` in its constructor
    and `build_gate` / `build_memory_scale` in its `build`.
    """

    def init_readout(self, memory_gate_bias, memory_scale):
        """Checks and keeps the two options (ValueError naming a bad one)."""
        self.memory_gate_bias = _finite("memory_gate_bias", memory_gate_bias)
        self.memory_scale = None if memory_scale is None else _finite("memory_scale", memory_scale)
        if self.memory_scale is not None and self.memory_scale <= 0:
            raise ValueError(f"`memory_scale` must be a number > 0 or None; got {memory_scale!r}.")

    def build_gate(self):
        """Creates `memory_gate` `(heads,)`, the gate's logit, at `memory_gate_bias`."""
        self.memory_gate = self.add_weight(
            name="memory_gate",
            shape=(self.num_heads,),
            initializer=keras.initializers.Constant(self.memory_gate_bias),
        )

    def build_memory_scale(self):
        """Creates `memory_logit_scale` `(heads,)` when `memory_scale` is set."""
        self.memory_logit_scale = (
            None
            if self.memory_scale is None
            else self.add_weight(
                name="memory_logit_scale",
                shape=(self.num_heads,),
                initializer=keras.initializers.Constant(self.memory_scale),
            )
        )

    def _gated(self, local, remembered):
        gate = ops.cast(ops.reshape(ops.sigmoid(self.memory_gate), (1, 1, -1, 1)), local.dtype)
        return (1 - gate) * local + gate * ops.cast(remembered, local.dtype)

    def _attend_retrieved(self, queries, keys, values, found):
        """One softmax over each query's retrieved entries `(batch, heads, S, k, dim)`."""
        # In the memory's precision, as the search scored them: casting the
        # retrieved keys down would be a pass over the largest tensor here.
        scores = ops.einsum("bqhd,bhqkd->bhqk", ops.cast(queries, keys.dtype), keys)
        scores = ops.where(found, ops.cast(scores, "float32"), MASKED_LOGIT)
        if self.memory_logit_scale is not None:
            scale = self.memory_logit_scale
        elif self.normalize_keys:
            scale = self.attention_scale
        else:
            scale = None  # the queries came scaled by 1/sqrt(head_dim)
        if scale is not None:
            scale = ops.cast(ops.abs(scale), scores.dtype)  # autocast: bfloat16
            scores = scores * ops.reshape(scale, (1, -1, 1, 1))
        weights = safe_softmax(scores, found)  # (batch, heads, S, k)
        return ops.einsum("bhqk,bhqkd->bqhd", weights, values)

    def readout_config(self):
        """The options, as the layer's `get_config` adds them."""
        return {"memory_gate_bias": self.memory_gate_bias, "memory_scale": self.memory_scale}


def _finite(name, value):
    value = float(check_number(name, value))
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
    return value
