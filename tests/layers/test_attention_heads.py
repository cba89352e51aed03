import keras
import numpy as np
import pytest

from keras_memory.layers.attention_heads import AttentionHeads, accept_legacy_options
from keras_memory.ops.attention import dense_attention
from tests.conftest import to_numpy
from tests.reference import l2_normalize

B, S, HIDDEN, H, D = 2, 6, 8, 2, 4


class GlobalAttention(AttentionHeads):
    """The smallest attention layer: every token attends to the whole segment."""

    def build(self, input_shape):
        self.build_heads(input_shape)
        self.built = True

    def call_with_state(self, x, state, reset, training):
        queries, keys, values = self.project_qkv(x)
        attended = dense_attention(queries, keys, values, self.logit_scale(self.attention_scale))
        return self.project_output(attended), state


def make(**kwargs):
    layer = GlobalAttention(H, D, **kwargs)
    layer.build((B, None, HIDDEN))
    return layer


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("normalize_keys", [True, False])
def test_projections_and_scale(normalize_keys):
    layer = make(normalize_keys=normalize_keys)
    assert tuple(layer.qkv_projection.kernel.shape) == (HIDDEN, 3 * H * D)
    assert tuple(layer.output_projection.kernel.shape) == (H * D, HIDDEN)
    assert layer.qkv_projection.bias is None and layer.output_projection.bias is None
    assert layer.hidden_dim == HIDDEN and layer.inner_dim == H * D
    if normalize_keys:
        np.testing.assert_array_equal(to_numpy(layer.attention_scale), np.ones(H))
        assert layer.trainable_weights[0].path == f"{layer.name}/attention_scale"
    else:
        assert layer.attention_scale is None
        assert layer.logit_scale(layer.attention_scale) is None


@pytest.mark.parametrize("normalize_keys", [True, False])
def test_project_qkv_normalises_or_scales(normalize_keys):
    layer = make(normalize_keys=normalize_keys)
    x = randn(B, S, HIDDEN)
    queries, keys, values = (to_numpy(t) for t in layer.project_qkv(x))
    qkv = (x @ to_numpy(layer.qkv_projection.kernel)).reshape(B, S, 3, H, D)
    if normalize_keys:
        np.testing.assert_allclose(queries, l2_normalize(qkv[:, :, 0]), atol=1e-5)
        np.testing.assert_allclose(keys, l2_normalize(qkv[:, :, 1]), atol=1e-5)
    else:
        np.testing.assert_allclose(queries, qkv[:, :, 0] / np.sqrt(D), atol=1e-5)
        np.testing.assert_allclose(keys, qkv[:, :, 1], atol=1e-5)
    np.testing.assert_allclose(values, qkv[:, :, 2], atol=1e-5)


def test_project_output_merges_the_heads():
    layer = make()
    heads = randn(B, S, H, D)
    expected = heads.reshape(B, S, H * D) @ to_numpy(layer.output_projection.kernel)
    np.testing.assert_allclose(to_numpy(layer.project_output(heads)), expected, atol=1e-5)


def test_a_subclass_runs_the_memory_contract():
    layer = make()
    y, state = layer(randn(B, S, HIDDEN), reset=np.ones(B, bool))
    assert tuple(y.shape) == (B, S, HIDDEN) and state == {}


def test_wider_output_and_extra_projections():
    layer = GlobalAttention(H, D)
    layer.build_heads((B, S, HIDDEN), attended_width=2 * H * D)
    assert tuple(layer.output_projection.kernel.shape) == (2 * H * D, HIDDEN)
    extra = layer.projection(5, (B, S, HIDDEN), "extra")
    assert extra.name == "extra" and extra.bias is None
    # Each projection draws its own initial kernel.
    other = layer.projection(5, (B, S, HIDDEN), "other")
    assert not np.allclose(to_numpy(extra.kernel), to_numpy(other.kernel))
    assert layer.head_scale("scale") is not None
    assert GlobalAttention(H, D, normalize_keys=False).head_scale("scale") is None


def test_arguments_are_checked_by_name():
    for arguments, name in (
        ((0, D), "num_heads"),
        ((H, 2.0), "head_dim"),
        ((H, D, "yes"), "normalize_keys"),
    ):
        with pytest.raises(ValueError, match=f"`{name}`"):
            GlobalAttention(*arguments)
    with pytest.raises(ValueError, match="`kernel_initializer`"):
        GlobalAttention(H, D, kernel_initializer="nope")


def test_config_lists_exactly_its_arguments():
    layer = GlobalAttention(H, D, normalize_keys=False, kernel_initializer="zeros", stateful=True)
    config = layer.get_config()
    assert set(config) - {"name", "trainable", "dtype"} == {
        "num_heads",
        "head_dim",
        "num_key_value_heads",
        "normalize_keys",
        "kernel_initializer",
        "stateful",
    }
    clone = GlobalAttention.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.kernel_initializer, keras.initializers.Zeros)


def test_legacy_options_are_dropped_only_at_their_old_value():
    legacy = {"rotary": None, "num_registers": 0, "read_recurrent_state": False}
    config = {"num_heads": H, "rotary": None, "num_registers": 0}
    assert accept_legacy_options(GlobalAttention, config, legacy) == {"num_heads": H}
    assert config == {"num_heads": H, "rotary": None, "num_registers": 0}  # not modified
    for key, value in (("rotary", "standard"), ("num_registers", 2), ("read_recurrent_state", 0)):
        with pytest.raises(ValueError, match=f"GlobalAttention does not take `{key}`"):
            accept_legacy_options(GlobalAttention, {key: value}, legacy)
