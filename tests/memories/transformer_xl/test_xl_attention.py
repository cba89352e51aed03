import keras
import numpy as np
import pytest

from keras_memory.layers import XLAttention
from tests import reference
from tests.backend_utils import input_gradient
from tests.conftest import to_numpy

B, H, D, W, HIDDEN = 2, 2, 4, 4, 8


def make_layer(**kwargs):
    layer = XLAttention(num_heads=H, head_dim=D, window_length=W, **kwargs)
    layer.build((B, None, HIDDEN))
    return layer


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def reference_weights(layer):
    return {
        "qkv": to_numpy(layer.qkv_projection.kernel),
        "out": to_numpy(layer.output_projection.kernel),
        "bias_table": to_numpy(layer.position_bias.table),
        "scale": to_numpy(layer.attention_scale),
    }


def starts(*flags):
    return np.array(flags, dtype=bool)


def test_one_segment_of_2w_equals_two_segments_of_w_with_cache():
    layer = make_layer()
    x = randn(B, 2 * W, HIDDEN)
    whole, whole_state = layer(x, reset=starts(True, True))
    first, state = layer(x[:, :W], reset=starts(True, True))
    second, state = layer(x[:, W:], state=state, reset=starts(False, False))
    np.testing.assert_allclose(
        np.concatenate([to_numpy(first), to_numpy(second)], 1), to_numpy(whole), atol=1e-5
    )
    for name in ("keys", "values", "valid"):
        np.testing.assert_allclose(to_numpy(state[name]), to_numpy(whole_state[name]), atol=1e-6)


@pytest.mark.parametrize("include_self", [False, True])
def test_window_equals_segment_matches_dense_reference_over_cache(include_self):
    layer = make_layer(include_self=include_self)
    weights = reference_weights(layer)
    x1, x2 = randn(B, W, HIDDEN, seed=1), randn(B, W, HIDDEN, seed=2)
    _, state = layer(x1, reset=starts(True, True))
    got, _ = layer(x2, state=state, reset=starts(False, False))
    _, ref_cache = reference.xl_attention(x1, weights, H, D, W, include_self=include_self)
    expected, _ = reference.xl_attention(
        x2, weights, H, D, W, cache=ref_cache, include_self=include_self
    )
    np.testing.assert_allclose(to_numpy(got), expected, atol=1e-5)


def test_no_output_depends_on_a_later_token_or_one_more_than_w_back():
    layer = make_layer(use_cache=False)
    s = 3 * W
    x = randn(1, s, HIDDEN)
    for t in range(s):
        grad = input_gradient(lambda v: layer(v)[0], x, t)
        influence = np.abs(grad[0]).sum(-1)
        assert np.all(influence[t + 1 :] == 0), f"output {t} sees the future"
        assert np.all(influence[: max(t - W, 0)] == 0), f"output {t} sees > W back"
        if t >= 1:
            assert influence[max(t - W, 0)] > 0, f"output {t} misses its window"


def test_include_self_lets_a_token_see_itself_only_within_w():
    layer = make_layer(use_cache=False, include_self=True)
    x = randn(1, 2 * W, HIDDEN)
    t = 2 * W - 1
    influence = np.abs(input_gradient(lambda v: layer(v)[0], x, t)[0]).sum(-1)
    assert influence[t - W + 1] > 0 and np.all(influence[: t - W + 1] == 0)


def test_reset_row_ignores_its_cache_and_other_rows_are_untouched():
    layer = make_layer()
    x = randn(B, 2 * W, HIDDEN)
    state_a = {
        "keys": randn(B, W, H, D, seed=3),
        "values": randn(B, W, H, D, seed=4),
        "valid": np.ones(B, "int32"),
    }
    state_b = {
        "keys": randn(B, W, H, D, seed=5),
        "values": randn(B, W, H, D, seed=6),
        "valid": np.ones(B, "int32"),
    }
    reset = starts(True, False)
    out_a, new_a = layer(x, state=state_a, reset=reset)
    out_b, _ = layer(x, state=state_b, reset=reset)
    fresh, _ = layer(x[:1], reset=starts(True))
    no_reset, _ = layer(x, state=state_a, reset=starts(False, False))
    # Row 0 starts a document: its cache contents do not matter.
    np.testing.assert_allclose(to_numpy(out_a)[0], to_numpy(out_b)[0], atol=1e-6)
    np.testing.assert_allclose(to_numpy(out_a)[0], to_numpy(fresh)[0], atol=1e-6)
    # Row 1 goes on reading its document: exactly as without any reset.
    np.testing.assert_allclose(to_numpy(out_a)[1], to_numpy(no_reset)[1], atol=1e-6)
    assert not np.allclose(to_numpy(out_a)[1], to_numpy(out_b)[1])
    assert to_numpy(new_a["valid"]).tolist() == [1, 1]


def test_cache_carries_no_gradient_to_the_previous_segment():
    layer = make_layer()
    x1, x2 = randn(1, W, HIDDEN, seed=7), randn(1, W, HIDDEN, seed=8)

    def second_segment(first):
        _, state = layer(first, reset=starts(True))
        return layer(x2, state=state, reset=starts(False))[0]

    grad = input_gradient(second_segment, x1, 0)
    np.testing.assert_array_equal(grad, 0.0)


def test_stateful_equals_functional_and_reset_state_clears():
    functional = make_layer()
    stateful = XLAttention(H, D, W, stateful=True)
    stateful.build((B, None, HIDDEN))
    for target, source in zip(stateful.trainable_weights, functional.trainable_weights):
        target.assign(source)
    segments = [randn(B, 2 * W, HIDDEN, seed=s) for s in range(3)]
    resets = [starts(True, True), starts(False, True), starts(False, False)]
    state = None
    for x, reset in zip(segments, resets):
        expected, state = functional(x, state=state, reset=reset)
        got = stateful(x, reset=reset)
        np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-5)
    np.testing.assert_allclose(
        to_numpy(stateful.read_state()["keys"]), to_numpy(state["keys"]), atol=1e-6
    )
    stateful.reset_state()
    assert np.all(to_numpy(stateful.read_state()["keys"]) == 0)
    assert np.all(to_numpy(stateful.read_state()["valid"]) == 0)


def test_config_round_trip():
    layer = make_layer(include_self=True, normalize_keys=False, use_cache=False)
    clone = XLAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build((B, None, HIDDEN))
    clone.set_weights(layer.get_weights())
    x = randn(B, W, HIDDEN)
    np.testing.assert_allclose(to_numpy(clone(x)[0]), to_numpy(layer(x)[0]), atol=1e-6)


def test_bad_inputs_name_the_argument():
    layer = make_layer()
    with pytest.raises(ValueError, match="multiple of `window_length`"):
        layer(randn(B, W + 1, HIDDEN))
    with pytest.raises(ValueError, match="rank 2"):
        layer(randn(B, HIDDEN))
    with pytest.raises(ValueError, match="`reset` of shape"):
        layer(randn(B, W, HIDDEN), reset=np.zeros((B, 1), bool))
    with pytest.raises(ValueError, match=r"state\['keys'\]"):
        layer(
            randn(B, W, HIDDEN),
            state={
                "keys": randn(B, W + 1, H, D),
                "values": randn(B, W, H, D),
                "valid": np.ones(B, "int32"),
            },
        )
    with pytest.raises(ValueError, match="dict with keys"):
        layer(randn(B, W, HIDDEN), state={"keys": randn(B, W, H, D)})
    with pytest.raises(ValueError, match="num_heads"):
        XLAttention(num_heads=0, head_dim=4, window_length=4)


def test_stateful_rejects_other_batch_size_and_keeps_state():
    layer = XLAttention(H, D, W, stateful=True)
    layer.build((B, None, HIDDEN))
    layer(randn(B, W, HIDDEN), reset=starts(True, True))
    before = to_numpy(layer.read_state()["keys"])
    with pytest.raises(ValueError, match="batch size 2"):
        layer(randn(B + 1, W, HIDDEN))
    np.testing.assert_array_equal(to_numpy(layer.read_state()["keys"]), before)
    with pytest.raises(ValueError, match="static batch size"):
        XLAttention(H, D, W, stateful=True).build((None, None, HIDDEN))


def test_mixed_precision_runs_and_keeps_float32_cache():
    layer = XLAttention(H, D, W, dtype="mixed_bfloat16")
    y, state = layer(randn(B, 2 * W, HIDDEN), reset=starts(True, True))
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(state["keys"].dtype) == "float32"


def compressed_layer(**kwargs):
    return make_layer(compressed_memory_size=6, compression_rate=2, **kwargs)


def test_compressed_memory_matches_the_dense_reference():
    layer = compressed_layer()
    x = randn(B, W, HIDDEN)
    state = layer.initial_state(B)
    cache = (reference.l2_normalize(randn(B, W, H, D, seed=1)), randn(B, W, H, D, seed=2))
    memory = (reference.l2_normalize(randn(B, 6, H, D, seed=3)), randn(B, 6, H, D, seed=4))
    state = dict(
        state,
        keys=cache[0],
        values=cache[1],
        valid=np.ones(B, "int32"),
        compressed_keys=memory[0],
        compressed_values=memory[1],
        compressed_valid=np.ones((B, 6), "int32"),
    )
    y, _ = layer(x, state=state, reset=starts(False, False))
    expected, _ = reference.xl_attention(
        x, reference_weights(layer), H, D, W, cache=cache, memory=memory
    )
    np.testing.assert_allclose(to_numpy(y), expected, atol=1e-5)


def test_compressed_memory_holds_the_mean_of_what_left_the_window():
    layer = compressed_layer()
    x1, x2 = randn(B, 2 * W, HIDDEN, seed=1), randn(B, 2 * W, HIDDEN, seed=2)
    _, state = layer(x1, reset=starts(True, True))
    _, state = layer(x2, state=state, reset=starts(False, False))
    # What left the local view: segment 1 entirely (its first block at the end
    # of segment 1, its last block, the cache, at the end of segment 2), then
    # segment 2's first block.
    keys = np.concatenate([to_numpy(layer.project_qkv(x)[1]) for x in (x1, x2)], axis=1)
    left = keys[:, : 3 * W]
    pooled = reference.l2_normalize(left.reshape(B, 3 * W // 2, 2, H, D).mean(2))
    np.testing.assert_allclose(to_numpy(state["compressed_keys"]), pooled, atol=1e-5)
    np.testing.assert_array_equal(to_numpy(state["compressed_valid"]), 1)


def test_compressed_memory_reaches_beyond_the_cache_and_reset_clears_it():
    plain, compressed = make_layer(), compressed_layer()
    for target, source in zip(compressed.weights, plain.weights):
        target.assign(source)

    def last_outputs(layer, first_segment, reset_last=False):
        state = None
        for step, x in enumerate(
            [first_segment, randn(B, W, HIDDEN, seed=5), randn(B, W, HIDDEN, seed=6)]
        ):
            reset = starts(step == 0 or (reset_last and step == 2), step == 0)
            y, state = layer(x, state=state, reset=reset)
        return to_numpy(y)

    a, b = randn(B, W, HIDDEN, seed=7), randn(B, W, HIDDEN, seed=8)
    # The first segment is 2W back: out of reach of the window and the cache...
    np.testing.assert_allclose(last_outputs(plain, a), last_outputs(plain, b), atol=1e-6)
    # ...but not of the compressed memory,
    assert np.abs(last_outputs(compressed, a) - last_outputs(compressed, b)).max() > 1e-4
    # unless the row starts a new document (row 0 here; row 1 keeps it).
    reset_a, reset_b = last_outputs(compressed, a, True), last_outputs(compressed, b, True)
    np.testing.assert_allclose(reset_a[0], reset_b[0], atol=1e-6)
    assert np.abs(reset_a[1] - reset_b[1]).max() > 1e-4


def test_compressed_memory_arguments_are_checked_and_round_trip():
    layer = compressed_layer()
    assert XLAttention.from_config(layer.get_config()).compressed_memory_size == 6
    with pytest.raises(ValueError, match="needs `use_cache=True`"):
        XLAttention(H, D, W, use_cache=False, compressed_memory_size=4)
    with pytest.raises(ValueError, match="multiple of `compression_rate`"):
        XLAttention(H, D, W, compressed_memory_size=4, compression_rate=3)
