"""The memory layer's read-out options: the gate's initial bias and a scale of its own."""

import keras
import numpy as np
import pytest

from keras_memory.layers import KNNAttention
from keras_memory.models import MemoryLM
from tests.memories.memorizing.test_copy_options import (
    HIDDEN,
    B,
    D,
    H,
    S,
    W,
    make_layer,
    randn,
    to_numpy,
)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def read_twice(layer):
    """The outputs of a second segment, which reads the memory the first wrote."""
    x1, x2 = randn(B, S, HIDDEN, seed=1), randn(B, S, HIDDEN, seed=2)
    _, state = layer(x1, reset=np.array([True, True]))
    y, _ = layer(x2, state=state, reset=np.array([False, False]))
    return to_numpy(y)


def copy_weights(source, target):
    """Assigns each of `target`'s weights the `source` weight of the same name."""
    by_name = {w.path.split("/", 1)[1]: w for w in source.weights}
    for weight in target.weights:
        weight.assign(by_name[weight.path.split("/", 1)[1]])


def test_the_gate_bias_only_sets_where_the_gate_starts():
    shut = make_layer(memory_gate_bias=-3.0)
    np.testing.assert_allclose(to_numpy(shut.memory_gate), -3.0)
    paper = make_layer()
    copy_weights(shut, paper)  # every weight equal, the gate's logit included
    np.testing.assert_allclose(read_twice(paper), read_twice(shut), atol=1e-5)
    assert shut.get_config()["memory_gate_bias"] == -3.0


def test_a_memory_scale_equal_to_the_shared_scale_computes_the_paper_layer():
    own = make_layer(memory_scale=1.0)  # the shared scale starts at 1 too
    paper = make_layer()
    copy_weights(own, paper)
    np.testing.assert_allclose(read_twice(own), read_twice(paper), atol=1e-5)
    # A different scale of its own changes only what is read from the memory.
    own.memory_logit_scale.assign(np.full(H, 6.0, "float32"))
    assert np.abs(read_twice(own) - read_twice(paper)).max() > 1e-4
    np.testing.assert_allclose(to_numpy(own.attention_scale), to_numpy(paper.attention_scale))


@pytest.mark.parametrize("memory_scale", [None, 8.0])
def test_the_retrieved_entries_get_one_softmax_at_the_memorys_scale(memory_scale):
    layer = make_layer(memory_scale=memory_scale)
    layer.attention_scale.assign(np.array([1.5, 0.5], "float32"))
    k = 4
    queries = unit(randn(B, S, H, D, seed=3))
    keys = unit(randn(B, H, S, k, D, seed=4))
    values = randn(B, H, S, k, D, seed=5)
    found = np.ones((B, H, S, k), bool)
    found[:, :, :, -1] = False  # an empty slot gets no weight
    read = layer._attend_retrieved(queries, keys, values, found)
    scale = np.array([1.5, 0.5]) if memory_scale is None else np.full(H, memory_scale)
    logits = np.einsum("bqhd,bhqkd->bhqk", queries, keys) * scale[None, :, None, None]
    logits = np.where(found, logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = np.einsum("bhqk,bhqkd->bqhd", weights, values)
    np.testing.assert_allclose(to_numpy(read), expected, atol=1e-5)


def test_the_memory_scale_and_gate_learn_from_what_the_memory_returns():
    keras.utils.set_random_seed(0)
    model = MemoryLM.from_preset(
        "tiny",
        kind="memorizing",
        memory_size=64,
        memory_gate_bias=-1.0,
        memory_scale=4.0,
        num_layers=2,
        window_length=16,
        segment_length=16,
        stateful=True,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    tokens = np.random.default_rng(8).integers(3, 259, (2, 48)).astype("int32")
    for start in (0, 16, 32):  # the later segments read what the first wrote
        inputs = {"tokens": tokens[:, start : start + 16], "reset": np.array([start == 0] * 2)}
        model.train_on_batch(inputs, np.roll(tokens, -1, axis=1)[:, start : start + 16])
    memory_layer = model.blocks[1].attention
    assert np.abs(to_numpy(memory_layer.memory_logit_scale) - 4.0).min() > 1e-4
    assert np.abs(to_numpy(memory_layer.memory_gate) + 1.0).min() > 1e-4


def test_the_options_round_trip_through_a_saved_model(tmp_path):
    model = MemoryLM.from_preset(
        "tiny",
        kind="memorizing",
        memory_size=256,
        memory_gate_bias=-2.0,
        memory_scale=8.0,
        num_layers=2,
        window_length=16,
        segment_length=32,
    )
    memory_layer = model.blocks[1].attention
    assert memory_layer.memory_gate_bias == -2.0 and memory_layer.memory_scale == 8.0
    tokens = np.random.default_rng(5).integers(3, 259, (2, 64)).astype("int32")
    first = {"tokens": tokens[:, :32], "reset": np.array([True, True])}
    _, state = model(first)
    memory_layer.memory_logit_scale.assign(np.array([3.0, 9.0, 5.0, 7.0], "float32"))
    second = {"tokens": tokens[:, 32:], "reset": np.array([False, False])}
    logits, _ = model(second, state=state)
    path = str(tmp_path / "readout.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    _, loaded_state = loaded(first)
    again, _ = loaded(second, state=loaded_state)
    np.testing.assert_allclose(to_numpy(again), to_numpy(logits), atol=1e-5)
    assert loaded.blocks[1].attention.get_config()["memory_scale"] == 8.0


def test_the_paper_default_and_bad_values():
    layer = make_layer()
    assert layer.memory_gate_bias == 0.0 and layer.memory_scale is None
    assert layer.memory_logit_scale is None
    assert not any("memory_logit_scale" in w.path for w in layer.weights)
    bad = {
        "memory_scale": [0, -1.0, float("nan"), float("inf"), "sharp", True],
        "memory_gate_bias": [float("nan"), float("-inf"), None, "shut"],
    }
    for name, values in bad.items():
        for value in values:
            with pytest.raises(ValueError, match=name):
                KNNAttention(H, D, W, memory_size=32, **{name: value})
