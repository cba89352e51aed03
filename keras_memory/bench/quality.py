"""Quality evidence: every memory model trained alike, scored in bits per byte.

Each model is the same preset (the same widths, depth, window, segment and
optimizer) trained for the same steps on the same in-order stream of
segments, then scored on the same validation stream from a fresh memory.
Only the memory differs, so the differences in validation bits per byte are
what each memory buys at this scale.
"""

import datetime
import json
import math
import time

import keras
import numpy as np

from keras_memory.backend.device import device_name
from keras_memory.bench.configs import QUALITY_BASELINE
from keras_memory.bench.configs import QUALITY_MODELS as MODELS
from keras_memory.data import (
    ByteTokenizer,
    SegmentStream,
    kjv_corpus,
    make_tokenizer,
    python_source_corpus,
)
from keras_memory.memories import get_kind
from keras_memory.models import PRESETS, MemoryLM, rebuild_model, warm_start_model
from keras_memory.models.presets import SIZE_OPTIONS
from keras_memory.ops.checks import check_int
from keras_memory.training import evaluate_bits_per_token, memory_footprint


def code_corpus(split):
    """The embedded stdlib sources, one document per top-level package."""
    return python_source_corpus(split, by_package=True)


def english_corpus(split):
    """The King James Bible, one document per book (Debian's `bible-kjv`)."""
    return kjv_corpus(split)


CORPORA = {"code": code_corpus, "kjv": english_corpus}


def train_and_score(
    name,
    train_documents,
    validation_documents,
    steps=600,
    eval_steps=400,
    preset="tiny",
    batch_size=8,
    learning_rate=3e-3,
    seed=0,
    options=None,
    eval_memory_sizes=(),
    pretrain_steps=0,
):
    """Trains model `name` of `MODELS` (or `options`) and scores it.

    Args:
        name: str. A key of `MODELS`, or any label when `options` is given.
        train_documents: list of int token arrays (byte ids).
        validation_documents: list of int token arrays.
        steps: int. Training steps (`batch_size` documents read in parallel,
            one segment per step).
        eval_steps: int. Validation steps, read in order from a fresh memory.
        preset: str. Preset of `keras_memory.models.PRESETS`.
        batch_size: int. Rows.
        learning_rate: float. AdamW learning rate.
        seed: int. Initialisation and document-order seed.
        options: dict or None. `MemoryLM.from_preset` options instead of
            `MODELS[name]`.
        eval_memory_sizes: sequence of ints. For a memorizing model, also
            score the trained weights with each of these memory sizes
            (`rebuild_model`): what more memory buys the same model.
        pretrain_steps: int. The paper's fine-tuning route: first train an
            `xl` model of the same sizes for this many steps, start the model
            from its weights (`warm_start_model`) and train it `steps` more
            on the stream that follows. 0 (the default) trains from scratch.

    Returns:
        A dict: the model's options, `validation_bits_per_byte`, the
        per-step training `losses` (nats), timings, `state_bytes_per_row`
        (`memory_footprint`) and `trainable_params`.
    """
    options = dict(MODELS[name] if options is None else options)
    segment = PRESETS[preset]["segment_length"]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    pretrain_steps = check_int("pretrain_steps", pretrain_steps, minimum=0)
    train = SegmentStream(train_documents, batch_size, segment, seed=seed)
    if pretrain_steps + steps > len(train):
        raise ValueError(
            f"`pretrain_steps` + `steps` ({pretrain_steps + steps}) exceeds one epoch of the "
            f"stream ({len(train)})."
        )
    losses = []
    started = time.perf_counter()
    if pretrain_steps:
        # Made first, so it starts as an `xl` model trained from scratch would.
        xl_options = {k: v for k, v in options.items() if k in XL_SIZE_OPTIONS}
        pretrained = _compiled(preset, {**xl_options, "kind": "xl"}, learning_rate, train)
        losses += _train(pretrained, train, range(pretrain_steps))
    model = _compiled(preset, options, learning_rate, train)
    if pretrain_steps:
        try:
            warm_start_model(model, pretrained)
        except ValueError as error:
            raise ValueError(
                f"`pretrain_steps`: model {name!r} cannot start from an xl model ({error})."
            ) from None
    losses += _train(model, train, range(pretrain_steps, pretrain_steps + steps))
    train_seconds = time.perf_counter() - started
    validation = SegmentStream(validation_documents, batch_size, segment)
    started = time.perf_counter()
    scored = evaluate_bits_per_token(model, validation, max_steps=eval_steps)
    eval_seconds = time.perf_counter() - started
    by_memory_size = {}
    if "memory_size" in get_kind(options.get("kind", "xl")).option_names():
        for size in eval_memory_sizes:
            resized = rebuild_model(model, memory_size=int(size))
            by_memory_size[str(size)] = round(
                evaluate_bits_per_token(resized, validation, max_steps=eval_steps)[
                    "bits_per_token"
                ],
                4,
            )
    return {
        "model": name,
        **options,
        "preset": preset,
        "steps": steps,
        **({"pretrain_steps": pretrain_steps} if pretrain_steps else {}),
        "batch_size": batch_size,
        "segment_length": segment,
        "learning_rate": learning_rate,
        "seed": seed,
        "validation_bits_per_byte": round(scored["bits_per_token"], 4),
        "validation_tokens": scored["tokens"],
        "validation_steps": scored["steps"],
        # The model's own steps (the xl model's before a warm start are not its).
        "final_train_bits_per_byte": round(
            float(np.mean(losses[pretrain_steps:][-50:] or [math.nan])) / math.log(2), 4
        ),
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        **({"bits_per_byte_by_eval_memory_size": by_memory_size} if by_memory_size else {}),
        "state_bytes_per_row": memory_footprint(model)["total"],
        "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "losses": [round(x, 4) for x in losses],
    }


# What an `xl` model shares with a sweep point's model, for `pretrain_steps`.
XL_SIZE_OPTIONS = (
    *SIZE_OPTIONS,
    "vocab_size",
    "embedding_dim",
    "use_cache",
    "normalize_keys",
    "rotary",
    "num_registers",
    "num_key_value_heads",
)


def _compiled(preset, options, learning_rate, stream):
    model = MemoryLM.from_preset(preset, stateful=True, **options)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate))
    model.build_from_data(stream)
    return model


def _train(model, stream, steps):
    """Per-step training losses (nats) over the stream's steps `steps`."""
    return [float(model.train_on_batch(*stream[step])) for step in steps]


def run_quality(
    corpora=("code", "kjv"),
    models=tuple(MODELS),
    report=print,
    overrides=None,
    tokenizer="bytes",
    vocab_size=4096,
    **train_options,
):
    """Trains and scores every model on every corpus; yields one record each.

    Args:
        corpora: names in `CORPORA`.
        models: names in `MODELS`.
        report: callable taking each record as it is made (e.g. a JSON writer).
        overrides: dict or None. `MemoryLM.from_preset` options added to
            every model's (a sweep point), recorded as `overrides`.
        tokenizer: str. `"bytes"`, or `"sentencepiece"` / `"bpe"`: a subword
            vocabulary of at most `vocab_size` trained on each corpus's
            training split (`make_tokenizer`); the models get its size. A
            subword record's `validation_bits_per_byte` is its bits per token
            over the validation split's mean bytes per token (both recorded).
        vocab_size: int. The subword vocabulary's largest size.
        **train_options: passed to `train_and_score` (`steps`, `eval_steps`,
            `preset`, `batch_size`, `learning_rate`, `seed`, `pretrain_steps`).

    Returns:
        The list of records, each with `corpus`, `backend`, `device` and `date`.
    """
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(corpora) - set(CORPORA))
    if unknown:
        raise ValueError(
            f"Unknown model or corpus {unknown}; models: {list(MODELS)}, corpora: {list(CORPORA)}."
        )
    records = []
    for corpus_name in corpora:
        train_texts = CORPORA[corpus_name]("train")
        validation_texts = CORPORA[corpus_name]("validation")
        subwords = _tokenizer(tokenizer, train_texts, vocab_size)
        train = train_texts.tokenize(subwords)
        validation = validation_texts.tokenize(subwords)
        vocabulary = {} if tokenizer == "bytes" else {"vocab_size": subwords.vocab_size}
        for name in models:
            record = {
                "benchmark": "quality",
                "corpus": corpus_name,
                **train_and_score(
                    name,
                    train,
                    validation,
                    options={**MODELS[name], **vocabulary, **(overrides or {})},
                    **train_options,
                ),
                "overrides": overrides or {},
                "backend": keras.backend.backend(),
                "device": device_name(),
                "date": datetime.date.today().isoformat(),
            }
            if tokenizer != "bytes":
                record.update(_per_byte(record, validation_texts, validation, tokenizer))
            records.append(record)
            report(record)
    return records


def _tokenizer(name, corpus, vocab_size):
    if name == "bytes":
        return ByteTokenizer()
    if name not in ("sentencepiece", "bpe"):
        raise ValueError(f"`tokenizer` must be bytes, sentencepiece or bpe; got {name!r}.")
    return make_tokenizer(name, corpus.texts, vocab_size=vocab_size)


def _per_byte(record, corpus, documents, tokenizer):
    """A subword record's figures per byte: bits per token over bytes per token."""
    bytes_per_token = corpus.num_bytes() / sum(len(d) for d in documents)
    bits_per_token = record["validation_bits_per_byte"]
    by_memory_size = record.get("bits_per_byte_by_eval_memory_size", {})
    return {
        "tokenizer": tokenizer,
        "validation_bits_per_token": bits_per_token,
        "bytes_per_token": round(bytes_per_token, 4),
        "validation_bits_per_byte": round(bits_per_token / bytes_per_token, 4),
        **(
            {
                "bits_per_byte_by_eval_memory_size": {
                    size: round(bits / bytes_per_token, 4) for size, bits in by_memory_size.items()
                }
            }
            if by_memory_size
            else {}
        ),
        "final_train_bits_per_token": record["final_train_bits_per_byte"],
        "final_train_bits_per_byte": round(
            record["final_train_bits_per_byte"] / bytes_per_token, 4
        ),
    }


def main(args):
    """Runs `keras-memory bench quality`: one JSON line per (corpus, model)."""
    from keras_memory.bench.records import json_lines_reporter

    try:
        overrides = json.loads(args.options)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--options must be a JSON object; got {args.options!r} ({error})."
        ) from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--options must be a JSON object; got {args.options!r}.")
    report = json_lines_reporter(args.output, hidden=("losses",))
    records = run_quality(
        overrides=overrides,
        corpora=[c for c in args.corpora.split(",") if c],
        models=[m for m in args.models.split(",") if m],
        report=report,
        steps=args.steps,
        eval_steps=args.eval_steps,
        preset=args.preset,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        pretrain_steps=args.pretrain_steps,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        eval_memory_sizes=[int(x) for x in args.eval_memory_sizes.split(",") if x],
    )
    if args.plot:
        from keras_memory.plots import plot_quality

        for path in plot_quality(records, args.plot, baseline=QUALITY_BASELINE):
            print(f"Wrote {path}")
    return records
