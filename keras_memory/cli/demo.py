"""`keras-memory demo`: what a cache buys on real text, then what a memory buys.

First, local-only and Transformer-XL train alike on the built-in code
corpus, are compared in bits per byte and sampled. Each step is the command
a user would type: the demo builds the command lines of `train`, `evaluate`
and `generate` and parses them with those commands' own arguments, so every
option keeps its default there. Second (`keras_memory.cli.demo_recall`),
Transformer-XL and the Memorizing Transformer train on a fact-recall task:
XL answers at chance once the facts leave its window, the kNN memory answers
hundreds of tokens later.
"""

import argparse
import json
import os
import time

from keras_memory.cli.arguments import add_common, add_run
from keras_memory.cli.values import positive_int

HELP = (
    "Train local-only and Transformer-XL on the built-in code corpus (bits per byte, "
    "losses, a sample), then XL and a kNN memory on a fact-recall task (recall by distance)."
)

# The kinds the demo trains and compares; the last one writes the sample.
DEMO_KINDS = ("local", "xl")
# Every demo run: the tiny preset in float32, one checkpoint at the end, resumable.
TRAIN_FLAGS = (
    "--preset", "tiny", "--precision", "float32", "--learning-rate", "3e-3",
    "--checkpoint-every", "0", "--resume", "--tokenizer", "bytes",
)  # fmt: skip
SAMPLE_FLAGS = (
    "--prompt", "import ", "--max-new-tokens", "200", "--sampler", "top_k", "--top-k", "40",
    "--temperature", "0.8",
)  # fmt: skip


def add_arguments(parser):
    """Adds `demo`'s flags: the common ones, steps and batch size."""
    add_common(parser)
    parser.add_argument("--steps", type=positive_int, default=800, help="Training steps per model.")
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="Documents read in parallel."
    )
    parser.add_argument("--eval-steps", type=positive_int, default=100, help="Validation steps.")
    parser.add_argument(
        "--recall-iterations",
        type=positive_int,
        default=400,
        help="Training batches of 16 fact documents per model of the recall comparison.",
    )


def run(args):
    """Trains and scores each of `DEMO_KINDS`, prints a table, plots the losses, samples."""
    from keras_memory.cli import evaluate, generate, train
    from keras_memory.cli.command_parser import parse_command as _parse
    from keras_memory.cli.demo_recall import run_recall_demo
    from keras_memory.plots import plot_losses
    from keras_memory.training import load_checkpoint

    common = _common_flags(args, add_common)
    results, curves = [], {}
    for kind in DEMO_KINDS:
        workdir = ["--workdir", os.path.join(args.workdir, kind)]
        started = time.time()
        train.run(
            _parse(
                train,
                [*common, *workdir, "--kind", kind, *TRAIN_FLAGS]
                + ["--steps", str(args.steps), "--batch-size", str(args.batch_size)],
            )
        )
        model, progress = load_checkpoint(workdir[1])
        evaluation = _parse(evaluate, [*common, *workdir, "--max-steps", str(args.eval_steps)])
        result = evaluate.run(evaluation, model, progress)
        result["train_seconds"] = round(time.time() - started, 1)
        results.append(result)
        with open(os.path.join(workdir[1], "losses.jsonl")) as f:
            curves[kind] = [json.loads(line)["loss"] for line in f]
    print("\n| model | steps | validation bits per byte |")
    print("|---|---|---|")
    for r in results:
        print(f"| {r['kind']} | {r['step']} | {r['bits_per_token']:.3f} |")
    plot_path = plot_losses(curves, os.path.join(args.workdir, "loss.png"))
    print(f"\nLoss curves: {plot_path}")
    print(
        "\nSample from the Transformer-XL model (two layers of width 64 after a few "
        "minutes: the shape of Python, not its sense):\n"
    )
    sample = [*_common_flags(args, add_run), *workdir, *SAMPLE_FLAGS]
    generate.run(_parse(generate, sample), model, progress)
    print("\nWhat a memory buys: recalling facts far back (one-layer models, window 16).\n")
    run_recall_demo(os.path.join(args.workdir, "recall"), args.recall_iterations, args.seed)


def _common_flags(args, add_flags):
    """The demo's flags that `add_flags` adds (but `--workdir`) as command-line text."""
    flags = []
    for action in add_flags(argparse.ArgumentParser()):
        value = getattr(args, action.dest)
        if action.dest == "workdir" or value is None or value == action.default:
            continue
        flag = action.option_strings[-1]
        flags += [flag] if action.nargs == 0 else [flag, str(value)]
    return flags
