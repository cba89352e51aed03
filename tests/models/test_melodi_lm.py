import os

import keras
import numpy as np
import pytest

from keras_memory.data import ByteTokenizer, SegmentStream
from keras_memory.layers import MelodiLayer
from keras_memory.models import MelodiLM, MemoryLM, make_blocks, rebuild_model
from keras_memory.training import memory_footprint
from tests.conftest import to_numpy

W = 8
SMALL = dict(
    hidden_dim=16,
    num_layers=3,
    num_heads=2,
    head_dim=8,
    intermediate_dim=32,
    window_length=W,
    summary_size=2,
    short_term_memory_size=2,
    long_term_memory_size=6,
    long_term_increment=2,
)


def small_melodi(stateful=False, **overrides):
    return MemoryLM.from_preset("tiny", kind="melodi", stateful=stateful, **{**SMALL, **overrides})


def tokens(length, seed=0):
    return np.random.default_rng(seed).integers(3, 259, size=(2, length)).astype("int32")


def starts(*flags):
    return np.array(flags, dtype=bool)


def test_the_melodi_kind_builds_a_melodi_lm_with_one_long_term_layer():
    model = small_melodi()
    assert isinstance(model, MelodiLM)
    assert [b.long_term_memory_size for b in model.blocks] == [0, 6, 0]
    assert all(isinstance(b, MelodiLayer) for b in model.blocks)
    assert [b.long_term_memory_size for b in small_melodi(long_term_layer=-1).blocks] == [0, 0, 6]


def test_two_segments_equal_one_and_rows_reset_independently():
    model = small_melodi()
    x = tokens(4 * W)
    whole, _ = model({"tokens": x, "reset": starts(True, True)})
    first, state = model({"tokens": x[:, : 2 * W], "reset": starts(True, True)})
    second, state = model({"tokens": x[:, 2 * W :], "reset": starts(False, False)}, state=state)
    np.testing.assert_allclose(
        to_numpy(whole), np.concatenate([to_numpy(first), to_numpy(second)], 1), atol=1e-4
    )
    fresh, _ = model({"tokens": x[:, : 2 * W], "reset": starts(True, True)})
    mixed, _ = model({"tokens": x[:, : 2 * W], "reset": starts(False, True)}, state=state)
    np.testing.assert_allclose(to_numpy(mixed)[1], to_numpy(fresh)[1], atol=1e-5)
    assert np.abs(to_numpy(mixed)[0] - to_numpy(fresh)[0]).max() > 1e-4


def test_logits_never_depend_on_later_tokens():
    model = small_melodi()
    x = tokens(3 * W)
    changed = x.copy()
    position = W + 3
    changed[:, position:] = tokens(3 * W - position, seed=4)
    before, _ = model({"tokens": x, "reset": starts(True, True)})
    after, _ = model({"tokens": changed, "reset": starts(True, True)})
    np.testing.assert_array_equal(to_numpy(after)[:, :position], to_numpy(before)[:, :position])


def test_round_trip_and_a_stateful_twin(tmp_path):
    model = small_melodi()
    x = tokens(2 * W)
    expected, state = model({"tokens": x, "reset": starts(True, True)})
    path = os.path.join(tmp_path, "melodi.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, MelodiLM)
    again, _ = loaded({"tokens": x, "reset": starts(True, True)})
    np.testing.assert_allclose(to_numpy(again), to_numpy(expected), atol=1e-5)
    stateful = rebuild_model(model, stateful=True)
    got = stateful.predict_on_batch({"tokens": x, "reset": starts(True, True)})
    np.testing.assert_allclose(got, to_numpy(expected), atol=1e-5)
    expected2, _ = model({"tokens": x, "reset": starts(False, False)}, state=state)
    got2 = stateful.predict_on_batch({"tokens": x, "reset": starts(False, False)})
    np.testing.assert_allclose(got2, to_numpy(expected2), atol=1e-5)


def test_stateful_fit_learns():
    model = small_melodi(stateful=True)
    rng = np.random.default_rng(0)
    documents = [ByteTokenizer().encode("".join(rng.choice(list("abc "), size=40)))] * 2
    stream = SegmentStream(documents, batch_size=2, segment_length=2 * W, seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    losses = model.fit(stream, epochs=3, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_footprint_counts_every_memory_and_melodi_is_far_smaller():
    model = small_melodi()
    model.build({"tokens": (1, 2 * W), "reset": (1,)})
    footprint = memory_footprint(model)
    short = 2 * 16 * 4 + 4  # memory (M, d) float32 + its flag
    long = 6 * 16 * 4 + 6 * 4  # slots (L, d) float32 + a flag per slot
    assert footprint["layers"] == {
        "melodi_0": short,
        "melodi_1": short + long,
        "melodi_2": short,
    }
    assert footprint["total"] == 3 * short + long

    # The paper's comparison at one width (12 layers, window 512): Melodi
    # S128+L64 against the Memorizing Transformer with 64k entries.
    base = dict(
        hidden_dim=32, num_layers=12, num_heads=2, head_dim=16, window_length=512, vocab_size=259
    )
    melodi = MemoryLM.from_preset("melodi_s128_l64", kind="melodi", **base, intermediate_dim=32)
    memorizing = MemoryLM.from_preset(
        "medium_150m", kind="memorizing", memory_size=65536, **base, intermediate_dim=32
    )
    for m in (melodi, memorizing):
        m.build({"tokens": (1, 4096), "reset": (1,)})
    ratio = memory_footprint(melodi)["total"] / memory_footprint(memorizing)["total"]
    assert ratio <= 1 / 8, ratio


def test_bad_blocks_and_segments_are_refused():
    blocks = make_blocks(
        "melodi",
        num_heads=2,
        head_dim=8,
        intermediate_dim=32,
        **{
            k: v
            for k, v in SMALL.items()
            if k not in ("hidden_dim", "num_heads", "head_dim", "intermediate_dim")
        },
    )
    blocks[1] = MelodiLayer(2, 8, W, 32, summary_size=3, short_term_memory_size=3)
    with pytest.raises(ValueError, match="summary_size"):
        MelodiLM(259, 16, blocks)
    with pytest.raises(ValueError, match="window_length"):
        small_melodi()({"tokens": tokens(W + 1), "reset": starts(True, True)})
