"""The ring buffer: a document's last entries, per row, written after reading."""

import numpy as np
import pytest

from keras_memory.ops.ring_buffer import (
    check_segment_fits,
    forget_rows,
    memory_state_shapes,
    write_segment,
)
from tests.conftest import to_numpy

BATCH, SIZE, HEADS, DIM, LENGTH = 2, 8, 1, 2, 4


def empty():
    shapes = memory_state_shapes(BATCH, SIZE, HEADS, DIM)
    return {name: np.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()}


def segment(step):
    keys = np.full((BATCH, LENGTH, HEADS, DIM), step, "float32")
    keys[1] += 100  # row 1 holds other values than row 0
    return keys, -keys


def test_writes_go_in_order_and_wrap_to_hold_the_last_entries():
    memory = empty()
    keys, values, valid, pointer = (
        memory["memory_keys"],
        memory["memory_values"],
        memory["memory_valid"],
        memory["memory_pointer"],
    )
    for step in range(1, 4):  # three segments of 4 in a ring of 8: the third overwrites the first
        new_keys, new_values = segment(step)
        keys, values, valid, pointer = write_segment(
            keys, values, valid, pointer, new_keys, new_values
        )
    keys, values, valid = to_numpy(keys), to_numpy(values), to_numpy(valid)
    np.testing.assert_array_equal(keys[0, :, 0, 0], [3, 3, 3, 3, 2, 2, 2, 2])
    np.testing.assert_array_equal(keys[1, :, 0, 0], [103] * 4 + [102] * 4)
    np.testing.assert_array_equal(values, -keys)
    assert valid.all() and int(to_numpy(pointer)) == LENGTH


def test_a_reset_row_forgets_its_memory_and_no_other_row_does():
    memory = empty()
    new_keys, new_values = segment(1)
    keys, values, valid, _ = write_segment(
        memory["memory_keys"],
        memory["memory_values"],
        memory["memory_valid"],
        memory["memory_pointer"],
        new_keys,
        new_values,
    )
    keys, values, valid = forget_rows(keys, values, valid, np.array([True, False]))
    keys, valid = to_numpy(keys), to_numpy(valid)
    assert not keys[0].any() and not valid[0].any()
    np.testing.assert_array_equal(keys[1, :LENGTH, 0, 0], [101] * LENGTH)
    np.testing.assert_array_equal(valid[1], [True] * LENGTH + [False] * (SIZE - LENGTH))


def test_a_segment_that_would_run_past_the_end_starts_over_at_zero():
    memory = empty()
    new_keys, new_values = segment(7)
    keys, _, valid, pointer = write_segment(
        memory["memory_keys"],
        memory["memory_values"],
        memory["memory_valid"],
        np.array(6, "int32"),  # 6 + 4 > 8
        new_keys,
        new_values,
    )
    np.testing.assert_array_equal(to_numpy(keys)[0, :, 0, 0], [7] * 4 + [0] * 4)
    assert int(to_numpy(pointer)) == LENGTH and to_numpy(valid)[:, :LENGTH].all()


def test_the_memory_must_hold_whole_segments():
    check_segment_fits("knn", 8, 4)
    with pytest.raises(ValueError, match="`memory_size` \\(8\\) must be a multiple"):
        check_segment_fits("knn", 8, 3)
