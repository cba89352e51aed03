import pytest

from keras_memory.data.tokenizers import (
    HubTokenizer,
    load_tokenizer,
    make_tokenizer,
    special_token_ids,
    tokenize_in_tf_data,
)


def test_hub_tokenizer_keeps_the_presets_special_ids_and_round_trips(tmp_path):
    import keras_hub

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


class FakeTokenizer:
    def __init__(self, **ids):
        self.__dict__.update(ids)


def test_special_token_ids_pad_only_with_a_special_token():
    # OPT: a real <pad> among its special tokens.
    opt = FakeTokenizer(start_token_id=2, end_token_id=2, pad_token_id=1, special_token_ids=[1, 2])
    assert special_token_ids(opt) == {"bos_id": 2, "eos_id": 2, "pad_id": 1}
    # GPT-2: pad_token_id 0 is the ordinary "!", so padding is <|endoftext|>.
    gpt2 = FakeTokenizer(
        start_token_id=50256, end_token_id=50256, pad_token_id=0, special_token_ids=[50256]
    )
    assert special_token_ids(gpt2) == {"bos_id": 50256, "eos_id": 50256, "pad_id": 50256}
    assert special_token_ids(FakeTokenizer(end_token_id=5))["bos_id"] == 5
    with pytest.raises(ValueError, match="`tokenizer`"):
        special_token_ids(FakeTokenizer())
