"""`train --preset lswt_* --warm-start PRESET`: a keras-hub preset's embedding and tokenizer."""

import json

import numpy as np
import pytest

from keras_memory.cli import main
from keras_memory.data import HubTokenizer, load_tokenizer
from keras_memory.training import load_checkpoint
from tests.conftest import to_numpy
from tests.test_cli import corpus, train_args  # noqa: F401 (fixture)

WIDTH = 24  # the source's embedding width, not the lswt_cpu model's 64


def tiny_opt_preset(directory):
    """A keras-hub OPT preset made offline: a byte-ish BPE tokenizer and a random backbone."""
    import keras_hub

    vocabulary = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in "abcdefghijklmnopqrstuvwxyzĠĊ":
        vocabulary[symbol] = len(vocabulary)
    merges = ["a l", "p h", "Ġ b", "e t", "Ġ g"]
    for merge in merges:
        vocabulary[merge.replace(" ", "")] = len(vocabulary)
    tokenizer = keras_hub.models.OPTTokenizer(vocabulary=vocabulary, merges=merges)
    backbone = keras_hub.models.OPTBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=1,
        num_heads=2,
        hidden_dim=WIDTH,
        intermediate_dim=32,
        max_sequence_length=32,
    )
    tokenizer.save_to_preset(directory)
    backbone.save_to_preset(directory)
    return to_numpy(backbone.token_embedding.embeddings)


def test_warm_start_copies_and_freezes_the_embedding_with_the_presets_tokenizer(
    corpus,  # noqa: F811 (fixture)
    tmp_path,
    capsys,
):
    preset = str(tmp_path / "opt")
    source = tiny_opt_preset(preset)
    workdir = str(tmp_path / "run")
    options = ["--preset", "lswt_cpu", "--warm-start", preset, "--freeze-embedding"]
    main(train_args(corpus, workdir, 3, *options))

    model, progress = load_checkpoint(workdir)
    # The width was taken from the source; the embedding is its copy, untouched by 3 steps.
    assert model.embedding_dim == WIDTH and model.hidden_dim == 64
    np.testing.assert_array_equal(to_numpy(model.token_embedding.embeddings), source)
    assert not model.token_embedding.trainable
    assert model.pad_token_id == 1  # OPT's <pad>, not 0 (an ordinary OPT token)
    assert progress["run_config"]["tokenizer"] == f"hub:{preset}"
    assert model.blocks[0].attention.rotary == "reversed"  # the preset's LSWT options
    tokenizer = load_tokenizer(workdir)
    assert isinstance(tokenizer, HubTokenizer)
    assert tokenizer.special_ids == {"bos_id": 2, "eos_id": 2, "pad_id": 1}

    # Resuming keeps the embedding frozen (the flag lives in the model's config).
    main(train_args(corpus, workdir, 5, *options, "--resume"))
    model, _ = load_checkpoint(workdir)
    np.testing.assert_array_equal(to_numpy(model.token_embedding.embeddings), source)

    capsys.readouterr()
    main(["evaluate", "--data", corpus, "--workdir", workdir])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["tokenizer"] == "hub" and result["tokens"] > 0
    # A vocabulary of 37: the default top-k of 40 draws from all of it, a typed one is refused.
    main(["generate", "--workdir", workdir, "--prompt", "alpha", "--top-k", "5"])
    assert capsys.readouterr().out.startswith("alpha")
    main(["generate", "--workdir", workdir, "--prompt", "alpha", "--max-new-tokens", "4"])
    assert capsys.readouterr().out.startswith("alpha")
    with pytest.raises(SystemExit):
        main(["generate", "--workdir", workdir, "--top-k", "40"])
    assert "--top-k 40 is larger than the run's vocabulary (37 tokens)" in capsys.readouterr().err


def test_warm_start_without_freezing_trains_the_embedding(corpus, tmp_path):  # noqa: F811
    preset = str(tmp_path / "opt")
    source = tiny_opt_preset(preset)
    workdir = str(tmp_path / "run")
    main(train_args(corpus, workdir, 2, "--warm-start", preset))
    model, _ = load_checkpoint(workdir)
    assert model.token_embedding.trainable and model.embedding_dim == WIDTH
    assert not np.allclose(to_numpy(model.token_embedding.embeddings), source)


def test_warm_start_that_does_not_fit_is_one_clear_error(corpus, tmp_path, capsys):  # noqa: F811
    preset = str(tmp_path / "opt")
    tiny_opt_preset(preset)
    with pytest.raises(SystemExit):
        main(
            train_args(
                corpus, str(tmp_path / "a"), 1, "--warm-start", preset, "--tokenizer", "bytes"
            )
        )
    assert "vocab_size=" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(
            train_args(
                corpus, str(tmp_path / "b"), 1, "--warm-start", preset, "--embedding-dim", "8"
            )
        )
    assert "embedding_dim=24" in capsys.readouterr().err
