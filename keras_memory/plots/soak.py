"""The soak's figures and the analysis behind them (`benchmarks/soak.py`).

A soak streams one long document through a stateful model and records, every
interval, the tokens read, the cost per token and the process's resident
memory. `plot_soak` draws those records against the tokens read;
`cost_by_document_length` turns them into the cost of a document of each
length, which `plot_cost_by_document_length` draws.
"""

import numpy as np

from keras_memory.plots.figure import pyplot, save


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
    plt = pyplot()
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
    return save(fig, path)


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
    import matplotlib.ticker

    plt = pyplot()
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
    return save(fig, path)


def _cost_axis(ax, title):
    """A log-scale axis of milliseconds per 1k tokens, labelled in plain numbers."""
    import matplotlib.ticker

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel("ms per 1k tokens (log scale)")
    ax.set_title(title, fontsize=10)
