import os

import keras
import keras_hub
import numpy as np
import pytest

from keras_memory.data import ByteTokenizer, SegmentStream
from keras_memory.models import RetrofitLM
from tests.conftest import to_numpy

W = 8
SEGMENT = 2 * W
SIZES = dict(
    vocabulary_size=259,
    num_layers=3,
    num_heads=2,
    hidden_dim=16,
    intermediate_dim=32,
    dropout=0.0,
    max_sequence_length=64,
)
BACKBONES = {"gpt2": keras_hub.models.GPT2Backbone, "opt": keras_hub.models.OPTBackbone}


def retrofit(architecture="gpt2", stateful=False, **kwargs):
    backbone = BACKBONES[architecture](**SIZES)
    options = dict(memory_size=4 * SEGMENT, num_neighbors=4, window_length=W)
    return RetrofitLM(backbone, stateful=stateful, **{**options, **kwargs})


def tokens(batch, length=SEGMENT, seed=0):
    return np.random.default_rng(seed).integers(3, 259, size=(batch, length)).astype("int32")


def rows(*flags):
    return np.array(flags, dtype=bool)


def backbone_logits(backbone, ids):
    hidden = backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)})
    return to_numpy(backbone.token_embedding(hidden, reverse=True))


def randomize_memory_output(model):
    kernel = model.memory_attention.output_projection.kernel
    kernel.assign(np.random.default_rng(5).normal(size=kernel.shape).astype("float32"))


@pytest.mark.parametrize("architecture", ["gpt2", "opt"])
def test_untrained_memory_block_leaves_the_backbone_unchanged(architecture):
    model = retrofit(architecture)
    state = None
    for step in range(3):  # memory filled with earlier segments changes nothing yet
        ids = tokens(2, seed=step)
        logits, state = model({"tokens": ids, "reset": rows(step == 0, step == 0)}, state=state)
        np.testing.assert_allclose(
            to_numpy(logits), backbone_logits(model.backbone, ids), atol=2e-5
        )
    assert np.asarray(to_numpy(state["memory_valid"])).sum() == 2 * 3 * SEGMENT


def test_memory_carries_the_document_across_segments_and_reset_forgets_it():
    model = retrofit()
    first = {"tokens": tokens(2, seed=1), "reset": rows(True, True)}
    model(first)
    randomize_memory_output(model)
    later = tokens(2, seed=2)
    _, state_a = model(first)
    _, state_b = model({"tokens": tokens(2, seed=3), "reset": rows(True, True)})
    # Row 0 starts a new document, row 1 continues the previous segment.
    continuing = {"tokens": later, "reset": rows(True, False)}
    logits_a, _ = model(continuing, state=state_a)
    logits_b, _ = model(continuing, state=state_b)
    fresh, _ = model({"tokens": later, "reset": rows(True, True)})
    logits_a, logits_b, fresh = to_numpy(logits_a), to_numpy(logits_b), to_numpy(fresh)
    np.testing.assert_allclose(logits_a[0], fresh[0], atol=2e-5)
    np.testing.assert_allclose(logits_b[0], fresh[0], atol=2e-5)
    assert np.abs(logits_a[1] - logits_b[1]).max() > 1e-3
    assert np.abs(logits_a[1] - fresh[1]).max() > 1e-3


@pytest.mark.parametrize("stateful", [False, True])
def test_save_load_round_trip(tmp_path, stateful):
    model = retrofit(stateful=stateful)
    x = {"tokens": tokens(2, seed=1), "reset": rows(True, True)}
    model(x)
    randomize_memory_output(model)
    y = {"tokens": tokens(2, seed=2), "reset": rows(False, True)}
    path = os.path.join(tmp_path, "retrofit.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RetrofitLM) and loaded.memory_layer == model.memory_layer
    if stateful:  # the memory comes back with the weights
        np.testing.assert_allclose(to_numpy(loaded(y)), to_numpy(model(y)), atol=1e-5)
    else:
        _, state = model(x)
        expected, _ = model(y, state=state)
        got, _ = loaded(y, state=state)
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-5)


def test_from_preset_loads_the_backbone_weights(tmp_path):
    backbone = keras_hub.models.GPT2Backbone(**SIZES)
    preset = os.path.join(tmp_path, "gpt2_preset")
    backbone.save_to_preset(preset)
    options = dict(memory_size=64, num_neighbors=4, window_length=W)
    # Without a tokenizer in the preset the padding id must be given.
    with pytest.raises(ValueError, match="pass `pad_token_id`"):
        RetrofitLM.from_preset(preset, **options)
    model = RetrofitLM.from_preset(preset, pad_token_id=0, **options)
    assert model.backbone.num_layers == SIZES["num_layers"]
    ids = tokens(2)
    logits, _ = model({"tokens": ids, "reset": rows(True, True)})
    np.testing.assert_allclose(to_numpy(logits), backbone_logits(backbone, ids), atol=2e-5)


def make_stream():
    rng = np.random.default_rng(0)
    tokenizer = ByteTokenizer()
    docs = [tokenizer.encode("".join(rng.choice(list("abcd "), size=n))) for n in (70, 40, 50, 60)]
    return SegmentStream(docs, batch_size=2, segment_length=SEGMENT, seed=0)


def test_fine_tuning_with_a_frozen_backbone_trains_only_the_memory_block():
    model = retrofit(stateful=True)
    model.backbone.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.build_from_data(make_stream())
    before = [to_numpy(w).copy() for w in model.backbone.weights]
    history = model.fit(make_stream(), epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    for weight, old in zip(model.backbone.weights, before):
        np.testing.assert_array_equal(to_numpy(weight), old)
    kernel = to_numpy(model.memory_attention.output_projection.kernel)
    assert np.abs(kernel).max() > 0  # started at zero
    assert to_numpy(model.memory_attention.read_state()["memory_valid"]).sum() > 0


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="GPT2Backbone or OPTBackbone"):
        RetrofitLM(keras.layers.Dense(4))
    with pytest.raises(ValueError, match="memory_layer"):
        retrofit(memory_layer=3)
    model = retrofit()
    too_long = tokens(1, length=SIZES["max_sequence_length"] + SEGMENT)
    with pytest.raises(ValueError, match="max_sequence_length"):
        model({"tokens": too_long, "reset": rows(True)})
    with pytest.raises(ValueError, match="vocab_size"):
        model({"tokens": np.full((1, SEGMENT), 300, "int32"), "reset": rows(True)})


def test_a_frozen_backbone_stays_frozen_after_loading(tmp_path):
    model = retrofit()
    model.backbone.trainable = False
    model({"tokens": tokens(2), "reset": rows(True, True)})
    trainable = len(model.trainable_weights)
    assert trainable == len(model.memory_norm.weights) + len(
        model.memory_attention.trainable_weights
    )
    path = os.path.join(tmp_path, "frozen.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert not loaded.backbone.trainable
    assert len(loaded.trainable_weights) == trainable


@pytest.mark.parametrize("num_layers, expected", [(12, 8), (3, 1), (2, 0), (1, 0)])
def test_default_memory_block_sits_below_the_top_layer(num_layers, expected):
    # Two thirds up as in meliad, but never after the last decoder layer,
    # where nothing but the final norm would read what the memory returned.
    backbone = keras_hub.models.GPT2Backbone(**{**SIZES, "num_layers": num_layers})
    model = RetrofitLM(backbone, memory_size=4 * SEGMENT, num_neighbors=4, window_length=W)
    assert model.memory_layer == expected
