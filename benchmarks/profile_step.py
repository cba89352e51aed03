"""Where a training step's time goes, on the JAX backend: XLA's ops, grouped by what they compute.

Traces one `train_on_batch` of a stateful `MemoryLM` (after `--warmup` untimed steps) with
`jax.profiler`, maps each executed XLA op to the JAX operation it came from (the `op_name` in the
optimised HLO, which XLA dumps into a temporary directory), strips layer indices so that the six
layers' attention softmax is one row, and prints one JSON line per group, the slowest first, then
one line with the step's wall time. Ops run concurrently on the CPU's threads, so the groups'
milliseconds can add up to more than the step.

Reproduce (from the repository root):
    .venv/bin/python benchmarks/profile_step.py --preset d512 --kind xl --top 25
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

DUMP = tempfile.mkdtemp(prefix="xla_dump_")
TRACE = tempfile.mkdtemp(prefix="jax_trace_")
# XLA reads its flags once, when the backend starts: set before keras imports jax.
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text"
)

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_memory.models import MODEL_KINDS, PRESETS, MemoryLM  # noqa: E402

D512 = ("small_d512", {"window_length": 512, "segment_length": 2048}, 2)
OP_LINE = re.compile(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) .*?op_name=\"([^\"]+)\"")


def op_names():
    """{XLA op: (shape, op_name)} from the train step's optimised HLO."""
    paths = glob.glob(os.path.join(DUMP, "*train_step*cpu_after_optimizations.txt"))
    paths += glob.glob(os.path.join(DUMP, "*train_step*gpu_after_optimizations.txt"))
    names = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                match = OP_LINE.match(line)
                if match:
                    names[match.group(1)] = (match.group(2), match.group(3))
    return names


def group(op_name):
    op_name = re.sub(r"^jit\(train_step\)/", "", op_name)
    return re.sub(r"_\d+\b", "_N", re.sub(r"block_\d+", "block_N", op_name))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="d512", choices=[*sorted(PRESETS), "d512"])
    parser.add_argument("--kind", default="xl", choices=MODEL_KINDS)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--memory-size", type=int, help="memorizing kinds")
    parser.add_argument(
        "--num-key-value-heads", type=int, help="key/value heads (grouped queries; 1: multi-query)"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    args = parser.parse_args()
    keras.config.set_dtype_policy(args.precision)
    if args.preset == "d512":
        preset, overrides, batch_size = D512
    else:
        preset, overrides, batch_size = args.preset, {}, 8
    if args.memory_size:
        overrides = {**overrides, "memory_size": args.memory_size}
    if args.num_key_value_heads:
        overrides = {**overrides, "num_key_value_heads": args.num_key_value_heads}
    batch_size = args.batch_size or batch_size
    model = MemoryLM.from_preset(preset, kind=args.kind, stateful=True, **overrides)
    segment = overrides.get("segment_length") or PRESETS[preset]["segment_length"]
    model.build({"tokens": (batch_size, segment), "reset": (batch_size,)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    tokens = np.random.default_rng(0).integers(
        3, model.vocab_size, size=(batch_size, segment + 1), dtype=np.int32
    )
    inputs = {"tokens": tokens[:, :-1], "reset": np.zeros((batch_size,), bool)}

    def step():
        model.train_on_batch(inputs, tokens[:, 1:])
        jax.block_until_ready([v.value for v in model.variables])

    for _ in range(args.warmup):
        step()
    jax.profiler.start_trace(TRACE, create_perfetto_trace=True)
    start = time.perf_counter()
    step()
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()

    (path,) = glob.glob(os.path.join(TRACE, "**", "*perfetto_trace.json.gz"), recursive=True)
    with gzip.open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names = op_names()
    totals, counts = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("ph") == "X" and event["name"] in names:
            shape, op_name = names[event["name"]]
            key = (event["name"].split(".")[0], group(op_name), shape)
            totals[key] += event["dur"] / 1e3
            counts[key] += 1
    for (xla_op, op_name, shape), ms in totals.most_common(args.top):
        print(
            json.dumps(
                {
                    "ms": round(ms, 1),
                    "calls": counts[(xla_op, op_name, shape)],
                    "op": op_name,
                    "xla": xla_op,
                    "shape": shape,
                }
            )
        )
    print(
        json.dumps(
            {
                "kind": args.kind,
                "preset": args.preset,
                "batch_size": batch_size,
                "precision": args.precision,
                "step_s": round(wall, 3),
                "ops_ms": round(sum(totals.values()), 1),
                "jax": jax.__version__,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
