"""The Compressive Transformer's memory: what leaves the window, mean-pooled."""

from keras import ops

from keras_memory.layers.memory_layer import zero_rows
from keras_memory.ops.checks import check_int
from keras_memory.ops.normalization import l2_normalize


def check_compression_options(compressed_memory_size, compression_rate, window_length, use_cache):
    """Returns `(compressed_memory_size, compression_rate)` checked, or raises ValueError.

    The rate is checked only with a memory: without one it is kept as given.
    """
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
    return compressed_memory_size, compression_rate


class CompressedMemory:
    """A first-in first-out memory of mean-pooled keys and values (Compressive Transformer).

    A piece the windowed attention layers compose (see `WindowedAttention`).
    At each segment's end the tokens that leave the local view (the old
    cache and every window but the last) are mean-pooled over `rate`
    consecutive tokens (keys re-normalised with `normalize_keys`) and pushed
    into a memory of `size` entries, the oldest falling out. Every query
    attends to it in the same softmax as its window, without position.

    The state it adds is `compressed_keys`, `compressed_values` `(batch,
    size, heads, head_dim)` and `compressed_valid` `(batch, size)` int32.

    Args:
        size: int. Entries of the memory.
        rate: int. Tokens per entry; divides the window and the segment.
        window_length: int. The window `W`.
        num_heads: int. Heads of the keys and values.
        head_dim: int. Size of each head.
        normalize_keys: bool. Re-normalise the pooled keys.

    Example:
    ```python
    memory = CompressedMemory(16, rate=4, window_length=32, num_heads=2, head_dim=8,
                              normalize_keys=True)
    memory.state_shapes(2)["compressed_keys"]  # ((2, 16, 2, 8), "float32")
    ```

    References:
        - [Rae et al., 2020](https://arxiv.org/abs/1911.05507)
    """

    def __init__(self, size, rate, window_length, num_heads, head_dim, normalize_keys):
        self.size = size
        self.rate = rate
        self.window_length = window_length
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.normalize_keys = normalize_keys

    def state_shapes(self, batch_size):
        """`{name: (shape, dtype)}` of the entries it adds to the layer's state."""
        shape = (batch_size, self.size, self.num_heads, self.head_dim)
        return {
            "compressed_keys": (shape, "float32"),
            "compressed_values": (shape, "float32"),
            "compressed_valid": ((batch_size, self.size), "int32"),
        }

    def read(self, state, keep):
        """The memory a segment attends to: rows not in `keep` read it empty.

        Returns:
            A dict of `memory_keys`, `memory_values` and bool `memory_valid`.
        """
        return {
            "memory_keys": zero_rows(state["compressed_keys"], keep),
            "memory_values": zero_rows(state["compressed_values"], keep),
            "memory_valid": ops.logical_and(keep[:, None], state["compressed_valid"] > 0),
        }

    def compress(self, keys, values, cache, memory):
        """The memory's state after a segment.

        Args:
            keys: tensor `(batch, S, heads, head_dim)`. The segment's keys.
            values: tensor like `keys`.
            cache: dict of the cache the segment read (`cache_keys`,
                `cache_values`, `cache_valid`), as `WindowedAttention` reads it.
            memory: dict as `read` returns it.

        Returns:
            A dict of the state entries of `state_shapes`.
        """
        w, rate = self.window_length, self.rate
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
        size = self.size

        def push(old, new):
            return ops.concatenate([old, new], axis=1)[:, -size:]

        return {
            "compressed_keys": push(memory["memory_keys"], pooled_keys),
            "compressed_values": push(memory["memory_values"], pool(leaving_values)),
            "compressed_valid": ops.cast(
                push(memory["memory_valid"], leaving_valid[:, ::rate]), "int32"
            ),
        }
