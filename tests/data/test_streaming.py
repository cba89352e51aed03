import numpy as np
import pytest

from keras_memory.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SegmentStream,
    document_segments,
)


def make_docs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, 259, size=n).astype("int32") for n in lengths]


def read_back(stream):
    """Rebuilds each row's documents from the stream, asserting the contract."""
    documents = []
    current = [None] * stream.batch_size
    for step in range(len(stream)):
        inputs, targets = stream[step]
        for row in range(stream.batch_size):
            tokens, target, reset = inputs["tokens"][row], targets[row], inputs["reset"][row]
            if reset:
                if current[row] is not None and current[row][1]:
                    documents.append(current[row][0])
                current[row] = ([], False)
                if target[0] != PAD_ID:
                    assert tokens[0] == BOS_ID, "a document starts with BOS"
            else:
                assert current[row] is not None, "continuation without a start"
            real = target != PAD_ID
            # Padding only after the document's end, never inside it.
            assert not np.any(real[np.argmin(real) :]) or real.all()
            assert np.all(tokens[~real] == PAD_ID)
            # Inputs are targets shifted by one.
            np.testing.assert_array_equal(tokens[1:][real[1:]], target[:-1][real[1:]])
            values = target[real].tolist()
            if values:
                current[row] = (current[row][0] + values, True)
    documents.extend(c[0] for c in current if c is not None and c[1])
    return documents


@pytest.mark.parametrize("batch_size,segment_length", [(1, 4), (3, 8), (4, 16)])
def test_every_token_of_every_document_appears_once_in_order(batch_size, segment_length):
    docs = make_docs([0, 1, 3, 7, 8, 9, 30, 64, 65, 100])
    stream = SegmentStream(docs, batch_size, segment_length, seed=3)
    got = sorted(tuple(d) for d in read_back(stream))
    expected = sorted(tuple(d.tolist() + [EOS_ID]) for d in docs)
    assert got == expected


def test_reset_exactly_at_document_starts():
    docs = make_docs([20, 5, 40])
    stream = SegmentStream(docs, batch_size=2, segment_length=8)
    starts_per_row = [[], []]
    for step in range(len(stream)):
        inputs, targets = stream[step]
        for row in range(2):
            if inputs["reset"][row]:
                starts_per_row[row].append(step)
    expected = [[], []]
    for row, doc_ids in enumerate(stream.row_documents):
        step = 0
        for doc_id in doc_ids:
            expected[row].append(step)
            step += -(-(len(docs[doc_id]) + 1) // 8)
        # Filler segments after a row's last document are resets too.
        expected[row] += list(range(step, len(stream)))
    assert starts_per_row == expected


def test_deterministic_and_seeded():
    docs = make_docs([10 * i for i in range(1, 12)])

    def batches(stream):
        return [stream[i][0]["tokens"].tobytes() for i in range(len(stream))]

    a = SegmentStream(docs, 3, 8, seed=1)
    b = SegmentStream(docs, 3, 8, seed=1)
    c = SegmentStream(docs, 3, 8, seed=2)
    assert batches(a) == batches(b)
    assert batches(a) != batches(c)
    steps = len(a)
    a.set_epoch(1)
    assert len(a) == steps and batches(a) != batches(b)
    assert sorted(map(tuple, read_back(a))) == sorted(map(tuple, read_back(b)))


def test_tf_dataset_yields_the_same_batches():
    docs = make_docs([9, 17, 33])
    stream = SegmentStream(docs, 2, 8, seed=0)
    for step, (inputs, targets) in enumerate(stream.as_tf_dataset()):
        expected_inputs, expected_targets = stream[step]
        np.testing.assert_array_equal(inputs["tokens"].numpy(), expected_inputs["tokens"])
        np.testing.assert_array_equal(inputs["reset"].numpy(), expected_inputs["reset"])
        np.testing.assert_array_equal(targets.numpy(), expected_targets)
    assert step == len(stream) - 1


def test_document_segments_pads_the_last_segment():
    inputs, targets = document_segments(np.array([10, 11, 12]), 3)
    np.testing.assert_array_equal(inputs, [[BOS_ID, 10, 11], [12, PAD_ID, PAD_ID]])
    np.testing.assert_array_equal(targets, [[10, 11, 12], [EOS_ID, PAD_ID, PAD_ID]])


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`documents` is empty"):
        SegmentStream([], 2, 8)
    with pytest.raises(ValueError, match="`batch_size`"):
        SegmentStream(make_docs([5]), 0, 8)
    with pytest.raises(ValueError, match="vocab_size=100"):
        SegmentStream(make_docs([5]), 1, 8, vocab_size=100)
    with pytest.raises(ValueError, match="integer ids"):
        SegmentStream([np.ones(3, "float32")], 1, 8)
    with pytest.raises(IndexError):
        SegmentStream(make_docs([5]), 1, 8)[5]
