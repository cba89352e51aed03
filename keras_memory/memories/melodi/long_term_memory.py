"""Melodi's long-term memory: a FIFO of compressed tokens every query also reads."""

import keras
from keras import ops

from keras_memory.layers.memory_layer import zero_rows
from keras_memory.layers.token_mixing import TokenMixing
from keras_memory.ops.attention import dense_attention


class LongTermMemory:
    """The long-term memory of a Melodi layer.

    A piece `MelodiLayer` composes when `long_term_memory_size > 0`. The
    memory holds `size` token embeddings, first in, first out; their keys
    and values come from the layer's current projections. Each window's
    queries attend to it without mask or position bias, and the result is
    mixed with the window's own attention per (head, dim) by a learned gate
    `a = sigmoid(g)`: `a * self + (1 - a) * long`. After the window, token
    mixing (`long_term_mixing`) of its updated context and summary tokens
    gives the `increment` tokens pushed in, the oldest falling out.

    The state it adds is `long_memory` `(batch, size, hidden_dim)` and
    `long_valid` `(batch, size)` int32. Its weights belong to the layer
    that owns it (`build` creates them there).

    Args:
        size: int. Memory slots `L`.
        increment: int. Tokens pushed per window.
        num_heads: int. Attention heads.
        head_dim: int. Size of each head.

    Example:
    ```python
    memory = LongTermMemory(256, increment=32, num_heads=4, head_dim=16)
    for name, part in memory.build(layer, window_shape, summary_shape, 1e-6).items():
        setattr(layer, name, part)
    ```

    References:
        - [Chen et al., 2024 (Melodi), Sec. 3.3](https://arxiv.org/abs/2410.03156)
        - [meliad, memory2/melodi_layer.py](https://github.com/google-research/meliad)
    """

    def __init__(self, size, increment, num_heads, head_dim):
        self.size = size
        self.increment = increment
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.mixing = self.gate = None

    def build(self, layer, window_shape, summary_shape, epsilon):
        """Creates the token mixing and the gate on `layer`; returns them by attribute name."""
        self.mixing = TokenMixing(
            self.increment,
            use_norm_and_residual=False,
            name="long_term_mixing",
            epsilon=epsilon,
            dtype=layer.dtype_policy,
        )
        self.mixing.build(window_shape, summary_shape)
        # Starts near 0.5: both attentions count from the first step.
        self.gate = layer.add_weight(
            name="long_term_gate",
            shape=(self.num_heads, self.head_dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.25),
        )
        return {"long_term_mixing": self.mixing, "long_term_gate": self.gate}

    def state_shapes(self, batch_size, hidden_dim):
        """`{name: (shape, dtype)}` of the entries it adds to the layer's state."""
        return {
            "long_memory": ((batch_size, self.size, hidden_dim), "float32"),
            "long_valid": ((batch_size, self.size), "int32"),
        }

    def read(self, state, keep, kvq):
        """The memory a segment starts from; rows not in `keep` read it empty.

        Args:
            state: dict. The layer's state.
            keep: bool tensor `(batch,)`.
            kvq: callable. The layer's keys, values and queries of embeddings.

        Returns:
            A dict of the embeddings (`memory`), their `keys` and `values`,
            bool `valid` and the mixing `gate`: what `recall` and `write` use.
        """
        memory = zero_rows(state["long_memory"], keep)
        keys, values, _ = kvq(memory)
        return {
            "memory": memory,
            "keys": keys,
            "values": values,
            "valid": ops.logical_and(keep[:, None], state["long_valid"] > 0),
            "gate": ops.sigmoid(ops.cast(self.gate, "float32"))[None, None],
        }

    def recall(self, attended, queries, scale, memory):
        """Mixes the window's attention `attended` with the queries' attention over the memory."""
        recalled = dense_attention(
            queries, memory["keys"], memory["values"], scale, mask=memory["valid"][:, None, None, :]
        )
        return attended * memory["gate"] + recalled * (1.0 - memory["gate"])

    def write(self, memory, context, summary, kvq):
        """The memory after a window: the mixed tokens of its updated `context` and `summary` in."""
        added = self.mixing(context, summary)
        added_keys, added_values, _ = kvq(added)
        batch, increment = ops.shape(added)[0], self.increment
        return {
            **memory,
            "memory": _push(memory["memory"], ops.cast(added, "float32"), increment),
            "keys": _push(memory["keys"], added_keys, increment),
            "values": _push(memory["values"], added_values, increment),
            "valid": _push(memory["valid"], ops.ones((batch, increment), "bool"), increment),
        }

    def state(self, memory):
        """The layer's state entries from what `write` returned last."""
        return {"long_memory": memory["memory"], "long_valid": ops.cast(memory["valid"], "int32")}


def _push(memory, new, size):
    """First in, first out: drops the `size` oldest entries and appends `new`."""
    return ops.concatenate([memory[:, size:], ops.cast(new, memory.dtype)], axis=1)
