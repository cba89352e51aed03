"""Bad input to the data pipeline: a clear error naming the argument, never a silent guess.

Property-based (hypothesis): `SegmentStream`, `document_segments`,
`StepWindow`, `ByteTokenizer` and the tokenizer factory reject invalid
arguments with ValueError/TypeError naming them (a float id is not
truncated, a byte id of 300 is not wrapped, an int is not taken for text),
and accept the valid ones drawn from the same spaces.
"""

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_memory.data import (
    ByteTokenizer,
    SegmentStream,
    StepWindow,
    document_segments,
    load_tokenizer,
    make_tokenizer,
)

FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

VOCAB = 50


def assert_rejected(call, *names):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert any(f"`{name}`" in message for name in names), message


documents = st.lists(
    st.lists(st.integers(3, VOCAB - 1), max_size=30).map(lambda d: np.array(d, "int32")),
    min_size=1,
    max_size=6,
)
wrong_sizes = st.one_of(
    st.integers(-5, 0), st.sampled_from([2.0, 1.5, "2", None, True, [2], float("nan")])
)


@FAST
@given(
    docs=documents,
    batch_size=st.integers(1, 4),
    segment_length=st.integers(1, 9),
    seed=st.one_of(st.none(), st.integers(0, 2**31)),
)
def test_valid_streams_yield_in_order_segments(docs, batch_size, segment_length, seed):
    stream = SegmentStream(docs, batch_size, segment_length, seed=seed, vocab_size=VOCAB)
    assert len(stream) >= 1
    seen = 0
    for step in range(len(stream)):
        inputs, targets = stream[step]
        assert inputs["tokens"].shape == targets.shape == (batch_size, segment_length)
        assert inputs["tokens"].dtype == np.int32 and inputs["reset"].dtype == bool
        assert inputs["tokens"].min() >= 0 and inputs["tokens"].max() < VOCAB
        seen += int(np.sum(targets >= 3))
    assert seen == sum(len(d) for d in docs)  # every real token predicted once


@st.composite
def bad_stream_argument(draw):
    argument = draw(
        st.sampled_from(
            ["batch_size", "segment_length", "seed", "vocab_size", "bos_id", "eos_id", "pad_id"]
        )
    )
    if argument in ("batch_size", "segment_length"):
        value = draw(wrong_sizes)
    elif argument == "vocab_size":
        value = draw(st.one_of(st.integers(-5, 0), st.sampled_from([10.0, "50", True])))
    elif argument == "seed":
        value = draw(st.one_of(st.integers(-100, -1), st.sampled_from([1.5, "0", [0]])))
    else:  # a special id: negative, not an int, or past the vocabulary
        value = draw(
            st.one_of(
                st.integers(-10, -1),
                st.integers(VOCAB, VOCAB + 5),
                st.sampled_from([2.0, "2", None, True]),
            )
        )
    return argument, value


@FAST
@given(case=bad_stream_argument(), docs=documents)
def test_bad_stream_arguments_name_the_argument(case, docs):
    argument, value = case
    kwargs = {"batch_size": 2, "segment_length": 4, "vocab_size": VOCAB, argument: value}
    assert_rejected(lambda: SegmentStream(docs, **kwargs), argument)


# Not a document for any vocabulary: floats, negative ids, 2-D, text.
not_ids = st.one_of(
    st.lists(st.floats(3, 40), min_size=1, max_size=5).map(lambda d: np.array(d)),
    st.lists(st.integers(-100, -1), min_size=1, max_size=5).map(np.array),
    st.just(np.ones((2, 3), "int32")),
    st.text(min_size=1, max_size=5),
    st.just(np.array(["a", "b"])),
)
bad_document = not_ids | st.lists(st.integers(VOCAB, 10**6), min_size=1, max_size=5).map(np.array)


@FAST
@given(docs=documents, bad=bad_document, position=st.integers(0, 6))
def test_bad_documents_are_named_by_position(docs, bad, position):
    position = min(position, len(docs))
    docs = [*docs[:position], bad, *docs[position:]]
    assert_rejected(
        lambda: SegmentStream(docs, 2, 4, vocab_size=VOCAB), f"documents[{position}]", "documents"
    )


@pytest.mark.parametrize(
    "documents", [None, "some text", b"bytes", np.arange(3, 10), {"a": [3, 4]}, []]
)
def test_documents_must_be_a_list_of_documents(documents):
    assert_rejected(lambda: SegmentStream(documents, 2, 4), "documents")


@FAST
@given(step=st.one_of(st.integers(-5, 20), st.sampled_from([1.0, "0", None, True])))
def test_stream_steps_are_ints_in_range(step):
    stream = SegmentStream([np.arange(3, 30)], 1, 8)
    if isinstance(step, int) and not isinstance(step, bool) and 0 <= step < len(stream):
        stream[step]
    elif isinstance(step, int) and not isinstance(step, bool):
        with pytest.raises(IndexError, match="outside"):
            stream[step]
    else:
        assert_rejected(lambda: stream[step], "step")


@FAST
@given(
    tokens=st.lists(st.integers(0, 2**31 - 1), max_size=20),
    segment_length=st.integers(1, 8),
)
def test_document_segments_cover_every_token(tokens, segment_length):
    inputs, targets = document_segments(tokens, segment_length)
    assert inputs.shape == targets.shape and inputs.shape[1] == segment_length
    assert list(targets.reshape(-1)[: len(tokens)]) == tokens


@FAST
@given(
    case=st.one_of(
        st.tuples(st.just("segment_length"), wrong_sizes),
        st.tuples(st.just("tokens"), not_ids),
        st.tuples(st.just("tokens"), st.just([2**40])),
        st.tuples(st.sampled_from(["bos_id", "eos_id", "pad_id"]), st.integers(-9, -1)),
    )
)
def test_bad_document_segments_arguments_name_the_argument(case):
    argument, value = case
    kwargs = {"tokens": [3, 4, 5], "segment_length": 2, argument: value}
    assert_rejected(lambda: document_segments(**kwargs), argument)


@FAST
@given(
    first_step=st.one_of(st.integers(-5, 30), st.sampled_from([1.5, "0", None])),
    num_steps=st.one_of(st.integers(-2, 6), st.sampled_from([2.0, "3", None])),
)
def test_step_window_arguments(first_step, num_steps):
    stream = SegmentStream([np.arange(3, 30), np.arange(3, 12)], 2, 4, seed=0)

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if is_int(first_step) and first_step >= 0 and is_int(num_steps) and num_steps >= 1:
        window = StepWindow(stream, first_step, num_steps)
        assert len(window) == num_steps
        assert window[num_steps - 1][0]["tokens"].shape == (2, 4)
    else:
        bad = "first_step" if not (is_int(first_step) and first_step >= 0) else "num_steps"
        assert_rejected(lambda: StepWindow(stream, first_step, num_steps), bad)


def test_step_window_needs_a_stream():
    assert_rejected(lambda: StepWindow([[3, 4]], 0, 1), "stream")


@FAST
@given(text=st.one_of(st.text(max_size=20), st.binary(max_size=20)))
def test_byte_tokenizer_round_trips_text_and_bytes(text):
    tokenizer = ByteTokenizer()
    ids = tokenizer.encode(text)
    assert ids.dtype == np.int32 and (ids >= 3).all() and (ids < tokenizer.vocab_size).all()
    expected = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    assert tokenizer.decode(ids) == expected


@FAST
@given(text=st.one_of(st.integers(), st.none(), st.lists(st.integers(0, 255), max_size=3)))
def test_byte_tokenizer_encodes_only_text(text):
    assert_rejected(lambda: ByteTokenizer().encode(text), "text")


@FAST
@given(
    ids=st.one_of(
        st.lists(st.integers(259, 10**4), min_size=1, max_size=4),
        st.lists(st.integers(-(10**4), -1), min_size=1, max_size=4),
        st.lists(st.floats(3, 200), min_size=1, max_size=4),
    )
)
def test_byte_tokenizer_decodes_only_ids_in_range(ids):
    assert_rejected(lambda: ByteTokenizer().decode([*ids, 104]), "ids")


@FAST
@given(
    name=st.one_of(st.text(max_size=8), st.integers(), st.none()).filter(
        lambda n: n not in ("bytes", "sentencepiece", "bpe", "hub")
    )
)
def test_make_tokenizer_names_unknown_kinds(name):
    assert_rejected(lambda: make_tokenizer(name), "name")


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"name": "bpe", "texts": ["abc"]}, "vocab_size"),
        ({"name": "bpe", "texts": ["abc"], "vocab_size": -1}, "vocab_size"),
        ({"name": "bpe", "texts": ["abc"], "vocab_size": "300"}, "vocab_size"),
        ({"name": "bpe", "texts": None, "vocab_size": 300}, "texts"),
        ({"name": "bpe", "texts": "one string", "vocab_size": 300}, "texts"),
        ({"name": "sentencepiece", "texts": ["abc"], "vocab_size": 10}, "vocab_size"),
        ({"name": "hub"}, "preset"),
        ({"name": "bytes", "directory": 5}, "directory"),
    ],
)
def test_make_tokenizer_argument_errors(kwargs, argument):
    assert_rejected(lambda: make_tokenizer(**kwargs), argument)


@pytest.mark.parametrize("directory", [5, None, ["workdir"], 2.5])
def test_load_tokenizer_needs_a_path(directory):
    assert_rejected(lambda: load_tokenizer(directory), "directory")


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", json.dumps({"kind": "wordpiece"}), json.dumps({"kind": "bpe"})],
)
def test_load_tokenizer_rejects_bad_files_by_directory(tmp_path, content):
    (tmp_path / "tokenizer.json").write_text(content)
    assert_rejected(lambda: load_tokenizer(str(tmp_path)), "directory")


def test_load_tokenizer_missing_file_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="`directory`"):
        load_tokenizer(os.path.join(tmp_path, "nothing-here"))


def test_count_messages_give_the_bounds_and_numpy_ints_pass():
    docs = [np.arange(3, 12)]
    with pytest.raises(ValueError, match=r"`pad_id` must be an int >= 0 and < 50; got 50\."):
        SegmentStream(docs, 2, 4, vocab_size=VOCAB, pad_id=VOCAB)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive int; got np\.True_"):
        SegmentStream(docs, np.bool_(True), 4)
    stream = SegmentStream(docs, np.int64(2), np.int32(4), seed=np.uint8(0), pad_id=np.int16(0))
    assert stream.batch_size == 2 and type(stream.segment_length) is int
    assert StepWindow(stream, np.int64(0), np.int8(1)).num_steps == 1
