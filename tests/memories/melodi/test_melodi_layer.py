import keras
import numpy as np
import pytest

from keras_memory.layers import MelodiLayer, TokenMixing
from tests.backend_utils import input_gradient
from tests.conftest import to_numpy

W, U, M, HEADS, DIM, HIDDEN = 4, 2, 3, 2, 4, 8
LONG, INCREMENT = 10, 3


def make_layer(**kwargs):
    options = dict(
        summary_size=U,
        short_term_memory_size=M,
        long_term_memory_size=LONG,
        long_term_increment=INCREMENT,
    )
    return MelodiLayer(HEADS, DIM, W, intermediate_dim=16, **{**options, **kwargs})


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def packed(windows, seed=0, summary=U):
    return randn(2, windows * (W + summary), HIDDEN, seed=seed)


def rows(*flags):
    return np.array(flags, dtype=bool)


def context_at(window, j):
    """Index of context token `j` of `window` in a packed input."""
    return window * W + j


def summary_at(windows, window, j, summary=U):
    """Index of summary token `j` of `window` in a packed input of `windows` windows."""
    return windows * W + window * summary + j


def moved(gradient, index):
    return np.abs(gradient[:, index]).max() > 0


def test_token_mixing_is_a_linear_map_along_the_sequence():
    mixing = TokenMixing(U)
    context, summary = randn(2, W, HIDDEN), randn(2, U, HIDDEN, seed=1)
    got = to_numpy(mixing(context, summary))
    tokens = np.concatenate(
        [
            to_numpy(mixing.context_norm(context)),
            to_numpy(mixing.summary_norm(summary)),
        ],
        axis=1,
    )
    kernel, bias = to_numpy(mixing.mixing_kernel), to_numpy(mixing.mixing_bias)
    expected = np.einsum("bsd,so->bod", tokens, kernel) + bias[None, :, None] + summary
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    raw = TokenMixing(5, use_norm_and_residual=False)
    got = to_numpy(raw(context, summary))
    kernel = to_numpy(raw.mixing_kernel)
    expected = np.einsum("bsd,so->bod", np.concatenate([context, summary], 1), kernel)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="output_size"):
        TokenMixing(U + 1)(context, summary)


def test_context_tokens_never_see_the_summary_tokens_of_their_window():
    layer = make_layer()
    x = packed(3)
    for window in range(3):
        gradient = input_gradient(
            lambda v: layer(v, reset=rows(True, True))[0], x, context_at(window, W - 1)
        )
        for later in range(window, 3):
            for j in range(U):
                assert not moved(gradient, summary_at(3, later, j)), (window, later, j)
        # Every earlier context token of the window reaches it...
        for j in range(W - 1):
            assert moved(gradient, context_at(window, j))
        # ...and earlier windows' summaries through the short-term memory.
        if window:
            assert moved(gradient, summary_at(3, window - 1, 0))


def test_summary_tokens_see_the_whole_window_and_earlier_summaries_only():
    # Without short-term memory there is no token mixing, so each output
    # summary token is that token's own attention + feed-forward result.
    layer = make_layer(short_term_memory_size=0, long_term_memory_size=0)
    x = packed(2)
    gradient = input_gradient(lambda v: layer(v, reset=rows(True, True))[0], x, summary_at(2, 1, 1))
    assert all(moved(gradient, context_at(1, j)) for j in range(W))
    assert moved(gradient, summary_at(2, 1, 0)) and moved(gradient, summary_at(2, 1, 1))
    # No memory: nothing from the other window.
    assert not any(moved(gradient, context_at(0, j)) for j in range(W))
    first = input_gradient(lambda v: layer(v, reset=rows(True, True))[0], x, summary_at(2, 1, 0))
    assert not moved(first, summary_at(2, 1, 1))


def test_no_window_depends_on_a_later_window():
    layer = make_layer()
    x = packed(3)
    for window in range(3):
        for index in (context_at(window, W - 1), summary_at(3, window, U - 1)):
            gradient = input_gradient(lambda v: layer(v, reset=rows(True, True))[0], x, index)
            for later in range(window + 1, 3):
                assert not any(moved(gradient, context_at(later, j)) for j in range(W))
                assert not any(moved(gradient, summary_at(3, later, j)) for j in range(U))


def test_the_long_term_fifo_shifts_by_the_increment_and_forgets_the_oldest():
    layer = make_layer()
    _, first = layer(packed(2), reset=rows(True, True))
    # Two windows: 2 * INCREMENT of LONG slots filled, the newest at the end.
    np.testing.assert_array_equal(
        to_numpy(first["long_valid"]).sum(axis=1), [2 * INCREMENT, 2 * INCREMENT]
    )
    assert not to_numpy(first["long_valid"])[:, : LONG - 2 * INCREMENT].any()
    _, second = layer(packed(2, seed=1), state=first, reset=rows(False, False))
    before, after = to_numpy(first["long_memory"]), to_numpy(second["long_memory"])
    shift = 2 * INCREMENT
    np.testing.assert_array_equal(after[:, : LONG - shift], before[:, shift:])
    # Four windows wrote 12 tokens into 10 slots: the 2 oldest are gone.
    assert to_numpy(second["long_valid"]).all()
    assert not np.allclose(after[:, -shift:], before[:, -shift:])


def test_a_short_term_memory_links_windows_and_reset_clears_it_per_row():
    layer = make_layer()
    x = packed(2)
    _, state = layer(x, reset=rows(True, True))
    fresh, _ = layer(x, reset=rows(True, True))
    mixed, _ = layer(x, state=state, reset=rows(False, True))
    np.testing.assert_allclose(to_numpy(mixed)[1], to_numpy(fresh)[1], atol=1e-6)
    assert np.abs(to_numpy(mixed)[0] - to_numpy(fresh)[0]).max() > 1e-4


def test_two_segments_equal_one_and_stateful_equals_functional():
    layer = make_layer()
    x = packed(4)
    whole, whole_state = layer(x, reset=rows(True, True))
    # Repack the 4 windows as two segments of 2.
    halves = []
    for part in range(2):
        windows = range(2 * part, 2 * part + 2)
        halves.append(
            np.concatenate(
                [x[:, context_at(k, 0) : context_at(k, W)] for k in windows]
                + [x[:, summary_at(4, k, 0) : summary_at(4, k, U)] for k in windows],
                axis=1,
            )
        )
    first, state = layer(halves[0], reset=rows(True, True))
    second, state = layer(halves[1], state=state, reset=rows(False, False))
    whole = to_numpy(whole)
    first, second = to_numpy(first), to_numpy(second)
    np.testing.assert_allclose(first[:, : 2 * W], whole[:, : 2 * W], atol=1e-5)
    np.testing.assert_allclose(second[:, : 2 * W], whole[:, 2 * W : 4 * W], atol=1e-5)
    np.testing.assert_allclose(second[:, 2 * W :], whole[:, 4 * W + 2 * U :], atol=1e-5)
    for name in state:
        np.testing.assert_allclose(to_numpy(state[name]), to_numpy(whole_state[name]), atol=1e-5)

    stateful = make_layer(stateful=True)
    stateful.build(halves[0].shape)
    for target, source in zip(stateful.trainable_weights, layer.trainable_weights):
        target.assign(source)
    got = stateful(halves[0], reset=rows(True, True))
    np.testing.assert_allclose(to_numpy(got), first, atol=1e-5)
    for name, value in stateful.read_state().items():
        np.testing.assert_allclose(
            to_numpy(value), to_numpy(layer(halves[0], reset=rows(True, True))[1][name]), atol=1e-5
        )


def test_gates_start_near_one_half_and_every_part_learns():
    layer = make_layer()
    layer.build(packed(2).shape)
    gate = 1 / (1 + np.exp(-to_numpy(layer.long_term_gate)))
    assert gate.shape == (HEADS, DIM)
    assert np.all((gate > 0.35) & (gate < 0.65)), gate
    assert abs(gate.mean() - 0.5) < 0.1

    inputs = keras.Input(batch_shape=(2, 3 * (W + U), HIDDEN))
    outputs, _ = make_layer()(inputs, reset=keras.ops.zeros((2,), "bool"))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = packed(3)
    before = {w.path: to_numpy(w).copy() for w in model.trainable_weights}
    model.train_on_batch(x, packed(3, seed=1))
    frozen = [
        w.path for w in model.trainable_weights if np.array_equal(to_numpy(w), before[w.path])
    ]
    assert not frozen, frozen


def test_config_round_trip_and_bad_arguments():
    layer = make_layer(dropout=0.1, use_position_bias=False)
    clone = MelodiLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="summary_size"):
        make_layer(summary_size=0)
    with pytest.raises(ValueError, match="long_term_increment"):
        make_layer(long_term_increment=LONG + 1)
    with pytest.raises(ValueError, match=r"n \* \(window_length \+ summary_size\)"):
        make_layer()(randn(2, 2 * W, HIDDEN))
    with pytest.raises(ValueError, match="short_memory"):
        layer = make_layer()
        layer(packed(1), state={"short_memory": randn(2, M, HIDDEN)})
