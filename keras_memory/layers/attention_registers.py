"""Attention registers: learned key/value pairs every query of a window sees."""

from keras import ops

from keras_memory.ops.checks import check_int
from keras_memory.ops.normalization import l2_normalize


def check_num_registers(num_registers, use_cache):
    """Returns `num_registers` checked, or raises ValueError naming it."""
    num_registers = check_int("num_registers", num_registers, 0)
    if num_registers and not use_cache:
        raise ValueError(
            "`num_registers` needs the XL cache (`use_cache=True`): registers are "
            "the LSW Transformer's sinks next to its key/value cache."
        )
    return num_registers


class AttentionRegisters:
    """Learned keys and values that every query attends to (LSWT's attention sinks).

    A piece the windowed attention layers compose (see `WindowedAttention`):
    `num_registers` key/value pairs, weights of the layer that owns them,
    seen by every query without position, in the same softmax as its window
    and memory. The first token of a document, with nothing before it, has
    somewhere to put its attention.

    Args:
        num_registers: int. Number of key/value pairs.
        num_heads: int. Heads of the keys and values.
        head_dim: int. Size of each head.
        normalize_keys: bool. L2-normalise the keys, as the layer's own.

    Example:
    ```python
    registers = AttentionRegisters(4, num_heads=2, head_dim=16, normalize_keys=True)
    layer.register_keys, layer.register_values = registers.build(layer)
    memory = registers.prepend({}, batch=2)  # memory_keys (2, 4, 2, 16), ...
    ```

    References:
        - [Darcet et al., 2023 (registers)](https://arxiv.org/abs/2309.16588)
        - [Xiao et al., 2023 (attention sinks)](https://arxiv.org/abs/2309.17453)
    """

    def __init__(self, num_registers, num_heads, head_dim, normalize_keys):
        self.num_registers = num_registers
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.normalize_keys = normalize_keys
        self.keys = self.values = None

    def build(self, layer):
        """Creates the keys and values as weights of `layer`; returns `(keys, values)`."""
        shape = (self.num_registers, self.num_heads, self.head_dim)
        self.keys = layer.add_weight(name="register_keys", shape=shape, initializer="random_normal")
        self.values = layer.add_weight(
            name="register_values", shape=shape, initializer="random_normal"
        )
        return self.keys, self.values

    def prepend(self, memory, batch):
        """The registers, then `memory` (a dict of `memory_keys`, `memory_values`,
        `memory_valid`, possibly empty), for `sliding_window_attention`."""
        keys = ops.cast(self.keys, "float32")
        if self.normalize_keys:
            keys = l2_normalize(keys)
        shape = (batch, self.num_registers, self.num_heads, self.head_dim)
        registers = {
            "memory_keys": ops.broadcast_to(keys[None], shape),
            "memory_values": ops.broadcast_to(ops.cast(self.values, "float32")[None], shape),
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
