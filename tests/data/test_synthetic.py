import re

import numpy as np
import pytest

from keras_memory.data import ByteTokenizer
from keras_memory.data.synthetic import (
    PASSKEY_MIN_DISTANCE,
    SyntheticDocument,
    associative_recall_documents,
    associative_recall_min_distance,
    make_filler,
    passkey_documents,
)

DIGITS = ByteTokenizer().encode("0123456789")


def decode(doc, span):
    return ByteTokenizer().decode(doc.tokens[span[0] : span[1]])


def digit_positions(doc):
    return np.flatnonzero(np.isin(doc.tokens, DIGITS))


@pytest.mark.parametrize("distance", [PASSKEY_MIN_DISTANCE, 54, 100, 777, 4096])
@pytest.mark.parametrize("filler", ["words", "classic", "Lorem ipsum, dolor sit amet. "])
def test_passkey_answer_is_the_key_exactly_distance_tokens_after_it(distance, filler):
    for doc in passkey_documents(3, distance, seed=4, filler=filler, key_length=6):
        assert isinstance(doc, SyntheticDocument) and doc.distance == distance
        assert doc.text.isascii() and len(doc.tokens) == len(doc.text)
        (fact,), (answer,) = doc.fact_spans, doc.answer_spans
        key = decode(doc, answer)
        assert re.fullmatch(r"[1-9]\d{5}", key)
        assert decode(doc, fact) == key
        assert doc.text.startswith(f"The pass key is {key}. Remember it. ")
        assert doc.text[: answer[0]].endswith("What is the pass key? The pass key is ")
        assert doc.text[answer[1] :] == ".\n"
        # Measured from the text alone: the only digits are the two keys,
        # and the answer starts `distance` tokens after the stated key ends.
        digits = digit_positions(doc)
        np.testing.assert_array_equal(digits, np.r_[fact[0] : fact[1], answer[0] : answer[1]])
        assert digits[6] - (digits[5] + 1) == distance


def test_passkey_is_deterministic_by_seed_and_stable_in_the_number_of_documents():
    texts = [d.text for d in passkey_documents(5, 300, seed=7)]
    assert texts == [d.text for d in passkey_documents(5, 300, seed=7)]
    assert texts[:2] == [d.text for d in passkey_documents(2, 300, seed=7)]
    other = [d.text for d in passkey_documents(5, 300, seed=8)]
    assert all(a != b for a, b in zip(texts, other))
    assert len(set(texts)) == 5  # keys and filler differ across documents


def test_filler_is_exact_digit_free_and_seeded():
    for length in (0, 1, 2, 17, 5000):
        for filler in ("words", "classic", "ab c"):
            text = make_filler(length, seed=3, filler=filler)
            assert len(text) == length and text.isascii()
            assert not any(c.isdigit() for c in text)
    assert make_filler(500, seed=1) == make_filler(500, seed=1)
    assert make_filler(500, seed=1) != make_filler(500, seed=2)
    assert make_filler(500, seed=(1, 2)) != make_filler(500, seed=(1, 3))


@pytest.mark.parametrize("num_queries", [None, 1, 3])
@pytest.mark.parametrize("extra", [0, 1, 250])
def test_associative_recall_answers_are_the_values_exactly_distance_later(num_queries, extra):
    num_pairs = 6
    distance = associative_recall_min_distance(num_pairs) + extra
    docs = associative_recall_documents(4, num_pairs, distance, seed=2, num_queries=num_queries)
    for doc in docs:
        assert doc.distance == distance
        pairs = dict(re.findall(r"k(\d+)=v(\d+);", doc.text))
        assert len(pairs) == num_pairs  # distinct keys
        assert all(
            re.fullmatch(r"[1-9]\d", k) and re.fullmatch(r"[1-9]\d\d", v) for k, v in pairs.items()
        )
        queries = re.findall(r"k(\d+)\?v(\d+)", doc.text)
        assert len(queries) == len(doc.answer_spans) == (num_queries or num_pairs)
        # No digits outside the pairs and the queries.
        assert not re.search(r"\d", re.sub(r"k\d+[=?]v\d+", "", doc.text))
        assert doc.text.index("Questions: ") > doc.text.rindex("=")
        for (key, value), fact, answer in zip(queries, doc.fact_spans, doc.answer_spans):
            assert pairs[key] == value == decode(doc, answer) == decode(doc, fact)
            assert doc.text[: fact[0]].endswith(f"k{key}=v")
            assert doc.text[: answer[0]].endswith(f"k{key}?v")
            assert answer[0] - fact[1] == distance
        # Queries come in the order of their pairs.
        assert [f[0] for f in doc.fact_spans] == sorted(f[0] for f in doc.fact_spans)


def test_associative_recall_is_deterministic_by_seed():
    a = [d.text for d in associative_recall_documents(3, 4, 200, seed=1, num_queries=2)]
    assert a == [d.text for d in associative_recall_documents(3, 4, 200, seed=1, num_queries=2)]
    b = [d.text for d in associative_recall_documents(3, 4, 200, seed=2, num_queries=2)]
    assert all(x != y for x, y in zip(a, b))


def test_bad_arguments_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`distance` must be an int >= 53"):
        passkey_documents(1, PASSKEY_MIN_DISTANCE - 1)
    with pytest.raises(ValueError, match="`num_documents`"):
        passkey_documents(0, 100)
    with pytest.raises(ValueError, match="`key_length`"):
        passkey_documents(1, 100, key_length=0)
    with pytest.raises(ValueError, match="`seed`"):
        passkey_documents(1, 100, seed=-1)
    with pytest.raises(ValueError, match="`filler`"):
        passkey_documents(1, 100, filler="room 101")
    with pytest.raises(ValueError, match="`filler`"):
        passkey_documents(1, 100, filler="")
    minimum = associative_recall_min_distance(4)
    associative_recall_documents(1, 4, minimum)
    with pytest.raises(ValueError, match=f"`distance` must be an int >= {minimum}"):
        associative_recall_documents(1, 4, minimum - 1)
    with pytest.raises(ValueError, match="`num_pairs`"):
        associative_recall_documents(1, 0, 500)
    with pytest.raises(ValueError, match="`num_pairs` must be <= 90"):
        associative_recall_documents(1, 91, 5000)
    with pytest.raises(ValueError, match="`num_queries`"):
        associative_recall_documents(1, 4, 500, num_queries=5)
    with pytest.raises(ValueError, match="`num_documents`"):
        associative_recall_documents(0, 4, 500)
    with pytest.raises(ValueError, match="`length`"):
        make_filler(-1)
