"""How far back each memory reaches: fact recall accuracy against distance.

The task, in token ids (no tokenizer): a document states `NUM_FACTS` facts
at its start, one token each (key `k` has value `v`), asks for them right
away (within the window, so attention learns the lookup), then reads filler
and asks for all of them again at the end of every window-long block. The
values never appear in the input except inside the fact tokens, so a model
that cannot see the facts any more answers at chance (1 / `NUM_VALUES`).

Every model is one layer (what its memory can return is what that layer's
own attention learned to look up; with two, the lower layer learns the
lookup and the memory's projections are never trained to) and trains on
documents of `train_segments` segments, the questions of every block
scored. It is then read documents several times longer than any it trained
on, and the accuracy at the end of each block is the recall at that
distance: a cliff where the memory stops reaching.
"""

import datetime

import keras
import numpy as np

from keras_memory.backend.device import device_name
from keras_memory.bench.configs import RECALL_MODELS

NUM_KEYS = NUM_VALUES = 8
NUM_FACTS = 4
FACT_0 = 3  # fact (k, v) is token FACT_0 + k * NUM_VALUES + v; 0-2 are special
QUESTION_0 = FACT_0 + NUM_KEYS * NUM_VALUES  # "value of key k?"
VALUE_0 = QUESTION_0 + NUM_KEYS
FILLER_0, NUM_FILLER = VALUE_0 + NUM_VALUES, 32
VOCAB = FILLER_0 + NUM_FILLER
CHANCE = 1 / NUM_VALUES


def fact_documents(rng, num_documents, length, window):
    """Token documents, answer targets (0, the padding id, elsewhere) and question distances.

    Returns:
        `(tokens, targets, distance)`, each `(num_documents, length)`:
        `distance` is, at each scored question, how many tokens back its
        block's end lies from the facts (the question's own position
        rounded up to a block end), and 0 elsewhere.
    """
    tokens = FILLER_0 + rng.integers(0, NUM_FILLER, (num_documents, length)).astype(np.int32)
    targets = np.zeros((num_documents, length), np.int32)
    distance = np.zeros((num_documents, length), np.int32)
    f = NUM_FACTS
    for d in range(num_documents):
        keys = rng.permutation(NUM_KEYS)[:f]
        values = rng.integers(0, NUM_VALUES, f)
        tokens[d, :f] = FACT_0 + keys * NUM_VALUES + values
        ends = [2 * f] + list(range(2 * window, length + 1, window))
        for end in ends:
            order = rng.permutation(f)
            tokens[d, end - f : end] = QUESTION_0 + keys[order]
            targets[d, end - f : end] = VALUE_0 + values[order]
            distance[d, end - f : end] = end
    return tokens, targets, distance


def _segments(tokens, segment):
    for start in range(0, tokens.shape[1], segment):
        reset = np.full(len(tokens), start == 0)
        yield start, {"tokens": tokens[:, start : start + segment], "reset": reset}


def train_and_measure(
    name,
    options=None,
    window=16,
    segment=64,
    train_segments=4,
    eval_segments=16,
    iterations=600,
    batch_size=16,
    learning_rate=3e-3,
    seed=0,
):
    """Trains a one-layer model of `RECALL_MODELS` and measures its recall by distance.

    Args:
        name: str. A key of `RECALL_MODELS`, or any label with `options`.
        options: dict or None. `MemoryLM.from_preset("tiny", ...)` options
            instead of `RECALL_MODELS[name]`.
        window: int. Attention window (and block) length.
        segment: int. Tokens per segment.
        train_segments: int. Segments per training document.
        eval_segments: int. Segments per evaluation document.
        iterations: int. Training documents batches (each `train_segments`
            steps).
        batch_size: int. Documents per batch.
        learning_rate: float. Adam learning rate.
        seed: int. Initialisation and data seed.

    Returns:
        A dict with `recall_by_distance` (`{distance: accuracy}` over 64
        fresh documents), `trained_distance` (the longest distance seen in
        training) and the model's options.
    """
    options = dict(RECALL_MODELS[name] if options is None else options)
    model = train_recall_model(
        options, window, segment, train_segments, iterations, batch_size, learning_rate, seed
    )
    tokens, targets, distance = fact_documents(
        np.random.default_rng(seed + 1), 4 * batch_size, eval_segments * segment, window
    )
    predictions = predict_answers(model, tokens, segment, batch_size)
    recall = {d: round(a, 4) for d, a in recall_curve(predictions, targets, distance).items()}
    return {
        "model": name,
        **options,
        "window_length": window,
        "segment_length": segment,
        "trained_distance": train_segments * segment,
        "iterations": iterations,
        "seed": seed,
        "chance": CHANCE,
        "recall_by_distance": recall,
    }


def train_recall_model(
    options, window, segment, train_segments, iterations, batch_size, learning_rate, seed
):
    """A one-layer `MemoryLM` with `options`, trained on fact documents.

    The arguments are `train_and_measure`'s.
    """
    from keras_memory.models import MemoryLM

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = MemoryLM.from_preset(
        "tiny",
        stateful=True,
        vocab_size=VOCAB,
        num_layers=1,
        window_length=window,
        **options,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        tokens, targets, _ = fact_documents(rng, batch_size, train_segments * segment, window)
        for start, inputs in _segments(tokens, segment):
            model.train_on_batch(inputs, targets[:, start : start + segment])
    return model


def predict_answers(model, tokens, segment, batch_size):
    """Greedy predictions `(documents, length)` of `model` reading `tokens` in order, per row."""
    predictions = np.zeros_like(tokens)
    for row in range(0, len(tokens), batch_size):
        rows = slice(row, row + batch_size)
        for start, inputs in _segments(tokens[rows], segment):
            logits = model.predict_on_batch(inputs)
            predictions[rows, start : start + segment] = np.argmax(logits, -1)
    return predictions


def recall_curve(predictions, targets, distance):
    """`{distance: accuracy}` of the scored questions (`distance > 0`) of `fact_documents`."""
    correct = predictions == targets
    return {int(d): float(correct[distance == d].mean()) for d in np.unique(distance[distance > 0])}


def describe_tokens(tokens):
    """Readable text of fact-task tokens.

    Facts read `K3=V5`, questions `K3?`, values `V5` and filler `.`.
    """
    words = []
    for token in np.asarray(tokens).tolist():
        if FACT_0 <= token < QUESTION_0:
            key, value = divmod(token - FACT_0, NUM_VALUES)
            words.append(f"K{key}=V{value}")
        elif QUESTION_0 <= token < VALUE_0:
            words.append(f"K{token - QUESTION_0}?")
        elif VALUE_0 <= token < FILLER_0:
            words.append(f"V{token - VALUE_0}")
        else:
            words.append(".")
    return " ".join(words)


def run_recall(models=tuple(RECALL_MODELS), report=print, **options):
    """Measures every model's recall curve; returns the records (also given to `report`)."""
    unknown = sorted(set(models) - set(RECALL_MODELS))
    if unknown:
        raise ValueError(f"Unknown model {unknown}; models: {list(RECALL_MODELS)}.")
    records = []
    for name in models:
        record = {
            "benchmark": "recall",
            **train_and_measure(name, **options),
            "backend": keras.backend.backend(),
            "device": device_name(),
            "date": datetime.date.today().isoformat(),
        }
        records.append(record)
        report(record)
    return records


def main(args):
    """Runs `keras-memory bench recall`: one JSON line per model."""
    from keras_memory.bench.records import json_lines_reporter

    if args.task == "prose-facts":
        from keras_memory.bench import prose_recall

        return prose_recall.main(args)
    report = json_lines_reporter(args.output)
    records = run_recall(
        models=[m for m in (args.models or ",".join(RECALL_MODELS)).split(",") if m],
        report=report,
        iterations=args.iterations,
        train_segments=args.train_segments,
        eval_segments=args.eval_segments,
        seed=args.seed,
    )
    if args.plot:
        from keras_memory.plots import plot_recall

        print(f"Wrote {plot_recall(records, args.plot)}")
    return records
