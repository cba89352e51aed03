import keras
import numpy as np
import pytest

from keras_memory.layers import AccumulatingDense
from tests.backend_utils import gradients_of_weighted_sum
from tests.conftest import to_numpy


def _pair(dtype, **kwargs):
    ours = AccumulatingDense(8, activation="gelu", dtype=dtype, **kwargs)
    theirs = keras.layers.Dense(8, activation="gelu", dtype=dtype, **kwargs)
    for layer in (ours, theirs):
        layer.build((None, 16))
    rng = np.random.default_rng(0)
    for ours_var, theirs_var in zip(ours.weights, theirs.weights):
        value = rng.standard_normal(ours_var.shape).astype("float32")
        ours_var.assign(value)
        theirs_var.assign(value)
    return ours, theirs


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 3e-2)])
def test_value_and_input_gradient_are_keras_dense_s(dtype, tolerance):
    ours, theirs = _pair(dtype)
    x = np.random.default_rng(1).standard_normal((2, 3, 16)).astype("float32")
    cotangent = np.random.default_rng(2).standard_normal((2, 3, 8)).astype("float32")
    y = ours(x)
    assert keras.backend.standardize_dtype(y.dtype) == keras.backend.standardize_dtype(
        theirs.compute_dtype
    )

    def as_float32(layer):
        return lambda x: keras.ops.cast(layer(x), "float32")

    want = to_numpy(as_float32(theirs)(x))
    scale = np.abs(want).max()
    np.testing.assert_allclose(to_numpy(as_float32(ours)(x)), want, atol=tolerance * scale)
    (ours_grad,) = gradients_of_weighted_sum(as_float32(ours), [x], cotangent)
    (theirs_grad,) = gradients_of_weighted_sum(as_float32(theirs), [x], cotangent)
    np.testing.assert_allclose(ours_grad, theirs_grad, atol=tolerance * np.abs(theirs_grad).max())


def test_lora_adds_its_low_rank_product_as_keras_dense_does():
    ours, theirs = _pair("float32", use_bias=False)
    rng = np.random.default_rng(3)
    for layer in (ours, theirs):
        layer.enable_lora(2)
    for ours_var, theirs_var in [
        (ours.lora_kernel_a, theirs.lora_kernel_a),
        (ours.lora_kernel_b, theirs.lora_kernel_b),
    ]:
        value = rng.standard_normal(ours_var.shape).astype("float32")
        ours_var.assign(value)
        theirs_var.assign(value)
    x = rng.standard_normal((4, 16)).astype("float32")
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(theirs(x)), rtol=1e-5, atol=1e-5)


def test_config_and_saved_model_round_trip(tmp_path):
    ours, _ = _pair("float32", use_bias=True)
    clone = keras.layers.deserialize(keras.layers.serialize(ours))
    assert type(clone) is AccumulatingDense
    assert clone.get_config() == ours.get_config()
    model = keras.Sequential([keras.Input((16,)), ours])
    path = str(tmp_path / "dense.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[0]) is AccumulatingDense
    x = np.random.default_rng(4).standard_normal((3, 16)).astype("float32")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6, atol=1e-6)
