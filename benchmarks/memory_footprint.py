"""Bytes of memory state per batch row, per model kind, at one width.

Builds each model (weights only: nothing is trained or run) and prints one JSON line per
model with `keras_memory.training.memory_footprint`: what the model carries from one segment
to the next (float32 memories and int32 validity flags). The last line compares Melodi
S128+L64 with the Memorizing Transformer's 64k-entry memory, the Melodi paper's comparison
(its goal: 1/8 or less).

Reproduce (from the repository root):
    KERAS_BACKEND=jax .venv/bin/python benchmarks/memory_footprint.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/memory_footprint.py --preset medium_150m
"""

import argparse
import json

from keras_memory.models import PRESETS, MemoryLM
from keras_memory.training import memory_footprint

MODELS = (
    ("xl", {}),
    ("memorizing", {"memory_size": 65536}),
    ("memorizing_dense", {"memory_size": 65536}),
    ("block_recurrent", {}),
    ("melodi", {"preset": "melodi_base"}),
    ("melodi", {"preset": "melodi_s128_l64"}),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="medium_150m", help="sizes of every model")
    parser.add_argument(
        "--feed-forward",
        type=int,
        default=32,
        help="FFN width (no effect on state; small to build fast)",
    )
    args = parser.parse_args()
    sizes = PRESETS[args.preset]
    shape = {
        key: sizes[key]
        for key in ("hidden_dim", "num_layers", "num_heads", "head_dim", "window_length")
    }
    segment = sizes["segment_length"]
    totals = {}
    for kind, options in MODELS:
        options = dict(options)
        own_preset = "preset" in options  # Melodi's rows compare two presets of one kind
        preset = options.pop("preset", args.preset)
        model = MemoryLM.from_preset(
            preset,
            kind=kind,
            vocab_size=259,
            intermediate_dim=args.feed_forward,
            **shape,
            **options,
        )
        model.build({"tokens": (1, segment), "reset": (1,)})
        total = memory_footprint(model)["total"]
        name = f"{kind}:{preset}" if own_preset else kind
        totals[name] = total
        record = {"model": name, "bytes_per_row": total, "mib_per_row": round(total / 2**20, 2)}
        print(json.dumps({**record, **shape, **options}), flush=True)
    melodi, memorizing = totals["melodi:melodi_s128_l64"], totals["memorizing"]
    print(json.dumps({"melodi_s128_l64_over_memorizing_64k": round(melodi / memorizing, 4)}))


if __name__ == "__main__":
    main()
