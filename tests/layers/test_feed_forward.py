import os

import keras
import numpy as np
import pytest

from keras_memory.layers import FeedForward
from keras_memory.models import MemoryLM
from tests.conftest import to_numpy


def numpy_silu(x):
    return x / (1 + np.exp(-x))


def test_swiglu_is_a_gated_unit():
    ffn = FeedForward(12, activation="swiglu")
    x = np.random.default_rng(0).standard_normal((2, 5, 8)).astype("float32")
    got = to_numpy(ffn(x))
    gate, inner, out = (
        to_numpy(ffn.gate.kernel),
        to_numpy(ffn.intermediate.kernel),
        to_numpy(ffn.output_dense.kernel),
    )
    expected = (numpy_silu(x @ gate) * (x @ inner)) @ out
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert FeedForward.from_config(ffn.get_config()).get_config() == ffn.get_config()
    # A plain unit has no gate.
    plain = FeedForward(12, activation="relu")
    plain(x)
    assert not hasattr(plain, "gate") and plain.get_config()["activation"] == "relu"


@pytest.mark.parametrize("kind", ["xl", "melodi"])
def test_models_take_a_swiglu_feed_forward_and_round_trip(tmp_path, kind):
    model = MemoryLM.from_preset(
        "tiny",
        kind=kind,
        activation="swiglu",
        hidden_dim=16,
        num_heads=2,
        head_dim=8,
        intermediate_dim=24,
        window_length=8,
    )
    tokens = np.random.default_rng(0).integers(3, 259, (2, 16)).astype("int32")
    inputs = {"tokens": tokens, "reset": np.array([True, True])}
    expected, _ = model(inputs)
    path = os.path.join(tmp_path, "swiglu.keras")
    model.save(path)
    again, _ = keras.saving.load_model(path)(inputs)
    np.testing.assert_allclose(to_numpy(again), to_numpy(expected), atol=1e-5)
