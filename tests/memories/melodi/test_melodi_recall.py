"""Evidence that Melodi's memory carries facts beyond its attention window.

The task: each document is one segment of three windows (48 tokens, window
16). It states 4 facts (one token each, key k with value v) at its start,
asks for all 4 right away (within the window, so attention learns the
lookup), reads filler tokens and asks for the 4 again in its last window,
41+ tokens after they were stated: beyond the window. Both one-layer models
train identically; the local-only model (sliding window of 16, no memory)
cannot see the facts from the late questions; Melodi reaches them only
through what its memories carried over from the first window.

Facts and late questions share one segment on purpose: Melodi's memories
pass from window to window with their gradient inside a segment, and
without it to the next segment, so backpropagation through the windows is
what teaches the token mixing to keep the facts. With one layer, that layer
(`num_layers // 2 = 0`) is also the long-term layer: window 0 pushes 4
mixed tokens into the long-term FIFO, and the late questions attend to them
with the projections the early lookups trained. In the experiments behind
this test, a short-term memory alone (`long_term_memory_size=0`) learned the
late answers much more slowly (about 0.5 after the same training); the
long-term memory carries most of the recall.
"""

import keras
import numpy as np
import pytest

from keras_memory.models import MemoryLM

WINDOW, NUM_WINDOWS = 16, 3
SEGMENT = WINDOW * NUM_WINDOWS
NUM_KEYS = NUM_VALUES = 8
NUM_FACTS = 4
FACT_0 = 3  # fact (k, v) is token FACT_0 + k * NUM_VALUES + v
QUESTION_0 = FACT_0 + NUM_KEYS * NUM_VALUES  # "value of k?"
VALUE_0 = QUESTION_0 + NUM_KEYS
FILLER_0, NUM_FILLER = VALUE_0 + NUM_VALUES, 32
VOCAB = FILLER_0 + NUM_FILLER
MELODI_MEMORY = {
    "summary_size": 4,
    "short_term_memory_size": 4,
    "long_term_memory_size": 16,
    "long_term_increment": 4,
}


def fact_documents(rng, num_documents):
    """One-segment documents, value targets (0 elsewhere) and a mask of the late questions.

    Layout: facts at 0..3 and early questions at 4..7 (window 0), filler,
    late questions at the last 4 positions (window 2).
    """
    tokens = FILLER_0 + rng.integers(0, NUM_FILLER, (num_documents, SEGMENT)).astype(np.int32)
    targets = np.zeros((num_documents, SEGMENT), np.int32)
    late = np.zeros((num_documents, SEGMENT), bool)
    f = NUM_FACTS
    for d in range(num_documents):
        keys = rng.permutation(NUM_KEYS)[:f]
        values = rng.integers(0, NUM_VALUES, f)
        tokens[d, :f] = FACT_0 + keys * NUM_VALUES + values
        for start in (f, SEGMENT - f):
            order = rng.permutation(f)
            tokens[d, start : start + f] = QUESTION_0 + keys[order]
            targets[d, start : start + f] = VALUE_0 + values[order]
        late[d, -f:] = True
    return tokens, targets, late


def new_documents(tokens):
    """Model inputs: every row starts a fresh document (all memories cleared)."""
    return {"tokens": tokens, "reset": np.ones(len(tokens), bool)}


def train_and_score(kind, iterations=300, batch_size=32):
    """Trains a one-layer model; returns its (late, early) answer accuracy on new documents."""
    keras.utils.set_random_seed(0)
    model = MemoryLM.from_preset(
        "tiny",
        kind=kind,
        stateful=True,
        vocab_size=VOCAB,
        num_layers=1,
        window_length=WINDOW,
        **(MELODI_MEMORY if kind == "melodi" else {}),
    )
    # Targets other than the answers are 0, the padding id the loss ignores.
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(0)
    for _ in range(iterations):
        tokens, targets, _ = fact_documents(rng, batch_size)
        model.train_on_batch(new_documents(tokens), targets)
    tokens, targets, late = fact_documents(np.random.default_rng(1), 2 * batch_size)
    predictions = np.concatenate(
        [
            model.predict_on_batch(new_documents(tokens[i : i + batch_size])).argmax(-1)
            for i in range(0, len(tokens), batch_size)
        ]
    )
    correct = predictions == targets
    return correct[late].mean(), correct[(targets > 0) & ~late].mean()


@pytest.mark.slow
def test_melodi_memory_answers_facts_beyond_the_window_that_local_cannot():
    local_late, local_early = train_and_score("local")
    melodi_late, melodi_early = train_and_score("melodi")
    # Both learned the lookup where their window reaches the facts...
    assert local_early > 0.9 and melodi_early > 0.9, (
        f"early accuracy: local {local_early:.3f}, melodi {melodi_early:.3f}"
    )
    # ...only Melodi's memory reaches them 41+ tokens later (chance is 1/8).
    assert melodi_late > 0.8, f"melodi late accuracy {melodi_late:.3f} (chance 0.125)"
    assert local_late < 0.3, f"local late accuracy {local_late:.3f} (chance 0.125)"
