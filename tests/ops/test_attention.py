import keras
import numpy as np
import pytest
from keras import ops

from keras_memory.ops import safe_softmax, sliding_window_attention
from tests.backend_utils import gradients_of_weighted_sum
from tests.conftest import to_numpy
from tests.reference import t5_bucket


def test_safe_softmax_fully_masked_row_is_zero():
    logits = np.random.randn(2, 5).astype("float32")
    mask = np.array([[True, False, True, True, False], [False] * 5])
    p = to_numpy(safe_softmax(logits, mask))
    np.testing.assert_allclose(p[0].sum(), 1.0, rtol=1e-6)
    assert p[0, 1] == 0 and p[0, 4] == 0
    np.testing.assert_array_equal(p[1], 0.0)


def dense_band_attention(q, k, v, cache_k, cache_v, window, bias_table=None, scale=None):
    """Dense O(S^2) reference over concat(cache, segment) with the band mask."""
    b, s, h, d = q.shape
    keys = np.concatenate([cache_k, k], 1) if cache_k is not None else k
    values = np.concatenate([cache_v, v], 1) if cache_v is not None else v
    first = keys.shape[1] - s
    out = np.zeros_like(q)
    for i in range(s):
        dist = first + i - np.arange(keys.shape[1])
        allowed = (dist > 0) & (dist <= window)
        logits = np.einsum("bhd,bkhd->bhk", q[:, i], keys)
        if bias_table is not None:
            logits = logits + bias_table[:, [t5_bucket(max(int(n), 0)) for n in dist]]
        if scale is not None:
            logits = logits * scale[None, :, None]
        if not allowed.any():
            continue
        logits = np.where(allowed, logits, -np.inf)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        out[:, i] = np.einsum("bhk,bkhd->bhd", p / p.sum(-1, keepdims=True), values)
    return out


@pytest.mark.parametrize("num_windows", [1, 3])
@pytest.mark.parametrize("use_cache", [True, False])
def test_sliding_window_equals_dense_band_reference(num_windows, use_cache):
    rng = np.random.default_rng(0)
    b, w, h, d = 2, 4, 3, 5
    s = num_windows * w
    q, k, v = (rng.standard_normal((b, s, h, d)).astype("float32") for _ in range(3))
    ck, cv = (rng.standard_normal((b, w, h, d)).astype("float32") for _ in range(2))
    table = rng.standard_normal((h, 32)).astype("float32")
    scale = rng.uniform(0.5, 2.0, h).astype("float32")
    from keras_memory.ops import relative_positions, t5_relative_position_buckets

    bias = table[:, t5_relative_position_buckets(relative_positions(w, 2 * w))]
    got = sliding_window_attention(
        q,
        k,
        v,
        window_length=w,
        cache_keys=ck if use_cache else None,
        cache_values=cv if use_cache else None,
        position_bias=bias,
        logit_scale=scale,
    )
    expected = dense_band_attention(
        q, k, v, ck if use_cache else None, cv if use_cache else None, w, table, scale
    )
    np.testing.assert_allclose(to_numpy(got), expected, atol=1e-5)


@pytest.mark.parametrize("query_block", [None, 2])
def test_invalid_cache_row_behaves_like_no_cache(query_block):
    rng = np.random.default_rng(1)
    b, w, h, d = 2, 4, 2, 3
    q, k, v = (rng.standard_normal((b, 2 * w, h, d)).astype("float32") for _ in range(3))
    ck, cv = (rng.standard_normal((b, w, h, d)).astype("float32") for _ in range(2))
    with_cache = to_numpy(
        sliding_window_attention(
            q,
            k,
            v,
            window_length=w,
            cache_keys=ck,
            cache_values=cv,
            cache_valid=np.array([False, True]),
            query_block=query_block,
        )
    )
    no_cache = to_numpy(sliding_window_attention(q, k, v, window_length=w, query_block=query_block))
    full_cache = to_numpy(
        sliding_window_attention(
            q, k, v, window_length=w, cache_keys=ck, cache_values=cv, query_block=query_block
        )
    )
    np.testing.assert_allclose(with_cache[0], no_cache[0], atol=1e-6)
    np.testing.assert_allclose(with_cache[1], full_cache[1], atol=1e-6)
    # The first token of a document with no cache attends to nothing.
    np.testing.assert_array_equal(no_cache[:, 0], 0.0)


def test_default_query_block_splits_long_windows_only():
    from keras_memory.ops.attention import default_query_block

    assert [default_query_block(w) for w in (32, 128, 255, 256, 512)] == [32, 128, 255, 128, 256]


def test_rejects_query_block_not_dividing_window():
    x = ops.ones((1, 8, 1, 2))
    with pytest.raises(ValueError, match="`query_block` must be an int dividing 4"):
        sliding_window_attention(x, x, x, window_length=4, query_block=3)


def test_rejects_segment_not_multiple_of_window():
    x = ops.ones((1, 6, 1, 2))
    with pytest.raises(ValueError, match="multiple of `window_length`"):
        sliding_window_attention(x, x, x, window_length=4)


def dense_band_attention_ops(q, k, v, table, scale, cache_k, cache_v, memory_k, memory_v, window):
    """The same attention as one dense softmax in keras.ops, for gradients."""
    from keras_memory.ops.attention import MASKED_LOGIT

    s = q.shape[1]
    keys = ops.concatenate([cache_k, k], 1) if cache_k is not None else k
    values = ops.concatenate([cache_v, v], 1) if cache_v is not None else v
    first = keys.shape[1] - s
    dist = first + np.arange(s)[:, None] - np.arange(keys.shape[1])[None, :]
    allowed = (dist > 0) & (dist <= window)
    buckets = np.array([[t5_bucket(max(int(n), 0)) for n in row] for row in dist])
    logits = ops.einsum("bqhd,bkhd->bhqk", q, keys) + ops.take(table, buckets, axis=1)[None]
    logits = logits * ops.reshape(scale, (1, -1, 1, 1))
    logits = ops.where(allowed[None, None], logits, MASKED_LOGIT)
    mask = np.broadcast_to(allowed, logits.shape)
    if memory_k is not None:
        memory_logits = ops.einsum("bqhd,bmhd->bhqm", q, memory_k)
        memory_logits = memory_logits * ops.reshape(scale, (1, -1, 1, 1))
        logits = ops.concatenate([memory_logits, logits], -1)
        mask = np.concatenate([np.ones(memory_logits.shape, bool), mask], -1)
        values = ops.concatenate([memory_v, values], 1)
    return ops.einsum("bhqk,bkhd->bqhd", safe_softmax(logits, mask), values)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("use_memory", [True, False])
@pytest.mark.parametrize("query_block", [None, 2, 1])
def test_sliding_window_gradients_equal_one_dense_softmax(use_cache, use_memory, query_block):
    # Query blocks, the unnormalised softmax (divided after the value product)
    # and the bias gradient as a dot product must give the plain softmax's
    # gradients, including the fully masked first row of a document with no
    # cache.
    from keras_memory.ops import relative_positions, t5_relative_position_buckets

    rng = np.random.default_rng(3)
    b, w, h, d, m = 2, 4, 2, 3, 5
    s = 2 * w
    q, k, v = (rng.standard_normal((b, s, h, d)).astype("float32") for _ in range(3))
    ck, cv = (rng.standard_normal((b, w, h, d)).astype("float32") for _ in range(2))
    mk, mv = (rng.standard_normal((b, m, h, d)).astype("float32") for _ in range(2))
    table = rng.standard_normal((h, 32)).astype("float32")
    scale = rng.uniform(0.5, 2.0, h).astype("float32")
    window_buckets = t5_relative_position_buckets(relative_positions(w, 2 * w))
    cotangent = rng.standard_normal((b, s, h, d)).astype("float32")

    def ours(q, k, v, table, scale, ck, cv, mk, mv):
        return sliding_window_attention(
            q,
            k,
            v,
            window_length=w,
            cache_keys=ck if use_cache else None,
            cache_values=cv if use_cache else None,
            position_bias=ops.take(table, window_buckets, axis=1),
            logit_scale=scale,
            memory_keys=mk if use_memory else None,
            memory_values=mv if use_memory else None,
            query_block=query_block,
        )

    def reference(q, k, v, table, scale, ck, cv, mk, mv):
        return dense_band_attention_ops(
            q,
            k,
            v,
            table,
            scale,
            ck if use_cache else None,
            cv if use_cache else None,
            mk if use_memory else None,
            mv if use_memory else None,
            w,
        )

    inputs = [q, k, v, table, scale, ck, cv, mk, mv]
    np.testing.assert_allclose(to_numpy(ours(*inputs)), to_numpy(reference(*inputs)), atol=1e-5)
    got = gradients_of_weighted_sum(ours, inputs, cotangent)
    expected = gradients_of_weighted_sum(reference, inputs, cotangent)
    names = ["queries", "keys", "values", "bias table", "scale", "cache keys", "cache values"]
    for name, g, e in zip(names + ["memory keys", "memory values"], got, expected):
        np.testing.assert_allclose(g, e, atol=1e-4, err_msg=name)
    if not use_cache and not use_memory:
        # The first token attends to nothing: no gradient reaches its query.
        np.testing.assert_array_equal(got[0][:, 0], 0.0)


@pytest.mark.parametrize("use_bias", [False, True])
def test_dense_attention_values_and_gradients_equal_a_plain_softmax(use_bias):
    from keras_memory.ops.attention import dense_attention

    rng = np.random.default_rng(5)
    b, q_len, k_len, h, d = 2, 3, 4, 2, 3
    q = rng.standard_normal((b, q_len, h, d)).astype("float32")
    k, v = (rng.standard_normal((b, k_len, h, d)).astype("float32") for _ in range(2))
    scale = rng.uniform(0.5, 2.0, h).astype("float32")
    bias = rng.standard_normal((h, q_len, k_len)).astype("float32")
    mask = rng.random((b, 1, q_len, k_len)) > 0.3
    mask[0, 0, 1] = False  # a fully masked row attends to nothing
    cotangent = rng.standard_normal((b, q_len, h, d)).astype("float32")

    def reference(q, k, v, scale, bias):
        logits = ops.einsum("bqhd,bkhd->bhqk", q, k) * ops.reshape(scale, (1, -1, 1, 1))
        if use_bias:
            logits = logits + bias[None]
        weights = safe_softmax(logits, np.broadcast_to(mask, (b, h, q_len, k_len)))
        return ops.einsum("bhqk,bkhd->bqhd", weights, v)

    def ours(q, k, v, scale, bias):
        return dense_attention(q, k, v, scale, mask, bias if use_bias else None)

    inputs = [q, k, v, scale, bias]
    got = to_numpy(ours(*inputs))
    np.testing.assert_allclose(got, to_numpy(reference(*inputs)), atol=1e-5)
    np.testing.assert_array_equal(got[0, 1], 0.0)
    for name, g, e in zip(
        ["queries", "keys", "values", "scale", "bias"],
        gradients_of_weighted_sum(ours, inputs, cotangent),
        gradients_of_weighted_sum(reference, inputs, cotangent),
    ):
        np.testing.assert_allclose(g, e, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("include_self", [False, True])
@pytest.mark.parametrize("previous_valid", [True, False])
def test_one_query_step_equals_its_row_of_the_window(include_self, previous_valid):
    from keras_memory.ops.attention import window_step_attention

    rng = np.random.default_rng(4)
    b, w, h, d, m = 2, 4, 2, 8, 3
    q, k, v = (rng.normal(size=(b, w, h, d)).astype("float32") for _ in range(3))
    cache_k, cache_v = (rng.normal(size=(b, w, h, d)).astype("float32") for _ in range(2))
    memory_k, memory_v = (rng.normal(size=(b, m, h, d)).astype("float32") for _ in range(2))
    memory_valid = np.array([[True, False, True], [True, True, True]])
    bias = rng.normal(size=(h, w, 2 * w)).astype("float32")
    scale = np.array([1.5, 0.5], "float32")
    options = dict(
        window_length=w,
        position_bias=bias,
        logit_scale=scale,
        include_self=include_self,
        memory_keys=memory_k,
        memory_values=memory_v,
        memory_valid=memory_valid,
    )
    valid = np.array([previous_valid, True])
    whole = to_numpy(
        sliding_window_attention(
            q, k, v, cache_keys=cache_k, cache_values=cache_v, cache_valid=valid, **options
        )
    )
    # The buffers hold the whole window: a step must not see the keys after its query.
    keys, values = np.concatenate([cache_k, k], 1), np.concatenate([cache_v, v], 1)
    for position in range(w):
        step = window_step_attention(
            q[:, position : position + 1],
            keys,
            values,
            np.int32(position),
            previous_valid=valid,
            **{**options, "position_bias": bias[:, position]},
        )
        np.testing.assert_allclose(to_numpy(step)[:, 0], whole[:, position], rtol=1e-5, atol=1e-5)


def test_dense_attention_of_bfloat16_operands_is_float32_attention_at_bfloat16_precision():
    # A `mixed_bfloat16` layer (Melodi's window) hands bfloat16 operands: the
    # products take them as they are (each product rounded to bfloat16 once),
    # the mask, bias and softmax stay float32, and the result is float32.
    from keras_memory.ops.attention import dense_attention

    rng = np.random.default_rng(6)
    b, q_len, k_len, h, d = 2, 5, 7, 2, 16
    q, k, v = (
        to_numpy(ops.cast(ops.cast(rng.standard_normal((b, n, h, d)), "bfloat16"), "float32"))
        for n in (q_len, k_len, k_len)
    )
    scale = np.array([0.25, 0.5], "float32")  # logits within about 4: bfloat16 keeps 2^-8 of them
    bias = rng.standard_normal((h, q_len, k_len)).astype("float32")
    mask = rng.random((b, 1, q_len, k_len)) > 0.3
    mask[..., 0], mask[..., -1] = True, False
    v[:, -1] = 1000.0  # a masked key that leaked into any weight would show
    expected = to_numpy(dense_attention(q, k, v, scale, mask, bias))
    got = dense_attention(*(ops.cast(t, "bfloat16") for t in (q, k, v)), scale, mask, bias)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(to_numpy(got), expected, atol=2**-5 * np.abs(v[:, :-1]).max())


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the float32 accumulation is JAX's")
def test_on_jax_cpu_dense_attention_multiplies_bfloat16_operands_into_float32():
    import jax
    import jax.numpy as jnp

    from keras_memory.backend.accumulating_einsum import _batched_accumulation_compiles
    from keras_memory.ops.attention import dense_attention

    if jax.default_backend() != "cpu":
        pytest.skip("the accumulating form is used on the CPU only")
    q, k, v = (jnp.ones((1, n, 2, 8), jnp.bfloat16) for n in (3, 4, 4))
    jaxpr = jax.make_jaxpr(lambda q, k, v: dense_attention(q, k, v).sum())(q, k, v)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name in ("dot_general", "custom_vjp_call")]
    # Upcast operands would run at the float32 rate (see `accumulating_einsum`);
    # where this jaxlib can, both products are the float32-accumulating form.
    expected = "custom_vjp_call" if _batched_accumulation_compiles() else "dot_general"
    assert [dot.primitive.name for dot in dots] == [expected, expected]
    for dot in dots:
        assert [str(var.aval.dtype) for var in dot.invars] == ["bfloat16", "bfloat16"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_grouped_key_heads_equal_keys_repeated_for_each_query_head(dtype):
    # Query head i reads key head i // R: the values and the gradients (the
    # shared keys' gradient being the sum of their repeats') of the window,
    # its memory, a one-token step and dense attention are those of keys
    # repeated R times. In bfloat16 the accumulating products of JAX's CPU
    # run (their grouped form multiplies R heads' rows at once).
    from keras_memory.ops.attention import dense_attention, window_step_attention

    rng = np.random.default_rng(5)
    b, w, heads, groups, d, m = 2, 4, 6, 2, 3, 5
    s, repeats = 2 * w, heads // groups
    q = rng.standard_normal((b, s, heads, d)).astype("float32")
    k, v = (rng.standard_normal((b, s, groups, d)).astype("float32") for _ in range(2))
    ck, cv = (rng.standard_normal((b, w, groups, d)).astype("float32") for _ in range(2))
    mk, mv = (rng.standard_normal((b, m, groups, d)).astype("float32") for _ in range(2))
    bias = rng.standard_normal((heads, w, 2 * w)).astype("float32")
    scale = rng.uniform(0.5, 2.0, heads).astype("float32")
    cotangent = rng.standard_normal((b, s, heads, d)).astype("float32")

    def cast(*tensors):
        return [ops.cast(t, dtype) for t in tensors]

    def window(q, k, v, ck, cv, mk, mv):
        q, k, v, ck, cv, mk, mv = cast(q, k, v, ck, cv, mk, mv)
        return ops.cast(
            sliding_window_attention(
                q,
                k,
                v,
                window_length=w,
                cache_keys=ck,
                cache_values=cv,
                cache_valid=np.array([True, False]),
                position_bias=bias,
                logit_scale=scale,
                memory_keys=mk,
                memory_values=mv,
            ),
            "float32",
        )

    def step(q, k, v, ck, cv, mk, mv):
        q, k, v, ck, cv, mk, mv = cast(q, k, v, ck, cv, mk, mv)
        keys, values = ops.concatenate([ck, k[:, :w]], 1), ops.concatenate([cv, v[:, :w]], 1)
        outputs = window_step_attention(
            q[:, 2:3],
            keys,
            values,
            2,
            window_length=w,
            previous_valid=np.array([True, False]),
            position_bias=bias[:, 2],
            logit_scale=scale,
            memory_keys=mk,
            memory_values=mv,
        )
        return ops.cast(outputs, "float32")

    def dense(q, k, v, ck, cv, mk, mv):
        q, k, v = cast(q, k, v)
        return dense_attention(q, k, v, scale, mask=np.tril(np.ones((s, s), bool)))

    def repeated(fn):
        def run(q, *shared):
            return fn(q, *(ops.repeat(t, repeats, axis=2) for t in shared))

        return run

    inputs = [q, k, v, ck, cv, mk, mv]
    atol = 1e-5 if dtype == "float32" else 2e-2
    for name, fn in (("window", window), ("step", step), ("dense", dense)):
        got, want = to_numpy(fn(*inputs)), to_numpy(repeated(fn)(*inputs))
        np.testing.assert_allclose(got, want, atol=atol, err_msg=name)
        if name == "step":  # decoding is not differentiated
            continue
        grads = gradients_of_weighted_sum(fn, inputs, cotangent)
        expected = gradients_of_weighted_sum(repeated(fn), inputs, cotangent)
        for g, e in zip(grads, expected):
            np.testing.assert_allclose(
                np.asarray(g, "float32"), np.asarray(e, "float32"), atol=10 * atol, err_msg=name
            )


def test_keys_with_heads_not_dividing_the_queries_are_refused():
    from keras_memory.ops.attention import dense_attention

    queries = np.ones((1, 2, 4, 3), "float32")
    keys = np.ones((1, 2, 3, 3), "float32")
    with pytest.raises(ValueError, match=r"The keys' heads \(3\) must divide the queries' heads"):
        dense_attention(queries, keys, keys)
