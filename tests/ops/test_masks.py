import numpy as np
import pytest

from keras_memory.ops import window_mask


def test_each_query_sees_exactly_the_w_previous_tokens():
    w = 4
    mask = window_mask(w, 2 * w, w)
    for q in range(w):
        query_position = w + q
        allowed = np.flatnonzero(mask[q])
        np.testing.assert_array_equal(allowed, np.arange(query_position - w, query_position))


def test_include_self_sees_itself_and_w_minus_one_before():
    w = 4
    mask = window_mask(w, 2 * w, w, include_self=True)
    for q in range(w):
        query_position = w + q
        allowed = np.flatnonzero(mask[q])
        np.testing.assert_array_equal(
            allowed, np.arange(query_position - w + 1, query_position + 1)
        )


def test_no_future_keys_ever():
    mask = window_mask(8, 8, 100, include_self=True)
    assert not np.triu(mask, k=1).any()


def test_rejects_empty_window():
    with pytest.raises(ValueError, match="window_length"):
        window_mask(2, 2, 0)
