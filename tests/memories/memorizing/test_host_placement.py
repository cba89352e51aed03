"""KNNAttention(memory_placement="host"): the device ring's behaviour, its memory in host RAM.

The host placement must read and write exactly as the device ring does
(reset, write after read, per-row forgetting, the ring's slots), so most
behaviours are checked for both placements and the two compared output for
output. Past 2,048 entries a row's ScaNN index is a tree: its recall is
checked against exact top-k, and a saved model must restore the trees, not
rebuild them. Then the steps each backend compiles: XLA on TensorFlow (not
possible: Keras falls back), tf.distribute replicas (one row store per
global row), `jax.jit` (one host call per step, gradients to the queries).
"""

import contextlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_memory.backend.host_memory import wait_for_host_calls
from keras_memory.backend.scann_index import SCANN_BRUTE_FORCE_BELOW
from keras_memory.layers import KNNAttention
from keras_memory.models import MemoryLM
from keras_memory.ops import exact_top_k
from tests.conftest import to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BACKEND = keras.backend.backend()
B, H, D, W, S, HIDDEN = 2, 2, 4, 4, 8, 8
PLACEMENTS = ("device", "host")
# What a host call that raises looks like from the layer: jax wraps the
# callback's error in a JaxRuntimeError (a RuntimeError), the others re-raise it.
HOST_CALL_ERROR = RuntimeError if BACKEND == "jax" else ValueError


def make_layer(placement, memory_size=32, num_neighbors=4, batch=B, **kwargs):
    layer = KNNAttention(
        H,
        D,
        W,
        memory_size=memory_size,
        num_neighbors=num_neighbors,
        memory_placement=placement,
        **kwargs,
    )
    layer.build((batch, None, HIDDEN))
    return layer


def twin(layer, placement, **kwargs):
    """A layer of `placement` with `layer`'s options and weights, and an empty memory."""
    other = make_layer(
        placement, memory_size=layer.memory_size, num_neighbors=layer.num_neighbors, **kwargs
    )
    copy_weights(layer, other)
    return other


def copy_weights(source, target):
    """Assigns `source`'s trainable weights to `target` (their states may differ)."""
    for target_weight, source_weight in zip(
        target.trainable_weights, source.trainable_weights, strict=True
    ):
        target_weight.assign(to_numpy(source_weight))  # a copy: jax donates buffers


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def starts(*flags):
    return np.array(flags, dtype=bool)


def open_gate(layer):
    """Gate -> 1: the output is the memory attention alone."""
    layer.memory_gate.assign(np.full(H, 100.0, "float32"))


def entries(layer, state, row):
    """Valid memory entries of `row`, wherever the memory lives."""
    if layer.host_memory is not None:
        return layer.host_memory.num_entries(row)
    return int(to_numpy(state["memory_valid"])[row].sum())


# --- The device ring's behaviour, for both placements -------------------------------------


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_a_segment_never_retrieves_its_own_keys(placement):
    layer = make_layer(placement)
    open_gate(layer)
    x = randn(B, S, HIDDEN)
    y, state = layer(x, reset=starts(True, True))
    # An empty memory gives nothing: the segment's keys are written after retrieval.
    np.testing.assert_allclose(to_numpy(y), 0.0, atol=1e-6)
    assert entries(layer, state, 0) == entries(layer, state, 1) == S
    # The same segment again finds the first one's entries.
    y, state = layer(x, state=state, reset=starts(False, False))
    assert np.all(np.abs(to_numpy(y)).max(axis=-1) > 1e-4)
    assert entries(layer, state, 0) == 2 * S


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_a_reset_row_forgets_only_its_own_memory(placement):
    resetting = make_layer(placement)
    open_gate(resetting)
    continuing = twin(resetting, placement)
    states = [None, None]
    for i in range(2):
        x = randn(B, S, HIDDEN, seed=i)
        for j, layer in enumerate((resetting, continuing)):
            _, states[j] = layer(x, state=states[j], reset=starts(i == 0, i == 0))
    x = randn(B, S, HIDDEN, seed=2)
    y, state = resetting(x, state=states[0], reset=starts(True, False))
    expected, _ = continuing(x, state=states[1], reset=starts(False, False))
    y, expected = to_numpy(y), to_numpy(expected)
    np.testing.assert_allclose(y[0], 0.0, atol=1e-6)  # row 0's document starts here
    np.testing.assert_allclose(y[1], expected[1], atol=1e-6)  # row 1 is unaffected
    assert np.abs(expected[0]).max() > 1e-3
    assert entries(resetting, state, 0) == S and entries(resetting, state, 1) == 3 * S


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_a_row_reset_mid_sequence_reads_its_new_document_alone(placement):
    # Row 0 starts a new document at segment 3 while row 1 reads on. From
    # then on row 0 must read exactly what a fresh layer reading only the new
    # document reads, wherever the shared ring pointer stands (16 entries:
    # the ring has wrapped).
    layer = make_layer(placement, memory_size=16)
    fresh = twin(layer, placement)
    segments = [randn(B, S, HIDDEN, seed=10 + i) for i in range(6)]
    state = fresh_state = None
    for i, x in enumerate(segments):
        y, state = layer(x, state=state, reset=starts(i in (0, 3), i == 0))
        if i >= 3:
            expected, fresh_state = fresh(x, state=fresh_state, reset=starts(i == 3, i == 3))
            np.testing.assert_allclose(to_numpy(y)[0], to_numpy(expected)[0], atol=1e-6)
    assert entries(layer, state, 0) == entries(layer, state, 1) == 16


@pytest.mark.parametrize("stateful", [False, True], ids=["functional", "stateful"])
def test_host_and_device_give_the_same_outputs_with_the_same_weights(stateful):
    # 32 entries, 8 per segment: the ring wraps twice; rows reset at different
    # segments. Below 2,048 entries ScaNN scores by brute force: the same k
    # entries as the device's exact top-k, so the same outputs.
    device = make_layer("device")
    host = twin(device, "host", stateful=stateful)
    device_state = host_state = None
    for i in range(10):
        x = randn(B, S, HIDDEN, seed=20 + i)
        reset = starts(i in (0, 4), i in (0, 7))
        expected, device_state = device(x, state=device_state, reset=reset)
        if stateful:
            y = host(x, reset=reset)
        else:
            y, host_state = host(x, state=host_state, reset=reset)
        np.testing.assert_allclose(to_numpy(y), to_numpy(expected), rtol=0, atol=1e-6)
    # The host store holds the device ring's entries, slot for slot (the
    # reset rows' entries are invalid, not all overwritten yet).
    arrays = host.host_memory.to_arrays()
    for row in range(B):
        valid = to_numpy(device_state["memory_valid"])[row] > 0
        np.testing.assert_array_equal(arrays[f"host_row{row}_valid"], valid)
        for name in ("keys", "values"):  # slots a reset left invalid may differ
            np.testing.assert_allclose(
                arrays[f"host_row{row}_{name}"][valid],
                to_numpy(device_state[f"memory_{name}"])[row][valid],
                atol=1e-6,
            )
    state = host.read_state() if stateful else host_state
    assert int(to_numpy(state["memory_pointer"])) == int(to_numpy(device_state["memory_pointer"]))
    assert int(to_numpy(state["memory_step"])) == 10
    assert "memory_keys" not in state  # the device keeps no ring


def lm(placement, stateful=False, **overrides):
    """A small memorizing MemoryLM; one layer (the memory layer) unless overridden."""
    options = dict(
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        head_dim=8,
        intermediate_dim=32,
        window_length=W,
        memory_size=4 * W,
        num_neighbors=4,
    )
    return MemoryLM.from_preset(
        "tiny",
        kind="memorizing",
        stateful=stateful,
        memory_placement=placement,
        **{**options, **overrides},
    )


def tokens(batch, length, seed=0):
    return np.random.default_rng(seed).integers(3, 259, size=(batch, length)).astype("int32")


def test_a_model_with_its_memory_on_the_host_reads_as_on_the_device():
    device, host = lm("device", num_layers=2), lm("host", num_layers=2)
    first = {"tokens": tokens(2, 2 * W), "reset": starts(True, True)}
    device(first)
    host(first)
    host.set_weights(device.get_weights())
    assert host.blocks[-1].attention.host_memory is not None
    device_state = host_state = None
    for i in range(5):
        x = {"tokens": tokens(2, 2 * W, seed=i), "reset": starts(i in (0, 3), i == 0)}
        expected, device_state = device(x, state=device_state)
        got, host_state = host(x, state=host_state)
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), rtol=0, atol=1e-5)


# --- Past the tree threshold: recall, and exact save and restore --------------------------


def test_scann_recall_in_the_layer_past_the_tree_threshold():
    # A planted task. Tokens lie around 32 centres; the query projection is
    # the key projection, so a query is a (normalised) key of the memory's
    # distribution, and half of each segment's tokens repeat the other half
    # of the previous segment (slightly moved): their best match is that token's key.
    heads, head_dim, hidden, length, size, k = 2, 16, 32, 512, 4096, 8
    layer = KNNAttention(
        heads, head_dim, 64, memory_size=size, num_neighbors=k, memory_placement="host"
    )
    layer.build((1, None, hidden))
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((hidden, 3 * heads * head_dim)) / np.sqrt(hidden)
    kernel[:, : heads * head_dim] = kernel[:, heads * head_dim : 2 * heads * head_dim]
    layer.qkv_projection.kernel.assign(kernel.astype("float32"))
    memory = layer.host_memory
    calls = []
    original = memory.lookup_and_write

    def recording(queries, keys, values, reset, step, pointer, *rest):
        found_keys, found_values, found = original(
            queries, keys, values, reset, step, pointer, *rest
        )
        arrays = (np.array(queries), np.array(keys), int(pointer), found_keys, found)
        calls.append(arrays)
        return found_keys, found_values, found

    memory.lookup_and_write = recording
    centres = rng.standard_normal((32, hidden))
    state, previous = None, None
    for _ in range(8):  # 4096 entries after 8 segments
        x = centres[rng.integers(0, 32, (1, length))] + 0.5 * rng.standard_normal(
            (1, length, hidden)
        )
        if previous is not None:  # the previous segment's unplanted half, moved a little
            moved = previous[:, length // 2 :]
            x[:, : length // 2] = moved + 0.01 * rng.standard_normal(moved.shape)
        x = x.astype("float32")
        y, state = layer(x, state=state)
        to_numpy(y)  # jax runs host calls asynchronously: wait for this one
        previous = x
    assert len(calls) == 8
    # The expected neighbours: exact top-k over a ring replayed from the calls.
    ring = np.zeros((1, size, heads, head_dim), np.float32)
    valid = np.zeros((1, size), bool)
    recalls, planted_hits = [], []
    for i, (queries, keys, pointer, found_keys, found) in enumerate(calls):
        if valid.sum() >= SCANN_BRUTE_FORCE_BELOW:
            assert found.all()
            scores, _ = exact_top_k(queries, ring, valid, k)
            kth = to_numpy(scores)[..., -1:]
            got = np.einsum("bqhd,bhqkd->bhqk", queries, found_keys)
            recalls.append(float(np.mean(got >= kth - 1e-6)))
            planted = calls[i - 1][1][:, length // 2 :].transpose(0, 2, 1, 3)
            best = found_keys[:, :, : length // 2, 0]
            planted_hits.append(float(np.mean(np.all(best == planted, axis=-1))))
        ring[:, pointer : pointer + length] = keys
        valid[:, pointer : pointer + length] = True
    assert len(recalls) == 4  # 2048, 2560, 3072 and 3584 entries
    assert min(recalls) >= 0.9, recalls
    assert min(planted_hits) >= 0.98, planted_hits
    assert memory.to_arrays()["host_row0_index_counts"][0] >= SCANN_BRUTE_FORCE_BELOW
    assert memory.stats["builds"] <= 4, memory.stats  # 512, 1024, 2048 (+ at most one)


def test_a_saved_model_continues_exactly_from_its_restored_trees(tmp_path):
    length, size = 512, 4096
    model = lm(
        "host",
        stateful=True,
        num_layers=1,
        window_length=64,
        memory_size=size,
        num_neighbors=8,
    )
    rng = np.random.default_rng(0)

    def segment(first=False):
        return {"tokens": rng.integers(3, 259, (1, length)).astype("int32"), "reset": starts(first)}

    for i in range(5):  # the fifth segment searches a tree built on 2,048 entries
        model.predict_on_batch(segment(i == 0))
    memory = model.blocks[0].attention.host_memory
    assert memory.to_arrays()["host_row0_index_counts"][0] >= SCANN_BRUTE_FORCE_BELOW
    path = os.path.join(tmp_path, "host.keras")
    keras.saving.save_model(model, path)
    loaded = keras.saving.load_model(path)
    restored = loaded.blocks[0].attention.host_memory
    assert restored is not memory and restored.num_entries(0) == 5 * length
    for _ in range(2):  # upserted into the restored tree: no rebuild
        x = segment()
        expected = model.predict_on_batch(x)
        np.testing.assert_array_equal(loaded.predict_on_batch(x), expected)
    assert restored.stats["builds"] == 0 and restored.stats["searches"] == 2, restored.stats
    saved, got = memory.to_arrays(), restored.to_arrays()
    assert sorted(saved) == sorted(got)
    for name in saved:
        np.testing.assert_array_equal(got[name], saved[name], err_msg=name)


# --- State: stale states, reset_state -----------------------------------------------------


def test_a_stale_state_is_refused_and_leaves_the_host_memory_unchanged():
    layer = make_layer("host")
    _, first = layer(randn(B, S, HIDDEN, seed=1), reset=starts(True, True))
    y, second = layer(randn(B, S, HIDDEN, seed=2), state=first)
    to_numpy(y)  # jax runs host calls asynchronously: wait for this one
    before = layer.host_memory.to_arrays()
    with pytest.raises(HOST_CALL_ERROR, match="follows step 2, but the state passed is at step 1"):
        y, _ = layer(randn(B, S, HIDDEN, seed=3), state=first, reset=starts(True, False))
        to_numpy(y)
    # Where JAX ran the refused call asynchronously, the next wait raises its
    # error once more and restarts the chain of host calls: later calls run.
    with contextlib.suppress(HOST_CALL_ERROR):
        wait_for_host_calls()
    after = layer.host_memory.to_arrays()
    assert sorted(after) == sorted(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    # The state the last call returned still reads on, as a device ring would.
    device = twin(layer, "device")
    device_state = None
    for seed in (1, 2):
        _, device_state = device(randn(B, S, HIDDEN, seed=seed), state=device_state)
    x = randn(B, S, HIDDEN, seed=4)
    y, _ = layer(x, state=second)
    expected, _ = device(x, state=device_state)
    np.testing.assert_allclose(to_numpy(y), to_numpy(expected), atol=1e-6)


def test_reset_state_of_a_stateful_layer_clears_the_host_memory():
    layer = make_layer("host", stateful=True)
    open_gate(layer)
    for i in range(3):
        y = layer(randn(B, S, HIDDEN, seed=i), reset=starts(i == 0, i == 0))
    to_numpy(y)  # jax runs host calls asynchronously: wait for the last one
    assert layer.host_memory.num_entries(0) == 3 * S
    layer.reset_state()
    assert layer.host_memory.rows == {}
    assert int(to_numpy(layer.read_state()["memory_step"])) == 0
    # Nothing left to retrieve, even for rows that do not start a document.
    y = layer(randn(B, S, HIDDEN, seed=5), reset=starts(False, False))
    np.testing.assert_allclose(to_numpy(y), 0.0, atol=1e-6)
    assert layer.host_memory.num_entries(0) == S


# --- Bad input ----------------------------------------------------------------------------


def test_bad_placement_arguments_are_refused_naming_them():
    for retrieval in ("exact", "approx", "bucketed"):
        with pytest.raises(ValueError, match="`retrieval` must be 'scann'"):
            KNNAttention(H, D, W, memory_size=32, retrieval=retrieval, memory_placement="host")
    with pytest.raises(ValueError, match=r"`memory_placement` must be one of \('device', 'host'\)"):
        KNNAttention(H, D, W, memory_size=32, memory_placement="gpu")
    with pytest.raises(ValueError, match="`memory_placement`"):
        lm("gpu")
    with pytest.raises(ValueError, match="`retrieval`"):
        lm("host", retrieval="exact")
    layer = KNNAttention(H, D, W, memory_size=32, memory_placement="host")
    assert layer.retrieval == "scann"
    assert KNNAttention(H, D, W, memory_size=32).retrieval == "exact"
    config = layer.get_config()
    assert config["memory_placement"] == "host"
    assert KNNAttention.from_config(config).host_memory is not None


def test_a_memory_too_large_for_ram_is_refused_before_anything_is_written():
    huge = 2**34  # entries per (row, head): terabytes
    message = r"(?s)Layer 'huge'.*GiB of host RAM.*Lower `memory_size`"
    stateful = KNNAttention(
        H, D, W, memory_size=huge, memory_placement="host", stateful=True, name="huge"
    )
    with pytest.raises(ValueError, match=message):
        stateful.build((B, None, HIDDEN))
    assert stateful.host_memory.rows == {} and not stateful.state_variables()
    # A batch unknown at build time: refused at the first call, before the host call.
    functional = KNNAttention(H, D, W, memory_size=huge, memory_placement="host", name="huge")
    functional.build((None, None, HIDDEN))
    with pytest.raises(ValueError, match=message):
        functional(randn(B, S, HIDDEN))
    assert functional.host_memory.rows == {}
    model = lm("host", stateful=True, memory_size=huge)
    with pytest.raises(ValueError, match=r"(?s)GiB of host RAM.*`memory_size`"):
        model({"tokens": tokens(2, 2 * W), "reset": starts(True, True)})
    assert model.blocks[-1].attention.host_memory.rows == {}


# --- Training: each backend's compiled step -----------------------------------------------


def stream_batches(num_steps, batch=2, length=2 * W, seed=0):
    """`(inputs, targets)` of an in-order stream: rows start documents at different steps."""
    rng = np.random.default_rng(seed)
    batches = []
    for step in range(num_steps):
        x = rng.integers(3, 259, (batch, length + 1)).astype("int32")
        reset = starts(step == 0, step in (0, 3))
        batches.append(({"tokens": x[:, :-1], "reset": reset}, x[:, 1:]))
    return batches


def fit_on(model, batches, **compile_options):
    model.compile(optimizer=keras.optimizers.AdamW(3e-3), **compile_options)
    losses = [float(to_numpy(model.train_on_batch(x, y))) for x, y in batches]
    return losses


def test_stateful_training_calls_the_host_once_per_step_and_trains_as_on_the_device():
    batches = stream_batches(5)
    host, device = lm("host", stateful=True), lm("device", stateful=True)
    for model in (host, device):
        model.predict_on_batch(batches[0][0])  # builds the weights
        model.reset_state()
    copy_weights(host, device)
    host_losses, device_losses = fit_on(host, batches), fit_on(device, batches)
    if BACKEND == "jax":
        assert host.jit_compile  # the host call runs inside the jitted train step
    memory = host.blocks[-1].attention.host_memory
    assert {row: memory.rows[row].step for row in memory.rows} == {0: 5, 1: 5}
    assert int(to_numpy(host.blocks[-1].attention.read_state()["memory_step"])) == 5
    # Same retrieved entries, same gradients (to the queries only): same losses.
    np.testing.assert_allclose(host_losses, device_losses, rtol=1e-4)
    assert np.all(np.isfinite(host_losses))


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA fallback of jit_compile=True: TF only")
def test_tensorflow_jit_compile_falls_back_without_xla_and_trains():
    model = lm("host", stateful=True)
    assert not model.blocks[-1].attention.supports_jit
    batches = stream_batches(4)
    model.predict_on_batch(batches[0][0])  # built for batches of two rows
    model.reset_state()
    with pytest.warns(UserWarning, match="jit_compile=True"):
        model.compile(optimizer=keras.optimizers.AdamW(3e-3), jit_compile=True)
    assert model.jit_compile is False
    # Four in-order steps of two rows, the first starting both documents.
    x = {name: np.concatenate([b[0][name] for b in batches]) for name in ("tokens", "reset")}
    y = np.concatenate([b[1] for b in batches])
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    memory = model.blocks[-1].attention.host_memory
    assert sorted(memory.rows) == [0, 1] and memory.rows[0].step == 4


MIRRORED_SCRIPT = """
import json
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from keras_memory.layers import KNNAttention

B, S, HIDDEN, STEPS = 2, 8, 8, 8
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
options = dict(num_heads=2, head_dim=4, window_length=4, memory_size=32, num_neighbors=4)
with strategy.scope():
    layer = KNNAttention(memory_placement="host", **options)
    layer.build((B // 2, None, HIDDEN))
single = KNNAttention(memory_placement="host", **options)
single.build((B, None, HIDDEN))
single.set_weights(layer.get_weights())


def per_replica(value):
    # Replica r reads rows r*b .. (r+1)*b - 1 (b = B // 2); scalars go to both.
    def part(context):
        start = context.replica_id_in_sync_group * (B // 2)
        return tf.nest.map_structure(
            lambda a: tf.constant(a if np.ndim(a) == 0 else a[start : start + B // 2]), value
        )

    return strategy.experimental_distribute_values_from_function(part)


@tf.function
def step(x, state, reset):
    return strategy.run(lambda x, s, r: layer(x, state=s, reset=r), args=(x, state, reset))


rng = np.random.default_rng(0)
state = per_replica({k: np.asarray(v) for k, v in layer.initial_state(B).items()})
single_state, diffs = None, []
for i in range(STEPS):
    x = rng.standard_normal((B, S, HIDDEN)).astype("float32")
    reset = np.array([i == 0, i in (0, 5)])
    y, state = step(per_replica(x), state, per_replica(reset))
    y = np.concatenate([t.numpy() for t in strategy.experimental_local_results(y)])
    expected, single_state = single(x, state=single_state, reset=reset)
    diffs.append(float(np.abs(y - expected.numpy()).max()))
memory = layer.host_memory
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "rows": sorted(memory.rows),
    "row_steps": [memory.rows[r].step for r in sorted(memory.rows)],
    "stats": memory.stats,
    "single_stats": single.host_memory.stats,
    "diffs": diffs,
}))
"""


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute runs on TensorFlow only")
def test_mirrored_replicas_keep_one_row_store_per_global_row():
    # Logical devices must be configured before TensorFlow starts: a fresh process.
    process = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        env={**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": "tensorflow"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    report = json.loads(process.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    # Each replica's row is its global row (0 and 1), never both replicas' row 0.
    assert report["rows"] == [0, 1] and report["row_steps"] == [8, 8]
    # The replicas read as one device reading the whole batch...
    assert max(report["diffs"]) <= 1e-6, report["diffs"]
    # ...and keep their indexes as it does: built at doubling sizes and after
    # resets, updated otherwise, not rebuilt at each of the 13 searches.
    assert report["stats"] == report["single_stats"]
    assert report["stats"]["searches"] == 13
    assert report["stats"]["builds"] < report["stats"]["searches"]


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit and jax.value_and_grad: JAX only")
def test_jax_jit_of_value_and_grad_calls_the_host_once_per_step_and_reaches_the_queries():
    import jax
    import jax.numpy as jnp

    layer = make_layer("host")
    open_gate(layer)  # the output is the memory attention alone
    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    qkv = [id(v) for v in layer.trainable_variables].index(id(layer.qkv_projection.kernel))

    def loss(trainable, x, state, reset):
        (y, new_state), _ = layer.stateless_call(
            trainable, non_trainable, x, state=state, reset=reset
        )
        return jnp.sum(y**2), new_state

    step = jax.jit(jax.value_and_grad(loss, has_aux=True))
    state = layer.initial_state(B)
    memory = layer.host_memory
    for i in range(4):
        (value, state), gradients = step(
            trainable, randn(B, S, HIDDEN, seed=i), state, starts(i == 0, i == 0)
        )
        jax.block_until_ready((value, state, gradients))
        # One host call per step: every row follows the step count exactly
        # (a second call in a step would also be refused as a stale state).
        assert {row: memory.rows[row].step for row in memory.rows} == {0: i + 1, 1: i + 1}
        assert memory.stats["searches"] == 2 * i  # the first step's memory is empty
        kernel = np.asarray(gradients[qkv])  # (hidden, 3 * heads * dim): q | k | v
        queries_part = kernel[:, : H * D]
        keys_and_values = kernel[:, H * D :]
        if i == 0:
            # Nothing retrieved: the (gated-out) local path alone, no gradient.
            assert float(value) < 1e-8 and np.abs(kernel).max() < 1e-6
        else:
            # Through the retrieved entries' scores to the queries; the keys
            # and values went to the host without gradient.
            assert np.abs(queries_part).max() > 1e-4
            assert np.abs(keys_and_values).max() < 1e-6 * np.abs(queries_part).max()
    assert memory.num_entries(0) == 4 * S


# --- Generation ---------------------------------------------------------------------------


def test_generation_with_a_host_memory_matches_the_device_memory_and_leaves_it_alone():
    # Each new token searches the memory of its segment's start on the host;
    # a complete segment is written once: the device ring's tokens and logits.
    # A stateful model decodes with a functional twin, its own memory untouched.
    device, host = lm("device"), lm("host", stateful=True)
    for i in range(3):
        x = {"tokens": tokens(2, 2 * W, seed=i), "reset": starts(i == 0, i == 0)}
        device(x)
        host.predict_on_batch(x)
    copy_weights(device, host)
    memory = host.blocks[-1].attention.host_memory
    before = memory.to_arrays()
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, 259, n).astype("int32") for n in (11, 3, 17)]
    # 13 new tokens: several windows, segments and turns of the 16-entry ring.
    options = dict(max_new_tokens=13, sampler="greedy", segment_length=2 * W, return_logits=True)
    expected, expected_logits = device.generate(prompts, **options)
    got, got_logits = host.generate(prompts, **options)
    for row in range(len(prompts)):
        np.testing.assert_array_equal(got[row], expected[row])
        np.testing.assert_allclose(got_logits[row], expected_logits[row], rtol=0, atol=1e-4)
    after = memory.to_arrays()
    assert sorted(after) == sorted(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    # The model reads on from its own state.
    host.predict_on_batch({"tokens": tokens(2, 2 * W, seed=3), "reset": starts(False, False)})
    assert memory.rows[0].step == 4
