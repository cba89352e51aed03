"""Rotary embeddings (standard, reversed, NTK) and attention registers in XLAttention."""

import numpy as np
import pytest

from keras_memory.layers import XLAttention
from keras_memory.ops import rotary_base, rotate
from tests import reference
from tests.conftest import to_numpy

B, H, D, W, HIDDEN = 2, 2, 4, 4, 8


def make_layer(**kwargs):
    layer = XLAttention(num_heads=H, head_dim=D, window_length=W, **kwargs)
    layer.build((B, None, HIDDEN))
    return layer


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def starts(*flags):
    return np.array(flags, dtype=bool)


def reference_weights(layer):
    weights = {
        "qkv": to_numpy(layer.qkv_projection.kernel),
        "out": to_numpy(layer.output_projection.kernel),
        "scale": to_numpy(layer.attention_scale),
    }
    if layer.use_position_bias:
        weights["bias_table"] = to_numpy(layer.position_bias.table)
    return weights


def test_rotation_keeps_norms_and_scores_depend_on_distance_only():
    q, k = randn(1, 1, 1, 8, seed=1), randn(1, 1, 1, 8, seed=2)

    def score(i, j):
        return float(np.sum(to_numpy(rotate(q, [i], 500.0)) * to_numpy(rotate(k, [j], 500.0))))

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-5)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)
    x = randn(2, 5, 2, 8)
    np.testing.assert_allclose(
        np.linalg.norm(to_numpy(rotate(x, np.arange(5), 10.0)), axis=-1),
        np.linalg.norm(x, axis=-1),
        rtol=1e-5,
    )
    assert rotary_base(10000.0, 8, 4.0) == pytest.approx(10000.0 * 4.0 ** (8 / 6))


@pytest.mark.parametrize("rotary", ["standard", "reversed"])
@pytest.mark.parametrize("use_position_bias", [False, True])
def test_rotary_with_a_cache_equals_absolute_positions_over_the_document(rotary, use_position_bias):
    # Where ports break: the cache. Positions restart in every segment here,
    # yet three segments must equal one pass with absolute positions.
    layer = make_layer(rotary=rotary, rotary_base=100.0, use_position_bias=use_position_bias)
    x = randn(B, 3 * W, HIDDEN)
    state, outputs = None, []
    for k in range(3):
        y, state = layer(x[:, k * W : (k + 1) * W], state=state, reset=starts(k == 0, k == 0))
        outputs.append(to_numpy(y))
    expected, _ = reference.xl_attention(
        x,
        reference_weights(layer),
        H,
        D,
        W,
        use_position_bias=use_position_bias,
        rotary=rotary,
        rotary_base=100.0,
    )
    np.testing.assert_allclose(np.concatenate(outputs, 1), expected, atol=1e-5)
    # And the rotation changes the result.
    plain = make_layer(use_position_bias=use_position_bias)
    plain.set_weights(layer.get_weights())
    assert np.abs(to_numpy(plain(x, reset=starts(True, True))[0]) - expected).max() > 1e-3


def test_reversed_and_standard_rotations_differ_and_dynamic_ntk_stretches():
    x = randn(B, 2 * W, HIDDEN)
    standard = make_layer(rotary="standard", rotary_base=100.0)
    reversed_ = make_layer(rotary="reversed", rotary_base=100.0)
    reversed_.set_weights(standard.get_weights())
    a, _ = standard(x, reset=starts(True, True))
    b, _ = reversed_(x, reset=starts(True, True))
    assert np.abs(to_numpy(a) - to_numpy(b)).max() > 1e-4
    # Trained with window 2, run with window 4: the base is scaled by 2.
    stretched = make_layer(rotary="standard", rotary_base=100.0, rotary_trained_window=2)
    scaled = make_layer(rotary="standard", rotary_base=100.0, rotary_scaling=2.0)
    scaled.set_weights(stretched.get_weights())
    np.testing.assert_allclose(
        to_numpy(stretched(x, reset=starts(True, True))[0]),
        to_numpy(scaled(x, reset=starts(True, True))[0]),
        atol=1e-6,
    )


def test_registers_are_keys_every_query_sees():
    layer = make_layer(num_registers=3)
    x = randn(B, 2 * W, HIDDEN)
    got, state = layer(x, reset=starts(True, True))
    keys = reference.l2_normalize(to_numpy(layer.register_keys))
    values = to_numpy(layer.register_values)
    memory = (np.broadcast_to(keys, (B, 3, H, D)), np.broadcast_to(values, (B, 3, H, D)))
    expected, _ = reference.xl_attention(x, reference_weights(layer), H, D, W, memory=memory)
    np.testing.assert_allclose(to_numpy(got), expected, atol=1e-5)
    # The first token of a document, with nothing before it, now attends to the registers.
    assert np.abs(to_numpy(got)[:, 0]).max() > 1e-4
    assert set(state) == {"keys", "values", "valid"}  # registers are weights, not state


def test_registers_and_rotary_round_trip_and_bad_settings():
    layer = make_layer(rotary="reversed", rotary_base=5e5, num_registers=2)
    clone = XLAttention.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="num_registers"):
        make_layer(num_registers=2, use_cache=False)
    with pytest.raises(ValueError, match="rotary"):
        make_layer(rotary="alibi")
    with pytest.raises(ValueError, match="even"):
        XLAttention(num_heads=H, head_dim=5, window_length=W, rotary="standard")
    with pytest.raises(ValueError, match="rotary_scaling"):
        make_layer(rotary="standard", rotary_scaling=0.5)
