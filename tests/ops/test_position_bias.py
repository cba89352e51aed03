import numpy as np
import pytest

from keras_memory.ops import relative_positions, t5_relative_position_buckets
from tests.reference import t5_bucket

# First distance of each of the buckets 16..31 (MECHANICS.md, meliad).
BUCKET_STARTS = [16, 19, 21, 24, 27, 31, 35, 40, 46, 52, 59, 67, 77, 87, 99, 113]


def buckets_of(distances):
    return t5_relative_position_buckets(-np.asarray(distances))


def test_distances_below_16_have_a_bucket_each():
    np.testing.assert_array_equal(buckets_of(np.arange(16)), np.arange(16))


def test_log_buckets_start_at_the_published_distances():
    distances = np.arange(0, 200)
    buckets = buckets_of(distances)
    starts = [int(distances[buckets == b][0]) for b in range(16, 32)]
    assert starts == BUCKET_STARTS


def test_far_and_future_keys():
    assert buckets_of([128, 1000, 10**6]).tolist() == [31, 31, 31]
    # Unidirectional: a key after the query is distance 0.
    assert t5_relative_position_buckets(np.array([1, 5])).tolist() == [0, 0]


def test_matches_reference_scalar_formula():
    distances = np.arange(0, 400)
    expected = [t5_bucket(int(n)) for n in distances]
    np.testing.assert_array_equal(buckets_of(distances), expected)


def test_bidirectional_splits_buckets_by_direction():
    rel = np.array([-3, 3, 0])
    buckets = t5_relative_position_buckets(rel, bidirectional=True)
    assert buckets[0] == 3 and buckets[1] == 16 + 3 and buckets[2] == 0


def test_relative_positions_align_last_query_with_last_key():
    rel = relative_positions(2, 5)
    np.testing.assert_array_equal(rel, [[-3, -2, -1, 0, 1], [-4, -3, -2, -1, 0]])
    with pytest.raises(ValueError, match="num_keys"):
        relative_positions(5, 2)
