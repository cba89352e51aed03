"""Regenerates the pictures under docs/images from the library's own code.

python docs/make_figures.py

The soak figures are drawn from the JSON lines `benchmarks/soak.py` saved in
benchmarks/results/ (each skipped when its file is absent): soak.png from
soak_jax_cpu.jsonl, cost_by_length.png (cost per token against document length,
training) from soak_train_jax_cpu_2026-12-03.jsonl.
"""

import json
import os

from keras_memory.plots import (
    plot_cost_by_document_length,
    plot_melodi_mask,
    plot_memory_sharding,
    plot_soak,
    plot_window_mask,
)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, os.pardir, "benchmarks", "results")
SOAK_RESULTS = os.path.join(RESULTS, "soak_jax_cpu.jsonl")
TRAIN_SOAK_RESULTS = os.path.join(RESULTS, "soak_train_jax_cpu_2026-12-03.jsonl")


def soak_results(path):
    """`{kind: interval records}` and a title from a `benchmarks/soak.py` output file."""
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    results = {}
    for record in records:
        if record.get("event") == "interval":
            results.setdefault(record["kind"], []).append(record)
    summary = next(r for r in records if r.get("event") == "summary")
    title = f"{summary['backend']}, {summary['device']}, preset {summary['preset']}"
    return results, title


if __name__ == "__main__":
    images = os.path.join(HERE, "images")
    os.makedirs(images, exist_ok=True)
    print(plot_window_mask(os.path.join(images, "window_mask.png")))
    print(plot_window_mask(os.path.join(images, "window_mask_self.png"), include_self=True))
    print(plot_melodi_mask(os.path.join(images, "melodi_mask.png")))
    print(plot_memory_sharding(os.path.join(images, "memory_sharding.png")))
    if os.path.isfile(SOAK_RESULTS):
        results, title = soak_results(SOAK_RESULTS)
        print(plot_soak(results, os.path.join(images, "soak.png"), title=title))
    if os.path.isfile(TRAIN_SOAK_RESULTS):
        results, title = soak_results(TRAIN_SOAK_RESULTS)
        path = os.path.join(images, "cost_by_length.png")
        print(plot_cost_by_document_length(results, path, title=f"{title}, training"))
