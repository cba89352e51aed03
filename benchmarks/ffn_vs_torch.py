"""The bfloat16 feed-forward network and its kernel gradient, on JAX against PyTorch.

The Block-Recurrent step's profile in `mixed_bfloat16` ranks the feed-forward network's
backward products first. This script asks whether that network, alone, is slower than the
PyTorch peer's at the d512 config's shapes (`(2, 2048, 512)` tokens, 2,048 hidden units):

- `ffn`: forward and backward of `keras_memory.layers.FeedForward(2048)` under
  `mixed_bfloat16` (compiled `jax.grad` of `sum(y^2 * cotangent)` with respect to its weights
  and its input), against PyTorch's `Linear(512, 2048) -> GELU -> Linear(2048, 512)` under
  `torch.autocast(bfloat16)` with the same weights and cotangent. The loss squares the outputs:
  with `sum(y * cotangent)` the gradient does not need the outputs, and XLA dropped the forward
  pass's second product (five products against PyTorch's six). The two are timed alternately,
  call by call, so the host's drift falls on both alike.
- `kernel_grad`: the first kernel's gradient, `x^T g` for bfloat16 `x (4096, 512)` and
  `g (4096, 2048)` accumulated into float32, in each form tried: a `dot_general` contracting
  the 4,096 rows; the same product from a contiguous transposed `x` (the form XLA gives the
  layer: it copies `x` transposed, then multiplies); the rows split into 2, 4 or 8 as a
  batched product and as a loop of products, summed; the transpose behind an optimisation
  barrier; and PyTorch's `x.T @ g`.
- `products`: the network's six products one dense layer at a time, as the layer hands them to
  XLA (`keras_memory.backend.accumulating_matmul`: its product, then its two gradient
  products), against the same products in PyTorch, alternately.

It prints one JSON line per variant: the median milliseconds of `--repeats` calls after one
that compiles, and GFLOP/s for the products.

Reproduce (from the repository root):
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
        .venv/bin/python -P benchmarks/ffn_vs_torch.py --repeats 21
"""

import argparse
import json
import os
import statistics
import time

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from keras_memory.layers import FeedForward  # noqa: E402

BATCH, LENGTH, HIDDEN, INTERMEDIATE = 2, 2048, 512, 2048
ROWS = BATCH * LENGTH
KERNEL_GRAD_FLOPS = 2 * ROWS * HIDDEN * INTERMEDIATE


def timed_ms(fn, *args):
    """Milliseconds of one call, its results waited for."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) * 1e3


def compiled_products(fn, *args):
    """How many products XLA's compiled program of `fn(*args)` computes.

    A product the result does not need is dropped by XLA: counting them shows
    that what is timed is all of the work.
    """
    return fn.lower(*args).compile().as_text().count(" dot(")


def emit(case, variant, times, flops=None, **extra):
    ms = round(statistics.median(times), 1)
    line = {"case": case, "variant": variant, "ms": ms, "calls": len(times), **extra}
    if flops:
        line["gflops"] = round(flops / ms / 1e6)
    print(json.dumps(line), flush=True)


def relative_difference(value, reference):
    """Largest absolute difference, over the reference's largest magnitude."""
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(value - reference)) / np.max(np.abs(reference)))


def keras_step(shape):
    """`FeedForward(2048)` (exact GELU), and its compiled forward and backward pass."""
    layer = FeedForward(INTERMEDIATE, dtype="mixed_bfloat16")
    layer.build(shape)

    def loss(weights, x, cotangent):
        y, _ = layer.stateless_call(weights, [], x, training=True)
        return jnp.sum(jnp.square(y.astype("float32")) * cotangent)

    return layer, jax.jit(jax.grad(loss, argnums=(0, 1)))


def ffn(rng, repeats):
    x = rng.standard_normal((BATCH, LENGTH, HIDDEN), dtype=np.float32)
    cotangent = rng.standard_normal((BATCH, LENGTH, HIDDEN), dtype=np.float32)
    # The loss squares the outputs, so each side computes them (with a linear
    # loss XLA would drop the forward pass's second product).
    layer, jax_step = keras_step(x.shape)
    weights = [v.value for v in layer.trainable_variables]
    jax_args = (weights, jnp.asarray(x), jnp.asarray(cotangent))

    # The same network: no biases (FeedForward has none), exact GELU, Keras's weights.
    torch_model = torch.nn.Sequential(
        torch.nn.Linear(HIDDEN, INTERMEDIATE, bias=False),
        torch.nn.GELU(),
        torch.nn.Linear(INTERMEDIATE, HIDDEN, bias=False),
    )
    with torch.no_grad():
        for linear, kernel in zip((torch_model[0], torch_model[2]), weights):
            linear.weight.copy_(torch.from_numpy(np.asarray(kernel).T.copy()))
    torch_x = torch.from_numpy(x).requires_grad_(True)
    torch_cotangent = torch.from_numpy(cotangent)

    def torch_step():
        torch_model.zero_grad(set_to_none=True)
        torch_x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = torch_model(torch_x)
        (y.float().square() * torch_cotangent).sum().backward()

    # Both compute the same outputs (to bfloat16's precision): like is timed with like.
    keras_outputs = layer.stateless_call(weights, [], jnp.asarray(x))[0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch_outputs = torch_model(torch_x).float().numpy()
    difference = round(relative_difference(keras_outputs, torch_outputs), 4)
    torch_step()
    torch_gradients = sum(t.grad is not None for t in (torch_x, *torch_model.parameters()))

    steps = {
        "keras_memory FeedForward(2048), mixed_bfloat16, jax.grad": (jax_step, jax_args),
        "torch Linear -> GELU -> Linear, autocast bfloat16, backward": (torch_step, ()),
    }
    times = {name: [] for name in steps}
    for step, args in steps.values():
        timed_ms(step, *args)
    for _ in range(repeats):
        for name, (step, args) in steps.items():
            times[name].append(timed_ms(step, *args))
    for name, step_times in times.items():
        if name.startswith("keras"):
            extra = {
                "outputs_difference_from_torch": difference,
                "products_compiled": compiled_products(jax_step, *jax_args),
            }
        else:
            extra = {"gradients": torch_gradients}
        emit("ffn", name, step_times, **extra)


def kernel_grad_forms():
    """`x^T g` (bfloat16 in, float32 out) in each form, by name."""
    f32 = jnp.float32

    def contract_rows(x, g):
        return jax.lax.dot_general(x, g, (((0,), (0,)), ((), ())), preferred_element_type=f32)

    def contiguous_transpose(x_t, g):
        return jnp.dot(x_t, g, preferred_element_type=f32)

    def split_batched(parts):
        def form(x, g):
            xs, gs = x.reshape(parts, -1, HIDDEN), g.reshape(parts, -1, INTERMEDIATE)
            partial = jnp.einsum("nra,nrb->nab", xs, gs, preferred_element_type=f32)
            return jnp.sum(partial, axis=0)

        return form

    def split_loop(parts):
        def form(x, g):
            step = ROWS // parts
            return sum(
                contract_rows(x[i * step : (i + 1) * step], g[i * step : (i + 1) * step])
                for i in range(parts)
            )

        return form

    def barrier_transpose(x, g):
        x_t = jax.lax.optimization_barrier(x.T)
        return jnp.dot(x_t, g, preferred_element_type=f32)

    forms = {
        "dot_general contracting the rows": (contract_rows, False),
        "a contiguous transposed x (given)": (contiguous_transpose, True),
        "x transposed behind an optimization_barrier": (barrier_transpose, False),
    }
    for parts in (2, 4, 8):
        forms[f"rows split in {parts}, batched product, summed"] = (split_batched(parts), False)
        forms[f"rows split in {parts}, loop of products, summed"] = (split_loop(parts), False)
    return forms


def kernel_grad(rng, repeats):
    x = rng.standard_normal((ROWS, HIDDEN), dtype=np.float32)
    g = rng.standard_normal((ROWS, INTERMEDIATE), dtype=np.float32)
    x16, g16 = jnp.asarray(x, jnp.bfloat16), jnp.asarray(g, jnp.bfloat16)
    x16_t = jnp.asarray(x.T.copy(), jnp.bfloat16)
    # Every form multiplies the same bfloat16 numbers: the reference is their exact product.
    reference = np.asarray(x16, np.float64).T @ np.asarray(g16, np.float64)
    for name, (form, transposed) in kernel_grad_forms().items():
        fn = jax.jit(form)
        args = (x16_t if transposed else x16, g16)
        difference = round(relative_difference(fn(*args), reference), 6)
        emit(
            "kernel_grad",
            f"jax {name}",
            [timed_ms(fn, *args) for _ in range(repeats)],
            KERNEL_GRAD_FLOPS,
            difference_from_exact=difference,
        )
    torch_x, torch_g = torch.from_numpy(x).bfloat16(), torch.from_numpy(g).bfloat16()

    def torch_form():
        return torch_x.T @ torch_g

    difference = round(relative_difference(torch_form().float().numpy(), reference), 6)
    emit(
        "kernel_grad",
        "torch x.T @ g (bfloat16 out)",
        [timed_ms(torch_form) for _ in range(repeats)],
        KERNEL_GRAD_FLOPS,
        difference_from_exact=difference,
    )


def products(rng, repeats):
    from keras_memory.backend import accumulating_matmul

    def backward(x, kernel, grad):
        # The primal product is unused, so XLA drops it: the two gradient
        # products alone (`products_compiled` says so).
        return jax.vjp(accumulating_matmul, x, kernel)[1](grad)

    jax_forward, jax_backward = jax.jit(accumulating_matmul), jax.jit(backward)
    for name, (n, m) in {
        "intermediate 512 -> 2048": (HIDDEN, INTERMEDIATE),
        "output 2048 -> 512": (INTERMEDIATE, HIDDEN),
    }.items():
        # Flat rows, as `FeedForward` gives its dense layers the tokens.
        x = rng.standard_normal((ROWS, n), dtype=np.float32)
        kernel = rng.standard_normal((n, m), dtype=np.float32) * n**-0.5
        grad = rng.standard_normal((ROWS, m), dtype=np.float32)
        jax_args = [jnp.asarray(a, jnp.bfloat16) for a in (x, kernel, grad)]
        torch_x, torch_kernel, torch_grad = (
            torch.from_numpy(a).bfloat16() for a in (x, kernel, grad)
        )

        def torch_forward(torch_x=torch_x, torch_kernel=torch_kernel):
            return torch_x @ torch_kernel

        def torch_backward(torch_x=torch_x, torch_kernel=torch_kernel, torch_grad=torch_grad):
            return torch_grad @ torch_kernel.T, torch_x.T @ torch_grad

        # The same products on both sides (to bfloat16's rounding).
        jax_grads = jax_backward(*jax_args)
        difference = max(
            relative_difference(
                jax_forward(*jax_args[:2]).astype(jnp.float32),
                torch_forward().float(),
            ),
            *(
                relative_difference(ours.astype(jnp.float32), theirs.float())
                for ours, theirs in zip(jax_grads, torch_backward())
            ),
        )
        flops = 2 * ROWS * n * m
        steps = {
            "forward": ((jax_forward, jax_args[:2]), torch_forward, flops),
            "backward (two products)": ((jax_backward, jax_args), torch_backward, 2 * flops),
        }
        for part, ((jax_fn, args), torch_fn, part_flops) in steps.items():
            timed_ms(jax_fn, *args)
            torch_fn()
            jax_times, torch_times = [], []
            for _ in range(repeats):
                jax_times.append(timed_ms(jax_fn, *args))
                torch_times.append(timed_ms(torch_fn))
            emit(
                "products",
                f"jax accumulating_matmul, {name}, {part}",
                jax_times,
                part_flops,
                difference_from_torch=round(difference, 4),
                products_compiled=compiled_products(jax_fn, *args),
            )
            emit("products", f"torch, {name}, {part}", torch_times, part_flops)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case",
        choices=("ffn", "kernel_grad", "products"),
        action="append",
        help="Which measurement (repeatable); all by default.",
    )
    parser.add_argument("--repeats", type=int, default=15, help="Timed calls per variant.")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    cases = {"ffn": ffn, "kernel_grad": kernel_grad, "products": products}
    for case in args.case or cases:
        cases[case](rng, args.repeats)


if __name__ == "__main__":
    main()
