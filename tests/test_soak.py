"""Soak, short version: a long stream keeps every model's memory state bounded.

`benchmarks/soak.py` streams a 1M-token document and watches cost and host memory; here a tiny
model of each kind reads 100 segments (two rows, the second starting a new document halfway)
through `predict_on_batch`, the compiled step a user streams with, and after every segment its
memory state must keep the shapes and dtypes its layers declare, stay finite and stay within
its bounds: ring-buffer memories never hold more than `memory_size` entries, Melodi's long-term
FIFO never more than `long_term_memory_size`. On JAX and TensorFlow the step is traced once.
Timings and RSS belong to the benchmark, not here.
"""

import keras
import numpy as np
import pytest

from keras_memory.memories import get_kind
from keras_memory.memories.block_recurrent.block_recurrent_attention import BlockRecurrentAttention
from keras_memory.memories.melodi.melodi_layer import MelodiLayer
from keras_memory.models import MODEL_KINDS, PRESETS, MemoryLM

BATCH = 2
SEGMENT = 64  # two windows of the tiny preset
SEGMENTS = 100
MEMORY_SIZE = 4 * SEGMENT  # the ring wraps every 4 segments: 25 times in the stream
NEW_DOCUMENT = 40  # row 1 starts a second document at this segment
# Recurrent states and memories are gated averages of layer outputs: a bound far above what a
# tiny random model reaches (about 10) but far below a state that grows segment by segment.
MAX_ABS = 1e3


def soak_model(kind):
    options = {"memory_size": MEMORY_SIZE} if "memory_size" in get_kind(kind).option_names() else {}
    model = MemoryLM.from_preset("tiny", kind=kind, stateful=True, **options)
    model.build({"tokens": (BATCH, SEGMENT), "reset": (BATCH,)})
    return model


def memory_layer(block):
    return getattr(block, "attention", block)


def count_predict_traces(model):
    """A Python side effect in `predict_step`: it runs once per trace under jit/tf.function."""
    traces = []
    predict_step = model.predict_step

    def counting_predict_step(*args, **kwargs):
        traces.append(1)
        return predict_step(*args, **kwargs)

    model.predict_step = counting_predict_step
    return traces


def check_state(model, segments_read):
    """Asserts a stateful model's memory is whole, finite and bounded after a segment.

    `segments_read[b]`: segments row `b` has read of its current document.
    """
    tiny = PRESETS["tiny"]
    for block in model.blocks:
        layer = memory_layer(block)
        state = {k: keras.ops.convert_to_numpy(v) for k, v in block.read_state().items()}
        spec = block.state_shapes(BATCH)
        assert set(state) == set(spec), block.name
        for name, (shape, dtype) in spec.items():
            value = state[name]
            assert value.shape == tuple(shape), (block.name, name, value.shape)
            assert value.dtype == np.dtype(dtype), (block.name, name, value.dtype)
            if np.issubdtype(value.dtype, np.floating):
                assert np.isfinite(value).all(), (block.name, name)
                assert np.abs(value).max() < MAX_ABS, (block.name, name, np.abs(value).max())
        if "memory_valid" in state:  # KNNAttention / DenseKVAttention's ring buffer
            valid = state["memory_valid"]
            assert set(np.unique(valid)) <= {0, 1}
            entries = np.minimum(segments_read * SEGMENT, layer.memory_size)
            np.testing.assert_array_equal(valid.sum(axis=1), entries)
            assert state["memory_pointer"] == (segments_read[0] * SEGMENT) % layer.memory_size
        if isinstance(layer, MelodiLayer) and layer.long_term_memory_size:
            per_segment = SEGMENT // tiny["window_length"] * layer.long_term_increment
            entries = np.minimum(segments_read * per_segment, layer.long_term_memory_size)
            np.testing.assert_array_equal(state["long_valid"].sum(axis=1), entries)
        if isinstance(layer, BlockRecurrentAttention):
            np.testing.assert_array_equal(state["recurrent_valid"], 1)
        for flag in ("valid", "short_valid"):  # XL caches, Melodi's short-term memory
            if flag in state:
                np.testing.assert_array_equal(state[flag], 1)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_a_long_stream_keeps_the_memory_state_whole_finite_and_bounded(kind):
    model = soak_model(kind)
    traces = count_predict_traces(model)
    rng = np.random.default_rng(0)
    segments_read = np.zeros(BATCH, int)
    for i in range(SEGMENTS):
        reset = np.array([i == 0, i in (0, NEW_DOCUMENT)])
        segments_read = np.where(reset, 1, segments_read + 1)
        tokens = rng.integers(3, model.vocab_size, size=(BATCH, SEGMENT), dtype=np.int32)
        model.predict_on_batch({"tokens": tokens, "reset": reset})
        check_state(model, segments_read)
    if keras.backend.backend() in ("jax", "tensorflow"):
        assert len(traces) == 1, f"the step was traced {len(traces)} times"
