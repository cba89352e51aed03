import keras
import numpy as np
import pytest

from keras_memory.layers import TransformerBlock, XLAttention
from tests import reference
from tests.conftest import to_numpy

B, H, D, W, HIDDEN, MLP = 2, 2, 4, 4, 8, 16


def make_block(stateful=False, **attention_kwargs):
    block = TransformerBlock(
        attention=XLAttention(H, D, W, stateful=stateful, **attention_kwargs),
        intermediate_dim=MLP,
    )
    block.build((B, None, HIDDEN))
    return block


def randomize(block, seed=0):
    rng = np.random.default_rng(seed)
    for weight in block.trainable_weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))


def reference_weights(block):
    attention = block.attention
    return {
        "qkv": to_numpy(attention.qkv_projection.kernel),
        "out": to_numpy(attention.output_projection.kernel),
        "bias_table": to_numpy(attention.position_bias.table),
        "scale": to_numpy(attention.attention_scale),
        "norm1": to_numpy(block.attention_norm.scale),
        "norm2": to_numpy(block.ffn_norm.scale),
        "ffn_in": to_numpy(block.ffn.intermediate.kernel),
        "ffn_out": to_numpy(block.ffn.output_dense.kernel),
    }


def test_block_matches_numpy_reference_across_segments():
    """Every backend agrees with one numpy reference to 1e-5, so with each other."""
    block = make_block()
    randomize(block)
    weights = reference_weights(block)
    rng = np.random.default_rng(1)
    segments = [rng.standard_normal((B, 2 * W, HIDDEN)).astype("float32") for _ in range(2)]
    state, cache = None, None
    for i, x in enumerate(segments):
        y, state = block(x, state=state, reset=np.array([i == 0] * B))
        expected, cache = reference.transformer_block(
            x, weights, num_heads=H, head_dim=D, window=W, cache=cache
        )
        np.testing.assert_allclose(to_numpy(y), expected, atol=1e-5, rtol=1e-5)


def test_block_is_stateful_when_its_attention_is():
    block = make_block(stateful=True)
    assert block.stateful
    y = block(np.ones((B, W, HIDDEN), "float32"), reset=np.array([True] * B))
    assert tuple(y.shape) == (B, W, HIDDEN)
    with pytest.raises(ValueError, match="stateful"):
        block(np.ones((B, W, HIDDEN), "float32"), state={})


def test_config_round_trip_rebuilds_the_attention():
    block = make_block(include_self=True)
    clone = TransformerBlock.from_config(block.get_config())
    assert isinstance(clone.attention, XLAttention)
    assert clone.attention.include_self
    assert clone.get_config() == block.get_config()
    clone.build((B, None, HIDDEN))
    clone.set_weights(block.get_weights())
    x = np.random.rand(B, W, HIDDEN).astype("float32")
    np.testing.assert_allclose(to_numpy(clone(x)[0]), to_numpy(block(x)[0]), atol=1e-6)


def test_rejects_a_non_memory_attention_layer():
    with pytest.raises(ValueError, match="`attention` must be"):
        TransformerBlock(attention=keras.layers.Dense(4), intermediate_dim=8)
