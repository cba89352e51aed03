"""Runs every model kind on 8 simulated CPU devices; prints one JSON report.

JAX fixes its device list when it starts, so `tests/test_distribution.py`
runs this in a fresh process: `python tests/distributed_jax_checks.py KIND...`.
For each kind, the same stateful model (same seed, same batches) trains a
few steps on one device, under `DataParallel`, and on (8, 1) and (4, 2)
meshes of `keras_memory.distribution.model_parallel` (the first kind on all
four, the others on one device and the (4, 2) mesh); then the sharded model
is checkpointed, loaded back under the mesh and run one more step. Last, a
model with ScaNN retrieval is asked to train on the mesh (it must refuse), the
compiled kNN step is searched for collectives that move memory, and a model
with its memory on the host trains data-parallel (one host memory per global
row) and refuses a mesh that splits heads.
"""

import json
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_memory.distribution import model_parallel, state_layouts  # noqa: E402
from keras_memory.layers.memory_layer import memory_layers  # noqa: E402
from keras_memory.models import MemoryLM  # noqa: E402
from keras_memory.training import load_checkpoint, save_checkpoint  # noqa: E402

BATCH, SEGMENT, STEPS = 8, 32, 3
OPTIONS = {"memorizing": {"memory_size": 128}, "memorizing_dense": {"memory_size": 128}}


def batches(seed):
    rng = np.random.default_rng(seed)
    for step in range(STEPS + 1):
        tokens = rng.integers(3, 250, size=(BATCH, SEGMENT + 1)).astype("int32")
        # Rows start documents at different steps: per-row resets must follow
        # their rows onto the devices that hold them.
        reset = (np.arange(BATCH) + step) % 3 == 0 if step else np.ones(BATCH, bool)
        yield {"tokens": tokens[:, :-1], "reset": reset}, tokens[:, 1:]


def spec(variable):
    sharding = variable.value.sharding
    return [None if axis is None else str(axis) for axis in getattr(sharding, "spec", ())]


def train(kind, distribution):
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(7)
    model = MemoryLM.from_preset("tiny", kind=kind, stateful=True, **OPTIONS.get(kind, {}))
    model.build({"tokens": (BATCH, SEGMENT), "reset": (BATCH,)})
    model.compile(optimizer=keras.optimizers.AdamW(1e-2))
    data = list(batches(3))
    losses = [float(model.train_on_batch(x, y)) for x, y in data[:STEPS]]
    return model, losses, data[STEPS]


def state(model):
    return {
        v.path: np.asarray(v.value) for v in model.non_trainable_variables if "state_" in v.path
    }


def main(kinds):
    report = {}
    for kind in kinds:
        entry = {}
        single, entry["single"], last = train(kind, None)
        if kind == kinds[0]:  # each configuration compiles anew: one kind covers them
            entry["data_parallel"] = train(kind, keras.distribution.DataParallel())[1]
            entry["data_parallel_memory"] = train(kind, model_parallel(model_parallel_size=1))[1]
        model, entry["model_parallel"], _ = train(kind, model_parallel(model_parallel_size=2))
        layouts = state_layouts(model)
        entry["shardings"] = {
            v.path: {"spec": spec(v), "layout": list(layouts[v.path])}
            for v in model.non_trainable_variables
            if v.path in layouts
        }
        entry["weights_equal"] = all(
            np.allclose(np.asarray(a.value), np.asarray(b.value), atol=1e-5)
            for a, b in zip(single.trainable_variables, model.trainable_variables)
        )
        with tempfile.TemporaryDirectory() as workdir:
            save_checkpoint(model, workdir, STEPS)
            loaded, _ = load_checkpoint(workdir)
        before = state(model)
        after = state(loaded)
        entry["restored_state_equal"] = len(before) == len(after) and all(
            np.array_equal(before[a], after[b]) for a, b in zip(sorted(before), sorted(after))
        )
        entry["restored_specs"] = sorted(
            json.dumps(spec(v)) for v in loaded.non_trainable_variables if "state_" in v.path
        )
        entry["specs"] = sorted(
            json.dumps(spec(v)) for v in model.non_trainable_variables if "state_" in v.path
        )
        x, y = last
        entry["next_loss"] = [
            float(single.train_on_batch(x, y)),
            float(loaded.train_on_batch(x, y)),
        ]
        report[kind] = entry
    print(
        json.dumps(
            {
                "kinds": report,
                "scann_error": scann_error(),
                "memory_gathers": memory_gathers(),
                "host_memory": host_memory_report(),
            }
        )
    )


def memory_gathers():
    """All-gathers in a sharded kNN step whose shape holds the memory axis.

    Memory and the scores over it must stay on the devices of their rows
    and heads; only activations may cross devices.
    """
    import jax

    keras.distribution.set_distribution(model_parallel(model_parallel_size=2))
    memory_size = 1024  # at 128 entries XLA kept even lax.top_k local
    model = MemoryLM.from_preset("tiny", kind="memorizing", stateful=True, memory_size=memory_size)
    model.build({"tokens": (BATCH, SEGMENT), "reset": (BATCH,)})
    mesh = keras.distribution.distribution().device_mesh.backend_mesh
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    x = jax.device_put(next(batches(3))[0], rows)  # as the trainer shards a batch

    def step(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x)

    text = (
        jax.jit(step)
        .lower(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            x,
        )
        .compile()
        .as_text()
    )
    gathers = [line.strip() for line in text.splitlines() if "all-gather" in line and "= " in line]
    return [line[:200] for line in gathers if f",{memory_size}]" in line.split("=")[1]]


def host_memory_report():
    """A host-memory model on one device and data-parallel over 8: losses and host rows.

    Each device calls the host with its own rows; the host must keep one
    memory per global row (8), each at the step the device state says.
    """
    report = {}
    for name, distribution in (
        ("single", None),
        ("data_parallel", keras.distribution.DataParallel()),
    ):
        keras.distribution.set_distribution(distribution)
        keras.utils.set_random_seed(7)
        model = MemoryLM.from_preset(
            "tiny", kind="memorizing", stateful=True, memory_size=128, memory_placement="host"
        )
        model.build({"tokens": (BATCH, SEGMENT), "reset": (BATCH,)})
        model.compile(optimizer=keras.optimizers.AdamW(1e-2))
        losses = [float(model.train_on_batch(x, y)) for x, y in list(batches(3))[:STEPS]]
        (memory,) = [
            layer.host_memory
            for layer in memory_layers(model)
            if getattr(layer, "host_memory", None) is not None
        ]
        report[name] = {
            "losses": losses,
            "rows": sorted(memory.rows),
            "steps": sorted({row.step for row in memory.rows.values()}),
            "entries": [memory.num_entries(row) for row in sorted(memory.rows)],
        }
    keras.distribution.set_distribution(model_parallel(model_parallel_size=2))
    model = MemoryLM.from_preset(
        "tiny", kind="memorizing", stateful=True, memory_size=128, memory_placement="host"
    )
    model.compile()
    x, y = next(batches(3))
    try:
        model.train_on_batch(x, y)
        report["model_parallel_error"] = None
    except ValueError as error:
        report["model_parallel_error"] = str(error)
    return report


def scann_error():
    """What a ScaNN-retrieval model says when asked to train on the mesh."""
    keras.distribution.set_distribution(model_parallel(model_parallel_size=2))
    model = MemoryLM.from_preset("tiny", kind="memorizing", stateful=True, retrieval="scann")
    model.compile()
    x, y = next(batches(3))
    try:
        model.train_on_batch(x, y)
    except ValueError as error:
        return str(error)
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
