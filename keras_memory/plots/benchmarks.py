"""Figures of the benchmarks' records: quality, recall reach, memory footprint.

`plot_quality` draws `keras-memory bench quality`'s records, `plot_recall`
those of `keras-memory bench recall` (both behind their `--plot` option), and
`plot_memory_footprint` the memory state each model carries
(`keras_memory.training.memory_footprint`, as `docs/melodi.md` counts it).
"""

import math
import os

import numpy as np

from keras_memory.plots.figure import pyplot, save


def plot_quality(records, directory, baseline="local"):
    """Saves the figures of a quality run (`keras-memory bench quality`).

    `quality_memory.png`: validation bits per byte against the memory state
    each model carries per batch row (log scale), one panel per corpus, the
    Memorizing models joined by memory size with and without the XL cache,
    the baseline (local-only: no state) as a dashed line. `quality_losses.png`:
    each model's smoothed training loss minus the baseline's on the same
    batches, one panel per corpus.

    Args:
        records: list of the dicts `keras_memory.bench.quality.run_quality`
            returns (or the JSON lines it wrote).
        directory: str. Folder for the PNG files (created if missing).
        baseline: str. The `"model"` name every other is compared with
            (`keras_memory.bench.configs.QUALITY_BASELINE`).

    Returns:
        The list of paths written.
    """
    os.makedirs(directory, exist_ok=True)
    corpora = list(dict.fromkeys(r["corpus"] for r in records))
    return [
        _plot_quality_by_memory(
            records, corpora, baseline, os.path.join(directory, "quality_memory.png")
        ),
        _plot_loss_differences(
            records, corpora, baseline, os.path.join(directory, "quality_losses.png")
        ),
    ]


def _plot_quality_by_memory(records, corpora, baseline, path):
    """`plot_quality`'s first figure: validation bits per byte against the state carried."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 4.2), dpi=120)
    for ax, corpus in zip(np.atleast_1d(axes), corpora):
        rows = [r for r in records if r["corpus"] == corpus]
        for cached, style in ((True, "o-"), (False, "s--")):
            line = sorted(
                (r["state_bytes_per_row"], r["validation_bits_per_byte"], r["memory_size"])
                for r in rows
                if "memory_size" in r and r.get("use_cache", True) == cached
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
            if r["model"] == baseline:
                ax.axhline(r["validation_bits_per_byte"], color="grey", ls=":", label=r["model"])
            elif "memory_size" not in r:
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
    return save(fig, path)


def _plot_loss_differences(records, corpora, baseline, path):
    """`plot_quality`'s second figure: each model's training loss minus local-only's."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 4.2), dpi=120)
    colours = plt.get_cmap("tab20")
    for ax, corpus in zip(np.atleast_1d(axes), corpora):
        rows = [r for r in records if r["corpus"] == corpus]
        # Every model read the same batches, so the per-step difference from
        # local-only is what its memory changed, without the batches' noise.
        base = next((r for r in rows if r["model"] == baseline), rows[0])
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
    return save(fig, path)


def plot_recall(records, path):
    """Saves recall accuracy against distance, one line per model.

    The accuracy of the answers at each distance back to the facts (log
    scale), with chance and the longest distance the models trained on
    marked: where a line falls to chance is how far its memory reaches.

    Args:
        records: list of the dicts `keras_memory.bench.recall.run_recall`
            returns, each with `recall_by_distance`, `chance` and
            `trained_distance`.
        path: str. PNG file to write.

    Returns:
        `path`.
    """
    plt = pyplot()
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
    return save(fig, path)


def plot_memory_footprint(footprints, path, title=None):
    """Saves a bar chart of the memory state each model carries per batch row.

    One horizontal bar per model, in MiB on a log scale and labelled with
    its value: what the model carries from one segment to the next.

    Args:
        footprints: dict of model label -> bytes per row
            (`keras_memory.training.memory_footprint(model)["total"]`).
        path: str. PNG file to write.
        title: str or None. Figure title.

    Returns:
        `path`.
    """
    plt = pyplot()
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
    return save(fig, path)
