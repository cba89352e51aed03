import numpy as np
import pytest

from keras_memory.backend import add_over_leading_axes
from tests.backend_utils import gradients_of_weighted_sum
from tests.conftest import to_numpy


def test_value_and_gradients_are_the_broadcast_sum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    bias = rng.standard_normal((4, 5)).astype("float32")
    cotangent = rng.standard_normal(x.shape).astype("float32")
    np.testing.assert_allclose(to_numpy(add_over_leading_axes(x, bias)), x + bias, rtol=1e-6)
    x_grad, bias_grad = gradients_of_weighted_sum(add_over_leading_axes, [x, bias], cotangent)
    np.testing.assert_allclose(x_grad, cotangent, rtol=1e-6)
    np.testing.assert_allclose(bias_grad, cotangent.sum((0, 1)), rtol=1e-5, atol=1e-5)


def test_rejects_a_bias_that_is_not_the_trailing_shape():
    with pytest.raises(ValueError, match="trailing shape of `x`"):
        add_over_leading_axes(np.zeros((2, 4, 5), "float32"), np.zeros((5, 4), "float32"))
