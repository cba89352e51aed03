"""`.keras` files saved before the redesign still load, with their weights and memory."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

import keras_memory  # noqa: F401 (registers the layers)

LEGACY = os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy")
NAMES = sorted(name[: -len(".keras")] for name in os.listdir(LEGACY) if name.endswith(".keras"))


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


def legacy_layer_configs():
    """`(file, class name, config)` of every attention layer in the legacy files."""
    found = []

    def walk(node, name):
        if isinstance(node, dict):
            registered = node.get("registered_name") or ""
            if registered.startswith("keras_memory>") and node["class_name"] in ATTENTION_LAYERS:
                found.append((name, node["class_name"], node["config"]))
            for value in node.values():
                walk(value, name)
        elif isinstance(node, list):
            for value in node:
                walk(value, name)

    for name in NAMES:
        with zipfile.ZipFile(os.path.join(LEGACY, f"{name}.keras")) as archive:
            walk(json.loads(archive.read("config.json")), name)
    return found


ATTENTION_LAYERS = ("XLAttention", "KNNAttention", "DenseKVAttention", "BlockRecurrentAttention")
# The keys each layer's old configs may hold that it no longer takes.
DROPPED = {
    "KNNAttention": {"read_recurrent_state"},
    "BlockRecurrentAttention": {"read_recurrent_state"},
    "DenseKVAttention": {
        "rotary",
        "rotary_base",
        "rotary_scaling",
        "rotary_trained_window",
        "num_registers",
        "read_recurrent_state",
    },
}
# Arguments added since, and the value an old config loads with (the behaviour it was saved with).
ADDED = {
    # Grouped queries: an old config has a key head per query head.
    "XLAttention": {"num_key_value_heads": None},
    "BlockRecurrentAttention": {"num_key_value_heads": None},
    "DenseKVAttention": {"num_key_value_heads": None},
    "KNNAttention": {
        "num_key_value_heads": None,
        "memory_placement": "device",
        # The copy options: off, as meliad's memory layer.
        "use_position_bias": False,
        "num_position_buckets": 32,
        "max_position_distance": 128,
        "smear_keys": False,
        # The read-out options: the paper's gate start and shared scale.
        "memory_gate_bias": 0.0,
        "memory_scale": None,
    },
}


def test_every_legacy_attention_config_loads_as_it_was():
    configs = legacy_layer_configs()
    assert {class_name for _, class_name, _ in configs} == set(ATTENTION_LAYERS)
    for name, class_name, config in configs:
        layer = getattr(keras_memory.layers, class_name).from_config(config)
        new = layer.get_config()
        dropped = DROPPED.get(class_name, set())
        added = ADDED.get(class_name, {})
        assert dropped <= set(config), (name, class_name)
        assert set(new) == (set(config) - dropped) | set(added), (name, class_name)
        for key in new:
            if key in added:
                assert new[key] == added[key], (name, class_name, key)
            elif key not in ("dtype", "kernel_initializer"):
                assert new[key] == config[key], (name, class_name, key)
