"""`keras-memory evaluate`: bits per token on the validation split, recall by distance."""

import json

from keras_memory.cli.arguments import add_common
from keras_memory.cli.corpora import SYNTHETIC_TASKS, distances, synthetic_documents
from keras_memory.cli.corpora import corpus as read_corpus
from keras_memory.cli.saved_run import load_run
from keras_memory.cli.tokenizer import saved_tokenizer
from keras_memory.cli.values import memory_size

HELP = "Bits per token on the validation split."


def add_arguments(parser):
    """Adds `evaluate`'s flags: the common ones, steps, memory size, recall task."""
    add_common(parser)
    parser.add_argument("--max-steps", type=int, default=None, help="Evaluate N steps only.")
    parser.add_argument(
        "--memory-size",
        dest="evaluate_memory_size",
        type=memory_size,
        default=None,
        help="Evaluate with another memory size than the model was trained with (memorizing "
        "kinds; the memory is not a weight), e.g. 64k for a model trained with 8k.",
    )
    parser.add_argument(
        "--recall-task",
        choices=SYNTHETIC_TASKS,
        default=None,
        help="Also report greedy recall accuracy by --distances on this synthetic task.",
    )


def run(args, model=None, progress=None):
    """Scores the run of `--workdir` (or `model`); prints and returns one JSON record."""
    from keras_memory.data import SegmentStream
    from keras_memory.training import evaluate_bits_per_token

    if model is None:
        model, progress = load_run(args)
    config = progress["run_config"]
    if getattr(args, "evaluate_memory_size", None):
        from keras_memory.models import rebuild_model

        model = rebuild_model(model, memory_size=args.evaluate_memory_size)
    corpus = read_corpus(args, "validation")
    tokenizer = saved_tokenizer(args.workdir)
    stream = SegmentStream(
        corpus.tokenize(tokenizer),
        config["batch_size"],
        config["segment_length"],
        **tokenizer.special_ids,
    )
    result = evaluate_bits_per_token(model, stream, max_steps=args.max_steps)
    result.update({"kind": config["kind"], "step": progress["step"], "tokenizer": tokenizer.kind})
    if getattr(args, "evaluate_memory_size", None):
        result["memory_size"] = args.evaluate_memory_size
    if args.recall_task:
        from keras_memory.data import ByteTokenizer
        from keras_memory.training.recall import evaluate_recall

        if not isinstance(tokenizer, ByteTokenizer):
            raise ValueError("--recall-task needs a model trained with --tokenizer bytes.")

        documents = synthetic_documents(
            args.recall_task,
            distances(args),
            max(1, args.num_documents // 10),
            args.seed + 2_000_003,
        )
        recall = evaluate_recall(
            model, documents, config["segment_length"], batch_size=config["batch_size"]
        )
        result["recall_task"] = args.recall_task
        result["recall_by_distance"] = {
            str(d): r["accuracy"] for d, r in sorted(recall["by_distance"].items())
        }
    print(json.dumps(result))
    return result
