"""HostMemory: a kNN memory in host RAM with a ScaNN index per (row, head).

The store is numpy, but the suite runs once per backend: the expected top-k
comes from `keras_memory.ops.exact_top_k` and the expected ring slots from
`keras_memory.ops.ring_buffer.write_segment`, each on the backend under test.
"""

import numpy as np
import pytest

from keras_memory.backend.host_memory import (
    HostMemory,
    check_host_memory_fits,
    host_memory_bytes,
)
from keras_memory.backend.scann_index import SCANN_BRUTE_FORCE_BELOW
from keras_memory.ops import exact_top_k
from keras_memory.ops.ring_buffer import write_segment
from tests.conftest import to_numpy

HEADS, DIM, K = 2, 8, 4


def unit(rng, *shape):
    """Random unit-norm vectors along the last axis, as the layer's normalised keys."""
    points = rng.standard_normal(shape)
    return (points / np.linalg.norm(points, axis=-1, keepdims=True)).astype("float32")


def segment(rng, batch, length, heads=HEADS, dim=DIM):
    """`(queries, keys, values)` of one segment, `(batch, length, heads, dim)` each."""
    return (
        unit(rng, batch, length, heads, dim),
        unit(rng, batch, length, heads, dim),
        (rng.standard_normal((batch, length, heads, dim)).astype("float32")),
    )


class Feeder:
    """Calls a HostMemory as the layer does: step count and ring pointer carried along."""

    def __init__(self, memory, batch, row_offset=0):
        self.memory, self.batch, self.row_offset = memory, batch, row_offset
        self.step = self.pointer = 0

    def __call__(self, queries, keys, values, reset=None):
        reset = np.zeros(self.batch, bool) if reset is None else np.asarray(reset, bool)
        out = self.memory.lookup_and_write(
            queries, keys, values, reset, self.step, self.pointer, self.row_offset
        )
        length = queries.shape[1]
        start = 0 if self.pointer + length > self.memory.capacity else self.pointer
        self.pointer = (start + length) % self.memory.capacity
        self.step += 1
        return out


def assert_same_arrays(got, want):
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=name)


def test_first_segment_finds_nothing_and_the_next_finds_what_it_wrote():
    rng = np.random.default_rng(0)
    memory = HostMemory(32, HEADS, DIM, K)
    feed = Feeder(memory, batch=2)
    queries, keys, values = segment(rng, 2, 8)
    found_keys, found_values, found = feed(queries, keys, values)
    # Written after the read: a segment never retrieves its own keys.
    assert found.shape == (2, HEADS, 8, K) and found_keys.shape == (2, HEADS, 8, K, DIM)
    assert not found.any()
    assert not found_keys.any() and not found_values.any()
    assert memory.num_entries(0) == memory.num_entries(1) == 8
    # Querying with the keys just written: each key's best match is itself,
    # with its own value (the slots of keys and values agree).
    found_keys, found_values, found = feed(keys, *segment(rng, 2, 8)[1:])
    assert found.all()
    np.testing.assert_array_equal(found_keys[:, :, :, 0], keys.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(found_values[:, :, :, 0], values.transpose(0, 2, 1, 3))
    # The k found are the exact top k over the 8 entries (brute force below 2,048).
    scores = np.einsum("bqhd,bmhd->bhqm", keys, keys)
    best = -np.sort(-scores, axis=-1)[..., :K]
    np.testing.assert_allclose(np.einsum("bqhd,bhqkd->bhqk", keys, found_keys), best, atol=1e-6)


def test_fewer_entries_than_k_are_all_found_and_the_rest_marked_missing():
    rng = np.random.default_rng(1)
    memory = HostMemory(16, HEADS, DIM, num_neighbors=6)
    feed = Feeder(memory, batch=1)
    feed(*segment(rng, 1, 4))
    found_keys, _, found = feed(*segment(rng, 1, 4))
    assert found[..., :4].all() and not found[..., 4:].any()
    assert not found_keys[..., 4:, :].any()


def test_a_reset_row_forgets_only_its_own_memory():
    rng = np.random.default_rng(2)
    first, second, third = (segment(rng, 2, 8) for _ in range(3))
    reset_memory, kept_memory = HostMemory(32, HEADS, DIM, K), HostMemory(32, HEADS, DIM, K)
    reset_feed, kept_feed = Feeder(reset_memory, 2), Feeder(kept_memory, 2)
    for feed in (reset_feed, kept_feed):
        feed(*first)
        feed(*second)
    got = reset_feed(*third, reset=[True, False])
    want = kept_feed(*third, reset=[False, False])
    assert not got[2][0].any()  # row 0 starts a document: nothing to retrieve
    for got_part, want_part in zip(got, want):  # row 1 as if nothing happened to row 0
        np.testing.assert_array_equal(got_part[1], want_part[1])
    assert want[2][0].all()
    assert reset_memory.num_entries(0) == 8 and reset_memory.num_entries(1) == 24
    # Row 0 then retrieves from its new document alone.
    queries = third[1]
    found_keys, _, found = reset_feed(queries, *segment(rng, 2, 8)[1:])
    assert found[0].all()
    np.testing.assert_array_equal(found_keys[0, :, :, 0], queries[0].transpose(1, 0, 2))


def test_slots_follow_the_device_ring_as_it_wraps_with_varying_segment_lengths():
    from keras import ops

    rng = np.random.default_rng(3)
    capacity, batch = 48, 2
    memory = HostMemory(capacity, HEADS, DIM, K)
    ring_keys = np.zeros((batch, capacity, HEADS, DIM), np.float32)
    ring_values, ring_valid = np.zeros_like(ring_keys), np.zeros((batch, capacity), np.int32)
    pointer = 0
    # 16 + 16 + 12 fill 44 slots; the next 16 would run past the end and start at 0.
    for step, length in enumerate((16, 16, 12, 16, 12, 16, 16, 12)):
        queries, keys, values = segment(rng, batch, length)
        memory.lookup_and_write(queries, keys, values, np.zeros(batch, bool), step, pointer)
        written = write_segment(
            ops.convert_to_tensor(ring_keys),
            ops.convert_to_tensor(ring_values),
            ops.convert_to_tensor(ring_valid),
            pointer,
            keys,
            values,
        )
        ring_keys, ring_values, ring_valid, pointer = (to_numpy(t) for t in written)
        arrays = memory.to_arrays()
        for row in range(batch):
            filled = len(arrays[f"host_row{row}_valid"])
            np.testing.assert_array_equal(arrays[f"host_row{row}_valid"], ring_valid[row, :filled])
            assert not ring_valid[row, filled:].any()
            np.testing.assert_array_equal(arrays[f"host_row{row}_keys"], ring_keys[row, :filled])
            np.testing.assert_array_equal(
                arrays[f"host_row{row}_values"], ring_values[row, :filled]
            )


def test_a_state_at_the_wrong_step_is_refused_and_changes_nothing():
    rng = np.random.default_rng(4)
    memory = HostMemory(32, HEADS, DIM, K, name="knn")
    feed = Feeder(memory, batch=2)
    for _ in range(3):
        feed(*segment(rng, 2, 8))
    before = memory.to_arrays()
    stats = dict(memory.stats)
    queries, keys, values = segment(rng, 2, 8)
    for step in (2, 1, 4):  # an old state passed again, a state from the future
        with pytest.raises(
            ValueError, match=f"follows step 3, but the state passed is at step {step}"
        ):
            memory.lookup_and_write(queries, keys, values, np.array([True, True]), step, 24)
    with pytest.raises(ValueError, match="Layer 'knn'.*row 2"):  # rows it never saw
        memory.lookup_and_write(queries, keys, values, np.zeros(2, bool), 3, 24, row_offset=2)
    assert_same_arrays(memory.to_arrays(), before)
    assert memory.stats == stats
    # The state the last call returned is still accepted.
    feed(queries, keys, values)
    assert memory.num_entries(0) == 32


def test_rows_are_checked_before_any_is_reset():
    rng = np.random.default_rng(5)
    memory = HostMemory(32, HEADS, DIM, K)
    row0, row1 = Feeder(memory, 1, row_offset=0), Feeder(memory, 1, row_offset=1)
    for _ in range(3):
        row0(*segment(rng, 1, 8))
    for _ in range(2):
        row1(*segment(rng, 1, 8))
    before = memory.to_arrays()
    # Row 0 would be reset, but row 1 is at another step: nothing may happen.
    with pytest.raises(ValueError, match=r"row 1\) follows step 2"):
        memory.lookup_and_write(*segment(rng, 2, 8), np.array([True, False]), 3, 24)
    assert_same_arrays(memory.to_arrays(), before)
    assert memory.num_entries(0) == 24


def test_a_state_at_step_zero_starts_the_rows_over_and_clear_forgets_all():
    rng = np.random.default_rng(6)
    memory = HostMemory(32, HEADS, DIM, K)
    feed = Feeder(memory, batch=2)
    for _ in range(2):
        feed(*segment(rng, 2, 8))
    restart = Feeder(memory, batch=2)  # an initial state: step 0, pointer 0
    _, _, found = restart(*segment(rng, 2, 8))
    assert not found.any()
    assert memory.num_entries(0) == memory.num_entries(1) == 8
    memory.clear()
    assert memory.rows == {} and memory.num_entries(0) == 0
    with pytest.raises(ValueError, match="follows step 0, but the state passed is at step 1"):
        restart(*segment(rng, 2, 8))


def test_rows_are_kept_by_global_row():
    rng = np.random.default_rng(7)
    memory = HostMemory(32, HEADS, DIM, K)
    replicas = [Feeder(memory, 1, row_offset=r) for r in range(2)]
    alone = [HostMemory(32, HEADS, DIM, K) for _ in range(2)]
    alone_feeds = [Feeder(m, 1) for m in alone]
    for _ in range(4):
        for r in range(2):
            data = segment(rng, 1, 8)
            got = replicas[r](*data)
            want = alone_feeds[r](*data)
            for got_part, want_part in zip(got, want):
                np.testing.assert_array_equal(got_part, want_part)
    assert sorted(memory.rows) == [0, 1]
    # Two replicas' worth of indexes, each built as often as a memory of its own.
    assert memory.stats == {k: alone[0].stats[k] + alone[1].stats[k] for k in memory.stats}


CENTRES = np.random.default_rng(100).standard_normal((32, 16))


def clustered(rng, batch, length, heads=2, noise=0.3):
    """Unit-norm points around fixed centres: the memory and its queries alike."""
    points = CENTRES[rng.integers(0, len(CENTRES), (batch, length, heads))]
    points = points + noise * rng.standard_normal(points.shape)
    return (points / np.linalg.norm(points, axis=-1, keepdims=True)).astype("float32")


def recall_against_exact(queries, found_keys, stored_keys, stored_valid, k):
    """Share of the found entries that score at least the exact k-th best (exact_top_k)."""
    scores, _ = exact_top_k(queries, stored_keys, stored_valid, k)
    kth = to_numpy(scores)[..., -1:]
    got = np.einsum("bqhd,bhqkd->bhqk", queries, found_keys)
    return float(np.mean(got >= kth - 1e-6))


def padded_ring(arrays, batch, capacity, heads, dim):
    """A saved store's keys and validity as a device ring `(batch, capacity, ...)`."""
    keys = np.zeros((batch, capacity, heads, dim), np.float32)
    valid = np.zeros((batch, capacity), bool)
    for b in range(batch):
        filled = len(arrays[f"host_row{b}_valid"])
        keys[b, :filled] = arrays[f"host_row{b}_keys"]
        valid[b, :filled] = arrays[f"host_row{b}_valid"]
    return keys, valid


def test_scann_recall_past_the_tree_threshold_and_planted_keys_are_found():
    capacity, length, batch, k = 4096, 512, 2, 8
    rng = np.random.default_rng(8)
    memory = HostMemory(capacity, 2, 16, k)
    feed = Feeder(memory, batch)
    recalls, planted_hits = [], []
    previous_keys = stored = None
    for _ in range(11):  # 4096 entries after 8 segments: the ring turns over
        keys, queries = clustered(rng, batch, length), clustered(rng, batch, length)
        if previous_keys is not None:
            # Half the queries are planted next to the last segment's keys
            # (upserted into the tree, not trained on): each must find its key.
            noisy = previous_keys[:, : length // 2]
            noisy = noisy + 0.01 * rng.standard_normal(noisy.shape)
            queries[:, : length // 2] = noisy / np.linalg.norm(noisy, axis=-1, keepdims=True)
        values = rng.standard_normal(keys.shape).astype("float32")
        found_keys, _, found = feed(queries, keys, values)
        if stored is not None and stored[1].sum(axis=1).min() >= SCANN_BRUTE_FORCE_BELOW:
            assert found.all()
            recalls.append(recall_against_exact(queries, found_keys, *stored, k))
            planted = previous_keys[:, : length // 2].transpose(0, 2, 1, 3)
            best = found_keys[:, :, : length // 2, 0]
            planted_hits.append(float(np.mean(np.all(best == planted, axis=-1))))
        arrays = memory.to_arrays()
        if recalls:  # the rows were searched by trees (built on 2,048 entries or more)
            for b in range(batch):
                assert arrays[f"host_row{b}_index_counts"][0] >= SCANN_BRUTE_FORCE_BELOW
        stored = padded_ring(arrays, batch, capacity, 2, 16)
        previous_keys = keys
    assert len(recalls) == 7, recalls
    assert min(recalls) >= 0.9, recalls
    assert min(planted_hits) >= 0.98, planted_hits
    # Builds at doubling sizes, then once per turn of the ring: not once per call.
    assert memory.stats["searches"] == batch * 10
    assert memory.stats["builds"] <= batch * 5, memory.stats
    assert memory.stats["upserted"] > 0


def test_to_arrays_from_arrays_round_trip_restores_the_trees_exactly():
    capacity, length, batch, k = 4096, 512, 2, 8
    rng = np.random.default_rng(9)
    memory = HostMemory(capacity, 2, 16, k)
    feed = Feeder(memory, batch)
    for _ in range(6):  # a tree built on 2,048 entries, one segment upserted, one pending
        feed(
            clustered(rng, batch, length),
            clustered(rng, batch, length),
            clustered(rng, batch, length),
        )
    arrays = memory.to_arrays()
    assert arrays["host_row0_index_counts"][0] >= SCANN_BRUTE_FORCE_BELOW
    assert len(arrays["host_row0_pending"]) == length
    restored = HostMemory(capacity, 2, 16, k)
    restored.from_arrays({name: np.array(value) for name, value in arrays.items()})
    assert_same_arrays(restored.to_arrays(), arrays)
    restored_feed = Feeder(restored, batch)
    restored_feed.step, restored_feed.pointer = feed.step, feed.pointer
    for _ in range(2):  # upserts into the restored trees, no rebuild
        data = [clustered(rng, batch, length) for _ in range(3)]
        for got, want in zip(restored_feed(*data), feed(*data)):
            np.testing.assert_array_equal(got, want)
    assert restored.stats["builds"] == 0
    assert restored.stats["upserted"] == batch * 2 * length
    assert_same_arrays(restored.to_arrays(), memory.to_arrays())
    # An empty store round-trips too.
    empty = HostMemory(capacity, 2, 16, k)
    empty.from_arrays(HostMemory(capacity, 2, 16, k).to_arrays())
    assert empty.rows == {}


def test_a_memory_that_does_not_fit_in_ram_is_refused_with_its_size():
    with pytest.raises(ValueError, match=r"(?s)Layer 'big'.*GiB.*`memory_size`"):
        check_host_memory_fits("big", 2, 2**34, 8, 128)
    check_host_memory_fits("small", 2, 1024, 8, 128)
    # Keys, values and ScaNN's float32 copy of the keys, plus a margin.
    assert host_memory_bytes(2, 1024, 8, 128) == int(2 * 1024 * 8 * 128 * 3 * 4 * 1.1)
