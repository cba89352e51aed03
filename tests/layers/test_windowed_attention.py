"""The sliding window with the Transformer-XL cache, run on given queries, keys and values."""

import keras
import numpy as np
import pytest

from keras_memory.layers import RelativePositionBias, XLAttention
from keras_memory.layers.windowed_attention import WindowedAttention
from tests.conftest import to_numpy
from tests.reference import l2_normalize

B, H, D, W = 2, 2, 4, 4


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def qkv(length, seed=0):
    return (
        l2_normalize(randn(B, length, H, D, seed=seed)),
        l2_normalize(randn(B, length, H, D, seed=seed + 1)),
        randn(B, length, H, D, seed=seed + 2),
    )


def cache_state(seed=10, valid=(1, 1)):
    return {
        "keys": l2_normalize(randn(B, W, H, D, seed=seed)),
        "values": randn(B, W, H, D, seed=seed + 1),
        "valid": np.array(valid, "int32"),
    }


def band_reference(queries, keys, values, cache=None, include_self=False, memory=None, scale=None):
    """Dense numpy attention over [memory, cache, segment] under the window's band mask."""
    length = queries.shape[1]
    if cache is not None:
        keys = np.concatenate([cache[0], keys], 1)
        values = np.concatenate([cache[1], values], 1)
    first = keys.shape[1] - length
    distance = (first + np.arange(length))[:, None] - np.arange(keys.shape[1])[None]
    allowed = (distance >= 0) & (distance < W) if include_self else (distance > 0) & (distance <= W)
    allowed = np.broadcast_to(allowed, (B, H, length, keys.shape[1]))
    if cache is not None:
        cache_visible = np.broadcast_to(cache[2][:, None, None, None], allowed.shape)
        allowed = allowed & (cache_visible | (np.arange(keys.shape[1]) >= first))
    logits = np.einsum("bqhd,bkhd->bhqk", queries, keys)
    if memory is not None:
        logits = np.concatenate([np.einsum("bqhd,bmhd->bhqm", queries, memory[0]), logits], -1)
        values = np.concatenate([memory[1], values], 1)
        allowed = np.concatenate(
            [np.ones(logits.shape[:-1] + (memory[0].shape[1],), bool), allowed], -1
        )
    if scale is not None:
        logits = logits * np.abs(scale)[None, :, None, None]
    logits = np.where(allowed, logits, -np.inf)
    peak = np.max(np.where(allowed, logits, -1e30), -1, keepdims=True)
    weights = np.where(allowed, np.exp(logits - peak), 0.0)
    weights = weights / np.maximum(weights.sum(-1, keepdims=True), 1e-30)
    return np.einsum("bhqk,bkhd->bqhd", weights, values)


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("windows", [1, 3])
def test_equals_dense_band_attention_over_the_cache(include_self, windows):
    window = WindowedAttention(H, D, W, include_self=include_self)
    queries, keys, values = qkv(windows * W)
    state = cache_state(valid=(1, 0))  # row 1's cache is not valid: it sees none of it
    scale = np.array([1.5, 0.5], "float32")
    got, new_state = window(queries, keys, values, state, np.zeros(B, bool), logit_scale=scale)
    cache = (state["keys"], state["values"], state["valid"] > 0)
    expected = band_reference(queries, keys, values, cache, include_self, scale=scale)
    np.testing.assert_allclose(to_numpy(got), expected, atol=1e-5)
    # The new cache is the segment's last window, unrotated and valid.
    np.testing.assert_allclose(to_numpy(new_state["keys"]), keys[:, -W:], atol=1e-6)
    np.testing.assert_allclose(to_numpy(new_state["values"]), values[:, -W:], atol=1e-6)
    assert to_numpy(new_state["valid"]).tolist() == [1, 1]


def test_reset_rows_see_no_cache_and_local_only_has_no_state():
    window = WindowedAttention(H, D, W)
    queries, keys, values = qkv(2 * W)
    got, _ = window(queries, keys, values, cache_state(), np.array([True, False]))
    no_cache = cache_state(valid=(0, 1))
    expected, _ = window(queries, keys, values, no_cache, np.zeros(B, bool))
    np.testing.assert_allclose(to_numpy(got), to_numpy(expected), atol=1e-6)
    local = WindowedAttention(H, D, W, use_cache=False)
    assert local.state_shapes(B) == {}
    got, state = local(queries, keys, values, {}, np.zeros(B, bool))
    assert state == {}
    np.testing.assert_allclose(to_numpy(got), band_reference(queries, keys, values), atol=1e-5)


def test_the_position_bias_is_the_layers_over_each_window():
    window = WindowedAttention(H, D, W)
    bias = RelativePositionBias(H, num_buckets=8, max_distance=16)
    bias.build()
    queries, keys, values = qkv(W)
    state, reset = cache_state(), np.zeros(B, bool)
    with_bias, _ = window(queries, keys, values, state, reset, position_bias=bias)
    without, _ = window(queries, keys, values, state, reset)
    assert np.abs(to_numpy(with_bias) - to_numpy(without)).max() > 1e-4


def test_registers_and_compressed_memory_join_the_softmax():
    owner = keras.layers.Layer()
    window = WindowedAttention(
        H, D, W, num_registers=2, compressed_memory_size=4, compression_rate=2
    )
    created = window.build(owner)
    assert list(created) == ["register_keys", "register_values"]
    assert [v.name for v in owner.weights] == ["register_keys", "register_values"]
    assert set(window.state_shapes(B)) == {
        "keys",
        "values",
        "valid",
        "compressed_keys",
        "compressed_values",
        "compressed_valid",
    }
    queries, keys, values = qkv(W)
    compressed = (l2_normalize(randn(B, 4, H, D, seed=20)), randn(B, 4, H, D, seed=21))
    state = dict(
        cache_state(),
        compressed_keys=compressed[0],
        compressed_values=compressed[1],
        compressed_valid=np.ones((B, 4), "int32"),
    )
    got, new_state = window(queries, keys, values, state, np.zeros(B, bool))
    registers = (
        np.broadcast_to(l2_normalize(to_numpy(created["register_keys"])), (B, 2, H, D)),
        np.broadcast_to(to_numpy(created["register_values"]), (B, 2, H, D)),
    )
    memory = tuple(np.concatenate([r, c], 1) for r, c in zip(registers, compressed))
    cache = (state["keys"], state["values"], np.ones(B, bool))
    expected = band_reference(queries, keys, values, cache, memory=memory)
    np.testing.assert_allclose(to_numpy(got), expected, atol=1e-5)
    # The old cache left the view: pooled in pairs behind the older entries.
    pooled = l2_normalize(state["keys"].reshape(B, 2, 2, H, D).mean(2))
    np.testing.assert_allclose(
        to_numpy(new_state["compressed_keys"]),
        np.concatenate([compressed[0][:, 2:], pooled], 1),
        atol=1e-5,
    )


@pytest.mark.parametrize("options", [{}, {"rotary": "reversed", "num_registers": 2}])
def test_xl_attention_is_its_window_between_its_projections(options):
    layer = XLAttention(H, D, W, **options)
    x = randn(B, 2 * W, 8)
    layer.build(x.shape)
    state = layer.initial_state(B)
    y, new_state = layer(x, state=state, reset=np.ones(B, bool))
    queries, keys, values = layer.project_qkv(x)
    outputs, window_state = layer.window(
        queries,
        keys,
        values,
        state,
        np.ones(B, bool),
        position_bias=layer.position_bias,
        logit_scale=layer.logit_scale(layer.attention_scale),
    )
    np.testing.assert_allclose(to_numpy(y), to_numpy(layer.project_output(outputs)), atol=1e-6)
    for name in new_state:
        np.testing.assert_array_equal(to_numpy(new_state[name]), to_numpy(window_state[name]))


def test_options_are_checked_and_make_the_config():
    window = WindowedAttention(H, D, W, rotary="standard", rotary_trained_window=2)
    assert window.get_config() == {
        "window_length": W,
        "use_cache": True,
        "include_self": False,
        "compressed_memory_size": 0,
        "compression_rate": 4,
        "rotary": "standard",
        "rotary_base": 10000.0,
        "rotary_scaling": 1.0,
        "rotary_trained_window": 2,
        "num_registers": 0,
    }
    assert window.build(keras.layers.Layer()) == {}
    for options, name in (
        ({"window_length": 0}, "window_length"),
        ({"use_cache": "yes"}, "use_cache"),
        ({"include_self": 1}, "include_self"),
        ({"num_registers": 2, "use_cache": False}, "num_registers"),
        ({"compressed_memory_size": 4, "use_cache": False}, "compressed_memory_size"),
        ({"rotary": "alibi"}, "rotary"),
    ):
        with pytest.raises(ValueError, match=f"`{name}`"):
            WindowedAttention(H, D, **{"window_length": W, **options})
    with pytest.raises(ValueError, match="multiple of `window_length`"):
        window.check_segment_length("attention", W + 1)
    window.check_segment_length("attention", None)  # unknown: checked when known
