"""Reading the Block-Recurrent state in other layers (meliad's feedback)."""

import keras
import numpy as np
import pytest

from keras_memory.layers import KNNAttention, TransformerBlock, XLAttention
from keras_memory.models import MemoryLM, make_blocks, rebuild_model
from tests.conftest import to_numpy

W, HEADS, DIM, HIDDEN, STATES = 4, 2, 8, 16, 3
VOCAB = 40


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def rows(*flags):
    return np.array(flags, dtype=bool)


def tokens(length, seed=0, batch=2):
    return np.random.default_rng(seed).integers(1, VOCAB, size=(batch, length)).astype("int32")


def feedback_model(feedback=(0,), stateful=False, **overrides):
    """Two layers: the recurrent one on top (1), a reader below it (0)."""
    options = dict(
        vocab_size=VOCAB,
        hidden_dim=HIDDEN,
        num_layers=2,
        num_heads=HEADS,
        head_dim=DIM,
        intermediate_dim=32,
        window_length=W,
        num_states=STATES,
        recurrent_layer=1,
        feedback=feedback,
    )
    return MemoryLM.from_preset(
        "tiny", kind="block_recurrent", stateful=stateful, **{**options, **overrides}
    )


def numpy_l2(x):
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + 1e-6)


def test_a_reader_adds_attention_to_the_given_state_before_its_projection():
    keras.utils.set_random_seed(1)
    reader = XLAttention(HEADS, DIM, W, read_recurrent_state=True)
    plain = XLAttention(HEADS, DIM, W)
    x = randn(2, 2 * W, HIDDEN)
    state_keys = numpy_l2(randn(2, STATES, HEADS, DIM, seed=1))
    state_values = randn(2, STATES, HEADS, DIM, seed=2)
    got, _ = reader(x, reset=rows(True, True), recurrent_kv=(state_keys, state_values))
    plain(x, reset=rows(True, True))
    kernel = to_numpy(reader.output_projection.kernel)
    inner = HEADS * DIM
    plain.qkv_projection.kernel.assign(to_numpy(reader.qkv_projection.kernel))
    plain.position_bias.set_weights(reader.position_bias.get_weights())
    plain.output_projection.kernel.assign(kernel[:inner])
    local, _ = plain(x, reset=rows(True, True))
    # The rest is plain softmax attention of the second queries over the state.
    queries = numpy_l2(
        (x @ to_numpy(reader.recurrent_query_projection.kernel)).reshape(2, 2 * W, HEADS, DIM)
    )
    logits = np.einsum("bqhd,bkhd->bhqk", queries, state_keys)
    logits *= np.abs(to_numpy(reader.recurrent_scale)).reshape(1, -1, 1, 1)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    read = np.einsum("bhqk,bkhd->bqhd", weights, state_values).reshape(2, 2 * W, inner)
    np.testing.assert_allclose(
        to_numpy(got), to_numpy(local) + read @ kernel[inner:], rtol=1e-4, atol=1e-4
    )


def test_a_lower_layer_reaches_beyond_every_window_through_the_state():
    # The recurrent layer's own tokens are cut off from the state (zero output
    # rows for its state read), so any influence of the state on the logits
    # goes through the reader below it. Two layers with window W see back 2W
    # tokens at most: window 3 cannot see window 0 through attention.
    results = {}
    for feedback in ((0,), False):
        keras.utils.set_random_seed(0)
        model = feedback_model(feedback)
        x = tokens(4 * W)
        model({"tokens": x, "reset": rows(True, True)})
        recurrent = model.blocks[1].attention
        kernel = to_numpy(recurrent.output_projection.kernel)
        kernel[HEADS * DIM :] = 0.0
        recurrent.output_projection.kernel.assign(kernel)
        changed = x.copy()
        changed[:, :W] = tokens(W, seed=5)
        before, _ = model({"tokens": x, "reset": rows(True, True)})
        after, _ = model({"tokens": changed, "reset": rows(True, True)})
        results[feedback] = np.abs(to_numpy(after) - to_numpy(before))[:, 3 * W :].max()
    assert results[(0,)] > 1e-4, results
    assert results[False] == 0.0, results


def test_windows_never_see_later_tokens():
    keras.utils.set_random_seed(0)
    model = feedback_model(True)
    x = tokens(4 * W)
    position = 2 * W + 1
    changed = x.copy()
    changed[:, position:] = tokens(4 * W - position, seed=7)
    before, _ = model({"tokens": x, "reset": rows(True, True)})
    after, _ = model({"tokens": changed, "reset": rows(True, True)})
    np.testing.assert_array_equal(to_numpy(after)[:, :position], to_numpy(before)[:, :position])
    assert np.abs(to_numpy(after) - to_numpy(before))[:, position:].max() > 1e-4


def test_one_segment_of_4w_equals_two_of_2w_and_rows_reset_independently():
    keras.utils.set_random_seed(0)
    model = feedback_model(True)
    x = tokens(4 * W)
    whole, _ = model({"tokens": x, "reset": rows(True, True)})
    first, state = model({"tokens": x[:, : 2 * W], "reset": rows(True, True)})
    second, state = model({"tokens": x[:, 2 * W :], "reset": rows(False, False)}, state=state)
    np.testing.assert_allclose(
        to_numpy(whole), np.concatenate([to_numpy(first), to_numpy(second)], 1), atol=1e-5
    )
    # Row 1 starts a document: it equals a fresh start; row 0 keeps its past.
    fresh, _ = model({"tokens": x[:, : 2 * W], "reset": rows(True, True)})
    mixed, _ = model({"tokens": x[:, : 2 * W], "reset": rows(False, True)}, state=state)
    np.testing.assert_allclose(to_numpy(mixed)[1], to_numpy(fresh)[1], atol=1e-5)
    assert np.abs(to_numpy(mixed)[0] - to_numpy(fresh)[0]).max() > 1e-4


def test_gradients_flow_from_window_to_window_inside_a_segment():
    # Only the last window is scored and the recurrent layer's tokens do not
    # read the state, so its update weights learn only if the gradient runs
    # back through the reader into the states written by earlier windows.
    keras.utils.set_random_seed(0)
    model = feedback_model((0,), stateful=True)
    x = tokens(4 * W)
    targets = np.zeros_like(x)
    targets[:, 3 * W :] = tokens(W, seed=3)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    model.predict_on_batch({"tokens": x, "reset": rows(True, True)})
    recurrent = model.blocks[1].attention
    kernel = to_numpy(recurrent.output_projection.kernel)
    kernel[HEADS * DIM :] = 0.0
    recurrent.output_projection.kernel.assign(kernel)
    watched = {
        "state update": recurrent.state_output_projection.kernel,
        "initial state": recurrent.initial_recurrent_state,
        "reader queries": model.blocks[0].attention.recurrent_query_projection.kernel,
    }
    before = {name: to_numpy(v).copy() for name, v in watched.items()}
    model.train_on_batch({"tokens": x, "reset": rows(True, True)}, targets)
    for name, variable in watched.items():
        assert np.abs(to_numpy(variable) - before[name]).max() > 0, name


def test_stateful_equals_functional_and_the_model_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    functional = feedback_model(True)
    x = tokens(2 * W)
    expected, state = functional({"tokens": x, "reset": rows(True, True)})
    stateful = rebuild_model(functional, stateful=True)
    got = stateful.predict_on_batch({"tokens": x, "reset": rows(True, True)})
    np.testing.assert_allclose(got, to_numpy(expected), atol=1e-5)
    expected2, _ = functional({"tokens": x, "reset": rows(False, False)}, state=state)
    got2 = stateful.predict_on_batch({"tokens": x, "reset": rows(False, False)})
    np.testing.assert_allclose(got2, to_numpy(expected2), atol=1e-5)
    path = str(tmp_path / "feedback.keras")
    functional.save(path)
    loaded = keras.saving.load_model(path)
    assert [b.attention.read_recurrent_state for b in loaded.blocks] == [True, False]
    again, _ = loaded({"tokens": x, "reset": rows(False, False)}, state=state)
    np.testing.assert_allclose(to_numpy(again), to_numpy(expected2), atol=1e-5)


def test_several_recurrent_layers_and_negative_indices():
    blocks = make_blocks(
        "block_recurrent",
        num_layers=4,
        num_heads=HEADS,
        head_dim=DIM,
        intermediate_dim=32,
        window_length=W,
        num_states=STATES,
        recurrent_layer=(1, -1),
        feedback=True,
    )
    kinds = [type(b.attention).__name__ for b in blocks]
    assert kinds == ["XLAttention", "BlockRecurrentAttention", "XLAttention"] + [
        "BlockRecurrentAttention"
    ]
    assert [getattr(b.attention, "read_recurrent_state", None) for b in blocks] == [
        True,
        False,
        True,
        False,
    ]
    model = MemoryLM(VOCAB, HIDDEN, blocks)
    x = tokens(2 * W)
    whole, _ = model({"tokens": x, "reset": rows(True, True)})
    first, state = model({"tokens": x[:, :W], "reset": rows(True, True)})
    second, _ = model({"tokens": x[:, W:], "reset": rows(False, False)}, state=state)
    np.testing.assert_allclose(
        to_numpy(whole), np.concatenate([to_numpy(first), to_numpy(second)], 1), atol=1e-5
    )


def test_bad_feedback_settings_name_the_argument():
    reader = XLAttention(HEADS, DIM, W, read_recurrent_state=True)
    x = randn(2, W, HIDDEN)
    with pytest.raises(ValueError, match="recurrent_kv"):
        reader(x)
    bad = (randn(2, STATES, HEADS + 1, DIM), randn(2, STATES, HEADS + 1, DIM))
    with pytest.raises(ValueError, match="recurrent_kv"):
        reader(x, recurrent_kv=bad)
    with pytest.raises(ValueError, match="read_recurrent_state"):
        XLAttention(HEADS, DIM, W)(x, recurrent_kv=bad)
    with pytest.raises(ValueError, match="read_recurrent_state"):
        KNNAttention(HEADS, DIM, W, memory_size=8, num_neighbors=2, read_recurrent_state=True)
    with pytest.raises(ValueError, match="feedback"):
        feedback_model(feedback=(1,))
    with pytest.raises(ValueError, match="feedback"):
        MemoryLM.from_preset("tiny", kind="xl", feedback=True)
    with pytest.raises(ValueError, match="recurrent_layer"):
        feedback_model(recurrent_layer=2)
    with pytest.raises(ValueError, match="no block has a BlockRecurrentAttention"):
        MemoryLM(VOCAB, HIDDEN, [TransformerBlock(reader, intermediate_dim=32)])
