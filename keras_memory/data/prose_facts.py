"""Facts told in real prose and asked again far later: a natural-text recall task.

Each document opens with a few facts, one sentence each, whose answer is a
made-up word of random lowercase letters ("Hilda's boat is called
qorvex."), runs on with a passage of real text (the King James Bible, the
standard library's sources, or any text a user points at), then asks for
every fact again in a shuffled order ("Recall that Hilda's boat is called
qorvex."). Only the answer letters of the questions are scored: nothing in
the passage can predict them (chance is 1/26 per letter, 4.70 bits), so a
model that cannot see the facts any more costs at least 4.70 bits per answer
token there, and one that can copies them.

Distances are in `ByteTokenizer` tokens: every character is ASCII (the
passage's other characters become `?`), so one character is one token. A
document's `distance` is the shortest `answer_start - fact_end` over its
questions (the first-stated fact asked first is the nearest); the others lie
further back by at most the length of the facts block.
"""

import numpy as np

from keras_memory.data.synthetic import SyntheticDocument
from keras_memory.ops.checks import check_int

# Who and what the facts are about: a name and a thing make each fact's key.
NAMES = (
    "Hilda Edmund Marta Osric Agnes Tobias Rowena Silas Greta Anselm Ingrid Casimir "
    "Leona Barnaby Odile Ulric Petra Lorcan Maud Ivo Selma Jasper Wilma Ambrose"
).split()
THINGS = (
    "boat horse dog cat farm ship sword song village garden mountain river bell house "
    "star lamp ring book"
).split()
_FACT = "{name}'s {thing} is called "
_QUESTION = "Recall that {name}'s {thing} is called "
_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))
ANSWER_LENGTH = 6
# Facts per document when the caller leaves it to the distance.
MAX_FACTS = 4
# The chance cost of one answer letter, in bits.
CHANCE_BITS = float(np.log2(len(_LETTERS)))


def prose_fact_min_distance(num_facts, answer_length=ANSWER_LENGTH):
    """The smallest `distance` every layout of `num_facts` facts can meet.

    The passage may be empty at this distance: the questions then follow
    the facts at once. Names and things are at most 7 and 8 letters.
    """
    longest_fact = len(_FACT.format(name="x" * 7, thing="x" * 8)) + answer_length + 2
    return (num_facts - 1) * longest_fact + 2 + len(_QUESTION.format(name="x" * 7, thing="x" * 8))


# Passage sources named rather than given as a path.
NAMED_PASSAGES = ("python-docs", "kjv", "python-source")


def passage_texts(source, split):
    """The texts of `split` that passages are cut from.

    Args:
        source: str. `"python-docs"` (the reference manual's topics every
            Python carries; `keras_memory.data.python_docs`), `"kjv"` (the
            King James Bible; needs Debian's `bible-kjv`), `"python-source"`
            (the standard library's sources) or a folder, file or glob of
            UTF-8 text files.
        split: `"train"` or `"validation"`.

    Returns:
        A list of non-empty str.
    """
    from keras_memory.data.corpora import python_source_corpus, text_files_corpus
    from keras_memory.data.kjv import kjv_corpus
    from keras_memory.data.python_docs import python_docs_corpus

    named = {"python-docs": python_docs_corpus, "kjv": kjv_corpus}
    if source in named:
        texts = named[source](split).texts
    elif source == "python-source":
        texts = python_source_corpus(split).texts
    else:
        texts = text_files_corpus(source, split=split).texts
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"{source!r} has no {split} text.")
    return texts


def max_facts_within(distance, answer_length=ANSWER_LENGTH):
    """The most facts, up to `MAX_FACTS`, whose layout meets `distance` (at least 1)."""
    fits = [
        n for n in range(1, MAX_FACTS + 1) if prose_fact_min_distance(n, answer_length) <= distance
    ]
    return max(fits, default=1)


def _ascii(text):
    return text.encode("ascii", errors="replace").decode("ascii")


def prose_passage(texts, length, rng):
    """`length` ASCII characters from one of `texts`, from a line start, ending in a space."""
    if length == 0:
        return ""
    long_enough = [t for t in texts if len(t) > length + 1]
    source = long_enough[rng.integers(len(long_enough))] if long_enough else "".join(texts)
    while len(source) <= length + 1:
        source = source + "\n" + source
    start = int(rng.integers(0, len(source) - length))
    line_start = source.rfind("\n", 0, start) + 1
    if len(source) - line_start > length + 1:
        start = line_start
    return _ascii(source[start : start + length - 1]) + " "


def prose_fact_documents(
    texts, num_documents, distance, seed=0, num_facts=None, answer_length=ANSWER_LENGTH
):
    """Documents that state `num_facts` facts, run on in real prose, then ask for them.

    Document `i` depends only on `(seed, i)` and `texts`.

    Args:
        texts: list of str. The prose the passages are cut from (e.g. the
            books of `kjv_corpus`); a passage comes from one text, starts at
            a line start where it can and has its non-ASCII characters
            replaced by `?`.
        num_documents: int >= 1. Number of documents.
        distance: int >= `prose_fact_min_distance(num_facts, answer_length)`.
            The shortest `answer_start - fact_end` of a document's questions.
        seed: int >= 0. Seed of the facts, their order and the passages.
        num_facts: int in [1, 24] or None. Facts per document (distinct
            names); None: as many as `distance` leaves room for, up to
            `MAX_FACTS` (one at distances within an attention window, where
            a model learns the lookup).
        answer_length: int >= 1. Letters per answer.

    Returns:
        A list of `num_documents` `SyntheticDocument`s with `num_facts`
        answer spans each, in the order they are asked.

    Example:
    ```python
    books = kjv_corpus("validation").texts
    docs = prose_fact_documents(books, 4, distance=1500)
    start, end = docs[0].answer_spans[0]
    docs[0].text[start:end]  # six random letters, stated at the start
    ```
    """
    check_int("num_documents", num_documents)
    check_int("answer_length", answer_length)
    check_int("seed", seed, minimum=0)
    check_int("distance", distance, minimum=prose_fact_min_distance(1, answer_length))
    if num_facts is None:
        num_facts = max_facts_within(distance, answer_length)
    check_int("num_facts", num_facts)
    if num_facts > len(NAMES):
        raise ValueError(f"`num_facts` must be <= {len(NAMES)}; got {num_facts}.")
    check_int("distance", distance, minimum=prose_fact_min_distance(num_facts, answer_length))
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("`texts` must hold at least one non-empty text.")
    documents = []
    for index in range(num_documents):
        rng = np.random.default_rng((seed, index))
        names = rng.permutation(NAMES)[:num_facts]
        things = rng.choice(THINGS, num_facts)
        answers = ["".join(rng.choice(_LETTERS, answer_length)) for _ in range(num_facts)]
        text, fact_spans = "", []
        for name, thing, answer in zip(names, things, answers):
            text += _FACT.format(name=name, thing=thing)
            fact_spans.append((len(text), len(text) + answer_length))
            text += answer + ". "
        # The questions with an empty passage, then the passage that brings
        # the nearest one to `distance`.
        order = rng.permutation(num_facts)
        questions, starts = "", []
        for p in order:
            questions += _QUESTION.format(name=names[p], thing=things[p])
            starts.append(len(questions))
            questions += answers[p] + ". "
        nearest = min(len(text) + s - fact_spans[p][1] for s, p in zip(starts, order))
        passage = prose_passage(texts, distance - nearest, rng)
        base = len(text) + len(passage)
        text += passage + questions.rstrip() + "\n"
        answer_spans = [(base + s, base + s + answer_length) for s in starts]
        documents.append(
            SyntheticDocument(
                text=text,
                answer_spans=answer_spans,
                fact_spans=[fact_spans[p] for p in order],
                distance=int(distance),
            )
        )
    return documents
