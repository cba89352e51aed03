"""Attention's products, with bfloat16 operands accumulated in float32 where that is faster."""

import functools
import math

import keras
from keras import ops

from keras_memory.backend.accumulating_matmul import jax_on_cpu


def accumulating_einsum(equation, a, b, float32_as_matmul=False):
    """Returns `ops.einsum(equation, a, b)`.

    The batched products of attention (queries by keys, weights by values).
    On every backend the value is `ops.einsum`'s. On JAX's CPU, bfloat16
    operands are multiplied with float32 accumulation
    (`preferred_element_type=float32`, rounded to bfloat16 after), and so are
    the two products of the gradient, by a custom VJP: this is
    `accumulating_matmul`'s form for products with batch axes, written as
    one `(batch, m, k) x (batch, k, n)` matmul. On 2 cores of an AMD EPYC
    (Zen 4) with jaxlib 0.10.2, the d512 window's logits product `(2, 8,
    256, 8, 64) x (2, 8, 768, 8, 64)` with its gradient's two products ran
    at 142 GFLOP/s this way against 88 as a bfloat16 `jnp.einsum` and 95
    in float32 (`benchmarks/cpu_kernels.py --case attention_grad`, 2026-12-06). Older jaxlibs
    refuse the batched form (`UNIMPLEMENTED: Unsupported element type for
    DotThunk::Execute`): a first tiny product tells, once per process, and
    where it fails the plain product is used (the same product, up to the
    order of the float32 sums). The custom VJP makes the JAX CPU path
    reverse-mode only, like any `jax.custom_vjp`.

    Args:
        equation: str. Two operands, one output, one letter per axis, no
            ellipsis, no letter twice in an operand; each operand's letters
            appear in the other operand or in the output (so the gradient is
            two einsums of the same kind).
        a: float tensor.
        b: float tensor.
        float32_as_matmul: bool. On JAX's CPU, multiply float32 operands in
            that one-matmul form too. Grouped-query products (two row axes:
            a group's heads and its queries) need it: as a `jnp.einsum` the
            d512 window's forward and backward with one key head for eight
            query heads took 294-321 ms, as one batched matmul 210-232
            (`benchmarks/cpu_kernels.py --case window_grad --key-heads 8,1`),
            about 180 since the keys' gradient is transposed (below).

    Returns:
        The product, in the operands' dtype where they share one.
    """
    gradient_equations(equation)
    a, b = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
    if keras.backend.backend() != "jax" or not jax_on_cpu():
        return ops.einsum(equation, a, b)
    dtypes = {keras.backend.standardize_dtype(x.dtype) for x in (a, b)}
    if dtypes == {"float32"} and float32_as_matmul:
        return _jax_accumulating_einsum(equation)(a, b)
    if dtypes == {"bfloat16"} and _batched_accumulation_compiles():
        return _jax_accumulating_einsum(equation)(a, b)
    return ops.einsum(equation, a, b)


@functools.cache
def gradient_equations(equation):
    """`(gradient of a, gradient of b)` equations of `equation`'s product.

    Raises:
        ValueError: `equation` is not of the form `accumulating_einsum` takes.
    """
    inputs, arrow, output = equation.replace(" ", "").partition("->")
    operands = inputs.split(",")
    if not arrow or len(operands) != 2 or "." in equation:
        raise ValueError(
            f"`equation` must be of the form 'ab,bc->ac' (two operands, no ellipsis); "
            f"got {equation!r}."
        )
    a, b = operands
    if not set(output) <= set(a) | set(b):
        raise ValueError(
            f"Every axis of `equation`'s output must be an operand's; got {equation!r}."
        )
    for letters in (a, b, output or "z"):  # a scalar output is allowed
        if len(set(letters)) != len(letters) or not letters.isalpha():
            raise ValueError(
                f"`equation` must name each axis of an operand by one distinct letter; "
                f"got {equation!r}."
            )
    for letters, other in ((a, b), (b, a)):
        if not set(letters) <= set(other) | set(output):
            raise ValueError(
                f"In `equation` {equation!r}, an axis summed in one operand alone has no "
                "gradient product; sum it before the product."
            )
    return f"{output},{b}->{a}", f"{output},{a}->{b}"


@functools.cache
def _batched_accumulation_compiles():
    """Whether this jaxlib's CPU multiplies bfloat16 with a batch axis into float32.

    Compiled and run on concrete arrays, so that a first call inside a
    trace (Keras builds and trains under `jax.jit`) still runs the product
    instead of staging it.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    operand = np.ones((2, 2, 2), jnp.bfloat16)

    def product(a, b):
        return jnp.matmul(a, b, preferred_element_type=jnp.float32)

    try:
        with jax.ensure_compile_time_eval():
            compiled = jax.jit(product).lower(operand, operand).compile()
            jax.block_until_ready(compiled(operand, operand))
    except Exception:  # XLA's UNIMPLEMENTED; the plain product gives the same value
        return False
    return True


def _moved_elements(letters, order, sizes):
    """Elements a transpose of an operand named `letters` into `order` moves: 0 if none."""
    kept = [c for c in letters if sizes[c] > 1]
    if kept == [c for c in order if sizes[c] > 1]:
        return 0  # the same order once axes of size 1 are dropped: a reshape
    return math.prod(sizes[c] for c in letters)


def _batched_matmul_product(equation):
    """`equation`'s product as one `(batch, m, k) x (batch, k, n)` matmul into float32.

    XLA's CPU multiplies bfloat16 into float32 through its fast kernels in
    this form; with several batch axes it may pick its generic dot, which
    refuses the mixed types at run time. Keeping operands' last axes in place
    where that is possible (`(batch, n, k)` keys) measured slower in the whole
    attention's forward and backward (211 against 141 ms for a d512 layer).

    The matmul's layout is the one that moves the fewest elements: float32
    products are `a b` or, transposed, `(b' a')'`, and the rows, columns and
    summed axes take the output's or an operand's axis order. The keys'
    gradient is the case for the transposed form: as `a b` it transposes the
    `(queries, keys)` logits' gradient, as `(b' a')'` only the small queries
    and the result. With grouped heads (logits `(g, r, q, k)`, queries `(q,
    g, r, d)`) the queries' and values' gradients and the weights-by-values
    product keep the logits' `(r, q)` order and transpose only their small
    operand or result. XLA folds a transpose of a matmul's result back into
    the matmul (and so into a transpose of the large operand), so a result
    in another layout than the plain form's passes through an optimisation
    barrier first. On 2 cores of an AMD EPYC (Zen 4), the d512 window's
    float32 forward and backward with one key head took 180 ms with the
    keys' gradient transposed against 220 ms with every large transpose
    (medians of 12 steps alternated in one process); the keys' gradient
    alone, 24 against 32 ms (`benchmarks/cpu_kernels.py --case
    keys_grad_layout`). In bfloat16 the transposed form was no faster (123
    against 114 ms), so bfloat16 keeps `a b` and chooses only the orders.
    See docs/performance.md for the orders' gain.
    """
    import jax
    import jax.numpy as jnp

    inputs, output = equation.replace(" ", "").split("->")
    a, b = inputs.split(",")
    batch = [c for c in output if c in a and c in b]
    rows = [c for c in output if c in a and c not in b]
    columns = [c for c in output if c in b and c not in a]
    summed = [c for c in a if c in b and c not in output]

    def product(x, y):
        sizes = {**dict(zip(a, x.shape)), **dict(zip(b, y.shape))}

        def size(letters):
            return math.prod(sizes[c] for c in letters)

        def within(letters, operand):
            return [c for c in operand if c in letters]

        # Every layout of the matmul: which operand comes first, and the order
        # of its rows, columns and summed axes (the output's or an operand's).
        # The first one counted is the plain `a b` in the output's order, which
        # wins ties.
        forms = [(False, a, b, rows, columns)]
        if x.dtype == jnp.float32:
            forms.append((True, b, a, columns, rows))
        best = None
        for transposed, first, second, m, n in forms:
            for m_order in (m, within(m, first)):
                for n_order in (n, within(n, second)):
                    for s_order in (within(summed, first), within(summed, second)):
                        moved = (
                            _moved_elements(first, batch + m_order + s_order, sizes)
                            + _moved_elements(second, batch + s_order + n_order, sizes)
                            + _moved_elements(batch + m_order + n_order, output, sizes)
                        )
                        if best is None or moved < best[0]:
                            best = (moved, transposed, first, second, m_order, n_order, s_order)
        _, transposed, first, second, m, n, s_order = best
        if transposed:
            x, y = y, x
        x = jnp.transpose(x, [first.index(c) for c in batch + m + s_order])
        y = jnp.transpose(y, [second.index(c) for c in batch + s_order + n])
        x = x.reshape(size(batch), size(m), size(s_order))
        y = y.reshape(size(batch), size(s_order), size(n))
        z = jnp.matmul(x, y, preferred_element_type=jnp.float32)
        product_order = batch + m + n
        plain = not transposed and (m, n, s_order) == (rows, columns, summed)
        if not plain and _moved_elements(product_order, output, sizes):
            # XLA would fold the result's transpose into the matmul, and so
            # back into a transpose of an operand.
            z = jax.lax.optimization_barrier(z)
        z = z.reshape([sizes[c] for c in product_order])
        return jnp.transpose(z, [product_order.index(c) for c in output])

    return product


@functools.cache
def _jax_accumulating_einsum(equation):
    import jax

    a_equation, b_equation = gradient_equations(equation)
    forward_product = _batched_matmul_product(equation)
    a_product = _batched_matmul_product(a_equation)
    b_product = _batched_matmul_product(b_equation)

    @jax.custom_vjp
    def einsum(a, b):
        return forward_product(a, b).astype(a.dtype)

    def forward(a, b):
        return forward_product(a, b).astype(a.dtype), (a, b)

    def backward(saved, grad):
        a, b = saved
        grad = grad.astype(a.dtype)
        return a_product(grad, b).astype(a.dtype), b_product(grad, a).astype(b.dtype)

    einsum.defvjp(forward, backward)
    return einsum
