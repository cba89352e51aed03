import os

import keras
import numpy as np
import pytest

from keras_memory.data import ByteTokenizer, SegmentStream
from keras_memory.models import MemoryLM, rebuild_model
from tests.conftest import to_numpy

W = 8
SEGMENT = 2 * W
SMALL = dict(
    hidden_dim=16, num_layers=2, num_heads=2, head_dim=8, intermediate_dim=32, window_length=W
)


def memorizing(memory_size, stateful=True):
    return MemoryLM.from_preset(
        "tiny",
        kind="memorizing",
        stateful=stateful,
        memory_size=memory_size,
        num_neighbors=4,
        **SMALL,
    )


def segment(step, reset=False):
    ids = np.random.default_rng(step).integers(3, 259, size=(2, SEGMENT)).astype("int32")
    return {"tokens": ids, "reset": np.array([reset, reset])}


def test_a_model_trained_with_a_small_memory_runs_with_a_larger_one(tmp_path):
    model = memorizing(2 * SEGMENT)
    model(segment(0, reset=True))
    model.reset_state()
    path = os.path.join(tmp_path, "small_memory.keras")
    model.save(path)
    small = keras.saving.load_model(path)
    large = rebuild_model(small, memory_size=8 * SEGMENT)
    knn = large.blocks[1].attention
    assert knn.memory_size == 8 * SEGMENT
    assert tuple(knn.read_state()["memory_keys"].shape)[1] == 8 * SEGMENT
    differences = []
    for step in range(5):
        x = segment(step, reset=step == 0)
        differences.append(np.abs(to_numpy(small(x)) - to_numpy(large(x))).max())
    # Same weights: identical while the small memory has lost nothing, then
    # the large one still holds segments the small one has overwritten.
    np.testing.assert_allclose(differences[:3], 0.0, atol=1e-5)
    assert differences[3] > 1e-4 and differences[4] > 1e-4


def test_fine_tuning_with_a_larger_memory():
    tokenizer = ByteTokenizer()
    rng = np.random.default_rng(0)
    docs = [tokenizer.encode("".join(rng.choice(list("abc "), size=n))) for n in (90, 60, 70)]
    stream = SegmentStream(docs, batch_size=2, segment_length=SEGMENT, seed=0)
    model = memorizing(2 * SEGMENT)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(stream, epochs=1, verbose=0)
    large = rebuild_model(model, memory_size=4 * SEGMENT)
    large.compile(optimizer=keras.optimizers.Adam(3e-3))
    losses = large.fit(stream, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_functional_twin_computes_what_the_stateful_model_computes():
    model = memorizing(4 * SEGMENT)
    model(segment(0, reset=True))
    model.reset_state()
    twin = rebuild_model(model, stateful=False)
    assert not twin.stateful and rebuild_model(twin, stateful=False) is twin
    state = None
    for step in range(3):
        x = segment(step, reset=step == 0)
        logits, state = twin(x, state=state)
        np.testing.assert_allclose(to_numpy(logits), to_numpy(model(x)), atol=1e-5)


def test_bad_memory_size_is_refused():
    model = memorizing(2 * SEGMENT)
    model(segment(0, reset=True))
    with pytest.raises(ValueError, match="memory_size"):
        rebuild_model(model, memory_size=0)


def test_training_the_copy_leaves_the_original_intact():
    # JAX's jitted train step donates the buffers of the variables it
    # updates; a copy sharing the original's buffers would delete them.
    original = MemoryLM.from_preset("tiny", kind="xl", **SMALL)
    x = segment(0, reset=True)
    expected, _ = original(x)
    weights = [to_numpy(w).copy() for w in original.weights]
    copy = rebuild_model(original, stateful=True)
    copy.compile(optimizer=keras.optimizers.SGD(0.1))
    copy.train_on_batch(x, x["tokens"])
    got, _ = original(x)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(expected))
    for before, after in zip(weights, original.weights):
        np.testing.assert_array_equal(to_numpy(after), before)
