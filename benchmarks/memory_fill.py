"""A memorizing model's training step as its memory fills, with and without empty chunks skipped.

The exact search (`keras_memory.ops.exact_top_k`) skips a chunk of the memory in which a row
holds no entry. This script measures what that buys, and that it changes nothing: it builds
two identical models on the JAX backend, one compiled with the skip and one compiled with
every chunk scored (`keras_memory.ops.knn.conditionals_are_free` answering False while it
traces), resets their memories, and trains them alternately, step by step, on the same
batches, so the host's drift falls on both alike. It prints one JSON line per timed step: the
entries each row holds before the step, both step times, their ratio and both losses (equal
if the skip is exact).

Reproduce (from the repository root; the d512 config, 16,384 entries, one key head):
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
        .venv/bin/python -P benchmarks/memory_fill.py --memory-size 16384 --steps 10
"""

import argparse
import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_memory.ops.knn as knn  # noqa: E402
from keras_memory.backend.device import wait_for_variables  # noqa: E402
from keras_memory.bench.speed import resolve_config  # noqa: E402
from keras_memory.models import PRESETS, MemoryLM  # noqa: E402


def never_skip():
    """`conditionals_are_free` saying no: the search scores every chunk."""
    return False


def build(preset, options, batch_size, may_skip, first_batch):
    """A compiled model whose train step was traced with `may_skip` deciding the skip."""
    knn.conditionals_are_free = may_skip
    keras.utils.set_random_seed(0)
    model = MemoryLM.from_preset(preset, kind="memorizing", stateful=True, **options)
    model.build({"tokens": (batch_size, options["segment_length"]), "reset": (batch_size,)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    model.train_on_batch(*first_batch)  # compiles; resets the memory
    wait_for_variables(model)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="d512")
    parser.add_argument("--memory-size", type=int, default=16384)
    parser.add_argument("--num-key-value-heads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10, help="including the compiling one")
    args = parser.parse_args(argv)
    preset, options, batch_size = resolve_config(
        args.config,
        memory_size=args.memory_size,
        num_key_value_heads=args.num_key_value_heads,
    )
    segment = options["segment_length"]
    rng = np.random.default_rng(0)
    skip = knn.conditionals_are_free
    vocab_size = PRESETS[preset]["vocab_size"]
    batches = []
    for i in range(args.steps):
        tokens = rng.integers(3, vocab_size, (batch_size, segment + 1), dtype=np.int32)
        reset = np.full((batch_size,), i == 0)
        batches.append(({"tokens": tokens[:, :-1], "reset": reset}, tokens[:, 1:]))
    models = {
        "every_chunk": build(preset, options, batch_size, never_skip, batches[0]),
        "skip_empty": build(preset, options, batch_size, skip, batches[0]),
    }
    knn.conditionals_are_free = skip
    for step in range(1, args.steps):
        record = {"benchmark": "memory_fill", "config": args.config, **options}
        record["entries_per_row_before"] = min(step * segment, args.memory_size)
        for name, model in models.items():
            start = time.perf_counter()
            loss = model.train_on_batch(*batches[step])
            wait_for_variables(model)
            record[f"{name}_step_s"] = round(time.perf_counter() - start, 3)
            record[f"{name}_loss"] = round(float(loss), 5)
        record["every_chunk_over_skip"] = round(
            record["every_chunk_step_s"] / record["skip_empty_step_s"], 3
        )
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    sys.exit(main())
