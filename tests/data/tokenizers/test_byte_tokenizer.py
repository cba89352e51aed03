import numpy as np

from keras_memory.data import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer


def test_byte_tokenizer_round_trip():
    tokenizer = ByteTokenizer()
    text = "def f(x):\n    return 'é' * x\n"
    ids = tokenizer.encode(text)
    assert ids.min() >= 3 and ids.max() < tokenizer.vocab_size
    assert tokenizer.decode(ids) == text


def test_one_id_per_byte_past_the_special_ids():
    tokenizer = ByteTokenizer()
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2) and tokenizer.vocab_size == 259
    np.testing.assert_array_equal(tokenizer.encode(b"\x00\xff"), [3, 258])
    assert tokenizer.decode([BOS_ID, 3 + ord("h"), 3 + ord("i"), EOS_ID, PAD_ID]) == "hi"
