import numpy as np
import pytest

from keras_memory.data import ByteTokenizer
from keras_memory.data.prose_facts import (
    CHANCE_BITS,
    max_facts_within,
    passage_texts,
    prose_fact_documents,
    prose_fact_min_distance,
)
from keras_memory.data.python_docs import python_docs_corpus

PROSE = [
    "In the beginning was the word, and the word was long.\nAnd it went on " * 40,
    "A second text with caf\u00e9 and other things.\n" * 80,
]


def test_each_question_repeats_its_fact_and_the_nearest_is_exactly_the_distance():
    documents = prose_fact_documents(PROSE, 6, distance=700, seed=3)
    for doc in documents:
        tokens = ByteTokenizer().encode(doc.text)
        assert len(tokens) == len(doc.text)  # ASCII: a character is a token
        assert doc.text.isascii()
        gaps = []
        for (start, end), (fact_start, fact_end) in zip(doc.answer_spans, doc.fact_spans):
            answer = doc.text[start:end]
            assert answer == doc.text[fact_start:fact_end]
            assert len(answer) == 6 and answer.isalpha() and answer.islower()
            # The question states the same name and thing as its fact.
            fact_sentence = doc.text[:fact_start].rsplit(". ", 1)[-1]
            assert doc.text[:start].endswith("Recall that " + fact_sentence)
            gaps.append(start - fact_end)
        assert min(gaps) == 700 == doc.distance
        assert len(doc.answer_spans) == 4
        # The answers appear nowhere else: only the facts can predict them.
        for start, end in doc.answer_spans:
            assert doc.text.count(doc.text[start:end]) == 2


def test_documents_depend_on_seed_and_index_only():
    first = prose_fact_documents(PROSE, 3, distance=500, seed=1)
    more = prose_fact_documents(PROSE, 5, distance=500, seed=1)
    assert [d.text for d in first] == [d.text for d in more[:3]]
    assert first[0].text != prose_fact_documents(PROSE, 1, distance=500, seed=2)[0].text


def test_the_number_of_facts_follows_the_distance_when_not_given():
    assert max_facts_within(prose_fact_min_distance(1)) == 1
    assert max_facts_within(prose_fact_min_distance(4)) == 4
    near = prose_fact_documents(PROSE, 2, distance=prose_fact_min_distance(1))
    assert all(len(d.answer_spans) == 1 for d in near)
    assert abs(CHANCE_BITS - np.log2(26)) < 1e-9


@pytest.mark.parametrize(
    "arguments, name",
    [
        ({"distance": 10}, "distance"),
        ({"distance": 100, "num_facts": 4}, "distance"),
        ({"distance": 500, "num_facts": 0}, "num_facts"),
        ({"distance": 500, "num_facts": 99}, "num_facts"),
        ({"distance": 500, "num_documents": 0}, "num_documents"),
        ({"distance": 500, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_refused_by_name(arguments, name):
    arguments = {"num_documents": 1, **arguments}
    with pytest.raises(ValueError, match=name):
        prose_fact_documents(PROSE, **arguments)


def test_the_command_line_names_the_same_passage_sources():
    # The command line keeps its own copy: it lists flags before Keras is imported.
    from keras_memory.cli.corpora import NAMED_PASSAGES as CLI_NAMES
    from keras_memory.data.prose_facts import NAMED_PASSAGES

    assert CLI_NAMES == NAMED_PASSAGES


def test_passages_come_from_the_named_sources_or_refuse_a_path_without_text(tmp_path):
    topics = python_docs_corpus()
    assert len(topics.names) > 50 and sum(map(len, topics.texts)) > 300_000
    train, validation = (
        passage_texts("python-docs", "train"),
        passage_texts("python-docs", "validation"),
    )
    assert train and validation and not set(train) & set(validation)
    with pytest.raises(ValueError):
        passage_texts(str(tmp_path / "nothing-here"), "train")
    with pytest.raises(ValueError, match="texts"):
        prose_fact_documents([""], 1, distance=500)
