"""Embedding width apart from model width, warm starts from keras-hub, vocabulary resizing."""

import os

import keras
import keras_hub
import numpy as np
import pytest

from keras_memory.models import MemoryLM, resize_vocabulary, warm_start_embedding
from tests.conftest import to_numpy

SMALL = dict(hidden_dim=16, num_heads=2, head_dim=8, intermediate_dim=32, window_length=8)
OPT = dict(
    vocabulary_size=300,
    num_layers=1,
    num_heads=2,
    hidden_dim=24,
    intermediate_dim=32,
    max_sequence_length=32,
)


def inputs(vocab=259, seed=0):
    ids = np.random.default_rng(seed).integers(3, vocab, size=(2, 16)).astype("int32")
    return {"tokens": ids, "reset": np.array([True, True])}


def built(kind="xl", **overrides):
    model = MemoryLM.from_preset("tiny", kind=kind, **{**SMALL, **overrides})
    model(inputs(overrides.get("vocab_size", 259)))
    return model


@pytest.mark.parametrize("kind", ["xl", "melodi"])
def test_an_embedding_wider_than_the_model_is_projected_in_and_out(tmp_path, kind):
    model = built(kind, embedding_dim=24)
    assert tuple(model.token_embedding.embeddings.shape) == (259, 24)
    assert tuple(model.input_projection.kernel.shape) == (24, 16)
    assert tuple(model.output_projection.kernel.shape) == (16, 24)
    expected, _ = model(inputs())
    # The output is tied: moving the row of a token absent from the input
    # (id 1) moves that token's logit and no other.
    rows = to_numpy(model.token_embedding.embeddings).copy()
    rows[1] += 1.0
    model.token_embedding.embeddings.assign(rows)
    moved = to_numpy(model(inputs())[0])
    expected = to_numpy(expected)
    assert np.abs(moved[..., 1] - expected[..., 1]).max() > 1e-3
    np.testing.assert_allclose(np.delete(moved, 1, -1), np.delete(expected, 1, -1), atol=1e-5)
    path = os.path.join(tmp_path, "wide.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(loaded(inputs())[0]), to_numpy(model(inputs())[0]), atol=1e-5
    )
    assert expected.shape == (2, 16, 259)


def test_warm_start_from_a_keras_hub_backbone_and_freeze():
    backbone = keras_hub.models.OPTBackbone(**OPT)
    model = built(vocab_size=300, embedding_dim=24, stateful=True)
    warm_start_embedding(model, backbone, freeze=True)
    np.testing.assert_array_equal(
        to_numpy(model.token_embedding.embeddings), to_numpy(backbone.token_embedding.embeddings)
    )
    before = to_numpy(model.token_embedding.embeddings).copy()
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    batch = inputs(300)
    model.train_on_batch(batch, np.roll(batch["tokens"], -1, 1))
    np.testing.assert_array_equal(to_numpy(model.token_embedding.embeddings), before)
    assert np.abs(to_numpy(model.input_projection.kernel)).sum() > 0


def test_warm_start_refuses_what_does_not_fit():
    backbone = keras_hub.models.OPTBackbone(**OPT)
    with pytest.raises(ValueError, match="vocab_size=300"):
        warm_start_embedding(built(embedding_dim=24), backbone)
    with pytest.raises(ValueError, match="embedding_dim=24"):
        warm_start_embedding(built(vocab_size=300), backbone)
    with pytest.raises(ValueError, match="Build"):
        warm_start_embedding(MemoryLM.from_preset("tiny", kind="xl", **SMALL), backbone)


def test_resizing_the_vocabulary_keeps_the_old_tokens_logits():
    model = built()
    bigger = resize_vocabulary(model, 300)
    assert bigger.vocab_size == 300
    old, _ = model(inputs())
    new, _ = bigger(inputs())
    np.testing.assert_allclose(to_numpy(new)[..., :259], to_numpy(old), atol=1e-5)
    smaller = resize_vocabulary(model, 200)
    assert tuple(smaller.token_embedding.embeddings.shape) == (200, 16)
    with pytest.raises(ValueError, match="vocab_size"):
        resize_vocabulary(model, 0)


@pytest.mark.parametrize("kind", ["block_recurrent", "melodi"])
def test_a_saved_preset_loads_back_by_directory(tmp_path, kind):
    model = built(kind, num_states=3)
    expected, _ = model(inputs())
    directory = str(tmp_path / "my_preset")
    model.save_to_preset(directory)
    loaded = MemoryLM.from_preset(directory)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(to_numpy(loaded(inputs())[0]), to_numpy(expected), atol=1e-5)
    stateful = MemoryLM.from_preset(directory, stateful=True)
    np.testing.assert_allclose(stateful.predict_on_batch(inputs()), to_numpy(expected), atol=1e-5)
    with pytest.raises(ValueError, match="only `stateful` and `memory_size`"):
        MemoryLM.from_preset(directory, hidden_dim=32)
    with pytest.raises(ValueError, match="Unknown preset"):
        MemoryLM.from_preset(str(tmp_path / "missing"))
