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
import os
import sys
import tempfile
import threading
import weakref

import numpy as np

# Below this many valid entries a ScaNN tree is no faster than scoring everything.
SCANN_BRUTE_FORCE_BELOW = 2048

# ScaNN's list of a serialised searcher's files, and what stands for their folder in a save.
_ASSETS, _FOLDER = "scann_assets.pbtxt", b"{scann_folder}/"

_INDEXES = {}
_LOCK = threading.Lock()


def _scann():
    try:
        from scann.scann_ops.py import scann_ops_pybind
    except ImportError as error:
        raise ImportError(
            "retrieval='scann' needs the `scann` package: pip install scann==1.4.2 "
            "(wheels for Linux x86_64 with Python 3.9-3.13, next to TensorFlow 2.20; "
            f"this is Python {sys.version_info.major}.{sys.version_info.minor}); elsewhere use "
            "retrieval='exact' or 'approx' and memory_placement='device'."
        ) from error
    return scann_ops_pybind


def check_scann():
    """Raises a clear ImportError now if ScaNN cannot be loaded here."""
    _scann()


def build_searcher(database, k):
    """A ScaNN searcher for maximum inner product over `database` `(n, dim)` float32.

    Brute force below `SCANN_BRUTE_FORCE_BELOW` entries; above, a tree of
    sqrt(n) leaves trained on at most 131,072 sampled entries, searching a
    tenth of its leaves (at least 32), scored by asymmetric hashing (one
    dimension per code up to 32 dims, two above), and the best
    max(128, 16k, n/1000) candidates re-ranked exactly. The re-ranking depth
    is what buys recall when the top k score alike and must grow with n (see
    `keras_memory.backend.scann_search`); the leaves searched bound recall on
    unclustered data. Chosen with `benchmarks/host_memory.py` (results in
    `benchmarks/results/host_memory_cpu.jsonl`): at 1M entries, against a
    quarter of the leaves, all entries sampled, two dimensions per code and
    n/500 candidates, the search is 2.6-3.8x faster and the build about 2x,
    at recall@32 0.98-0.99 on clustered keys (the old settings: 0.78 at 16
    dims); on unclustered Gaussian keys of 64 dims recall falls to 0.64
    (0.87 before).
    """
    n, dim = database.shape
    builder = _scann().builder(database, k, "dot_product")
    if n < SCANN_BRUTE_FORCE_BELOW:
        return builder.score_brute_force().build()
    leaves = int(math.sqrt(n))
    return (
        builder.tree(
            num_leaves=leaves,
            num_leaves_to_search=min(leaves, max(32, leaves // 10)),
            training_sample_size=min(n, 131072),
        )
        .score_ah(1 if dim <= 32 else 2, anisotropic_quantization_threshold=0.2)
        .reorder(max(128, 16 * k, n // 1000))
        .build()
    )


class RowIndex:
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

    def to_arrays(self):
        """`{name: numpy array}` from which `from_arrays` rebuilds this index exactly.

        The searchers are ScaNN's own serialisation (their files as uint8
        arrays), so a restored index holds the same partitions and codes and
        answers every query as this one does: a rebuilt tree would not.
        """
        arrays = {
            "slot_of": self.slot_of,
            "id_of": self.id_of,
            "counts": np.asarray([self.built_size, self.upserted], np.int64),
        }
        for h, searcher in enumerate(self.searchers):
            with tempfile.TemporaryDirectory() as folder:
                searcher.serialize(folder)
                for name in sorted(os.listdir(folder)):
                    with open(os.path.join(folder, name), "rb") as f:
                        data = f.read()
                    if name == _ASSETS:  # it names its files by absolute paths
                        data = data.replace(folder.encode() + b"/", _FOLDER)
                    arrays[f"head{h}:{name}"] = np.frombuffer(data, np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays, num_heads):
        """The index `to_arrays` described."""
        searchers = []
        for h in range(num_heads):
            prefix = f"head{h}:"
            with tempfile.TemporaryDirectory() as folder:
                for name, data in arrays.items():
                    if name.startswith(prefix):
                        data = np.asarray(data, np.uint8).tobytes()
                        if name == prefix + _ASSETS:
                            data = data.replace(_FOLDER, folder.encode() + b"/")
                        with open(os.path.join(folder, name[len(prefix) :]), "wb") as f:
                            f.write(data)
                searchers.append(_scann().load_searcher(folder))
        index = cls.__new__(cls)
        index.searchers = searchers
        index.slot_of = np.asarray(arrays["slot_of"], np.int64)
        index.id_of = np.asarray(arrays["id_of"], np.int64)
        index.built_size, index.upserted = (int(n) for n in arrays["counts"])
        return index

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
    row holds fewer than `k` entries. `row_offset` is the global index of
    the first row (a replica's rows under `tf.distribute`), so replicas
    keep one index per global row instead of overwriting each other's.
    `stats` counts builds and upserted entries.
    """

    def __init__(self):
        self._rows = {}
        self._mirrors = {}  # row offset -> (keys, valid) the indexes hold
        self._lock = threading.Lock()
        self.stats = {"builds": 0, "upserted": 0}

    def search(self, queries, memory_keys, memory_valid, k, row_offset=0):
        with self._lock:
            return self._search(queries, memory_keys, memory_valid, k, int(row_offset))

    def _search(self, queries, memory_keys, memory_valid, k, row_offset):
        batch, num_queries, heads, _ = queries.shape
        memory_valid = np.asarray(memory_valid, dtype=bool)
        mirror = self._mirrors.get(row_offset)
        if mirror is None or mirror[0].shape != memory_keys.shape:
            for b in range(batch):
                self._rows.pop(row_offset + b, None)
            mirror = self._mirrors[row_offset] = (
                np.zeros(memory_keys.shape, dtype=np.float32),
                np.zeros(memory_valid.shape, dtype=bool),
            )
        mirror_keys, mirror_valid = mirror
        result = np.full((batch, heads, num_queries, k), -1, dtype=np.int32)
        for b in range(batch):
            valid, indexed = memory_valid[b], mirror_valid[b]
            row = self._rows.get(row_offset + b)
            if row is not None and np.any(indexed & ~valid):
                row = None  # a reset: entries left the memory
            if row is None:
                changed = valid
            else:
                differs = np.any(memory_keys[b] != mirror_keys[b], axis=(1, 2))
                changed = valid & (differs | ~indexed)
            slots = np.flatnonzero(changed)
            mirror_keys[b, slots] = memory_keys[b, slots]
            mirror_valid[b] = valid
            if row is not None and len(slots):
                if row.upserted + len(slots) >= row.built_size:
                    row = None  # the index has turned over: retrain its tree
                else:
                    row.upsert(mirror_keys[b], slots)
                    self.stats["upserted"] += len(slots)
            if row is None:
                self._rows.pop(row_offset + b, None)
                if not valid.any():
                    continue
                row = RowIndex(mirror_keys[b], np.flatnonzero(valid), k)
                self._rows[row_offset + b] = row
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
