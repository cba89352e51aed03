import numpy as np
import pytest

from keras_memory.data import ByteTokenizer
from keras_memory.data.tokenizers import tokenize_in_tf_data
from tests.data.tokenizers.samples import CODE, KINDS, PROSE, SPECIAL_LOOKING


@pytest.mark.parametrize("kind", KINDS)
def test_tf_data_path_equals_encode(tokenizers, code_texts, kind):
    tokenizer = tokenizers[kind]
    texts = [CODE, PROSE, SPECIAL_LOOKING, "", code_texts[1]]
    outputs = tokenize_in_tf_data(tokenizer, texts)
    assert len(outputs) == len(texts)
    for ids, text in zip(outputs, texts):
        assert ids.dtype == np.int32
        np.testing.assert_array_equal(ids, tokenizer.encode(text))
    assert tokenize_in_tf_data(tokenizer, []) == []


def test_tf_data_path_of_plain_byte_tokenizer_in_parallel():
    texts = [CODE, PROSE, ""]
    outputs = tokenize_in_tf_data(ByteTokenizer(), texts, num_parallel_calls=2)
    for ids, text in zip(outputs, texts):
        np.testing.assert_array_equal(ids, ByteTokenizer().encode(text))


def test_other_objects_are_not_tokenizers():
    with pytest.raises(ValueError, match="`tokenizer`"):
        tokenize_in_tf_data("bytes", ["text"])
