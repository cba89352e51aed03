"""Facts in real prose: what each memory recalls 200 to 3,000 bytes later.

`keras-memory bench recall --task prose-facts` trains each model of
`PROSE_RECALL_MODELS` (the `tiny` preset, bytes, every model alike) on
documents of `keras_memory.data.prose_facts` (four facts, a passage of real
text, the facts asked again), then scores the answer letters of unseen
documents at each distance: their cross-entropy in bits (chance: 4.70) and
greedy accuracy (chance: 1/26). A memory that pays shows as a curve below
chance beyond the reach of the attention window and the XL cache.
"""

import datetime
import math
import time

import keras
import numpy as np

from keras_memory.backend.device import device_name
from keras_memory.bench.configs import PROSE_RECALL_MODELS
from keras_memory.data import ByteTokenizer, SegmentStream
from keras_memory.data.prose_facts import CHANCE_BITS, passage_texts, prose_fact_documents
from keras_memory.models import PRESETS, MemoryLM
from keras_memory.training.recall import evaluate_recall

TRAIN_DISTANCES = (256, 1024, 1536, 2048)
EVAL_DISTANCES = (200, 500, 1000, 1500, 2000, 3000)


def fact_documents(passages, distances, num_documents, seed):
    """`num_documents` prose-facts documents at each of `distances`, seeded per distance."""
    documents = []
    for i, distance in enumerate(distances):
        documents += prose_fact_documents(passages, num_documents, distance, seed=seed + i)
    return documents


def train_and_score_facts(
    name,
    train_passages,
    validation_passages,
    options=None,
    steps=2000,
    preset="tiny",
    batch_size=8,
    learning_rate=3e-3,
    seed=0,
    train_distances=TRAIN_DISTANCES,
    eval_distances=EVAL_DISTANCES,
    eval_documents=16,
):
    """Trains model `name` on prose-facts documents and scores its answers by distance.

    Args:
        name: str. A key of `PROSE_RECALL_MODELS`, or any label with `options`.
        train_passages: list of str. The text the training passages come from.
        validation_passages: list of str. The text of the scored documents'
            passages (unseen in training).
        options: dict or None. `MemoryLM.from_preset` options instead of
            `PROSE_RECALL_MODELS[name]`.
        steps: int. Training steps of `batch_size` rows, one segment each.
        preset: str. A preset of `keras_memory.models.PRESETS`.
        batch_size: int. Rows.
        learning_rate: float. AdamW learning rate.
        seed: int. Initialisation, facts and order seed.
        train_distances: ints. Distances of the training documents.
        eval_distances: ints. Distances of the scored documents.
        eval_documents: int. Scored documents per distance (4 answers each).

    Returns:
        A dict: the options, `answer_bits_by_distance` and
        `recall_by_distance` (`{distance: value}`), `answer_bits` and
        `recall` over every distance, `chance_bits`, the training loss
        curve (`losses`, nats) and timings.
    """
    options = dict(PROSE_RECALL_MODELS[name] if options is None else options)
    segment = options.get("segment_length", PRESETS[preset]["segment_length"])
    tokenizer = ByteTokenizer()
    documents = fact_documents(train_passages, train_distances, 4 * steps // 3 + 64, seed)
    stream = SegmentStream(
        [tokenizer.encode(d.text) for d in documents], batch_size, segment, seed=seed
    )
    if steps > len(stream):
        raise ValueError(f"`steps` ({steps}) exceeds one epoch of the stream ({len(stream)}).")
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = MemoryLM.from_preset(preset, stateful=True, **options)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate))
    model.build_from_data(stream)
    losses = []
    started = time.perf_counter()
    for step in range(steps):
        inputs, targets = stream[step]
        losses.append(float(model.train_on_batch(inputs, targets)))
    train_seconds = time.perf_counter() - started
    scored = fact_documents(validation_passages, eval_distances, eval_documents, seed + 1_000_003)
    result = evaluate_recall(model, scored, segment, batch_size=batch_size)
    by_distance = sorted(result["by_distance"].items())
    return {
        "model": name,
        **options,
        "preset": preset,
        "steps": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "train_distances": list(train_distances),
        "answer_bits_by_distance": {str(d): round(r["bits"], 4) for d, r in by_distance},
        "recall_by_distance": {str(d): round(r["accuracy"], 4) for d, r in by_distance},
        "answer_bits": round(result["bits"], 4),
        "recall": round(result["accuracy"], 4),
        "answers": result["answers"],
        "chance_bits": round(CHANCE_BITS, 4),
        "final_train_bits_per_byte": round(float(np.mean(losses[-100:])) / math.log(2), 4),
        "train_seconds": round(train_seconds, 1),
        "losses": [round(x, 4) for x in losses],
    }


def run_prose_recall(
    models=tuple(PROSE_RECALL_MODELS),
    passages="python-docs",
    report=print,
    seeds=(0,),
    **train_options,
):
    """Trains and scores every model (per seed); yields one record each.

    Args:
        models: names in `PROSE_RECALL_MODELS`.
        passages: `(train_texts, validation_texts)`, or a source of
            `keras_memory.data.prose_facts.passage_texts`.
        report: callable taking each record as it is made.
        seeds: ints. One run per model per seed.
        **train_options: passed to `train_and_score_facts`.

    Returns:
        The list of records.
    """
    unknown = sorted(set(models) - set(PROSE_RECALL_MODELS))
    if unknown:
        raise ValueError(f"Unknown model {unknown}; models: {list(PROSE_RECALL_MODELS)}.")
    if isinstance(passages, str):
        label = passages
        passages = (passage_texts(passages, "train"), passage_texts(passages, "validation"))
    else:
        label = "given"
    records = []
    for seed in seeds:
        for name in models:
            record = {
                "benchmark": "prose_recall",
                "passages": label,
                **train_and_score_facts(name, *passages, seed=seed, **train_options),
                "backend": keras.backend.backend(),
                "device": device_name(),
                "date": datetime.date.today().isoformat(),
            }
            records.append(record)
            report(record)
    return records


def main(args):
    """Runs `keras-memory bench recall --task prose-facts`: one JSON line per model and seed."""
    from keras_memory.bench.records import json_lines_reporter

    try:
        seeds = [int(x) for x in args.seeds.split(",") if x]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated ints; got {args.seeds!r}.") from None
    report = json_lines_reporter(args.output, hidden=("losses",))
    records = run_prose_recall(
        models=[m for m in (args.models or ",".join(PROSE_RECALL_MODELS)).split(",") if m],
        passages=args.fact_passages,
        report=report,
        seeds=seeds,
        steps=args.steps,
    )
    if args.plot:
        from keras_memory.plots import plot_answer_bits

        print(f"Wrote {plot_answer_bits(records, args.plot)}")
    return records
