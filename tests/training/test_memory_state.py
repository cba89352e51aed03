import os

import numpy as np
import pytest

from keras_memory.models import MemoryLM
from keras_memory.training import load_memory_state, save_memory_state
from tests.conftest import to_numpy


def test_a_saved_memory_resumes_exactly(tmp_path):
    model = MemoryLM.from_preset(
        "tiny",
        kind="memorizing",
        hidden_dim=16,
        num_layers=2,
        num_heads=2,
        head_dim=8,
        intermediate_dim=32,
        window_length=8,
        memory_size=32,
        num_neighbors=4,
    )
    rng = np.random.default_rng(0)
    segments = [rng.integers(3, 259, size=(2, 16)).astype("int32") for _ in range(3)]
    state = None
    for i, tokens in enumerate(segments[:2]):
        _, state = model({"tokens": tokens, "reset": np.array([i == 0] * 2)}, state=state)
    path = os.path.join(tmp_path, "memory.npz")
    save_memory_state(state, path)
    restored = load_memory_state(path)
    assert [sorted(b) for b in restored] == [sorted(b) for b in state]
    last = {"tokens": segments[2], "reset": np.array([False, False])}
    expected, _ = model(last, state=state)
    got, _ = model(last, state=restored)
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-6)
    assert not any(name.startswith(".tmp") for name in os.listdir(tmp_path))


def test_a_layer_state_round_trips_and_bad_state_is_refused(tmp_path):
    path = os.path.join(tmp_path, "layer.npz")
    state = {"keys": np.ones((1, 2, 3)), "valid": np.array([1], "int32")}
    save_memory_state(state, path)
    restored = load_memory_state(path)
    assert isinstance(restored, dict) and set(restored) == {"keys", "valid"}
    np.testing.assert_array_equal(restored["keys"], state["keys"])
    with pytest.raises(ValueError, match="dict of tensors"):
        save_memory_state([np.ones(3)], path)
