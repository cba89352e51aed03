"""`.keras` files saved before the redesign still load, with their weights and memory."""

import os

import keras
import numpy as np
import pytest

import keras_memory  # noqa: F401 (registers the layers)

LEGACY = os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy")
NAMES = sorted(
    name[: -len(".keras")] for name in os.listdir(LEGACY) if name.endswith(".keras")
)


def second_batch():
    rng = np.random.default_rng(0)
    rng.integers(3, 259, (2, 128))  # the first batch, which the model trained on
    return {"tokens": rng.integers(3, 259, (2, 128)), "reset": np.array([False, True])}


def test_every_kind_has_a_legacy_file():
    assert {"local", "xl", "memorizing", "memorizing_dense", "block_recurrent", "melodi"} <= set(
        NAMES
    )


@pytest.mark.parametrize("name", NAMES)
def test_legacy_file_loads_and_continues_from_its_saved_memory(name):
    expected = np.load(os.path.join(LEGACY, "expected.npz"))[name]
    model = keras.saving.load_model(os.path.join(LEGACY, f"{name}.keras"))
    logits = keras.ops.convert_to_numpy(model(second_batch()))[:, ::16]
    # Saved on JAX: the same weights and memory give the same logits on any backend.
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
