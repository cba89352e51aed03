"""The natural-text recall figure: bits per answer letter against distance."""

import numpy as np

from keras_memory.plots.figure import pyplot, save


def plot_answer_bits(records, path, title=None):
    """Saves the answer letters' bits against the distance back to the facts.

    One line per model (the mean over its seeds, with each seed's points
    faint), chance (`chance_bits`) as a grey line: a model whose line lies on
    chance cannot see the facts; one below it recalls them.

    Args:
        records: dicts with `model`, `answer_bits_by_distance` and
            `chance_bits` (`keras_memory.bench.prose_recall` records, or
            `keras-memory evaluate --recall-task prose-facts` results with a
            `model` label added).
        path: str. PNG file to write.
        title: str or None. The figure's title.

    Returns:
        `path`.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.2), dpi=120)
    styles = ("-", "--", "-.", ":")
    models = list(dict.fromkeys(r["model"] for r in records))
    for i, model in enumerate(models):
        runs = [r for r in records if r["model"] == model]
        distances = sorted(int(d) for d in runs[0]["answer_bits_by_distance"])
        curves = np.array([[r["answer_bits_by_distance"][str(d)] for d in distances] for r in runs])
        (line,) = ax.plot(
            distances, curves.mean(0), marker="o", ls=styles[i % len(styles)], label=model
        )
        if len(runs) > 1:
            for curve in curves:
                ax.plot(distances, curve, ls="none", marker=".", color=line.get_color(), alpha=0.4)
    ax.axhline(records[0]["chance_bits"], color="grey", ls=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes between a fact and its question (log scale)")
    ax.set_ylabel("bits per answer letter")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "Recall of facts told in real prose (lower is better)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save(fig, path)
