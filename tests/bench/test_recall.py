import json

import numpy as np

from keras_memory.bench.recall import (
    FACT_0,
    NUM_FACTS,
    NUM_VALUES,
    QUESTION_0,
    VALUE_0,
    fact_documents,
    train_and_measure,
)
from keras_memory.cli import main


def test_fact_documents_ask_every_fact_at_each_block_end_and_never_show_values():
    tokens, targets, distance = fact_documents(np.random.default_rng(0), 5, 128, 16)
    assert tokens.min() >= FACT_0 and not np.isin(tokens, np.arange(VALUE_0, VALUE_0 + 8)).any()
    for d in range(5):
        facts = tokens[d, :NUM_FACTS] - FACT_0
        answer = dict(zip(facts // NUM_VALUES, facts % NUM_VALUES))
        asked = np.flatnonzero(targets[d])
        # The early questions right after the facts, then 4 at the end of blocks 1..7.
        ends = [8, *range(32, 129, 16)]
        assert asked.tolist() == [e - NUM_FACTS + i for e in ends for i in range(NUM_FACTS)]
        for p in asked:
            assert targets[d, p] - VALUE_0 == answer[tokens[d, p] - QUESTION_0]
            assert distance[d, p] == ends[[e > p for e in ends].index(True)]
        assert (distance[d] > 0).sum() == len(asked)


def test_recall_is_measured_at_every_block_end_beyond_training(tmp_path):
    record = train_and_measure("xl", iterations=2, train_segments=2, eval_segments=3)
    assert record["trained_distance"] == 128
    assert sorted(record["recall_by_distance"]) == [8, *range(32, 3 * 64 + 1, 16)]
    assert all(0.0 <= a <= 1.0 for a in record["recall_by_distance"].values())
    output, figure = tmp_path / "recall.jsonl", tmp_path / "recall.png"
    main(
        [
            "bench",
            "recall",
            "--models",
            "local",
            "--iterations",
            "1",
            "--train-segments",
            "1",
            "--eval-segments",
            "2",
            "--output",
            str(output),
            "--plot",
            str(figure),
        ]
    )
    (written,) = [json.loads(line) for line in output.read_text().splitlines()]
    assert (
        written["model"] == "local" and sorted(written["recall_by_distance"], key=int)[-1] == "128"
    )
    assert figure.stat().st_size > 10_000
