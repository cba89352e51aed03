"""A kNN memory kept in host RAM and searched by ScaNN: memories larger than the device.

`KNNAttention(memory_placement="host")` keeps no ring on the device. Each
call hands this store the segment's queries, keys and values (one host
call per layer and step, `keras_memory.backend.host_memory_lookup`); the
store forgets the rows that start a document, searches every (row, head)
index for the queries' top `k`, gathers those entries' keys and values to
return to the device, and only then writes the segment: write after read,
as the device ring. The memory then scales with host RAM, not device memory.

Slots follow the device ring exactly: the write position is the device
state's shared `memory_pointer` (a block that would run past the end starts
over at 0), so a host memory holds the same entries in the same slots as a
device ring fed the same segments.

The store follows one sequence of calls. The device state carries a step
count (`memory_step`, 0 in an initial state); every row remembers the step
it expects next. A state at step 0 means "empty memory" and clears the
row; any other mismatch (a stale state, a second call on the same state) is
refused rather than read from a memory that no longer matches it.

Each (row, head) has a ScaNN index (`keras_memory.backend.scann_index.RowIndex`):
brute force below 2,048 entries, a tree above. Written slots are upserted;
the index is rebuilt from scratch when a row is reset, and when the entries
upserted since its last build reach the number it was built with (at
doubling sizes while the memory fills, then once per turn of the ring), so
a tree is never trained on less than half of what it holds. The rows of a
call are searched (and rebuilt) on a thread per core.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from keras_memory.backend.scann_index import RowIndex

# Host bytes per float of a (row, head) entry: its key and value, and the
# float32 copy of the key ScaNN keeps for exact re-ranking (its hashed codes
# and partitions add a few percent, counted by the margin below).
_FLOATS_PER_ENTRY = 3
_MARGIN = 1.1
# Array names of a saved store.
_STEP, _ROWS = "host_memory_step", "host_memory_rows"


def host_memory_bytes(rows, capacity, num_heads, head_dim):
    """Host RAM a host memory of `rows` full rows needs, in bytes (see `_FLOATS_PER_ENTRY`)."""
    floats = rows * capacity * num_heads * head_dim * _FLOATS_PER_ENTRY
    return int(floats * 4 * _MARGIN)


def available_host_bytes():
    """Bytes of RAM this machine can still give (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_host_memory_fits(layer_name, rows, capacity, num_heads, head_dim):
    """Raises ValueError when a full host memory would not fit in this machine's free RAM."""
    needed = host_memory_bytes(rows, capacity, num_heads, head_dim)
    available = available_host_bytes()
    if available is not None and needed > available:
        raise ValueError(
            f"Layer '{layer_name}': a host memory of {capacity:,} entries per (row, head) for "
            f"{rows} rows x {num_heads} heads x {head_dim} dims needs about "
            f"{needed / 2**30:.1f} GiB of host RAM (keys, values and the ScaNN index); this "
            f"machine has {available / 2**30:.1f} GiB available. Lower `memory_size` or the "
            "batch size."
        )


_POOL, _POOL_LOCK = [], threading.Lock()


def _search_pool():
    """The threads rows are searched on: one per core, shared by every host memory."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1))
        return _POOL[0]


def set_search_threads(count):
    """Sets how many threads search the rows of a call (default: one per core).

    Args:
        count: int >= 1. 1 searches the rows one after another.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"`count` must be an int >= 1; got {count!r}.")
    with _POOL_LOCK:
        if _POOL:
            _POOL.pop().shutdown(wait=True)
        _POOL.append(ThreadPoolExecutor(max_workers=count))


def wait_for_host_calls():
    """Waits until every host call already dispatched has run.

    JAX runs an un-jitted layer call's host call asynchronously: reading or
    saving the memory right after it could miss its write. Never call this
    from inside a host call (it would wait for itself).

    A host call that raised (a refused stale state) poisons JAX's chain of
    ordered effects: every later host call takes its token and would fail
    with the same error. Its error is raised here (again, if its outputs
    already raised it) and the chain starts over, so later calls run.
    """
    if keras.backend.backend() == "jax":
        import jax

        try:
            jax.effects_barrier()
        except jax.errors.JaxRuntimeError:
            _restart_ordered_effects()
            raise


def _restart_ordered_effects():
    # JAX has no public way to drop a failed token; without it the process
    # could never run a host call again. Its private token set is cleared
    # where it exists, as `jax.clear_caches` leaves it.
    from jax._src import dispatch  # noqa: PLC0415

    tokens = getattr(dispatch, "runtime_tokens", None)
    if tokens is not None and hasattr(tokens, "clear"):
        tokens.clear()


class _Row:
    """One batch row's entries `(capacity, heads, dim)`, validity and index."""

    def __init__(self, capacity, num_heads, head_dim):
        # np.zeros maps untouched pages lazily: a row costs RAM as it fills.
        self.keys = np.zeros((capacity, num_heads, head_dim), np.float32)
        self.values = np.zeros((capacity, num_heads, head_dim), np.float32)
        self.valid = np.zeros(capacity, bool)
        self.index = None  # RowIndex over the valid slots, or None: build at the next search
        self.pending = np.zeros(0, np.int64)  # slots written since the index last saw them
        self.step = 0  # the step the next call must carry

    def clear(self):
        self.valid[:] = False
        self.index = None
        self.pending = np.zeros(0, np.int64)

    def filled(self):
        """One past the highest valid slot: what a save must keep."""
        slots = np.flatnonzero(self.valid)
        return int(slots[-1]) + 1 if len(slots) else 0


class HostMemory:
    """One kNN memory layer's host-resident memory: a ring and ScaNN indexes per row.

    Args:
        capacity: int. Entries per (row, head).
        num_heads: int. Heads of the keys (the layer's `key_value_heads`).
        head_dim: int.
        num_neighbors: int. `k`, the entries returned per query.
        name: str. The layer's name, for messages.
    """

    def __init__(self, capacity, num_heads, head_dim, num_neighbors, name="kNN memory"):
        self.capacity = capacity
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.num_neighbors = num_neighbors
        self.name = name
        self.rows = {}  # global row -> _Row
        self.stats = {"builds": 0, "upserted": 0, "searches": 0}
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()

    def clear(self):
        """Forgets every row (a stateful layer's `reset_state`)."""
        wait_for_host_calls()
        with self._lock:
            self.rows = {}

    def num_entries(self, row):
        """Valid entries of global batch row `row` (per head)."""
        wait_for_host_calls()
        found = self.rows.get(row)
        return 0 if found is None else int(found.valid.sum())

    def lookup_and_write(self, queries, keys, values, reset, step, pointer, row_offset=0):
        """Searches the memory for `queries`, then writes `keys` and `values`.

        Args:
            queries: float32 `(batch, Q, heads, dim)`: `S`, or `S * R` for
                grouped queries (`keras_memory.ops.query_groups`).
            keys: float32 `(batch, S, heads, dim)`, written after the search.
            values: float32 `(batch, S, heads, dim)`, written with the keys.
            reset: bool `(batch,)`. Rows that start a document: forgotten first.
            step: int. The device state's `memory_step`.
            pointer: int. The device state's `memory_pointer` (write position).
            row_offset: int. Global index of row 0 (a replica's first row).

        Returns:
            `(keys, values, found)`: float32 `(batch, heads, Q, k, dim)` twice
            and bool `(batch, heads, Q, k)`, best first; entries past a row's
            valid count are zeros and not found.
        """
        with self._lock:
            return self._lookup_and_write(
                np.asarray(queries, np.float32),
                np.asarray(keys, np.float32),
                np.asarray(values, np.float32),
                np.asarray(reset, bool).reshape(-1),
                int(step),
                int(pointer),
                int(row_offset),
            )

    def search(self, queries, step, row_offset=0):
        """`lookup_and_write`'s search alone: nothing is written (a decoding step).

        A state at step 0 reads an empty memory; any other step must be the
        one the rows follow.
        """
        with self._lock:
            queries = np.asarray(queries, np.float32)
            step, row_offset = int(step), int(row_offset)
            rows = [None] * len(queries)
            if step != 0:
                rows = [self._checked_row(row_offset + b, step) for b in range(len(queries))]
            return self._found(rows, queries)

    def _found(self, rows, queries):
        """The entries of `rows` (None: empty) that `queries` retrieve; see `lookup_and_write`."""
        batch, length, heads, dim = queries.shape
        k = self.num_neighbors
        found_keys = np.zeros((batch, heads, length, k, dim), np.float32)
        found_values = np.zeros_like(found_keys)
        found = np.zeros((batch, heads, length, k), bool)
        head_axis = np.arange(heads)[:, None, None]

        def search(b):
            # One row's indexes are touched by one thread; ScaNN releases the
            # GIL while it builds and searches, so rows run on all cores.
            slots = self._search(rows[b], queries[b])  # (heads, S, n)
            n = slots.shape[-1]
            found_keys[b, :, :, :n] = rows[b].keys[slots, head_axis]
            found_values[b, :, :, :n] = rows[b].values[slots, head_axis]
            found[b, :, :, :n] = True

        searched = [b for b, row in enumerate(rows) if row is not None and row.valid.any()]
        if len(searched) > 1:
            list(_search_pool().map(search, searched))  # list(): re-raises a row's error
        else:
            for b in searched:
                search(b)
        return found_keys, found_values, found

    def _lookup_and_write(self, queries, keys, values, reset, step, pointer, row_offset):
        # The keys' length: grouped queries come folded, R per key head.
        length = keys.shape[1]
        rows = [self._row(row_offset + b, step) for b in range(len(queries))]  # all checked first
        for b, row in enumerate(rows):
            if reset[b]:
                row.clear()
        result = self._found(rows, queries)
        # The device ring's block rule (keras_memory.ops.ring_buffer.write_segment).
        start = 0 if pointer + length > self.capacity else pointer
        written = np.arange(start, start + length)
        for b, row in enumerate(rows):
            row.keys[written] = keys[b]
            row.values[written] = values[b]
            row.valid[written] = True
            row.pending = np.union1d(row.pending, written)
            row.step = step + 1
        return result

    def _row(self, row_id, step):
        if step != 0:
            return self._checked_row(row_id, step)
        row = self.rows.get(row_id)
        if row is None:
            row = self.rows[row_id] = _Row(self.capacity, self.num_heads, self.head_dim)
        row.clear()  # an initial state: the memory starts empty
        return row

    def _checked_row(self, row_id, step):
        row = self.rows.get(row_id)
        if row is None or row.step != step:
            raise ValueError(
                f"Layer '{self.name}': its host memory (row {row_id}) follows step "
                f"{0 if row is None else row.step}, but the state passed is at step {step}. A "
                "host memory follows one sequence of calls: pass the state the previous call "
                "returned, or an initial state (step 0) to start over."
            )
        return row

    def _search(self, row, queries):
        """The top-k slots `(heads, S, n)` of `queries` `(S, heads, dim)`, n = min(k, entries)."""
        k = self.num_neighbors
        if row.index is not None and len(row.pending):
            if row.index.upserted + len(row.pending) >= row.index.built_size:
                row.index = None  # the index has turned over: retrain its tree
            else:
                row.index.upsert(row.keys, row.pending)
                self._count("upserted", len(row.pending))
        if row.index is None:
            row.index = RowIndex(row.keys, np.flatnonzero(row.valid), k)
            self._count("builds")
        row.pending = np.zeros(0, np.int64)
        self._count("searches")
        return row.index.search(queries, min(k, len(row.index.slot_of)))

    def _count(self, name, number=1):
        with self._stats_lock:  # rows are searched on several threads
            self.stats[name] += number

    def to_arrays(self):
        """`{name: numpy array}` of the whole store; `from_arrays` restores it exactly."""
        wait_for_host_calls()
        with self._lock:
            arrays = {_ROWS: np.asarray(sorted(self.rows), np.int64)}
            arrays[_STEP] = np.asarray([self.rows[r].step for r in sorted(self.rows)], np.int64)
            for row_id in sorted(self.rows):
                row = self.rows[row_id]
                filled = row.filled()
                prefix = f"host_row{row_id}_"
                arrays[prefix + "keys"] = row.keys[:filled]
                arrays[prefix + "values"] = row.values[:filled]
                arrays[prefix + "valid"] = row.valid[:filled]
                arrays[prefix + "pending"] = row.pending
                if row.index is not None:
                    for name, array in row.index.to_arrays().items():
                        arrays[f"{prefix}index_{name}"] = array
            return arrays

    def from_arrays(self, arrays):
        """Replaces the store by the one `to_arrays` saved."""
        wait_for_host_calls()
        rows = {}
        for row_id, step in zip(np.asarray(arrays[_ROWS]), np.asarray(arrays[_STEP])):
            prefix = f"host_row{int(row_id)}_"
            row = _Row(self.capacity, self.num_heads, self.head_dim)
            filled = len(arrays[prefix + "valid"])
            row.keys[:filled] = arrays[prefix + "keys"]
            row.values[:filled] = arrays[prefix + "values"]
            row.valid[:filled] = arrays[prefix + "valid"]
            row.pending = np.asarray(arrays[prefix + "pending"], np.int64)
            row.step = int(step)
            index_prefix = prefix + "index_"
            index_arrays = {
                name[len(index_prefix) :]: np.asarray(value)
                for name, value in arrays.items()
                if name.startswith(index_prefix)
            }
            if index_arrays:
                row.index = RowIndex.from_arrays(index_arrays, self.num_heads)
            rows[int(row_id)] = row
        with self._lock:
            self.rows = rows

    @staticmethod
    def is_saved_name(name):
        """Whether `name` is one of the arrays `to_arrays` writes."""
        return name in (_STEP, _ROWS) or name.startswith("host_row")
