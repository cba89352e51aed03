import json

import numpy as np
import pytest

from keras_memory.data import ByteTokenizer
from keras_memory.data.tokenizers import load_tokenizer, save_tokenizer
from tests.data.tokenizers.samples import CODE, KINDS, PROSE


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_identical_encodings(tokenizers, held_out, tmp_path, kind):
    tokenizer = tokenizers[kind]
    tokenizer.save(str(tmp_path))
    config = json.loads((tmp_path / "tokenizer.json").read_text())
    assert config["vocab_size"] == tokenizer.vocab_size
    assert {k: config[k] for k in ("pad_id", "bos_id", "eos_id")} == {
        "pad_id": 0,
        "bos_id": 1,
        "eos_id": 2,
    }
    restored = load_tokenizer(str(tmp_path))
    assert type(restored) is type(tokenizer) and restored.kind == config["kind"]
    assert restored.vocab_size == tokenizer.vocab_size
    for text in [CODE, PROSE, held_out[0]]:
        np.testing.assert_array_equal(restored.encode(text), tokenizer.encode(text))


def test_save_tokenizer_accepts_a_plain_byte_tokenizer(tmp_path):
    save_tokenizer(ByteTokenizer(), str(tmp_path))
    restored = load_tokenizer(str(tmp_path))
    assert isinstance(restored, ByteTokenizer)
    np.testing.assert_array_equal(restored.encode(PROSE), ByteTokenizer().encode(PROSE))


def test_load_errors_name_the_directory_or_kind(tmp_path):
    with pytest.raises(FileNotFoundError, match="`directory`"):
        load_tokenizer(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "wordpiece"}))
    with pytest.raises(ValueError, match="wordpiece"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ValueError, match="`tokenizer`"):
        save_tokenizer("bytes", str(tmp_path))
