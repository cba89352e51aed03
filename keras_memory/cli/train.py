"""`keras-memory train`: train a model on long documents, checkpointing as it goes."""

import os
import sys

from keras_memory.cli import run_config as config
from keras_memory.cli.arguments import add_common, add_model
from keras_memory.cli.corpora import corpus as read_corpus
from keras_memory.cli.tokenizer import training_tokenizer
from keras_memory.cli.values import tokenizer_name

HELP = "Train a model on long documents."


def add_arguments(parser):
    """Adds `train`'s flags: the common ones, the model's and the training loop's."""
    add_common(parser)
    add_model(parser)
    parser.add_argument(
        "--tokenizer",
        type=tokenizer_name,
        default=None,
        help="bytes (the default), a SentencePiece / byte-level BPE vocabulary trained on the "
        "training documents (sentencepiece, bpe), or hub:PRESET, a keras-hub preset's "
        "pretrained tokenizer (the default with --warm-start); saved in the workdir.",
    )
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=8000,
        help="Vocabulary size for --tokenizer sentencepiece|bpe (an upper bound).",
    )
    parser.add_argument("--steps", type=int, default=200, help="Total training steps.")
    parser.add_argument("--batch-size", type=int, default=8, help="Documents read in parallel.")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="AdamW learning rate.")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="Steps per checkpoint.")
    parser.add_argument(
        "--check-finite",
        action="store_true",
        help="After every step, stop with an error naming the first NaN/Inf loss, memory "
        "state variable or weight (costs a host sync per step).",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue from the workdir's checkpoint: same step, optimizer and memory.",
    )


def run(args):
    """Trains (or, with `--resume`, continues) the run of `--workdir`; returns the model."""
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
    from keras_memory.models import MemoryLM
    from keras_memory.optimizers import Sophia
    from keras_memory.training import CheckpointEvery, FiniteCheck, load_checkpoint

    preset = config.preset_of(args)
    if args.tokenizer is None:
        args.tokenizer = f"hub:{args.warm_start}" if args.warm_start else "bytes"
    segment = args.segment_length or preset["segment_length"]
    window = args.window_length or preset["window_length"]
    run_config = config.base_run_config(args, segment, window)
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
    kind_options = config.kind_options(args, preset, segment)
    lswt_options = config.lswt_options(args)
    config.add_model_options(run_config, args, kind_options, lswt_options)
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
    corpus = read_corpus(args, "train")
    tokenizer = training_tokenizer(args, corpus, resuming)
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
            **kind_options,
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
