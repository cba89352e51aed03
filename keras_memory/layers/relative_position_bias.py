"""T5 relative position bias."""

import keras
import numpy as np
from keras import ops

from keras_memory.ops.checks import check_bool, check_initializer, check_int
from keras_memory.ops.position_bias import (
    relative_positions,
    t5_relative_position_buckets,
)


@keras.saving.register_keras_serializable(package="keras_memory")
class RelativePositionBias(keras.layers.Layer):
    """Learned T5 relative position bias, one `(heads, buckets)` table.

    Distances are bucketed as in T5 (exact below `num_buckets // 2`, then
    logarithmic up to `max_distance`), unidirectional by default, and the last
    queries are aligned with the last keys, as a Transformer-XL cache or a
    sliding window needs (T5 itself aligns the first ones).

    Args:
        num_heads: int. Number of attention heads.
        num_buckets: int. Number of distance buckets. Defaults to 32.
        max_distance: int. Distance from which all keys share the last
            bucket. Defaults to 128.
        bidirectional: bool. Whether keys after the query get buckets of
            their own. Defaults to False.
        initializer: initializer of the table.
        **kwargs: base layer keyword arguments.

    Call arguments:
        num_queries: int (keyword). Number of queries.
        num_keys: int (keyword). Number of keys.
        offset: int or None (keyword). Position of the first query counted
            from the first key; defaults to `num_keys - num_queries`.

    Returns:
        A float tensor `(num_heads, num_queries, num_keys)` to add to the
        attention logits.

    Example:
    ```python
    bias = keras_memory.layers.RelativePositionBias(num_heads=8)
    bias.build()
    logits_bias = bias.compute_bias(512, 1024)  # (8, 512, 1024)
    ```

    References:
        - [Raffel et al., 2020](https://arxiv.org/abs/1910.10683)
        - [meliad, position_t5.py](https://github.com/google-research/meliad)
    """

    def __init__(
        self,
        num_heads,
        num_buckets=32,
        max_distance=128,
        bidirectional=False,
        initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_int("num_heads", num_heads)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.num_buckets, self.max_distance = check_bucket_options(
            num_buckets, max_distance, bidirectional
        )
        self.initializer = check_initializer(
            "initializer",
            initializer or keras.initializers.RandomNormal(stddev=1.0 / np.sqrt(num_buckets)),
        )

    def build(self, input_shape=None):
        self.table = self.add_weight(
            name="table",
            shape=(self.num_heads, self.num_buckets),
            initializer=self.initializer,
        )
        self.built = True

    def buckets(self, num_queries, num_keys, offset=None):
        """Returns the int32 numpy bucket table `(num_queries, num_keys)`."""
        num_queries = check_int("num_queries", num_queries)
        num_keys = check_int("num_keys", num_keys)
        offset = check_int("offset", offset, minimum=None, allow_none=True)
        return t5_relative_position_buckets(
            relative_positions(num_queries, num_keys, offset),
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
            bidirectional=self.bidirectional,
        )

    def compute_bias(self, num_queries, num_keys, offset=None):
        """Returns the bias `(num_heads, num_queries, num_keys)`."""
        buckets = self.buckets(num_queries, num_keys, offset)
        return ops.take(self.table, buckets, axis=1)

    def call(self, *, num_queries, num_keys, offset=None):
        return self.compute_bias(num_queries, num_keys, offset)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_buckets": self.num_buckets,
                "max_distance": self.max_distance,
                "bidirectional": self.bidirectional,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config


def check_bucket_options(
    num_buckets,
    max_distance,
    bidirectional=False,
    names=("num_buckets", "max_distance"),
):
    """Returns `(num_buckets, max_distance)` as ints, or raises ValueError naming one.

    T5 bucketing needs at least one exact bucket per direction
    (`num_buckets >= 2`, 4 if bidirectional) and `max_distance` past the
    exact buckets, or its logarithmic buckets divide by zero.

    Args:
        num_buckets: int. Number of buckets.
        max_distance: int. Distance from which keys share the last bucket.
        bidirectional: bool. Half the buckets are for keys after the query.
        names: the two arguments' names as the caller calls them (e.g.
            `("num_position_buckets", "max_position_distance")`).

    Returns:
        `(num_buckets, max_distance)`.
    """
    buckets_name, distance_name = names
    num_buckets = check_int(buckets_name, num_buckets, 4 if bidirectional else 2)
    max_exact = num_buckets // (4 if bidirectional else 2)
    max_distance = check_int(distance_name, max_distance, max_exact + 1)
    return num_buckets, max_distance


def layer_position_bias(layer):
    """A built `RelativePositionBias` for an attention `layer` with a position bias, else None.

    Reads the layer's `use_position_bias`, `num_heads`, `num_position_buckets`,
    `max_position_distance` and dtype policy; the table is named
    `position_bias`, as saved files expect.
    """
    if not layer.use_position_bias:
        return None
    bias = RelativePositionBias(
        layer.num_heads,
        num_buckets=layer.num_position_buckets,
        max_distance=layer.max_position_distance,
        dtype=layer.dtype_policy,
        name="position_bias",
    )
    bias.build()
    return bias
