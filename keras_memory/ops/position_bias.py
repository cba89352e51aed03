"""Relative positions and T5 relative-position buckets.

Positions are static for a given (queries, keys) shape, so the tables are
computed with numpy at trace time and enter the graph as constants.
"""

import math

import numpy as np


def relative_positions(num_queries, num_keys, offset=None):
    """Signed distance `key_position - query_position` for every pair.

    The last `num_queries` queries line up with the last `num_queries` keys
    when `offset` is None (the alignment Transformer-XL and a sliding window
    need: the extra keys come *before* the queries).

    Args:
        num_queries: int. Number of queries.
        num_keys: int. Number of keys.
        offset: int or None. Position of the first query counted from the
            first key. Defaults to `num_keys - num_queries`.

    Returns:
        An int32 numpy array of shape `(num_queries, num_keys)`.
    """
    if offset is None:
        if num_keys < num_queries:
            raise ValueError(
                f"`num_keys` ({num_keys}) must be >= `num_queries` "
                f"({num_queries}) when `offset` is not given."
            )
        offset = num_keys - num_queries
    query_positions = np.arange(num_queries, dtype=np.int32)[:, None] + offset
    key_positions = np.arange(num_keys, dtype=np.int32)[None, :]
    return key_positions - query_positions


def t5_relative_position_buckets(
    relative_position, num_buckets=32, max_distance=128, bidirectional=False
):
    """Maps relative positions to T5 buckets.

    Unidirectional (the causal case): `n = max(query - key, 0)`; distances
    below `num_buckets // 2` get a bucket each, larger ones share
    logarithmically wider buckets up to `max_distance`, and everything
    farther falls in the last bucket. With the defaults the buckets 16..31
    start at distances 16, 19, 21, 24, 27, 31, 35, 40, 46, 52, 59, 67, 77, 87,
    99, 113.

    Args:
        relative_position: int array of `key_position - query_position`.
        num_buckets: int. Number of buckets.
        max_distance: int. Distance from which all positions share the last
            bucket.
        bidirectional: bool. If True, half the buckets are for keys after
            the query.

    Returns:
        An int32 numpy array of bucket ids, the shape of `relative_position`.
    """
    relative_position = np.asarray(relative_position, dtype=np.int64)
    bucket = np.zeros_like(relative_position)
    distance = -relative_position
    if bidirectional:
        num_buckets //= 2
        bucket += (distance < 0).astype(np.int64) * num_buckets
        distance = np.abs(distance)
    else:
        distance = np.maximum(distance, 0)
    max_exact = num_buckets // 2
    # The epsilon keeps log(0) finite; those entries take the exact branch.
    log_ratio = np.log(distance.astype(np.float32) / max_exact + np.finfo(np.float32).eps)
    large = max_exact + (
        log_ratio / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    bucket += np.where(distance < max_exact, distance, large)
    return bucket.astype(np.int32)
