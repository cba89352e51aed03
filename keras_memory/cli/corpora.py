"""The documents a command reads: `--data` and the synthetic recall tasks."""

import sys

DEFAULT_DATA = "python-source"
SYNTHETIC_TASKS = ("passkey", "associative-recall")
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


def distances(args):
    """`--distances` as a list of ints, or ValueError naming the flag."""
    try:
        return [int(d) for d in args.distances.split(",")]
    except ValueError:
        raise ValueError(
            f"--distances must be comma-separated ints; got {args.distances!r}."
        ) from None


def synthetic_documents(task, distances, num_documents, seed):
    """`num_documents` documents of `task` at each of `distances`."""
    from keras_memory.data import synthetic

    documents = []
    for i, distance in enumerate(distances):
        if task == "passkey":
            documents += synthetic.passkey_documents(num_documents, distance, seed=seed + i)
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
    documents = synthetic_documents(task, distances(args), count, seed)
    names = [f"{task}-{split}-{i}" for i in range(len(documents))]
    return Corpus(names, [d.text for d in documents], skipped={})
