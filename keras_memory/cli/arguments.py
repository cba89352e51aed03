"""The flags of `train`, `evaluate`, `generate` and `demo`: the run, the data, the model."""

from keras_memory.cli.backend import add_backend_flag
from keras_memory.cli.corpora import DEFAULT_DATA
from keras_memory.cli.kind_flags import add_kind_flags
from keras_memory.cli.values import (
    comma_separated_ints,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)


def add_run(parser):
    """Adds the flags every command but `bench` has: workdir, backend, seed.

    Returns:
        The `argparse.Action`s added, in order (the demo passes their values on).
    """
    return [
        parser.add_argument(
            "--workdir",
            default="workdir/run",
            help="The run's folder: checkpoints, logs, loss.png.",
        ),
        add_backend_flag(parser),
        parser.add_argument(
            "--seed", type=non_negative_int, default=0, help="Initialisation and shuffle seed."
        ),
    ]


def add_data(parser, default=DEFAULT_DATA):
    """Adds the flags that choose the documents; returns their `argparse.Action`s.

    Args:
        parser: the command's parser.
        default: `--data`'s default; None for `evaluate`, which reads the
            data the run was trained on unless told otherwise.
    """
    data_help = (
        "'python-source' (the standard library's .py files, built in), 'pg19' "
        "(tensorflow-datasets; see --tfds-data-dir), 'passkey' or 'associative-recall' "
        "(synthetic), 'prose-facts' (facts told in real prose, asked again later; see "
        "--fact-passages) or a folder, file or glob of UTF-8 text files (split into "
        "train/validation by a hash of each path)"
    )
    if default is None:
        data_help += "; default: the data the run was trained on."
    else:
        data_help += "."
    return [
        parser.add_argument("--data", default=default, help=data_help),
        parser.add_argument(
            "--tfds-data-dir",
            default=None,
            help="tfds data_dir for --data pg19 (default: the run's, else tfds's).",
        ),
        parser.add_argument(
            "--distances",
            type=comma_separated_ints,
            default=None,
            help="Fact-to-question distances (tokens) of the synthetic tasks, comma-separated: "
            "for --data passkey|associative-recall|prose-facts and evaluate --recall-task "
            "(default: 64,256,1024; prose-facts: 256,1024,2048).",
        ),
        parser.add_argument(
            "--fact-passages",
            default="python-docs",
            help="The real text between prose-facts' facts and questions: 'python-docs' (the "
            "reference manual's topics every Python carries), 'kjv' (needs the bible-kjv "
            "package), 'python-source', or a folder, file or glob of UTF-8 text files.",
        ),
        parser.add_argument(
            "--num-documents",
            type=positive_int,
            default=256,
            help="Synthetic documents per distance (training data; validation uses a tenth).",
        ),
        parser.add_argument(
            "--max-documents",
            type=positive_int,
            default=None,
            help="Use only the first N documents (default: all).",
        ),
    ]


def add_common(parser):
    """Adds the run's and the data's flags (`train`, `evaluate`, `demo`); returns the actions."""
    return [*add_run(parser), *add_data(parser)]


def add_model(parser):
    """Adds the flags that choose and size the model `train` builds.

    `--kind` and the kinds' own options come from the registry
    (`kind_flags`); the LSWT options and the sizes are here.
    """
    add_kind_flags(parser)
    lswt = parser.add_argument_group("LSWT options (every kind but melodi, unless noted)")
    lswt.add_argument("--rotary", choices=("standard", "reversed"), help="Rotary embeddings.")
    lswt.add_argument(
        "--rotary-base", type=positive_float, default=None, help="RoPE base frequency."
    )
    lswt.add_argument(
        "--num-registers", type=non_negative_int, default=None, help="Attention registers."
    )
    lswt.add_argument(
        "--no-position-bias", action="store_true", help="Drop the T5 bias (e.g. with --rotary)."
    )
    lswt.add_argument(
        "--num-key-value-heads",
        type=positive_int,
        default=None,
        help="Key/value heads, dividing the preset's heads (grouped queries; 1: multi-query).",
    )
    lswt.add_argument(
        "--activation", default=None, help="Feed-forward activation, e.g. swiglu (any kind)."
    )
    lswt.add_argument(
        "--contrastive-margin",
        type=non_negative_float,
        default=None,
        help="Add SimCTG (any kind; 0.5).",
    )
    lswt.add_argument(
        "--optimizer", choices=("adamw", "sophia"), default="adamw", help="Optimizer (any kind)."
    )
    lswt.add_argument(
        "--embedding-dim",
        type=positive_int,
        default=None,
        help="Word embedding width, projected to the model width (any kind; preset's).",
    )
    lswt.add_argument(
        "--warm-start",
        default=None,
        metavar="PRESET",
        help="Copy the word embedding of this keras-hub preset's backbone (a name such as "
        "opt_125m_en, or a directory); the tokenizer is then the preset's (hub:PRESET) and "
        "--embedding-dim defaults to its width (any kind).",
    )
    lswt.add_argument(
        "--freeze-embedding",
        action="store_true",
        help="Keep the word embedding (and tied output) fixed in training (any kind).",
    )
    parser.add_argument(
        "--no-xl-cache",
        action="store_true",
        help="No Transformer-XL cache in any layer (memorizing, memorizing_dense, "
        "block_recurrent): what crosses segments is the kind's own memory alone.",
    )
    parser.add_argument("--preset", default="tiny", help="Model preset (tiny, small_d512, ...).")
    parser.add_argument(
        "--segment-length",
        type=positive_int,
        help="Tokens per segment (default: the preset's).",
    )
    parser.add_argument(
        "--window-length",
        type=positive_int,
        help="Attention window; divides --segment-length (default: the preset's).",
    )
    parser.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "mixed_bfloat16"),
        help="Keras dtype policy.",
    )
