"""Synthetic long-range recall tasks whose fact-to-question distance is a parameter.

Each document states one or more facts early, pads with filler text and then
asks for the facts back; the answer is a run of digits that only the fact
reveals (the filler never contains a digit). `distance` is measured in
tokens of `ByteTokenizer` (UTF-8 bytes; every character here is ASCII, so one
character is one token): it is `answer_start - fact_end`, where `fact_end`
is one past the fact's last digit and `answer_start` is the answer's first
digit. Put differently, `distance` tokens lie between the fact's last digit
(exclusive) and the answer's first digit: the question ends, and the answer
begins, exactly `distance` tokens after the fact ends.

Scoring (see `keras_memory.training.recall`) reads the documents through a
`SegmentStream` exactly as in training and checks greedy predictions of the
answer tokens, so accuracy by distance shows how far a memory reaches.
"""

import dataclasses

import numpy as np

from keras_memory.data.tokenizers.byte_tokenizer import ByteTokenizer
from keras_memory.ops.checks import check_int

_PASSKEY_STATEMENT = "The pass key is "
_PASSKEY_REMEMBER = ". Remember it. "
_PASSKEY_QUESTION = "What is the pass key? The pass key is "
_PASSKEY_END = ".\n"
# Tokens between the passkey's last digit and the answer with no filler.
PASSKEY_MIN_DISTANCE = len(_PASSKEY_REMEMBER) + len(_PASSKEY_QUESTION)

_RECALL_HEADER = "Remember these pairs: "
_RECALL_QUESTIONS = "Questions: "

_CLASSIC_FILLER = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
)
# Digit-free words for the seeded filler; none of them spells a task keyword.
_WORDS = (
    "the a an of and to in on at by for with from over under after before river "
    "stone cloud green blue yellow quiet slow bright tall small old young garden "
    "house road field forest window door table paper light dark morning evening "
    "winter summer walk runs sings grows falls waits turns reads writes opens "
    "closes bird tree boat city hill lake song story letter friend little many "
    "every some near far again always never often here there"
).split()


@dataclasses.dataclass(frozen=True)
class SyntheticDocument:
    """One synthetic recall document.

    Spans are `(start, end)` token positions (end exclusive) in
    `ByteTokenizer().encode(text)`, i.e. without BOS/EOS.

    Attributes:
        text: str. The document (ASCII only).
        answer_spans: list of `(start, end)`. The answer digits to score.
        fact_spans: list of `(start, end)`, parallel to `answer_spans`: where
            each answer was stated.
        distance: int. `answer_start - fact_end` for every pair of spans.
    """

    text: str
    answer_spans: list
    fact_spans: list
    distance: int

    @property
    def tokens(self):
        """The document's `ByteTokenizer` ids (int32, no BOS/EOS)."""
        return ByteTokenizer().encode(self.text)


def make_filler(length, seed=0, filler="words"):
    """Returns exactly `length` characters of digit-free ASCII filler text.

    Args:
        length: int >= 0. Number of characters (= byte tokens).
        seed: int or tuple of ints. Seed of the word choice.
        filler: str. `"words"` for seeded random words, `"classic"` for the
            repeated "The grass is green..." sentences of the passkey
            literature, or any other non-empty digit-free ASCII text, which is
            repeated.

    Returns:
        A str of `length` characters with no digit; its last character (if
        any) is a space.

    Example:
    ```python
    text = make_filler(40, seed=1)
    assert len(text) == 40 and not any(c.isdigit() for c in text)
    ```
    """
    if length < 0:
        raise ValueError(f"`length` must be >= 0; got {length}.")
    if filler == "words":
        rng = np.random.default_rng(seed)
        pieces, total = [], 0
        while total < length:
            # Words are >= 1 char plus a space, so this many always suffice.
            count = (length - total) // 2 + 1
            words = np.asarray(_WORDS)[rng.integers(0, len(_WORDS), size=count)]
            ends = rng.random(count) < 0.12
            chunk = " ".join(w + "." if end else w for w, end in zip(words, ends)) + " "
            pieces.append(chunk)
            total += len(chunk)
        text = "".join(pieces)[:length]
    else:
        text = _CLASSIC_FILLER if filler == "classic" else filler
        _check_filler_text(text)
        text = (text * (length // len(text) + 1))[:length]
    # End on a space so the text that follows starts a new word.
    return text[:-1] + " " if text else text


def _check_filler_text(text):
    if not isinstance(text, str) or not text:
        raise ValueError(f"`filler` must be 'words', 'classic' or non-empty text; got {text!r}.")
    if not text.isascii() or any(c.isdigit() for c in text):
        raise ValueError(f"`filler` text must be ASCII without digits; got {text[:40]!r}.")


def _digits(rng, length):
    """A random number of exactly `length` digits (no leading zero)."""
    first = str(int(rng.integers(1, 10)))
    return first + "".join(str(d) for d in rng.integers(0, 10, size=length - 1))


def passkey_documents(num_documents, distance, seed=0, filler="words", key_length=5):
    """Passkey-retrieval documents with the key `distance` tokens before its answer.

    Each document reads
    `"The pass key is 48213. Remember it. " + filler + "What is the pass key?
    The pass key is 48213.\\n"`; the second `48213` is the answer. The filler
    is sized so that the answer starts exactly `distance` tokens after the
    end of the stated key: `answer_start - fact_end == distance`, with
    `fact_end` one past the stated key's last digit (so `distance` counts
    the `. Remember it. `, the filler and the question). Keys have
    `key_length` digits and no leading zero.

    Document `i` depends only on `(seed, i)`, so more documents extend a
    list without changing its start.

    Args:
        num_documents: int >= 1. Number of documents.
        distance: int >= `PASSKEY_MIN_DISTANCE` (53). Tokens from the end of
            the stated key to the start of the answer.
        seed: int >= 0. Seed of the keys and of the `"words"` filler.
        filler: str. `"words"` (seeded random words), `"classic"` (the
            repeated "The grass is green..." text) or custom digit-free
            ASCII text to repeat.
        key_length: int >= 1. Digits per key.

    Returns:
        A list of `num_documents` `SyntheticDocument`s, each with one answer
        span of `key_length` tokens.

    Example:
    ```python
    docs = passkey_documents(4, distance=1000, seed=0)
    tokens = docs[0].tokens
    start, end = docs[0].answer_spans[0]
    key = ByteTokenizer().decode(tokens[start:end])
    ```
    """
    check_int("num_documents", num_documents)
    check_int("key_length", key_length)
    check_int("seed", seed, minimum=0)
    check_int("distance", distance, minimum=PASSKEY_MIN_DISTANCE)
    if filler not in ("words", "classic"):
        _check_filler_text(filler)
    documents = []
    for index in range(num_documents):
        rng = np.random.default_rng((seed, index, 0))
        key = _digits(rng, key_length)
        body = make_filler(distance - PASSKEY_MIN_DISTANCE, seed=(seed, index, 1), filler=filler)
        fact_start = len(_PASSKEY_STATEMENT)
        fact_end = fact_start + key_length
        text = (
            _PASSKEY_STATEMENT
            + key
            + _PASSKEY_REMEMBER
            + body
            + _PASSKEY_QUESTION
            + key
            + _PASSKEY_END
        )
        answer_start = fact_end + distance
        documents.append(
            SyntheticDocument(
                text=text,
                answer_spans=[(answer_start, answer_start + key_length)],
                fact_spans=[(fact_start, fact_end)],
                distance=int(distance),
            )
        )
    return documents


def associative_recall_min_distance(num_pairs, key_length=2, value_length=3):
    """The smallest `distance` `associative_recall_documents` accepts.

    It puts the first query right after the list of pairs: every query must
    come after the whole list, and the first pair is the farthest from it.
    """
    pair_length = key_length + value_length + 4  # "k" key "=v" value ";"
    # From the end of pair 0's value: ";", the other pairs, the questions
    # header, and the query's "k" key "?v" before its answer.
    return 1 + (num_pairs - 1) * pair_length + len(_RECALL_QUESTIONS) + key_length + 3


def associative_recall_documents(
    num_documents,
    num_pairs,
    distance,
    seed=0,
    num_queries=None,
    key_length=2,
    value_length=3,
    filler="words",
):
    """Associative-recall documents: key-value pairs early, queries `distance` later.

    Each document reads `"Remember these pairs: k37=v912;k05=...;" + filler +
    "Questions: " + queries + ".\\n"`, where a query `k37?v912;` asks for
    the value of key `k37` and its value digits are the answer. Keys are
    distinct, `key_length` digits (no leading zero); values have
    `value_length` digits (no leading zero). Queries come in the order of
    their pairs, each placed (with filler between queries where needed) so
    that its answer starts exactly `distance` tokens after the end of the
    value stated in its pair: `answer_start - fact_end == distance` for
    every query, with `fact_end` one past the last digit of `v912` in
    `k37=v912;` and `answer_start` the first digit of `912` in `k37?v912`.
    This is exact because values have a fixed width.

    Document `i` depends only on `(seed, i)`.

    Args:
        num_documents: int >= 1. Number of documents.
        num_pairs: int >= 1, at most `9 * 10 ** (key_length - 1)`. Pairs per
            document.
        distance: int >= `associative_recall_min_distance(num_pairs,
            key_length, value_length)` (so every query follows the whole
            list of pairs). Tokens from the end of a stated value to the
            start of its answer.
        seed: int >= 0. Seed of the pairs, the queried keys and the
            `"words"` filler.
        num_queries: int in `[1, num_pairs]` or None (every pair is
            queried). Queried pairs are drawn without replacement.
        key_length: int >= 1. Digits per key.
        value_length: int >= 1. Digits per value.
        filler: str. As in `passkey_documents`.

    Returns:
        A list of `num_documents` `SyntheticDocument`s, each with
        `num_queries` answer spans of `value_length` tokens.

    Example:
    ```python
    docs = associative_recall_documents(2, num_pairs=4, distance=200)
    (fact_start, fact_end), (start, end) = docs[0].fact_spans[0], docs[0].answer_spans[0]
    assert start - fact_end == 200
    ```
    """
    check_int("num_documents", num_documents)
    check_int("num_pairs", num_pairs)
    check_int("key_length", key_length)
    check_int("value_length", value_length)
    check_int("seed", seed, minimum=0)
    if num_pairs > 9 * 10 ** (key_length - 1):
        raise ValueError(
            f"`num_pairs` must be <= {9 * 10 ** (key_length - 1)} for distinct "
            f"{key_length}-digit keys; got {num_pairs}."
        )
    if num_queries is None:
        num_queries = num_pairs
    check_int("num_queries", num_queries)
    if num_queries > num_pairs:
        raise ValueError(f"`num_queries` must be <= num_pairs={num_pairs}; got {num_queries}.")
    minimum = associative_recall_min_distance(num_pairs, key_length, value_length)
    check_int("distance", distance, minimum=minimum)
    if filler not in ("words", "classic"):
        _check_filler_text(filler)

    documents = []
    for index in range(num_documents):
        rng = np.random.default_rng((seed, index, 0))
        low = 10 ** (key_length - 1)
        keys = [str(k) for k in low + rng.permutation(9 * low)[:num_pairs]]
        values = [_digits(rng, value_length) for _ in range(num_pairs)]
        queried = np.sort(rng.choice(num_pairs, size=num_queries, replace=False))

        text = _RECALL_HEADER
        fact_spans = []
        for key, value in zip(keys, values):
            text += f"k{key}=v"
            fact_spans.append((len(text), len(text) + value_length))
            text += value + ";"
        # Filler (seeded per document and gap) then queries at exact
        # positions, with filler between queries whose pairs are not adjacent.
        answer_spans, facts = [], []
        for j, pair in enumerate(queried):
            prefix = f"k{keys[pair]}?v"
            answer_start = fact_spans[pair][1] + distance
            header = _RECALL_QUESTIONS if j == 0 else ""
            gap = answer_start - len(prefix) - len(header) - len(text)
            text += make_filler(gap, seed=(seed, index, 1, j), filler=filler) + header
            text += prefix
            assert len(text) == answer_start, "internal layout error"
            text += values[pair] + ";"
            answer_spans.append((answer_start, answer_start + value_length))
            facts.append(fact_spans[pair])
        text = text[:-1] + ".\n"
        documents.append(
            SyntheticDocument(
                text=text, answer_spans=answer_spans, fact_spans=facts, distance=int(distance)
            )
        )
    return documents
