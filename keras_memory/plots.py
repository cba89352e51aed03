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


def plot_window_mask(path, window_length=4, num_windows=2, include_self=False):
    """Saves a diagram of which keys each query of a segment attends to.

    Columns are the keys: the XL cache (the previous segment's last window)
    followed by the segment; rows are the segment's queries. Dark cells are
    attended; the outlined blocks are the `[block k-1, block k]` key range
    window `k` computes over.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    from keras_memory.ops.masks import window_mask

    w, s = window_length, window_length * num_windows
    mask = window_mask(s, s + w, w, include_self=include_self)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * (s + w), 1.0 + 0.45 * s), dpi=120)
    ax.imshow(mask, cmap="Blues", vmin=-0.3, vmax=1.2)
    for k in range(num_windows):
        ax.add_patch(
            Rectangle(
                (k * w - 0.5, k * w - 0.5), 2 * w, w, fill=False, lw=2, edgecolor="darkorange"
            )
        )
    ax.axvline(w - 0.5, color="black", lw=1.5)
    ax.set_xticks(np.arange(s + w))
    ax.set_xticklabels([f"c{i}" for i in range(w)] + [str(i) for i in range(s)])
    ax.set_yticks(np.arange(s))
    ax.set_xlabel("keys: XL cache (c0..) | segment tokens")
    ax.set_ylabel("queries (segment tokens)")
    title = "includes itself" if include_self else "exactly the W previous tokens"
    ax.set_title(f"Sliding window W={w}, segment S={s}: {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
