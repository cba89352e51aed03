"""Soak: one long document streamed through each model kind, its cost and memory watched.

A stateful `MemoryLM` (or `MelodiLM`) of each kind reads one document of `--tokens` random byte
ids (seeded), segment by segment, the way a user streams a long document: one
`model.predict_on_batch` call per segment (`--train`: one `model.train_on_batch` step, AdamW and
the model's padding-masked cross-entropy), the memory carried in the model's variables, `reset`
True on the first segment only. Keras compiles the step (`jax.jit` on JAX, `tf.function` on
TensorFlow; torch runs eagerly).

After `--warmup` segments (compilation included), every `--every` segments print one JSON line:
tokens processed, seconds per 1k tokens over the interval, the process's resident memory (RSS),
device memory in use where the backend reports it (GPUs; null on the CPU, where it is the RSS),
the bytes of the memory state (every block's state tensors), whether the state is finite and its
largest magnitude, and how often Keras traced the step (a Python side effect in `predict_step` /
`train_step`, which runs once per trace under `jax.jit` and `tf.function`; null on torch). A
summary line per kind follows: RSS growth from the first interval to the last, the ratio of the
last interval's cost per token to the first's, and whether the state's size stayed constant and
its values finite. `--plot PATH` draws cost and RSS against tokens processed
(`keras_memory.plots.plot_soak`).

Reproduce (from the repository root):
    KERAS_BACKEND=jax .venv/bin/python benchmarks/soak.py --plot docs/images/soak.png \\
        | tee benchmarks/results/soak_jax_cpu.jsonl
    KERAS_BACKEND=torch .venv/bin/python benchmarks/soak.py --tokens 65536 --kinds xl,melodi
    KERAS_BACKEND=jax .venv/bin/python benchmarks/soak.py --train --tokens 131072
"""

import argparse
import datetime
import json
import os
import sys
import time

import keras
import numpy as np

from keras_memory.backend.device import device_memory_bytes, device_name
from keras_memory.memories import MODEL_KINDS, get_kind
from keras_memory.models import PRESETS, MemoryLM
from keras_memory.plots import cost_by_document_length


def host_rss_bytes():
    """Resident memory of this process, from /proc (Linux) or psutil."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # noqa: PLC0415 (only off Linux)

    return psutil.Process().memory_info().rss


def memory_state(model):
    """Every block's state, as numpy arrays: `{block name/state name: array}`."""
    return {
        f"{block.name}/{name}": keras.ops.convert_to_numpy(value)
        for block in model.blocks
        for name, value in block.read_state().items()
    }


def count_traces(model, step_name):
    """Counts the traces of the model's `predict_step` or `train_step`.

    Under `jax.jit` and `tf.function` the Python body of the step runs once per trace, so a
    counter in it counts compilations; an eager backend (torch) runs it on every call.
    """
    traces = [0]
    step = getattr(model, step_name)

    def counting_step(*args, **kwargs):
        traces[0] += 1
        return step(*args, **kwargs)

    setattr(model, step_name, counting_step)
    return traces


def build_model(args, kind):
    overrides = {"segment_length": args.segment_length}
    options = get_kind(kind).option_names()
    if args.memory_size is not None and "memory_size" in options:
        overrides["memory_size"] = args.memory_size
    if args.retrieval is not None and "retrieval" in options:
        overrides["retrieval"] = args.retrieval
    model = MemoryLM.from_preset(args.preset, kind=kind, stateful=True, **overrides)
    model.build({"tokens": (args.batch_size, args.segment_length), "reset": (args.batch_size,)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    return model


def soak(args, kind, emit):
    """Streams the document through a `kind` model; emits interval records, returns them."""
    model = build_model(args, kind)
    segment, batch = args.segment_length, args.batch_size
    document = np.random.default_rng(args.seed).integers(
        3, model.vocab_size, size=(batch, args.tokens + 1), dtype=np.int32
    )
    num_segments = args.tokens // segment
    traces = count_traces(model, "train_step" if args.train else "predict_step")
    traced = keras.backend.backend() != "torch"
    base = {
        "benchmark": "soak",
        "backend": keras.backend.backend(),
        "kind": kind,
        "preset": args.preset,
        "mode": "train" if args.train else "predict",
        "batch_size": batch,
        "segment_length": segment,
    }
    records = []
    start, interval_start = time.perf_counter(), None
    for i in range(num_segments):
        tokens = document[:, i * segment : (i + 1) * segment + 1]
        inputs = {"tokens": tokens[:, :-1], "reset": np.full((batch,), i == 0)}
        if args.train:
            model.train_on_batch(inputs, tokens[:, 1:])  # returns the loss as a float: waits
        else:
            model.predict_on_batch(inputs)  # returns numpy logits: waits
        done = i + 1
        interval_end = (done - args.warmup) % args.every == 0 or done == num_segments
        if done == args.warmup:
            seconds = round(time.perf_counter() - start, 3)  # compilation included
            emit({**base, "event": "warmup", "segments": done, "seconds": seconds})
            interval_start = time.perf_counter()
        elif done > args.warmup and interval_end:
            elapsed = time.perf_counter() - interval_start
            segments = (done - args.warmup) % args.every or args.every
            state = memory_state(model)
            floats = [v for v in state.values() if np.issubdtype(v.dtype, np.floating)]
            max_abs = max((float(np.abs(v).max()) for v in floats), default=0.0)
            record = {
                **base,
                "event": "interval",
                "tokens": done * segment,  # read so far by each row
                "interval_tokens": segments * segment,
                "seconds_per_1k_tokens": round(1000 * elapsed / (segments * segment * batch), 5),
                "rss_bytes": host_rss_bytes(),
                "device_bytes": device_memory_bytes(),
                "state_bytes": sum(v.nbytes for v in state.values()),
                "state_finite": all(bool(np.isfinite(v).all()) for v in floats),
                "state_max_abs": round(max_abs, 4),
                "traces": traces[0] if traced else None,
            }
            emit(record)
            records.append(record)
            interval_start = time.perf_counter()
    return base, records


def summarize(base, records):
    """Growth of RSS and cost from the first interval after warm-up to the last.

    Allocators hold and release buffers, so a bounded RSS can still swing between intervals
    (the memorizing kinds' 4 MB states are copied each step): `rss_growth_mib` (last minus
    first) reads one swing, while a leak shows in `rss_peak_growth_between_halves_mib`, the
    highest RSS of the second half of the run minus the highest of the first. Likewise
    `cost_ratio_last_first` compares two single intervals; `cost_ratio_quarters` the medians of
    the last and first quarters of the run.
    """
    if not records:
        return {**base, "event": "summary", "intervals": 0}
    first, last = records[0], records[-1]
    costs = [r["seconds_per_1k_tokens"] for r in records]
    rss = [r["rss_bytes"] for r in records]
    half, quarter = max(1, len(records) // 2), max(1, len(records) // 4)
    return {
        **base,
        "event": "summary",
        "intervals": len(records),
        "tokens": last["tokens"],
        "rss_first_bytes": first["rss_bytes"],
        "rss_last_bytes": last["rss_bytes"],
        "rss_growth_mib": _mib(last["rss_bytes"] - first["rss_bytes"]),
        "rss_peak_growth_mib": _mib(max(rss) - first["rss_bytes"]),
        "rss_peak_growth_between_halves_mib": _mib(max(rss[half:] or rss) - max(rss[:half])),
        "seconds_per_1k_tokens_first": first["seconds_per_1k_tokens"],
        "seconds_per_1k_tokens_last": last["seconds_per_1k_tokens"],
        "seconds_per_1k_tokens_median": round(float(np.median(costs)), 5),
        "cost_ratio_last_first": round(costs[-1] / costs[0], 3),
        "cost_ratio_quarters": round(
            float(np.median(costs[-quarter:]) / np.median(costs[:quarter])), 3
        ),
        "seconds_per_1k_tokens_by_length": {
            str(n): round(c, 5) for n, c in cost_by_document_length(records).items()
        },
        "state_bytes": last["state_bytes"],
        "state_bytes_constant": len({r["state_bytes"] for r in records}) == 1,
        "state_finite": all(r["state_finite"] for r in records),
        "traces": last["traces"],
        "device": device_name(),
        "date": datetime.date.today().isoformat(),
    }


def _mib(num_bytes):
    return round(num_bytes / 2**20, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=1_048_576, help="document length (per row)")
    parser.add_argument(
        "--kinds", default=",".join(MODEL_KINDS), help=f"comma list of {', '.join(MODEL_KINDS)}"
    )
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--segment-length", type=int, help="default: the preset's")
    parser.add_argument("--batch-size", type=int, default=1, help="rows, each its own document")
    parser.add_argument("--memory-size", type=int, help="memorizing kinds' entries (default 8192)")
    parser.add_argument("--retrieval", help="memorizing kind's kNN method (default exact)")
    parser.add_argument("--train", action="store_true", help="train_on_batch steps")
    parser.add_argument("--every", type=int, default=128, help="segments per printed interval")
    parser.add_argument("--warmup", type=int, default=16, help="segments before the first one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch.set_num_threads (torch only); 1 is 5-7x faster than 2 on 2 busy cores",
    )
    parser.add_argument("--plot", help="PNG file: cost and RSS against tokens, one line per kind")
    parser.add_argument(
        "--length-plot", help="PNG file: cost per token and peak RSS against document length"
    )
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    args.segment_length = args.segment_length or PRESETS[args.preset]["segment_length"]
    if set(kinds) - set(MODEL_KINDS) or min(args.every, args.warmup, args.batch_size) < 1:
        parser.error(f"--kinds must be in {MODEL_KINDS}; --every, --warmup, --batch-size >= 1")
    if args.tokens // args.segment_length <= args.warmup:
        parser.error("--tokens must cover more than --warmup segments")
    if args.torch_threads and keras.backend.backend() == "torch":
        import torch  # noqa: PLC0415

        torch.set_num_threads(args.torch_threads)

    def emit(record):
        print(json.dumps(record), flush=True)

    results = {}
    for kind in kinds:
        print(f"soak: {kind} ...", file=sys.stderr, flush=True)
        base, records = soak(args, kind, emit)
        emit(summarize(base, records))
        results[kind] = records
    title = f"{keras.backend.backend()}, {device_name()}, preset {args.preset}"
    if args.plot:
        from keras_memory.plots import plot_soak  # noqa: PLC0415 (matplotlib only here)

        os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
        print(plot_soak(results, args.plot, title=title), file=sys.stderr)
    if args.length_plot:
        from keras_memory.plots import plot_cost_by_document_length  # noqa: PLC0415

        os.makedirs(os.path.dirname(os.path.abspath(args.length_plot)), exist_ok=True)
        mode = "training" if args.train else "inference"
        print(
            plot_cost_by_document_length(results, args.length_plot, title=f"{title}, {mode}"),
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
