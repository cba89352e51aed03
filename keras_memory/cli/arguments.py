"""The flags of `train`, `evaluate`, `generate` and `demo`: data and workdir, the model."""

from keras_memory.cli.backend import add_backend_flag
from keras_memory.cli.corpora import DEFAULT_DATA
from keras_memory.cli.kind_flags import add_kind_flags


def add_common(parser):
    """Adds the flags of every command but `bench`: workdir, backend, seed, data.

    Returns:
        The `argparse.Action`s added, in order (the demo passes their values on).
    """
    return [
        parser.add_argument("--workdir", default="workdir/run", help="Checkpoints, logs, plots."),
        add_backend_flag(parser),
        parser.add_argument("--seed", type=int, default=0, help="Initialisation and shuffle seed."),
        parser.add_argument(
            "--data",
            default=DEFAULT_DATA,
            help="'python-source' (the standard library's .py files, built in), 'pg19' "
            "(tensorflow-datasets; see --tfds-data-dir) or a folder, file or glob of UTF-8 "
            "text files (split into train/validation by a hash of each path).",
        ),
        parser.add_argument("--tfds-data-dir", default=None, help="tfds data_dir for --data pg19."),
        parser.add_argument(
            "--distances",
            default="64,256,1024",
            help="Fact-to-question distances (tokens) of the synthetic tasks, comma-separated: "
            "for --data passkey|associative-recall and evaluate --recall-task.",
        ),
        parser.add_argument(
            "--num-documents",
            type=int,
            default=256,
            help="Synthetic documents per distance (training data; validation uses a tenth).",
        ),
        parser.add_argument(
            "--max-documents", type=int, default=None, help="Use only the first N documents."
        ),
    ]


def add_model(parser):
    """Adds the flags that choose and size the model `train` builds.

    `--kind` and the kinds' own options come from the registry
    (`kind_flags`); the LSWT options and the sizes are here.
    """
    add_kind_flags(parser)
    lswt = parser.add_argument_group("LSWT options (every kind but melodi, unless noted)")
    lswt.add_argument("--rotary", choices=("standard", "reversed"), help="Rotary embeddings.")
    lswt.add_argument("--rotary-base", type=float, default=None, help="RoPE base frequency.")
    lswt.add_argument("--num-registers", type=int, default=None, help="Attention registers.")
    lswt.add_argument(
        "--no-position-bias", action="store_true", help="Drop the T5 bias (e.g. with --rotary)."
    )
    lswt.add_argument(
        "--activation", default=None, help="Feed-forward activation, e.g. swiglu (any kind)."
    )
    lswt.add_argument(
        "--contrastive-margin", type=float, default=None, help="Add SimCTG (any kind; 0.5)."
    )
    lswt.add_argument(
        "--optimizer", choices=("adamw", "sophia"), default="adamw", help="Optimizer (any kind)."
    )
    lswt.add_argument(
        "--embedding-dim",
        type=int,
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
    parser.add_argument("--segment-length", type=int, help="Tokens per segment (preset's).")
    parser.add_argument("--window-length", type=int, help="Attention window (preset's).")
    parser.add_argument(
        "--precision",
        default="float32",
        choices=("float32", "mixed_bfloat16"),
        help="Keras dtype policy.",
    )
