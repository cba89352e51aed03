"""`keras-memory train`: train a model on long documents, checkpointing as it goes.

Everything a command line can get wrong is checked before the workdir is
written: the flags (by the parser), the workdir, the configuration against
a checkpoint being resumed, and the memory against the machine's RAM.
Training stops at the first non-finite loss, and no checkpoint is written
with non-finite weights (`CheckpointEvery`); Ctrl-C says which checkpoint is
the newest and how to continue.
"""

import os
import sys

from keras_memory.cli import run_config as config
from keras_memory.cli.arguments import add_common, add_model
from keras_memory.cli.corpora import corpus as read_corpus
from keras_memory.cli.saved_run import check_workdir, newest_progress, run_config_of
from keras_memory.cli.tokenizer import training_tokenizer
from keras_memory.cli.values import non_negative_int, positive_float, positive_int, tokenizer_name

HELP = "Train a model on long documents."

DEFAULT_LEARNING_RATE = 3e-3


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
        type=positive_int,
        default=8000,
        help="Vocabulary size for --tokenizer sentencepiece|bpe (an upper bound).",
    )
    parser.add_argument("--steps", type=positive_int, default=200, help="Total training steps.")
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="Documents read in parallel."
    )
    parser.add_argument(
        "--learning-rate",
        type=positive_float,
        default=None,
        help=f"Learning rate (default: {DEFAULT_LEARNING_RATE}; with --resume, the saved "
        "run's, and a given one applies from the resumed step on).",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        default=100,
        help="Steps per checkpoint; 0: only at the end.",
    )
    parser.add_argument(
        "--progress-every",
        type=positive_int,
        default=10,
        help="Steps per progress line (step, loss in bits per token, tokens/s, ETA).",
    )
    parser.add_argument(
        "--check-finite",
        action="store_true",
        help="After every step, stop with an error naming the first NaN/Inf memory state "
        "variable or weight (costs a host sync per step; a non-finite loss always stops "
        "training, and a checkpoint is never written with non-finite weights).",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="Start from the newest checkpoint of the trained run in the folder RUN: every "
        "weight the two models share is copied (warm_start_model), e.g. an xl run fine-tuned "
        "with a memory (--kind memorizing --local-position-bias); the sizes must be RUN's, "
        "and RUN's tokenizer is used.",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue the workdir's run from its newest checkpoint (same step, optimizer "
        "and memory) with its saved configuration; only --steps, --learning-rate, "
        "--checkpoint-every, --progress-every and --check-finite may be given anew.",
    )


def run(args):
    """Trains (or, with `--resume`, continues) the run of `--workdir`; returns the model."""
    from keras_memory.training.checkpoints import release_workdir_lock, workdir_lock

    check_workdir(args.workdir, create=True)
    # Taken before the checkpoint is read: two runs must not both start fresh.
    workdir_lock(args.workdir)
    try:
        return _train(args)
    finally:
        release_workdir_lock(args.workdir)


def _train(args):
    from keras_memory.training import load_checkpoint

    # The newest checkpoint's progress, read without loading its model: every
    # check of the command line against it comes first, and costs nothing.
    progress = newest_progress(args.workdir)
    if progress == {}:  # damaged: the checkpoint before it is the one to resume
        _, progress = load_checkpoint(args.workdir)
    if progress is not None and not args.resume:
        raise ValueError(
            f"--workdir {args.workdir} already holds a checkpoint; pass --resume to "
            "continue it or choose another --workdir."
        )
    resuming = progress is not None
    if resuming:
        config.take_saved_config(args, run_config_of(args.workdir, progress))
    elif args.init_from:
        _check_init_from(args)
    preset = config.preset_of(args)
    if args.tokenizer is None:
        args.tokenizer = f"hub:{args.warm_start}" if args.warm_start else "bytes"
    segment = args.segment_length or preset["segment_length"]
    window = args.window_length or preset["window_length"]
    if segment % window:
        raise ValueError(
            f"--segment-length {segment} is not a multiple of --window-length {window}."
        )
    run_config = config.base_run_config(args, segment, window)
    kind_options = config.kind_options(args, preset, segment)
    lswt_options = config.lswt_options(args)
    config.add_model_options(run_config, args, kind_options, lswt_options)
    if args.init_from:
        run_config["init_from"] = os.path.abspath(args.init_from)
    if resuming:
        changed = config.differences(progress["run_config"], run_config)
        if changed:
            raise ValueError(
                f"--resume continues the run in --workdir {args.workdir} as it was "
                f"configured; these flags differ from it: {'; '.join(changed)}. Drop them, "
                "or choose another --workdir for a new run."
            )
        if progress["step"] >= args.steps:
            print(f"Already trained {progress['step']} of {args.steps} steps.")
            return load_checkpoint(args.workdir)[0]
    else:
        _check_memory_fits(args, window, kind_options, lswt_options)
    corpus = read_corpus(args, "train")
    if args.init_from and not resuming:
        tokenizer = _tokenizer_of(args)
    else:
        tokenizer = training_tokenizer(args, corpus, resuming)
    source = None
    if resuming:
        model, progress = load_checkpoint(args.workdir)
        first_step = progress["step"]
        learning_rate = _resumed_learning_rate(args, model, progress)
    else:
        first_step = 0
        learning_rate = args.learning_rate or DEFAULT_LEARNING_RATE
        if args.warm_start:
            source = _warm_start_source(args.warm_start)
            # The source's width replaces the preset's embedding_dim (LSWT's is OPT-125m's).
            if args.embedding_dim is None and (
                preset.get("embedding_dim") or source.shape[1] != preset["hidden_dim"]
            ):
                lswt_options["embedding_dim"] = source.shape[1]
        model = _new_model(args, window, tokenizer, kind_options, lswt_options)
        model.compile(optimizer=_optimizer(args.optimizer, learning_rate))
    return _fit(args, model, corpus, tokenizer, first_step, run_config, learning_rate, source)


def _fit(args, model, corpus, tokenizer, first_step, run_config, learning_rate, source):
    from keras_memory.cli.interrupted import Interrupted, StopOnInterrupt
    from keras_memory.data import SegmentStream, StepWindow
    from keras_memory.training import CheckpointEvery, FiniteCheck, ProgressLog

    stream = SegmentStream(
        corpus.tokenize(tokenizer),
        args.batch_size,
        run_config["segment_length"],
        seed=args.seed,
        vocab_size=model.vocab_size,
        **tokenizer.special_ids,
    )
    if source is not None:
        from keras_memory.models import warm_start_embedding

        model.build_from_data(stream)
        warm_start_embedding(model, source, freeze=args.freeze_embedding)
    if args.init_from and first_step == 0:
        _start_from_run(args, model, stream, tokenizer)
    import keras

    from keras_memory.backend.allocator import host_allocator

    print(
        f"{args.kind} on {keras.backend.backend()} ({host_allocator()} allocator): "
        f"{len(corpus)} documents, "
        f"{corpus.num_bytes():,} bytes, "
        f"{len(stream)} steps per epoch; training steps {first_step}..{args.steps}."
    )
    checkpoints = CheckpointEvery(
        args.workdir,
        args.checkpoint_every,
        first_step,
        {"run_config": run_config, "learning_rate": learning_rate},
    )
    callbacks = [
        # Checked before the checkpoint is written: a NaN never reaches the disk.
        *([FiniteCheck(every=1, check_weights=True)] if args.check_finite else []),
        checkpoints,
        ProgressLog(
            args.steps,
            args.batch_size * run_config["segment_length"],
            first_step=first_step,
            every=args.progress_every,
        ),
    ]
    callbacks.append(
        keras.callbacks.TensorBoard(os.path.join(args.workdir, "logs"), update_freq=10)
    )
    with StopOnInterrupt() as interrupt:
        try:
            model.fit(
                StepWindow(stream, first_step, args.steps - first_step),
                epochs=1,
                callbacks=[*callbacks, interrupt.callback()],
                verbose=0,
            )
        except KeyboardInterrupt:
            interrupt.interrupted = True
    if interrupt.interrupted:
        kept = checkpoints.saved_step
        raise Interrupted(
            f"interrupted at step {checkpoints.step}; "
            + (f"the newest checkpoint is step {kept}" if kept else "no checkpoint was written")
            + f". Continue with: keras-memory train --workdir {args.workdir} --resume"
        ) from None
    _plot_losses(args.workdir, args.kind)
    return model


def _new_model(args, window, tokenizer, kind_options, lswt_options):
    import keras

    from keras_memory.models import MemoryLM

    keras.utils.set_random_seed(args.seed)
    return MemoryLM.from_preset(
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


def _optimizer(name, learning_rate):
    import keras

    from keras_memory.optimizers import Sophia

    return Sophia(learning_rate) if name == "sophia" else keras.optimizers.AdamW(learning_rate)


def _resumed_learning_rate(args, model, progress):
    """The saved run's learning rate, or `--learning-rate` from this step on (said aloud)."""
    import keras

    saved = progress.get("learning_rate")
    if saved is None:
        saved = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    if args.learning_rate is None or args.learning_rate == saved:
        return saved
    model.optimizer.learning_rate.assign(args.learning_rate)
    print(f"--learning-rate {args.learning_rate} from step {progress['step']} on (was {saved}).")
    return args.learning_rate


def _check_memory_fits(args, window, kind_options, lswt_options):
    """Refuses, before anything is allocated, a memory larger than this machine's RAM."""
    from keras_memory.models import MemoryLM
    from keras_memory.training import state_bytes

    # Built without variables: the state's shapes come from the configuration.
    model = MemoryLM.from_preset(
        args.preset,
        kind=args.kind,
        stateful=True,
        window_length=window,
        **kind_options,
        **{k: v for k, v in lswt_options.items() if k != "embedding_dim"},
    )
    needed = state_bytes(model, args.batch_size)
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise ValueError(
            f"the memory state of --kind {args.kind} with these sizes (--memory-size "
            f"{kind_options.get('memory_size', '-')}, --batch-size {args.batch_size}) needs "
            f"{_gigabytes(needed)}; this machine has {_gigabytes(available)} of RAM."
        )


def _gigabytes(size):
    return f"{size / 2**30:,.1f} GiB"


def _plot_losses(workdir, label):
    """Writes `WORKDIR/loss.png`: the whole run's loss curve, resumed parts included."""
    from keras_memory.plots import plot_losses
    from keras_memory.training import read_losses

    losses = [record["loss"] for record in read_losses(workdir)]
    if len(losses) >= 2:
        path = plot_losses({label: losses}, os.path.join(workdir, "loss.png"))
        print(f"Loss curve: {path}", file=sys.stderr)


def _check_init_from(args):
    """Refuses, before anything is written, an `--init-from` that cannot start this run."""
    from keras_memory.training import load_checkpoint

    if args.warm_start:
        raise ValueError("--init-from and --warm-start both start the weights: give one.")
    for flag in ("tokenizer", "vocab_size"):
        if flag in args.given:
            raise ValueError(
                f"--init-from uses the tokenizer of the run it starts from: drop "
                f"--{flag.replace('_', '-')}."
            )
    if os.path.realpath(args.init_from) == os.path.realpath(args.workdir):
        raise ValueError("--init-from must name another run's folder than --workdir.")
    if not os.path.isdir(args.init_from):
        raise ValueError(f"--init-from {args.init_from} is not a folder.")
    progress = newest_progress(args.init_from)
    if progress == {}:  # damaged: the checkpoint before it is the one to start from
        _, progress = load_checkpoint(args.init_from)
    if progress is None:
        raise ValueError(f"--init-from {args.init_from} holds no checkpoint to start from.")
    try:
        saved = run_config_of(args.init_from, progress)
    except ValueError as error:
        raise ValueError(f"--init-from {args.init_from}: {error}") from None
    args.tokenizer = saved.get("tokenizer") or "bytes"


def _tokenizer_of(args):
    """The `--init-from` run's tokenizer (saved in this workdir once the weights are copied)."""
    from keras_memory.cli.tokenizer import saved_tokenizer

    return saved_tokenizer(args.init_from, args.tokenizer)


def _start_from_run(args, model, stream, tokenizer):
    """Copies the weights `model` shares with the `--init-from` run's newest checkpoint."""
    from keras_memory.data import save_tokenizer
    from keras_memory.models import warm_start_model
    from keras_memory.training import load_checkpoint

    source, progress = load_checkpoint(args.init_from)
    if source is None:
        raise ValueError(f"--init-from {args.init_from}: no checkpoint could be read.")
    model.build_from_data(stream)
    try:
        started = warm_start_model(model, source)
    except ValueError as error:
        raise ValueError(
            f"--init-from {args.init_from} cannot start this model ({error}); use its "
            "--preset and sizes."
        ) from None
    # Only now is anything written: a refused --init-from leaves the workdir as it was.
    save_tokenizer(tokenizer, args.workdir)
    print(
        f"Started from {args.init_from} (step {progress['step']}); new weights: "
        + (", ".join(started["new"]) or "none")
        + "; left behind: "
        + (", ".join(started["unused"]) or "none")
        + "."
    )


def _warm_start_source(preset):
    """The word embedding `(vocab, width)` of a keras-hub preset's backbone."""
    import keras
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(preset)
    return keras.ops.convert_to_numpy(backbone.token_embedding.embeddings)
