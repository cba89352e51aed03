"""A host-resident kNN memory (`memory_placement="host"`): host ScaNN against exact on device.

Two parts, one JSON line per setting (stdout, and `--out`):

`lookup`: one (row, head) of `n` entries, `--queries` queries (512: a segment's worth at the
d512 size), k = 32, float32, for `n` in `--sizes` and the head sizes `--dims` (16: the `tiny`
preset's `head_dim`; 64: `small_d512`'s). Two data sets, each named in the `data` field:
- `clustered`: unit-norm keys around 32 random centres (a centre ~ N(0, I) plus N(0, 0.3^2 I),
  then normalised, as `knn_retrieval.py` and `tests/ops/test_knn.py` make them); each query is
  a stored key plus noise of norm about 0.1, normalised: a planted neighbour (`planted_hit` is
  the share of queries whose planted key is among the k found; exact search's share is the
  ceiling, below 1 where other keys of the dense cluster lie closer to the query).
- `gaussian`: unit-norm N(0, I) keys and queries: no structure for a partition to use (the
  hard case, reported for honesty).
The true top-k comes from a numpy brute force over blocks of 65,536 keys. Methods:
- `exact`: `keras_memory.ops.knn.exact_top_k` (the two-stage exact search the device
  placement runs) in `jax.jit`, with the layer's default `chunk_size` 8,192 and with 65,536;
  the first call (compilation) apart, then the median of `--repeats` calls, each until ready
  (every method of a setting is called once per round, rounds repeated: see `lookup_setting`).
  XLA uses every core. `bucketed` and `approx` (`--device-methods`, the other on-device
  methods of `keras_memory.ops.retrieve_top_k`, chunk 8,192) are timed the same way on the
  first data set only.
- `scann`: the host placement's index, `keras_memory.backend.scann_index.RowIndex` (one
  ScaNN searcher per head, single-threaded `search_batched`, as `HostMemory` calls it).
  `build_s` is the index build (once per turn of the ring in a layer, see
  `keras_memory.backend.host_memory`); `ms_median` the search alone, median of `--repeats`.
  `searcher` says which `build_searcher` built it: `library` (today's
  `keras_memory.backend.scann_index.build_searcher`) or `before` (its parameters before
  this benchmark tuned them, kept below as `build_searcher_before`: sqrt(n) leaves,
  searching a quarter, trained on all entries, `score_ah(2)`, re-ranking
  max(128, 16k, n/500)). `speedup` is the faster exact chunk size's median over ScaNN's;
  `goal_met` the issue's goal (at >= 1M entries: speedup >= 10 at recall@32 >= 0.9).
- `sweep` (largest size only): the library's tree searched with other leaf counts and
  re-ranking depths (ScaNN's per-call overrides), so the choice can be read off.

`train`: tokens/s of the `memorizing` kind, `tiny` preset, JAX, batch `--batch-size`, one
`train_on_batch` per step (AdamW), each setting in a child process (its RSS is its own):
- `device`: the default placement, a `--device-memory`-entry ring per (row, head) on the
  device, exact retrieval. On a CPU a chunk of the ring a row stores nothing in is not scored,
  so a ring that is not yet full costs less to search than a full one.
- `host`: `memory_placement="host"` with `--host-memory` entries per (row, head). Filling
  1M entries by training would take 8,192 steps per row, so after one real step (which
  creates the rows through `HostMemory` at step 1) every row's `keys`/`values` are
  overwritten with random unit-norm vectors, all slots marked valid and the index dropped,
  so the next step builds each (row, head) tree over the whole memory (`first_step_s`;
  `row_index_builds_first_step` counts rows, each of `num_heads` trees). The state's
  `memory_step` and the rows' `step` are left as that real step set them, so they agree.
  Timed steps then search and upsert into a full memory.
Both: `warmup` untimed steps (compilation), then `--steps` timed, median step time;
`rss_bytes` is the process's resident set after the steps, `peak_rss_bytes` its peak;
`host_memory_bytes_formula` is `keras_memory.backend.host_memory.host_memory_bytes`.

Reproduce (from the repository root; the full run takes 20-25 minutes on 2 cores):
    KERAS_BACKEND=jax .venv/bin/python benchmarks/host_memory.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/host_memory.py --quick   # < 60 s, prints only
    KERAS_BACKEND=jax .venv/bin/python benchmarks/host_memory.py --parts lookup --sizes 1048576
"""

import argparse
import datetime
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT_OUT = os.path.join(RESULTS, "host_memory_cpu.jsonl")
K = 32


def build_searcher_before(database, k):
    """`build_searcher`'s parameters before this benchmark tuned them (for before/after)."""
    from keras_memory.backend.scann_index import SCANN_BRUTE_FORCE_BELOW, _scann

    n = len(database)
    builder = _scann().builder(database, k, "dot_product")
    if n < SCANN_BRUTE_FORCE_BELOW:
        return builder.score_brute_force().build()
    leaves = int(math.sqrt(n))
    return (
        builder.tree(
            num_leaves=leaves, num_leaves_to_search=max(1, leaves // 4), training_sample_size=n
        )
        .score_ah(2, anisotropic_quantization_threshold=0.2)
        .reorder(max(128, 16 * k, n // 500))
        .build()
    )


def _normalise(x):
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def make_data(kind, n, dim, num_queries, seed=0):
    """`(keys (n, dim), queries (num_queries, dim), planted ids or None)`, float32."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        keys = _normalise(rng.standard_normal((n, dim), dtype=np.float32))
        return keys, _normalise(rng.standard_normal((num_queries, dim), dtype=np.float32)), None
    if kind != "clustered":
        raise ValueError(f"unknown data {kind!r}")
    centres = rng.standard_normal((32, dim), dtype=np.float32)
    keys = centres[rng.integers(0, 32, n)]
    keys += 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
    keys = _normalise(keys)
    planted = rng.integers(0, n, num_queries)
    noise = (0.1 / math.sqrt(dim)) * rng.standard_normal((num_queries, dim), dtype=np.float32)
    return keys, _normalise(keys[planted] + noise), planted


def brute_force_top_k(queries, keys, k, block=65536):
    """Exact top-k ids `(queries, k)` of `queries @ keys.T`, `block` keys at a time."""
    best_scores = best_ids = None
    for start in range(0, len(keys), block):
        scores = queries @ keys[start : start + block].T
        ids = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(scores, ids, 1)
        ids = ids + start
        if best_scores is not None:
            top = np.concatenate([best_scores, top], 1)
            ids = np.concatenate([best_ids, ids], 1)
        keep = np.argpartition(-top, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(top, keep, 1)
        best_ids = np.take_along_axis(ids, keep, 1)
    return best_ids


def recall(found, expected):
    """Mean over queries of |found & expected| / k."""
    found = np.asarray(found).reshape(len(expected), -1)
    return float(np.mean([len(np.intersect1d(f, e)) for f, e in zip(found, expected)])) / K


def planted_hit(found, planted):
    if planted is None:
        return None
    found = np.asarray(found).reshape(len(planted), -1)
    return round(float(np.mean([p in f for f, p in zip(found, planted)])), 4)


def timed(fn, repeats):
    """`(median s, min s, last result)` of `repeats` calls of `fn()`."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def _common(**fields):
    from keras_memory.backend.device import device_name

    return {
        "benchmark": "host_memory",
        **fields,
        "device": device_name(),
        "cpu_count": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
    }


def run_lookup(args, emit):
    sizes = [int(s) for s in args.sizes.split(",")]
    for data in args.data.split(","):
        for dim in (int(d) for d in args.dims.split(",")):
            for n in sizes:
                lookup_setting(args, emit, data, dim, n, sweep=args.sweep and n == max(sizes))
                gc.collect()


def lookup_setting(args, emit, data, dim, n, sweep):
    """Every method on one memory, timed in interleaved rounds; emits one line per method.

    All methods are compiled or built first; then each round calls each once, so a change
    in the machine's load (other jobs) falls on all of them alike. `speedup_paired` is the
    median over rounds of (the faster exact's time / ScaNN's time) in the same round.
    """
    keys, queries, planted = make_data(data, n, dim, args.queries)
    start = time.perf_counter()
    expected = brute_force_top_k(queries, keys, K)
    truth_s = time.perf_counter() - start
    setting = {"data": data, "entries": n, "dim": dim, "queries": args.queries}
    setting |= {"k": K, "rows": 1, "heads": 1}
    methods = [("exact", chunk) for chunk in sorted({min(8192, n), min(65536, n)})]
    if data == args.data.split(",")[0]:
        methods += [(m, min(8192, n)) for m in args.device_methods.split(",") if m != "exact"]
    candidates = [prepare_device(keys, queries, method, chunk) for method, chunk in methods]
    for variant in filter(None, args.searchers.split(",")):
        candidates.append(prepare_scann(keys, queries, variant))
    times = [[] for _ in candidates]
    found = [None] * len(candidates)
    for _ in range(args.repeats):
        for i, candidate in enumerate(candidates):
            start = time.perf_counter()
            result = candidate["call"]()
            times[i].append(time.perf_counter() - start)
            found[i] = candidate["found"](result)
    exact = [i for i, c in enumerate(candidates) if c["fields"].get("method") == "exact"]
    best = min(exact, key=lambda i: statistics.median(times[i]))
    best_ms = 1000 * statistics.median(times[best])
    for i, candidate in enumerate(candidates):
        fields = dict(candidate["fields"])
        score = recall(found[i], expected)
        record = {
            "part": "lookup",
            **fields,
            **setting,
            "ms_median": round(1000 * statistics.median(times[i]), 2),
            "ms_min": round(1000 * min(times[i]), 2),
            "ms_all": [round(1000 * t, 1) for t in times[i]],
            "repeats": args.repeats,
            "recall_at_32": round(score, 4),
            "planted_hit": planted_hit(found[i], planted),
            "truth_s": round(truth_s, 2),
        }
        if fields["method"] == "scann":
            speedup = best_ms / (1000 * statistics.median(times[i]))
            paired = statistics.median(e / s for e, s in zip(times[best], times[i]))
            record |= {
                "exact_ms_best": round(best_ms, 2),
                "exact_chunk_best": candidates[best]["fields"]["chunk_size"],
                "speedup": round(speedup, 2),
                "speedup_paired": round(paired, 2),
                "goal_met": (speedup >= 10 and score >= 0.9) if n >= 2**20 else None,
            }
            parallel_s, _, _ = timed(
                lambda searcher=candidate["searcher"]: searcher.search_batched_parallel(
                    queries, final_num_neighbors=K
                ),
                args.repeats,
            )
            record["parallel_ms_median"] = round(1000 * parallel_s, 2)
        emit(_common(**record))
        if sweep and fields.get("searcher") == "library":
            run_sweep(args, emit, setting, candidate["searcher"], queries, expected, planted)


def prepare_device(keys, queries, method, chunk):
    """A jitted `retrieve_top_k` over one (row, head), compiled by a first call."""
    import jax

    from keras_memory.ops.knn import retrieve_top_k

    arguments = [
        jax.device_put(x)
        for x in (queries[None, :, None, :], keys[None, :, None, :], np.ones((1, len(keys)), bool))
    ]
    search = jax.jit(lambda q, m, v: retrieve_top_k(method, q, m, v, K, chunk)[1])

    def call():
        return jax.block_until_ready(search(*arguments))

    first_s, _, _ = timed(call, 1)
    fields = {"method": method, "chunk_size": chunk, "first_call_ms": round(1000 * first_s, 1)}
    return {"fields": fields, "call": call, "found": lambda ids: np.asarray(ids)[0, 0]}


def prepare_scann(keys, queries, variant):
    """The host placement's index of one (row, head), built by `variant`'s `build_searcher`."""
    from keras_memory.backend import scann_index

    library = scann_index.build_searcher
    scann_index.build_searcher = build_searcher_before if variant == "before" else library
    try:
        start = time.perf_counter()
        index = scann_index.RowIndex(keys[:, None, :], np.arange(len(keys)), K)
        build_s = time.perf_counter() - start
    finally:
        scann_index.build_searcher = library
    host_queries = np.ascontiguousarray(queries[:, None, :])  # (queries, heads, dim)
    searcher = index.searchers[0]
    fields = {
        "method": "scann",
        "searcher": "library" if variant == "after" else variant,
        "build_s": round(build_s, 2),
        "search_threads": 1,
        "config": _scann_config(searcher),
    }
    return {
        "fields": fields,
        "call": lambda: index.search(host_queries, K),
        "found": lambda slots: slots[0],
        "searcher": searcher,
    }


def _scann_config(searcher):
    """The leaves, leaves searched, re-ranking depth and hashing of a built searcher."""
    text = searcher.config()
    config = {}
    for name, key in (
        ("num_children", "num_leaves"),
        ("max_spill_centers", "leaves_to_search"),
        ("expected_sample_size", "training_sample_size"),  # the tree's (printed first)
        ("num_dims_per_block", "dims_per_block"),
        ("approx_num_neighbors", "reorder"),
    ):
        for line in text.splitlines():
            if line.strip().startswith(name + ":"):
                config[key] = int(float(line.split(":")[1]))
                break
    return config


def run_sweep(args, emit, setting, searcher, queries, expected, planted):
    leaves = _scann_config(searcher).get("num_leaves")
    if not leaves:
        return
    for fraction in (4, 10, 20):
        for reorder in (512, 1024, 2048):
            median_s, _, (ids, _) = timed(
                lambda fraction=fraction, reorder=reorder: searcher.search_batched(
                    queries,
                    final_num_neighbors=K,
                    leaves_to_search=max(1, leaves // fraction),
                    pre_reorder_num_neighbors=reorder,
                ),
                args.repeats,
            )
            emit(
                _common(
                    part="sweep",
                    method="scann",
                    **setting,
                    num_leaves=leaves,
                    leaves_to_search=max(1, leaves // fraction),
                    reorder=reorder,
                    ms_median=round(1000 * median_s, 2),
                    recall_at_32=round(recall(ids, expected), 4),
                    planted_hit=planted_hit(ids, planted),
                )
            )


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def train_child(args):
    """One training setting (this process): prints its JSON line."""
    import keras

    from keras_memory.backend.host_memory import host_memory_bytes
    from keras_memory.layers.memory_layer import memory_layers
    from keras_memory.models import PRESETS, MemoryLM

    preset = PRESETS["tiny"]
    host = args.placement == "host"
    size = args.host_memory if host else args.device_memory
    batch, segment = args.batch_size, preset["segment_length"]
    options = {"memory_size": size}
    if host:
        options["memory_placement"] = "host"
    model = MemoryLM.from_preset("tiny", kind="memorizing", stateful=True, **options)
    model.build({"tokens": (batch, segment), "reset": (batch,)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    rng = np.random.default_rng(0)

    def make_batch(first):
        tokens = rng.integers(3, model.vocab_size, size=(batch, segment + 1), dtype=np.int32)
        return {"tokens": tokens[:, :-1], "reset": np.full((batch,), first)}, tokens[:, 1:]

    def step(first=False):
        inputs, targets = make_batch(first)
        start = time.perf_counter()
        loss = model.train_on_batch(inputs, targets)
        return time.perf_counter() - start, loss

    first_call_s, _ = step(first=True)  # compiles; creates the host rows at step 1
    layers = [layer for layer in memory_layers(model) if getattr(layer, "host_memory", None)]
    prefill_s = first_step_s = None
    builds_before = 0
    if host:
        start = time.perf_counter()
        fill = np.random.default_rng(1)
        for layer in layers:
            memory = layer.host_memory
            for row_id in range(batch):
                row = memory.rows[row_id]
                for array in (row.keys, row.values):
                    for head in range(memory.num_heads):  # a head at a time: bounded scratch
                        block = fill.standard_normal(array.shape[::2], dtype=np.float32)
                        array[:, head] = _normalise(block)
                row.valid[:] = True
                row.index = None  # built over the whole memory at the next search
                row.pending = np.zeros(0, np.int64)
            builds_before = memory.stats["builds"]
        prefill_s = time.perf_counter() - start
        first_step_s, _ = step()  # builds every (row, head) index
    for _ in range(args.warmup):
        step()
    times, loss = [], None
    for _ in range(args.steps):
        seconds, loss = step()
        times.append(seconds)
    median_s = statistics.median(times)
    stats = {}
    if host:
        memory = layers[0].host_memory
        stats = {
            "host_memory_layers": len(layers),
            # HostMemory counts a (row) index of `heads` searchers as one build.
            "row_index_builds_first_step": memory.stats["builds"] - builds_before,
            "entries_per_row_head": memory.num_entries(0),
            "host_memory_bytes_formula": host_memory_bytes(
                batch, size, memory.num_heads, memory.head_dim
            )
            * len(layers),
            "prefill_s": round(prefill_s, 2),
            "first_step_s": round(first_step_s, 2),
        }
    print(
        json.dumps(
            _common(
                part="train",
                backend=keras.backend.backend(),
                kind="memorizing",
                preset="tiny",
                placement=args.placement,
                retrieval="scann" if host else "exact",
                memory_size=size,
                batch_size=batch,
                segment_length=segment,
                num_heads=preset["num_heads"],
                head_dim=preset["head_dim"],
                compile_step_s=round(first_call_s, 2),
                warmup=args.warmup,
                steps=args.steps,
                step_time_s=round(median_s, 4),
                step_times_s=[round(t, 3) for t in times],
                tokens_per_s=round(batch * segment / median_s, 1),
                loss=round(float(loss), 4),
                rss_bytes=rss_bytes(),
                peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                **stats,
            )
        ),
        flush=True,
    )


def run_train(args, emit):
    for placement in ("device", "host"):
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--train-child",
            placement,
            *("--host-memory", str(args.host_memory), "--device-memory", str(args.device_memory)),
            *("--batch-size", str(args.batch_size), "--steps", str(args.steps)),
            *("--warmup", str(args.warmup)),
        ]
        env = {**os.environ, "KERAS_BACKEND": "jax"}
        run = subprocess.run(command, capture_output=True, text=True, env=env)
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        if run.returncode or not lines:
            sys.stderr.write(run.stderr[-4000:])
            raise SystemExit(f"training child ({placement}) failed: exit {run.returncode}")
        emit(json.loads(lines[-1]))


def run_rows(args, emit):
    """One `HostMemory.lookup_and_write` over a batch of full rows, on 1 thread and on all cores.

    The store is made full through `from_arrays` (clustered unit keys, no
    index yet): the first call builds every (row, head) tree (`build_s`), the
    next `--repeats` search and write (`ms_median`).
    """
    from keras_memory.backend.host_memory import HostMemory, set_search_threads

    batch, heads, dim, n, length = args.batch_size, 4, 16, args.rows_memory, args.queries
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((32, dim)).astype("float32")

    def clustered(*shape):
        points = centres[rng.integers(0, 32, shape)]
        return _normalise(points + 0.3 * rng.standard_normal(points.shape).astype("float32"))

    arrays = {"host_memory_rows": np.arange(batch), "host_memory_step": np.ones(batch, np.int64)}
    for row in range(batch):
        keys = clustered(n, heads)
        arrays.update(
            {
                f"host_row{row}_keys": keys,
                f"host_row{row}_values": keys,
                f"host_row{row}_valid": np.ones(n, bool),
                f"host_row{row}_pending": np.zeros(0, np.int64),
            }
        )
    for threads in sorted({1, os.cpu_count() or 1}):
        set_search_threads(threads)
        memory = HostMemory(n, heads, dim, 32)
        memory.from_arrays(arrays)
        times = []
        for call in range(args.repeats + 1):
            queries = clustered(batch, length, heads)
            start = time.perf_counter()
            memory.lookup_and_write(
                queries, queries, queries, np.zeros(batch, bool), call + 1, call * length % n
            )
            times.append(time.perf_counter() - start)
        emit(
            _common(
                part="rows",
                threads=threads,
                rows=batch,
                heads=heads,
                dim=dim,
                entries=n,
                queries=length,
                k=32,
                build_s=round(times[0], 2),
                ms_median=round(1000 * float(np.median(times[1:])), 1),
                ms_all=[round(1000 * t, 1) for t in times[1:]],
            )
        )
    set_search_threads(os.cpu_count() or 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 60 s, prints only")
    parser.add_argument("--parts", default="lookup,train,rows")
    parser.add_argument("--out", default=None, help=f"JSON lines file (full run: {DEFAULT_OUT})")
    parser.add_argument("--sizes", default="65536,262144,1048576")
    parser.add_argument("--dims", default="16,64", help="head_dim of tiny and small_d512")
    parser.add_argument("--data", default="clustered,gaussian")
    parser.add_argument("--queries", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device-methods", default="exact,bucketed,approx")
    parser.add_argument("--searchers", default="before,after", help="'' for none")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false")
    parser.add_argument("--host-memory", type=int, default=1048576)
    parser.add_argument("--device-memory", type=int, default=65536)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows-memory", type=int, default=65536, help="entries per row (rows)")
    parser.add_argument("--train-child", choices=("device", "host"), dest="placement")
    args = parser.parse_args()
    if args.placement:
        return train_child(args)
    if args.quick:
        args.sizes, args.repeats, args.queries = "4096,16384", 2, 128
        args.host_memory, args.device_memory = 16384, 4096
        args.batch_size, args.steps, args.warmup, args.rows_memory = 2, 2, 0, 4096
    elif args.out is None:
        args.out = DEFAULT_OUT
    out = open(args.out, "a") if args.out else None

    def emit(record):
        line = json.dumps(record)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    parts = args.parts.split(",")
    if "lookup" in parts:
        run_lookup(args, emit)
    if "train" in parts:
        run_train(args, emit)
    if "rows" in parts:
        run_rows(args, emit)
    if out:
        out.close()


if __name__ == "__main__":
    main()
