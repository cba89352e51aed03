"""The kernel-level measurements behind docs/performance.md's CPU profile, on JAX (and PyTorch).

Each case prints one JSON line with the median milliseconds of `--repeats` calls (after one
compiling call), at the d512 peer config's shapes (batch 2, 2,048 tokens, 8 heads of 64, window
512):

- `reduce_leading`: the sum of a `(2, 4, 8, 512, 1024)` float32 tensor over its first two axes,
  as XLA's reduce and as a dot with ones (what `add_over_leading_axes` does for the position
  bias's gradient).
- `ffn`: forward and backward of a 512 -> 2048 (exact gelu) -> 512 feed-forward network on
  `(2, 2048, 512)` tokens, projected as a 3-D tensor and as a flat `(4096, 512)` matrix.
- `attention`: forward and backward of `keras_memory.ops.sliding_window_attention` (cache,
  position bias, scale) for several `query_block` sizes.
- `matmul`: GFLOP/s of a `(4096, 512) x (512, 2048)` matmul and of the batched `(16, 512, 64) x
  (16, 64, 1024)` attention-shaped matmul, in JAX and, when it is installed, PyTorch.
- `matmul` also times the plain product in bfloat16 (XLA's bfloat16-out and float32-out
  forms, PyTorch's): the CPU's bfloat16 ceiling.
- `dense_grad`: forward and backward (the three products of a training step) of a dense
  layer's `(2, 2048, 512) x (512, 2048)` product in float32, in bfloat16, in bfloat16
  accumulated into float32 with JAX's own gradient, and through
  `keras_memory.backend.accumulating_matmul` (whose gradient accumulates in float32 too); then
  the kernel's gradient alone in bfloat16 into float32, its 4,096 rows as one axis and as two.
- `attention_grad`: forward and backward of the d512 window's batched logits product
  `(2, 8, 256, 8, 64) x (2, 8, 768, 8, 64)` as `jnp.einsum` and through
  `keras_memory.backend.accumulating_einsum`, in float32 and bfloat16.
- `window_grad`: forward and backward of the whole `sliding_window_attention` (cache, position
  bias) in float32 and bfloat16; it imports nothing newer, so it also times an old checkout.
  `--key-heads 8,1` times it with 8 and with 1 key/value head for the 8 query heads (grouped
  queries: one product of 8 heads' rows against the shared keys).
- `keys_grad_layout`: the keys' gradient of the d512 window with one key head, `(16, 2048, 768)`
  contracted over its 2,048 rows with `(16, 2048, 64)` queries, as a transpose and a matmul, as
  a `lax.dot_general` that names the contracted axis, and as the transposed product (queries'
  transpose times the gradient, the small result transposed after an optimisation barrier: the
  form `keras_memory.backend.accumulating_einsum` takes).
- `allocation`: writing a new 134 MB float32 buffer (`x * 2`) against reading one (`sum`):
  run it with and without `LD_PRELOAD` of tcmalloc to see what the allocator costs.
- `knn_search`: the Memorizing layer's search at d512 with 16,384 entries: 16 (row, head)
  products `(256, 64) x (64, 16384)` batched and as a `jax.lax.map` (the form
  `map_over_leading_axis` gives on JAX's CPU), and `keras_memory.ops.exact_top_k` of 2,048
  queries (its two-stage top-k, (row, head) pairs one by one).

Reproduce (from the repository root):
    .venv/bin/python benchmarks/cpu_kernels.py
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from keras_memory.ops import (  # noqa: E402
    exact_top_k,
    relative_positions,
    sliding_window_attention,
    t5_relative_position_buckets,
)

CASES = (
    "reduce_leading",
    "ffn",
    "attention",
    "matmul",
    "dense_grad",
    "attention_grad",
    "window_grad",
    "keys_grad_layout",
    "knn_search",
    "allocation",
)


def median_ms(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 1)


def compiled_products(fn, *args):
    """The products in XLA's compiled program of `fn(*args)` (it drops unneeded ones)."""
    return fn.lower(*args).compile().as_text().count(" dot(")


def emit(case, variant, ms, **extra):
    print(json.dumps({"case": case, "variant": variant, "ms": ms, **extra}), flush=True)


def reduce_leading(rng, repeats):
    x = jnp.asarray(rng.standard_normal((2, 4, 8, 512, 1024), dtype=np.float32))
    emit(
        "reduce_leading",
        "xla_reduce",
        median_ms(jax.jit(lambda x: x.sum((0, 1))), x, repeats=repeats),
    )

    def as_dot(x):
        return jax.lax.dot_general(jnp.ones((2, 4)), x, (((0, 1), (0, 1)), ((), ())))

    emit("reduce_leading", "dot_with_ones", median_ms(jax.jit(as_dot), x, repeats=repeats))


def ffn(rng, repeats):
    x = jnp.asarray(rng.standard_normal((2, 2048, 512), dtype=np.float32))
    w1 = jnp.asarray(rng.standard_normal((512, 2048), dtype=np.float32) * 0.02)
    w2 = jnp.asarray(rng.standard_normal((2048, 512), dtype=np.float32) * 0.02)

    def gelu(h):
        return jax.nn.gelu(h, approximate=False)

    # A loss that needs the outputs: with a plain sum XLA dropped the second product.
    cotangent = jnp.asarray(rng.standard_normal((4096, 512), dtype=np.float32))

    def tokens_3d(w1, w2, x):
        return jnp.sum(jnp.square(gelu(x @ w1) @ w2) * cotangent.reshape(2, 2048, 512))

    def tokens_2d(w1, w2, x):
        return jnp.sum(jnp.square(gelu(x.reshape(-1, 512) @ w1) @ w2) * cotangent)

    for name, loss in (("3d", tokens_3d), ("2d", tokens_2d)):
        step = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
        emit("ffn", name, median_ms(step, w1, w2, x, repeats=repeats))


def attention(rng, repeats, blocks):
    b, s, h, d, w = 2, 2048, 8, 64, 512
    q, k, v = (jnp.asarray(rng.standard_normal((b, s, h, d), dtype=np.float32)) for _ in range(3))
    cache_k, cache_v = (
        jnp.asarray(rng.standard_normal((b, w, h, d), dtype=np.float32)) for _ in range(2)
    )
    table = jnp.asarray(rng.standard_normal((h, 32), dtype=np.float32))
    buckets = t5_relative_position_buckets(relative_positions(w, 2 * w))
    valid = jnp.array([True, False])

    for block in blocks:

        def loss(q, k, v, table, scale, block=block):
            out = sliding_window_attention(
                q,
                k,
                v,
                window_length=w,
                cache_keys=cache_k,
                cache_values=cache_v,
                cache_valid=valid,
                position_bias=jnp.take(table, buckets, axis=1),
                logit_scale=scale,
                query_block=block,
            )
            return (out * out).sum()

        step = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))
        ms = median_ms(step, q, k, v, table, jnp.ones((h,)), repeats=repeats)
        emit("attention", f"query_block={block}", ms)


def matmul(rng, repeats):
    a = rng.standard_normal((4096, 512), dtype=np.float32)
    b = rng.standard_normal((512, 2048), dtype=np.float32)
    q = rng.standard_normal((16, 512, 64), dtype=np.float32)
    k = rng.standard_normal((16, 1024, 64), dtype=np.float32)
    flops = {"plain": 2 * 4096 * 512 * 2048, "batched": 2 * 16 * 512 * 1024 * 64}
    flops["plain_bf16"] = flops["plain_bf16_f32_out"] = flops["plain"]
    a16, b16 = jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16)
    jax_fns = {
        "plain": (jax.jit(lambda a, b: a @ b), (jnp.asarray(a), jnp.asarray(b))),
        "batched": (
            jax.jit(lambda q, k: jnp.einsum("bqd,bkd->bqk", q, k)),
            (jnp.asarray(q), jnp.asarray(k)),
        ),
        # What Keras's mixed_bfloat16 Dense asks for (bfloat16 out), and the
        # same product accumulated into float32: XLA's CPU runs them apart.
        "plain_bf16": (jax.jit(lambda a, b: a @ b), (a16, b16)),
        "plain_bf16_f32_out": (
            jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32)),
            (a16, b16),
        ),
    }
    for name, (fn, args) in jax_fns.items():
        ms = median_ms(fn, *args, repeats=repeats)
        emit("matmul", f"jax_{name}", ms, gflops=round(flops[name] / ms / 1e6, 1))
    try:
        import torch
    except ImportError:
        return
    torch_fns = {
        "plain": (lambda a, b: a @ b, (torch.from_numpy(a), torch.from_numpy(b))),
        "plain_bf16": (
            lambda a, b: a @ b,
            (torch.from_numpy(a).bfloat16(), torch.from_numpy(b).bfloat16()),
        ),
        "batched": (
            lambda q, k: torch.einsum("bqd,bkd->bqk", q, k),
            (torch.from_numpy(q), torch.from_numpy(k)),
        ),
    }
    for name, (fn, args) in torch_fns.items():
        fn(*args)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - start)
        ms = round(statistics.median(times) * 1e3, 1)
        emit("matmul", f"torch_{name}", ms, gflops=round(flops[name] / ms / 1e6, 1))


def squared_product_grad(case, name, product, operands, cotangent, flops, repeats):
    """Times and emits forward and backward of `sum(product(a, b)^2 * cotangent)`.

    The loss needs the product, so XLA keeps all three products: with a plain
    sum it dropped the forward one and the GFLOP/s counted three where two ran
    (corrected 2026-12-06; `products_compiled` shows the count).
    """
    grad = jax.jit(
        jax.grad(
            lambda a, b: jnp.sum(jnp.square(product(a, b).astype(jnp.float32)) * cotangent),
            argnums=(0, 1),
        )
    )
    ms = median_ms(grad, *operands, repeats=repeats)
    emit(
        case,
        name,
        ms,
        gflops=round(flops / ms / 1e6, 1),
        products_compiled=compiled_products(grad, *operands),
    )


def dense_grad(rng, repeats):
    import keras

    from keras_memory.backend import accumulating_matmul

    if keras.backend.backend() != "jax":
        raise SystemExit("the dense_grad case times JAX: run it with KERAS_BACKEND=jax")
    x = rng.standard_normal((2, 2048, 512), dtype=np.float32)
    kernel = rng.standard_normal((512, 2048), dtype=np.float32) * 0.05
    flops = 3 * 2 * 4096 * 512 * 2048
    products = {
        "float32": (jnp.matmul, jnp.float32),
        "bf16": (jnp.matmul, jnp.bfloat16),
        "bf16_f32_accumulation_jax_grad": (
            lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32).astype(a.dtype),
            jnp.bfloat16,
        ),
        "bf16_accumulating_matmul": (accumulating_matmul, jnp.bfloat16),
    }
    output_cotangent = jnp.asarray(rng.standard_normal((2, 2048, 2048), dtype=np.float32))
    for name, (product, dtype) in products.items():
        operands = (jnp.asarray(x, dtype), jnp.asarray(kernel, dtype))
        squared_product_grad(
            "dense_grad", name, product, operands, output_cotangent, flops, repeats
        )
    # The kernel's gradient alone, bfloat16 into float32: the rows as one
    # axis (a transposed operand) and as two (what accumulating_matmul does).
    cotangent = jnp.asarray(rng.standard_normal((2, 2048, 2048), dtype=np.float32), jnp.bfloat16)
    rows = jnp.asarray(x, jnp.bfloat16)
    forms = {
        "kernel_grad_one_row_axis": lambda a, g: jnp.matmul(
            a.reshape(-1, 512).T, g.reshape(-1, 2048), preferred_element_type=jnp.float32
        ),
        "kernel_grad_two_row_axes": lambda a, g: jax.lax.dot_general(
            a, g, (((0, 1), (0, 1)), ((), ())), preferred_element_type=jnp.float32
        ),
    }
    for name, form in forms.items():
        ms = median_ms(jax.jit(form), rows, cotangent, repeats=repeats)
        emit("dense_grad", name, ms, gflops=round(flops / 3 / ms / 1e6, 1))
    # The input's gradient, with the rows flattened to one axis as a layer on
    # 2-D tokens has them: as one row axis (kernel transposed) and as two.
    kernel_bf16 = jnp.asarray(kernel, jnp.bfloat16)
    flat_cotangent = cotangent.reshape(-1, 2048)
    forms = {
        "input_grad_one_row_axis": lambda g, k: jnp.matmul(
            g, k.T, preferred_element_type=jnp.float32
        ),
        "input_grad_two_row_axes": lambda g, k: jax.lax.dot_general(
            g.reshape(2, -1, 2048), k, (((2,), (1,)), ((), ())), preferred_element_type=jnp.float32
        ),
    }
    for name, form in forms.items():
        ms = median_ms(jax.jit(form), flat_cotangent, kernel_bf16, repeats=repeats)
        emit("dense_grad", name, ms, gflops=round(flops / 3 / ms / 1e6, 1))
    # The whole product and gradient with 2-D rows `(4096, 512)`.
    squared_product_grad(
        "dense_grad",
        "bf16_accumulating_matmul_2d_rows",
        accumulating_matmul,
        (rows.reshape(-1, 512), kernel_bf16),
        output_cotangent.reshape(-1, 2048),
        flops,
        repeats,
    )


def attention_grad(rng, repeats):
    import keras

    from keras_memory.backend import accumulating_einsum

    if keras.backend.backend() != "jax":
        raise SystemExit("the attention_grad case times JAX: run it with KERAS_BACKEND=jax")
    # The d512 window's logits: 2 rows x 8 query blocks x 8 heads, 256 queries, 768 keys.
    queries = rng.standard_normal((2, 8, 256, 8, 64), dtype=np.float32)
    keys = rng.standard_normal((2, 8, 768, 8, 64), dtype=np.float32)
    equation = "bnqhd,bnkhd->bnhqk"
    flops = 3 * 2 * 128 * 256 * 64 * 768
    products = {
        "float32_einsum": (jnp.einsum, jnp.float32),
        "bf16_einsum": (jnp.einsum, jnp.bfloat16),
        "float32_accumulating_einsum": (accumulating_einsum, jnp.float32),
        "bf16_accumulating_einsum": (accumulating_einsum, jnp.bfloat16),
    }
    logits_cotangent = jnp.asarray(rng.standard_normal((2, 8, 8, 256, 768), dtype=np.float32))
    for name, (product, dtype) in products.items():
        operands = (jnp.asarray(queries, dtype), jnp.asarray(keys, dtype))
        squared_product_grad(
            "attention_grad",
            name,
            lambda a, b, p=product: p(equation, a, b),
            operands,
            logits_cotangent,
            flops,
            repeats,
        )


def window_grad(rng, repeats, key_heads=(8,)):
    # Only what every commit has (no keras_memory.backend import), so that
    # `PYTHONPATH=OLD_CHECKOUT python benchmarks/cpu_kernels.py --case window_grad`
    # times an older attention with the same call (at the default 8 key heads).
    b, s, h, d, w = 2, 2048, 8, 64, 512
    buckets = t5_relative_position_buckets(relative_positions(w, 2 * w))
    table = jnp.asarray(rng.standard_normal((h, 32), dtype=np.float32) * 0.1)
    for g, dtype in ((g, dtype) for g in key_heads for dtype in (jnp.float32, jnp.bfloat16)):
        q = jnp.asarray(rng.standard_normal((b, s, h, d), dtype=np.float32) * 0.1, dtype)
        k, v = (
            jnp.asarray(rng.standard_normal((b, s, g, d), dtype=np.float32) * 0.1, dtype)
            for _ in range(2)
        )
        cache_k, cache_v = (
            jnp.asarray(rng.standard_normal((b, w, g, d), dtype=np.float32) * 0.1, dtype)
            for _ in range(2)
        )

        def loss(q, k, v, cache_k=cache_k, cache_v=cache_v):
            out = sliding_window_attention(
                q,
                k,
                v,
                window_length=w,
                cache_keys=cache_k,
                cache_values=cache_v,
                cache_valid=jnp.ones((b,), bool),
                position_bias=jnp.take(table, buckets, axis=1),
            )
            return out.astype(jnp.float32).sum()

        step = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
        ms = median_ms(step, q, k, v, repeats=repeats)
        name = f"sliding_window_attention_{jnp.dtype(dtype).name}"
        emit("window_grad", name if g == h else f"{name}_key_heads_{g}", ms)


def keys_grad_layout(rng, repeats):
    # The keys' gradient of the d512 window with one key head: the logits'
    # gradient (16 batches of 2,048 rows by 768 keys) contracted over its rows
    # with the queries, written as a transpose and a matmul and as a
    # `lax.dot_general` naming the contracted axis (no transpose asked for).
    g = jnp.asarray(rng.standard_normal((16, 2048, 768), dtype=np.float32))
    q = jnp.asarray(rng.standard_normal((16, 2048, 64), dtype=np.float32))

    def transposed(g, q):
        return jnp.matmul(jnp.swapaxes(g, 1, 2), q)

    def contracted(g, q):
        return jax.lax.dot_general(g, q, (((1,), (1,)), ((0,), (0,))))

    def transposed_product(g, q):
        # XLA would fold the result's transpose into the product (giving the
        # first form again) without the barrier.
        product = jax.lax.dot_general(q, g, (((1,), (1,)), ((0,), (0,))))  # (16, 64, 768)
        return jnp.swapaxes(jax.lax.optimization_barrier(product), 1, 2)

    variants = (
        ("transpose_matmul", transposed),
        ("dot_general", contracted),
        ("transposed_product", transposed_product),
    )
    for name, fn in variants:
        emit("keys_grad_layout", name, median_ms(jax.jit(fn), g, q, repeats=repeats))


def allocation(rng, repeats):
    # The size of the Memorizing layer's retrieved keys at d512: (2, 8, 2048, 32, 64).
    x = jnp.asarray(rng.standard_normal((2, 8, 2048, 32, 64), dtype=np.float32))
    emit("allocation", "write_new_134mb", median_ms(jax.jit(lambda x: x * 2.0), x, repeats=repeats))
    emit("allocation", "read_134mb", median_ms(jax.jit(lambda x: x.sum(-1)), x, repeats=repeats))


def knn_search(rng, repeats):
    a = jnp.asarray(rng.standard_normal((16, 256, 64), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((16, 64, 16384), dtype=np.float32))
    flops = 2 * 16 * 256 * 64 * 16384

    def block_max(scores):  # what the two-stage search reads; keeps XLA from dropping work
        return scores.reshape(*scores.shape[:-1], -1, 32).max(-1)

    variants = {
        "batched_matmul": jax.jit(lambda a, b: block_max(a @ b)),
        "lax_map_matmul": jax.jit(
            lambda a, b: jax.lax.map(lambda x: block_max(x[0] @ x[1]), (a, b))
        ),
    }
    for name, fn in variants.items():
        ms = median_ms(fn, a, b, repeats=repeats)
        emit("knn_search", name, ms, gflops=round(flops / ms / 1e6, 1))
    queries = jnp.asarray(rng.standard_normal((2, 2048, 8, 64), dtype=np.float32))
    keys = jnp.asarray(rng.standard_normal((2, 16384, 8, 64), dtype=np.float32))
    valid = jnp.asarray(np.arange(16384)[None].repeat(2, 0) < 15000)
    search = jax.jit(lambda q, m, v: exact_top_k(q, m, v, 32))
    emit("knn_search", "exact_top_k", median_ms(search, queries, keys, valid, repeats=repeats))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--case",
        action="append",
        choices=CASES,
    )
    parser.add_argument("--query-blocks", default="512,256,128,64")
    parser.add_argument(
        "--key-heads",
        default="8",
        help="window_grad: comma-separated key/value heads (grouped queries), e.g. 8,1.",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = args.case or CASES
    if "reduce_leading" in cases:
        reduce_leading(rng, args.repeats)
    if "ffn" in cases:
        ffn(rng, args.repeats)
    if "attention" in cases:
        attention(rng, args.repeats, [int(b) for b in args.query_blocks.split(",")])
    if "matmul" in cases:
        matmul(rng, args.repeats)
    if "dense_grad" in cases:
        dense_grad(rng, args.repeats)
    if "attention_grad" in cases:
        attention_grad(rng, args.repeats)
    if "window_grad" in cases:
        window_grad(rng, args.repeats, [int(g) for g in args.key_heads.split(",")])
    if "keys_grad_layout" in cases:
        keys_grad_layout(rng, args.repeats)
    if "knn_search" in cases:
        knn_search(rng, args.repeats)
    if "allocation" in cases:
        allocation(rng, args.repeats)


if __name__ == "__main__":
    main()
