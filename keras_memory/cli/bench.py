"""`keras-memory bench quality|recall|speed|ceiling|generate`: one JSON line per record."""

from keras_memory.cli.backend import add_backend_flag

HELP = "Benchmarks that print one JSON line each."


def add_arguments(parser):
    """Adds `--backend` and the benchmarks, each a command of its own."""
    from keras_memory.bench import ceiling, generation

    add_backend_flag(parser)
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    _add_quality(
        benchmarks.add_parser(
            "quality",
            help="Train every memory model alike on the code and English corpora; "
            "validation bits per byte.",
        )
    )
    _add_recall(
        benchmarks.add_parser(
            "recall",
            help="Train one-layer models of each memory on a fact-recall task; accuracy "
            "against the distance back to the facts.",
        )
    )
    _add_speed(
        benchmarks.add_parser(
            "speed",
            help="Training tokens/s, step time, peak memory and MFU of each model kind; "
            "--peers runs the PyTorch peers in the same run.",
        )
    )
    ceiling.add_arguments(
        benchmarks.add_parser(
            "ceiling",
            help="Training tokens/s of a plain Keras decoder of the same sizes: the speed "
            "ceiling the memory kinds are measured against.",
        )
    )
    generation.add_arguments(
        benchmarks.add_parser(
            "generate",
            help="ms per new token of model.generate for each kind, batch size and segment "
            "length, against one segment's forward pass and the old whole-segment path.",
        )
    )


def run(args):
    """Runs the benchmark `args.benchmark` names."""
    from keras_memory.bench import ceiling, generation, quality, recall, speed

    benchmarks = {
        "quality": quality.main,
        "recall": recall.main,
        "speed": speed.main,
        "ceiling": ceiling.main,
        "generate": generation.main,
    }
    return benchmarks[args.benchmark](args)


def _add_speed(parser):
    from keras_memory.bench.config_flags import add_config_flags
    from keras_memory.cli.values import positive_int

    parser.add_argument(
        "--kind",
        default="xl",
        help="Comma-separated model kinds; each is measured in a process of its own.",
    )
    add_config_flags(parser)
    parser.add_argument(
        "--memory-size", type=int, default=None, help="kNN memory entries (memorizing kinds)."
    )
    parser.add_argument(
        "--num-key-value-heads",
        type=positive_int,
        default=None,
        help="Key/value heads of our models (1: multi-query, as both peers; default: one per "
        "query head). The peers' are always one.",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="Also run the PyTorch peers of block_recurrent and memorizing on the same config, "
        "before and after ours (keras_memory.bench.peers says how to install them).",
    )
    parser.add_argument(
        "--peer-path", default=None, help="Directory the peers were pip-installed into."
    )
    parser.add_argument("--peer-steps", type=int, default=3, help="Timed steps of each peer.")
    parser.add_argument(
        "--output", default=None, help="Append each record (a JSON line) to this file too."
    )


def _add_recall(parser):
    from keras_memory.bench.configs import PROSE_RECALL_MODELS, RECALL_MODELS

    parser.add_argument(
        "--task",
        choices=("tokens", "prose-facts"),
        default="tokens",
        help="'tokens': one-layer models on facts of one token each; 'prose-facts': the tiny "
        "preset on facts told in real prose (bytes), scored in bits per answer letter.",
    )
    parser.add_argument(
        "--models",
        default=None,
        help=f"Comma-separated, of {', '.join(RECALL_MODELS)} (tokens) or "
        f"{', '.join(PROSE_RECALL_MODELS)} (prose-facts); default: all of the task's.",
    )
    parser.add_argument(
        "--iterations", type=int, default=600, help="Training batches of documents per model."
    )
    parser.add_argument(
        "--steps", type=int, default=2000, help="prose-facts: training steps per model."
    )
    parser.add_argument(
        "--seeds", default="0", help="prose-facts: comma-separated seeds, one run of each."
    )
    parser.add_argument(
        "--fact-passages",
        default="python-docs",
        help="prose-facts: the text between facts and questions (python-docs, kjv, "
        "python-source, or a path of text files).",
    )
    parser.add_argument(
        "--train-segments", type=int, default=4, help="Segments per training document."
    )
    parser.add_argument(
        "--eval-segments", type=int, default=16, help="Segments per evaluation document."
    )
    parser.add_argument("--seed", type=int, default=0, help="Initialisation and data seed.")
    parser.add_argument(
        "--output", default=None, help="Append each record (a JSON line) to this file too."
    )
    parser.add_argument("--plot", default=None, metavar="PNG", help="Draw the curves here.")


def _add_quality(parser):
    from keras_memory.bench.configs import QUALITY_CORPORA, QUALITY_MODELS
    from keras_memory.cli.values import non_negative_int, positive_int

    parser.add_argument(
        "--corpora",
        default=",".join(QUALITY_CORPORA),
        help=f"Comma-separated, of {', '.join(QUALITY_CORPORA)} (kjv needs Debian's "
        "bible-kjv package).",
    )
    parser.add_argument(
        "--models",
        default=",".join(QUALITY_MODELS),
        help=f"Comma-separated, of {', '.join(QUALITY_MODELS)}.",
    )
    parser.add_argument("--steps", type=int, default=600, help="Training steps per model.")
    parser.add_argument(
        "--eval-steps", type=int, default=600, help="Validation steps (fewer if it ends first)."
    )
    parser.add_argument("--preset", default="tiny", help="Model preset.")
    parser.add_argument("--batch-size", type=int, default=8, help="Rows (documents) per step.")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="AdamW rate.")
    parser.add_argument("--seed", type=int, default=0, help="Initialisation and order seed.")
    parser.add_argument(
        "--tokenizer",
        default="bytes",
        choices=("bytes", "sentencepiece", "bpe"),
        help="bytes (the default), or a subword vocabulary trained on each corpus's training "
        "split; bits per byte are then bits per token over the validation bytes per token.",
    )
    parser.add_argument(
        "--vocab-size",
        type=positive_int,
        default=4096,
        help="Largest subword vocabulary for --tokenizer sentencepiece|bpe.",
    )
    parser.add_argument(
        "--pretrain-steps",
        type=non_negative_int,
        default=0,
        help="The paper's fine-tuning route: train xl this many steps first, start each model "
        "from its weights (warm_start_model), then train --steps more (default 0: from "
        "scratch).",
    )
    parser.add_argument(
        "--eval-memory-sizes",
        default="",
        help="Comma-separated memory sizes: also score each trained memorizing model with "
        "each (same weights, rebuild_model).",
    )
    parser.add_argument(
        "--options",
        default="{}",
        help="JSON object of MemoryLM.from_preset overrides added to every model's options "
        "(a sweep point: sizes such as hidden_dim or num_layers, memory_layer, ...); they "
        "are recorded with each result.",
    )
    parser.add_argument(
        "--output", default=None, help="Append each record (a JSON line) to this file too."
    )
    parser.add_argument(
        "--plot", default=None, metavar="DIR", help="Draw the figures of this run into DIR."
    )
