import numpy as np
import pytest

from keras_memory.data.tokenizers import (
    SentencePieceTokenizer,
    tokenize_in_tf_data,
    train_sentencepiece,
)
from tests.data.tokenizers.samples import CODE


def test_unknown_characters_map_to_unk_without_byte_fallback():
    texts = ["def f(x):\n    return x + 1\n", "hello world, hello code\n"] * 5
    tokenizer = train_sentencepiece(texts, vocab_size=300, model_type="bpe", byte_fallback=False)
    ids = tokenizer.encode("x + 中")
    assert ids.min() >= 3 and tokenizer.unk_id == 3 and ids[-1] == 3
    assert tokenizer.decode(ids) == "x +  ⁇ "


def test_small_corpus_caps_the_vocabulary():
    # A corpus too small for the asked size gives fewer entries (documented).
    capped = train_sentencepiece(["tiny text, tiny text"] * 3, vocab_size=1000)
    assert 261 <= capped.vocab_size < 1000


def test_trainer_errors_name_the_argument(code_texts):
    texts = code_texts[:3]
    # Above the fixed floor but below 4 meta + 256 byte pieces + the corpus' characters.
    with pytest.raises(ValueError, match="`vocab_size`"):
        train_sentencepiece(texts, vocab_size=262)
    with pytest.raises(ValueError, match="`model_type`"):
        train_sentencepiece(texts, vocab_size=500, model_type="word")
    with pytest.raises(ValueError, match="`unk_id`"):
        train_sentencepiece(texts, vocab_size=500, unk_id=0)


def test_keras_hub_trainer_ids_are_rejected():
    # keras-hub's trainer fixes pad 0, unk 1, bos 2, eos 3: not our special ids.
    import keras_hub
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(["abc cab"])
    proto = keras_hub.tokenizers.compute_sentence_piece_proto(
        data, vocabulary_size=8, model_type="char"
    )
    with pytest.raises(ValueError, match="`proto`"):
        SentencePieceTokenizer(proto)


def test_sentencepiece_survives_reseeding(tokenizers):
    # `set_random_seed` clears TensorFlow's eager kernel cache, which deletes
    # tensorflow-text's kernel-owned SentencePiece model; it is rebuilt.
    import keras

    tokenizer = tokenizers["sentencepiece_bpe"]
    expected = tokenizer.encode(CODE)
    keras.utils.set_random_seed(7)
    np.testing.assert_array_equal(tokenizer.encode(CODE), expected)
    keras.utils.set_random_seed(8)
    np.testing.assert_array_equal(tokenize_in_tf_data(tokenizer, [CODE])[0], expected)
