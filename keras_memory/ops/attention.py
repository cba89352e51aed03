"""Attention functions: safe softmax and causal sliding-window attention.

Shapes follow meliad: queries, keys and values are `(batch, length, heads,
head_dim)`. Everything is `keras.ops`, so it jits on every backend.
"""

import numpy as np
from keras import ops

from keras_memory.backend.broadcast_add import add_over_leading_axes
from keras_memory.ops.masks import window_mask

# Masked logits are set to this value before the softmax (meliad's -1e6).
MASKED_LOGIT = -1e6


def safe_softmax(logits, mask=None, axis=-1):
    """Softmax that gives all-zero weights to a fully masked row.

    A plain softmax spreads a fully masked row evenly over the masked keys;
    here such a row attends to nothing, so its output is zero.

    Args:
        logits: float tensor.
        mask: bool tensor broadcastable to `logits`, True where allowed, or
            None.
        axis: int. The axis to normalise over.

    Returns:
        A float32 tensor of `logits`' shape whose unmasked entries along
        `axis` sum to 1, or to 0 where every entry is masked.
    """
    logits = ops.cast(logits, "float32")
    if mask is None:
        return ops.softmax(logits, axis=axis)
    logits = ops.where(mask, logits, MASKED_LOGIT)
    row_max = ops.stop_gradient(ops.max(logits, axis=axis, keepdims=True))
    weights = ops.where(mask, ops.exp(logits - row_max), 0.0)
    total = ops.sum(weights, axis=axis, keepdims=True)
    return weights / ops.where(total > 0.0, total, 1.0)


def _window_key_blocks(tensor, previous_block, num_windows, window_length):
    """Returns `(batch, windows, 2W, heads, dim)`: [block k-1, block k] per window."""
    batch, _, heads, dim = ops.shape(tensor)
    blocks = ops.concatenate([previous_block, tensor], axis=1)
    blocks = ops.reshape(blocks, (batch, num_windows + 1, window_length, heads, dim))
    return ops.concatenate([blocks[:, :-1], blocks[:, 1:]], axis=2)


def sliding_window_attention(
    queries,
    keys,
    values,
    *,
    window_length,
    cache_keys=None,
    cache_values=None,
    cache_valid=None,
    position_bias=None,
    logit_scale=None,
    include_self=False,
    memory_keys=None,
    memory_values=None,
    memory_valid=None,
):
    """Causal sliding-window attention over a segment, with an optional XL cache.

    The segment of `S = n * W` tokens is split into `n` windows of `W`
    queries. Window `k` attends to the keys of [block `k-1`, block `k`]
    (`2W` keys) under the causal window mask; block 0's previous block is the
    cache (the last `W` keys/values of the previous segment). Memory and
    compute are O(S * 2W), never O(S^2).

    Args:
        queries: float tensor `(batch, S, heads, head_dim)`.
        keys: float tensor `(batch, S, heads, head_dim)`.
        values: float tensor `(batch, S, heads, head_dim)`.
        window_length: int. `W`; `S` must be a multiple of it.
        cache_keys: float tensor `(batch, W, heads, head_dim)` or None. None
            means local-only attention: window 0 sees no previous block.
        cache_values: float tensor like `cache_keys`, or None.
        cache_valid: bool tensor `(batch,)` or None. Rows where it is False
            ignore their cache (the first segment of a document).
        position_bias: float tensor `(heads, W, 2W)` or None, added to the
            logits (aligned to the last key).
        logit_scale: float tensor `(heads,)` or None, multiplies the logits
            after the bias (meliad's learned scale for normalised keys).
        include_self: bool. See `window_mask`.
        memory_keys: float tensor `(batch, M, heads, head_dim)` or None:
            older entries every query may attend to, in the same softmax as
            its window (e.g. a compressed memory); no position bias.
        memory_values: float tensor like `memory_keys`, or None.
        memory_valid: bool tensor `(batch, M)` or None (all valid).

    Returns:
        A tensor `(batch, S, heads, head_dim)` in the dtype of `values`.
    """
    batch, seq_len, heads, dim = ops.shape(queries)
    if seq_len % window_length:
        raise ValueError(
            f"The segment length ({seq_len}) must be a multiple of "
            f"`window_length` ({window_length})."
        )
    num_windows = seq_len // window_length
    use_cache = cache_keys is not None
    if use_cache:
        prev_keys, prev_values = cache_keys, cache_values
    else:
        prev_keys = ops.zeros((batch, window_length, heads, dim), dtype=keys.dtype)
        prev_values = ops.zeros((batch, window_length, heads, dim), dtype=values.dtype)
    window_keys = _window_key_blocks(
        keys, ops.cast(prev_keys, keys.dtype), num_windows, window_length
    )
    window_values = _window_key_blocks(
        values, ops.cast(prev_values, values.dtype), num_windows, window_length
    )
    window_queries = ops.reshape(queries, (batch, num_windows, window_length, heads, dim))

    logits = ops.einsum("bnqhd,bnkhd->bnhqk", window_queries, window_keys)
    logits = ops.cast(logits, "float32")
    if position_bias is not None:
        logits = add_over_leading_axes(logits, ops.cast(position_bias, "float32"))
    if logit_scale is not None:
        logits = logits * ops.reshape(ops.cast(logit_scale, "float32"), (1, 1, heads, 1, 1))

    band = window_mask(window_length, 2 * window_length, window_length, include_self)
    is_current_key = np.arange(2 * window_length) >= window_length
    # Which windows may look at their previous block: every window but the
    # first always can; the first only through a valid cache.
    later_windows = np.arange(num_windows) > 0
    if use_cache and cache_valid is not None:
        first_valid = ops.reshape(ops.cast(cache_valid, "bool"), (-1, 1))
        has_previous = ops.logical_or(first_valid, later_windows[None, :])
        has_previous = ops.reshape(has_previous, (-1, num_windows, 1, 1, 1))
    else:
        has_previous = np.ones(num_windows, bool) if use_cache else later_windows
        has_previous = has_previous.reshape(1, num_windows, 1, 1, 1)
    mask = ops.logical_and(band[None, None, None], ops.logical_or(is_current_key, has_previous))

    if memory_keys is None:
        (weights,), total = _unnormalized_softmax([(logits, mask)])
        outputs = ops.einsum("bnhqk,bnkhd->bnqhd", ops.cast(weights, values.dtype), window_values)
        return _normalize(outputs, total, batch, seq_len, values.dtype)

    # Every window also sees the memory: one softmax over [memory, window].
    size = memory_keys.shape[1]
    memory_logits = ops.einsum(
        "bnqhd,bmhd->bnhqm", window_queries, ops.cast(memory_keys, queries.dtype)
    )
    memory_logits = ops.cast(memory_logits, "float32")
    if logit_scale is not None:
        memory_logits = memory_logits * ops.reshape(
            ops.cast(logit_scale, "float32"), (1, 1, heads, 1, 1)
        )
    if memory_valid is None:
        memory_mask = ops.ones((batch, 1, 1, 1, size), "bool")
    else:
        memory_mask = ops.reshape(ops.cast(memory_valid, "bool"), (-1, 1, 1, 1, size))
    (memory_weights, weights), total = _unnormalized_softmax(
        [(memory_logits, memory_mask), (logits, mask)]
    )
    outputs = ops.einsum("bnhqk,bnkhd->bnqhd", ops.cast(weights, values.dtype), window_values)
    outputs = outputs + ops.einsum(
        "bnhqm,bmhd->bnqhd",
        ops.cast(memory_weights, values.dtype),
        ops.cast(memory_values, values.dtype),
    )
    return _normalize(outputs, total, batch, seq_len, values.dtype)


def _unnormalized_softmax(parts):
    """One softmax over several `(logits, mask)` parts, left unnormalised.

    Returns each part's `exp(logit - row max)` (zero where masked) and the
    rows' total. Dividing the attention output by the total afterwards is the
    same softmax, with `head_dim` divisions per query instead of one per key
    (on 2 CPU cores the division over a d512 layer's `(q, 2W)` weights was
    the slowest elementwise pass of its forward), and no concatenation of
    the parts.
    """
    masked = [ops.where(mask, ops.cast(logits, "float32"), MASKED_LOGIT) for logits, mask in parts]
    row_max = ops.max(masked[0], axis=-1, keepdims=True)
    for part in masked[1:]:
        row_max = ops.maximum(row_max, ops.max(part, axis=-1, keepdims=True))
    # A fully masked row keeps a zero shift, so its masked entries underflow
    # to exactly zero weight, as in `safe_softmax`.
    row_max = ops.stop_gradient(ops.where(row_max > 0.5 * MASKED_LOGIT, row_max, 0.0))
    weights = [ops.exp(part - row_max) for part in masked]
    total = ops.sum(weights[0], axis=-1, keepdims=True)
    for part in weights[1:]:
        total = total + ops.sum(part, axis=-1, keepdims=True)
    return weights, total


def _normalize(outputs, total, batch, seq_len, dtype):
    """`(b, n, q, h, d)` outputs over their `(b, n, h, q, 1)` softmax totals."""
    total = ops.transpose(total, (0, 1, 3, 2, 4))
    outputs = ops.cast(outputs, "float32") / ops.where(total > 0.0, total, 1.0)
    heads, dim = outputs.shape[3], outputs.shape[4]
    return ops.cast(ops.reshape(outputs, (batch, seq_len, heads, dim)), dtype)


def dense_attention(queries, keys, values, scale=None, mask=None):
    """Softmax attention of every query over every key, in float32.

    Used where no causal structure applies: the recurrent state attending to
    itself and to a block of tokens, and tokens attending to the state.

    Args:
        queries: float tensor `(batch, q, heads, head_dim)`.
        keys: float tensor `(batch, k, heads, head_dim)`.
        values: float tensor `(batch, k, heads, head_dim)`.
        scale: float tensor `(heads,)` multiplying the logits, or None.
        mask: bool tensor broadcastable to `(batch, heads, q, k)`, True where
            allowed, or None.

    Returns:
        A float32 tensor `(batch, q, heads, head_dim)`.
    """
    logits = ops.einsum("bqhd,bkhd->bhqk", ops.cast(queries, "float32"), ops.cast(keys, "float32"))
    if scale is not None:
        logits = logits * ops.reshape(ops.cast(scale, "float32"), (1, -1, 1, 1))
    weights = safe_softmax(logits, mask)
    return ops.einsum("bhqk,bkhd->bqhd", weights, ops.cast(values, "float32"))
