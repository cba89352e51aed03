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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from keras_memory.ops.masks import summary_causal_mask

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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_soak(results, path, title=None):
    """Saves a soak run's cost and memory against the tokens read (`benchmarks/soak.py`).

    Two panels, one line per model kind: milliseconds per 1k tokens over each
    interval (log scale), and the change of the process's resident memory
    (RSS) since the kind's first interval, both against the tokens of the
    document read so far. Flat lines are what a soak should show.

    Args:
        results: dict of label -> list of interval records, each a dict with
            `tokens`, `seconds_per_1k_tokens` and `rss_bytes` (the
            `"event": "interval"` lines `benchmarks/soak.py` prints).
        path: str. PNG file to write.
        title: str or None. Figure title.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    fig, (cost, rss) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for label, records in results.items():
        tokens = np.array([r["tokens"] for r in records]) / 1e6
        cost.plot(tokens, [1000 * r["seconds_per_1k_tokens"] for r in records], label=label)
        first = records[0]["rss_bytes"]
        rss.plot(tokens, [(r["rss_bytes"] - first) / 2**20 for r in records], label=label)
    _cost_axis(cost, "cost per token")
    rss.set_ylabel("host RSS change since the first interval (MiB)")
    rss.set_title("host memory", fontsize=10)
    for ax in (cost, rss):
        ax.set_xlabel("tokens of the document read (millions)")
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3, which="both")
    cost.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _cost_axis(ax, title):
    """A log-scale axis of milliseconds per 1k tokens, labelled in plain numbers."""
    import matplotlib.ticker

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("ms per 1k tokens (log scale)")
    ax.set_title(title, fontsize=10)


def cost_by_document_length(records, lengths=None):
    """Mean cost per token of documents of each length, from one soak's intervals.

    Streaming is causal: a document of `L` tokens costs what the first `L`
    tokens of a longer one cost, so the mean over the intervals that end by
    `L` is the cost per token of an `L`-token document (compilation, in the
    soak's warm-up, excluded).

    Args:
        records: list of a soak's `"event": "interval"` dicts, in order,
            with `tokens` (read so far), `interval_tokens` and
            `seconds_per_1k_tokens`.
        lengths: ints, or None for 4k, 16k, ... up to the tokens read.

    Returns:
        dict of length -> seconds per 1k tokens, for the lengths that the
        intervals reach.
    """
    if lengths is None:
        lengths, length = [], 4096
        while records and length <= records[-1]["tokens"]:
            lengths.append(length)
            length *= 4
    costs = {}
    for length in lengths:
        done = [r for r in records if r["tokens"] <= length]
        tokens = sum(r["interval_tokens"] for r in done)
        if tokens:
            seconds = sum(r["seconds_per_1k_tokens"] * r["interval_tokens"] for r in done)
            costs[length] = seconds / tokens
    return costs


def plot_cost_by_document_length(results, path, title=None):
    """Saves cost per token against document length, one line per model kind.

    Two panels against the document length (log scale): milliseconds per 1k
    tokens of a document of that length (`cost_by_document_length`), and the
    process's highest resident memory (RSS) while reading it, as growth over
    the first interval. Flat lines mean linear cost and bounded memory.

    Args:
        results: dict of label -> list of a soak's interval records
            (`benchmarks/soak.py`).
        path: str. PNG file to write.
        title: str or None. Figure title.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (cost, rss) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    for label, records in results.items():
        costs = cost_by_document_length(records)
        lengths = list(costs)
        cost.plot(lengths, [1000 * costs[n] for n in lengths], marker="o", label=label)
        first = records[0]["rss_bytes"]
        peaks = [max(r["rss_bytes"] for r in records if r["tokens"] <= n) - first for n in lengths]
        rss.plot(lengths, [p / 2**20 for p in peaks], marker="o", label=label)
    _cost_axis(cost, "cost per token of a document")
    rss.set_ylabel("peak host RSS growth (MiB)")
    rss.set_title("host memory while reading it", fontsize=10)
    for ax in (cost, rss):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(
                lambda n, _: f"{n / 2**20:g}M" if n >= 2**20 else f"{n / 2**10:g}k"
            )
        )
        ax.set_xlabel("document length (tokens)")
        ax.grid(alpha=0.3, which="both")
    rss.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_memory_sharding(path, batch_size=8, num_heads=4, mesh_shape=(4, 2)):
    """Saves a diagram of which device holds which part of a kNN memory.

    The memory `(batch, memory, heads, head_dim)` is drawn as its batch-rows
    x heads grid, each cell coloured by the device of a `(batch, model)` mesh
    that holds it under `keras_memory.distribution.layout_map`, beside
    `keras.distribution.DataParallel`, where every device holds all of it.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from keras_memory.distribution import STATE_LAYOUTS

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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_quality(records, directory):
    """Saves the figures of a quality run (`keras-memory bench quality`).

    `quality_memory.png`: validation bits per byte against the memory state
    each model carries per batch row (log scale), one panel per corpus, the
    Memorizing models joined by memory size with and without the XL cache,
    local-only (no state) as a dashed line. `quality_losses.png`: each
    model's smoothed training loss minus local-only's on the same batches,
    one panel per corpus.

    Args:
        records: list of the dicts `keras_memory.bench.quality.run_quality`
            returns (or the JSON lines it wrote).
        directory: str. Folder for the PNG files (created if missing).

    Returns:
        The list of paths written.
    """
    import math
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    os.makedirs(directory, exist_ok=True)
    corpora = list(dict.fromkeys(r["corpus"] for r in records))
    paths = []

    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 4.2), dpi=120)
    for ax, corpus in zip(np.atleast_1d(axes), corpora):
        rows = [r for r in records if r["corpus"] == corpus]
        for cached, style in ((True, "o-"), (False, "s--")):
            line = sorted(
                (r["state_bytes_per_row"], r["validation_bits_per_byte"], r["memory_size"])
                for r in rows
                if r["kind"] == "memorizing" and r.get("use_cache", True) == cached
            )
            if line:
                x, y, sizes = zip(*line)
                label = "Memorizing + XL cache" if cached else "Memorizing, no cache"
                ax.plot(x, y, style, label=label)
                for xi, yi, size in line:
                    ax.annotate(
                        f"{size // 1024}k",
                        (xi, yi),
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        for r in rows:
            if r["kind"] == "local":
                ax.axhline(r["validation_bits_per_byte"], color="grey", ls=":", label="local")
            elif r["kind"] != "memorizing":
                ax.plot(
                    r["state_bytes_per_row"], r["validation_bits_per_byte"], "D", label=r["model"]
                )
        ax.set_xscale("log")
        ax.set_xlabel("memory state carried per document row (bytes, log scale)")
        ax.set_ylabel("validation bits per byte")
        steps = rows[0]["steps"]
        ax.set_title(f"{corpus}: {rows[0]['preset']} models, {steps} steps each", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(os.path.join(directory, "quality_memory.png"))
    fig.savefig(paths[-1])
    plt.close(fig)

    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 4.2), dpi=120)
    colours = plt.get_cmap("tab20")
    for ax, corpus in zip(np.atleast_1d(axes), corpora):
        rows = [r for r in records if r["corpus"] == corpus]
        # Every model read the same batches, so the per-step difference from
        # local-only is what its memory changed, without the batches' noise.
        base = next((r for r in rows if r["kind"] == "local"), rows[0])
        width = max(1, min(50, len(base["losses"]) // 5))

        def smooth(losses, width=width):
            bits = np.asarray(losses) / math.log(2)
            return np.convolve(bits, np.ones(width) / width, mode="valid")

        reference = smooth(base["losses"])
        for i, r in enumerate(rows):
            curve = smooth(r["losses"]) - reference
            steps = np.arange(width, width + len(curve))
            ax.plot(steps, curve, label=r["model"], lw=1, color=colours(i % 20))
        ax.set_xlabel("training step")
        ax.set_ylabel(f"training loss minus {base['model']}'s (bits per byte)")
        ax.set_title(f"{corpus}: {width}-step means, same batches for every model", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    paths.append(os.path.join(directory, "quality_losses.png"))
    fig.savefig(paths[-1])
    plt.close(fig)
    return paths


def inline_png(path, alt="figure"):
    """An HTML `<img>` tag holding the PNG file at `path` (base64), for pages
    and notebooks that show a figure without serving the file."""
    import base64
    import html

    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def plot_memory_footprint(footprints, path, title=None):
    """Saves a bar chart of the memory state each model carries per batch row.

    Args:
        footprints: dict of model label -> bytes per row
            (`keras_memory.training.memory_footprint(model)["total"]`).
        path: str. PNG file to write.
        title: str or None. Figure title.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(footprints)
    mib = [footprints[label] / 2**20 for label in labels]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(labels) + 1.2), dpi=120)
    bars = ax.barh(range(len(labels)), mib, color="tab:blue")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("memory state per document row (MiB, log scale)")
    for bar, value in zip(bars, mib):
        ax.text(
            bar.get_width() * 1.05,
            bar.get_y() + bar.get_height() / 2,
            f"{value:,.1f}",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(right=max(mib) * 4)
    if title:
        # Over the figure, not the axes: long bar labels would push it off the edge.
        fig.suptitle(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_recall(records, path):
    """Saves recall accuracy against distance, one line per model.

    Args:
        records: list of the dicts `keras_memory.bench.recall.run_recall`
            returns, each with `recall_by_distance`, `chance` and
            `trained_distance`.
        path: str. PNG file to write.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.2), dpi=120)
    styles = ("-", "--", "-.", ":")
    for i, r in enumerate(records):
        curve = sorted((int(d), a) for d, a in r["recall_by_distance"].items())
        # Line styles as well as colours: curves at chance lie on top of each other.
        ax.plot(*zip(*curve), marker=".", ls=styles[i % len(styles)], label=r["model"])
    ax.axhline(records[0]["chance"], color="grey", ls=":", label="chance")
    trained = records[0]["trained_distance"]
    ax.axvline(trained, color="black", ls="--", lw=0.8)
    ax.annotate(" longest distance trained on", (trained, 0.55), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens between the facts and the question (log scale)")
    ax.set_ylabel("answer accuracy")
    ax.set_ylim(0, 1.02)
    window = records[0]["window_length"]
    ax.set_title(f"How far back each memory reaches (one layer, window {window})", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
