"""The demo's second half: what a kNN memory buys, shown on a fact-recall task.

Transformer-XL and the Memorizing Transformer (one layer each, window 16)
train alike on documents that state four facts at their start and ask for
them at the end of every window-long block (`keras_memory.bench.recall`).
Read documents four times longer than any they trained on, XL answers at
chance as soon as the facts leave its window and cache; the memory answers
until its ring overwrites them.
"""

import os
import time

import numpy as np

# The two models the demo compares: names of `RECALL_MODELS`.
DEMO_RECALL_MODELS = ("xl", "memorizing_512")
# Distances (tokens back to the facts) the printed table shows.
TABLE_DISTANCES = (8, 32, 64, 128, 256, 512, 576, 640, 1024)
# The question of the sample: the facts are this many tokens back.
SAMPLE_DISTANCE = 448
WINDOW, SEGMENT, TRAIN_SEGMENTS, EVAL_SEGMENTS, BATCH = 16, 64, 4, 16, 16


def run_recall_demo(workdir, iterations, seed):
    """Trains both models, prints their recall by distance and a sample, plots the curves.

    Args:
        workdir: str. Where `recall.png` is written.
        iterations: int. Training batches of 16 documents per model.
        seed: int. Initialisation and data seed.

    Returns:
        A dict `{model: {distance: accuracy}}`.
    """
    from keras_memory.bench import recall
    from keras_memory.bench.configs import RECALL_MODELS
    from keras_memory.plots import plot_recall

    os.makedirs(workdir, exist_ok=True)
    tokens, targets, distance = recall.fact_documents(
        np.random.default_rng(seed + 1), 4 * BATCH, EVAL_SEGMENTS * SEGMENT, WINDOW
    )
    records, samples = [], {}
    for name in DEMO_RECALL_MODELS:
        started = time.time()
        model = recall.train_recall_model(
            RECALL_MODELS[name], WINDOW, SEGMENT, TRAIN_SEGMENTS, iterations, BATCH, 3e-3, seed
        )
        predictions = recall.predict_answers(model, tokens, SEGMENT, BATCH)
        curve = recall.recall_curve(predictions, targets, distance)
        records.append(
            {
                "model": name,
                "recall_by_distance": curve,
                "chance": recall.CHANCE,
                "trained_distance": TRAIN_SEGMENTS * SEGMENT,
                "window_length": WINDOW,
            }
        )
        samples[name] = predictions[0]
        print(f"Trained {name} on the recall task in {time.time() - started:.0f} s.")
    _print_table(records)
    path = plot_recall(records, os.path.join(workdir, "recall.png"))
    print(f"\nRecall against distance: {path}")
    _print_sample(tokens[0], targets[0], distance[0], samples)
    return {r["model"]: r["recall_by_distance"] for r in records}


def _print_table(records):
    from keras_memory.bench.recall import CHANCE

    print(f"\nAnswer accuracy by distance back to the facts (chance {CHANCE:.3f}):\n")
    print("| tokens back | " + " | ".join(r["model"] for r in records) + " |")
    print("|---|" + "---|" * len(records))
    for d in TABLE_DISTANCES:
        cells = [f"{r['recall_by_distance'].get(d, float('nan')):.2f}" for r in records]
        print(f"| {d} | " + " | ".join(cells) + " |")


def _print_sample(tokens, targets, distance, predictions):
    from keras_memory.bench.recall import NUM_FACTS, describe_tokens

    asked = np.flatnonzero(distance == SAMPLE_DISTANCE)
    print(f"\nA document's facts: {describe_tokens(tokens[:NUM_FACTS])}")
    print(f"Asked {SAMPLE_DISTANCE} tokens later: {describe_tokens(tokens[asked])}")
    print(f"  right answers:  {describe_tokens(targets[asked])}")
    for name, predicted in predictions.items():
        print(f"  {name + ':':15s} {describe_tokens(predicted[asked])}")
