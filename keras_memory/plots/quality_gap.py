"""The quality sweep's figure: each memory's gap to `xl` against training steps and model size."""

import json

import numpy as np

from keras_memory.models.presets import SIZE_OPTIONS
from keras_memory.plots.figure import pyplot, save


def _size(record):
    # Overrides that change the model's size (and so its `xl` twin), not the memory.
    return {k: v for k, v in record.get("overrides", {}).items() if k in SIZE_OPTIONS}


def _twin_key(record):
    """What a record shares with the `xl` record it is compared with."""
    return json.dumps(
        [
            record["corpus"],
            record.get("preset"),
            record.get("batch_size"),
            record.get("learning_rate"),
            record["steps"],
            record.get("pretrain_steps", 0),
            record["seed"],
            record.get("tokenizer", "bytes"),
            record.get("vocab_size"),
            _size(record),
        ],
        sort_keys=True,
    )


def _plain(gap, steps):
    """A point trained from scratch on bytes for `steps` steps."""
    return gap["steps"] == steps and not gap["pretrain_steps"] and gap["tokenizer"] == "bytes"


def lever_label(record):
    """A memory record's lever: its model and the overrides that are not sizes."""
    levers = {k: v for k, v in record.get("overrides", {}).items() if k not in SIZE_OPTIONS}
    label = record["model"] + "".join(f" {k}={v}" for k, v in sorted(levers.items()))
    if record.get("pretrain_steps"):
        label += f" after {record['pretrain_steps']} xl steps"
    if record.get("tokenizer", "bytes") != "bytes":
        label += f" ({record['tokenizer']} {record['vocab_size']})"
    return label


def quality_gaps(records, baseline="xl"):
    """Pairs every memory record with its `xl` twin (same corpus, steps, seed, sizes).

    The twin is the latest such `xl` record before it in `records`: pass
    the runs in the order they were made (a `bench quality` run scores its
    `xl` before its memory models), so a memory is compared with the `xl` of
    its own run, or of the latest run before it.

    Args:
        records: `keras-memory bench quality` records (`keras_memory.bench.quality`).
        baseline: str. The model every other one is compared with.

    Returns:
        A list of dicts, one per memory record with a twin: `lever`
        (`lever_label`), `corpus`, `steps` (fine-tuning steps included),
        `seed`, `size` (the size overrides), `preset`, `xl_params` (the twin's
        trainable weights), `gap` (its validation bits per byte minus the
        twin's: positive means the memory costs) and `xl_spread` (the
        largest minus the smallest `xl` figure over the seeds of that point,
        or None with one seed).
    """
    twins, latest_by_seed, gaps = {}, {}, []
    for r in records:
        if r["model"] == baseline:
            # Each run's memory models follow its own `xl`: the latest one is the twin.
            twins[_twin_key(r)] = r
            point = latest_by_seed.setdefault(_twin_key({**r, "seed": None}), {})
            point[r["seed"]] = r["validation_bits_per_byte"]
            continue
        twin = twins.get(_twin_key(r))
        if twin is None:  # no baseline of that point before it
            continue
        gaps.append(
            {
                "lever": lever_label(r),
                "corpus": r["corpus"],
                "steps": r["steps"] + r.get("pretrain_steps", 0),
                "seed": r["seed"],
                "size": _size(r),
                "preset": r.get("preset"),
                "pretrain_steps": r.get("pretrain_steps", 0),
                "tokenizer": r.get("tokenizer", "bytes"),
                "xl_params": twin["trainable_params"],
                "gap": r["validation_bits_per_byte"] - twin["validation_bits_per_byte"],
                "xl_spread": _twin_key({**r, "seed": None}),  # filled in below
            }
        )
    for gap in gaps:
        xl_seeds = list(latest_by_seed[gap["xl_spread"]].values())
        gap["xl_spread"] = max(xl_seeds) - min(xl_seeds) if len(xl_seeds) > 1 else None
    return gaps


def plot_quality_gap(records, path, corpus="code", steps=600, preset="tiny"):
    """Saves the memories' gap to `xl` against training steps and against model size.

    Left: the gap of each lever at the `tiny` size against training steps.
    Right: the gap against the `xl` twin's trainable weights, at `steps`.
    Each seed is a point, a line joins the means; the grey band is `xl`'s
    seed spread at the `tiny` point of `steps` steps (from scratch, bytes),
    the dotted line zero: below it the memory pays.

    Args:
        records: `keras-memory bench quality` records of every sweep point.
        path: str. PNG file to write.
        corpus: str. The corpus drawn.
        steps: int. Training steps of the right panel's points.
        preset: str. The preset of the left panel's points (sizes unchanged).

    Returns:
        `path`.
    """
    gaps = [g for g in quality_gaps(records) if g["corpus"] == corpus]
    plt = pyplot()
    fig, (by_steps, by_size) = plt.subplots(1, 2, figsize=(12, 4.6), dpi=120, sharey=True)
    levers = list(dict.fromkeys(g["lever"] for g in gaps))
    palette = plt.get_cmap("tab10" if len(levers) <= 10 else "tab20")
    colors = [palette(i) for i in range(palette.N)]
    panels = (
        (
            by_steps,
            lambda g: not g["size"] and g["preset"] == preset,
            "steps",
            "training steps (fine-tuning included)",
        ),
        (by_size, lambda g: _plain(g, steps), "xl_params", "xl's trainable weights (bytes)"),
    )
    for ax, keep, x_name, x_label in panels:
        for i, lever in enumerate(levers):
            points = [g for g in gaps if g["lever"] == lever and keep(g)]
            if not points:
                continue
            color = colors[i % len(colors)]
            xs = sorted({g[x_name] for g in points})
            means = [np.mean([g["gap"] for g in points if g[x_name] == x]) for x in xs]
            ax.plot(xs, means, marker="o", color=color, label=lever)
            ax.plot(
                [g[x_name] for g in points],
                [g["gap"] for g in points],
                ls="none",
                marker=".",
                color=color,
                alpha=0.5,
            )
        ax.set_xscale("log")
        ticks = sorted({g[x_name] for g in gaps if keep(g)})
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks], minor=False, rotation=45, fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel(x_label, fontsize=9)
        ax.axhline(0, color="black", ls=":", lw=1)
        ax.grid(alpha=0.3, which="both")
    # The band: xl's seed spread where the sweep has its seeds (the plain point at `steps`).
    spreads = [
        g["xl_spread"]
        for g in gaps
        if g["xl_spread"] is not None and _plain(g, steps) and not g["size"]
    ]
    if spreads:
        for ax in (by_steps, by_size):
            ax.axhspan(-max(spreads), max(spreads), color="grey", alpha=0.15, lw=0)
    by_steps.set_ylabel("bits per byte minus xl's (above 0: the memory costs)", fontsize=9)
    by_steps.set_title(f"{corpus}: the gap against training steps ({preset})", fontsize=9)
    by_size.set_title(f"{corpus}: the gap against model size ({steps} steps)", fontsize=9)
    handles, labels = by_steps.get_legend_handles_labels()
    for handle, label in zip(*by_size.get_legend_handles_labels()):
        if label not in labels:  # a lever drawn at other sizes only
            handles, labels = [*handles, handle], [*labels, label]
    by_size.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save(fig, path)
