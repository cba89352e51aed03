"""`keras-memory evaluate`: bits per token on the validation split, recall by distance."""

import json
import math
import os
import sys

from keras_memory.cli.arguments import add_data, add_run
from keras_memory.cli.corpora import (
    SYNTHETIC_TASKS,
    distances,
    fact_passages,
    synthetic_documents,
)
from keras_memory.cli.corpora import corpus as read_corpus
from keras_memory.cli.run_config import resolved_data
from keras_memory.cli.saved_run import load_run, run_config_of, saved_run_config
from keras_memory.cli.tokenizer import saved_tokenizer
from keras_memory.cli.values import memory_size, positive_int

HELP = "Bits per token on the validation split of the run's data (or --data)."

# The data flags a run records; `evaluate` reads the run's unless typed.
_RUN_DATA_FLAGS = (
    "data",
    "tfds_data_dir",
    "max_documents",
    "distances",
    "num_documents",
    "fact_passages",
)


def add_arguments(parser):
    """Adds `evaluate`'s flags: the run, the data (default: the run's), steps, memory, recall."""
    add_run(parser)
    add_data(parser, default=None)
    parser.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        help="Evaluate N steps only (default: the whole validation split).",
    )
    parser.add_argument(
        "--memory-size",
        dest="evaluate_memory_size",
        type=memory_size,
        default=None,
        help="Evaluate with another memory size than the model was trained with (kinds with "
        "a memory size; the memory is not a weight), e.g. 64k for a model trained with 8k.",
    )
    parser.add_argument(
        "--recall-task",
        choices=SYNTHETIC_TASKS,
        default=None,
        help="Also report greedy recall accuracy and the answer tokens' bits by --distances "
        "on this synthetic task.",
    )


def run(args, model=None, progress=None):
    """Scores the run of `--workdir` (or `model`); prints and returns one JSON record.

    Exits with code 1 (after printing the record, with null for each
    non-finite figure) when the model's loss is not finite.
    """
    import keras

    from keras_memory.data import SegmentStream
    from keras_memory.training import evaluate_bits_per_token

    # Everything the command line can get wrong is checked before the model loads.
    config = run_config_of(args.workdir, progress) if model else saved_run_config(args)
    if config is None:  # the newest checkpoint is damaged: load_run falls back
        model, progress = load_run(args)
        config = run_config_of(args.workdir, progress)
    _take_run_data(args, config)
    tokenizer = saved_tokenizer(args.workdir, config.get("tokenizer"))
    if args.evaluate_memory_size:
        _check_memory_size(config, args.evaluate_memory_size)
    corpus = read_corpus(args, "validation")
    if model is None:
        model, progress = load_run(args)
        config = run_config_of(args.workdir, progress)
    if args.evaluate_memory_size:
        model = _with_memory_size(model, config, args.evaluate_memory_size)
    stream = SegmentStream(
        corpus.tokenize(tokenizer),
        config["batch_size"],
        config["segment_length"],
        **tokenizer.special_ids,
    )
    result = evaluate_bits_per_token(model, stream, max_steps=args.max_steps)
    result.update(
        {
            "kind": config["kind"],
            "step": progress["step"],
            "data": resolved_data(args.data),
            "split": "validation",
            "tokenizer": tokenizer.kind,
            "backend": keras.backend.backend(),
        }
    )
    if args.evaluate_memory_size:
        result["memory_size"] = args.evaluate_memory_size
    if args.recall_task:
        result.update(_recall(args, model, config, tokenizer))
    finite = _finite_or_none(result)
    print(json.dumps(finite))
    if finite != result:
        print(
            "keras-memory evaluate: the model's loss is not finite (null in the record); "
            "its weights or memory hold NaN or Inf.",
            file=sys.stderr,
        )
        raise SystemExit(1)
    return result


def _take_run_data(args, config):
    """The run's data flags wherever none was typed: the model is scored on its own data."""
    for name in _RUN_DATA_FLAGS:
        if name not in args.given and name in config:
            setattr(args, name, config[name])
    if args.data is None:  # a run from before the data was recorded
        from keras_memory.cli.corpora import DEFAULT_DATA

        args.data = DEFAULT_DATA


def _check_memory_size(config, size):
    from keras_memory.memories import get_kind

    kind = get_kind(config["kind"])
    if "memory_size" not in kind.option_names():
        raise ValueError(f"--memory-size: the run's --kind {kind.name} has no memory size.")
    if size % config["segment_length"]:
        raise ValueError(
            f"--memory-size {size} must be a multiple of the run's segment length "
            f"{config['segment_length']}."
        )


def _with_memory_size(model, config, size):
    """`model` rebuilt with a memory of `size` entries, if this machine's RAM holds it."""
    from keras_memory.models import rebuild_model
    from keras_memory.training import state_bytes

    scale = size / max(1, config.get("memory_size") or size)
    needed = state_bytes(model, config["batch_size"]) * scale
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise ValueError(
            f"--memory-size {size} needs about {needed / 2**30:,.1f} GiB of memory state at "
            f"the run's batch size {config['batch_size']}; this machine has "
            f"{available / 2**30:,.1f} GiB of RAM."
        )
    return rebuild_model(model, memory_size=size)


def _recall(args, model, config, tokenizer):
    from keras_memory.data import ByteTokenizer
    from keras_memory.training.recall import evaluate_recall

    if not isinstance(tokenizer, ByteTokenizer):
        raise ValueError("--recall-task needs a model trained with --tokenizer bytes.")
    task = args.recall_task
    passages = fact_passages(args, "validation") if task == "prose-facts" else None
    documents = synthetic_documents(
        task,
        distances(args, task),
        max(1, args.num_documents // 10),
        args.seed + 2_000_003,
        passages,
    )
    recall = evaluate_recall(
        model, documents, config["segment_length"], batch_size=config["batch_size"]
    )
    by_distance = sorted(recall["by_distance"].items())
    return {
        "recall_task": task,
        "recall_by_distance": {str(d): r["accuracy"] for d, r in by_distance},
        "answer_bits_by_distance": {str(d): r["bits"] for d, r in by_distance},
    }


def _finite_or_none(value):
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value
