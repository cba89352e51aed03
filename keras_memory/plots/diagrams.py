"""The docs' diagrams: what attends to what, and where a memory lives.

Drawn from the library's own masks and layouts (`keras_memory.ops.masks`,
`keras_memory.distribution`), so a figure changes when the code does;
`docs/make_figures.py` writes them to `docs/images/`.
"""

import numpy as np

from keras_memory.plots.figure import pyplot, save


def plot_window_mask(path, window_length=4, num_windows=2, include_self=False):
    """Saves a diagram of which keys each query of a segment attends to.

    Columns are the keys: the XL cache (the previous segment's last window)
    followed by the segment; rows are the segment's queries. Dark cells are
    attended; the outlined blocks are the `[block k-1, block k]` key range
    window `k` computes over.

    Returns:
        `path`.
    """
    from matplotlib.patches import Rectangle

    from keras_memory.ops.masks import window_mask

    plt = pyplot()
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
    return save(fig, path)


def plot_melodi_mask(path, window_length=6, summary_size=3, memory_size=3, long_term_size=4):
    """Saves a diagram of what a Melodi window's queries attend to.

    Rows are the window's queries: context tokens `x`, then summary tokens
    `u`. Columns are the keys: the layer's short-term memory `m` (the
    previous window, compressed), the window's `x` and `u` under the strict
    causal mask, and, in the long-term layer only, the long-term memory,
    attended without mask and mixed with the rest by a learned gate.

    Returns:
        `path`.
    """
    from keras_memory.ops.masks import summary_causal_mask

    plt = pyplot()
    w, u, m, g = window_length, summary_size, memory_size, long_term_size
    causal = summary_causal_mask(w, u, m).astype(float)
    # The long-term columns read at a lighter shade: a second, gated attention.
    table = np.concatenate([np.full((w + u, g), 0.5), np.full((w + u, 1), np.nan), causal], 1)
    fig, ax = plt.subplots(figsize=(1.4 + 0.42 * table.shape[1], 1.2 + 0.42 * (w + u)), dpi=120)
    ax.imshow(np.ma.masked_invalid(table), cmap="Blues", vmin=-0.3, vmax=1.2)
    for column in (g + 1 + m - 0.5, g + 1 + m + w - 0.5):
        ax.axvline(column, color="black", lw=1.5)
    ax.axhline(w - 0.5, color="black", lw=1.5)
    labels = [f"L{i}" for i in range(g)] + [""]
    labels += [f"m{i}" for i in range(m)] + [f"x{i}" for i in range(w)]
    labels += [f"u{i}" for i in range(u)]
    ax.set_xticks(np.arange(table.shape[1]))
    ax.set_xticklabels(labels)
    ax.set_yticks(np.arange(w + u))
    ax.set_yticklabels([f"x{i}" for i in range(w)] + [f"u{i}" for i in range(u)])
    ax.set_xlabel("keys: long-term memory (gated, long-term layer only) | short-term m | x | u")
    ax.set_ylabel("queries: context x, summary u")
    ax.set_title("Melodi window: x never sees u; u sees m, all of x and earlier u", fontsize=10)
    return save(fig, path)


def plot_memory_sharding(path, batch_size=8, num_heads=4, mesh_shape=(4, 2)):
    """Saves a diagram of which device holds which part of a kNN memory.

    The memory `(batch, memory, heads, head_dim)` is drawn as its batch-rows
    x heads grid, each cell coloured by the device of a `(batch, model)` mesh
    that holds it under `keras_memory.distribution.layout_map`, beside
    `keras.distribution.DataParallel`, where every device holds all of it.

    Returns:
        `path`.
    """
    from keras_memory.distribution import STATE_LAYOUTS

    plt = pyplot()
    batch_shards, model_shards = mesh_shape
    axes_of_memory = STATE_LAYOUTS["state_memory_keys"]
    row_axis, head_axis = axes_of_memory[0], axes_of_memory[2]
    splits = {"batch": batch_shards, "model": model_shards, None: 1}
    rows_per_device = batch_size // splits[row_axis]
    heads_per_device = num_heads // splits[head_axis]
    # Devices fill the mesh in order, model axis fastest (as DeviceMesh lays them out).
    owner = np.array(
        [
            [
                (b // rows_per_device) * model_shards + h // heads_per_device
                for h in range(num_heads)
            ]
            for b in range(batch_size)
        ]
    )
    devices = batch_shards * model_shards
    fig, (left, right) = plt.subplots(1, 2, figsize=(6.5, 4.4), dpi=120)
    colours = plt.get_cmap("tab10", devices)
    right.imshow(owner, cmap=colours, vmin=-0.5, vmax=devices - 0.5)
    for b in range(batch_size):
        for h in range(num_heads):
            right.text(h, b, f"d{owner[b, h]}", ha="center", va="center", fontsize=8)
    right.set_title(f"layout_map, mesh {mesh_shape}: one copy, split", fontsize=10)
    left.imshow(np.ones_like(owner), cmap="Greys", vmin=0, vmax=3)
    left.text(
        (num_heads - 1) / 2,
        (batch_size - 1) / 2,
        f"all of it on\neach of {devices} devices",
        ha="center",
        va="center",
        fontsize=10,
    )
    left.set_title("DataParallel: replicated", fontsize=10)
    for ax in (left, right):
        ax.set_xticks(range(num_heads))
        ax.set_yticks(range(batch_size))
        ax.set_xlabel("heads")
        ax.set_ylabel("batch rows (documents)")
    fig.suptitle("Where a kNN memory (batch, memory, heads, head_dim) lives", fontsize=11)
    return save(fig, path)
