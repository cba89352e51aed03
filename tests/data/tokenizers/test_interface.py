"""The interface every tokenizer kind shares: round trips, special ids, vocabulary size."""

import numpy as np
import pytest

from tests.data.tokenizers.samples import CODE, KINDS, PROSE, SPECIAL_LOOKING


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
    assert tokenizer.special_ids == {"bos_id": 1, "eos_id": 2, "pad_id": 0}
    for text in [CODE, PROSE, SPECIAL_LOOKING, code_texts[0]]:
        ids = tokenizer.encode(text)
        assert ids.min() >= 3 and ids.max() < tokenizer.vocab_size
        # decode skips padding, BOS and EOS.
        framed = np.concatenate([[1], ids, [2, 0, 0]])
        assert tokenizer.decode(framed) == text


def test_trained_vocab_sizes_are_as_asked(tokenizers):
    expected = {"bytes": 259, "sentencepiece_unigram": 600, "sentencepiece_bpe": 800, "bpe": 800}
    for kind, size in expected.items():
        assert tokenizers[kind].vocab_size == size
    assert tokenizers["sentencepiece_bpe"].layer.vocabulary_size() == 800
    assert tokenizers["bpe"].layer.vocabulary_size() == 800
