"""Plots the demo, the docs and the benchmarks save as PNG files.

- `keras_memory.plots.training`: the demo's training-loss curves.
- `keras_memory.plots.diagrams`: the docs' diagrams of attention masks and of
  where a sharded memory lives.
- `keras_memory.plots.benchmarks`: the quality, recall and memory-footprint
  figures of `keras-memory bench`.
- `keras_memory.plots.quality_gap`: the quality sweep's gap to `xl` against
  training steps and model size.
- `keras_memory.plots.soak`: a soak's cost and memory, and the cost of a
  document by its length.
- `keras_memory.plots.figure`: what they share (pyplot on the Agg backend,
  saving, `inline_png`).

matplotlib is imported when a figure is drawn, not when this package is.
"""

from keras_memory.plots.answer_bits import plot_answer_bits
from keras_memory.plots.benchmarks import plot_memory_footprint, plot_quality, plot_recall
from keras_memory.plots.diagrams import plot_melodi_mask, plot_memory_sharding, plot_window_mask
from keras_memory.plots.figure import inline_png
from keras_memory.plots.quality_gap import plot_quality_gap, quality_gaps
from keras_memory.plots.soak import cost_by_document_length, plot_cost_by_document_length, plot_soak
from keras_memory.plots.training import plot_losses

__all__ = [
    "cost_by_document_length",
    "inline_png",
    "plot_cost_by_document_length",
    "plot_losses",
    "plot_melodi_mask",
    "plot_memory_footprint",
    "plot_memory_sharding",
    "plot_quality",
    "plot_quality_gap",
    "plot_answer_bits",
    "plot_recall",
    "plot_soak",
    "plot_window_mask",
    "quality_gaps",
]
