import numpy as np
import pytest

from keras_memory.layers import DenseKVAttention
from tests.backend_utils import input_gradient
from tests.conftest import to_numpy
from tests.reference import l2_normalize

B, H, D, S, HIDDEN, M = 2, 2, 4, 8, 8, 16


def make_layer(**kwargs):
    layer = DenseKVAttention(H, D, memory_size=M, **kwargs)
    layer.build((B, None, HIDDEN))
    return layer


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def reference(layer, x, memory_keys, memory_values, memory_valid):
    """Joint softmax over [valid memory, strictly earlier segment keys], in numpy."""
    qkv = (x @ to_numpy(layer.qkv_projection.kernel)).reshape(B, S, 3, H, D)
    q, k, v = l2_normalize(qkv[:, :, 0]), l2_normalize(qkv[:, :, 1]), qkv[:, :, 2]
    scale = np.abs(to_numpy(layer.attention_scale))[None, :, None, None]
    logits = (
        np.concatenate(
            [np.einsum("bqhd,bmhd->bhqm", q, memory_keys), np.einsum("bqhd,bkhd->bhqk", q, k)], -1
        )
        * scale
    )
    allowed = np.concatenate(
        [
            np.broadcast_to(memory_valid[:, None, None], (B, H, S, M)),
            np.broadcast_to(np.tril(np.ones((S, S), bool), -1), (B, H, S, S)),
        ],
        -1,
    )
    logits = np.where(allowed, logits, -np.inf)
    peak = np.max(np.where(allowed, logits, -1e30), -1, keepdims=True)
    p = np.where(allowed, np.exp(logits - peak), 0.0)
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-30)
    out = np.einsum("bhqm,bmhd->bqhd", p[..., :M], memory_values)
    out = out + np.einsum("bhqk,bkhd->bqhd", p[..., M:], v)
    return out.reshape(B, S, H * D) @ to_numpy(layer.output_projection.kernel)


def test_matches_numpy_joint_softmax_over_memory_and_segment():
    layer = make_layer()
    _, state = layer(randn(B, S, HIDDEN, seed=1), reset=np.array([True, True]))
    x = randn(B, S, HIDDEN, seed=2)
    got, _ = layer(x, state=state, reset=np.array([False, False]))
    expected = reference(
        layer,
        x,
        to_numpy(state["memory_keys"]),
        to_numpy(state["memory_values"]),
        to_numpy(state["memory_valid"]) > 0,
    )
    np.testing.assert_allclose(to_numpy(got), expected, atol=1e-5)


def test_reset_row_reads_nothing_from_the_previous_document():
    layer = make_layer()
    _, state = layer(randn(B, S, HIDDEN, seed=1), reset=np.array([True, True]))
    x = randn(B, S, HIDDEN, seed=2)
    y, new_state = layer(x, state=state, reset=np.array([True, False]))
    fresh, _ = layer(x, reset=np.array([True, True]))
    np.testing.assert_allclose(to_numpy(y)[0], to_numpy(fresh)[0], atol=1e-6)
    assert not np.allclose(to_numpy(y)[1], to_numpy(fresh)[1])
    assert to_numpy(new_state["memory_valid"]).sum(1).tolist() == [S, 2 * S]


def test_no_output_depends_on_a_later_token():
    layer = make_layer()
    x = randn(1, S, HIDDEN)
    for t in range(S):
        influence = np.abs(input_gradient(lambda v: layer(v)[0], x, t)[0]).sum(-1)
        assert np.all(influence[t + 1 :] == 0)


def test_stateful_equals_functional_and_config_round_trips():
    functional = make_layer()
    stateful = DenseKVAttention(H, D, memory_size=M, stateful=True)
    stateful.build((B, None, HIDDEN))
    for target, source in zip(stateful.trainable_weights, functional.trainable_weights):
        target.assign(source)
    state = None
    for i in range(3):
        x, reset = randn(B, S, HIDDEN, seed=i), np.array([i == 0, i == 2])
        expected, state = functional(x, state=state, reset=reset)
        np.testing.assert_allclose(
            to_numpy(stateful(x, reset=reset)), to_numpy(expected), atol=1e-5
        )
    clone = DenseKVAttention.from_config(functional.get_config())
    assert clone.get_config() == functional.get_config()


def test_memory_size_must_hold_whole_segments():
    with pytest.raises(ValueError, match="`memory_size`"):
        DenseKVAttention(H, D, memory_size=0)
    layer = DenseKVAttention(H, D, memory_size=12)
    with pytest.raises(ValueError, match="multiple of the segment length"):
        layer(randn(B, S, HIDDEN))


def test_old_configs_load_only_with_the_options_it_switched_off():
    # Before the redesign the layer took (and saved) XLAttention's options at
    # fixed values; a window it never had it refuses outright.
    config = make_layer().get_config()
    old = dict(
        config,
        rotary=None,
        rotary_base=10000.0,
        rotary_scaling=1.0,
        rotary_trained_window=None,
        num_registers=0,
        read_recurrent_state=False,
    )
    assert DenseKVAttention.from_config(old).get_config() == config
    for key, value in (("rotary", "standard"), ("num_registers", 2), ("rotary_base", 5e5)):
        with pytest.raises(ValueError, match=f"does not take `{key}`"):
            DenseKVAttention.from_config(dict(old, **{key: value}))
    with pytest.raises(ValueError, match="window_length"):
        DenseKVAttention(H, D, memory_size=M, window_length=4)
