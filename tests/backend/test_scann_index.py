import gc
import sys

import numpy as np
import pytest

from keras_memory.backend import scann_index
from keras_memory.backend.scann_index import ScannMemoryIndex, memory_index
from keras_memory.layers import KNNAttention
from tests.ops.test_knn import clustered, recall

SIZE, SEGMENT, HEADS, DIM, K = 4096, 512, 2, 16, 8


def brute_force(queries, keys, valid, k):
    scores = np.einsum("bqhd,bmhd->bhqm", queries, keys)
    scores = np.where(valid[:, None, None], scores, -np.inf)
    return np.argsort(-scores, axis=-1)[..., :k]


CENTRES = np.random.default_rng(0).standard_normal((32, DIM))


def sample(batch, n, seed):
    """Unit-norm points around fixed cluster centres: memory and queries alike."""
    rng = np.random.default_rng(seed)
    points = CENTRES[rng.integers(0, 32, (batch, n, HEADS))]
    points = points + 0.3 * rng.standard_normal((batch, n, HEADS, DIM))
    return (points / np.linalg.norm(points, axis=-1, keepdims=True)).astype("float32")


class Ring:
    """A numpy ring buffer written one segment at a time, like the layer's memory."""

    def __init__(self, batch=2):
        self.keys = np.zeros((batch, SIZE, HEADS, DIM), np.float32)
        self.valid = np.zeros((batch, SIZE), bool)
        self.pointer = 0

    def write(self, keys, rows=slice(None)):
        slots = slice(self.pointer, self.pointer + SEGMENT)
        self.keys[rows, slots] = keys[rows]
        self.valid[rows, slots] = True
        self.pointer = (self.pointer + SEGMENT) % SIZE


def test_updated_index_keeps_recall_as_the_ring_wraps():
    index, ring = ScannMemoryIndex(), Ring()
    recalls, fresh_recalls = [], []
    for step in range(20):  # 2.5 turns of the ring
        queries = sample(2, 64, seed=1000 + step)
        if step:
            found = index.search(queries, ring.keys, ring.valid, K)
            expected = brute_force(queries, ring.keys, ring.valid, K)
            assert np.all(ring.valid[np.arange(2)[:, None, None, None], found])
            recalls.append(recall(found, expected))
            fresh = ScannMemoryIndex().search(queries, ring.keys, ring.valid, K)
            fresh_recalls.append(recall(fresh, expected))
        ring.write(sample(2, SEGMENT, seed=step))
    # Updating the index loses (almost) nothing against building it afresh.
    assert min(recalls) >= 0.9, recalls
    assert np.mean(recalls) >= np.mean(fresh_recalls) - 0.02, (recalls, fresh_recalls)
    # Builds at doubling sizes while filling, then once per turn of the ring,
    # not one per call: 19 calls x 2 rows would be 38 builds.
    assert index.stats["builds"] <= 2 * 6, index.stats
    assert index.stats["upserted"] > 0


def test_overwritten_slots_are_found_by_their_new_keys():
    index, ring = ScannMemoryIndex(), Ring(batch=1)
    for step in range(10):  # the last two segments overwrite slots 0..1023
        keys = sample(1, SEGMENT, seed=100 + step)
        ring.write(keys)
        index.search(keys[:, :4], ring.keys, ring.valid, K)
    fresh = ring.keys[:, :1024]
    found = index.search(fresh, ring.keys, ring.valid, 1)
    # Each key's best match in the memory is itself, at its slot (the tree
    # is approximate: allow a miss in a hundred).
    assert np.mean(found[0, :, :, 0] == np.arange(1024)) >= 0.99


def test_a_reset_row_retrieves_only_its_new_document_and_other_rows_keep_their_index():
    index, ring = ScannMemoryIndex(), Ring()
    for step in range(6):
        ring.write(sample(2, SEGMENT, seed=step))
        queries = sample(2, 16, seed=50 + step)
        index.search(queries, ring.keys, ring.valid, K)
    kept_row = index._rows[1]
    ring.valid[0] = False  # row 0 starts a new document
    ring.keys[0] = 0.0
    new_slots = np.arange(ring.pointer, ring.pointer + SEGMENT)
    ring.write(sample(2, SEGMENT, seed=99))
    queries = sample(2, 16, seed=7)
    found = index.search(queries, ring.keys, ring.valid, K)
    assert set(found[0].ravel()) <= set(new_slots)
    assert index._rows[1] is kept_row  # updated, not rebuilt


def test_a_new_memory_shape_starts_over():
    index = ScannMemoryIndex()
    queries, keys = clustered(2, 64, 1, 8, 4)
    index.search(queries, keys, np.ones((2, 64), bool), 4)
    queries, keys = clustered(1, 128, 1, 8, 4, seed=1)
    found = index.search(queries, keys, np.ones((1, 128), bool), 4)
    np.testing.assert_array_equal(
        np.sort(found, -1), np.sort(brute_force(queries, keys, np.ones((1, 128), bool), 4), -1)
    )


def test_each_layer_has_one_index_freed_with_the_layer():
    layer = KNNAttention(2, 4, 4, memory_size=32, num_neighbors=4, retrieval="scann")
    x = np.random.default_rng(0).standard_normal((2, 8, 8)).astype("float32")
    _, state = layer(x, reset=np.array([True, True]))
    layer(x, state=state, reset=np.array([False, False]))
    index = memory_index(layer)
    assert index.stats["builds"] >= 1 and memory_index(layer) is index
    key = id(layer)
    del layer, state
    gc.collect()
    assert key not in scann_index._INDEXES


def test_missing_scann_is_named_with_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "scann", None)  # import scann now raises ImportError
    monkeypatch.setitem(sys.modules, "scann.scann_ops.py", None)
    with pytest.raises(ImportError, match="pip install scann==1.4.2"):
        KNNAttention(2, 4, 4, memory_size=32, num_neighbors=4, retrieval="scann")
