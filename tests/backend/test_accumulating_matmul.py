import keras
import numpy as np
import pytest
from keras import ops

from keras_memory.backend import accumulating_matmul
from tests.backend_utils import gradients_of_weighted_sum
from tests.conftest import to_numpy


def _case(seed=0, rows=(2, 3)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*rows, 16)).astype("float32")
    kernel = rng.standard_normal((16, 8)).astype("float32")
    cotangent = rng.standard_normal((*rows, 8)).astype("float32")
    return x, kernel, cotangent


def _expected(x, kernel, cotangent):
    x, kernel, cotangent = (np.asarray(a, "float64") for a in (x, kernel, cotangent))
    rows = (x.reshape(-1, x.shape[-1]), cotangent.reshape(-1, cotangent.shape[-1]))
    return x @ kernel, cotangent @ kernel.T, rows[0].T @ rows[1]


def test_float32_value_and_gradients_are_the_product():
    x, kernel, cotangent = _case()
    value, x_grad, kernel_grad = _expected(x, kernel, cotangent)
    np.testing.assert_allclose(
        to_numpy(accumulating_matmul(x, kernel)), value, rtol=1e-5, atol=1e-5
    )
    grads = gradients_of_weighted_sum(accumulating_matmul, [x, kernel], cotangent)
    np.testing.assert_allclose(grads[0], x_grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads[1], kernel_grad, rtol=1e-5, atol=1e-5)


def _in_bfloat16(x, kernel):
    product = accumulating_matmul(ops.cast(x, "bfloat16"), ops.cast(kernel, "bfloat16"))
    assert keras.backend.standardize_dtype(product.dtype) == "bfloat16"
    return ops.cast(product, "float32")


def _round_to_bfloat16(a):
    return to_numpy(ops.cast(ops.cast(a, "bfloat16"), "float32"))


# The gradient's products split the rows over two axes (see `_two_row_axes`),
# which an odd number of rows cannot be; a flat matrix of rows has no leading
# axes, and its input gradient comes back from the split to its own shape.
@pytest.mark.parametrize("rows", [(2, 3), (1, 3), (5,), (6,)])
def test_bfloat16_value_and_gradients_are_the_product_of_the_rounded_operands(rows):
    x, kernel, cotangent = _case(1, rows)
    # Exact products of the bfloat16 operands, then one bfloat16 rounding: a
    # product that lost its float32 accumulation, or a wrong gradient, is off
    # by far more than that rounding (2^-8 of the largest entry).
    value, x_grad, kernel_grad = _expected(
        _round_to_bfloat16(x), _round_to_bfloat16(kernel), _round_to_bfloat16(cotangent)
    )
    grads = gradients_of_weighted_sum(_in_bfloat16, [x, kernel], cotangent)
    for got, want in [
        (to_numpy(_in_bfloat16(x, kernel)), value),
        *zip(grads, [x_grad, kernel_grad]),
    ]:
        np.testing.assert_allclose(got, want, atol=2**-7 * np.abs(want).max())


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the float32 accumulation is JAX's")
@pytest.mark.parametrize("rows", [(2, 3), (6,)])
def test_on_jax_cpu_all_three_products_take_bfloat16_operands_into_float32(rows):
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        pytest.skip("the accumulating form is used on the CPU only")
    x, kernel, cotangent = _case(rows=rows)

    def objective(x, kernel):
        return (accumulating_matmul(x, kernel).astype(jnp.float32) * cotangent).sum()

    jaxpr = jax.make_jaxpr(jax.grad(objective, argnums=(0, 1)))(
        jnp.asarray(x, jnp.bfloat16), jnp.asarray(kernel, jnp.bfloat16)
    )
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    # JAX's own transpose would multiply a float32 gradient by a bfloat16
    # operand, which XLA's CPU runs at the float32 rate.
    assert len(dots) == 3
    for dot in dots:
        assert [str(v.aval.dtype) for v in dot.invars] == ["bfloat16", "bfloat16"]
        assert dot.params["preferred_element_type"] == jnp.float32
        # No batch axes: one projection's product, over every row.
        assert dot.params["dimension_numbers"][1] == ((), ())
    # Both gradient products take the rows on two axes, even from 2-D rows
    # (see `_two_row_axes`): as one axis XLA's CPU ran them at half the rate.
    assert [len(dot.invars[0].aval.shape) for dot in dots[1:]] == [3, 3]


def test_rejects_a_kernel_that_is_not_a_matrix_or_does_not_match():
    with pytest.raises(ValueError, match="`kernel` must be a 2-D matrix"):
        accumulating_matmul(np.zeros((2, 4), "float32"), np.zeros((4, 5, 1), "float32"))
    with pytest.raises(ValueError, match="`x`'s last axis must match `kernel`'s first"):
        accumulating_matmul(np.zeros((2, 3), "float32"), np.zeros((4, 5), "float32"))
