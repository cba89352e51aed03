"""Sharding over many devices: layout maps, data/model parallel losses, checkpoints.

The layout-map checks are plain Python and run on every backend. Training on
a device mesh needs `keras.distribution`, which Keras implements for JAX only,
on 8 simulated CPU devices in a fresh process (JAX fixes its devices at start).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_memory.distribution import STATE_LAYOUTS, layout_map, model_parallel, state_layouts
from keras_memory.layers import XLAttention
from keras_memory.layers.memory_layer import MemoryLayer
from keras_memory.models import MODEL_KINDS, MemoryLM, RetrofitLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ON_JAX = keras.backend.backend() == "jax"
MESH = keras.distribution.DeviceMesh((2, 2), ("data", "heads"), [f"cpu:{i}" for i in range(4)])
BATCH = 2
# Weights the model axis must split: the projections in and out of attention
# and of the feed-forward network, the embedding.
SPLIT = ("qkv_projection/kernel", "output_projection/kernel", "ffn/", "token_embedding/")


def built(kind, **options):
    model = MemoryLM.from_preset("tiny", kind=kind, stateful=True, **options)
    model.build({"tokens": (BATCH, 32), "reset": (BATCH,)})
    return model


def model_options():
    yield "xl_compressed", "xl", {"compressed_memory_size": 8, "compression_rate": 2}
    yield "memorizing_small", "memorizing", {"memory_size": 128}
    for kind in MODEL_KINDS:
        yield kind, kind, {}


def retrofit():
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=259,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=64,
    )
    model = RetrofitLM(backbone, memory_size=32, num_neighbors=4, window_length=8, stateful=True)
    model.build({"tokens": (BATCH, 16), "reset": (BATCH,)})
    return model


@pytest.mark.parametrize(
    "name,kind,options", [*model_options(), ("retrofit", None, {})], ids=lambda v: str(v)
)
def test_layout_map_shards_every_memory_state_with_the_batch(name, kind, options):
    model = retrofit() if name == "retrofit" else built(kind, **options)
    layouts = MemoryLM.get_layout_map(MESH, "heads", "data")
    state_paths = state_layouts(model)
    assert state_paths or kind == "local"
    for variable in model.variables:
        layout = layouts[variable.path]  # raises if two patterns match
        axes = None if layout is None else tuple(layout.axes)
        if variable.path in state_paths:
            assert axes is not None, variable.path
            assert len(axes) == len(variable.shape), (variable.path, axes, variable.shape)
            if variable.path.endswith("state_memory_pointer"):
                assert axes == ()  # one ring position shared by every row
            else:
                assert axes[0] == "data", variable.path  # never replicated
                heads = [i for i, axis in enumerate(axes) if axis == "heads"]
                assert all(variable.shape[i] % 2 == 0 for i in heads)
        elif axes is not None:
            assert len(axes) == len(variable.shape), (variable.path, axes)
            assert "heads" in axes and "data" not in axes, variable.path
        elif variable.trainable and any(part in variable.path for part in SPLIT):
            pytest.fail(f"{variable.path} {variable.shape} is replicated")


def test_layout_map_names_the_mesh_axes():
    with pytest.raises(ValueError, match="model_parallel_dim_name.*'model'"):
        layout_map(MESH)  # MESH calls its axes "data" and "heads"


@pytest.mark.parametrize("size", [2, 0, True, 1.0])
def test_model_parallel_size_must_divide_the_devices(size):
    with pytest.raises(ValueError, match=r"`model_parallel_size` must .* \(3\)"):
        model_parallel(["cpu:0", "cpu:1", "cpu:2"], model_parallel_size=size)


def test_a_state_without_a_layout_is_an_error():
    class Counter(MemoryLayer):
        def state_shapes(self, batch_size):
            return {"count": ((batch_size,), "int32")}

        def build(self, input_shape):
            self.build_state(input_shape[0])

    layer = Counter(stateful=True)
    layer.build((BATCH, 4, 8))
    with pytest.raises(ValueError, match="state_count"):
        state_layouts(layer)


def test_every_state_a_layer_declares_has_a_layout():
    # The state names a new option could add, beyond what the presets build.
    layer = XLAttention(4, 16, window_length=8, compressed_memory_size=4, stateful=True)
    names = {f"state_{name}" for name in layer.state_shapes(BATCH)}
    assert names <= set(STATE_LAYOUTS)


@pytest.fixture(scope="module")
def mesh_report():
    # memorizing also holds an XL cache (block 0); the dense kNN kind shares its state.
    kinds = ["memorizing", "block_recurrent", "melodi"]
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "distributed_jax_checks.py"), *kinds],
        env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


jax_only = pytest.mark.skipif(not ON_JAX, reason="keras.distribution runs on JAX only")


@jax_only
def test_scann_refuses_a_sharded_step_with_a_clear_error(mesh_report):
    message = mesh_report["scann_error"]
    assert message and "retrieval='scann'" in message and "8 devices" in message


@jax_only
def test_a_host_memory_trains_data_parallel_with_one_memory_per_global_row(mesh_report):
    report = mesh_report["host_memory"]
    single, sharded = report["single"], report["data_parallel"]
    np.testing.assert_allclose(sharded["losses"], single["losses"], rtol=1e-5)
    # 8 devices, one row each: rows 0..7 on the host, all at the step the state says.
    assert sharded["rows"] == single["rows"] == list(range(8))
    assert sharded["steps"] == single["steps"] == [3]
    # Rows reset at different steps (batches()): each row keeps the segments since its reset.
    assert sharded["entries"] == single["entries"]
    assert max(single["entries"]) == 3 * 32 and min(single["entries"]) < 3 * 32


@jax_only
def test_a_host_memory_refuses_a_mesh_that_splits_heads(mesh_report):
    message = mesh_report["host_memory"]["model_parallel_error"]
    assert message and "memory_placement='host'" in message and "DataParallel" in message


@jax_only
def test_memory_and_its_scores_never_leave_their_devices(mesh_report):
    # XLA gathered lax.top_k's (batch, heads, queries, memory) operand onto
    # every device before top_k ran per shard (keras_memory.backend.top_k).
    assert mesh_report["memory_gathers"] == []


@jax_only
def test_data_and_model_parallel_losses_equal_the_single_device_loss(mesh_report):
    for kind, entry in mesh_report["kinds"].items():
        runs = [key for key in ("data_parallel", "data_parallel_memory") if key in entry]
        for key in [*runs, "model_parallel"]:
            np.testing.assert_allclose(entry[key], entry["single"], rtol=1e-5, err_msg=kind)
        assert entry["weights_equal"], kind
    assert "data_parallel" in mesh_report["kinds"]["memorizing"]


@jax_only
def test_memory_is_sharded_as_the_layout_map_says(mesh_report):
    for kind, entry in mesh_report["kinds"].items():
        assert entry["shardings"], kind
        for path, sharding in entry["shardings"].items():
            assert sharding["spec"] == sharding["layout"], (kind, path)


@jax_only
def test_memory_survives_a_sharded_checkpoint(mesh_report):
    for kind, entry in mesh_report["kinds"].items():
        assert entry["restored_state_equal"], kind
        assert entry["restored_specs"] == entry["specs"], kind
        # The restored sharded model's next step is the single-device model's.
        np.testing.assert_allclose(*entry["next_loss"], rtol=1e-5, err_msg=kind)


def run_recipe(workdir, devices, steps, *extra):
    args = [
        "--cpu-devices",
        str(devices),
        "--kind",
        "memorizing",
        "--memory-size",
        "256",
        "--segment-length",
        "32",
        "--batch-size",
        "4",
        "--max-documents",
        "30",
        "--checkpoint-every",
        "2",
        "--steps",
        str(steps),
        "--workdir",
        str(workdir),
        *extra,
    ]
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "distributed_jax.py"), *args],
        env={**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.strip().splitlines()]
    return [line["loss"] for line in lines[:-1]], lines[-1]


@jax_only
def test_jax_recipe_resumes_on_another_mesh_as_if_never_stopped(tmp_path):
    whole, _ = run_recipe(tmp_path / "whole", 1, 4)
    # ScaNN cannot run in a sharded step: the recipe falls back to exact.
    first, report = run_recipe(
        tmp_path / "split", 4, 2, "--model-parallel", "2", "--retrieval", "scann"
    )
    assert report["mesh"] == {"batch": 2, "model": 2}
    assert report["state_shardings"]
    resumed, report = run_recipe(tmp_path / "split", 2, 4)
    assert report["resumed_from"] == 2 and report["mesh"] == {"batch": 2, "model": 1}
    np.testing.assert_allclose(resumed, whole, rtol=1e-5)
    np.testing.assert_allclose(first, whole[:2], rtol=1e-5)
