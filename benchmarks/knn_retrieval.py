"""Cost and recall of kNN retrieval from a memory (`keras_memory.ops.retrieve_top_k`).

Two modes, one JSON line per measurement on stdout:

`lookup`: one call of `retrieve_top_k(method, queries, memory_keys, memory_valid, k, chunk_size)`
per method (`exact`, `bucketed`, `approx`, `scann`) and memory size, on the current Keras backend,
float32: queries `(batch, queries, heads, dim)` against a memory `(batch, memory, heads, dim)`, all
entries valid. On JAX the call is wrapped in `jax.jit` (method, k and chunk size static), on
TensorFlow in `tf.function(jit_compile=False)`, on torch it runs eagerly. After one untimed warmup
call (compilation included; reported as `first_call_ms`) `--repeats` calls are timed, each until
its result is ready; `ms_median` is their median. `recall_at_k` is the mean over all (row, head,
query) of |found & true| / k, the true top-k coming from a numpy brute force over the same data.
The data is unit-norm and clustered (32 shared centres plus noise, as in tests/ops/test_knn.py),
so that nearest neighbours are well defined. `scann` builds one ScaNN index per (row, head) on the
host inside every call (`includes_index_build: true`), then scores what it found on device.

`scann-large`: ScaNN against exact numpy brute force for one (row, head) of `--entries` entries of
dimension `--dim`, `--queries` queries. ScaNN runs through the library's own host path
(`keras_memory.backend.scann_index.ScannMemoryIndex`, so with `build_searcher`'s settings, which
the output records: leaves, leaves searched, training sample, dimensions per hash code,
re-ranking depth); the ScaNN builder is instrumented to time the index build (`build_s`) and the
single-threaded `search_batched` call (`search_s`, `scann_queries_per_s`) separately. The brute
force scores the entries in blocks of `--block` (bounded memory) with a running top-k merge; its
time gives `brute_force_queries_per_s` (numpy/BLAS, all cores). `recall_at_k` is ScaNN's recall
against it.

`scann-updates`: the cost of following a ring-buffer memory with ScaNN, per segment, two
policies on the same stream: `updated` (one `ScannMemoryIndex` for the whole run: upserts of
the segment's slots, rebuilds by its policy) and `rebuilt` (a fresh index every call, timed on
every `--fresh-every`-th call only). A memory of `--memory-size` entries (batch 1, `--heads`
heads of `--dim`) is written `--segment` entries at a time for `--turns` turns of the ring, with
`--queries` queries per call, all clustered as above; each call searches before the segment is
written, as the layer does. Reports the mean ms per call of each policy (total and once the ring
is full), the number of builds, recall@k against brute force on the timed fresh calls, and the
median of 3 calls of on-device `exact` retrieval over the full memory for comparison.

Reproduce (from the repository root):
    KERAS_BACKEND=jax .venv/bin/python benchmarks/knn_retrieval.py lookup
    KERAS_BACKEND=torch .venv/bin/python benchmarks/knn_retrieval.py lookup \\
        --memory-sizes 8192,32768
    KERAS_BACKEND=jax .venv/bin/python benchmarks/knn_retrieval.py scann-large --entries 1000000
    .venv/bin/python benchmarks/knn_retrieval.py scann-updates --memory-size 65536
"""

import argparse
import contextlib
import datetime
import json
import statistics
import sys
import time

import keras
import numpy as np

from keras_memory.backend.device import device_name
from keras_memory.backend.scann_index import ScannMemoryIndex
from keras_memory.ops.knn import RETRIEVAL_METHODS, retrieve_top_k


def clustered_pair(seed, num_queries, memory, batch, heads, dim):
    """Queries `(batch, queries, heads, dim)`, keys `(batch, memory, heads, dim)`: same centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, dim), dtype=np.float32)

    def sample(n):
        points = centres[rng.integers(0, 32, (batch, n, heads))]
        points += 0.3 * rng.standard_normal((batch, n, heads, dim), dtype=np.float32)
        return points / np.linalg.norm(points, axis=-1, keepdims=True)

    return sample(num_queries), sample(memory)


def brute_force_top_k(queries, keys, k, block=65536):
    """Exact top-k ids `(num_queries, k)` of `queries @ keys.T`, scoring `block` keys at a time."""
    best_scores = best_ids = None
    for start in range(0, len(keys), block):
        scores = queries @ keys[start : start + block].T
        n = min(k, scores.shape[1])
        ids = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        top = np.take_along_axis(scores, ids, 1)
        ids = ids + start
        if best_scores is not None:
            top = np.concatenate([best_scores, top], 1)
            ids = np.concatenate([best_ids, ids], 1)
        keep = np.argpartition(-top, min(k, top.shape[1]) - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(top, keep, 1)
        best_ids = np.take_along_axis(ids, keep, 1)
    return best_ids


def recall(found, expected):
    """Mean over rows of |found & expected| / k; both `(..., k)` int arrays."""
    found = found.reshape(-1, found.shape[-1])
    expected = expected.reshape(-1, expected.shape[-1])
    hits = [len(np.intersect1d(f, e)) for f, e in zip(found, expected)]
    return float(np.mean(hits)) / expected.shape[-1]


def compiled_lookup(method, k, chunk_size):
    """`retrieve_top_k` for the backend: jitted (jax), tf.function (tensorflow), eager (torch)."""
    backend = keras.backend.backend()

    def lookup(queries, memory_keys, memory_valid):
        return retrieve_top_k(method, queries, memory_keys, memory_valid, k, chunk_size)

    if backend == "jax":
        import jax

        jitted = jax.jit(lookup)
        return lambda *args: jax.block_until_ready(jitted(*args))
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(lookup, jit_compile=False)
        return lambda *args: [t.numpy() for t in function(*args)]
    if backend == "torch":
        import torch

        def run(*args):
            result = lookup(*args)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return result

        return run
    raise ValueError(f"unsupported backend {backend!r}")


def run_lookup(args):
    methods = [m for m in args.methods.split(",") if m]
    if set(methods) - set(RETRIEVAL_METHODS):
        sys.exit(f"--methods must be among {RETRIEVAL_METHODS}")
    sizes = [int(s) for s in args.memory_sizes.split(",") if s]
    for size in sizes:
        q, mem = clustered_pair(0, args.queries, size, args.batch, args.heads, args.dim)
        valid = np.ones((args.batch, size), bool)
        # Exact reference: (batch, heads, queries, k).
        expected = np.stack(
            [
                np.stack(
                    [brute_force_top_k(q[b, :, h], mem[b, :, h], args.k) for h in range(args.heads)]
                )
                for b in range(args.batch)
            ]
        )
        tensors = [keras.ops.convert_to_tensor(x) for x in (q, mem, valid)]
        for method in methods:
            fn = compiled_lookup(method, args.k, args.chunk_size)
            start = time.perf_counter()
            _, indices = fn(*tensors)
            first = time.perf_counter() - start
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn(*tensors)
                times.append(time.perf_counter() - start)
            result = {
                "benchmark": "knn_retrieval",
                "mode": "lookup",
                "backend": keras.backend.backend(),
                "method": method,
                "memory_size": size,
                "batch": args.batch,
                "queries": args.queries,
                "heads": args.heads,
                "dim": args.dim,
                "k": args.k,
                "chunk_size": args.chunk_size,
                "dtype": "float32",
                "ms_median": round(1000 * statistics.median(times), 3),
                "ms_min": round(1000 * min(times), 3),
                "first_call_ms": round(1000 * first, 1),
                "repeats": args.repeats,
                "recall_at_k": round(recall(keras.ops.convert_to_numpy(indices), expected), 4),
                "includes_index_build": method == "scann",
                "device": device_name(),
                "date": datetime.date.today().isoformat(),
            }
            print(json.dumps(result), flush=True)


@contextlib.contextmanager
def timed_scann(timings):
    """Times the ScaNN index build and search of `ScannMemoryIndex`, without changing them.

    Wraps `scann_ops_pybind.builder` (looked up by `scann_index` at call time) so that the
    builder's `build()` and the searcher's `search_batched()` record their wall time and the
    builder's settings in `timings`.
    """
    from scann.scann_ops.py import scann_ops_pybind

    original = scann_ops_pybind.builder

    def builder(db, num_neighbors, distance_measure):
        instance = original(db, num_neighbors, distance_measure)
        build = instance.build

        def timed_build(*a, **kw):
            timings["config"] = instance.params
            start = time.perf_counter()
            searcher = build(*a, **kw)
            timings["build_s"] = time.perf_counter() - start
            search = searcher.search_batched

            def timed_search(*a, **kw):
                start = time.perf_counter()
                out = search(*a, **kw)
                timings["search_s"] = time.perf_counter() - start
                return out

            searcher.search_batched = timed_search
            return searcher

        instance.build = timed_build
        return instance

    scann_ops_pybind.builder = builder
    try:
        yield timings
    finally:
        scann_ops_pybind.builder = original


def run_scann_large(args):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((32, args.dim), dtype=np.float32)

    def sample(n):
        points = centres[rng.integers(0, 32, n)]
        points += 0.3 * rng.standard_normal((n, args.dim), dtype=np.float32)
        return points / np.linalg.norm(points, axis=-1, keepdims=True)

    keys, queries = sample(args.entries), sample(args.queries)
    print(f"data ready: {keys.shape} keys, {queries.shape} queries", file=sys.stderr, flush=True)

    start = time.perf_counter()
    expected = brute_force_top_k(queries, keys, args.k, args.block)
    brute_s = time.perf_counter() - start
    print(f"brute force: {brute_s:.2f} s", file=sys.stderr, flush=True)

    timings = {}
    with timed_scann(timings):
        start = time.perf_counter()
        found = ScannMemoryIndex().search(
            queries[None, :, None, :],
            keys[None, :, None, :],
            np.ones((1, args.entries), bool),
            args.k,
        )
        call_s = time.perf_counter() - start
    found = found[0, 0]  # (queries, k)
    config = timings.get("config", {})  # the builder's settings (build_searcher's choice)
    tree = config.get("tree", {})
    result = {
        "benchmark": "knn_retrieval",
        "mode": "scann-large",
        "entries": args.entries,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "num_leaves": tree.get("num_leaves"),
        "num_leaves_to_search": tree.get("num_leaves_to_search"),
        "training_sample_size": tree.get("training_sample_size"),
        "dims_per_block": config.get("score_ah", {}).get("dimensions_per_block"),
        "reorder": config.get("reorder", {}).get("reordering_num_neighbors"),
        "tree_index": "tree" in config,
        "build_s": round(timings["build_s"], 3),
        "search_s": round(timings["search_s"], 4),
        "scann_queries_per_s": round(args.queries / timings["search_s"], 1),
        "scann_call_s": round(call_s, 3),  # index total: copy, build, search, id mapping
        "brute_force_s": round(brute_s, 3),
        "brute_force_queries_per_s": round(args.queries / brute_s, 1),
        "recall_at_k": round(recall(found, expected), 4),
        "search_threads": 1,  # the index uses search_batched, not search_batched_parallel
        "device": "cpu (host)",
        "date": datetime.date.today().isoformat(),
    }
    print(json.dumps(result), flush=True)


def run_scann_updates(args):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((32, args.dim), dtype=np.float32)

    def sample(n):
        points = centres[rng.integers(0, 32, (1, n, args.heads))]
        points += 0.3 * rng.standard_normal((1, n, args.heads, args.dim), dtype=np.float32)
        return points / np.linalg.norm(points, axis=-1, keepdims=True)

    size, segment = args.memory_size, args.segment
    if size % segment:
        raise SystemExit(f"--memory-size ({size}) must be a multiple of --segment ({segment}).")
    keys = np.zeros((1, size, args.heads, args.dim), np.float32)
    valid = np.zeros((1, size), bool)
    index = ScannMemoryIndex()
    updated, updated_full, fresh, fresh_full, recalls = [], [], [], [], {"u": [], "f": []}
    calls = int(args.turns * size // segment)
    for call in range(calls):
        queries = sample(args.queries)
        full = bool(valid.all())
        start = time.perf_counter()
        found = index.search(queries, keys, valid, args.k)
        elapsed = time.perf_counter() - start
        updated.append(elapsed)
        if full:
            updated_full.append(elapsed)
        if call and call % args.fresh_every == 0:
            start = time.perf_counter()
            found_fresh = ScannMemoryIndex().search(queries, keys, valid, args.k)
            elapsed = time.perf_counter() - start
            fresh.append(elapsed)
            if full:
                fresh_full.append(elapsed)
            scores = np.einsum("qhd,mhd->hqm", queries[0], keys[0])
            scores = np.where(valid[0], scores, -np.inf)
            expected = np.argsort(-scores, axis=-1)[..., : args.k]
            recalls["u"].append(recall(found[0], expected))
            recalls["f"].append(recall(found_fresh[0], expected))
        slots = slice((call * segment) % size, (call * segment) % size + segment)
        keys[:, slots] = sample(segment)
        valid[:, slots] = True
        print(f"call {call + 1}/{calls}", file=sys.stderr, flush=True)

    # The on-device alternative, same memory and queries: exact chunked top-k.
    exact = compiled_lookup("exact", args.k, 8192)
    queries = sample(args.queries)
    exact(queries, keys, valid)  # compile
    exact_times = []
    for _ in range(3):
        start = time.perf_counter()
        exact(queries, keys, valid)
        exact_times.append(time.perf_counter() - start)

    def ms(times):
        return round(1000 * statistics.fmean(times), 2) if times else None

    result = {
        "benchmark": "knn_retrieval",
        "mode": "scann-updates",
        "memory_size": size,
        "segment": segment,
        "heads": args.heads,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "calls": calls,
        "updated_ms_per_call": ms(updated),
        "updated_ms_per_call_full": ms(updated_full),
        "updated_builds": index.stats["builds"],
        "updated_upserted": index.stats["upserted"],
        "rebuilt_ms_per_call": ms(fresh),
        "rebuilt_ms_per_call_full": ms(fresh_full),
        "rebuilt_calls_timed": len(fresh),
        "exact_ms_per_call_full": round(1000 * statistics.median(exact_times), 2),
        "exact_backend": keras.backend.backend(),
        "updated_recall_at_k": round(statistics.fmean(recalls["u"]), 4) if fresh else None,
        "rebuilt_recall_at_k": round(statistics.fmean(recalls["f"]), 4) if fresh else None,
        "device": "cpu (host)",
        "date": datetime.date.today().isoformat(),
    }
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)

    lookup = modes.add_parser("lookup", help="one retrieve_top_k call per method and memory size")
    lookup.add_argument("--methods", default=",".join(RETRIEVAL_METHODS))
    lookup.add_argument("--memory-sizes", default="8192,32768,65536")
    lookup.add_argument("--batch", type=int, default=1)
    lookup.add_argument("--queries", type=int, default=128)
    lookup.add_argument("--heads", type=int, default=4)
    lookup.add_argument("--dim", type=int, default=64)
    lookup.add_argument("--k", type=int, default=32)
    lookup.add_argument("--chunk-size", type=int, default=8192)
    lookup.add_argument("--repeats", type=int, default=5, help="timed calls after one warmup")

    large = modes.add_parser("scann-large", help="ScaNN vs numpy brute force, one (row, head)")
    large.add_argument("--entries", type=int, default=1_000_000)
    large.add_argument("--dim", type=int, default=64)
    large.add_argument("--queries", type=int, default=1024)
    large.add_argument("--k", type=int, default=32)
    large.add_argument("--block", type=int, default=65536, help="brute-force keys per block")

    updates = modes.add_parser("scann-updates", help="following a ring memory: upserts vs rebuilds")
    updates.add_argument("--memory-size", type=int, default=65536)
    updates.add_argument("--segment", type=int, default=512)
    updates.add_argument("--heads", type=int, default=1)
    updates.add_argument("--dim", type=int, default=64)
    updates.add_argument("--queries", type=int, default=512)
    updates.add_argument("--k", type=int, default=32)
    updates.add_argument("--turns", type=float, default=2.0, help="turns of the ring buffer")
    updates.add_argument("--fresh-every", type=int, default=16, help="time a rebuild every N")

    args = parser.parse_args()
    if args.mode == "lookup":
        run_lookup(args)
    elif args.mode == "scann-large":
        run_scann_large(args)
    else:
        run_scann_updates(args)


if __name__ == "__main__":
    main()
