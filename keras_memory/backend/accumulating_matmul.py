"""A dense layer's product, with bfloat16 operands accumulated in float32 where that is faster."""

import functools

import keras
from keras import ops


def accumulating_matmul(x, kernel):
    """Returns `x @ kernel`, `kernel` a 2-D matrix, in `x`'s dtype.

    On every backend the value is the product of `ops.matmul`. On JAX's CPU,
    bfloat16 operands are multiplied with float32 accumulation
    (`preferred_element_type=float32`, rounded to bfloat16 after), and so are
    the two products of the gradient, by a custom VJP: XLA's CPU runs that
    form through its fast matmul kernels, where a bfloat16 result takes a slow
    path, and JAX's own transpose of the float32-accumulated product would
    multiply a float32 gradient by a bfloat16 operand, which runs at the
    float32 rate. A `(2, 2048, 512) x (512, 2048)` product with both of its
    gradient products ran at 277 GFLOP/s this way against 164 as a plain
    bfloat16 product and 140 in float32 on 2 cores of an AMD EPYC (Zen 4;
    `benchmarks/cpu_kernels.py --case dense_grad`, 2026-12-06). GPUs already accumulate a
    bfloat16 product in float32 inside the kernel, so they keep the plain
    product. The custom VJP makes the JAX CPU path reverse-mode only, like
    any `jax.custom_vjp`.

    Args:
        x: float tensor `(..., n)`.
        kernel: float tensor `(n, m)`.

    Returns:
        A tensor `(..., m)`.
    """
    if len(kernel.shape) != 2:
        raise ValueError(f"`kernel` must be a 2-D matrix (n, m); got shape {tuple(kernel.shape)}.")
    if x.shape[-1] is not None and kernel.shape[0] is not None and x.shape[-1] != kernel.shape[0]:
        raise ValueError(
            f"`x`'s last axis must match `kernel`'s first; got x {tuple(x.shape)} and "
            f"kernel {tuple(kernel.shape)}."
        )
    # A variable reads as its autocast value under a mixed policy.
    x, kernel = ops.convert_to_tensor(x), ops.convert_to_tensor(kernel)
    if (
        keras.backend.backend() != "jax"
        or keras.backend.standardize_dtype(x.dtype) != "bfloat16"
        or keras.backend.standardize_dtype(kernel.dtype) != "bfloat16"
        or not jax_on_cpu()
    ):
        return ops.matmul(x, kernel)
    return _jax_accumulating_matmul()(x, kernel)


def jax_on_cpu():
    """Whether JAX computes on the CPU (where its bfloat16 products are slow)."""
    import jax

    return jax.default_backend() == "cpu"


@functools.cache
def _jax_accumulating_matmul():
    import jax
    import jax.numpy as jnp

    def product(a, b):
        return jnp.matmul(a, b, preferred_element_type=jnp.float32).astype(a.dtype)

    @jax.custom_vjp
    def matmul(x, kernel):
        return product(x, kernel)

    def forward(x, kernel):
        return product(x, kernel), (x, kernel)

    def backward(saved, grad):
        x, kernel = saved
        grad = grad.astype(x.dtype)
        # The same two row axes for the input's gradient: with `x` 2-D, XLA's
        # CPU ran `(4096, 2048) x (2048, 512)` (a transposed kernel) into
        # float32 at 185-198 GFLOP/s as one row axis, 374-375 as two
        # (`benchmarks/cpu_kernels.py --case dense_grad`). The one-axis form
        # was slow because XLA converted both operands to float32 for it; the
        # two-axis form keeps them bfloat16 (XLA may still merge the axes).
        x_grad = jax.lax.dot_general(
            _two_row_axes(grad),
            kernel,
            (((2,), (1,)), ((), ())),
            preferred_element_type=jnp.float32,
        )
        x_grad = x_grad.reshape(x.shape).astype(x.dtype)
        kernel_grad = jax.lax.dot_general(
            _two_row_axes(x),
            _two_row_axes(grad),
            (((0, 1), (0, 1)), ((), ())),
            preferred_element_type=jnp.float32,
        )
        return x_grad, kernel_grad.astype(kernel.dtype)

    matmul.defvjp(forward, backward)
    return matmul


def _two_row_axes(tensor):
    """`tensor` `(..., n)` as `(a, b, n)`: its rows on two axes, for the gradient's products.

    The kernel's gradient sums over every row. Contracting two row axes, no
    batch axes, XLA's CPU multiplied a `(2, 2048, 512)` by a `(2, 2048, 2048)`
    bfloat16 tensor into float32 at 352 GFLOP/s; as one axis of 4,096 rows
    (a transposed `(512, 4096)` operand) at 186 (`benchmarks/cpu_kernels.py
    --case dense_grad`).
    """
    rows = tensor.reshape(-1, tensor.shape[-1])
    split = 2 if rows.shape[0] % 2 == 0 else 1
    return rows.reshape(split, rows.shape[0] // split, tensor.shape[-1])
