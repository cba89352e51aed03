"""Smeared keys: each key mixed with the previous token's, so one layer can copy."""

from keras import ops

from keras_memory.ops.normalization import l2_normalize


class SmearedKeys:
    """Mixes each head's key with the previous token's key, by a learned weight.

    `k'_j = (1 - a) k_j + a k_{j-1}` with `a = sigmoid(s)`, one `s` per head
    (initialised to 0, so `a = 1/2`), renormalised when the layer normalises
    its keys. A query that matches the previous token of a key then selects
    the token that followed it: the lookup of an induction head ("what came
    after this the last time?") in one layer, where it otherwise takes two
    layers and many thousand steps to form. A memory that stores these keys
    can copy what followed a context seen long ago.

    The previous key carries across calls in the state (`smear_key`,
    `(batch, heads, head_dim)`), so a document gives the same keys however it
    is cut into segments or windows; a row with `reset=True` starts with a
    zero previous key.

    A helper, not a layer: the attention layer that owns it calls `build`
    (which creates the weight `key_smear` on that layer), adds
    `state_shapes` to its state and calls `__call__` on its keys.

    Args:
        num_heads: int. Heads of the owning layer's keys.
        head_dim: int. Size of each head.
        normalize: bool. Renormalise the mixed keys (the layer's
            `normalize_keys`).

    Example:
    ```python
    attention = keras_memory.layers.KNNAttention(
        num_heads=4, head_dim=16, window_length=32, memory_size=512, smear_keys=True
    )
    ```

    References:
        - [Olsson et al., 2022, In-context Learning and Induction Heads](https://arxiv.org/abs/2209.11895)
    """

    def __init__(self, num_heads, head_dim, normalize):
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.normalize = normalize
        self.weight = None

    def build(self, layer):
        """Creates `key_smear` `(heads,)` on `layer` and returns it."""
        self.weight = layer.add_weight(
            name="key_smear", shape=(self.num_heads,), initializer="zeros"
        )
        return self.weight

    def state_shapes(self, batch_size):
        """`{"smear_key": ((batch, heads, head_dim), "float32")}`."""
        return {"smear_key": ((batch_size, self.num_heads, self.head_dim), "float32")}

    def __call__(self, keys, state, reset):
        """Returns `(smeared keys, new smear_key)` for keys `(batch, S, heads, head_dim)`."""
        previous = ops.cast(state["smear_key"], keys.dtype)
        if reset is not None:
            keep = ops.cast(ops.logical_not(ops.convert_to_tensor(reset)), keys.dtype)
            previous = previous * ops.reshape(keep, (-1, 1, 1))
        shifted = ops.concatenate([previous[:, None], keys[:, :-1]], axis=1)
        share = ops.cast(ops.reshape(ops.sigmoid(self.weight), (1, 1, -1, 1)), keys.dtype)
        smeared = (1 - share) * keys + share * shifted
        if self.normalize:
            smeared = l2_normalize(smeared)
        return smeared, ops.cast(keys[:, -1], "float32")
