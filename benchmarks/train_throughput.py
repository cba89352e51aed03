"""Training throughput (tokens/s) of `keras_memory.models.MemoryLM` on the current Keras backend.

One step is one `model.train_on_batch` call of a stateful model (forward, backward and an AdamW
update; the model's default padding-masked cross-entropy) on a random batch of
`batch_size x segment_length` tokens; the memory is carried between steps (`reset` is True on the
first step only). After `--warmup` untimed steps (which include compilation), `--steps` steps are
timed one by one, each until its computation has finished; the median is reported, one JSON line
per kind on stdout. The device is the backend's default: its first GPU if any, else the CPU.

Preset `d512` is `small_d512` with window 512, segment 2048 (4 windows) and batch 2: the config of
the PyTorch peer figures in ../shared/bench/README.md (from the repository root), which are
quoted, not measured here.

Reproduce (from the repository root):
    KERAS_BACKEND=jax .venv/bin/python benchmarks/train_throughput.py --preset tiny
    KERAS_BACKEND=jax .venv/bin/python benchmarks/train_throughput.py --preset d512 --kind xl \\
        --steps 3 --warmup 1
"""

import argparse
import datetime
import json
import statistics
import time

import keras
import numpy as np

from keras_memory.backend.device import device_name
from keras_memory.models import MODEL_KINDS, PRESETS, MemoryLM

# --preset d512: (preset, overrides, default batch size; 8 for the other presets)
D512 = ("small_d512", {"window_length": 512, "segment_length": 2048}, 2)
PEER_NOTE = (
    "peer figures from shared/bench/README.md (lucidrains PyTorch packages, d512 L6 window "
    "512, 4 segments, batch 2), measured on 2 CPU cores, not in this run"
)


def sync(model):
    """Waits for all pending work on the model's variables (the update included)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.block_until_ready([v.value for v in model.variables])
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        import tensorflow as tf

        tf.test.experimental.sync_devices()


def measure(args, kind, preset, overrides, batch_size):
    segment, window = overrides["segment_length"], overrides["window_length"]
    model = MemoryLM.from_preset(
        preset, kind=kind, stateful=True, dtype=args.precision, **overrides
    )
    model.build({"tokens": (batch_size, segment), "reset": (batch_size,)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    rng = np.random.default_rng(0)

    def batch(first):
        tokens = rng.integers(3, model.vocab_size, size=(batch_size, segment + 1), dtype=np.int32)
        reset = np.full((batch_size,), first)
        return {"tokens": tokens[:, :-1], "reset": reset}, tokens[:, 1:]

    batches = [batch(i == 0) for i in range(min(4, args.warmup + args.steps))]
    times = []
    for i in range(args.warmup + args.steps):
        inputs, targets = batches[min(i, len(batches) - 1)]
        start = time.perf_counter()
        loss = model.train_on_batch(inputs, targets)  # a Python float: waits for the loss
        sync(model)  # and for the variable updates
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {
        "benchmark": "train_throughput",
        "backend": keras.backend.backend(),
        "preset": args.preset,
        "kind": kind,
        "batch_size": batch_size,
        "segment_length": segment,
        "window_length": window,
        "precision": args.precision,
        **({"memory_size": overrides["memory_size"]} if "memory_size" in overrides else {}),
        "params": model.count_params(),  # includes the stateful memory variables
        "trainable_params": sum(int(np.prod(v.shape)) for v in model.trainable_variables),
        "step_time_s": round(median, 4),
        "tokens_per_s": round(batch_size * segment / median, 1),
        "loss": round(float(loss), 4),
        "device": device_name(),
        "date": datetime.date.today().isoformat(),
    }
    is_peer_config = (args.preset, batch_size, segment, window) == ("d512", 2, 2048, 512)
    if is_peer_config and result["device"] == "cpu":
        result["peer_tokens_per_s"] = {"block_recurrent_pytorch": 1160, "memorizing_pytorch": 730}
        result["note"] = PEER_NOTE
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny", choices=[*sorted(PRESETS), "d512"])
    parser.add_argument(
        "--kind", action="append", help=f"any of {', '.join(MODEL_KINDS)}; repeat or comma list"
    )
    parser.add_argument("--batch-size", type=int, help="default 8; 2 for d512")
    parser.add_argument("--segment-length", type=int)
    parser.add_argument("--window-length", type=int)
    parser.add_argument("--vocab-size", type=int)
    parser.add_argument(
        "--memory-size", type=int, help="kNN / dense-KV memory entries (memorizing kinds)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    args = parser.parse_args()
    kinds = [k for arg in args.kind or ["xl,local"] for k in arg.split(",") if k]
    if set(kinds) - set(MODEL_KINDS) or args.steps < 1 or args.warmup < 0:
        parser.error(f"--kind must be in {MODEL_KINDS}, --steps >= 1 and --warmup >= 0")

    preset, overrides, batch_size = D512 if args.preset == "d512" else (args.preset, {}, 8)
    keys = ("segment_length", "window_length", "vocab_size")
    overrides = {k: PRESETS[preset][k] for k in keys[:2]} | overrides
    overrides |= {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    batch_size = args.batch_size or batch_size
    for kind in kinds:
        options = dict(overrides)
        if args.memory_size and kind.startswith("memorizing"):
            options["memory_size"] = args.memory_size
        print(json.dumps(measure(args, kind, preset, options, batch_size)), flush=True)


if __name__ == "__main__":
    main()
