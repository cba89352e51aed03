"""The speed goals' table, read from the benchmarks' JSON lines.

`python -m keras_memory.bench.goals FILE...` prints one Markdown table of
the project's speed goals (docs/performance.md) from the records of `bench
speed` (ours and the PyTorch peers'), `bench ceiling`, `bench generate` and
`benchmarks/knn_retrieval.py lookup`; `benchmarks/gpu_check.sh` runs them
all and then this. A goal whose records are missing says so: it is never
read as met.
"""

import argparse
import json
import os
import statistics
import sys

# (goal, our kind, what it is compared with, the ratio that meets it).
RATIO_GOALS = (
    ("Transformer-XL >= 75% of the plain Keras ceiling", "xl", "ceiling", 0.75),
    ("Block-Recurrent >= 4x the PyTorch peer", "block_recurrent", "peer", 4.0),
    ("Memorizing >= 30x the PyTorch peer", "memorizing", "peer", 30.0),
)


def read_records(paths):
    """The JSON objects of every line of `paths` that holds one; other lines are skipped."""
    records = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # a cut-off line: its run's figures are lost
                    continue
    return records


def _ours(records, kind):
    return [
        r
        for r in records
        if r.get("benchmark") == "speed"
        and r.get("kind") == kind
        and "peer" not in r
        and r.get("tokens_per_s")
    ]


def _mean_tokens_per_s(records):
    return statistics.mean(r["tokens_per_s"] for r in records) if records else None


def ratio_row(records, goal, kind, against, target):
    """One goal's row: `{goal, ours, against, ratio, status}`."""
    ours = _ours(records, kind)
    if against == "ceiling":
        others = [
            r
            for r in records
            if r.get("benchmark") == "ceiling"
            and r.get("attention", "block") == "block"
            and r.get("tokens_per_s")
        ]
    else:
        others = [
            r
            for r in records
            if r.get("benchmark") == "speed"
            and "peer" in r
            and r.get("kind") == kind
            and r.get("tokens_per_s")
        ]
    if ours:
        # One comparison: the first run's precision and memory size on both sides.
        first = ours[0]
        for key in ("precision", "memory_size"):
            if key in first:
                ours = [r for r in ours if r.get(key) == first[key]]
                others = [r for r in others if r.get(key, first[key]) == first[key]]
    mine, theirs = _mean_tokens_per_s(ours), _mean_tokens_per_s(others)
    row = {"goal": goal, "ours": mine, "against": theirs, "ratio": None}
    if mine is None or theirs is None:
        missing = [name for name, value in ((kind, mine), (against, theirs)) if value is None]
        failed = [
            r.get("failed") or r.get("skipped")
            for r in records
            if r.get("peer") and r.get("kind") == kind and not r.get("tokens_per_s")
        ]
        why = f"; the peer: {failed[0]}" if failed and failed[0] else ""
        row["status"] = f"not measured (no {' or '.join(missing)} record{why})"
        return row
    row["ratio"] = mine / theirs
    row["status"] = "met" if row["ratio"] >= target else "not met"
    return row


def goal_table(records):
    """The Markdown lines of the goals' table, then the figures beside them."""
    first = next((r for r in records if r.get("benchmark") == "speed" and "peer" not in r), {})
    lines = [
        f"Speed goals: {first.get('device', 'unknown device')}, config "
        f"{first.get('config', '?')}, {first.get('precision', '?')}, {first.get('date', '?')}",
        "",
        "| goal | ours (tokens/s) | compared with (tokens/s) | ratio | status |",
        "|---|---|---|---|---|",
    ]
    for goal, kind, against, target in RATIO_GOALS:
        row = ratio_row(records, goal, kind, against, target)
        cells = [
            goal,
            _figure(row["ours"]),
            _figure(row["against"]),
            "" if row["ratio"] is None else f"{row['ratio']:.2f}x",
            row["status"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    # Every record of ours, with its precision: a file may hold runs of both.
    lines += [
        "",
        "| kind | precision | tokens/s | MFU | peak device memory |",
        "|---|---|---|---|---|",
    ]
    for record in records:
        if record.get("benchmark") == "speed" and "peer" not in record:
            peak = record.get("peak_device_bytes")
            lines.append(
                f"| {record['kind']} | {record.get('precision', '')} | "
                f"{_figure(record.get('tokens_per_s'))} | "
                f"{'' if record.get('mfu') is None else format(record['mfu'], '.1%')} | "
                f"{'' if peak is None else format(peak / 2**30, '.1f') + ' GiB'} |"
            )
    lines += flops_rows(records)
    lookups = [
        r for r in records if r.get("benchmark") == "knn_retrieval" and r.get("mode") == "lookup"
    ]
    if lookups:
        lines += ["", "| kNN lookup | entries | ms | recall@k |", "|---|---|---|---|"]
        for r in lookups:
            lines.append(
                f"| {r.get('method')} | {_figure(r.get('memory_size'))} | {r.get('ms_median')} | "
                f"{r.get('recall_at_k')} |"
            )
    generations = [r for r in records if r.get("benchmark") == "generate"]
    if generations:
        lines += [
            "",
            "| generate | batch | segment | ms per token | tokens/s |",
            "|---|---|---|---|---|",
        ]
        for r in generations:
            lines.append(
                f"| {r.get('kind')} | {r.get('batch_size')} | {r.get('segment_length')} | "
                f"{r.get('per_token_ms')} | {_figure(r.get('tokens_per_s'))} |"
            )
    return lines


def flops_rows(records):
    """Ours against each peer in model TFLOP/s (one FLOP convention), beside tokens/s.

    The peers' models are smaller than ours at the same sizes (one key and
    value head, see `keras_memory.bench.peers`): this is the like-for-like
    ratio of work done per second.
    """
    lines = []
    for _, kind, against, _ in RATIO_GOALS:
        if against != "peer":
            continue
        ours = [r for r in _ours(records, kind) if r.get("model_tflops_per_s")]
        peers = [
            r
            for r in records
            if r.get("peer") and r.get("kind") == kind and r.get("model_tflops_per_s")
        ]
        if not ours or not peers:
            continue
        mine = statistics.mean(r["model_tflops_per_s"] for r in ours)
        theirs = statistics.mean(r["model_tflops_per_s"] for r in peers)
        if not lines:
            lines = ["", "| kind | ours (model TFLOP/s) | peer (model TFLOP/s) | ratio |"]
            lines.append("|---|---|---|---|")
        lines.append(f"| {kind} | {mine:.3f} | {theirs:.3f} | {mine / theirs:.2f}x |")
    return lines


def _figure(value):
    return "" if value is None else f"{value:,.0f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", help="JSON-line files of the benchmarks.")
    args = parser.parse_args(argv)
    missing = [path for path in args.files if not os.path.isfile(path)]
    if missing:
        print(f"goals: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    records = read_records(args.files)
    if not records:
        print("goals: no benchmark records in " + ", ".join(args.files), file=sys.stderr)
        return 1
    print("\n".join(goal_table(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
