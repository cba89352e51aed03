import numpy as np
import pytest

from keras_memory.data import BOS_ID, EOS_ID, PAD_ID
from keras_memory.data.synthetic import associative_recall_documents, passkey_documents
from keras_memory.models import MemoryLM
from keras_memory.training.recall import (
    answer_positions,
    evaluate_recall,
    recall_by_distance,
    recall_stream,
)

SEGMENT = 32
SMALL = dict(
    hidden_dim=16, num_layers=1, num_heads=2, head_dim=8, intermediate_dim=32, window_length=16
)


def mixed_documents():
    return (
        passkey_documents(2, 60, seed=0)
        + associative_recall_documents(2, 3, 90, seed=1, num_queries=2)
        + passkey_documents(3, 130, seed=2, key_length=3)
    )


def where_tokens_are_predicted(stream):
    """(document, token index) -> (step, row, column), read back from the batches alone."""
    texts = {tuple(doc.tolist()): d for d, doc in enumerate(stream.documents)}
    found, current = {}, [None] * stream.batch_size
    for step in range(len(stream)):
        inputs, targets = stream[step]
        for row in range(stream.batch_size):
            if inputs["reset"][row]:
                assert current[row] is None or current[row][-1][0] == EOS_ID
                current[row] = [] if inputs["tokens"][row, 0] == BOS_ID else None
            if current[row] is None:
                continue
            for column in range(stream.segment_length):
                if targets[row, column] != PAD_ID:
                    current[row].append((targets[row, column], (step, row, column)))
            if current[row] and current[row][-1][0] == EOS_ID:
                doc_id = texts[tuple(int(t) for t, _ in current[row][:-1])]
                for i, (_, where) in enumerate(current[row][:-1]):
                    found[doc_id, i] = where
    return found


@pytest.mark.parametrize("batch_size,segment_length", [(1, 16), (3, 16), (2, 7)])
def test_answer_positions_are_where_the_stream_predicts_the_answers(batch_size, segment_length):
    docs = mixed_documents()
    stream = recall_stream(docs, segment_length, batch_size)
    answers = answer_positions(stream, docs)
    assert len(answers["tokens"]) == sum(e - s for d in docs for s, e in d.answer_spans)
    found = where_tokens_are_predicted(stream)
    expected, tokens, spans = [], [], []
    for d, doc in enumerate(docs):
        for start, end in doc.answer_spans:
            expected += [found[d, i] for i in range(start, end)]
            tokens += doc.tokens[start:end].tolist()
            spans += [len(set(spans))] * (end - start)
    np.testing.assert_array_equal(answers["positions"], expected)
    np.testing.assert_array_equal(answers["tokens"], tokens)
    np.testing.assert_array_equal(answers["spans"], spans)
    for (step, row, column), token in zip(answers["positions"], answers["tokens"]):
        assert stream[step][1][row, column] == token
    distances = [doc.distance for doc in docs for s, e in doc.answer_spans for _ in range(s, e)]
    np.testing.assert_array_equal(answers["distances"], distances)


class OracleModel:
    """Predicts the stream's targets (or, shifted, its inputs) step by step."""

    def __init__(self, stream, stateful, shifted=False):
        self.stream, self.stateful, self.shifted = stream, stateful, shifted
        self.built, self.step = True, 0

    def _logits(self, inputs, step):
        expected, targets = self.stream[step]
        np.testing.assert_array_equal(inputs["tokens"], expected["tokens"])
        picked = expected["tokens"] if self.shifted else targets
        return np.eye(259, dtype="float32")[picked]

    def build_from_data(self, data):
        pass  # Always built, like a MemoryLM after its first batch.

    def reset_state(self):
        self.step = 0

    def predict_on_batch(self, inputs):
        self.step += 1
        return self._logits(inputs, self.step - 1)

    def __call__(self, inputs, state=None):
        step = 0 if state is None else state
        return self._logits(inputs, step), step + 1


@pytest.mark.parametrize("stateful", [False, True])
def test_an_oracle_scores_one_and_a_shifted_oracle_does_not(stateful):
    docs = mixed_documents()
    stream = recall_stream(docs, 16, batch_size=2)
    result = evaluate_recall(OracleModel(stream, stateful), docs, 16, batch_size=2)
    assert result["accuracy"] == result["exact_match"] == 1.0
    # Logit 1 on the answer and 0 on the other 258 ids: -log2(e / (e + 258)) bits each.
    assert abs(result["bits"] - np.log2((np.e + 258) / np.e)) < 1e-6
    assert sorted(result["by_distance"]) == [60, 90, 130]
    assert result["by_distance"][90]["answers"] == 2 * 2 * 3
    assert result["by_distance"][130]["answers"] == 3 * 3
    shifted = evaluate_recall(OracleModel(stream, stateful, True), docs, 16, batch_size=2)
    assert shifted["accuracy"] < 0.5 and shifted["exact_match"] == 0.0


def test_evaluate_recall_on_stateful_and_functional_models_agree():
    docs = mixed_documents()
    functional = MemoryLM.from_preset("tiny", kind="xl", **SMALL)
    result = evaluate_recall(functional, docs, SEGMENT, batch_size=2)
    stateful = MemoryLM.from_preset("tiny", kind="xl", stateful=True, **SMALL)
    stateful.build({"tokens": (2, SEGMENT), "reset": (2,)})
    for target, source in zip(stateful.trainable_weights, functional.trainable_weights):
        target.assign(source)
    again = evaluate_recall(stateful, docs, SEGMENT, batch_size=2)

    def split_bits(r):
        # Bits are float sums of the logits, equal to rounding; the rest is exact.
        bits = [r["bits"]] + [v["bits"] for _, v in sorted(r["by_distance"].items())]
        rest = {k: v for k, v in r.items() if k not in ("bits", "by_distance")}
        by = {d: {k: x for k, x in v.items() if k != "bits"} for d, v in r["by_distance"].items()}
        return bits, rest, by

    bits_again, *rest_again = split_bits(again)
    bits, *rest = split_bits(result)
    assert rest_again == rest
    np.testing.assert_allclose(bits_again, bits, rtol=1e-4)
    # Cross-entropy of an untrained model: about log2 of the vocabulary.
    assert 0.5 * np.log2(259) < result["bits"] < 2 * np.log2(259)
    assert result["answers"] == sum(e - s for d in docs for s, e in d.answer_spans)
    assert {d: r["answers"] for d, r in result["by_distance"].items()} == {60: 10, 90: 12, 130: 9}
    assert 0.0 <= result["accuracy"] <= 1.0


def test_recall_by_distance_builds_and_scores_each_distance():
    # The shapes of the test above, so eager backends reuse their kernels.
    model = MemoryLM.from_preset("tiny", kind="xl", **SMALL)
    scores = recall_by_distance(model, "passkey", [80, 60], 2, SEGMENT, seed=3, batch_size=2)
    assert list(scores) == [80, 60] and all(0.0 <= s <= 1.0 for s in scores.values())
    # An unbuilt stateful model is built for the batch it is given.
    stateful = MemoryLM.from_preset("tiny", kind="xl", stateful=True, **SMALL)
    scores = recall_by_distance(
        stateful, associative_recall_documents, [70], 2, SEGMENT, batch_size=2, num_pairs=2
    )
    assert list(scores) == [70] and stateful.built
    with pytest.raises(ValueError, match="`task`"):
        recall_by_distance(model, "copy", [80], 1, SEGMENT)
    with pytest.raises(ValueError, match="`distances`"):
        recall_by_distance(model, "passkey", [80, 80], 1, SEGMENT)
