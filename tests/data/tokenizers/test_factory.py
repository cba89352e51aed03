import pytest

from keras_memory.data.tokenizers import make_tokenizer


def test_errors_name_the_argument(code_texts):
    texts = code_texts[:3]
    with pytest.raises(ValueError, match="`name`"):
        make_tokenizer("wordpiece", texts, vocab_size=500)
    with pytest.raises(ValueError, match="`texts`"):
        make_tokenizer("bpe", None, vocab_size=500)
    with pytest.raises(ValueError, match="`texts`"):
        make_tokenizer("sentencepiece", ["", ""], vocab_size=500)
    with pytest.raises(ValueError, match="`vocab_size`"):
        make_tokenizer("bpe", texts)
    with pytest.raises(ValueError, match="`vocab_size`"):
        make_tokenizer("bpe", texts, vocab_size=100)
    with pytest.raises(ValueError, match="`vocab_size`"):
        make_tokenizer("sentencepiece", texts, vocab_size=200)
    with pytest.raises(ValueError, match="training options"):
        make_tokenizer("bytes", min_frequency=3)
