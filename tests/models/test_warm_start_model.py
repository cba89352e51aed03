"""`warm_start_model`: a memory added to a trained model starts from its weights."""

import keras
import numpy as np
import pytest

from keras_memory.models import MemoryLM, warm_start_model
from tests.conftest import to_numpy

SIZES = {"num_layers": 2, "window_length": 16, "segment_length": 32}


def built(kind, **options):
    model = MemoryLM.from_preset("tiny", kind=kind, **SIZES, **options)
    model.build({"tokens": (2, 32), "reset": (2,)})
    return model


def read_document(model, tokens):
    """Logits of a document read in two segments, the second after the first's state."""
    first = {"tokens": tokens[:, :32], "reset": np.array([True, True])}
    logits_a, state = model(first)
    second = {"tokens": tokens[:, 32:], "reset": np.array([False, False])}
    logits_b, _ = model(second, state=state)
    return np.concatenate([to_numpy(logits_a), to_numpy(logits_b)], axis=1)


def test_a_memory_added_to_a_trained_xl_model_starts_from_what_it_computes():
    keras.utils.set_random_seed(1)
    xl = built("xl")
    memorizing = built("memorizing", memory_size=64, local_position_bias=True)
    started = warm_start_model(memorizing, xl)
    assert started == {"new": ["block_1/attention_1/memory_gate"], "unused": []}
    tokens = np.random.default_rng(0).integers(3, 259, (2, 64)).astype("int32")
    # With its gate shut, the memory layer is the XL layer it replaced: the
    # same logits. Open, the memory changes them once it holds something.
    memory_layer = memorizing.blocks[1].attention
    memory_layer.memory_gate.assign(np.full(memory_layer.memory_gate.shape, -30.0, "float32"))
    np.testing.assert_allclose(
        read_document(memorizing, tokens), read_document(xl, tokens), atol=1e-4
    )
    memory_layer.memory_gate.assign(np.zeros(memory_layer.memory_gate.shape, "float32"))
    opened = read_document(memorizing, tokens)
    assert np.abs(opened[:, 32:] - read_document(xl, tokens)[:, 32:]).max() > 1e-3


def test_the_copy_is_not_shared_with_the_source():
    xl = built("xl")
    memorizing = built("memorizing", memory_size=64, local_position_bias=True, stateful=True)
    warm_start_model(memorizing, xl)  # a stateful model from a functional one: the same weights
    before = to_numpy(xl.token_embedding.embeddings).copy()
    memorizing.compile(optimizer=keras.optimizers.SGD(1.0))
    tokens = np.random.default_rng(2).integers(3, 259, (2, 32)).astype("int32")
    memorizing.train_on_batch({"tokens": tokens, "reset": np.array([True, True])}, tokens)
    np.testing.assert_array_equal(to_numpy(xl.token_embedding.embeddings), before)
    assert np.abs(to_numpy(memorizing.token_embedding.embeddings) - before).max() > 0


def test_a_loaded_source_starts_the_model_as_the_one_it_was_saved_from(tmp_path):
    # A model loaded from a file names its weights differently (no block names).
    keras.utils.set_random_seed(3)
    xl = built("xl")
    xl.save(str(tmp_path / "xl.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "xl.keras"))
    from_original = built("memorizing", memory_size=64, local_position_bias=True)
    from_file = built("memorizing", memory_size=64, local_position_bias=True)
    warm_start_model(from_original, xl)
    assert warm_start_model(from_file, loaded)["new"] == ["block_1/attention_1/memory_gate"]
    for a, b in zip(from_original.weights, from_file.weights):
        if "memory_gate" not in a.path:
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_what_the_paper_layer_lacks_is_reported_left_behind():
    xl = built("xl")
    paper = built("memorizing", memory_size=64)  # no position bias in the memory layer
    started = warm_start_model(paper, xl)
    assert started["new"] == ["block_1/attention_1/memory_gate"]
    assert started["unused"] == ["block_1/attention_1/position_bias/table"]


def test_models_that_cannot_share_weights_are_refused():
    xl = built("xl")
    wider = MemoryLM.from_preset("tiny", kind="memorizing", memory_size=64, hidden_dim=32, **SIZES)
    wider.build({"tokens": (2, 32), "reset": (2,)})
    with pytest.raises(ValueError, match="differ in size at block_0/attention_0/qkv_projection"):
        warm_start_model(wider, xl)
    deeper = MemoryLM.from_preset(
        "tiny", kind="memorizing", memory_size=64, **{**SIZES, "num_layers": 3}
    )
    deeper.build({"tokens": (2, 32), "reset": (2,)})
    with pytest.raises(ValueError, match="`model` has 3 blocks and `source` 2"):
        warm_start_model(deeper, xl)
    unbuilt = MemoryLM.from_preset("tiny", kind="memorizing", memory_size=64, **SIZES)
    with pytest.raises(ValueError, match="`model` must be a built memory model"):
        warm_start_model(unbuilt, xl)
    with pytest.raises(ValueError, match="`source` must be a built memory model"):
        warm_start_model(xl, np.zeros((3, 3)))
