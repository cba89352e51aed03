"""Plots the demo and docs save as PNG files."""


def plot_losses(curves, path, smoothing=20):
    """Saves training-loss curves (bits per token) to `path`.

    Args:
        curves: dict of label -> list of per-step losses in nats.
        path: str. PNG file to write.
        smoothing: int. Moving-average width.

    Returns:
        `path`.
    """
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, losses in curves.items():
        bits = np.asarray(losses) / math.log(2)
        width = max(1, min(smoothing, len(bits) // 5))
        smooth = np.convolve(bits, np.ones(width) / width, mode="valid")
        ax.plot(np.arange(width, len(bits) + 1), smooth, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (bits per byte)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
