"""Host ScaNN indexes that follow a kNN memory by dynamic updates, not rebuilds.

A memory layer's ring buffer lives on the device and changes by one segment
per call. Rebuilding a ScaNN tree over the whole memory on every call costs
seconds at 64k entries; this module keeps one index per (batch row, head)
on the host and brings it up to date with ScaNN's `upsert` of the slots that
changed. Which slots changed is found by comparing the memory passed in with
a host mirror of what the index holds, so the index never trusts a write
pointer: a checkpoint restore, a reset or another batch size simply shows up
as changed contents.

Rebuild policy: a row is rebuilt from scratch when a slot it indexed became
invalid (a document reset), and when the entries upserted since its last
build reach the number it was built with. While the memory fills this
rebuilds at doubling sizes (switching from brute force to a tree once it
holds 2,048 entries); once full, once per turn of the ring. The tree's
partitions are thus never trained on less than half of what they hold,
and a build's cost is spread over as many segments as it indexes entries
(measured in benchmarks/knn_retrieval.py, mode `scann-updates`).
"""

import math
import threading
import weakref

import numpy as np

# Below this many valid entries a ScaNN tree is no faster than scoring everything.
SCANN_BRUTE_FORCE_BELOW = 2048

_INDEXES = {}
_LOCK = threading.Lock()


def _scann():
    try:
        from scann.scann_ops.py import scann_ops_pybind
    except ImportError as error:
        raise ImportError(
            "retrieval='scann' needs the `scann` package: pip install scann==1.4.2 "
            "(wheels for Linux x86_64 with Python 3.9-3.12 and TensorFlow 2.20 only; "
            "elsewhere use retrieval='exact' or 'approx')."
        ) from error
    return scann_ops_pybind


def check_scann():
    """Raises a clear ImportError now if ScaNN cannot be loaded here."""
    _scann()


def build_searcher(database, k):
    """A ScaNN searcher for maximum inner product over `database` `(n, dim)` float32.

    A tree (sqrt(n) leaves, searching a quarter, asymmetric hashing, exact
    re-ranking of max(128, 16k, n/500) candidates) from
    `SCANN_BRUTE_FORCE_BELOW` entries up, brute force below. The re-ranking
    depth is what buys recall and must grow with n (see
    `keras_memory.backend.scann_search`).
    """
    n = len(database)
    builder = _scann().builder(database, k, "dot_product")
    if n < SCANN_BRUTE_FORCE_BELOW:
        return builder.score_brute_force().build()
    leaves = int(math.sqrt(n))
    return (
        builder.tree(
            num_leaves=leaves,
            num_leaves_to_search=max(1, leaves // 4),
            training_sample_size=n,
        )
        .score_ah(2, anisotropic_quantization_threshold=0.2)
        .reorder(max(128, 16 * k, n // 500))
        .build()
    )


class _RowIndex:
    """The per-head searchers of one batch row, with slot <-> ScaNN id maps."""

    def __init__(self, keys, slots, k):
        # keys: (memory_size, heads, dim); slots: the valid slots to index.
        self.searchers = [
            build_searcher(np.ascontiguousarray(keys[slots, h], dtype=np.float32), k)
            for h in range(keys.shape[1])
        ]
        self.slot_of = np.asarray(slots, dtype=np.int64)  # ScaNN id -> slot
        self.id_of = np.full(len(keys), -1, dtype=np.int64)  # slot -> ScaNN id
        self.id_of[self.slot_of] = np.arange(len(self.slot_of))
        self.built_size = len(self.slot_of)
        self.upserted = 0

    def upsert(self, keys, slots):
        ids = self.id_of[slots]
        new = ids < 0
        # ScaNN appends new points in the order given.
        ids[new] = len(self.slot_of) + np.arange(int(new.sum()))
        self.id_of[slots[new]] = ids[new]
        self.slot_of = np.concatenate([self.slot_of, slots[new]])
        positions = [int(i) if not is_new else None for i, is_new in zip(ids, new)]
        for h, searcher in enumerate(self.searchers):
            database = np.ascontiguousarray(keys[slots, h], dtype=np.float32)
            searcher.searcher.upsert(positions, database, 1)
        self.upserted += len(slots)

    def search(self, queries, k):
        # queries: (num_queries, heads, dim) -> slots (heads, num_queries, k).
        found = np.empty((len(self.searchers), len(queries), k), dtype=np.int64)
        for h, searcher in enumerate(self.searchers):
            ids, _ = searcher.search_batched(
                np.ascontiguousarray(queries[:, h], dtype=np.float32), final_num_neighbors=k
            )
            found[h] = self.slot_of[np.asarray(ids, dtype=np.int64)]
        return found


class ScannMemoryIndex:
    """Host ScaNN indexes over one memory layer's `(batch, size, heads, dim)` keys.

    `search` takes the whole memory each call, updates the indexes to match
    it (see the module docstring for the rebuild policy) and returns, per
    (row, head, query), the `k` slots whose keys score highest, -1 where a
    row holds fewer than `k` entries. `stats` counts builds and upserted
    entries.
    """

    def __init__(self):
        self._rows = {}
        self._keys = None
        self._valid = None
        self._lock = threading.Lock()
        self.stats = {"builds": 0, "upserted": 0}

    def search(self, queries, memory_keys, memory_valid, k):
        with self._lock:
            return self._search(queries, memory_keys, memory_valid, k)

    def _search(self, queries, memory_keys, memory_valid, k):
        batch, num_queries, heads, _ = queries.shape
        memory_valid = np.asarray(memory_valid, dtype=bool)
        if self._keys is None or self._keys.shape != memory_keys.shape:
            self._rows = {}
            self._keys = np.zeros(memory_keys.shape, dtype=np.float32)
            self._valid = np.zeros(memory_valid.shape, dtype=bool)
        result = np.full((batch, heads, num_queries, k), -1, dtype=np.int32)
        for b in range(batch):
            valid, indexed = memory_valid[b], self._valid[b]
            row = self._rows.get(b)
            if row is not None and np.any(indexed & ~valid):
                row = None  # a reset: entries left the memory
            if row is None:
                changed = valid
            else:
                differs = np.any(memory_keys[b] != self._keys[b], axis=(1, 2))
                changed = valid & (differs | ~indexed)
            slots = np.flatnonzero(changed)
            self._keys[b, slots] = memory_keys[b, slots]
            self._valid[b] = valid
            if row is not None and len(slots):
                if row.upserted + len(slots) >= row.built_size:
                    row = None  # the index has turned over: retrain its tree
                else:
                    row.upsert(self._keys[b], slots)
                    self.stats["upserted"] += len(slots)
            if row is None:
                self._rows.pop(b, None)
                if not valid.any():
                    continue
                row = _RowIndex(self._keys[b], np.flatnonzero(valid), k)
                self._rows[b] = row
                self.stats["builds"] += 1
            n = min(k, len(row.slot_of))
            result[b, :, :, :n] = row.search(queries[b], n)
        return result


def memory_index(owner):
    """The `ScannMemoryIndex` that follows `owner`'s memory (made on first use).

    It lives as long as `owner` (a layer): when the layer is garbage
    collected its index is freed with it.
    """
    key = id(owner)
    with _LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = ScannMemoryIndex()
            weakref.finalize(owner, _INDEXES.pop, key, None)
    return index
