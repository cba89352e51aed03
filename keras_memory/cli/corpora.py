"""The documents a command reads: `--data` and the synthetic recall tasks."""

import sys

DEFAULT_DATA = "python-source"
SYNTHETIC_TASKS = ("passkey", "associative-recall", "prose-facts")
# `--distances` when none is typed, by task.
DEFAULT_DISTANCES = {"prose-facts": "256,1024,2048"}
_DEFAULT_DISTANCES = "64,256,1024"
# `--fact-passages` values that name a corpus rather than a path.
NAMED_PASSAGES = ("python-docs", "kjv", "python-source")  # data.prose_facts.NAMED_PASSAGES
# `--data` values that name a corpus rather than a path.
NAMED_DATA = (DEFAULT_DATA, "pg19", *SYNTHETIC_TASKS)
# Skipped files named without --verbose.
_NAMED_SKIPS = 3


def corpus(args, split):
    """The `Corpus` of `--data` for `split` (`"train"` or `"validation"`)."""
    from keras_memory.data import pg19_corpus, python_source_corpus, text_files_corpus

    if args.data == DEFAULT_DATA:
        documents = python_source_corpus(split, max_documents=args.max_documents)
    elif args.data in SYNTHETIC_TASKS:
        return synthetic_corpus(args, args.data, split)
    elif args.data == "pg19":
        documents = pg19_corpus(
            split, data_dir=args.tfds_data_dir, max_documents=args.max_documents
        )
    else:
        try:
            documents = text_files_corpus(args.data, split=split)
        except ValueError as error:
            # The library names its argument; the user typed --data.
            raise ValueError(str(error).replace("`path`", "--data", 1)) from None
        if args.max_documents is not None:
            documents.names = documents.names[: args.max_documents]
            documents.texts = documents.texts[: args.max_documents]
        if not documents.names:
            raise ValueError(
                f"--data {args.data!r} has no {split} documents: every file hashed into "
                "the other split; add files or point at a folder with more."
            )
    _report_skipped(documents.skipped, getattr(args, "verbose", False))
    return documents


def _report_skipped(skipped, verbose):
    """Names the skipped files on stderr: the first few, or all with `--verbose`."""
    if not skipped:
        return
    names = sorted(skipped)
    shown = names if verbose else names[:_NAMED_SKIPS]
    more = len(names) - len(shown)
    print(
        f"Skipped {len(names)} file(s): {', '.join(f'{n} ({skipped[n]})' for n in shown)}"
        + (f" and {more} more (--verbose names them all)." if more else "."),
        file=sys.stderr,
    )


def distances(args, task=None):
    """`--distances` as a list of ints (the task's default if none), or ValueError naming it.

    Each distance is checked against the smallest `task` can lay out, so a
    bad value is refused before anything is built.
    """
    from keras_memory.data import synthetic
    from keras_memory.data.prose_facts import prose_fact_min_distance

    task = task or args.data
    text = args.distances or DEFAULT_DISTANCES.get(task, _DEFAULT_DISTANCES)
    try:
        values = [int(d) for d in text.split(",")]
    except ValueError:
        raise ValueError(f"--distances must be comma-separated ints; got {text!r}.") from None
    minimum = {
        "passkey": synthetic.PASSKEY_MIN_DISTANCE,
        "associative-recall": synthetic.associative_recall_min_distance(4),
        "prose-facts": prose_fact_min_distance(1),  # fewer facts where four do not fit
    }.get(task, 1)
    if min(values) < minimum:
        raise ValueError(f"--distances must be >= {minimum} for {task}; got {text}.")
    return values


def fact_passages(args, split):
    """The texts of `--fact-passages` for `split`, which prose-facts cuts its passages from."""
    from keras_memory.data.prose_facts import passage_texts

    try:
        return passage_texts(args.fact_passages, split)
    except ValueError as error:
        message = str(error).replace("`path`", "the path", 1)
        raise ValueError(f"--fact-passages {args.fact_passages!r}: {message}") from None


def synthetic_documents(task, distances, num_documents, seed, passages=None):
    """`num_documents` documents of `task` at each of `distances`.

    `passages` (texts) are where prose-facts cuts its passages from.
    """
    from keras_memory.data import synthetic
    from keras_memory.data.prose_facts import prose_fact_documents

    documents = []
    for i, distance in enumerate(distances):
        if task == "passkey":
            documents += synthetic.passkey_documents(num_documents, distance, seed=seed + i)
        elif task == "prose-facts":
            documents += prose_fact_documents(passages, num_documents, distance, seed=seed + i)
        else:
            documents += synthetic.associative_recall_documents(
                num_documents, num_pairs=4, distance=distance, seed=seed + i
            )
    return documents


def synthetic_corpus(args, task, split):
    """A `Corpus` of the synthetic `task`; validation holds a tenth as many, unseen facts."""
    from keras_memory.data import Corpus

    # Validation draws from other seeds than training, so it holds unseen facts.
    seed = args.seed + (1_000_003 if split == "validation" else 0)
    count = args.num_documents if split == "train" else max(1, args.num_documents // 10)
    passages = fact_passages(args, split) if task == "prose-facts" else None
    documents = synthetic_documents(task, distances(args, task), count, seed, passages)
    names = [f"{task}-{split}-{i}" for i in range(len(documents))]
    return Corpus(names, [d.text for d in documents], skipped={})
