"""The `keras-memory` command: train, evaluate, generate and the demo.

Keras fixes its backend when it is first imported; `--backend` therefore
re-runs the command with `KERAS_BACKEND` set when it differs.
"""

import argparse
import json
import os
import sys
import time

DEFAULT_DATA = "python-source"
SYNTHETIC_TASKS = ("passkey", "associative-recall")


def _add_common(parser):
    parser.add_argument("--workdir", default="workdir/run", help="Checkpoints, logs, plots.")
    parser.add_argument(
        "--backend",
        choices=("jax", "tensorflow", "torch"),
        help="Keras backend (default: $KERAS_BACKEND, else jax).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Initialisation and shuffle seed.")
    parser.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="'python-source' (the standard library's .py files, built in), 'pg19' "
        "(tensorflow-datasets; see --tfds-data-dir) or a folder, file or glob of UTF-8 "
        "text files (split into train/validation by a hash of each path).",
    )
    parser.add_argument("--tfds-data-dir", default=None, help="tfds data_dir for --data pg19.")
    parser.add_argument(
        "--distances",
        default="64,256,1024",
        help="Fact-to-question distances (tokens) of the synthetic tasks, comma-separated: "
        "for --data passkey|associative-recall and evaluate --recall-task.",
    )
    parser.add_argument(
        "--num-documents",
        type=int,
        default=256,
        help="Synthetic documents per distance (training data; validation uses a tenth).",
    )
    parser.add_argument(
        "--max-documents", type=int, default=None, help="Use only the first N documents."
    )


def _add_model(parser):
    parser.add_argument(
        "--kind",
        "--model",
        dest="kind",
        default="xl",
        choices=("xl", "local", "memorizing", "memorizing_dense", "block_recurrent", "melodi"),
        help="Memory kind: xl (sliding window + Transformer-XL cache), local (no cache), "
        "memorizing (xl plus one kNN-memory layer), memorizing_dense (xl plus one dense-KV "
        "memory layer), block_recurrent (xl plus one Block-Recurrent layer) or melodi "
        "(short-term memory in every layer, long-term memory in the middle one).",
    )
    parser.add_argument(
        "--gate",
        default="fixed",
        choices=("fixed", "lstm"),
        help="State gate of the block_recurrent kind (the paper's best: fixed).",
    )
    parser.add_argument(
        "--variant",
        default="skip",
        choices=("skip", "dual", "single"),
        help="State feed-forward of the block_recurrent kind: none (skip, the paper's best), "
        "gated (dual) or one gated feed-forward instead of the projection (single).",
    )
    parser.add_argument(
        "--num-states",
        type=int,
        default=None,
        help="Recurrent state vectors (block_recurrent); default: the preset's.",
    )
    for flag, what in (
        ("--summary-size", "summary tokens per window"),
        ("--short-term-memory-size", "short-term memory tokens per layer"),
        ("--long-term-memory-size", "long-term memory slots (0: none)"),
        ("--long-term-increment", "long-term memory tokens added per window"),
    ):
        parser.add_argument(
            flag, type=int, default=None, help=f"Melodi: {what}; default: the preset's."
        )
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
        "--feedback",
        action="store_true",
        help="Every other layer also reads the recurrent state written after the previous "
        "window (block_recurrent; meliad's feedback variant).",
    )
    parser.add_argument(
        "--no-xl-cache",
        action="store_true",
        help="No Transformer-XL cache in any layer (memorizing, memorizing_dense, "
        "block_recurrent): what crosses segments is the kind's own memory alone.",
    )
    parser.add_argument(
        "--memory-size",
        type=_memory_size,
        default=8192,
        help="Memory entries per row and head (--kind memorizing*): a number or one of 8k, "
        "32k, 64k, 262k; a multiple of the segment length.",
    )
    parser.add_argument(
        "--num-neighbors", type=int, default=32, help="Entries retrieved per query (memorizing)."
    )
    parser.add_argument(
        "--retrieval",
        default="exact",
        choices=("exact", "bucketed", "approx", "scann"),
        help="kNN retrieval (memorizing): exact top-k on device, meliad's bucketed argmax, "
        "the backend's approx_max_k, or a ScaNN index on the host.",
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


def _memory_size(text):
    from keras_memory.models.presets import MEMORY_SIZES

    if text in MEMORY_SIZES:
        return MEMORY_SIZES[text]
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int or one of {sorted(MEMORY_SIZES)}; got {text!r}"
        ) from None


def _tokenizer_name(text):
    if text in ("bytes", "sentencepiece", "bpe") or (text.startswith("hub:") and text[4:]):
        return text
    raise argparse.ArgumentTypeError(
        f"expected bytes, sentencepiece, bpe or hub:PRESET; got {text!r}"
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-memory", description="Train and use memory language models."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="Train a model on long documents.")
    _add_common(train)
    _add_model(train)
    train.add_argument(
        "--tokenizer",
        type=_tokenizer_name,
        default=None,
        help="bytes (the default), a SentencePiece / byte-level BPE vocabulary trained on the "
        "training documents (sentencepiece, bpe), or hub:PRESET, a keras-hub preset's "
        "pretrained tokenizer (the default with --warm-start); saved in the workdir.",
    )
    train.add_argument(
        "--vocab-size",
        type=int,
        default=8000,
        help="Vocabulary size for --tokenizer sentencepiece|bpe (an upper bound).",
    )
    train.add_argument("--steps", type=int, default=200, help="Total training steps.")
    train.add_argument("--batch-size", type=int, default=8, help="Documents read in parallel.")
    train.add_argument("--learning-rate", type=float, default=3e-3, help="AdamW learning rate.")
    train.add_argument("--checkpoint-every", type=int, default=100, help="Steps per checkpoint.")
    train.add_argument(
        "--check-finite",
        action="store_true",
        help="After every step, stop with an error naming the first NaN/Inf loss, memory "
        "state variable or weight (costs a host sync per step).",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="Continue from the workdir's checkpoint: same step, optimizer and memory.",
    )

    evaluate = commands.add_parser("evaluate", help="Bits per token on the validation split.")
    _add_common(evaluate)
    evaluate.add_argument("--max-steps", type=int, default=None, help="Evaluate N steps only.")
    evaluate.add_argument(
        "--memory-size",
        dest="evaluate_memory_size",
        type=_memory_size,
        default=None,
        help="Evaluate with another memory size than the model was trained with (memorizing "
        "kinds; the memory is not a weight), e.g. 64k for a model trained with 8k.",
    )
    evaluate.add_argument(
        "--recall-task",
        choices=SYNTHETIC_TASKS,
        default=None,
        help="Also report greedy recall accuracy by --distances on this synthetic task.",
    )

    generate = commands.add_parser("generate", help="Continue a prompt.")
    _add_common(generate)
    generate.add_argument("--prompt", default="def ", help="Text to continue.")
    generate.add_argument("--num-tokens", type=int, default=200, help="Tokens to generate.")
    generate.add_argument("--temperature", type=float, default=0.8, help="0 for greedy.")
    generate.add_argument("--top-k", type=int, default=40, help="Sample among the top k.")
    generate.add_argument(
        "--top-p", type=float, default=None, help="Nucleus sampling: keep probability mass p."
    )

    demo = commands.add_parser(
        "demo",
        help="Train local-only and Transformer-XL on the built-in code corpus, "
        "compare bits per byte, plot losses, sample.",
    )
    _add_common(demo)
    demo.add_argument("--steps", type=int, default=800, help="Training steps per model.")
    demo.add_argument("--batch-size", type=int, default=8)
    demo.add_argument("--eval-steps", type=int, default=100, help="Validation steps.")

    bench = commands.add_parser("bench", help="Benchmarks that print one JSON line each.")
    bench.add_argument(
        "--backend",
        choices=("jax", "tensorflow", "torch"),
        help="Keras backend (default: $KERAS_BACKEND, else jax).",
    )
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
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
    return parser


def _add_speed(parser):
    from keras_memory.bench.configs import SPEED_CONFIGS

    parser.add_argument(
        "--kind",
        default="xl",
        help="Comma-separated model kinds; each is measured in a process of its own.",
    )
    parser.add_argument(
        "--config",
        default="tiny",
        help=f"One of {', '.join(SPEED_CONFIGS)} (the reference configs of the peers' figures) "
        "or a preset name (batch 8).",
    )
    parser.add_argument("--steps", type=int, default=10, help="Timed steps.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first.")
    parser.add_argument(
        "--precision",
        default=None,
        choices=("float32", "mixed_bfloat16"),
        help="Default: the config's (p150: mixed_bfloat16), else float32.",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="Default: the config's.")
    parser.add_argument("--segment-length", type=int, default=None)
    parser.add_argument("--window-length", type=int, default=None)
    parser.add_argument("--vocab-size", type=int, default=None)
    parser.add_argument(
        "--memory-size", type=int, default=None, help="kNN memory entries (memorizing kinds)."
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
    from keras_memory.bench.configs import RECALL_MODELS

    parser.add_argument(
        "--models",
        default=",".join(RECALL_MODELS),
        help=f"Comma-separated, of {', '.join(RECALL_MODELS)}.",
    )
    parser.add_argument(
        "--iterations", type=int, default=600, help="Training batches of documents per model."
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
        "--eval-memory-sizes",
        default="",
        help="Comma-separated memory sizes: also score each trained memorizing model with "
        "each (same weights, rebuild_model).",
    )
    parser.add_argument(
        "--output", default=None, help="Append each record (a JSON line) to this file too."
    )
    parser.add_argument(
        "--plot", default=None, metavar="DIR", help="Draw the figures of this run into DIR."
    )


def _corpus(args, split):
    from keras_memory.data import pg19_corpus, python_source_corpus, text_files_corpus

    if args.data == DEFAULT_DATA:
        corpus = python_source_corpus(split, max_documents=args.max_documents)
    elif args.data in SYNTHETIC_TASKS:
        return _synthetic_corpus(args, args.data, split)
    elif args.data == "pg19":
        corpus = pg19_corpus(split, data_dir=args.tfds_data_dir, max_documents=args.max_documents)
    else:
        corpus = text_files_corpus(args.data, split=split)
        if args.max_documents is not None:
            corpus.names = corpus.names[: args.max_documents]
            corpus.texts = corpus.texts[: args.max_documents]
    if corpus.skipped:
        print(f"Skipped {len(corpus.skipped)} file(s) (not UTF-8 or empty).", file=sys.stderr)
    return corpus


def _distances(args):
    try:
        return [int(d) for d in args.distances.split(",")]
    except ValueError:
        raise ValueError(
            f"--distances must be comma-separated ints; got {args.distances!r}."
        ) from None


def _synthetic_documents(task, distances, num_documents, seed):
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


def _synthetic_corpus(args, task, split):
    from keras_memory.data import Corpus

    # Validation draws from other seeds than training, so it holds unseen facts.
    seed = args.seed + (1_000_003 if split == "validation" else 0)
    count = args.num_documents if split == "train" else max(1, args.num_documents // 10)
    documents = _synthetic_documents(task, _distances(args), count, seed)
    names = [f"{task}-{split}-{i}" for i in range(len(documents))]
    return Corpus(names, [d.text for d in documents], skipped={})


# SentencePiece training costs about 13 s per MB on two cores; a sample suffices.
TOKENIZER_SAMPLE_BYTES = 4_000_000


def _training_tokenizer(args, corpus, resuming):
    """The workdir's tokenizer when resuming; else one trained (or bytes) and saved there."""
    from keras_memory.data.tokenizers import load_tokenizer, make_tokenizer

    if resuming:
        return load_tokenizer(args.workdir)
    if args.tokenizer.startswith("hub:"):
        return make_tokenizer("hub", preset=args.tokenizer[4:], directory=args.workdir)
    texts, total = [], 0
    for text in corpus.texts:
        if total >= TOKENIZER_SAMPLE_BYTES:
            break
        texts.append(text)
        total += len(text)
    if args.tokenizer != "bytes":
        print(f"Training a {args.tokenizer} vocabulary on {total:,} characters...")
    return make_tokenizer(
        args.tokenizer, texts=texts, vocab_size=args.vocab_size, directory=args.workdir
    )


def _saved_tokenizer(workdir):
    from keras_memory.data import ByteTokenizer
    from keras_memory.data.tokenizers import load_tokenizer

    try:
        return load_tokenizer(workdir)
    except FileNotFoundError:
        return ByteTokenizer()


def train(args):
    from keras_memory.training.checkpoints import release_workdir_lock, workdir_lock

    # Taken before the checkpoint is read: two runs must not both start fresh.
    workdir_lock(args.workdir)
    try:
        return _train(args)
    finally:
        release_workdir_lock(args.workdir)


def _train(args):
    import keras

    from keras_memory.data import SegmentStream, StepWindow
    from keras_memory.models import PRESETS, MemoryLM
    from keras_memory.optimizers import Sophia
    from keras_memory.training import CheckpointEvery, FiniteCheck, load_checkpoint

    if args.preset not in PRESETS:
        raise SystemExit(f"Unknown --preset {args.preset!r}; choose from {sorted(PRESETS)}.")
    preset = PRESETS[args.preset]
    if args.tokenizer is None:
        args.tokenizer = f"hub:{args.warm_start}" if args.warm_start else "bytes"
    segment = args.segment_length or preset["segment_length"]
    window = args.window_length or preset["window_length"]
    run_config = {
        "kind": args.kind,
        "preset": args.preset,
        "segment_length": segment,
        "window_length": window,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "data": args.data,
        "max_documents": args.max_documents,
        "precision": args.precision,
        "tokenizer": args.tokenizer,
    }
    model, progress = load_checkpoint(args.workdir)
    if model is not None and not args.resume:
        raise SystemExit(
            f"--workdir {args.workdir} already holds a checkpoint; pass --resume to "
            "continue it or choose another --workdir."
        )
    if segment % window:
        raise SystemExit(
            f"--segment-length {segment} is not a multiple of --window-length {window}."
        )
    memory_options = {}
    if args.kind in ("memorizing", "memorizing_dense"):
        if args.memory_size % segment or args.num_neighbors > args.memory_size:
            raise SystemExit(
                f"--memory-size {args.memory_size} must be a multiple of the segment length "
                f"{segment} and >= --num-neighbors {args.num_neighbors}."
            )
        memory_options = {
            "memory_size": args.memory_size,
            "num_neighbors": args.num_neighbors,
            "retrieval": args.retrieval,
        }
        run_config.update(memory_options)
    if args.kind == "block_recurrent":
        memory_options = {
            "gate": args.gate,
            "variant": args.variant,
            "num_states": args.num_states or preset["num_states"],
            "feedback": args.feedback,
        }
        run_config.update(memory_options)
    if args.kind == "melodi":
        memory_options = {
            key: preset.get(key) if getattr(args, key) is None else getattr(args, key)
            for key in (
                "summary_size",
                "short_term_memory_size",
                "long_term_memory_size",
                "long_term_increment",
            )
        }
        memory_options = {k: v for k, v in memory_options.items() if v is not None}
        run_config.update(memory_options)
    lswt_options = {
        key: value
        for key, value in (
            ("rotary", args.rotary),
            ("rotary_base", args.rotary_base),
            ("num_registers", args.num_registers),
            ("use_position_bias", False if args.no_position_bias else None),
            ("activation", args.activation),
            ("contrastive_margin", args.contrastive_margin),
            ("embedding_dim", args.embedding_dim),
            ("freeze_embedding", True if args.freeze_embedding else None),
            ("use_cache", False if args.no_xl_cache else None),
        )
        if value is not None
    }
    if args.warm_start:
        run_config["warm_start"] = args.warm_start
    run_config.update(lswt_options)
    if args.optimizer != "adamw":
        run_config["optimizer"] = args.optimizer
    resuming = args.resume and model is not None
    if resuming:
        if progress.get("run_config") != run_config:
            raise SystemExit(
                f"--workdir {args.workdir} holds a run with another configuration:\n"
                f"  saved: {progress.get('run_config')}\n  asked: {run_config}"
            )
        first_step = progress["step"]
        if first_step >= args.steps:
            print(f"Already trained {first_step} of {args.steps} steps.")
            return model
    corpus = _corpus(args, "train")
    tokenizer = _training_tokenizer(args, corpus, resuming)
    source = None
    if args.warm_start and not resuming:
        source = _warm_start_source(args.warm_start)
        width = source.shape[1]
        # The source's width replaces the preset's embedding_dim (LSWT's is OPT-125m's).
        if args.embedding_dim is None and (
            preset.get("embedding_dim") or width != preset["hidden_dim"]
        ):
            lswt_options["embedding_dim"] = width
    if not resuming:
        keras.utils.set_random_seed(args.seed)
        model = MemoryLM.from_preset(
            args.preset,
            kind=args.kind,
            stateful=True,
            dtype=args.precision,
            window_length=window,
            vocab_size=tokenizer.vocab_size,
            pad_token_id=tokenizer.pad_id,
            **memory_options,
            **lswt_options,
        )
        if args.optimizer == "sophia":
            optimizer = Sophia(args.learning_rate)
        else:
            optimizer = keras.optimizers.AdamW(args.learning_rate)
        model.compile(optimizer=optimizer)
        first_step = 0
    stream = SegmentStream(
        corpus.tokenize(tokenizer),
        args.batch_size,
        segment,
        seed=args.seed,
        vocab_size=model.vocab_size,
        **tokenizer.special_ids,
    )
    if source is not None:
        from keras_memory.models import warm_start_embedding

        model.build_from_data(stream)
        warm_start_embedding(model, source, freeze=args.freeze_embedding)
    print(
        f"{args.kind}: {len(corpus)} documents, {corpus.num_bytes():,} bytes, "
        f"{len(stream)} steps per epoch; training steps {first_step}..{args.steps}."
    )
    checkpoints = CheckpointEvery(
        args.workdir, args.checkpoint_every, first_step, {"run_config": run_config}
    )
    model.fit(
        StepWindow(stream, first_step, args.steps - first_step),
        epochs=1,
        callbacks=[
            # Checked before the checkpoint is written: a NaN never reaches the disk.
            *([FiniteCheck(every=1, check_weights=True)] if args.check_finite else []),
            checkpoints,
            keras.callbacks.TensorBoard(os.path.join(args.workdir, "logs"), update_freq=10),
        ],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return model


def _warm_start_source(preset):
    """The word embedding `(vocab, width)` of a keras-hub preset's backbone."""
    import keras
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(preset)
    return keras.ops.convert_to_numpy(backbone.token_embedding.embeddings)


def _load(args):
    from keras_memory.training import load_checkpoint

    model, progress = load_checkpoint(args.workdir)
    if model is None:
        raise SystemExit(f"No checkpoint in --workdir {args.workdir}; run `train` first.")
    return model, progress


def evaluate(args, model=None, progress=None):
    from keras_memory.data import SegmentStream
    from keras_memory.training import evaluate_bits_per_token

    if model is None:
        model, progress = _load(args)
    config = progress["run_config"]
    if getattr(args, "evaluate_memory_size", None):
        from keras_memory.models import rebuild_model

        model = rebuild_model(model, memory_size=args.evaluate_memory_size)
    corpus = _corpus(args, "validation")
    tokenizer = _saved_tokenizer(args.workdir)
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

        documents = _synthetic_documents(
            args.recall_task,
            _distances(args),
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


def generate(args, model=None, progress=None):
    from keras_memory.generation import generate as sample

    if model is None:
        model, progress = _load(args)
    tokenizer = _saved_tokenizer(args.workdir)
    prompt = [tokenizer.bos_id, *tokenizer.encode(args.prompt).tolist()]
    ids = sample(
        model,
        prompt,
        args.num_tokens,
        progress["run_config"]["segment_length"],
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    text = args.prompt + tokenizer.decode(ids)
    print(text)
    return text


def demo(args):
    from keras_memory.plots import plot_losses

    results, curves = [], {}
    root = args.workdir
    for kind in ("local", "xl"):
        # Every train option at its default, so options added later reach the demo too.
        defaults = vars(build_parser().parse_args(["train"]))
        run = argparse.Namespace(**{**defaults, **vars(args)})
        run.workdir = os.path.join(root, kind)
        run.kind, run.preset, run.precision = kind, "tiny", "float32"
        run.segment_length = run.window_length = None
        run.learning_rate, run.checkpoint_every, run.resume = 3e-3, 0, True
        run.max_steps, run.recall_task = args.eval_steps, None
        run.tokenizer, run.vocab_size = "bytes", None
        run.memory_size, run.num_neighbors, run.retrieval = 8192, 32, "exact"
        started = time.time()
        model = train(run)
        from keras_memory.training import load_checkpoint

        model, progress = load_checkpoint(run.workdir)
        result = evaluate(run, model, progress)
        result["train_seconds"] = round(time.time() - started, 1)
        results.append(result)
        with open(os.path.join(run.workdir, "losses.jsonl")) as f:
            curves[kind] = [json.loads(line)["loss"] for line in f]
    print("\n| model | steps | validation bits per byte |")
    print("|---|---|---|")
    for r in results:
        print(f"| {r['kind']} | {r['step']} | {r['bits_per_token']:.3f} |")
    plot_path = plot_losses(curves, os.path.join(root, "loss.png"))
    print(f"\nLoss curves: {plot_path}")
    run.prompt, run.num_tokens, run.temperature, run.top_k = "import ", 200, 0.8, 40
    run.top_p = None
    print("\nSample from the Transformer-XL model:\n")
    generate(run, model, progress)


def bench(args):
    from keras_memory.bench import quality, recall, speed

    benchmarks = {"quality": quality.main, "recall": recall.main, "speed": speed.main}
    return benchmarks[args.benchmark](args)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.backend and os.environ.get("KERAS_BACKEND") != args.backend:
        env = {**os.environ, "KERAS_BACKEND": args.backend}
        os.execve(sys.executable, [sys.executable, "-m", "keras_memory.cli", *argv], env)
    command = {
        "train": train,
        "evaluate": evaluate,
        "generate": generate,
        "demo": demo,
        "bench": bench,
    }
    try:
        command[args.command](args)
    except ValueError as error:
        # Bad data or arguments: one clear line, no traceback, exit code 2.
        print(f"keras-memory {args.command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
