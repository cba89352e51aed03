"""The demo's figure: training-loss curves (`keras-memory demo`)."""

import math

import numpy as np

from keras_memory.plots.figure import pyplot, save


def plot_losses(curves, path, smoothing=20):
    """Saves training-loss curves (bits per token) to `path`.

    One line per run: its per-step loss in bits (nats / ln 2), smoothed by a
    moving average, against the training step; the demo draws local-only
    against Transformer-XL this way.

    Args:
        curves: dict of label -> list of per-step losses in nats.
        path: str. PNG file to write.
        smoothing: int. Moving-average width.

    Returns:
        `path`.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, losses in curves.items():
        bits = np.asarray(losses) / math.log(2)
        width = max(1, min(smoothing, len(bits) // 5))
        smooth = np.convolve(bits, np.ones(width) / width, mode="valid")
        ax.plot(np.arange(width, len(bits) + 1), smooth, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (bits per token)")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path)
