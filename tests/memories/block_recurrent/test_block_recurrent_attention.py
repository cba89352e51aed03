import keras
import numpy as np
import pytest

from keras_memory.layers import BlockRecurrentAttention
from tests.backend_utils import input_gradient
from tests.conftest import to_numpy

W, HEADS, DIM, HIDDEN, STATES = 4, 2, 8, 16, 3


def make_layer(**kwargs):
    options = dict(num_states=STATES, gate="fixed", variant="skip")
    return BlockRecurrentAttention(HEADS, DIM, W, **{**options, **kwargs})


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def rows(*flags):
    return np.array(flags, dtype=bool)


def some_state(layer, seed=3):
    """A carried state with every entry set, as after an earlier segment."""
    shapes = layer.state_shapes(2)
    state = {
        name: randn(*shape, seed=seed + i) for i, (name, (shape, _)) in enumerate(shapes.items())
    }
    state["valid"] = np.ones(2, "int32")
    state["recurrent_valid"] = np.ones(2, "int32")
    return state


@pytest.mark.parametrize("gate", ["fixed", "lstm"])
@pytest.mark.parametrize("variant", ["skip", "dual", "single"])
def test_a_document_starts_from_the_learned_initial_state(gate, variant):
    layer = make_layer(gate=gate, variant=variant)
    x = randn(2, 2 * W, HIDDEN)
    fresh, fresh_state = layer(x, reset=rows(True, True))
    carried = some_state(layer)
    restarted, _ = layer(x, state=carried, reset=rows(True, True))
    continued, _ = layer(x, state=carried, reset=rows(False, False))
    np.testing.assert_allclose(to_numpy(restarted), to_numpy(fresh), atol=1e-5)
    assert np.abs(to_numpy(continued) - to_numpy(fresh)).max() > 1e-3
    # The state entering the first block is the learned one: handing it in
    # explicitly (with no XL cache) changes nothing.
    explicit = dict(carried)
    explicit["recurrent_state"] = np.repeat(
        to_numpy(layer.initial_recurrent_state)[None], 2, axis=0
    )
    explicit["valid"] = np.zeros(2, "int32")
    given, _ = layer(x, state=explicit, reset=rows(False, False))
    np.testing.assert_allclose(to_numpy(given), to_numpy(fresh), atol=1e-5)
    assert not np.allclose(
        to_numpy(fresh_state["recurrent_state"][0]), explicit["recurrent_state"][0]
    )


def test_tokens_read_the_state_as_it_entered_their_block():
    layer = make_layer()
    x = randn(2, 2 * W, HIDDEN)
    before, state_before = layer(x, reset=rows(True, True))
    kernel = layer.state_output_projection.kernel
    kernel.assign(to_numpy(kernel) + randn(*kernel.shape, seed=9))
    after, state_after = layer(x, reset=rows(True, True))
    before, after = to_numpy(before), to_numpy(after)
    # Block 0 read the initial state, untouched by the update weights...
    np.testing.assert_allclose(after[:, :W], before[:, :W], atol=1e-6)
    # ...block 1 read the state block 0 wrote.
    assert np.abs(after[:, W:] - before[:, W:]).max() > 1e-3
    assert (
        np.abs(
            to_numpy(state_after["recurrent_state"]) - to_numpy(state_before["recurrent_state"])
        ).max()
        > 1e-3
    )


@pytest.mark.parametrize("gate", ["fixed", "lstm"])
def test_a_shut_gate_never_changes_the_state(gate):
    layer = make_layer(gate=gate)
    x = randn(2, 2 * W, HIDDEN)
    layer(x)
    if gate == "fixed":
        layer.attention_gate_bias.assign(np.full(HIDDEN, 40.0, "float32"))
    else:
        for name, bias in (("forget", 40.0), ("input", -40.0)):
            dense = getattr(layer, f"attention_{name}_gate")
            dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
            dense.bias.assign(np.full(HIDDEN, bias, "float32"))
    state = None
    for step in range(3):
        _, state = layer(
            randn(2, 2 * W, HIDDEN, seed=step), state=state, reset=rows(step == 0, step == 0)
        )
    initial = to_numpy(layer.initial_recurrent_state)
    np.testing.assert_allclose(
        to_numpy(state["recurrent_state"]), np.stack([initial] * 2), atol=1e-6
    )


@pytest.mark.parametrize("variant", ["skip", "dual", "single"])
def test_one_segment_of_2w_equals_two_segments_of_w(variant):
    layer = make_layer(variant=variant, gate="lstm")
    x = randn(2, 2 * W, HIDDEN)
    whole, whole_state = layer(x, reset=rows(True, True))
    first, state = layer(x[:, :W], reset=rows(True, True))
    second, state = layer(x[:, W:], state=state, reset=rows(False, False))
    np.testing.assert_allclose(
        to_numpy(whole), np.concatenate([to_numpy(first), to_numpy(second)], 1), atol=1e-5
    )
    for name in whole_state:
        np.testing.assert_allclose(to_numpy(whole_state[name]), to_numpy(state[name]), atol=1e-5)


def test_reset_rows_are_independent():
    layer = make_layer()
    x = randn(2, 2 * W, HIDDEN)
    fresh, _ = layer(x, reset=rows(True, True))
    carried = some_state(layer)
    mixed, mixed_state = layer(x, state=carried, reset=rows(True, False))
    kept, kept_state = layer(x, state=carried, reset=rows(False, False))
    np.testing.assert_allclose(to_numpy(mixed)[0], to_numpy(fresh)[0], atol=1e-5)
    np.testing.assert_allclose(to_numpy(mixed)[1], to_numpy(kept)[1], atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(mixed_state["recurrent_state"])[1],
        to_numpy(kept_state["recurrent_state"])[1],
        atol=1e-5,
    )


def test_no_output_depends_on_a_later_token():
    layer = make_layer(variant="dual")
    x = randn(1, 3 * W, HIDDEN)
    layer(x)
    for t in (0, W - 1, W, 2 * W + 1):
        grad = input_gradient(lambda v: layer(v, reset=rows(True))[0], x, t)
        influence = np.abs(grad[0]).sum(-1)
        assert np.all(influence[t + 1 :] == 0), t
        assert influence[:t].sum() > 0 or t == 0


def test_no_gradient_reaches_the_previous_segment():
    layer = make_layer()
    x1, x2 = randn(1, W, HIDDEN), randn(1, W, HIDDEN, seed=1)

    def second_segment(v):
        _, state = layer(v, reset=rows(True))
        return layer(x2, state=state, reset=rows(False))[0]

    assert np.all(input_gradient(second_segment, x1, 0) == 0)


def build_model(layer, length):
    inputs = keras.Input((length, HIDDEN), batch_size=2)
    model = keras.Model(inputs, layer(inputs, reset=None)[0])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    return model


@pytest.mark.parametrize("gate", ["fixed", "lstm"])
@pytest.mark.parametrize("variant", ["skip", "dual", "single"])
def test_the_recurrence_receives_gradients(gate, variant):
    # A port once computed every block's state from the initial state only,
    # so the state-update weights never trained: they must change here.
    layer = make_layer(gate=gate, variant=variant)
    model = build_model(layer, 2 * W)
    updated = {
        "initial_recurrent_state": layer.initial_recurrent_state,
        "state_position_embedding": layer.state_position_embedding,
        "state_qkv_projection": layer.state_qkv_projection.kernel,
    }
    if variant == "single":
        updated["state_ffn_output"] = layer.state_ffn_output.kernel
    else:
        updated["state_output_projection"] = layer.state_output_projection.kernel
    if gate == "fixed":
        where = "ffn" if variant == "single" else "attention"
        updated["gate"] = getattr(layer, f"{where}_gate_bias")
    else:
        where = "ffn" if variant == "single" else "attention"
        updated["gate"] = getattr(layer, f"{where}_input_gate").kernel
    before = {name: to_numpy(v).copy() for name, v in updated.items()}
    model.train_on_batch(randn(2, 2 * W, HIDDEN), randn(2, 2 * W, HIDDEN, seed=1))
    for name, variable in updated.items():
        assert np.abs(to_numpy(variable) - before[name]).max() > 0, name


def test_stateful_equals_functional():
    functional = make_layer(gate="lstm", variant="dual")
    stateful = make_layer(gate="lstm", variant="dual", stateful=True)
    x = randn(2, 2 * W, HIDDEN)
    functional(x)
    stateful.build(x.shape)
    for target, source in zip(stateful.trainable_weights, functional.trainable_weights):
        target.assign(source)
    state = None
    for step in range(3):
        x = randn(2, 2 * W, HIDDEN, seed=step)
        reset = rows(step == 0, False)
        expected, state = functional(x, state=state, reset=reset)
        np.testing.assert_allclose(
            to_numpy(stateful(x, reset=reset)), to_numpy(expected), atol=1e-5
        )


def test_config_round_trip_and_bad_arguments():
    layer = make_layer(gate="lstm", variant="dual", state_intermediate_dim=12)
    copy = BlockRecurrentAttention.from_config(layer.get_config())
    assert (copy.num_states, copy.gate, copy.variant, copy.state_intermediate_dim) == (
        STATES,
        "lstm",
        "dual",
        12,
    )
    with pytest.raises(ValueError, match="`gate` must be one of"):
        make_layer(gate="gru")
    with pytest.raises(ValueError, match="`variant` must be one of"):
        make_layer(variant="triple")
    with pytest.raises(ValueError, match="`num_states`"):
        make_layer(num_states=0)
    with pytest.raises(ValueError, match="multiple of `window_length`"):
        make_layer()(randn(2, W + 1, HIDDEN))


def test_state_and_memory_dropout_drop_whole_rows_in_training_only():
    layer = make_layer(state_dropout=1.0, memory_dropout=1.0, seed=0)
    x = randn(2, 2 * W, HIDDEN)
    fresh, _ = layer(x, reset=rows(True, True))
    carried = some_state(layer)
    dropped, _ = layer(x, state=carried, reset=rows(False, False), training=True)
    kept, _ = layer(x, state=carried, reset=rows(False, False), training=False)
    plain = make_layer()
    plain(x)
    for target, source in zip(plain.weights, layer.weights):
        target.assign(source)
    expected, _ = plain(x, state=carried, reset=rows(False, False))
    # Dropped entirely in training: a fresh start; untouched at inference.
    np.testing.assert_allclose(to_numpy(dropped), to_numpy(fresh), atol=1e-5)
    np.testing.assert_allclose(to_numpy(kept), to_numpy(expected), atol=1e-5)
    # State dropout alone keeps the XL cache: the learned state, the carried cache.
    state_only = make_layer(state_dropout=1.0, seed=0)
    state_only(x)
    for target, source in zip(state_only.weights, layer.weights):
        target.assign(source)
    no_state = dict(carried, recurrent_valid=np.zeros(2, "int32"))
    got, _ = state_only(x, state=carried, reset=rows(False, False), training=True)
    want, _ = plain(x, state=no_state, reset=rows(False, False))
    np.testing.assert_allclose(to_numpy(got), to_numpy(want), atol=1e-5)
    with pytest.raises(ValueError, match="`state_dropout`"):
        make_layer(state_dropout=1.5)


def test_the_state_reads_the_previous_block_from_the_cache():
    # meliad's state cross-attends to [previous block, current block]; a port
    # read the current block only. Block 0's previous block is the XL cache.
    layer = make_layer()
    x = randn(2, W, HIDDEN)
    layer(x)
    carried = some_state(layer)
    other = dict(carried, keys=randn(*carried["keys"].shape, seed=9))
    first = to_numpy(layer(x, state=carried)[1]["recurrent_state"])
    second = to_numpy(layer(x, state=other)[1]["recurrent_state"])
    assert np.abs(first - second).max() > 1e-4
    # An invalid (reset) cache is not read at all.
    for state in (carried, other):
        state["valid"] = np.zeros(2, "int32")
    first = to_numpy(layer(x, state=carried)[1]["recurrent_state"])
    second = to_numpy(layer(x, state=other)[1]["recurrent_state"])
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_the_learned_scales_reach_the_logits():
    # A port computed its normalised-attention scale and then dropped it, so
    # changing it changed nothing. Here each of the three learned scales moves
    # what it should: the tokens' output, or the state written.
    layer = make_layer()
    x = randn(2, 2 * W, HIDDEN)
    layer(x)

    def run():
        y, state = layer(x, state=some_state(layer))
        return to_numpy(y), to_numpy(state["recurrent_state"])

    for name, moves in (
        ("token_cross_scale", "output"),
        ("state_scale", "state"),
        ("state_cross_scale", "state"),
    ):
        before = run()
        getattr(layer, name).assign(np.full(HEADS, 4.0, "float32"))
        after = run()
        getattr(layer, name).assign(np.ones(HEADS, "float32"))
        changed = np.abs(before[moves == "state"] - after[moves == "state"]).max()
        assert changed > 1e-4, (name, changed)


def test_old_configs_load_and_reading_another_state_is_refused():
    layer = make_layer(rotary="reversed", num_registers=1, compressed_memory_size=4)
    config = layer.get_config()
    assert "read_recurrent_state" not in config
    copy = BlockRecurrentAttention.from_config(dict(config, read_recurrent_state=False))
    assert copy.get_config() == config
    assert not copy.read_recurrent_state
    with pytest.raises(ValueError, match="does not take `read_recurrent_state`"):
        BlockRecurrentAttention.from_config(dict(config, read_recurrent_state=True))
    x = randn(2, 2 * W, HIDDEN)
    y, state = copy(x, reset=rows(True, True))
    assert tuple(y.shape) == x.shape and "compressed_keys" in state


def test_under_mixed_precision_the_state_is_read_in_bfloat16_and_kept_in_float32():
    # The state's attentions multiply bfloat16 heads, as the tokens' do; the
    # state they update, and hand to the next segment, stays float32.
    layer = make_layer(dtype="mixed_bfloat16")
    x = randn(2, 2 * W, HIDDEN)
    layer.build(x.shape)
    _, state = layer(x, state=some_state(layer), reset=rows(False, False))
    keys, values = layer.recurrent_keys_values(state)
    dtypes = {keras.backend.standardize_dtype(t.dtype) for t in (keys, values)}
    assert dtypes == {"bfloat16"}
    assert keras.backend.standardize_dtype(state["recurrent_state"].dtype) == "float32"
    # The same weights in float32 give the same state to bfloat16 precision.
    exact = make_layer()
    exact.build(x.shape)
    exact.set_weights(layer.get_weights())
    _, exact_state = exact(x, state=some_state(exact), reset=rows(False, False))
    got, want = to_numpy(state["recurrent_state"]), to_numpy(exact_state["recurrent_state"])
    np.testing.assert_allclose(got, want, atol=2**-5 * np.abs(want).max())
