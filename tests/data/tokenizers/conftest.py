"""Tokenizers trained once for all the tests of this folder (training takes seconds)."""

import pytest

from keras_memory.data import python_source_corpus
from keras_memory.data.tokenizers import make_tokenizer, train_sentencepiece


@pytest.fixture(scope="package")
def code_texts():
    return python_source_corpus("train", max_documents=50).texts


@pytest.fixture(scope="package")
def held_out():
    texts = python_source_corpus("validation", max_documents=40).texts
    return [t for t in texts if len(t) < 20_000][:3]


@pytest.fixture(scope="package")
def tokenizers(code_texts):
    """One tokenizer of each kind in `samples.KINDS`, trained on `code_texts`."""
    return {
        "bytes": make_tokenizer("bytes"),
        # Unigram training is the slowest; 10 files keep it around a second.
        "sentencepiece_unigram": train_sentencepiece(code_texts[:10], vocab_size=600),
        "sentencepiece_bpe": make_tokenizer(
            "sentencepiece", code_texts, vocab_size=800, model_type="bpe"
        ),
        "bpe": make_tokenizer("bpe", code_texts, vocab_size=800),
    }
