"""Trained tokenizers: round trips, special ids, storage, tf.data and errors.

Exact round trips (`decode(encode(text)) == text`), checked below on code
(indentation, tabs, CRLF, trailing spaces, blank lines) and prose (accents,
punctuation, emoji, CJK): bytes always; sentencepiece except for "▁"
(U+2581, decoded as a space); bpe except for "६" (U+096C, deleted by
keras-hub's TensorFlow pre-tokenizer).
"""

import json

import numpy as np
import pytest

from keras_memory.data import ByteTokenizer, python_source_corpus
from keras_memory.data.tokenizers import (
    BytePairTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
    make_tokenizer,
    save_tokenizer,
    tokenize_in_tf_data,
    train_bpe,
    train_sentencepiece,
)

CODE = (
    "import os\n\n\nclass Point:\n"
    '    """A point."""\n\n'
    "    def __init__(self, x=0, y=0):\n"
    "        self.x, self.y = x, y  \n"
    "\tif x:\r\n"
    "\t\treturn {'x': x, \"y\": [y ** 2 for _ in range(3)]}\n"
    "        # trailing spaces and blank lines   \n"
    "\n   \n"
    "x = lambda a, *b, **c: a@b  # ~`|\\^\n"
)
PROSE = (
    "  It was the best of times, it was the worst of times -- said Dickens; "
    "naïve café façade — «quoted» ‘text’ … 42 3.14159\n\n"
    "Second paragraph: emoji 😀🚀, CJK 中文字, Greek αβγ, and  double  spaces. "
)
SPECIAL_LOOKING = "<s> </s> <pad> <unk> ⁇ <0x41>"
KINDS = ("bytes", "sentencepiece_unigram", "sentencepiece_bpe", "bpe")


@pytest.fixture(scope="module")
def code_texts():
    return python_source_corpus("train", max_documents=50).texts


@pytest.fixture(scope="module")
def held_out():
    texts = python_source_corpus("validation", max_documents=40).texts
    return [t for t in texts if len(t) < 20_000][:3]


@pytest.fixture(scope="module")
def tokenizers(code_texts):
    return {
        "bytes": make_tokenizer("bytes"),
        # Unigram training is the slowest; 10 files keep it around a second.
        "sentencepiece_unigram": train_sentencepiece(code_texts[:10], vocab_size=600),
        "sentencepiece_bpe": make_tokenizer(
            "sentencepiece", code_texts, vocab_size=800, model_type="bpe"
        ),
        "bpe": make_tokenizer("bpe", code_texts, vocab_size=800),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_round_trips_code_and_prose_exactly(tokenizers, held_out, kind):
    tokenizer = tokenizers[kind]
    for text in [CODE, PROSE, SPECIAL_LOOKING, "", " ", "\n", *held_out]:
        ids = tokenizer.encode(text)
        assert ids.dtype == np.int32 and ids.ndim == 1
        assert tokenizer.decode(ids) == text
    # Subwords compress the held-out code; bytes are one id per byte.
    num_bytes = sum(len(t.encode("utf-8")) for t in held_out)
    num_ids = sum(len(tokenizer.encode(t)) for t in held_out)
    assert num_ids == num_bytes if kind == "bytes" else num_ids < 0.6 * num_bytes


def test_documented_exceptions_to_round_trips(tokenizers):
    text = "a\u2581b x\u096cy"
    assert tokenizers["bytes"].decode(tokenizers["bytes"].encode(text)) == text
    for kind in ("sentencepiece_unigram", "sentencepiece_bpe"):
        tokenizer = tokenizers[kind]
        assert tokenizer.decode(tokenizer.encode(text)) == "a b x\u096cy"
    bpe = tokenizers["bpe"]
    assert bpe.decode(bpe.encode(text)) == "a\u2581b xy"


@pytest.mark.parametrize("kind", KINDS)
def test_special_ids_are_reserved(tokenizers, code_texts, kind):
    tokenizer = tokenizers[kind]
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2)
    for text in [CODE, PROSE, SPECIAL_LOOKING, code_texts[0]]:
        ids = tokenizer.encode(text)
        assert ids.min() >= 3 and ids.max() < tokenizer.vocab_size
        # decode skips padding, BOS and EOS.
        framed = np.concatenate([[1], ids, [2, 0, 0]])
        assert tokenizer.decode(framed) == text


def test_unknown_characters_map_to_unk_without_byte_fallback():
    texts = ["def f(x):\n    return x + 1\n", "hello world, hello code\n"] * 5
    tokenizer = train_sentencepiece(texts, vocab_size=300, model_type="bpe", byte_fallback=False)
    ids = tokenizer.encode("x + 中")
    assert ids.min() >= 3 and tokenizer.unk_id == 3 and ids[-1] == 3
    assert tokenizer.decode(ids) == "x +  ⁇ "


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_identical_encodings(tokenizers, held_out, tmp_path, kind):
    tokenizer = tokenizers[kind]
    tokenizer.save(str(tmp_path))
    config = json.loads((tmp_path / "tokenizer.json").read_text())
    assert config["vocab_size"] == tokenizer.vocab_size
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


def test_trained_vocab_sizes_are_as_asked_or_capped(tokenizers):
    expected = {"bytes": 259, "sentencepiece_unigram": 600, "sentencepiece_bpe": 800, "bpe": 800}
    for kind, size in expected.items():
        assert tokenizers[kind].vocab_size == size
    assert tokenizers["sentencepiece_bpe"].layer.vocabulary_size() == 800
    assert tokenizers["bpe"].layer.vocabulary_size() == 800
    # A corpus too small for the asked size gives fewer entries (documented).
    tiny = ["tiny text, tiny text"] * 3
    capped = train_bpe(tiny, vocab_size=1000)
    assert 259 < capped.vocab_size < 1000 and len(capped.merges) == capped.vocab_size - 259
    capped = train_sentencepiece(tiny, vocab_size=1000)
    assert 261 <= capped.vocab_size < 1000


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


def test_errors_name_the_argument(code_texts, tmp_path):
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
    # Above the fixed floor but below 4 meta + 256 byte pieces + the corpus' characters.
    with pytest.raises(ValueError, match="`vocab_size`"):
        train_sentencepiece(texts, vocab_size=262)
    with pytest.raises(ValueError, match="`model_type`"):
        train_sentencepiece(texts, vocab_size=500, model_type="word")
    with pytest.raises(ValueError, match="`unk_id`"):
        train_sentencepiece(texts, vocab_size=500, unk_id=0)
    with pytest.raises(FileNotFoundError, match="`directory`"):
        load_tokenizer(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text(json.dumps({"kind": "wordpiece"}))
    with pytest.raises(ValueError, match="wordpiece"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ValueError, match="`vocabulary`"):
        BytePairTokenizer({"a": 0, "b": 1}, [])


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


def test_hub_tokenizer_keeps_the_presets_special_ids_and_round_trips(tmp_path):
    import keras_hub

    from keras_memory.data import HubTokenizer

    vocabulary = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in "abcdefghijklmnopqrstuvwxyzĠ":
        vocabulary[symbol] = len(vocabulary)
    vocabulary["ab"] = len(vocabulary)
    layer = keras_hub.models.OPTTokenizer(vocabulary=vocabulary, merges=["a b"])
    tokenizer = HubTokenizer(layer)
    assert tokenizer.special_ids == {"bos_id": 2, "eos_id": 2, "pad_id": 1}
    ids = tokenizer.encode("abc cab")
    assert ids.tolist() == [31, 6, 30, 6, 31]  # "ab" merged, "Ġ" = 30
    assert tokenizer.decode([2, *ids, 1, 1]) == "abc cab"  # specials skipped
    assert tokenize_in_tf_data(tokenizer, ["abc cab"])[0].tolist() == ids.tolist()
    make_tokenizer("hub", preset=layer, directory=str(tmp_path / "workdir"))
    restored = load_tokenizer(str(tmp_path / "workdir"))
    assert isinstance(restored, HubTokenizer) and restored.vocab_size == 32
    assert restored.special_ids == tokenizer.special_ids
    assert restored.encode("abc cab").tolist() == ids.tolist()
    with pytest.raises(ValueError, match="preset"):
        make_tokenizer("hub")
    with pytest.raises(ValueError, match="preset"):
        HubTokenizer(42)
