import importlib

import keras
import numpy as np
import pytest
from keras import ops

from keras_memory.backend import accumulating_einsum
from tests.backend_utils import gradients_of_weighted_sum
from tests.conftest import to_numpy

# Attention's products: queries by blocked keys (two batch axes, heads moved),
# weights by values, and the memory's keys shared by every block.
EQUATIONS = {
    "bnqhd,bnkhd->bnhqk": ((2, 3, 4, 2, 5), (2, 3, 6, 2, 5)),
    "bnhqk,bnkhd->bnqhd": ((2, 3, 2, 4, 6), (2, 3, 6, 2, 5)),
    "bnqhd,bmhd->bnhqm": ((2, 3, 4, 2, 5), (2, 7, 2, 5)),
    "bqhd,bkhd->bhqk": ((2, 4, 3, 5), (2, 6, 3, 5)),
}


def _case(equation, seed=0):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = EQUATIONS[equation]
    a = rng.standard_normal(a_shape).astype("float32")
    b = rng.standard_normal(b_shape).astype("float32")
    cotangent = rng.standard_normal(np.einsum(equation, a, b).shape).astype("float32")
    return a, b, cotangent


def _expected(equation, a, b, cotangent):
    a_eq, b_eq = equation.split("->")[0].split(",")
    out = equation.split("->")[1]
    a, b, cotangent = (np.asarray(x, "float64") for x in (a, b, cotangent))
    return (
        np.einsum(equation, a, b),
        np.einsum(f"{out},{b_eq}->{a_eq}", cotangent, b),
        np.einsum(f"{out},{a_eq}->{b_eq}", cotangent, a),
    )


@pytest.mark.parametrize("equation", sorted(EQUATIONS))
def test_float32_value_and_gradients_are_the_einsum(equation):
    a, b, cotangent = _case(equation)
    value, a_grad, b_grad = _expected(equation, a, b, cotangent)
    got = to_numpy(accumulating_einsum(equation, a, b))
    np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-5)
    grads = gradients_of_weighted_sum(
        lambda x, y: accumulating_einsum(equation, x, y), [a, b], cotangent
    )
    np.testing.assert_allclose(grads[0], a_grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads[1], b_grad, rtol=1e-5, atol=1e-5)


def _round_to_bfloat16(x):
    return to_numpy(ops.cast(ops.cast(x, "bfloat16"), "float32"))


@pytest.mark.parametrize("equation", sorted(EQUATIONS))
def test_bfloat16_value_and_gradients_are_the_einsum_of_the_rounded_operands(equation):
    a, b, cotangent = _case(equation, 1)

    def in_bfloat16(x, y):
        product = accumulating_einsum(equation, ops.cast(x, "bfloat16"), ops.cast(y, "bfloat16"))
        assert keras.backend.standardize_dtype(product.dtype) == "bfloat16"
        return ops.cast(product, "float32")

    # Exact products of the bfloat16 operands, then one bfloat16 rounding: a
    # transposed or misplaced axis is off by far more.
    value, a_grad, b_grad = _expected(
        equation, _round_to_bfloat16(a), _round_to_bfloat16(b), _round_to_bfloat16(cotangent)
    )
    grads = gradients_of_weighted_sum(in_bfloat16, [a, b], cotangent)
    for got, want in [(to_numpy(in_bfloat16(a, b)), value), *zip(grads, [a_grad, b_grad])]:
        np.testing.assert_allclose(got, want, atol=2**-7 * np.abs(want).max())


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the float32 accumulation is JAX's")
def test_on_jax_cpu_every_product_is_one_batched_matmul_of_bfloat16_into_float32():
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        pytest.skip("the accumulating form is used on the CPU only")
    # The module, not the function of the same name the package exports.
    module = importlib.import_module("keras_memory.backend.accumulating_einsum")
    equation = "bnqhd,bnkhd->bnhqk"
    a, b, cotangent = _case(equation)
    # Whether this jaxlib can, asked first inside a trace (as Keras's train
    # step does): the probe runs on concrete arrays, not into the trace.
    module._batched_accumulation_compiles.cache_clear()

    def objective(x, y):
        return (accumulating_einsum(equation, x, y).astype(jnp.float32) * cotangent).sum()

    jaxpr = jax.make_jaxpr(jax.grad(objective, argnums=(0, 1)))(
        jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16)
    )
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 3
    for dot in dots:
        assert [str(v.aval.dtype) for v in dot.invars] == ["bfloat16", "bfloat16"]
        assert dot.params["preferred_element_type"] == jnp.float32
        # One leading batch axis, contracting the first operand's last axis
        # with the second's middle one: the form XLA's CPU runs into float32
        # (other forms may reach its generic dot, which refuses bfloat16 ->
        # float32 at run time).
        assert dot.params["dimension_numbers"] == (((2,), (1,)), ((0,), (0,)))


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the matmul form is JAX's")
def test_on_jax_cpu_grouped_attention_never_transposes_its_logits():
    import jax
    import jax.numpy as jnp

    from keras_memory.ops.query_groups import grouped_heads_einsum

    if jax.default_backend() != "cpu":
        pytest.skip("the matmul form is used on the CPU only")
    # Attention's two products with grouped heads (4 query heads, 2 key heads),
    # as `sliding_window_attention` writes them, at a size where the `(queries,
    # keys)` logits dwarf everything else. Forward and backward, each product
    # is laid out so that no logits-sized tensor is transposed (on XLA's CPU
    # such a transpose cost more than the product it fed).
    rng = np.random.default_rng(2)
    queries = jnp.asarray(rng.standard_normal((2, 3, 16, 4, 4)), jnp.float32)
    keys, values = (jnp.asarray(rng.standard_normal((2, 3, 24, 2, 4)), jnp.float32) for _ in "kv")
    cotangent = jnp.asarray(rng.standard_normal((2, 3, 16, 4, 4)), jnp.float32)

    def attention(q, k, v):
        logits = grouped_heads_einsum("bnqhd,bnkhd->bnhqk", q, k)
        return grouped_heads_einsum("bnhqk,bnkhd->bnqhd", jnp.tanh(logits), v)

    def objective(q, k, v):
        return (attention(q, k, v) * cotangent).sum()

    jaxpr = jax.make_jaxpr(jax.grad(objective, argnums=(0, 1, 2)))(queries, keys, values)
    logits_size = 2 * 3 * 4 * 16 * 24
    moved = [
        e.invars[0].aval.shape
        for e in jaxpr.jaxpr.eqns
        if e.primitive.name == "transpose" and e.invars[0].aval.size == logits_size
    ]
    assert moved == []

    # The values are the einsum's, with each key head repeated for its queries.
    def reference(q, k, v):
        logits = jnp.einsum("bnqhd,bnkhd->bnhqk", q, jnp.repeat(k, 2, axis=3))
        return jnp.einsum("bnhqk,bnkhd->bnqhd", jnp.tanh(logits), jnp.repeat(v, 2, axis=3))

    np.testing.assert_allclose(
        attention(queries, keys, values), reference(queries, keys, values), rtol=1e-5, atol=1e-5
    )
    got = jax.grad(objective, argnums=(0, 1, 2))(queries, keys, values)
    want = jax.grad(lambda *t: (reference(*t) * cotangent).sum(), argnums=(0, 1, 2))(
        queries, keys, values
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "equation, message",
    [
        ("ab,bc", "two operands"),
        ("ab,bc,cd->ad", "two operands"),
        ("...a,ab->...b", "no ellipsis"),
        ("aab,bc->ac", "one distinct letter"),
        ("abx,bc->ac", "summed in one operand alone"),
        ("ab,bc->ax", "must be an operand's"),
    ],
)
def test_refuses_an_equation_it_cannot_differentiate(equation, message):
    with pytest.raises(ValueError, match=message):
        accumulating_einsum(equation, np.zeros((2, 2), "float32"), np.zeros((2, 2), "float32"))
