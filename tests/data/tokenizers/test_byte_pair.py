import pytest

from keras_memory.data.tokenizers import BytePairTokenizer, train_bpe


def test_small_corpus_caps_the_vocabulary():
    # A corpus too small for the asked size gives fewer entries (documented).
    capped = train_bpe(["tiny text, tiny text"] * 3, vocab_size=1000)
    assert 259 < capped.vocab_size < 1000 and len(capped.merges) == capped.vocab_size - 259


def test_vocabulary_must_hold_the_special_tokens_and_bytes():
    with pytest.raises(ValueError, match="`vocabulary`"):
        BytePairTokenizer({"a": 0, "b": 1}, [])
