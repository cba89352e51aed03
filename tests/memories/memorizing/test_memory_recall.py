"""Evidence that the kNN memory recalls facts from beyond the attention window.

The task: each document states 16 facts (one token each, key k with value v),
asks for half of them back right away (within the window, so the local
attention learns the lookup), reads 80 filler tokens and asks for all 16 again
at the end, 96+ tokens after they were stated: beyond the window (16) and
the XL cache (16). Both one-layer models train identically; only the one
with a kNN memory can answer the late questions, with the same projections
its local attention learned on the early ones.

The models have one layer on purpose: with two, the local layer below the
memory learns the early lookups and the memory layer's own projections get
no reason to, so the memory stays unused for this training budget (the
Memorizing Transformer shares one set of projections between local and
memory attention; what the memory can retrieve is what that layer's local
attention learned to look up).
"""

import keras
import numpy as np
import pytest

from keras_memory.models import MemoryLM

SEGMENT, WINDOW, NUM_SEGMENTS = 32, 16, 4
NUM_KEYS = NUM_VALUES = NUM_FACTS = 16
FACT_0 = 3  # fact (k, v) is token FACT_0 + k * NUM_VALUES + v
QUESTION_0 = FACT_0 + NUM_KEYS * NUM_VALUES  # "value of k?"
VALUE_0 = QUESTION_0 + NUM_KEYS
FILLER_0, NUM_FILLER = VALUE_0 + NUM_VALUES, 32
VOCAB = FILLER_0 + NUM_FILLER


def fact_documents(rng, num_documents):
    """Token documents, value targets (0 elsewhere) and a mask of the late questions."""
    length = NUM_SEGMENTS * SEGMENT
    tokens = np.zeros((num_documents, length), np.int32)
    targets = np.zeros((num_documents, length), np.int32)
    late = np.zeros((num_documents, length), bool)
    half = NUM_FACTS // 2
    for d in range(num_documents):
        keys = rng.permutation(NUM_KEYS)[:NUM_FACTS]
        values = rng.integers(0, NUM_VALUES, NUM_FACTS)
        facts = FACT_0 + keys * NUM_VALUES + values
        early = [rng.permutation(half), half + rng.permutation(half)]
        late_order = rng.permutation(NUM_FACTS)
        filler = FILLER_0 + rng.integers(0, NUM_FILLER, length - 2 * NUM_FACTS - NUM_FACTS)
        tokens[d] = np.concatenate(
            [
                facts[:half],
                QUESTION_0 + keys[early[0]],
                facts[half:],
                QUESTION_0 + keys[early[1]],
                filler,
                QUESTION_0 + keys[late_order],
            ]
        )
        targets[d, half : 2 * half] = VALUE_0 + values[early[0]]
        targets[d, 3 * half : 4 * half] = VALUE_0 + values[early[1]]
        targets[d, -NUM_FACTS:] = VALUE_0 + values[late_order]
        late[d, -NUM_FACTS:] = True
    return tokens, targets, late


def segments(tokens, targets):
    for s in range(NUM_SEGMENTS):
        columns = slice(s * SEGMENT, (s + 1) * SEGMENT)
        inputs = {"tokens": tokens[:, columns], "reset": np.full(len(tokens), s == 0)}
        yield inputs, targets[:, columns]


def train_and_score(kind, iterations=250):
    """Trains a one-layer model; returns its (late, early) answer accuracy on new documents."""
    memory = {"memory_size": 128, "num_neighbors": 8} if kind == "memorizing" else {}
    model = MemoryLM.from_preset(
        "tiny",
        kind=kind,
        stateful=True,
        vocab_size=VOCAB,
        num_layers=1,
        window_length=WINDOW,
        **memory,
    )
    # Targets other than the answers are 0, the padding id the loss ignores.
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(0)
    for _ in range(iterations):
        for inputs, targets in segments(*fact_documents(rng, 16)[:2]):
            model.train_on_batch(inputs, targets)
    tokens, targets, late = fact_documents(np.random.default_rng(1), 16)
    predictions = np.concatenate(
        [model.predict_on_batch(inputs).argmax(-1) for inputs, _ in segments(tokens, targets)],
        axis=1,
    )
    correct = predictions == targets
    return correct[late].mean(), correct[(targets > 0) & ~late].mean()


@pytest.mark.slow
def test_memory_answers_facts_beyond_the_window_that_xl_cannot():
    xl_late, xl_early = train_and_score("xl")
    memory_late, memory_early = train_and_score("memorizing")
    # Both learned the lookup where their window reaches the facts...
    assert xl_early > 0.8 and memory_early > 0.8, (xl_early, memory_early)
    # ...only the memory reaches them 96+ tokens later (chance is 1/16).
    assert memory_late > 0.8, memory_late
    assert xl_late < 0.25, xl_late
